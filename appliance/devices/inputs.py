"""Inputs: a door's reed switch and the doorbell's button."""

import threading

from gpiozero import Button, DigitalInputDevice

from .base import Device, DeviceError


class DoorSensor(Device):
    """A reed switch: with `pull_up` (the default) a closed door pulls the pin low."""

    type = "door"

    def __init__(self, name, pin, pin_factory, pull_up=True, active_state=None,
                 bounce_time=None):
        super().__init__(name)
        self.input = DigitalInputDevice(
            pin, pull_up=pull_up if active_state is None else None,
            active_state=active_state, bounce_time=bounce_time, pin_factory=pin_factory,
        )
        # The pin level that means "closed": low with a pull-up, high with a pull-down.
        self.closed_level = (not pull_up) if active_state is None else active_state
        self.input.when_activated = lambda: self._changed("closed")
        self.input.when_deactivated = lambda: self._changed("open")
        if pin_factory is not None and hasattr(self.input.pin, "drive_high"):
            self.simulate("closed")  # a simulated door starts shut

    @property
    def state(self):
        return "closed" if self.input.is_active else "open"

    def simulate(self, state):
        pin = self.input.pin
        if state == "closed":
            level = self.closed_level
        elif state == "open":
            level = not self.closed_level
        else:
            raise DeviceError("a door is 'open' or 'closed', not %r" % state)
        if level:
            pin.drive_high()
        else:
            pin.drive_low()

    def close(self):
        self.input.close()


class Doorbell(Device):
    """A push button; each press is an event."""

    type = "doorbell"

    def __init__(self, name, pin, pin_factory, pull_up=True, bounce_time=None):
        super().__init__(name)
        self.button = Button(pin, pull_up=pull_up, bounce_time=bounce_time,
                             pin_factory=pin_factory)
        self.pressed_level = not pull_up
        self.presses = 0
        self.button.when_pressed = self._pressed

    def _pressed(self):
        self.presses += 1
        self._changed("press")

    @property
    def state(self):
        return "pressed" if self.button.is_pressed else "idle"

    def status(self):
        return {"type": self.type, "state": self.state, "presses": self.presses}

    def simulate(self, state):
        if state != "press":
            raise DeviceError("a doorbell takes 'press', not %r" % state)
        pin = self.button.pin
        pressed = self.pressed_level
        (pin.drive_high if pressed else pin.drive_low)()
        # Let go after a human-length press, off the caller's thread.
        timer = threading.Timer(0.1, pin.drive_low if pressed else pin.drive_high)
        timer.daemon = True
        timer.start()

    def close(self):
        self.button.close()
