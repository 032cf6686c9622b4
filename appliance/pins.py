"""The Raspberry Pi's 40-pin header: what each pin carries, and the pins a device should avoid.

`HEADER` is the one table: every physical pin, its BCM GPIO number and, where the board
gives it one, the bus function it has. It holds for every supported board (Zero 2 W, 3, 4
and 5: the same header and BCM numbers; on the Pi 5 the RP1 chip drives the pins and gpiozero
uses its lgpio pin factory). hw/README.md's pin map follows it, and tests check that it does.

`pin_warnings(config)` lists each device pin that a bus of the board claims (I2C, I2S, the
serial port, the HAT ID EEPROM) as a "key: problem; fix" line, like config errors. These are
warnings, not errors: the pin works as a GPIO when nothing uses that bus. They are kept out
of `Config` (a frozen dataclass that a reload compares) and computed from it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Config


@dataclass(frozen=True)
class HeaderPin:
    """One pin of the header. `gpio` is None for a supply or ground pin."""

    physical: int  # 1-40: odd numbers on the inner row, pin 1 at the SD card's end
    name: str  # "GPIO18", "3V3", "5V", "GND"
    gpio: int | None = None  # BCM number
    bus: str = ""  # the bus it belongs to: "I2C", "I2S", "UART", "HAT ID", "SPI"; "": none
    signal: str = ""  # its signal on that bus, as the datasheet names it: "PCM_CLK"
    role: str = ""  # the signal in words: "the I2S bit clock"


def _gpio(physical: int, gpio: int, bus: str = "", signal: str = "", role: str = "") -> HeaderPin:
    return HeaderPin(physical, f"GPIO{gpio}", gpio, bus, signal, role)


def _power(physical: int, name: str) -> HeaderPin:
    return HeaderPin(physical, name)


HEADER: tuple[HeaderPin, ...] = (
    _power(1, "3V3"),
    _power(2, "5V"),
    _gpio(3, 2, "I2C", "SDA1", "the I2C data line, with a 1.8 kOhm pull-up to 3.3 V on the board"),
    _power(4, "5V"),
    _gpio(5, 3, "I2C", "SCL1", "the I2C clock, with a 1.8 kOhm pull-up to 3.3 V on the board"),
    _power(6, "GND"),
    _gpio(7, 4),
    _gpio(8, 14, "UART", "TXD", "the serial port's transmit line"),
    _power(9, "GND"),
    _gpio(10, 15, "UART", "RXD", "the serial port's receive line"),
    _gpio(11, 17),
    _gpio(12, 18, "I2S", "PCM_CLK", "the I2S bit clock"),
    _gpio(13, 27),
    _power(14, "GND"),
    _gpio(15, 22),
    _gpio(16, 23),
    _power(17, "3V3"),
    _gpio(18, 24),
    _gpio(19, 10, "SPI", "MOSI"),
    _power(20, "GND"),
    _gpio(21, 9, "SPI", "MISO"),
    _gpio(22, 25),
    _gpio(23, 11, "SPI", "SCLK"),
    _gpio(24, 8, "SPI", "CE0"),
    _power(25, "GND"),
    _gpio(26, 7, "SPI", "CE1"),
    _gpio(27, 0, "HAT ID", "ID_SD", "the HAT ID EEPROM's data line, probed at boot, HAT or not"),
    _gpio(28, 1, "HAT ID", "ID_SC", "the HAT ID EEPROM's clock, probed at boot, HAT or not"),
    _gpio(29, 5),
    _power(30, "GND"),
    _gpio(31, 6),
    _gpio(32, 12),
    _gpio(33, 13),
    _power(34, "GND"),
    _gpio(35, 19, "I2S", "PCM_FS", "the I2S frame clock (left/right)"),
    _gpio(36, 16),
    _gpio(37, 26),
    _gpio(38, 20, "I2S", "PCM_DIN", "the I2S data input, from a microphone"),
    _power(39, "GND"),
    _gpio(40, 21, "I2S", "PCM_DOUT", "the I2S data output, to an amplifier"),
)

BY_GPIO: dict[int, HeaderPin] = {pin.gpio: pin for pin in HEADER if pin.gpio is not None}

# The buses whose pins a device is warned off, with the condition under which the pin is
# free after all (None: none, the board itself uses it). SPI is left out: it is off unless
# enabled, and its pins are the spare ones once the others are taken.
RESERVED: dict[str, str | None] = {
    "I2C": "unless nothing uses I2C here",
    "I2S": "unless nothing uses I2S here",
    "UART": "unless the serial port and its console are off (raspi-config)",
    "HAT ID": None,
}

# Free pins to suggest instead, in the order hw/README.md hands them out.
SPARE = (24, 25, 5, 6, 12, 13, 16, 26, 4, 17, 22, 23, 27)


def physical_pin(gpio: int) -> int:
    """The header pin (1-40) of a BCM GPIO number (0-27)."""
    return BY_GPIO[gpio].physical


def reserved_pin(gpio: int) -> HeaderPin | None:
    """The header pin of `gpio` when a bus of the board claims it, else None."""
    pin = BY_GPIO.get(gpio)
    return pin if pin is not None and pin.bus in RESERVED else None


def pin_warnings(config: Config) -> list[str]:
    """One "devices[N].pin: problem; fix" line per device on a pin that a bus claims."""
    used = [device.pin for device in config.devices]
    spare = [gpio for gpio in SPARE if gpio not in used]
    warnings = []
    for index, gpio in enumerate(used):
        pin = reserved_pin(gpio) if gpio is not None else None
        if pin is None:
            continue
        fix = f"pick another pin, e.g. {spare.pop(0)}" if spare else "pick another pin"
        unless = RESERVED[pin.bus]
        warnings.append(f"devices[{index}].pin: GPIO {gpio} ({pin.signal}, header pin "
                        f"{pin.physical}) is {pin.role}; {fix}{', ' + unless if unless else ''}")
    return warnings
