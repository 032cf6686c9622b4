"""The board: a clock that never wraps, the devices on machine.Pin, Wi-Fi and the watchdog.

Nothing here speaks SIP; agent.py does, through the shared core. Every device has
`status()` (the same object the Pi agent's devices report), and `poll(now)`, called by
the agent's loop, which returns True when the device changed (a debounced door edge, the
end of a relay's pulse). Outputs have `apply(command, now)` for the command language.
"""

import time

import machine

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython (firmware/run_host.py): a millisecond clock of the same kind
    def ticks_ms():
        return int(time.monotonic() * 1000) & 0x3FFFFFFF

    def ticks_diff(new, old):
        return ((new - old + 0x20000000) & 0x3FFFFFFF) - 0x20000000


class Clock:
    """Milliseconds since start that keep growing: time.ticks_ms() wraps (every 2**30 ms,
    12.4 days, on most ports), so each reading adds ticks_diff() from the last one. Read
    it at least once per wrap period (the agent's loop does, many times a second)."""

    def __init__(self, ticks=ticks_ms, diff=ticks_diff):
        self._ticks = ticks
        self._diff = diff
        self._last = ticks()
        self._now = 0

    def now(self):
        reading = self._ticks()
        self._now += max(0, self._diff(reading, self._last))
        self._last = reading
        return self._now


def wall_time():
    """The UTC time as ISO 8601 ("2026-11-21T10:32:05+00:00"), or None while the board's
    clock is unset (before NTP): a door's `changed` is then left out."""
    year, month, day, hour, minute, second = time.gmtime()[:6]
    if year < 2024:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d+00:00" % (year, month, day, hour, minute, second)


class Device:
    type = None

    def __init__(self, name, wall=wall_time):
        self.name = name
        self.seq = 0
        self.changed = None
        self._wall = wall

    @property
    def state(self):
        raise NotImplementedError

    def status(self):
        status = {"type": self.type, "state": self.state, "seq": self.seq}
        if self.changed is not None:
            status["changed"] = self.changed
        return status

    def poll(self, now):
        return False

    def _moved(self):
        self.seq += 1
        self.changed = self._wall()


class Door(Device):
    """A reed switch on an input pin. The pin's interrupt only notes that an edge came;
    poll() reads the level once it has been still for `bounce_time` and reports a state
    that differs from the last one reported, so a bouncing contact makes one event."""

    type = "door"

    def __init__(self, name, pin, pull_up=True, open_level="high", bounce_time=0.05,
                 wall=wall_time):
        Device.__init__(self, name, wall)
        pull = machine.Pin.PULL_UP if pull_up else machine.Pin.PULL_DOWN
        self.pin = machine.Pin(pin, machine.Pin.IN, pull)
        self.open_value = 1 if open_level == "high" else 0
        self.bounce = int(bounce_time * 1000)
        self.reported = self._read()
        self._edge = False
        self._since = None  # when the last edge was seen (ms)
        self.pin.irq(handler=self._irq, trigger=machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)

    def _irq(self, pin):
        self._edge = True  # all an interrupt handler may do: no allocation

    def _read(self):
        return "open" if self.pin.value() == self.open_value else "closed"

    @property
    def state(self):
        return self.reported

    def poll(self, now):
        if self._edge:
            self._edge = False
            self._since = now
            return False
        if self._since is None or now - self._since < self.bounce:
            return False
        self._since = None
        level = self._read()
        if level == self.reported:
            return False
        self.reported = level
        self._moved()
        return True

    def close(self):
        self.pin.irq(handler=None)


