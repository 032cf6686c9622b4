"""appliance/commands.py, the command language of lights and relays, and
appliance/packages.py, the bodies of the event packages: both portable, as the firmware
ships them, so these run on CPython and on MicroPython."""

import json
import unittest

from appliance import packages
from appliance.commands import Command, CommandError, parse

USAGE = "Use on, off, toggle, dim 0-100, pulse [SECONDS] or status"
JSON_USAGE = 'Use {"state": "ON"|"OFF"|"TOGGLE", "brightness": 0-100}'
DMP_USAGE = "Use <dmp><command>ON</command></dmp>"

UNDERSTOOD = [
    ("text/plain", b"on", Command("on")),
    ("text/plain; charset=UTF-8", b"  OFF \r\n", Command("off")),
    ("TEXT/PLAIN", b"Toggle", Command("toggle")),
    ("text/plain", b"dim 40", Command("dim", 40)),
    ("text/plain", b"dim 39.6", Command("dim", 40)),
    ("text/plain", b"pulse 2.5", Command("pulse", 2.5)),
    ("text/plain", b"pulse", Command("pulse")),
    ("text/plain", b"status", Command("status")),
    ("application/json", b'{"state": "ON"}', Command("on")),
    ("application/json", b'{"state": "ON", "brightness": 40}', Command("dim", 40)),
    ("application/json", b'{"brightness": 0}', Command("dim", 0)),
    ("application/json", b'{"state": "off", "brightness": 40}', Command("off")),
    ("application/dmp", b"<dmp><command>ON</command></dmp>", Command("on")),
    ("application/dmp", b"<dmp><command>DIM 30</command></dmp>", Command("dim", 30)),
    ("application/dmp", b'<?xml version="1.0" encoding="UTF-8"?>\n<dmp xmlns="urn:x">\n'
                        b"  <!-- porch -->\n  <command> off </command>\n</dmp>\n",
     Command("off")),
    ("application/dmp", b"<d:dmp xmlns:d='urn:x'><d:command>on</d:command></d:dmp >",
     Command("on")),
]

REFUSED = [
    ("text/plain", b"open sesame", 400, USAGE),
    ("text/plain", b"dim", 400, USAGE),
    ("text/plain", b"dim 140", 400, "Brightness Is 0 To 100"),
    ("text/plain", b"dim nan", 400, USAGE),
    ("text/plain", b"pulse inf", 400, USAGE),
    ("text/plain", b"pulse -1", 400, "Pulse Is 0 To 3600 Seconds"),
    ("text/plain", b"on now", 400, USAGE),
    ("text/plain", b"\xff\xfe", 400, "Body Is Not UTF-8"),
    ("application/json", b"[1]", 400, "Malformed JSON"),
    ("application/json", b"{", 400, "Malformed JSON"),
    ("application/json", b'{"state": "MAYBE"}', 400, JSON_USAGE),
    ("application/json", b'{"brightness": true}', 400, "Brightness Is 0 To 100"),
    ("application/dmp", b"<dmp><command>", 400, "Malformed DMP"),
    ("application/dmp", b"<dmp><command>on</command>", 400, "Malformed DMP"),
    ("application/dmp", b"<dmp><command>on</command></dmp><dmp/>", 400, "Malformed DMP"),
    ("application/dmp", b"<dmp><command><b>on</b></command></dmp>", 400, "Malformed DMP"),
    ("application/dmp", b"<!-- never closed <dmp>", 400, "Malformed DMP"),
    ("application/dmp", b"on", 400, "Malformed DMP"),
    ("application/dmp", b"<other/>", 400, DMP_USAGE),
    ("application/dmp", b"<dmp><state>on</state></dmp>", 400, DMP_USAGE),
    ("application/dmp", b"<dmp><command/></dmp>", 400, DMP_USAGE),
    ("application/dmp", b"<dmp><command>  </command></dmp>", 400, DMP_USAGE),
    ("text/plain", b"on" + b" " * 1100, 413, "Request Entity Too Large"),
    ("text/html", b"<p>on</p>", 415, "Unsupported Media Type"),
]


class TestCommandLanguage(unittest.TestCase):
    def test_each_language(self):
        for content_type, body, command in UNDERSTOOD:
            with self.subTest(body=body):
                self.assertEqual(parse(content_type, body), command)

    def test_what_is_refused_and_how(self):
        for content_type, body, status, reason in REFUSED:
            with self.subTest(body=body):
                with self.assertRaises(CommandError) as refused:
                    parse(content_type, body)
                self.assertEqual((refused.exception.status, refused.exception.reason),
                                 (status, reason))

    def test_an_unsupported_type_is_told_the_accepted_ones(self):
        with self.assertRaises(CommandError) as refused:
            parse("text/html", b"on")
        self.assertEqual(refused.exception.fields,
                         (("Accept", "text/plain, application/json, application/dmp"),))

    def test_dmp_entities_are_read(self):
        with self.assertRaises(CommandError) as refused:
            parse("application/dmp", b"<dmp><command>on &amp; off</command></dmp>")
        self.assertEqual(refused.exception.reason, USAGE)  # "on & off": read, then refused


class TestPackageBodies(unittest.TestCase):
    STATUS = {"type": "door", "state": "open", "changed": "2026-11-21T10:32:05+00:00",
              "seq": 17}

    def test_appliance_body_is_compact_json_with_sorted_keys(self):
        body = packages.appliance("frontdoor", self.STATUS)
        self.assertEqual(body, b'{"changed":"2026-11-21T10:32:05+00:00","device":"frontdoor",'
                               b'"seq":17,"state":"open","type":"door"}')
        self.assertEqual(json.loads(body)["state"], "open")

    def test_appliance_body_of_nested_values_and_nulls(self):
        body = packages.appliance("board", {"mem_free": None, "uptime": 5,
                                            "list": [1, "a"], "map": {"b": 1, "a": True}})
        self.assertEqual(body, b'{"device":"board","list":[1,"a"],"map":{"a":true,"b":1},'
                               b'"mem_free":null,"uptime":5}')

    def test_presence_body_escapes_and_says_the_door_state(self):
        content_type, body = packages.body("presence", 'sip:a&b@home.arpa', "front<door>",
                                           self.STATUS)
        self.assertEqual(content_type, "application/pidf+xml")
        text = body.decode()
        self.assertIn('entity="sip:a&amp;b@home.arpa"', text)
        self.assertIn('<tuple id="front&lt;door&gt;">', text)
        self.assertIn("<basic>open</basic>", text)
        self.assertIn("<note>Door open since ", text)
        self.assertIn("<timestamp>2026-11-21T10:32:05+00:00</timestamp>", text)

    def test_presence_of_a_light_is_open_and_says_its_state(self):
        _, body = packages.body("presence", "sip:porch@home.arpa", "porch",
                                {"type": "light", "state": "off", "seq": 0})
        self.assertIn(b"<basic>open</basic>", body)
        self.assertIn(b"<note>Light off</note>", body)
