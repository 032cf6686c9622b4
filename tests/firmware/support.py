"""What the firmware's tests share: a board's settings, the agent on a fake network with a
fake clock, and a phone that speaks SIP to it through the core.

Runs on MicroPython too (tests/micropython/run.mjs): no dataclasses, no os.path, no
assertLogs; time is an int of milliseconds advanced by the test.

- `CONFIG`: a config.json (as a dict) with a door, a dimmable light and a relay, two users
  and no proxy; `config(**sections)` is a copy with sections replaced.
- `Rig(config)`: the simulated pins reset (the door's pin starts closed), the devices
  built (`rig.moves` lists the outputs' changes), and an `Agent` whose `send` collects
  datagrams (`rig.sent`), with counter tokens, a fixed random() and `resolve` of literal
  addresses; `rig.tick(ms)` moves the clock.
- `Phone(rig, user)`: requests to a device as a softphone sends them (Via, From tag,
  Call-ID, CSeq), answering a 401 with the user's password (DigestClient), and the
  answers the agent sent back to it, parsed.
"""

import json

import machine
import network
import settings as settings_module
from agent import Agent
from board import build_devices

from appliance.sip.digest import DigestClient, same_credentials
from appliance.sip.message import Request, make_request, make_response, parse_message

from ..core.helpers import TokenSource

BOARD = "192.0.2.10"  # the board's address (network.WLAN's)
PHONE = ("192.0.2.50", 5070)
DOMAIN = "home.arpa"
WALL = "2026-11-21T10:32:05+00:00"  # the boards' wall clock, for `changed`
DOOR_PIN = 4
LIGHT_PIN = 2
RELAY_PIN = 5
PASSWORDS = {"alice": "correct-horse-1", "bob": "battery-staple-2"}
# What `resolve` knows; any other name raises OSError, as a failed lookup does.
NAMES = {"pbx.home.arpa": "192.0.2.1", "stun.example.net": "192.0.2.3"}
REGISTRAR = ("192.0.2.1", 5060)

CONFIG = {
    "agent": {"name": "porch-esp32", "domain": DOMAIN, "watchdog": 0},
    "users": [
        {"name": "alice", "password": PASSWORDS["alice"],
         "devices": ["frontdoor", "porch", "garage"]},
        {"name": "bob", "password": PASSWORDS["bob"], "devices": ["frontdoor"]},
    ],
    "devices": [
        {"name": "frontdoor", "type": "door", "pin": DOOR_PIN},
        {"name": "porch", "type": "light", "pin": LIGHT_PIN, "dimmable": True},
        {"name": "garage", "type": "relay", "pin": RELAY_PIN, "pulse": 1},
    ],
}


def config(**sections):
    """CONFIG with some sections replaced (or added: proxy, nat, wifi)."""
    out = json.loads(json.dumps(CONFIG))
    out.update(sections)
    return out


def resolve(host, port):
    if host in NAMES:
        return (NAMES[host], port)
    if host.replace(".", "").isdigit():
        return (host, port)
    raise OSError("no address for %s" % host)


def reset_pins(moves=None):
    """Forget every simulated pin and Wi-Fi station; the door's contact starts closed.
    `moves`, a list, gets (pin, level) for every change of an output (a PWM duty as a
    share of 1)."""
    machine.pins.clear()
    machine.levels.clear()
    machine.watchers[:] = [] if moves is None else [lambda pin, level: moves.append((pin,
                                                                                     level))]
    machine.levels[DOOR_PIN] = 0  # pull-up, open_level "high": 0 is closed
    network._stations.clear()  # the simulated WLAN keeps one station per interface


