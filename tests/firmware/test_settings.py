"""The board's config.json (firmware/settings.py): defaults, and for each mistake the key,
the problem and the fix, as the board prints them on its serial console."""

import json
import unittest

import settings
from settings import SettingsError

from .support import CONFIG, config

GOOD_DEVICES = [{"name": "porch", "type": "light", "pin": 2}]


def parse(document):
    return settings.parse(json.dumps(document))


class TestGood(unittest.TestCase):
    def test_defaults(self):
        out = parse(config(proxy={"registrar": "sip:pbx.home.arpa", "password": "x"},
                           nat={"stun": "stun.example.net:3478"},
                           wifi={"ssid": "home", "password": "pw"}))
        self.assertEqual(out["agent"], {"name": "porch-esp32", "domain": "home.arpa",
                                        "port": 5060, "watchdog": 0, "ntp": "pool.ntp.org",
                                        "digest_algorithms": ["SHA-256", "MD5"]})
        self.assertEqual(out["proxy"], {"registrar": "sip:pbx.home.arpa",
                                        "username": "porch-esp32", "password": "x",
                                        "expires": 600})
        self.assertEqual(out["nat"], {"stun": "stun.example.net:3478", "keepalive": 25})
        self.assertEqual(out["wifi"], {"ssid": "home", "password": "pw", "hostname": None})
        door, light, relay = out["devices"]
        self.assertEqual(door, {"name": "frontdoor", "type": "door", "pin": 4,
                                "username": None, "password": None, "pull_up": True,
                                "open_level": "high", "bounce_time": 0.05})
        self.assertEqual((light["dimmable"], light["pulse"], light["initial"]),
                         (True, None, "off"))
        self.assertEqual((relay["dimmable"], relay["pulse"]), (False, 1))
        self.assertEqual([u["devices"] for u in out["users"]],
                         [["frontdoor", "porch", "garage"], ["frontdoor"]])

    def test_only_devices_is_enough(self):
        out = parse({"devices": GOOD_DEVICES})
        self.assertEqual((out["wifi"], out["proxy"], out["nat"], out["users"]),
                         (None, None, None, []))
        self.assertEqual(out["agent"]["name"], "sip-appliance")


class TestMistakes(unittest.TestCase):
    def assert_refused(self, document, message):
        with self.assertRaises(SettingsError) as caught:
            if isinstance(document, str):
                settings.parse(document)
            else:
                parse(document)
        self.assertEqual(str(caught.exception), message)

    def test_a_pin_that_is_a_string(self):
        self.assert_refused(
            {"devices": [{"name": "frontdoor", "type": "door", "pin": "GP4"}]},
            'devices[0].pin: "GP4" is not a pin number; write the GPIO number, e.g. "pin": 4')

    def test_a_pin_used_twice(self):
        self.assert_refused(
            {"devices": [{"name": "a", "type": "light", "pin": 2},
                         {"name": "b", "type": "relay", "pin": 2}]},
            "devices[1].pin: 2 is a's pin too; give each device its own pin")

    def test_an_unknown_device_type(self):
        self.assert_refused(
            {"devices": [{"name": "porch", "type": "lamp", "pin": 2}]},
            'devices[0].type: must be "door", "light" or "relay", e.g. "type": "door"')

    def test_a_doorbell_needs_the_pi_agent(self):
        for kind in ("doorbell", "intercom", "camera"):
            with self.subTest(kind=kind):
                self.assert_refused(
                    {"devices": GOOD_DEVICES + [{"name": "bell", "type": kind, "pin": 3}]},
                    'devices[1].type: "%s" needs the Pi agent; the firmware drives door, '
                    "light and relay devices" % kind)

    def test_a_user_naming_a_missing_device(self):
        self.assert_refused(
            {"devices": GOOD_DEVICES,
             "users": [{"name": "alice", "password": "pw", "devices": ["porch", "garage"]}]},
            'users[0].devices[1]: no device is named "garage"; name one of porch')

    def test_a_user_without_a_password(self):
        self.assert_refused(
            {"devices": GOOD_DEVICES, "users": [{"name": "alice", "devices": ["porch"]}]},
            'users[0].password: missing; set it, e.g. "password": "a long phrase"')

    def test_an_unknown_key_names_the_known_ones(self):
        self.assert_refused(
            {"devices": [{"name": "porch", "type": "light", "pin": 2, "dimable": True}]},
            "devices[0].dimable: unknown key; the keys here are name, type, pin, username, "
            "password, dimmable, initial, active_high")
        self.assert_refused({"devices": GOOD_DEVICES, "mqtt": {}},
                            "mqtt: unknown key; the keys are wifi, agent, proxy, nat, users "
                            "and devices")

    def test_a_registrar_that_is_not_a_sip_uri(self):
        self.assert_refused(
            {"devices": GOOD_DEVICES, "proxy": {"registrar": "pbx.home.arpa"}},
            'proxy.registrar: "pbx.home.arpa" is not a sip: URI; write e.g. '
            '"sip:pbx.home.arpa"')

    def test_numbers_out_of_range(self):
        self.assert_refused({"devices": GOOD_DEVICES, "agent": {"watchdog": 30}},
                            "agent.watchdog: 30 is not a whole number from 0 to 8")
        self.assert_refused({"devices": GOOD_DEVICES, "nat": {"stun": "stun.example.net"}},
                            'nat.stun: "stun.example.net" is not HOST:PORT; write e.g. '
                            '"stun.example.net:3478"')

    def test_no_devices(self):
        self.assert_refused({"users": []},
                            'devices: none configured; add one, e.g. {"name": "porch", '
                            '"type": "light", "pin": 2}')

    def test_not_json(self):
        # Not '{"devices": [],}': MicroPython's json module takes a comma after the last
        # item (and a missing colon) without complaint.
        for text in ('{"devices": [}', '["porch"]'):
            with self.subTest(text=text):
                self.assert_refused(text, "config.json: not a JSON object; check it with a "
                                          "JSON validator (a comma after the last item is a "
                                          "common slip)")

    def test_a_file_that_is_not_there(self):
        with self.assertRaises(SettingsError) as caught:
            settings.load("/nonexistent/config.json")
        self.assertEqual(str(caught.exception), "/nonexistent/config.json: cannot be read; "
                         "copy config.example.json there and edit it")

    def test_the_shared_config_is_good(self):
        self.assertEqual([d["name"] for d in parse(CONFIG)["devices"]],
                         ["frontdoor", "porch", "garage"])
