"""The config examples of the guide load, so the guide never drifts from the code.

Checked: every ```toml block of README.md and hw/*.md, and every hw/*.toml file, with
`appliance.config.load` (no environment), and none may draw a pin warning. The rule for a
block:

- A block with an [agent] table is a whole config and must load as it is.
- A block without one is a fragment of a config ([proxy] alone, some [[devices]]). It is
  loaded followed by a minimal base (``[agent] name = "docs-example"``) and by a [[devices]]
  entry for each device it refers to (in a user's `devices` or an intercom's `strike`)
  without defining it; those entries are the demo home's devices of that name, as a reader
  would have them from the README's first example. A fragment that refers to anything else
  fails.
- The files a block names (`password_file`, `certificate`, `key`, `ca`) are the ones the
  reader is told to create: each value becomes a file of the same base name in a temporary
  directory, holding a placeholder. The block's lines keep their numbers (the base comes
  after them), and the test id names the document's line of the block's first one.

hw/README.md's pin map must give each device of hw/frontdoor.toml its GPIO (and the header
pin of that GPIO in appliance/pins.py), its table of reserved pins must be the one in
appliance/pins.py, and the `appliance check` output it shows must be what check prints for
it. Every SVG it shows must exist and be well-formed, every local link must resolve.
"""

import dataclasses
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from appliance.config import ConfigError, demo_config, load
from appliance.pins import BY_GPIO, physical_pin, pin_warnings, reserved_pin

from .support import clean_env

ENV, ROOT_DIR = clean_env()
ROOT = Path(ROOT_DIR)
HW = ROOT / "hw"
GUIDE = HW / "README.md"
FRONTDOOR = HW / "frontdoor.toml"
CHECK_WAIT = 20.0  # seconds for `appliance check`
SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

BASE = '[agent]\nname = "docs-example"\n'
FILE_KEYS = re.compile(r'^(\s*(?:password_file|certificate|key|ca)\s*=\s*)"([^"]*)"', re.M)


# --- the examples ---


def toml_blocks(path):
    """(line number of the first line, text) of each ```toml block of a Markdown file."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = re.fullmatch(r"(\s*)```toml\s*", lines[index])
        index += 1
        if not opening:
            continue
        indent, start, body = len(opening[1]), index + 1, []
        while index < len(lines) and not re.fullmatch(r"\s*```\s*", lines[index]):
            body.append(lines[index][indent:])
            index += 1
        assert index < len(lines), f"{path.name}:{start - 1}: a ```toml block is not closed"
        index += 1
        blocks.append((start, "\n".join(body) + "\n"))
    return blocks


def examples():
    """pytest params: each example with an id that says where it is."""
    found = []
    for doc in [ROOT / "README.md", *sorted(HW.glob("*.md"))]:
        for line, text in toml_blocks(doc):
            found.append(pytest.param(text, id=f"{doc.relative_to(ROOT)}:{line}"))
    for path in sorted(HW.glob("*.toml")):
        found.append(pytest.param(path.read_text(encoding="utf-8"), id=str(path.relative_to(ROOT))))
    return found


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def demo_device(name):
    """The demo home's device `name` as a [[devices]] table: its keys that differ from the
    defaults."""
    (device,) = [d for d in demo_config(environ={}).devices if d.name == name]
    lines = ["[[devices]]", f"name = {toml_value(name)}", f"type = {toml_value(device.type)}"]
    for field in dataclasses.fields(device):
        value = getattr(device, field.name)
        if field.name != "name" and value is not None and value != field.default:
            lines.append(f"{field.name} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def as_config(text, tmp_path):
    """The example as a whole config file, by the rule of the module's docstring."""
    import tomllib

    def placeholder(match):
        path = tmp_path / Path(match[2]).name
        path.write_text("placeholder\n")
        path.chmod(0o600)  # as the install makes them: for the agent alone
        return f'{match[1]}"{path}"'

    raw = tomllib.loads(text)
    text = FILE_KEYS.sub(placeholder, text)
    if "agent" in raw:
        return text
    defined = {device.get("name") for device in raw.get("devices", [])}
    wanted = [name for user in raw.get("users", []) for name in user.get("devices", [])]
    wanted += [device["strike"] for device in raw.get("devices", []) if "strike" in device]
    missing = sorted(set(wanted) - defined)
    demo = [demo_device(name) for name in missing]
    return "\n".join([text, BASE, *demo])  # the base after: the block's lines keep their numbers


