"""Devices from configuration."""

import logging
import warnings

from gpiozero.exc import BadPinFactory, PinFactoryFallback

from .base import DeviceError
from .inputs import Doorbell, DoorSensor
from .outputs import Camera, Intercom, Light, Relay

log = logging.getLogger(__name__)


def pin_factory_for(simulate):
    """gpiozero's MockFactory when simulated (PWM-capable, for dimmable lights); else None,
    which lets gpiozero pick the board's own factory."""
    if not simulate:
        return None
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)


def build_devices(configs, pin_factory):
    """A dict name -> Device for the [[devices]] of a config, in config order.

    Without a pin factory given, gpiozero picks one itself, lgpio first (the one that
    drives every Pi, the Pi 5 included), then RPi.GPIO, pigpio and its own: each one it
    passes over is logged in a line, and none at all is an error saying what to do."""
    with warnings.catch_warnings(record=True) as passed:
        warnings.simplefilter("always", PinFactoryFallback)
        try:
            return _build_devices(configs, pin_factory)
        except BadPinFactory as error:  # no GPIO here: say what to do, not a traceback
            tried = "; ".join(_fallback(w.message) for w in passed
                              if issubclass(w.category, PinFactoryFallback))
            raise DeviceError(
                "cannot drive the GPIO pins (%s%s); on a Raspberry Pi, install python3-lgpio "
                "(see the README's install section); on a machine that is not a Pi, set "
                "simulate = true in [agent] or pass --simulate"
                % (error, ": " + tried if tried else "")) from None
        finally:
            for warning in passed:
                if issubclass(warning.category, PinFactoryFallback):
                    log.info("gpiozero: %s", _fallback(warning.message))
                else:  # gpiozero's other warnings are worth hearing too
                    log.warning("gpiozero: %s", warning.message)


def _fallback(message):
    """"Falling back from lgpio: No module named 'lgpio'" -> "lgpio: No module named..."."""
    return str(message).replace("Falling back from ", "")


# The keys that decide how a device is wired: a change to one of them builds the device
# again on reload; the others (notify, reply, pulse, credentials...) apply in place.
_WIRING = {
    "door": ("pin", "pull_up", "active_state", "bounce_time", "open_level"),
    "doorbell": ("pin", "pull_up", "bounce_time"),
    "light": ("pin", "dimmable"),
    "relay": ("pin", "active_high"),
    "intercom": (),
    "camera": (),
}


def _build_devices(configs, pin_factory):
    devices = {}
    for config in configs:
        device = build_device(config, pin_factory)
        if device is not None:
            devices[config.name] = device
    return devices


def build_device(config, pin_factory, state=None):
    """The device of one [[devices]] entry (None for a type not built yet). `state`, the
    status() of the device it replaces on reload, sets where an output starts instead of
    `initial`: a light that was on stays on."""
    kind = config.type
    if kind == "door":
        return DoorSensor(
            config.name, config.pin, pin_factory, pull_up=config.pull_up,
            active_state=config.active_state, bounce_time=config.bounce_time,
            open_level=config.open_level,
        )
    if kind == "doorbell":
        return Doorbell(config.name, config.pin, pin_factory, pull_up=config.pull_up,
                        bounce_time=config.bounce_time)
    initial = config.initial if hasattr(config, "initial") else None
    if state is not None and state.get("state") in ("on", "off"):
        initial = state["state"]
    if kind == "light":
        brightness = state.get("brightness") if state is not None else None
        return Light(config.name, config.pin, pin_factory, config.dimmable, initial,
                     brightness)
    if kind == "relay":
        return Relay(config.name, config.pin, pin_factory, config.active_high,
                     config.pulse, initial)
    if kind == "intercom":
        return Intercom(config.name, config.audio, config.strike)
    if kind == "camera":
        return Camera(config.name, config.source)
    raise ValueError("no device of type %r" % kind)


def rewired(old, new):
    """Whether a reloaded [[devices]] entry needs its device built again."""
    return old.type != new.type or any(getattr(old, key) != getattr(new, key)
                                       for key in _WIRING.get(new.type, ()))


def reconfigure(device, config):
    """Apply a reloaded entry's settings that need no rewiring."""
    if device.type == "relay":
        device.pulse_time = config.pulse
    elif device.type == "intercom":
        device.audio = config.audio
        device.strike = config.strike
