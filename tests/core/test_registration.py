"""Registration: a REGISTER client driven against a scripted registrar on a fake clock."""

import unittest

from appliance.sip.digest import constant_time_equal, expected_response, parse_credentials
from appliance.sip.errors import InvalidState, SipError
from appliance.sip.headers import parse_address
from appliance.sip.message import make_response
from appliance.sip.registration import (
    BACKOFF,
    REGISTERED,
    REGISTERING,
    UNREGISTERED,
    UNREGISTERING,
    Registration,
    backoff_limit,
    refresh_delay,
)

from .helpers import FakeClock, TokenSource

AOR = "sip:frontdoor@example.net"
REGISTRAR = "sip:pbx.example.net"
CONTACT = "sip:frontdoor@192.0.2.10:5060"
NEW_CONTACT = "sip:frontdoor@198.51.100.7:5060"
UUID = "00000000-0000-1000-8000-000A95A0E128"
SECOND = 1000


class FixedRandom:
    """A `random` that always returns the same value (0.0 and 0.999 test both ends)."""

    def __init__(self, value):
        self.value = value

    def __call__(self):
        return self.value


def password(realm):
    return ("frontdoor", "s3cret") if realm in ("home", "edge") else None


def wrong_password(realm):
    return ("frontdoor", "guess") if realm == "home" else None


def make_registration(credentials=password, value=0.5, **kw):
    return Registration(AOR, REGISTRAR, CONTACT, TokenSource(), FixedRandom(value),
                        credentials=credentials, **kw)


def expires_of(request):
    return int(request.get("expires"))


def contact_of(request):
    return parse_address(request.get("contact"))


class Registrar:
    """The registrar's side, from make_response: challenges, checks credentials, grants."""

    password = "s3cret"

    def challenge(self, request, nonce="n1", status=401, stale=False, realm="home"):
        name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        value = 'Digest realm="%s", nonce="%s", qop="auth", algorithm=SHA-256' % (realm, nonce)
        if stale:
            value += ", stale=true"
        return make_response(request, status, to_tag="reg", fields=[(name, value)])

    def verify(self, request, header="authorization"):
        """The credentials' parameters when they verify, else None."""
        value = request.get(header)
        if value is None:
            return None
        params = parse_credentials(value)
        expected = expected_response(
            params["algorithm"], params["username"], params["realm"], self.password,
            request.method, params["uri"], params["nonce"], params.get("nc"),
            params.get("cnonce"), params.get("qop"), request.body)
        return params if constant_time_equal(expected, params["response"]) else None

    def ok(self, request, expires=None, header=None, contacts=None, fields=()):
        """200 listing the request's Contact (with `;expires=` when given) or `contacts`."""
        if contacts is None:
            contact = request.get("contact")
            if expires is not None:
                contact += ";expires=%d" % expires
            contacts = [contact]
        out = [("Contact", contact) for contact in contacts]
        if header is not None:
            out.append(("Expires", header))
        out.extend(fields)
        return make_response(request, 200, to_tag="reg", fields=out)

    def fail(self, request, status, fields=()):
        return make_response(request, status, to_tag="reg", fields=list(fields))


