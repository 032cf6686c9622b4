"""The board (firmware/board.py): the clock across a ticks_ms wrap, the devices on the
simulated pins, Wi-Fi's joins and backoff, the watchdog."""

import unittest

import board
import machine
import network
from board import WIFI_FIRST_WAIT, WIFI_MAX_WAIT, Clock, Door, Light, Relay, Watchdog, Wifi

from appliance.commands import Command

from .support import reset_pins

PERIOD = 2 ** 30  # where time.ticks_ms() wraps on most ports


class FakeTicks:
    """A ticks_ms() that starts near its wrap and moves only when told."""

    def __init__(self, start=PERIOD - 100):
        self.value = start

    def __call__(self):
        return self.value

    def advance(self, ms):
        self.value = (self.value + ms) % PERIOD


class TestClock(unittest.TestCase):
    def test_now_keeps_growing_across_the_wrap(self):
        ticks = FakeTicks()
        clock = Clock(ticks)
        self.assertEqual(clock.now(), 0)
        seen = []
        for _ in range(6):
            ticks.advance(40)
            seen.append(clock.now())
        self.assertEqual(seen, [40, 80, 120, 160, 200, 240])
        self.assertTrue(ticks() < 200)  # it did wrap

    def test_many_wraps_in_big_steps(self):
        ticks = FakeTicks(12345)
        clock = Clock(ticks)
        step = 2 ** 28 + 7  # under half the period: each step is told apart from going back
        last = clock.now()
        for count in range(1, 13):  # three wraps
            ticks.advance(step)
            now = clock.now()
            self.assertTrue(now > last)
            self.assertEqual(now, count * step)
            last = now

    def test_the_ticks_diff_of_the_board(self):
        self.assertEqual(board.ticks_diff(5, PERIOD - 5), 10)
        self.assertEqual(board.ticks_diff(PERIOD - 5, 5), -10)

    def test_a_reading_from_before_does_not_go_back(self):
        ticks = FakeTicks(1000)
        clock = Clock(ticks)
        ticks.advance(500)
        self.assertEqual(clock.now(), 500)
        ticks.value = 900  # a ticks_diff that comes out negative is ignored
        self.assertEqual(clock.now(), 500)


def moment():
    return "2026-11-21T10:32:05+00:00"


