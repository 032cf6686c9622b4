"""What every device has: a name, a type, a state, and a listener for changes."""

from datetime import UTC, datetime

from ..errors import ApplianceError


class DeviceError(ApplianceError):
    """A device cannot do what was asked (unknown simulated state, no such input)."""


class Device:
    type = "device"

    def __init__(self, name):
        self.name = name
        self.on_change = None  # called as on_change(device, event) on gpiozero's thread
        self.seq = 0  # one more per reported event: the first event is 1
        self.changed = None  # when the last event was reported: ISO 8601, UTC, ms

    @property
    def state(self):
        raise NotImplementedError

    def status(self):
        """The device as `appliance status --json` shows it."""
        return {"type": self.type, "state": self.state}

    def simulate(self, state):
        """Drive a simulated input (`appliance sim NAME STATE`)."""
        raise DeviceError("%s (%s) has no input to simulate" % (self.name, self.type))

    def follow(self, previous):
        """Carry on from the device this one replaces on a config reload (`previous` is
        its last status()): the same seq and time of change, and an event when the state
        reads differently now (a door rewired with another open_level)."""
        self.seq = previous.get("seq") or 0
        self.changed = previous.get("changed")
        if self.state != previous.get("state"):
            self._changed(self.state)

    def _changed(self, event):
        """Count and stamp `event`, then tell the listener. A device that reports from more
        than one thread holds its own lock around this call, so `seq` and `changed`, read
        inside on_change, belong to this very event."""
        self.seq += 1
        self.changed = datetime.now(UTC).isoformat(timespec="milliseconds")
        if self.on_change is not None:
            self.on_change(self, event)

    def close(self):
        pass