class TestRegister(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(1000)
        self.registrar = Registrar()
        self.registration = make_registration()

    def register(self, expires=120):
        """Through the challenge to a 200 granting `expires`; returns the last REGISTER."""
        reg = self.registration
        first = reg.start(self.clock.now)
        second = reg.response(self.registrar.challenge(first), self.clock.now)
        self.assertIsNone(reg.response(self.registrar.ok(second, expires), self.clock.now))
        return second

    def test_first_register(self):
        request = self.registration.start(self.clock.now)
        self.assertEqual((request.method, request.uri_text), ("REGISTER", REGISTRAR))
        self.assertEqual(str(request.from_.uri), AOR)
        self.assertEqual(str(request.to.uri), AOR)
        self.assertIsNotNone(request.from_.tag)
        self.assertIsNone(request.to.tag)
        self.assertEqual((request.cseq.number, request.cseq.method), (1, "REGISTER"))
        self.assertEqual(request.get("contact"), "<%s>" % CONTACT)
        self.assertEqual(expires_of(request), 600)
        self.assertIsNone(request.get("authorization"))
        self.assertIsNone(request.get("supported"))
        self.assertIsNone(request.get("via"))
        self.assertIs(self.registration.outstanding, request)
        self.assertEqual(self.registration.state, REGISTERING)
        self.assertIsNone(self.registration.get_timer())

    def test_challenge_grant_and_refresh_with_cached_credentials(self):
        reg = self.registration
        first = reg.start(self.clock.now)
        second = reg.response(self.registrar.challenge(first), self.clock.now)
        self.assertEqual(second.cseq.number, 2)
        self.assertEqual(second.call_id, first.call_id)
        self.assertEqual(second.from_.tag, first.from_.tag)
        params = self.registrar.verify(second)
        self.assertIsNotNone(params)
        self.assertEqual((params["uri"], params["nc"]), (REGISTRAR, "00000001"))
        self.assertIsNone(reg.response(self.registrar.ok(second, 120), self.clock.now))
        self.assertEqual(reg.state, REGISTERED)
        self.assertEqual(reg.granted, 120)
        self.assertEqual(reg.expires_at, 1000 + 120 * SECOND)
        self.assertEqual(reg.next_refresh, 1000 + 60 * SECOND)
        self.assertEqual(reg.get_timer(), 1000 + 60 * SECOND)
        self.assertEqual(reg.failures, 0)
        self.assertIsNone(reg.last_error)

        self.assertIsNone(reg.handle_timer(self.clock.set(60 * SECOND)))
        refresh = reg.handle_timer(self.clock.set(61 * SECOND))
        self.assertEqual(refresh.cseq.number, 3)
        self.assertEqual(refresh.call_id, first.call_id)
        self.assertEqual(refresh.from_.tag, first.from_.tag)
        self.assertEqual(expires_of(refresh), 600)
        params = self.registrar.verify(refresh)  # no second 401 needed
        self.assertIsNotNone(params)
        self.assertEqual(params["nc"], "00000002")
        self.assertEqual(reg.state, REGISTERING)
        self.assertTrue(reg.is_registered(self.clock.now))
        self.assertIsNone(reg.response(self.registrar.ok(refresh, 120), self.clock.now))
        self.assertEqual(reg.next_refresh, 121 * SECOND)

    def test_provisional_and_stray_responses_are_ignored(self):
        reg = self.registration
        request = reg.start(self.clock.now)
        self.assertIsNone(reg.response(make_response(request, 100), self.clock.now))
        stray = self.registrar.ok(request, 300)
        stray.set("CSeq", "7 REGISTER")
        self.assertIsNone(reg.response(stray, self.clock.now))
        self.assertIs(reg.outstanding, request)
        self.assertEqual(reg.state, REGISTERING)
        self.assertIsNone(reg.handle_timer(self.clock.advance(3600 * SECOND)))

    def test_grant_from_expires_header_then_what_was_asked(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        reg.response(self.registrar.ok(request, header="300"), 0)
        self.assertEqual((reg.granted, reg.next_refresh), (300, 240 * SECOND))
        request = reg.handle_timer(240 * SECOND)
        reg.response(self.registrar.ok(request), 240 * SECOND)
        self.assertEqual((reg.granted, reg.next_refresh), (600, 780 * SECOND))

    def test_contact_matched_by_uri_equality_among_others(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        contacts = [
            "<sip:frontdoor@192.0.2.99:5060>;expires=3600",
            '"Door" <sip:frontdoor@192.0.2.10:5060;ob>;expires=90',
            "<sip:frontdoor@192.0.2.10:5062>;expires=30",
        ]
        reg.response(self.registrar.ok(request, contacts=contacts), 0)
        self.assertEqual((reg.state, reg.granted), (REGISTERED, 90))
        self.assertEqual(reg.next_refresh, 45 * SECOND)

    def test_refresh_rule(self):
        self.assertEqual(refresh_delay(60 * SECOND), 30 * SECOND)
        self.assertEqual(refresh_delay(120 * SECOND), 60 * SECOND)
        self.assertEqual(refresh_delay(300 * SECOND), 240 * SECOND)
        self.assertEqual(refresh_delay(600 * SECOND), 540 * SECOND)
        self.assertEqual(refresh_delay(3600 * SECOND), 3240 * SECOND)

    def test_interval_too_brief_retries_at_once_and_keeps_min_expires(self):
        reg = make_registration(credentials=None, expires=60)
        request = reg.start(0)
        retry = reg.response(self.registrar.fail(request, 423, [("Min-Expires", "1800")]), 0)
        self.assertEqual(expires_of(retry), 1800)
        self.assertEqual(retry.cseq.number, 2)
        reg.response(self.registrar.ok(retry), 0)
        self.assertEqual((reg.state, reg.granted), (REGISTERED, 1800))
        refresh = reg.handle_timer(reg.get_timer())
        self.assertEqual(expires_of(refresh), 1800)

    def test_interval_too_brief_without_min_expires_backs_off(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        self.assertIsNone(reg.response(self.registrar.fail(request, 423), 0))
        self.assertEqual(reg.state, BACKOFF)
        self.assertEqual(reg.last_error, "423 Interval Too Brief without Min-Expires")
        self.assertEqual(reg.failures, 1)

    def test_proxy_then_registrar_challenge(self):
        reg = self.registration
        request = reg.start(0)
        request = reg.response(self.registrar.challenge(request, "p1", 407, realm="edge"), 0)
        self.assertIsNotNone(self.registrar.verify(request, "proxy-authorization"))
        request = reg.response(self.registrar.challenge(request, "n1"), 0)
        self.assertIsNotNone(self.registrar.verify(request, "proxy-authorization"))
        self.assertIsNotNone(self.registrar.verify(request))
        reg.response(self.registrar.ok(request), 0)
        self.assertEqual(reg.state, REGISTERED)

    def test_stale_nonce_on_refresh_is_answered(self):
        self.register()
        reg = self.registration
        refresh = reg.handle_timer(self.clock.set(reg.get_timer()))
        again = reg.response(self.registrar.challenge(refresh, "n2", stale=True), self.clock.now)
        self.assertEqual(self.registrar.verify(again)["nonce"], "n2")
        reg.response(self.registrar.ok(again), self.clock.now)
        self.assertEqual((reg.state, reg.failures), (REGISTERED, 0))


class TestAuthenticationFailure(unittest.TestCase):
    def setUp(self):
        self.registrar = Registrar()

    def test_same_nonce_refused_backs_off_not_loops(self):
        reg = make_registration(credentials=wrong_password, value=0.0)
        request = reg.start(0)
        request = reg.response(self.registrar.challenge(request), 0)
        self.assertIsNone(self.registrar.verify(request))
        self.assertIsNone(reg.response(self.registrar.challenge(request), 0))
        self.assertEqual(reg.state, BACKOFF)
        self.assertEqual(reg.last_error, "authentication failed")
        self.assertEqual(reg.failures, 1)
        self.assertEqual(reg.get_timer(), 30 * SECOND)
        self.assertIsNone(reg.outstanding)
        # The retry goes on the backoff schedule only, and fails the same way.
        self.assertIsNone(reg.handle_timer(30 * SECOND - 1))
        retry = reg.handle_timer(30 * SECOND)
        self.assertIsNotNone(retry.get("authorization"))
        self.assertIsNone(reg.response(self.registrar.challenge(retry), 30 * SECOND))
        self.assertEqual((reg.state, reg.failures), (BACKOFF, 2))
        self.assertEqual(reg.get_timer(), 90 * SECOND)

    def test_fresh_nonce_every_time_is_answered_twice_only(self):
        reg = make_registration(credentials=wrong_password)
        request = reg.start(0)
        sent = 1
        for nonce in ("n1", "n2", "n3", "n4"):
            request = reg.response(self.registrar.challenge(request, nonce), 0)
            if request is None:
                break
            sent += 1
        self.assertEqual(sent, 3)
        self.assertEqual((reg.state, reg.last_error), (BACKOFF, "authentication failed"))

    def test_challenge_without_credentials(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        self.assertIsNone(reg.response(self.registrar.challenge(request), 0))
        self.assertEqual((reg.state, reg.last_error), (BACKOFF, "authentication failed"))


class TestCredentialsChanged(unittest.TestCase):
    """A reloaded config with another password: the binding is renewed with it at once."""

    def setUp(self):
        self.registrar = Registrar()

    def test_a_failing_registration_retries_at_once_with_the_new_password(self):
        reg = make_registration(credentials=wrong_password, value=0.0)
        request = reg.response(self.registrar.challenge(reg.start(0)), 0)
        reg.response(self.registrar.challenge(request), 0)
        self.assertEqual((reg.state, reg.get_timer()), (BACKOFF, 30 * SECOND))
        retry = reg.credentials_changed(password, 2 * SECOND)
        self.assertIsNotNone(retry)  # now, not after the backoff
        answer = reg.response(self.registrar.challenge(retry, "n2"), 2 * SECOND)
        self.assertIsNotNone(self.registrar.verify(answer))
        reg.response(self.registrar.ok(answer, 600), 2 * SECOND)
        self.assertEqual((reg.state, reg.failures, reg.last_error), (REGISTERED, 0, None))

    def test_a_registered_binding_is_renewed_with_the_new_credentials(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        reg.response(self.registrar.ok(request, 600), 0)
        renewed = reg.credentials_changed(password, 5 * SECOND)
        self.assertEqual((renewed.cseq.number, renewed.call_id), (2, request.call_id))
        self.assertEqual(expires_of(renewed), 600)
        answer = reg.response(self.registrar.challenge(renewed), 5 * SECOND)
        self.assertEqual(parse_credentials(answer.get("authorization"))["username"],
                         "frontdoor")

    def test_while_registering_the_new_credentials_follow_the_final_response(self):
        reg = make_registration(credentials=wrong_password)
        request = reg.start(0)
        self.assertIsNone(reg.credentials_changed(password, 0))
        self.assertIs(reg.outstanding, request)
        again = reg.response(self.registrar.ok(request, 600), 0)
        self.assertIsNotNone(again)  # the REGISTER that carries them
        answer = reg.response(self.registrar.challenge(again), 0)
        self.assertIsNotNone(self.registrar.verify(answer))

    def test_before_start_nothing_is_sent(self):
        reg = make_registration(credentials=None)
        self.assertIsNone(reg.credentials_changed(password, 0))
        request = reg.start(0)
        answer = reg.response(self.registrar.challenge(request), 0)
        self.assertIsNotNone(self.registrar.verify(answer))


class TestBackoff(unittest.TestCase):
    def waits(self, value, count, some_flows_ok=False, lose="timed_out"):
        """The wait after each of `count` consecutive failures."""
        reg = make_registration(credentials=None, value=value, some_flows_ok=some_flows_ok)
        now = 0
        reg.start(now)
        out = []
        for i in range(count):
            self.assertIsNone(getattr(reg, lose)(now))
            self.assertEqual((reg.state, reg.failures), (BACKOFF, i + 1))
            out.append(reg.get_timer() - now)
            now = reg.get_timer()
            self.assertIsNotNone(reg.handle_timer(now))
        return out

    def test_limits(self):
        # RFC 5626 section 4.5: min(1800, base * 2 ** failures); three failures: 240 s.
        self.assertEqual([backoff_limit(n) // SECOND for n in range(1, 9)],
                         [60, 120, 240, 480, 960, 1800, 1800, 1800])
        self.assertEqual([backoff_limit(n, True) // SECOND for n in range(1, 6)],
                         [180, 360, 720, 1440, 1800])
        self.assertEqual(backoff_limit(1000), 1800 * SECOND)

    def test_time_outs_wait_between_half_and_all_of_the_limit(self):
        limits = [60, 120, 240, 480, 960, 1800, 1800, 1800]
        self.assertEqual(self.waits(0.0, 8), [n * SECOND // 2 for n in limits])
        self.assertEqual(self.waits(0.999, 8),
                         [n * SECOND // 2 + int(0.999 * n * SECOND // 2) for n in limits])
        for wait, limit in zip(self.waits(0.999, 8), limits):
            self.assertTrue(limit * SECOND // 2 <= wait < limit * SECOND)

    def test_some_flows_ok_uses_a_base_of_90_s(self):
        self.assertEqual(self.waits(0.0, 3, some_flows_ok=True),
                         [90 * SECOND, 180 * SECOND, 360 * SECOND])

    def test_time_out_and_transport_failure_errors(self):
        reg = make_registration(credentials=None)
        reg.start(0)
        reg.timed_out(0)
        self.assertEqual(reg.last_error, "no response from the registrar")
        now = reg.get_timer()
        reg.handle_timer(now)
        reg.transport_failed(now)
        self.assertEqual(reg.last_error, "could not send to the registrar")
        self.assertEqual(self.waits(0.0, 2, lose="transport_failed"), [30 * SECOND, 60 * SECOND])

    def test_failure_response_then_2xx_resets(self):
        registrar = Registrar()
        reg = make_registration(credentials=None, value=0.0)
        request = reg.start(0)
        self.assertIsNone(reg.response(registrar.fail(request, 403), 0))
        self.assertEqual((reg.state, reg.last_error, reg.failures), (BACKOFF, "403 Forbidden", 1))
        request = reg.handle_timer(30 * SECOND)
        reg.response(registrar.fail(request, 500), 30 * SECOND)
        self.assertEqual(reg.failures, 2)
        self.assertEqual(reg.get_timer(), 90 * SECOND)
        request = reg.handle_timer(90 * SECOND)
        reg.response(registrar.ok(request), 90 * SECOND)
        self.assertEqual((reg.state, reg.last_error, reg.failures), (REGISTERED, None, 0))

    def test_retry_after_longer_than_the_backoff_is_honoured(self):
        registrar = Registrar()
        reg = make_registration(credentials=None, value=0.0)
        request = reg.start(0)
        reg.response(registrar.fail(request, 503, [("Retry-After", "300 (maintenance)")]), 0)
        self.assertEqual(reg.last_error, "503 Service Unavailable")
        self.assertEqual(reg.get_timer(), 300 * SECOND)

    def test_200_without_our_contact_is_a_failure(self):
        registrar = Registrar()
        reg = make_registration(credentials=None, value=0.0)
        request = reg.start(0)
        other = ["<sip:frontdoor@192.0.2.99:5060>;expires=600"]
        self.assertIsNone(reg.response(registrar.ok(request, contacts=other), 0))
        self.assertEqual((reg.state, reg.failures), (BACKOFF, 1))
        self.assertEqual(reg.last_error, "200 OK without our Contact")
        self.assertFalse(reg.is_registered(0))
        self.assertEqual(reg.get_timer(), 30 * SECOND)

    def test_malformed_200_is_a_failure_not_an_exception(self):
        registrar = Registrar()
        for contacts in (["<sip:frontdoor@192.0.2.10:5060"], ['"x <%s>' % CONTACT],
                         ["<sip:frontdoor@192.0.2.10:5060>;expires=soon;;"]):
            reg = make_registration(credentials=None, value=0.0)
            request = reg.start(0)
            self.assertIsNone(reg.response(registrar.ok(request, contacts=contacts), 0))
            self.assertEqual((reg.state, reg.failures), (BACKOFF, 1))
            self.assertEqual(reg.last_error, "200 OK without our Contact")
        reg = make_registration(credentials=None)
        request = reg.start(0)
        reg.response(registrar.ok(request, contacts=["<%s>;expires=soon" % CONTACT]), 0)
        self.assertEqual((reg.state, reg.granted), (REGISTERED, 600))

    def test_refresh_failure_keeps_the_binding_until_it_lapses(self):
        registrar = Registrar()
        reg = make_registration(credentials=None, value=0.0)
        request = reg.start(0)
        reg.response(registrar.ok(request, 600), 0)
        refresh = reg.handle_timer(540 * SECOND)
        reg.timed_out(572 * SECOND)
        self.assertEqual(reg.state, BACKOFF)
        self.assertTrue(reg.is_registered(599 * SECOND))
        self.assertFalse(reg.is_registered(600 * SECOND))
        self.assertEqual(refresh.cseq.number, 2)


class TestStop(unittest.TestCase):
    def setUp(self):
        self.registrar = Registrar()
        self.registration = make_registration(credentials=None)

    def test_stop_unregisters_with_expires_zero(self):
        reg = self.registration
        request = reg.start(0)
        reg.response(self.registrar.ok(request, 120), 0)
        bye = reg.stop(10 * SECOND)
        self.assertEqual(expires_of(bye), 0)
        self.assertEqual(bye.get("contact"), "<%s>" % CONTACT)
        self.assertEqual((bye.cseq.number, bye.call_id), (2, request.call_id))
        self.assertEqual(reg.state, UNREGISTERING)
        self.assertIsNone(reg.stop(10 * SECOND))
        self.assertIsNone(reg.response(self.registrar.ok(bye, contacts=[]), 10 * SECOND))
        self.assertEqual(reg.state, UNREGISTERED)
        self.assertIsNone(reg.get_timer())
        self.assertFalse(reg.is_registered(10 * SECOND))
        again = reg.start(20 * SECOND)  # the same Call-ID for the whole boot cycle
        self.assertEqual((again.cseq.number, again.call_id), (3, request.call_id))

    def test_unregister_is_answered_through_a_challenge(self):
        reg = make_registration()
        request = reg.start(0)
        request = reg.response(self.registrar.challenge(request), 0)
        reg.response(self.registrar.ok(request), 0)
        bye = reg.stop(0)
        bye = reg.response(self.registrar.challenge(bye, "n2", stale=True), 0)
        self.assertEqual(expires_of(bye), 0)
        self.assertIsNotNone(self.registrar.verify(bye))
        reg.response(self.registrar.ok(bye, contacts=[]), 0)
        self.assertEqual(reg.state, UNREGISTERED)

    def test_stop_without_a_binding(self):
        reg = self.registration
        self.assertIsNone(reg.stop(0))
        request = reg.start(0)
        reg.timed_out(0)
        self.assertIsNone(reg.stop(0))
        self.assertEqual(reg.state, UNREGISTERED)
        self.assertIsNone(reg.get_timer())
        self.assertIsNotNone(request)

    def test_stop_while_registering_follows_the_final_response(self):
        reg = self.registration
        request = reg.start(0)
        self.assertIsNone(reg.stop(0))
        bye = reg.response(self.registrar.ok(request), 0)
        self.assertEqual(expires_of(bye), 0)
        self.assertEqual(reg.state, UNREGISTERING)
        reg.timed_out(32 * SECOND)
        self.assertEqual(reg.state, UNREGISTERED)
        self.assertEqual(reg.last_error, "no response from the registrar")

    def test_start_twice_is_misuse(self):
        self.registration.start(0)
        with self.assertRaises(InvalidState):
            self.registration.start(0)
        with self.assertRaises(SipError):
            Registration(AOR, REGISTRAR, CONTACT, TokenSource(), FixedRandom(0.0), reg_id=2)


class TestOutboundAndContactChange(unittest.TestCase):
    def setUp(self):
        self.registrar = Registrar()

    def test_outbound_contact_and_supported(self):
        reg = make_registration(credentials=None, instance_id=UUID)
        request = reg.start(0)
        self.assertEqual(request.get("contact"), '<%s>;reg-id=1;+sip.instance="<urn:uuid:%s>"'
                         % (CONTACT, UUID))
        contact = contact_of(request)
        self.assertEqual(contact.param("reg-id"), "1")
        self.assertEqual(contact.param("+sip.instance"), '"<urn:uuid:%s>"' % UUID)
        self.assertEqual(request.get_list("supported"), ["outbound", "path"])
        reg.response(self.registrar.ok(request, 300, fields=[("Require", "outbound")]), 0)
        self.assertEqual((reg.state, reg.outbound), (REGISTERED, True))

    def test_flow_timer_is_kept(self):
        reg = make_registration(credentials=None, instance_id=UUID)
        request = reg.start(0)
        reg.response(self.registrar.ok(request, 300, fields=[("Require", "outbound"),
                                                             ("Flow-Timer", "20")]), 0)
        self.assertEqual(reg.flow_timer, 20)

    def test_failover_resends_without_counting_a_failure(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        again = reg.failover(1 * SECOND)
        self.assertIs(reg.outstanding, again)
        self.assertEqual((again.call_id, again.cseq.number), (request.call_id, 2))
        self.assertEqual(expires_of(again), expires_of(request))
        self.assertEqual((reg.state, reg.failures, reg.last_error), (REGISTERING, 0, None))
        reg.response(self.registrar.ok(again), 1 * SECOND)
        self.assertEqual(reg.state, REGISTERED)
        self.assertIsNone(reg.failover(2 * SECOND))  # nothing outstanding

    def test_reg_id_and_urn_given(self):
        reg = make_registration(credentials=None, instance_id="urn:uuid:" + UUID, reg_id=2)
        contact = contact_of(reg.start(0))
        self.assertEqual(contact.param("reg-id"), "2")
        self.assertEqual(contact.param("+sip.instance"), '"<urn:uuid:%s>"' % UUID)

    def test_contact_changed_registers_at_once(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        reg.response(self.registrar.ok(request, 600), 0)
        moved = reg.contact_changed(NEW_CONTACT, 5 * SECOND)
        self.assertEqual(moved.get("contact"), "<%s>" % NEW_CONTACT)
        self.assertEqual((moved.cseq.number, moved.call_id), (2, request.call_id))
        self.assertEqual(expires_of(moved), 600)
        reg.response(self.registrar.ok(moved, 600), 5 * SECOND)
        self.assertEqual((reg.state, reg.contact), (REGISTERED, NEW_CONTACT))
        self.assertEqual(reg.next_refresh, 545 * SECOND)

    def test_contact_changed_while_registering_waits_for_the_final_response(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        self.assertIsNone(reg.contact_changed(NEW_CONTACT, 0))
        self.assertIs(reg.outstanding, request)
        moved = reg.timed_out(32 * SECOND)
        self.assertEqual(moved.get("contact"), "<%s>" % NEW_CONTACT)
        self.assertEqual(reg.state, REGISTERING)
        reg.response(self.registrar.ok(moved), 32 * SECOND)
        self.assertEqual((reg.state, reg.failures), (REGISTERED, 0))

    def test_a_2xx_is_matched_against_the_contact_it_answers(self):
        # The Contact changes while a REGISTER is out: its 2xx lists the old one, and is
        # a success; the new Contact goes next.
        reg = make_registration(credentials=None)
        request = reg.start(0)
        self.assertIsNone(reg.contact_changed(NEW_CONTACT, 0))
        moved = reg.response(self.registrar.ok(request), 0)
        self.assertEqual((reg.failures, reg.last_error), (0, None))
        self.assertTrue(reg.is_registered(0))
        self.assertEqual(moved.get("contact"), "<%s>" % NEW_CONTACT)
        reg.response(self.registrar.ok(moved), 0)
        self.assertEqual((reg.state, reg.failures), (REGISTERED, 0))

    def test_set_contact_goes_with_the_next_register(self):
        reg = make_registration(credentials=None)
        request = reg.start(0)
        reg.set_contact(NEW_CONTACT)
        again = reg.failover(0)
        self.assertEqual(again.get("contact"), "<%s>" % NEW_CONTACT)
        reg.response(self.registrar.ok(again), 0)
        self.assertEqual(reg.state, REGISTERED)
        self.assertEqual(request.get("contact"), "<%s>" % CONTACT)

    def test_contact_changed_before_start(self):
        reg = make_registration(credentials=None)
        self.assertIsNone(reg.contact_changed(NEW_CONTACT, 0))
        self.assertEqual(reg.start(0).get("contact"), "<%s>" % NEW_CONTACT)

    def test_status(self):
        reg = make_registration(credentials=None, value=0.0)
        request = reg.start(0)
        reg.response(self.registrar.ok(request, 120), 0)
        self.assertEqual(reg.status(30 * SECOND), {
            "aor": AOR, "contact": CONTACT, "state": REGISTERED, "registered": True,
            "expires_in": 90, "next_register_in": 30, "granted": 120, "outbound": False,
            "last_error": None, "failures": 0,
        })
