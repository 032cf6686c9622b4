"""The door sensor and the doorbell settle their edges: one event per burst, the last state wins.

The pins are gpiozero's MockPins, driven from the test thread; gpiozero calls the devices
back on that thread and each device settles on its own worker, so every wait polls with a
deadline. The windows are long, so that back-to-back drives land well inside them.
"""

import itertools
import threading
import time
from datetime import datetime

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.devices.base import DeviceError
from appliance.devices.inputs import (
    DOOR_BOUNCE_TIME,
    DOORBELL_BOUNCE_TIME,
    Doorbell,
    DoorSensor,
)

WINDOW = 0.2  # seconds: the settle window of the devices under test
SPACED_WINDOW = 0.5  # ... where the test spaces its edges in time
WAIT = 5.0  # seconds: the most any wait for a settle may take


def wait_for(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def quiet_for(seconds):
    """Let `seconds` pass, for asserting that nothing happened in them."""
    threading.Event().wait(seconds)


class Listener:
    """Records each event with the device's status as seen inside the callback."""

    def __init__(self, device):
        self.events = []
        self.times = []
        device.on_change = self

    def __call__(self, device, event):
        self.times.append(time.monotonic())
        self.events.append((event, device.status()))

    @property
    def names(self):
        return [event for event, _ in self.events]


@pytest.fixture
def devices():
    """Builds devices on a fresh MockFactory and closes them after the test."""
    factory = MockFactory()
    made = []

    def make(kind, pin, **options):
        device = kind(kind.type, pin, factory, **options)
        made.append(device)
        return device

    yield make
    for device in made:
        device.close()
    factory.reset()


def settled(device):
    assert wait_for(lambda: not device.settling), "%s still settling" % device.name


def burst(pin, levels):
    for level in levels:
        (pin.drive_high if level else pin.drive_low)()


def spaced_edges(pin, plan):
    """Drive `pin` to each level at its offset (in SPACED_WINDOWs); the times it happened."""
    start = time.monotonic()
    times = []
    for offset, level in plan:
        time.sleep(max(0.0, start + offset * SPACED_WINDOW - time.monotonic()))
        times.append(time.monotonic())
        burst(pin, [level])
    return times


def max_gap(times):
    return max(later - earlier for earlier, later in itertools.pairwise(times))


# -- the door ---------------------------------------------------------------------------------


def test_a_bouncing_reed_switch_gives_one_event_with_the_final_state(devices):
    door = devices(DoorSensor, 17, bounce_time=WINDOW)  # pull-up: closed is low
    heard = Listener(door)
    assert door.state == "closed"
    burst(door.input.pin, [1, 0, 1, 0, 1])  # closed -> open, chattering
    assert door.settling and door.state == "closed"  # mid-window: still the settled state
    settled(door)
    assert heard.names == ["open"]
    assert door.state == "open" and door.status()["state"] == "open"


def test_a_burst_that_ends_where_it_began_gives_no_event(devices):
    door = devices(DoorSensor, 17, bounce_time=WINDOW)
    heard = Listener(door)
    burst(door.input.pin, [1, 0, 1, 0])
    settled(door)
    assert heard.events == []
    assert door.state == "closed" and door.seq == 0


def test_the_last_edge_of_a_window_is_not_lost(devices):
    door = devices(DoorSensor, 17, bounce_time=SPACED_WINDOW)
    heard = Listener(door)
    pin = door.input.pin
    # gpiozero's bounce_time reports the first edge and ignores the ones after it in its
    # window: for this burst it would say "open" and leave it there, with the door shut.
    edges = spaced_edges(pin, [(0.0, 1), (0.8, 0)])  # open; shut again, late in the window
    settled(door)
    assert max_gap(edges) < SPACED_WINDOW, "the test thread stalled; timings do not hold"
    assert heard.events == [] and door.state == "closed"

    # Edges that keep coming restart the window, past the end of the first edge's: the door
    # is reported once, with the state of the last edge, a full window after it.
    edges = spaced_edges(pin, [(0.0, 1), (0.6, 0), (1.2, 1)])
    settled(door)
    assert max_gap(edges) < SPACED_WINDOW, "the test thread stalled; timings do not hold"
    assert heard.names == ["open"] and door.state == "open"
    assert heard.times[0] - edges[-1] >= 0.95 * SPACED_WINDOW


def test_state_is_the_settled_level_not_the_raw_pin(devices):
    door = devices(DoorSensor, 17, bounce_time=WINDOW)
    burst(door.input.pin, [1])
    assert door.state == "closed" and not door.input.is_active  # raw pin already open
    settled(door)
    assert door.state == "open"


def test_seq_and_changed_grow_with_each_event(devices):
    door = devices(DoorSensor, 17, bounce_time=WINDOW)
    heard = Listener(door)
    assert door.status() == {"type": "door", "state": "closed", "changed": None, "seq": 0}

    door.simulate("open")  # a simulated pin settles at once
    first = door.changed
    stamp = datetime.fromisoformat(first)
    assert stamp.tzinfo is not None and abs(time.time() - stamp.timestamp()) < WAIT
    assert door.status() == {"type": "door", "state": "open", "changed": first, "seq": 1}

    burst(door.input.pin, [0, 1, 0])  # bounces shut
    settled(door)
    assert door.seq == 2 and datetime.fromisoformat(door.changed) >= stamp
    door.simulate("open")
    assert door.seq == 3
    # Inside the callback the status belongs to that very event.
    assert [(event, status["state"], status["seq"]) for event, status in heard.events] == [
        ("open", "open", 1), ("closed", "closed", 2), ("open", "open", 3),
    ]
    assert heard.events[1][1]["changed"] >= first


def test_simulate_settles_at_once_and_sets_nothing_pending(devices):
    door = devices(DoorSensor, 17)
    heard = Listener(door)
    assert door.simulate("open") is None
    assert heard.names == ["open"] and door.state == "open" and not door.settling
    door.simulate("open")  # already open: no event
    assert heard.names == ["open"]
    with pytest.raises(DeviceError) as bad:
        door.simulate("ajar")
    assert str(bad.value) == "a door is 'open' or 'closed', not 'ajar'"


def test_close_cancels_a_pending_settle(devices):
    door = devices(DoorSensor, 17, bounce_time=WINDOW)
    heard = Listener(door)
    burst(door.input.pin, [1, 0, 1])
    assert door.settling
    door.close()
    assert not door.settling
    assert "settle-door" not in [thread.name for thread in threading.enumerate()]
    quiet_for(2 * WINDOW)
    assert heard.events == [] and door.seq == 0
    with pytest.raises(DeviceError):
        door.simulate("closed")


def test_gpiozero_is_given_no_bounce_time_and_defaults_apply(devices):
    door = devices(DoorSensor, 17)
    bell = devices(Doorbell, 27)
    assert door.bounce_time == DOOR_BOUNCE_TIME == 0.05
    assert bell.bounce_time == DOORBELL_BOUNCE_TIME == 0.03
    assert door.input.pin.bounce is None and bell.button.pin.bounce is None
    assert devices(DoorSensor, 22, bounce_time=0.2).bounce_time == 0.2


def test_open_level_names_the_level_of_an_open_door(devices):
    # A pull-up and a switch whose contacts close when the door opens: open is low.
    door = devices(DoorSensor, 17, bounce_time=WINDOW, open_level="low")
    heard = Listener(door)
    pin = door.input.pin
    assert door.state == "closed" and pin.state  # the simulated door starts shut: high
    burst(pin, [0, 1, 0])
    settled(door)
    assert heard.names == ["open"] and door.state == "open"
    door.simulate("closed")
    assert pin.state and door.state == "closed"
    with pytest.raises(ValueError):
        DoorSensor("door", 5, MockFactory(), open_level="up")


def test_a_pull_down_door_is_closed_high(devices):
    door = devices(DoorSensor, 17, pull_up=False, bounce_time=WINDOW)
    assert door.state == "closed" and door.input.pin.state
    heard = Listener(door)
    burst(door.input.pin, [0, 1, 0])
    settled(door)
    assert heard.names == ["open"]


# -- the doorbell -----------------------------------------------------------------------------


def test_a_bouncing_press_is_one_press(devices):
    bell = devices(Doorbell, 27, bounce_time=WINDOW)  # pull-up: pressed is low
    heard = Listener(bell)
    pin = bell.button.pin
    assert bell.status() == {"type": "doorbell", "state": "idle", "changed": None, "seq": 0,
                             "presses": 0}
    burst(pin, [0, 1, 0, 1, 0])
    settled(bell)
    assert heard.names == ["press"] and bell.presses == 1 and bell.state == "pressed"
    burst(pin, [1, 0, 1])  # the release bounces too, and is no event
    settled(bell)
    assert heard.names == ["press"] and bell.presses == 1 and bell.state == "idle"

    # A second press, more than a window after the first: a second event.
    burst(pin, [0, 1, 0])
    settled(bell)
    burst(pin, [1])
    settled(bell)
    assert heard.names == ["press", "press"] and bell.presses == 2 and bell.seq == 2
    assert bell.status()["presses"] == 2 and bell.state == "idle"


def test_a_press_shorter_than_the_window_does_not_count(devices):
    bell = devices(Doorbell, 27, bounce_time=WINDOW)
    heard = Listener(bell)
    burst(bell.button.pin, [0, 1])
    settled(bell)
    assert heard.events == [] and bell.presses == 0


def test_a_simulated_press_is_counted_and_let_go(devices):
    bell = devices(Doorbell, 27)
    heard = Listener(bell)
    bell.simulate("press")
    assert heard.names == ["press"] and bell.presses == 1 and bell.state == "pressed"
    assert wait_for(lambda: bell.state == "idle" and not bell.settling)
    assert heard.names == ["press"] and bell.seq == 1
    with pytest.raises(DeviceError) as bad:
        bell.simulate("ring")
    assert str(bad.value) == "a doorbell takes 'press', not 'ring'"


def test_closing_a_doorbell_cancels_its_release(devices):
    bell = devices(Doorbell, 27)
    bell.simulate("press")
    bell.close()
    quiet_for(0.3)  # past the 0.1 s release
    assert bell.presses == 1 and bell.state == "pressed"
