"""appliance/pins.py: the 40-pin header's table, and the warnings for a device on a pin that a
bus of the board uses; `appliance check` prints them and still exits 0."""

import subprocess
import sys

import pytest

from appliance.config import demo_config, load
from appliance.pins import BY_GPIO, HEADER, RESERVED, physical_pin, pin_warnings, reserved_pin

from .support import clean_env

ENV, ROOT = clean_env()
CHECK_WAIT = 20.0  # seconds for `appliance check`

BASE = '[agent]\nname = "test-pi"\n'


def config_text(*devices):
    """A config with one device per (name, type, pin); pin None: a device without one."""
    text = BASE
    for name, kind, pin in devices:
        text += f'\n[[devices]]\nname = "{name}"\ntype = "{kind}"\n'
        if pin is not None:
            text += f"pin = {pin}\n"
    return text


def warnings_for(tmp_path, *devices):
    path = tmp_path / "home.toml"
    path.write_text(config_text(*devices))
    return pin_warnings(load(str(path), environ={}))


# --- the table ---


def test_header_has_every_pin_once():
    assert [pin.physical for pin in HEADER] == list(range(1, 41))
    assert sorted(BY_GPIO) == list(range(28))  # GPIO 0-27, the range config accepts
    supplies = {pin.physical: pin.name for pin in HEADER if pin.gpio is None}
    assert supplies == {
        1: "3V3", 17: "3V3", 2: "5V", 4: "5V",
        6: "GND", 9: "GND", 14: "GND", 20: "GND", 25: "GND", 30: "GND", 34: "GND", 39: "GND",
    }
    assert all(pin.name == f"GPIO{pin.gpio}" for pin in HEADER if pin.gpio is not None)


@pytest.mark.parametrize(("gpio", "physical"), [
    (17, 11), (27, 13), (22, 15), (23, 16), (18, 12), (19, 35), (20, 38), (21, 40), (0, 27),
])
def test_physical_pin(gpio, physical):
    assert physical_pin(gpio) == physical


def test_reserved_pins_are_the_buses_of_the_board():
    reserved = {gpio: reserved_pin(gpio).bus for gpio in range(28) if reserved_pin(gpio)}
    assert reserved == {
        0: "HAT ID", 1: "HAT ID", 2: "I2C", 3: "I2C", 14: "UART", 15: "UART",
        18: "I2S", 19: "I2S", 20: "I2S", 21: "I2S",
    }
    assert set(RESERVED) == {"HAT ID", "I2C", "UART", "I2S"}
    assert reserved_pin(8) is None  # SPI CE0: off unless enabled, not warned about


# --- the warnings: one per reserved pin, key; problem; fix ---


@pytest.mark.parametrize(("pin", "warning"), [
    (18, "devices[0].pin: GPIO 18 (PCM_CLK, header pin 12) is the I2S bit clock; "
         "pick another pin, e.g. 24, unless nothing uses I2S here"),
    (2, "devices[0].pin: GPIO 2 (SDA1, header pin 3) is the I2C data line, with a 1.8 kOhm "
        "pull-up to 3.3 V on the board; pick another pin, e.g. 24, unless nothing uses I2C here"),
    (14, "devices[0].pin: GPIO 14 (TXD, header pin 8) is the serial port's transmit line; "
         "pick another pin, e.g. 24, unless the serial port and its console are off "
         "(raspi-config)"),
    (0, "devices[0].pin: GPIO 0 (ID_SD, header pin 27) is the HAT ID EEPROM's data line, "
        "probed at boot, HAT or not; pick another pin, e.g. 24"),
])
def test_each_bus_gives_its_warning(tmp_path, pin, warning):
    assert warnings_for(tmp_path, ("strike", "relay", pin)) == [warning]


