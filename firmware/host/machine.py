"""A simulated `machine` module, for running the firmware off a board: on a PC
(firmware/run_host.py) and on the WebAssembly MicroPython of the tests.

Pins keep a level; `drive(level)` is the outside world moving an input (a reed switch),
and fires the pin's interrupt handler as the hardware would. Outputs report each change to
the functions in `watchers` (id, level: 0/1, or a PWM duty 0-65535 as a float share).
`levels` sets the level an input starts at, before it is made.
"""

watchers = []
pins = {}  # id -> the Pin made last for it
levels = {}  # id -> the level an input starts at (default: what its pull resistor gives)
feeds = [0]  # watchdog feeds


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self.level = levels.get(id, 1 if pull == Pin.PULL_UP else 0)
        if value is not None:
            self.level = value
        self.handler = None
        self.trigger = 0
        pins[id] = self

    def value(self, level=None):
        if level is None:
            return self.level
        level = 1 if level else 0
        if level != self.level:
            self.level = level
            _tell(self.id, level)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=12):
        self.handler = handler
        self.trigger = trigger

    def drive(self, level):
        """The outside world sets an input's level; a change fires the interrupt."""
        level = 1 if level else 0
        if level == self.level:
            return
        self.level = level
        edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
        if self.handler is not None and self.trigger & edge:
            self.handler(self)


class PWM:
    def __init__(self, pin, freq=1000, duty_u16=None):
        self.pin = pin
        self.frequency = freq
        self.duty = 0
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def duty_u16(self, duty=None):
        if duty is None:
            return self.duty
        if duty != self.duty:
            self.duty = duty
            _tell(self.pin.id, duty / 65535)
        return None

    def freq(self, value=None):
        if value is None:
            return self.frequency
        self.frequency = value
        return None

    def deinit(self):
        pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        feeds[0] += 1


def unique_id():
    return b"\x00\x01\x02\x03\x04\x05"


def reset():
    raise SystemExit("machine.reset()")


def _tell(id, level):
    for watcher in watchers:
        watcher(id, level)