class Rig:
    """The agent of `config` on a fake network; time starts at `now` ms."""

    def __init__(self, document=None, mem_free=None, now=0):
        self.moves = []  # (pin, level) of every change of an output
        reset_pins(self.moves)
        self.settings = settings_module.parse(json.dumps(document or CONFIG))
        self.devices = build_devices(self.settings["devices"], wall=lambda: WALL)
        self.now = now
        self.sent = []  # (bytes, (host, port)) the agent sent, oldest first
        self.logs = []
        self.agent = Agent(self.settings, self.devices, self._send, TokenSource("f"),
                           lambda: 0.5, resolve, mem_free=mem_free, log=self.logs.append)

    def _send(self, data, host, port):
        self.sent.append((data, (host, port)))

    def start(self):
        self.agent.start(BOARD, self.now)

    def tick(self, ms=0):
        """Move the clock on by `ms` and let the agent do what is due."""
        self.now += ms
        self.agent.tick(self.now)

    def take(self, destination=None):
        """The messages sent (to `destination` only, when given), parsed; they are taken
        off `sent`."""
        out = []
        keep = []
        for data, where in self.sent:
            if destination is None or where == destination:
                out.append(parse_message(data))
            else:
                keep.append((data, where))
        self.sent = keep
        return out

    def deliver(self, message, source):
        self.agent.receive(message.to_bytes(), source, self.now)


def requests_of(messages, method=None):
    return [m for m in messages if isinstance(m, Request) and (method is None
                                                               or m.method == method)]


def responses_of(messages):
    return [m for m in messages if not isinstance(m, Request)]


def json_of(message):
    return json.loads(message.body.decode())


class Phone:
    """A softphone at `address` used by `user` (None: one without credentials)."""

    def __init__(self, rig, user=None, password=None, address=PHONE, name="phone"):
        self.rig = rig
        self.user = user
        self.address = address
        self.name = name
        self.digest = None
        if user is not None:
            if password is None:
                password = PASSWORDS[user]
            self.digest = DigestClient(same_credentials(user, password), TokenSource("c"))
        self.count = 0  # requests sent: branches, Call-IDs and CSeqs come from it

    def request(self, method, device, body=b"", content_type=None, fields=(), call_id=None):
        """A new request (a new transaction) to `device`'s address of record."""
        self.count += 1
        uri = "sip:%s@%s" % (device, DOMAIN)
        fields = list(fields)
        if content_type is not None:
            fields.append(("Content-Type", content_type))
        request = make_request(method, uri, "sip:%s@%s" % (self.user or "guest", DOMAIN),
                               "%s-tag" % self.name, call_id or "%s-call-%d" % (self.name,
                                                                                self.count),
                               self.count, fields=fields, body=body)
        request.add_first("Via", "SIP/2.0/UDP %s:%d;branch=z9hG4bK-%s-%d"
                          % (self.address[0], self.address[1], self.name, self.count))
        return request

    def send(self, request):
        """Send `request` (with credentials, once challenged) and return what came back
        to this phone."""
        if self.digest is not None:
            self.digest.authorize(request)
        self.rig.deliver(request, self.address)
        return self.inbox()

    def inbox(self):
        return self.rig.take(self.address)

    def ask(self, method, device, body=b"", content_type=None, fields=(), call_id=None):
        """Send a request; answer a 401 (once) as a softphone does, with a new CSeq and
        branch. Returns (final response, the other messages that came back)."""
        request = self.request(method, device, body, content_type, fields, call_id)
        came = self.send(request)
        final = self._final(came)
        if final is not None and final.status == 401 and self.digest is not None \
                and self.digest.challenged(final):
            request = self.request(method, device, body, content_type, fields,
                                   request.call_id)
            came = self.send(request)
            final = self._final(came)
        return final, requests_of(came)

    def _final(self, messages):
        finals = [m for m in responses_of(messages) if m.status >= 200]
        if len(finals) > 1:
            raise AssertionError("%d final responses to one request" % len(finals))
        return finals[0] if finals else None

    def do(self, device, command):
        return self.ask("DO", device, command.encode(), "text/plain")[0]

    def subscribe(self, device, package="appliance", expires=600, call_id=None):
        """SUBSCRIBE; returns (response, the first NOTIFY or None)."""
        accept = "application/json" if package == "appliance" else "application/pidf+xml"
        final, requests = self.ask("SUBSCRIBE", device, fields=(
            ("Event", package), ("Accept", accept), ("Expires", expires),
            ("Contact", "<sip:%s@%s:%d>" % (self.user or "guest", self.address[0],
                                             self.address[1]))), call_id=call_id)
        notifies = [r for r in requests if r.method == "NOTIFY"]
        return final, notifies[0] if notifies else None

    def answer(self, request, status=200):
        """Answer a request the agent sent us (a NOTIFY); returns what came back."""
        self.rig.deliver(make_response(request, status), self.address)
        return self.inbox()