def load_example(text, tmp_path):
    path = tmp_path / "example.toml"
    path.write_text(as_config(text, tmp_path))
    try:
        return load(str(path), environ={})
    except ConfigError as error:
        pytest.fail("the example does not load:\n  " + "\n  ".join(error.problems))


@pytest.mark.parametrize("text", examples())
def test_example_loads_without_warnings(text, tmp_path):
    config = load_example(text, tmp_path)
    assert pin_warnings(config) == []


def test_the_examples_are_found():
    ids = [param.id for param in examples()]
    assert "hw/frontdoor.toml" in ids
    assert sum(i.startswith("README.md:") for i in ids) >= 4  # whole, [proxy], devices, [mqtt]


def test_a_fragment_gets_the_devices_it_names(tmp_path):
    fragment = '[[users]]\nname = "carol"\npassword_file = "carol.secret"\ndevices = ["porch"]\n'
    config = load_example(fragment, tmp_path)
    assert [(d.name, d.type, d.pin) for d in config.devices] == [("porch", "light", 22)]
    assert config.users[0].password.reveal() == "placeholder"


def test_frontdoor_passes_appliance_check(tmp_path):
    path = tmp_path / "frontdoor.toml"
    text = FRONTDOOR.read_text(encoding="utf-8")
    # No Pi camera on the machine the tests run on: the test picture stands in for it.
    assert 'source = "rpicam"' in text
    path.write_text(as_config(text.replace('source = "rpicam"', 'source = "test"'), tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "check", "-c", str(path)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=CHECK_WAIT, check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{path}: OK (6 devices, 2 users)\n"


def test_frontdoor_is_the_wiring_of_the_guide(tmp_path):
    config = load_example(FRONTDOOR.read_text(encoding="utf-8"), tmp_path)
    kinds = {device.name: device.type for device in config.devices}
    assert kinds == {"frontdoor": "door", "doorbell": "doorbell", "strike": "relay",
                     "porch": "light", "intercom": "intercom", "camera": "camera"}
    intercom = next(d for d in config.devices if d.type == "intercom")
    assert (intercom.audio, intercom.strike, intercom.video) == ("USB Audio", "strike", True)
    camera = next(d for d in config.devices if d.type == "camera")
    assert (camera.source, camera.width, camera.height) == ("rpicam", 640, 480)
    strike = next(d for d in config.devices if d.name == "strike")
    assert strike.pulse
    assert config.proxy is not None
    assert {user.name for user in config.users} == {"alice", "bob"}


# --- hw/README.md's tables against the config and appliance/pins.py ---


def section(title):
    """The text of hw/README.md under the heading `## title`, up to the next one."""
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"hw/README.md has no section '## {title}'"
    return match[1]


def tables(text):
    """Each Markdown table in `text` as a list of rows, each a dict by column name."""
    found, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            header, _, *body = rows
            found.append([dict(zip(header, row, strict=True)) for row in body])
            rows = []
    return found


def numbers(cell):
    return [int(n) for n in re.findall(r"\d+", cell)]


def device_name(cell):
    match = re.match(r"`([a-z0-9-]+)`", cell)
    return match[1] if match else None


def pi_pin_map():
    """{device: (GPIO, header pin)} of the Pi's pin map, devices with a pin only."""
    rows = tables(section("Pin map"))[0]
    return {device_name(row["device"]): (int(row["GPIO (BCM)"]), int(row["pin"]))
            for row in rows if row["GPIO (BCM)"].isdigit()}


def test_pin_map_matches_frontdoor(tmp_path):
    config = load_example(FRONTDOOR.read_text(encoding="utf-8"), tmp_path)
    pins = {device.name: device.pin for device in config.devices if device.pin is not None}
    table = pi_pin_map()
    assert {name: gpio for name, (gpio, _) in table.items()} == pins
    assert {name: physical for name, (_, physical) in table.items()} == {
        name: physical_pin(gpio) for name, gpio in pins.items()
    }


def test_pin_map_lists_the_devices_without_a_pin():
    rows = tables(section("Pin map"))[0]
    names = [device_name(row["device"]) for row in rows]
    assert "intercom" in names
    assert all(row["GPIO (BCM)"].isdigit() or row["GPIO (BCM)"] == "—" for row in rows)


def test_the_reserved_pins_table_is_pins_py():
    rows = tables(section("Pin map"))[1]
    listed = set()
    for row in rows:
        gpios, physicals = numbers(row["GPIO"]), numbers(row["pin"])
        assert len(gpios) == len(physicals), row
        listed |= set(zip(gpios, physicals, strict=True))
    assert listed == {(gpio, BY_GPIO[gpio].physical) for gpio in range(28) if reserved_pin(gpio)}


def test_the_check_output_shown_is_what_check_prints(tmp_path):
    shown = re.search(r"```\n\$ appliance check -c (\S+)\n(.*?)```", section("Pin map"), re.S)
    assert shown, "hw/README.md shows no `appliance check` output"
    name, output = shown[1], shown[2].splitlines()
    moved = re.search(r"a (\w+) on GPIO (\d+)", section("Pin map"))
    kind, gpio = moved[1], int(moved[2])
    text = FRONTDOOR.read_text(encoding="utf-8")
    config = load_example(text, tmp_path)
    (device,) = [d for d in config.devices if d.type == kind]
    text = re.sub(rf'(name = "{device.name}"\ntype = "{kind}"\npin = ){device.pin}',
                  rf"\g<1>{gpio}", text)
    config = load_example(text, tmp_path)
    warnings = pin_warnings(config)
    assert output == [f"warning: {w}" for w in warnings] + [
        f"{name}: OK ({len(config.devices)} devices, {len(config.users)} users, "
        f"{len(warnings)} warning{'' if len(warnings) == 1 else 's'})"
    ]


def test_firmware_pin_map_has_the_same_devices():
    (rows,) = tables(section("Pin map for the firmware (ESP32, Pico W)"))
    assert {device_name(row["device"]) for row in rows} == set(pi_pin_map())
    for row in rows:
        assert numbers(row["ESP32 DevKitC GPIO"]) and numbers(row["Pico W GPIO (pin)"]), row


# --- the drawings and links ---


def svgs_shown():
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+\.svg)\)", GUIDE.read_text(encoding="utf-8"))


def test_every_svg_file_is_shown():
    shown = svgs_shown()
    assert len(shown) == len(set(shown)), "an SVG is shown twice"
    assert sorted(shown) == sorted(path.name for path in HW.glob("*.svg"))


@pytest.mark.parametrize("name", svgs_shown())
def test_svg_is_well_formed(name):
    path = HW / name
    assert path.is_file(), f"hw/README.md shows {name}, which does not exist"
    root = ET.parse(path).getroot()  # raises on XML that is not well-formed
    assert root.tag == SVG_NS + "svg"
    assert root.get("viewBox"), "a viewBox, so that it scales"
    assert root.find(SVG_NS + "title") is not None, "a <title>, for screen readers"
    ids = {element.get("id") for element in root.iter() if element.get("id")}
    for use in root.iter(SVG_NS + "use"):
        assert use.get(XLINK_HREF, "").lstrip("#") in ids, f"<use> of an unknown id in {name}"


def slug(heading):
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_local_links_resolve():
    text = GUIDE.read_text(encoding="utf-8")
    anchors = {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("#"):
            assert target[1:] in anchors, f"hw/README.md links to {target}, no such heading"
        elif "://" not in target:
            assert (HW / target).exists(), f"hw/README.md links to {target}, no such file"