@pytest.mark.parametrize("gpio", [0, 1, 2, 3, 14, 15, 18, 19, 20, 21])
def test_every_reserved_pin_warns(tmp_path, gpio):
    (warning,) = warnings_for(tmp_path, ("frontdoor", "door", gpio))
    pin = BY_GPIO[gpio]
    key, _, rest = warning.partition(": ")
    problem, _, fix = rest.partition("; ")
    assert key == "devices[0].pin"
    assert problem == f"GPIO {gpio} ({pin.signal}, header pin {pin.physical}) is {pin.role}"
    assert fix.startswith("pick another pin, e.g. 24")


def test_clean_configs_give_none(tmp_path):
    assert pin_warnings(demo_config(environ={})) == []
    devices = [("frontdoor", "door", 17), ("porch", "light", 22), ("strike", "relay", 23),
               ("doorbell", "doorbell", 27), ("intercom", "intercom", None)]
    assert warnings_for(tmp_path, *devices) == []
    spare = [(f"d{gpio}", "door", gpio) for gpio in range(28) if reserved_pin(gpio) is None]
    assert warnings_for(tmp_path, *spare) == []  # SPI's pins included


def test_keys_count_devices_without_a_pin(tmp_path):
    warnings = warnings_for(tmp_path, ("intercom", "intercom", None), ("bell", "doorbell", 20))
    assert [w.partition(": ")[0] for w in warnings] == ["devices[1].pin"]


def test_suggestions_skip_used_pins_and_differ(tmp_path):
    warnings = warnings_for(tmp_path, ("a", "door", 18), ("b", "relay", 24), ("c", "light", 19))
    assert [w.split("; ")[1].split(",")[1] for w in warnings] == [" e.g. 25", " e.g. 5"]


def test_no_spare_pin_left_still_says_pick_another(tmp_path):
    free = [gpio for gpio in range(28) if reserved_pin(gpio) is None]
    devices = [(f"d{gpio}", "door", gpio) for gpio in free[:-1]] + [("i2s", "door", 18)]
    (warning,) = warnings_for(tmp_path, *devices)
    assert f"e.g. {free[-1]}" in warning  # the one left
    devices = [(f"d{gpio}", "door", gpio) for gpio in free] + [("i2s", "door", 18)]
    (warning,) = warnings_for(tmp_path, *devices)
    assert "; pick another pin, unless nothing uses I2S here" in warning


# --- `appliance check`: the warnings printed, exit 0; a pin used twice stays an error ---


def check(path):
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "check", "-c", str(path)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=CHECK_WAIT, check=False,
    )


def test_check_prints_warnings_and_exits_0(tmp_path):
    path = tmp_path / "home.toml"
    path.write_text(config_text(("frontdoor", "door", 17), ("strike", "relay", 18),
                                ("doorbell", "doorbell", 3)))
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: devices[1].pin: GPIO 18 (PCM_CLK, header pin 12) is the I2S bit clock; "
        "pick another pin, e.g. 24, unless nothing uses I2S here",
        "warning: devices[2].pin: GPIO 3 (SCL1, header pin 5) is the I2C clock, with a 1.8 kOhm "
        "pull-up to 3.3 V on the board; pick another pin, e.g. 25, unless nothing uses I2C here",
    ]
    assert result.stdout == f"{path}: OK (3 devices, 0 users, 2 warnings)\n"


def test_check_without_warnings_prints_none(tmp_path):
    path = tmp_path / "home.toml"
    path.write_text(config_text(("frontdoor", "door", 17)))
    result = check(path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{path}: OK (1 devices, 0 users)\n"


def test_check_a_pin_used_twice_is_still_an_error(tmp_path):
    path = tmp_path / "home.toml"
    path.write_text(config_text(("frontdoor", "door", 18), ("strike", "relay", 18)))
    result = check(path)
    assert result.returncode == 2
    assert 'devices[1].pin: 18 is already used by devices[0] ("frontdoor"); give each device ' \
           "its own pin" in result.stderr
    assert "warning:" not in result.stderr  # no warnings for a config that does not load