class TestDevices(unittest.TestCase):
    def setUp(self):
        self.moves = []
        reset_pins(self.moves)

    def test_a_door_reports_a_level_that_held_for_bounce_time(self):
        machine.levels[7] = 1
        door = Door("shed", 7, pull_up=False, open_level="low", bounce_time=0.1, wall=moment)
        self.assertEqual(door.status(), {"type": "door", "state": "closed", "seq": 0})
        pin = machine.pins[7]
        self.assertEqual((pin.mode, pin.pull), (machine.Pin.IN, machine.Pin.PULL_DOWN))
        pin.drive(0)
        self.assertFalse(door.poll(0))  # the edge is noted
        self.assertFalse(door.poll(99))
        self.assertTrue(door.poll(100))
        self.assertEqual(door.status(), {"type": "door", "state": "open", "seq": 1,
                                         "changed": moment()})
        self.assertFalse(door.poll(1000))
        door.close()
        pin.drive(1)
        self.assertFalse(door.poll(2000))
        self.assertFalse(door.poll(3000))  # no interrupt handler: nothing seen

    def test_a_light_dims_with_pwm_and_inverts_when_active_low(self):
        light = Light("porch", 2, active_high=False, dimmable=True, wall=moment)
        self.assertEqual(light.pwm.duty_u16(), 65535)  # off, active low
        status = light.apply(Command("dim", 40), 0)
        self.assertEqual((status["state"], status["brightness"]), ("on", 40))
        self.assertEqual(light.pwm.duty_u16(), 65535 - 40 * 65535 // 100)
        light.apply(Command("toggle"), 0)
        self.assertEqual((light.state, light.pwm.duty_u16()), ("off", 65535))
        self.assertEqual([pin for pin, _ in self.moves], [2, 2, 2])

    def test_what_an_output_cannot_do_raises_value_error(self):
        plain = Light("hall", 3)
        with self.assertRaises(ValueError):
            plain.apply(Command("dim", 40), 0)
        with self.assertRaises(ValueError):
            plain.apply(Command("pulse"), 0)
        relay = Relay("gate", 5)  # no pulse time configured
        with self.assertRaises(ValueError):
            relay.apply(Command("pulse"), 0)
        self.assertEqual(self.moves, [])

    def test_a_relay_pulse_ends_on_poll(self):
        relay = Relay("gate", 5, initial="off", pulse=2)
        pin = machine.pins[5]
        relay.apply(Command("pulse", 0.5), 1000)
        self.assertEqual((pin.value(), relay.pulsing), (1, True))
        self.assertFalse(relay.poll(1499))
        self.assertTrue(relay.poll(1500))
        self.assertEqual((pin.value(), relay.pulsing), (0, False))
        relay.apply(Command("pulse"), 2000)  # the configured 2 s
        self.assertFalse(relay.poll(3999))
        self.assertTrue(relay.poll(4000))
        relay.apply(Command("pulse"), 5000)
        relay.apply(Command("on"), 5100)  # a command ends the pulse
        self.assertFalse(relay.poll(99999))
        self.assertEqual(pin.value(), 1)

    def test_build_devices_from_settings_entries(self):
        entries = [
            {"name": "frontdoor", "type": "door", "pin": 6, "pull_up": True,
             "open_level": "high", "bounce_time": 0.05},
            {"name": "porch", "type": "light", "pin": 2, "active_high": True,
             "initial": "on", "dimmable": True, "pulse": None},
        ]
        devices = board.build_devices(entries, wall=moment)
        self.assertEqual(sorted(devices), ["frontdoor", "porch"])
        self.assertEqual(devices["frontdoor"].state, "open")  # pull-up, nothing pulls down
        self.assertEqual(devices["porch"].status(), {"type": "light", "state": "on",
                                                     "brightness": 100, "seq": 0})
        self.assertEqual(devices["porch"].pwm.duty_u16(), 65535)


class TestWifi(unittest.TestCase):
    def setUp(self):
        reset_pins()
        self.logs = []
        self.wifi = Wifi({"ssid": "home", "password": "pw", "hostname": "porch-esp32"},
                         network, log=self.logs.append)
        self.wlan = network.WLAN(network.STA_IF)

    def run_until(self, start, end, step=1000):
        """check() every `step` ms, as the loop does; the times joins were started."""
        joins = []
        for now in range(start, end, step):
            before = len(self.wlan.joins)
            self.wifi.check(now)
            if len(self.wlan.joins) != before:
                joins.append(now)
        return joins

    def test_joins_and_after_a_drop_joins_again(self):
        self.assertIsNone(self.wifi.check(0))
        self.assertEqual(self.wlan.joins, [("home", "pw")])
        self.assertTrue(self.wlan.active())
        self.assertEqual(network.hostname(), "porch-esp32")
        self.assertEqual(self.wifi.check(1000), "192.0.2.10")
        self.assertEqual(self.logs, ["wifi: joined home as 192.0.2.10"])
        self.wlan.drop()
        self.assertIsNone(self.wifi.check(5000))
        self.assertEqual(self.logs[-1], "wifi: link to home lost")
        self.assertEqual(self.run_until(5000, 10000), [5000 + WIFI_FIRST_WAIT])
        self.assertEqual(self.wifi.address, "192.0.2.10")
        self.assertEqual(self.wifi.failures, 0)

    def test_an_unreachable_network_is_tried_again_with_growing_waits(self):
        self.wifi.check(0)
        self.wifi.check(1000)
        self.wlan.reachable = False
        self.wlan.drop()
        joins = self.run_until(2000, 400000)
        # The first join after the loss, then each failed join (15 s without an address)
        # is followed by waits of 2, 4, 8 ... s, up to WIFI_MAX_WAIT.
        waits = [joins[i + 1] - (joins[i] + 15000) for i in range(len(joins) - 1)]
        self.assertEqual(joins[0], 2000 + WIFI_FIRST_WAIT)
        self.assertEqual(waits, [2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000])
        self.assertTrue(max(waits) <= WIFI_MAX_WAIT)
        self.assertIsNone(self.wifi.address)
        self.assertIn("wifi: cannot join home (status 201); again in 60 s", self.logs)
        self.wlan.reachable = True
        last = joins[-1]
        self.assertEqual(self.run_until(last + 1000, last + 200000), [last + 15000 + 60000])
        self.assertEqual(self.wifi.address, "192.0.2.10")
        self.assertEqual(self.wifi.failures, 0)


class TestWatchdog(unittest.TestCase):
    def test_fed_when_enabled(self):
        machine.feeds[0] = 0
        watchdog = Watchdog(8)
        self.assertEqual(watchdog.wdt.timeout, 8000)
        watchdog.feed()
        watchdog.feed()
        self.assertEqual(machine.feeds[0], 2)
        Watchdog(0).feed()
        self.assertEqual(machine.feeds[0], 2)
