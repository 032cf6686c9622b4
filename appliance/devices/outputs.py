"""Outputs: lights (optionally dimmable) and relays (optionally pulsed, for door strikes).

`apply(command)` carries out a Command of the command language (commands.py) and returns
the status after it; a change is reported like any device event (`on_change`), so that
watchers and MQTT hear of it. What a device cannot do raises DeviceError.
"""

import threading

from gpiozero import LED, PWMLED, OutputDevice

from .base import Device, DeviceError


class Output(Device):
    """What lights and relays share: switching, and reporting what changed."""

    def __init__(self, name):
        super().__init__(name)
        self._lock = threading.RLock()
        self._pulse = None  # the timer that ends a pulse

    @property
    def state(self):
        return "on" if self.output.value else "off"

    def status(self):
        return {"type": self.type, "state": self.state, "changed": self.changed,
                "seq": self.seq}

    def apply(self, command):
        with self._lock:
            action = command.action
            if action == "status":
                return self.status()
            if action == "toggle":
                action = "off" if self.output.value else "on"
            before = self.status()
            self._cancel_pulse()
            self._do(action, command.value)
            after = self.status()
            if (after["state"], after.get("brightness")) != (before["state"],
                                                            before.get("brightness")):
                self._changed(after["state"])
                after = self.status()
            return after

    def _do(self, action, value):
        if action == "on":
            self.output.on()
        elif action == "off":
            self.output.off()
        else:
            raise DeviceError("%s (%s) cannot %s" % (self.name, self.type, action))

    @property
    def pulsing(self):
        """True while a pulse keeps the output on."""
        return self._pulse is not None

    def _cancel_pulse(self):
        if self._pulse is not None:
            self._pulse.cancel()
            self._pulse = None

    def _end_pulse(self):
        with self._lock:
            self._pulse = None
            if self.output.value:
                self.output.off()
                self._changed("off")

    def close(self):
        with self._lock:
            self._cancel_pulse()
        self.output.close()


class Light(Output):
    type = "light"

    def __init__(self, name, pin, pin_factory, dimmable=False, initial="off", brightness=None):
        """`brightness` (0-100), with `initial` "on", starts a dimmable light dimmed."""
        super().__init__(name)
        self.dimmable = dimmable
        on = initial == "on"
        if dimmable:
            level = (1.0 if brightness is None else brightness / 100.0) if on else 0.0
            self.output = PWMLED(pin, initial_value=level, pin_factory=pin_factory)
        else:
            self.output = LED(pin, initial_value=on, pin_factory=pin_factory)

    @property
    def brightness(self):
        return round(float(self.output.value) * 100)

    def status(self):
        return dict(super().status(), brightness=self.brightness)

    def _do(self, action, value):
        if action == "dim":
            if not self.dimmable:
                raise DeviceError("%s is not dimmable; use on or off" % self.name)
            self.output.value = value / 100.0
        elif action == "on" and self.dimmable:
            self.output.value = 1.0
        else:
            super()._do(action, value)


class Relay(Output):
    type = "relay"

    def __init__(self, name, pin, pin_factory, active_high=True, pulse=None, initial="off"):
        super().__init__(name)
        self.pulse_time = pulse
        self.output = OutputDevice(
            pin, active_high=active_high, initial_value=initial == "on",
            pin_factory=pin_factory,
        )

    def _do(self, action, value):
        if action == "pulse":
            seconds = value or self.pulse_time
            if not seconds:
                raise DeviceError("%s has no pulse time; use pulse SECONDS" % self.name)
            self.output.on()
            self._pulse = threading.Timer(seconds, self._end_pulse)
            self._pulse.daemon = True
            self._pulse.start()
        else:
            super()._do(action, value)


class Intercom(Device):
    """The intercom's audio side arrives with calls; for now it reports its settings."""

    type = "intercom"

    def __init__(self, name, audio="default", strike=None):
        super().__init__(name)
        self.audio = audio
        self.strike = strike

    @property
    def state(self):
        return "idle"


class Camera(Device):
    """A camera's state for status and MQTT: "streaming" while calls watch it, else
    "idle". Its pictures are the calls' (media/camera.py)."""

    type = "camera"

    def __init__(self, name, source):
        super().__init__(name)
        self.source = source
        self.viewers = 0

    @property
    def state(self):
        return "streaming" if self.viewers else "idle"

    def watched(self, viewers):
        """`viewers` calls watch it now: an event when that starts or ends its stream."""
        before = self.state
        self.viewers = viewers
        if self.state != before:
            self._changed(self.state)

    def status(self):
        return {"type": self.type, "state": self.state, "viewers": self.viewers,
                "source": self.source}
