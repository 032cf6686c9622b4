"""The firmware's SIP agent (firmware/agent.py), driven as its loop drives it: datagrams in
through receive(), the clock through tick(), and what it sends read back as SIP."""

import sys
import unittest

import machine
from agent import MAX_NONCES, MAX_SOURCES, MAX_SUBSCRIPTIONS, MAX_TRANSACTIONS

from appliance.sip.auth import OK, DigestServer
from appliance.sip.digest import parse_credentials
from appliance.sip.message import make_response
from appliance.sip.registration import refresh_delay

from ..core.helpers import TokenSource
from .support import (
    BOARD,
    DOOR_PIN,
    LIGHT_PIN,
    RELAY_PIN,
    WALL,
    Phone,
    Rig,
    config,
    json_of,
    requests_of,
)

FULL = 65535  # PWM duty of a light at 100 %


def door_state(notify):
    return json_of(notify)["state"]


class TestDoorEvents(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.rig.start()
        self.alice = Phone(self.rig, "alice")
        response, notify = self.alice.subscribe("frontdoor")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.get("expires"), "600")
        self.assertEqual(json_of(notify), {"device": "frontdoor", "type": "door",
                                           "state": "closed", "seq": 0})
        self.assertEqual(notify.get("event"), "appliance")
        self.assertEqual(notify.get("subscription-state"), "active;expires=600")
        self.assertEqual(self.alice.answer(notify), [])
        self.pin = machine.pins[DOOR_PIN]

    def notifies(self):
        return requests_of(self.alice.inbox(), "NOTIFY")

    def test_an_edge_notifies_once_the_contact_is_still(self):
        self.pin.drive(1)
        self.rig.tick(0)  # the loop sees the interrupt's note
        self.rig.tick(49)
        self.assertEqual(self.notifies(), [])
        self.rig.tick(1)  # bounce_time: 50 ms of quiet
        notifies = self.notifies()
        self.assertEqual(len(notifies), 1)
        self.assertEqual(notifies[0].uri_text, "sip:alice@192.0.2.50:5070")
        self.assertEqual(notifies[0].get("content-type"), "application/json")
        self.assertEqual(notifies[0].body, ('{"changed":"%s","device":"frontdoor","seq":1,'
                                            '"state":"open","type":"door"}' % WALL).encode())
        self.assertEqual(self.alice.answer(notifies[0]), [])
        self.pin.drive(0)
        self.rig.tick(0)
        self.rig.tick(50)
        notifies = self.notifies()
        self.assertEqual([(door_state(n), json_of(n)["seq"]) for n in notifies],
                         [("closed", 2)])
        self.assertEqual(self.rig.agent.counters["notifies"], 3)

    def test_a_bouncing_contact_makes_one_notify(self):
        for level in (1, 0, 1, 0, 1):
            self.pin.drive(level)
            self.rig.tick(10)
        self.assertEqual(self.notifies(), [])
        for _ in range(20):
            self.rig.tick(10)
        notifies = self.notifies()
        self.assertEqual([(door_state(n), json_of(n)["seq"]) for n in notifies], [("open", 1)])
        self.alice.answer(notifies[0])
        # A bounce that ends where it began is no event at all.
        for level in (0, 1):
            self.pin.drive(level)
            self.rig.tick(10)
        self.rig.tick(1000)
        self.assertEqual(self.notifies(), [])
        self.assertEqual(self.rig.devices["frontdoor"].seq, 1)

    def test_a_change_waits_for_the_answer_to_the_last_notify(self):
        self.pin.drive(1)
        self.rig.tick(0)
        self.rig.tick(50)
        first = self.notifies()
        self.assertEqual(len(first), 1)
        self.pin.drive(0)
        self.rig.tick(0)
        self.rig.tick(50)
        self.assertEqual(self.notifies(), [])  # one NOTIFY in flight at a time
        came = self.alice.answer(first[0])
        self.assertEqual([door_state(n) for n in requests_of(came, "NOTIFY")], ["closed"])

    def test_presence_watchers_get_pidf(self):
        bob = Phone(self.rig, "bob", address=("192.0.2.51", 5070), name="bob")
        response, notify = bob.subscribe("frontdoor", "presence")
        self.assertEqual(response.status, 200)
        self.assertEqual(notify.get("content-type"), "application/pidf+xml")
        self.assertIn(b"<basic>closed</basic>", notify.body)
        bob.answer(notify)
        self.pin.drive(1)
        self.rig.tick(0)
        self.rig.tick(50)
        (notify,) = requests_of(bob.inbox(), "NOTIFY")
        self.assertIn(b"<basic>open</basic>", notify.body)
        self.assertEqual(len(self.notifies()), 1)  # alice's, in her own package

    def test_watchers_need_credentials_and_the_device(self):
        stranger = Phone(self.rig, address=("192.0.2.66", 5070), name="stranger")
        response, notify = stranger.subscribe("frontdoor")
        self.assertEqual((response.status, notify), (401, None))
        bob = Phone(self.rig, "bob", address=("192.0.2.51", 5070), name="bob")
        response, notify = bob.subscribe("porch")
        self.assertEqual((response.status, response.reason, notify),
                         (403, "Not Allowed For This Device", None))
        self.assertEqual(len(self.rig.agent.subscriptions), 1)