class Output(Device):
    """A light or relay on an output pin; a dimmable light drives PWM (duty from 0 to
    65535). `pulse` keeps a relay on for some seconds, ended by poll()."""

    def __init__(self, name, pin, active_high=True, initial="off", dimmable=False, pulse=None,
                 wall=wall_time):
        Device.__init__(self, name, wall)
        self.active_high = active_high
        self.dimmable = dimmable
        self.pulse_time = pulse
        self.level = 100 if initial == "on" else 0  # percent
        self.pin = machine.Pin(pin, machine.Pin.OUT)
        self.pwm = machine.PWM(self.pin, freq=1000) if dimmable else None
        self._pulse_end = None  # ms
        self._drive()

    @property
    def state(self):
        return "on" if self.level else "off"

    @property
    def pulsing(self):
        return self._pulse_end is not None

    def status(self):
        status = Device.status(self)
        if self.dimmable:
            status["brightness"] = self.level
        return status

    def apply(self, command, now):
        """Carry out a Command; returns the status after it. Raises ValueError for what
        this output cannot do (the agent answers 400 with the text)."""
        action = command.action
        if action == "status":
            return self.status()
        if action == "toggle":
            action = "off" if self.level else "on"
        if action == "dim" and not self.dimmable:
            raise ValueError("%s is not dimmable; use on or off" % self.name)
        if action == "pulse":
            if self.type != "relay":
                raise ValueError("%s (%s) cannot pulse" % (self.name, self.type))
            seconds = command.value or self.pulse_time
            if not seconds:
                raise ValueError("%s has no pulse time; use pulse SECONDS" % self.name)
        level = {"on": 100, "off": 0, "pulse": 100}.get(action, command.value)
        self._pulse_end = now + int(seconds * 1000) if action == "pulse" else None
        self._set(level)
        return self.status()

    def poll(self, now):
        if self._pulse_end is None or now < self._pulse_end:
            return False
        self._pulse_end = None
        return self._set(0)

    def _set(self, level):
        if level == self.level:
            return False
        self.level = level
        self._drive()
        self._moved()
        return True

    def _drive(self):
        if self.pwm is not None:
            duty = self.level * 65535 // 100
            self.pwm.duty_u16(duty if self.active_high else 65535 - duty)
        else:
            self.pin.value(1 if bool(self.level) == self.active_high else 0)

    def close(self):
        self._pulse_end = None
        if self.pwm is not None:
            self.pwm.deinit()


class Light(Output):
    type = "light"


class Relay(Output):
    type = "relay"


def build_devices(entries, wall=wall_time):
    """The devices of the settings' `devices` list, by name."""
    devices = {}
    for entry in entries:
        if entry["type"] == "door":
            device = Door(entry["name"], entry["pin"], entry["pull_up"], entry["open_level"],
                          entry["bounce_time"], wall)
        else:
            kind = Light if entry["type"] == "light" else Relay
            device = kind(entry["name"], entry["pin"], entry["active_high"], entry["initial"],
                          entry["dimmable"], entry["pulse"], wall)
        devices[entry["name"]] = device
    return devices


# -- Wi-Fi -------------------------------------------------------------------------------

WIFI_FIRST_WAIT = 1000  # ms before the first retry of a lost or failed join
WIFI_MAX_WAIT = 60000


class Wifi:
    """Joins the network in settings["wifi"] and keeps it joined: `check(now)` (called
    every second or so) returns the board's address, or None while there is none; a lost
    link is joined again after 1, 2, 4 ... 60 s."""

    def __init__(self, settings, network, log=print):
        self.settings = settings
        self.network = network
        self.log = log
        self.wlan = network.WLAN(network.STA_IF)
        self.address = None
        self.failures = 0
        self._retry_at = 0
        self._joining_since = None

    def check(self, now):
        wlan = self.wlan
        if wlan.isconnected():
            self._joining_since = None
            self.failures = 0
            address = wlan.ifconfig()[0]
            if address != self.address:
                self.log("wifi: joined %s as %s" % (self.settings["ssid"], address))
                self.address = address
            return address
        if self.address is not None:
            self.log("wifi: link to %s lost" % self.settings["ssid"])
            self.address = None
            self._retry_at = now + WIFI_FIRST_WAIT
        if self._joining_since is not None and now - self._joining_since < 15000:
            return None  # a join in progress
        if self._joining_since is not None:
            self.failures += 1
            wait = min(WIFI_MAX_WAIT, WIFI_FIRST_WAIT << min(self.failures, 6))
            self.log("wifi: cannot join %s (status %s); again in %d s"
                     % (self.settings["ssid"], wlan.status(), wait // 1000))
            self._joining_since = None
            self._retry_at = now + wait
        if now < self._retry_at:
            return None
        wlan.active(True)
        if self.settings.get("hostname"):
            try:
                self.network.hostname(self.settings["hostname"])
            except (AttributeError, OSError, ValueError):
                pass  # a port without it
        wlan.connect(self.settings["ssid"], self.settings["password"])
        self._joining_since = now
        return None


class Watchdog:
    """machine.WDT when `seconds` > 0 (8 at most: the RP2040's limit); feed() it from the
    loop, and a hung loop resets the board."""

    def __init__(self, seconds):
        self.wdt = machine.WDT(timeout=seconds * 1000) if seconds else None

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()
