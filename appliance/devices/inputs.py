"""Inputs: a door's reed switch and the doorbell's button.

Both debounce here rather than through gpiozero's `bounce_time`, which ignores the edges
that follow a reported one inside its window: the last edge of a bounce burst can be the
one ignored, and a shut door then reads "open". Here every edge (re)starts a settle window
of `bounce_time` seconds; when the pin has been still that long its level is read, and a
change is reported only if it differs from the last reported level. A burst is one event
carrying its final state, or none when it ends where it began: the last state always wins.
"""

import threading
import time

from gpiozero import Button, DigitalInputDevice

from .base import Device, DeviceError

# Settle times when the config gives none. A reed switch chatters for a few ms, longer when
# a door is slammed or rattles in its frame; 50 ms covers that and is still far quicker than
# anyone goes through a door. A push button bounces for 1-20 ms; 30 ms covers it and stays
# well under the shortest deliberate press (~100 ms): a press shorter than the window does
# not count.
DOOR_BOUNCE_TIME = 0.05
DOORBELL_BOUNCE_TIME = 0.03


class SettledInput(Device):
    """A gpiozero input whose level counts once it has held for `bounce_time` seconds.

    Edges arrive on gpiozero's thread (a mock pin's: whoever drives it) and only move a
    deadline; one worker thread per input sleeps until it, reads the pin and reports. (A
    timer per edge would start a thread per edge: a chattering or floating pin makes
    thousands.) One lock guards the deadline and the settled level and is held while
    reporting, so listeners hear events in `seq` order, with `seq`, `changed` and `state`
    those of the event. A listener must return quickly: the agent's only hops onto its loop.

    `state` is the settled level, the one the last event reported: a pin read mid-bounce is
    no state to act on, and status() then never contradicts the last event.
    """

    def __init__(self, name, bounce_time):
        super().__init__(name)
        self.bounce_time = bounce_time
        self.active_level = None  # the pin level (True: high) of a closed door, a pressed button
        self._input = None
        self._settled = None  # closed / pressed, as last reported
        self._deadline = None  # time.monotonic() when the pin will have held for bounce_time
        self._closed = False
        self._wake = threading.Condition(threading.RLock())  # re-entrant: for listeners
        self._worker = None

    def _watch(self, device):
        """Take `device`'s present level as settled (no event) and settle its edges."""
        self._input = device
        self._settled = self._read()
        self._worker = threading.Thread(target=self._settle, name="settle-%s" % self.name,
                                        daemon=True)
        self._worker.start()
        device.when_activated = self._edge
        device.when_deactivated = self._edge

    def _read(self):
        """True when the pin is at the active level now."""
        return bool(self._input.pin.state) == self.active_level

    def _report(self, active):
        """The settled level changed to `active`: report what that means. Lock held."""
        raise NotImplementedError

    @property
    def settling(self):
        """True while an edge waits out its bounce window."""
        return self._deadline is not None

    def status(self):
        return dict(super().status(), changed=self.changed, seq=self.seq)

    def _edge(self):
        with self._wake:
            if self._closed:
                return
            idle = self._deadline is None
            self._deadline = time.monotonic() + self.bounce_time
            if idle:  # else the worker, waking at the old deadline, waits on to this one
                self._wake.notify()

    def _settle(self):
        with self._wake:
            while not self._closed:
                if self._deadline is None:
                    self._wake.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                self._deadline = None
                self._update()

    def _update(self):
        active = self._read()
        if active != self._settled:
            self._settled = active
            self._report(active)

    def _drive(self, active):
        """Drive a simulated pin and settle at once: a simulated pin has no contacts to
        bounce, and `appliance sim` answers with the new state."""
        with self._wake:
            if self._closed:
                raise DeviceError("%s (%s) is closed" % (self.name, self.type))
            pin = self._input.pin
            high = active == self.active_level
            (pin.drive_high if high else pin.drive_low)()  # its edge sets a deadline ...
            self._deadline = None  # ... which this read makes moot
            self._update()

    def close(self):
        with self._wake:
            self._closed = True
            self._deadline = None
            self._wake.notify()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        # Outside the lock: closing may wait for gpiozero's callback thread, which may be
        # waiting for the lock in _edge.
        if self._input is not None:
            self._input.close()


class DoorSensor(SettledInput):
    """A reed switch: with `pull_up` (the default) a closed door pulls the pin low.

    `open_level` ("high" or "low") names the level of an open door outright, for a switch
    whose contacts close when the door opens; by default a closed door is the active level
    (low with a pull-up, high with a pull-down, or as `active_state` says).
    """

    type = "door"

    def __init__(self, name, pin, pin_factory, pull_up=True, active_state=None,
                 bounce_time=None, open_level=None):
        super().__init__(name, DOOR_BOUNCE_TIME if bounce_time is None else bounce_time)
        if open_level not in (None, "high", "low"):
            raise ValueError("open_level is 'high' or 'low', not %r" % (open_level,))
        # No bounce_time for gpiozero: the settle window debounces (module docstring).
        self.input = DigitalInputDevice(
            pin, pull_up=pull_up if active_state is None else None,
            active_state=active_state, pin_factory=pin_factory,
        )
        if open_level is not None:
            self.active_level = open_level == "low"
        else:  # gpiozero's active level: low with a pull-up, high with a pull-down
            self.active_level = (not pull_up) if active_state is None else active_state
        pin_in = self.input.pin
        if pin_factory is not None and hasattr(pin_in, "drive_high"):
            # A simulated door starts shut.
            (pin_in.drive_high if self.active_level else pin_in.drive_low)()
        self._watch(self.input)

    def _report(self, closed):
        self._changed("closed" if closed else "open")

    @property
    def state(self):
        return "closed" if self._settled else "open"

    def simulate(self, state):
        if state not in ("open", "closed"):
            raise DeviceError("a door is 'open' or 'closed', not %r" % state)
        self._drive(state == "closed")


class Doorbell(SettledInput):
    """A push button; each settled press is one "press" event."""

    type = "doorbell"

    def __init__(self, name, pin, pin_factory, pull_up=True, bounce_time=None):
        super().__init__(name, DOORBELL_BOUNCE_TIME if bounce_time is None else bounce_time)
        self.button = Button(pin, pull_up=pull_up, pin_factory=pin_factory)
        self.active_level = not pull_up
        self.presses = 0
        self._release = None  # the timer that lets go of a simulated press
        self._watch(self.button)

    def _report(self, pressed):
        if pressed:  # a release settles the state quietly
            self.presses += 1
            self._changed("press")

    @property
    def state(self):
        return "pressed" if self._settled else "idle"

    def status(self):
        return dict(super().status(), presses=self.presses)

    def follow(self, previous):
        """A doorbell reports presses, not states: it carries on counting, quietly."""
        self.seq = previous.get("seq") or 0
        self.changed = previous.get("changed")
        self.presses = previous.get("presses") or 0

    def simulate(self, state):
        if state != "press":
            raise DeviceError("a doorbell takes 'press', not %r" % state)
        with self._wake:
            self._drive(True)
            # Let go after a human-length press, off the caller's thread.
            if self._release is not None:
                self._release.cancel()
            self._release = threading.Timer(0.1, self._let_go)
            self._release.daemon = True
            self._release.start()

    def _let_go(self):
        with self._wake:
            if not self._closed and threading.current_thread() is self._release:
                self._release = None
                self._drive(False)

    def close(self):
        with self._wake:
            if self._release is not None:
                self._release.cancel()
                self._release = None
        super().close()
