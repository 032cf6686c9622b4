"""Devices from configuration."""

from gpiozero.exc import BadPinFactory

from .base import DeviceError
from .inputs import Doorbell, DoorSensor
from .outputs import Intercom, Light, Relay


def pin_factory_for(simulate):
    """gpiozero's MockFactory when simulated (PWM-capable, for dimmable lights); else None,
    which lets gpiozero pick the board's own factory."""
    if not simulate:
        return None
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)


def build_devices(configs, pin_factory):
    """A dict name -> Device for the [[devices]] of a config, in config order."""
    try:
        return _build_devices(configs, pin_factory)
    except BadPinFactory as error:  # no GPIO here: say what to do, not a traceback
        raise DeviceError(
            "cannot drive the GPIO pins (%s); on a machine that is not a Raspberry Pi, set "
            "simulate = true in [agent] or pass --simulate" % error
        ) from None


def _build_devices(configs, pin_factory):
    devices = {}
    for config in configs:
        kind = config.type
        if kind == "door":
            device = DoorSensor(
                config.name, config.pin, pin_factory, pull_up=config.pull_up,
                active_state=config.active_state, bounce_time=config.bounce_time,
                open_level=config.open_level,
            )
        elif kind == "doorbell":
            device = Doorbell(config.name, config.pin, pin_factory, pull_up=config.pull_up,
                              bounce_time=config.bounce_time)
        elif kind == "light":
            device = Light(config.name, config.pin, pin_factory, config.dimmable,
                           config.initial)
        elif kind == "relay":
            device = Relay(config.name, config.pin, pin_factory, config.active_high,
                           config.pulse, config.initial)
        elif kind == "intercom":
            device = Intercom(config.name, config.audio, config.strike)
        else:
            continue  # cameras arrive with video
        devices[config.name] = device
    return devices