class TestControl(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.rig.start()
        self.alice = Phone(self.rig, "alice")
        self.light = self.rig.devices["porch"].pwm
        self.relay = machine.pins[RELAY_PIN]

    def test_do_on_dim_and_pulse(self):
        response = self.alice.do("porch", "on")
        self.assertEqual((response.status, response.get("content-type")),
                         (200, "application/json"))
        self.assertEqual(json_of(response), {"device": "porch", "type": "light",
                                             "state": "on", "brightness": 100, "seq": 1,
                                             "changed": WALL})
        self.assertEqual(self.light.duty_u16(), FULL)
        response = self.alice.do("porch", "dim 40")
        self.assertEqual((json_of(response)["brightness"], json_of(response)["seq"]), (40, 2))
        self.assertEqual(self.light.duty_u16(), 40 * FULL // 100)
        self.assertEqual([pin for pin, _ in self.rig.moves], [LIGHT_PIN, LIGHT_PIN])

        response = self.alice.do("garage", "pulse")
        self.assertEqual((response.status, json_of(response)["state"]), (200, "on"))
        self.assertEqual(self.relay.value(), 1)
        self.rig.tick(999)
        self.assertEqual(self.relay.value(), 1)
        self.rig.tick(1)  # the relay's pulse: 1 s
        self.assertEqual(self.relay.value(), 0)
        self.assertEqual(self.rig.moves[2:], [(RELAY_PIN, 1), (RELAY_PIN, 0)])

    def test_message_answers_200_without_a_body(self):
        response, _ = self.alice.ask("MESSAGE", "garage", b"on", "text/plain")
        self.assertEqual((response.status, response.body, response.get("content-type")),
                         (200, b"", None))
        self.assertEqual(self.relay.value(), 1)
        response, _ = self.alice.ask("MESSAGE", "porch", b'{"state": "ON", "brightness": 25}',
                                     "application/json")
        self.assertEqual(response.status, 200)
        self.assertEqual(self.light.duty_u16(), 25 * FULL // 100)

    def test_without_credentials_401_and_nothing_moves(self):
        stranger = Phone(self.rig)
        response = stranger.do("porch", "on")
        self.assertEqual(response.status, 401)
        challenges = [parse_credentials(v) for v in response.get_all("www-authenticate")]
        self.assertEqual([c["algorithm"] for c in challenges], ["SHA-256", "MD5"])
        self.assertEqual(challenges[0]["realm"], "home.arpa")
        response, _ = stranger.ask("MESSAGE", "garage", b"on", "text/plain")
        self.assertEqual(response.status, 401)
        self.assertEqual((self.light.duty_u16(), self.relay.value()), (0, 0))
        self.assertEqual(self.rig.moves, [])

    def test_a_wrong_password_is_refused(self):
        guesser = Phone(self.rig, "alice", "not-the-password")
        response = guesser.do("garage", "on")
        self.assertEqual(response.status, 401)
        self.assertEqual(self.relay.value(), 0)
        self.assertIn("DO to garage from 192.0.2.50 refused: Wrong response", self.rig.logs)

    def test_a_user_not_allowed_the_device_403(self):
        bob = Phone(self.rig, "bob")
        response = bob.do("porch", "on")
        self.assertEqual((response.status, response.reason),
                         (403, "Not Allowed For This Device"))
        self.assertEqual(self.light.duty_u16(), 0)
        self.assertEqual(self.rig.moves, [])

    def test_a_door_answers_message_and_do_with_405(self):
        for method in ("MESSAGE", "DO"):
            with self.subTest(method=method):
                response, _ = self.alice.ask(method, "frontdoor", b"on", "text/plain")
                self.assertEqual(response.status, 405)
                self.assertEqual(response.get("allow"), "OPTIONS, ACK, CANCEL, SUBSCRIBE")

    def test_what_a_device_cannot_do_is_400(self):
        response = self.alice.do("porch", "pulse 3")
        self.assertEqual((response.status, response.reason), (400, "Porch (light) cannot pulse"))
        response = self.alice.do("porch", "fly")
        self.assertEqual(response.status, 400)
        response, _ = self.alice.ask("DO", "porch", b"", "text/plain")
        self.assertEqual(response.status, 400)
        self.assertEqual(self.rig.moves, [])

    def test_an_unknown_device_404(self):
        response = self.alice.do("attic", "on")
        self.assertEqual(response.status, 404)

    def test_watchers_hear_of_a_command(self):
        _, notify = self.alice.subscribe("porch")
        self.assertEqual(json_of(notify)["state"], "off")
        self.alice.answer(notify)
        final, requests = self.alice.ask("DO", "porch", b"on", "text/plain")
        self.assertEqual(final.status, 200)
        self.assertEqual([json_of(r)["state"] for r in requests], ["on"])


class TestOptions(unittest.TestCase):
    def test_options_says_what_the_device_serves_and_nothing_of_the_board(self):
        rig = Rig(mem_free=lambda: 41234)
        rig.start()
        response, _ = Phone(rig).ask("OPTIONS", "porch", fields=(("Accept",
                                                                  "application/json"),))
        self.assertEqual((response.status, response.body), (200, b""))
        self.assertEqual(response.get("allow"),
                         "OPTIONS, ACK, CANCEL, SUBSCRIBE, MESSAGE, DO")
        self.assertEqual(response.get("allow-events"), "presence, appliance")


class TestStatusCommand(unittest.TestCase):
    def status(self, rig):
        final, _ = Phone(rig, "alice").ask("DO", "porch", b"status", "text/plain")
        self.assertEqual(final.status, 200)
        return json_of(final)

    def test_status_reports_the_boards_free_memory_and_uptime(self):
        rig = Rig(now=0)
        rig.start()
        rig.tick(5000)
        body = self.status(rig)
        mem_free = body.pop("mem_free")
        self.assertEqual((body["uptime"], body["registered"], body["watchers"]), (5, 0, 0))
        self.assertEqual((body["device"], body["state"]), ("porch", "off"))
        if sys.implementation.name == "micropython":
            self.assertIsInstance(mem_free, int)
            self.assertTrue(mem_free > 0)
        else:
            self.assertIsNone(mem_free)  # CPython has no gc.mem_free

    def test_mem_free_is_whatever_the_board_says(self):
        rig = Rig(mem_free=lambda: 41234)
        rig.start()
        self.assertEqual(self.status(rig)["mem_free"], 41234)

    def test_status_is_only_for_users_allowed_the_device(self):
        rig = Rig(mem_free=lambda: 41234)
        rig.start()
        final, _ = Phone(rig).ask("DO", "porch", b"status", "text/plain")
        self.assertEqual((final.status, final.body), (401, b""))


PROXY = {"registrar": "sip:pbx.home.arpa", "username": "porch-esp32",
         "password": "pbx-secret", "expires": 600}


class Registrar:
    """The registrar's side: a 401 with a digest challenge, then a 200 granting `granted`
    seconds to whoever answers it with the right password."""

    def __init__(self, rig, granted=120):
        self.rig = rig
        self.granted = granted
        self.digest = DigestServer("home.arpa", TokenSource("9"))
        self.checked = []

    def registers(self):
        out = requests_of(self.rig.take(("192.0.2.1", 5060)), "REGISTER")
        return sorted(out, key=lambda request: request.from_.uri.user)

    def challenge(self, request):
        status, name, values = self.digest.challenge(self.rig.now)
        response = make_response(request, status, fields=[(name, value) for value in values])
        self.rig.deliver(response, ("192.0.2.1", 5060))

    def accept(self, request):
        result = self.digest.check(request, self.rig.now,
                                   lambda user: "pbx-secret" if user == "porch-esp32" else None)
        self.checked.append(result.outcome)
        response = make_response(request, 200, fields=[
            ("Contact", "%s;expires=%d" % (request.get("contact"), self.granted))])
        self.rig.deliver(response, ("192.0.2.1", 5060))


class TestRegistration(unittest.TestCase):
    def setUp(self):
        self.rig = Rig(config(proxy=PROXY))
        self.registrar = Registrar(self.rig)

    def register_all(self):
        self.rig.start()
        first = self.registrar.registers()
        for request in first:
            self.registrar.challenge(request)
        answered = self.registrar.registers()
        for request in answered:
            self.registrar.accept(request)
        return first, answered

    def test_start_registers_each_device_at_the_proxy(self):
        self.rig.start()
        registers = self.registrar.registers()
        self.assertEqual([r.from_.uri.user for r in registers], ["frontdoor", "garage", "porch"])
        for request in registers:
            name = request.from_.uri.user
            self.assertEqual(request.uri_text, "sip:pbx.home.arpa")
            self.assertEqual(request.get("to"), "<sip:%s@home.arpa>" % name)
            self.assertEqual(request.get("contact"), "<sip:%s@%s:5060>" % (name, BOARD))
            self.assertEqual(request.get("expires"), "600")
            self.assertIsNone(request.get("authorization"))
            self.assertTrue(request.get("via").startswith("SIP/2.0/UDP 192.0.2.10:5060;"))
        self.assertEqual(self.rig.sent, [])

    def test_a_challenge_is_answered_with_the_proxy_credentials(self):
        first, answered = self.register_all()
        self.assertEqual(len(answered), 3)
        # (No zip(): ruff asks for strict=, which MicroPython's zip does not take.)
        for index, after in enumerate(answered):
            before = first[index]
            self.assertEqual(after.call_id, before.call_id)
            self.assertEqual(after.cseq.number, before.cseq.number + 1)
            self.assertEqual(parse_credentials(after.get("authorization"))["username"],
                             "porch-esp32")
        self.assertEqual(self.registrar.checked, [OK, OK, OK])
        self.assertEqual(sorted(r.state for r in self.rig.agent.registrations.values()),
                         ["registered"] * 3)

    def test_refresh_at_half_of_a_short_grant_and_not_before(self):
        self.register_all()
        delay = refresh_delay(120 * 1000)
        self.assertEqual(delay, 60000)
        self.rig.tick(delay - 1)
        self.assertEqual(self.registrar.registers(), [])
        self.assertEqual(self.rig.sent, [])
        self.rig.tick(1)
        refreshes = self.registrar.registers()
        self.assertEqual(len(refreshes), 3)
        for request in refreshes:
            self.assertEqual(request.get("expires"), "600")
            # The nonce the registrar gave still answers, without another 401 first.
            self.assertIsNotNone(request.get("authorization"))

    def test_the_status_command_counts_the_registrations(self):
        self.register_all()
        final, _ = Phone(self.rig, "alice").ask("DO", "porch", b"status", "text/plain")
        self.assertEqual(json_of(final)["registered"], 3)

    def test_a_registrar_name_that_does_not_resolve_is_looked_up_again(self):
        proxy = dict(PROXY)
        proxy["registrar"] = "sip:nowhere.home.arpa"
        rig = Rig(config(proxy=proxy))
        rig.start()
        self.assertEqual(rig.sent, [])
        self.assertIn("proxy.registrar: cannot resolve nowhere.home.arpa (no address for "
                      "nowhere.home.arpa); check the name and the network", rig.logs)
        rig.tick(30000)
        self.assertEqual(rig.sent, [])  # still no address: no REGISTER, no exception


class TestBoundedMemory(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.rig.start()

    def test_subscriptions_beyond_the_limit_get_503(self):
        alice = Phone(self.rig, "alice")
        for _ in range(MAX_SUBSCRIPTIONS):
            response, notify = alice.subscribe("frontdoor")
            self.assertEqual(response.status, 200)
        response, notify = alice.subscribe("porch")
        self.assertEqual((response.status, response.reason, response.get("retry-after")),
                         (503, "Too Many Subscriptions", "60"))
        self.assertIsNone(notify)
        self.assertEqual(len(self.rig.agent.subscriptions), MAX_SUBSCRIPTIONS)

    def test_a_flood_of_requests_is_capped_at_max_transactions(self):
        alice = Phone(self.rig, "alice")
        _, notify = alice.subscribe("frontdoor")  # a NOTIFY in flight, answered below
        flood = Phone(self.rig, address=("192.0.2.77", 5080), name="flood")
        answered = 0
        for _ in range(100):
            came = flood.send(flood.request("OPTIONS", "porch"))
            answered += len(came)
            self.assertTrue(len(self.rig.agent.endpoint.server_transactions)
                            <= MAX_TRANSACTIONS)
        self.assertEqual(len(self.rig.agent.endpoint.server_transactions), MAX_TRANSACTIONS)
        self.assertEqual(self.rig.agent.counters["dropped"], 100 - answered)
        # Responses still come in while the table is full.
        self.assertEqual(alice.answer(notify), [])
        ((subscription, _, _),) = self.rig.agent.subscriptions.values()
        self.assertIsNone(subscription.outstanding)
        # Once the transactions end (timer J, 64 * T1), requests are answered again.
        self.rig.tick(32000)
        self.assertEqual(len(self.rig.agent.endpoint.server_transactions), 0)
        self.assertEqual(len(flood.send(flood.request("OPTIONS", "porch"))), 1)

    def test_nonces_and_failing_sources_are_bounded(self):
        for round_ in range(4):
            for index in range(MAX_TRANSACTIONS // 2):
                guesser = Phone(self.rig, "alice", "wrong-%d" % index,
                                address=("198.51.100.%d" % (round_ * 20 + index), 5060),
                                name="g%d" % index)
                self.assertEqual(guesser.do("garage", "on").status, 401)
            self.rig.tick(32000)  # the transactions end
        self.assertTrue(self.rig.agent.auth.nonces_held <= MAX_NONCES)
        self.assertTrue(len(self.rig.agent._failures) <= MAX_SOURCES)
        self.assertEqual(machine.pins[RELAY_PIN].value(), 0)

    def test_a_source_that_keeps_failing_gets_503(self):
        guesser = Phone(self.rig, "alice", "wrong")
        statuses = [guesser.do("garage", "on").status for _ in range(6)]
        # 401, then 403 for answers to a nonce already refused, then 503 for the source.
        self.assertEqual(statuses, [401, 403, 403, 403, 403, 503])
        # Even the right password waits for the window to pass.
        alice = Phone(self.rig, "alice", name="alice")
        self.assertEqual(alice.do("garage", "on").status, 503)
        self.rig.tick(60000)
        self.assertEqual(alice.do("garage", "on").status, 200)
