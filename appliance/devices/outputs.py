"""Outputs: lights (optionally dimmable) and relays (optionally pulsed, for door strikes)."""

from gpiozero import LED, PWMLED, OutputDevice

from .base import Device


class Light(Device):
    type = "light"

    def __init__(self, name, pin, pin_factory, dimmable=False, initial="off"):
        super().__init__(name)
        self.dimmable = dimmable
        on = initial == "on"
        if dimmable:
            self.output = PWMLED(pin, initial_value=1.0 if on else 0.0, pin_factory=pin_factory)
        else:
            self.output = LED(pin, initial_value=on, pin_factory=pin_factory)

    @property
    def state(self):
        return "on" if self.output.value else "off"

    @property
    def brightness(self):
        return round(float(self.output.value) * 100)

    def status(self):
        return {"type": self.type, "state": self.state, "brightness": self.brightness}

    def close(self):
        self.output.close()


class Relay(Device):
    type = "relay"

    def __init__(self, name, pin, pin_factory, active_high=True, pulse=None, initial="off"):
        super().__init__(name)
        self.pulse_time = pulse
        self.output = OutputDevice(
            pin, active_high=active_high, initial_value=initial == "on",
            pin_factory=pin_factory,
        )

    @property
    def state(self):
        return "on" if self.output.value else "off"

    def close(self):
        self.output.close()


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
