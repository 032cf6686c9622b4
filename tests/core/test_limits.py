"""The endpoint's limits: a request rate per source address, bounded transaction tables
(503 with Retry-After past them) and stateless answers that leave nothing behind."""

import unittest

from appliance.sip.errors import InvalidState
from appliance.sip.events import (
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    SourceLimited,
)
from appliance.sip.limits import Limits, RateLimiter
from appliance.sip.message import make_response

from .helpers import (
    ALICE,
    BOB,
    FakeClock,
    drain,
    events_of,
    invite,
    make_endpoint,
    options,
    outgoing,
    parsed,
    run_timers,
    sent,
    status_of,
    wire,
)

OTHER = ("127.0.0.9", 5070)  # another host than ALICE


def request_from(number, host="127.0.0.1", port=5061, make=options):
    return wire(make(branch="z9hG4bK-flood-%d" % number, call_id="flood-%d" % number,
                     sent_by="%s:%d" % (host, port)))


class RateLimiterTest(unittest.TestCase):
    def test_a_burst_then_the_rate(self):
        limiter = RateLimiter(rate=10, burst=5, max_sources=8)
        allowed = [limiter.allow("a", 0) for _ in range(8)]
        self.assertEqual(allowed, [1, 1, 1, 1, 1, -1, 0, 0])  # reported once
        self.assertEqual(limiter.allow("a", 99), 0)  # 0.99 of a request earned
        self.assertEqual(limiter.allow("a", 100), 1)  # a tenth of a second: one more
        self.assertEqual(limiter.allow("a", 100), 0)  # the same episode: reported once
        self.assertEqual(limiter.allow("b", 100), 1)  # others have their own allowance
        # Quiet until the whole allowance is back: the episode is over, the next reported.
        self.assertEqual([limiter.allow("a", 600) for _ in range(6)], [1, 1, 1, 1, 1, -1])

    def test_a_steady_flood_is_one_episode(self):
        limiter = RateLimiter(rate=50, burst=100, max_sources=8)
        results = [limiter.allow("a", now) for now in range(0, 60000, 2)]  # 500/s, a minute
        self.assertEqual(results.count(-1), 1)
        self.assertEqual(results.count(1), 100 + 3000 - 1)  # the burst, then 50/s

    def test_the_allowance_refills_to_the_burst_only(self):
        limiter = RateLimiter(rate=10, burst=3, max_sources=8)
        limiter.allow("a", 0)
        results = [limiter.allow("a", 60000) for _ in range(4)]  # a minute idle
        self.assertEqual(results, [1, 1, 1, -1])

    def test_the_table_of_addresses_stays_bounded(self):
        limiter = RateLimiter(rate=10, burst=2, max_sources=4)
        for n in range(100):
            address = "10.0.0.%d" % n
            for _ in range(3):
                limiter.allow(address, 0)  # each one limited, none forgettable
            self.assertLessEqual(len(limiter._buckets), 4)
        self.assertEqual(len(limiter.limited(0)), 4)

    def test_addresses_with_a_whole_allowance_are_forgotten_first(self):
        limiter = RateLimiter(rate=10, burst=2, max_sources=2)
        limiter.allow("quiet", 0)
        for _ in range(3):
            limiter.allow("noisy", 1000)
        limiter.allow("new", 2000)  # "quiet" is whole again (and "noisy" too, by now)
        self.assertIn("new", limiter._buckets)
        self.assertLessEqual(len(limiter._buckets), 2)


class RateLimitTest(unittest.TestCase):
    def setUp(self):
        self.ep = make_endpoint("bob", limits=Limits(rate=10, burst=5))

    def test_a_source_past_its_rate_is_dropped_unanswered_and_reported_once(self):
        for n in range(20):
            self.ep.receive(request_from(n), "udp", ALICE, 0)
        events = drain(self.ep)
        self.assertEqual(len(events_of(events, RequestReceived)), 5)
        self.assertEqual(len(events_of(events, SourceLimited)), 1)
        self.assertEqual(self.ep.limited, 15)

    def test_another_source_carries_on(self):
        for n in range(20):
            self.ep.receive(request_from(n), "udp", ALICE, 0)
        drain(self.ep)
        self.ep.receive(request_from(99, *OTHER), "udp", OTHER, 0)
        self.assertEqual(len(events_of(drain(self.ep), RequestReceived)), 1)

    def test_garbage_and_stray_responses_count_against_the_rate(self):
        for _ in range(10):
            self.ep.receive(b"\x16\x03\x01 not sip at all", "udp", ALICE, 0)
        self.assertEqual(self.ep.limited, 5)
        response = make_response(parsed_options(), 200, to_tag="t")
        self.ep.receive(response.to_bytes(), "udp", ALICE, 0)
        self.assertEqual(self.ep.limited, 6)  # nothing of ours went there

    def test_responses_from_where_our_requests_went_do_not(self):
        ep = make_endpoint("alice", limits=Limits(rate=10, burst=5))
        sent_ones = []
        for n in range(20):  # a burst of requests of ours to bob, as of REGISTERs
            request = outgoing(options(call_id="ours-%d" % n))
            sent_ones.append(ep.send_request(request, ("udp",) + BOB, 0))
        sent(ep)
        for transaction in sent_ones:
            ep.receive(make_response(transaction.request, 200, to_tag="b").to_bytes(), "udp",
                       BOB, 0)
        self.assertEqual(ep.limited, 0)
        self.assertEqual(len(events_of(drain(ep), ResponseReceived)), 20)

    def test_the_source_is_served_again_once_it_slows_down(self):
        for n in range(20):
            self.ep.receive(request_from(n), "udp", ALICE, 0)
        drain(self.ep)
        self.ep.receive(request_from(50), "udp", ALICE, 1000)  # a second: ten earned
        self.assertEqual(len(events_of(drain(self.ep), RequestReceived)), 1)

    def test_rate_zero_turns_the_limit_off(self):
        ep = make_endpoint("bob", limits=Limits(rate=0))
        for n in range(200):
            ep.receive(request_from(n), "udp", ALICE, 0)
        self.assertEqual(len(events_of(drain(ep), RequestReceived)), 200)


def parsed_options():
    from appliance.sip.message import parse_message

    return parse_message(request_from(1))


class TableLimitTest(unittest.TestCase):
    def test_past_the_per_source_bound_a_request_gets_503_with_retry_after(self):
        ep = make_endpoint("bob", limits=Limits(rate=0, max_per_source=3, retry_after=7))
        for n in range(4):
            ep.receive(request_from(n), "udp", ALICE, 0)
        events = drain(ep)
        self.assertEqual(len(events_of(events, RequestReceived)), 3)
        rejected = events_of(events, RequestRejected)
        self.assertEqual([event.response.status for event in rejected], [503])
        self.assertEqual(rejected[0].response.get("retry-after"), "7")
        self.assertEqual(len(ep.server_transactions), 3)  # the 503 left none behind
        self.assertEqual(ep.refused, 1)
        self.assertEqual([status_of(datagram) for datagram in sent(ep)], [503])
        # Another address still gets in.
        ep.receive(request_from(9, *OTHER), "udp", OTHER, 0)
        self.assertEqual(len(events_of(drain(ep), RequestReceived)), 1)

    def test_past_the_total_bound_every_source_gets_503(self):
        ep = make_endpoint("bob", limits=Limits(rate=0, max_transactions=2))
        ep.receive(request_from(1), "udp", ALICE, 0)
        ep.receive(request_from(2, *OTHER), "udp", OTHER, 0)
        ep.receive(request_from(3, "127.0.0.10", 5060), "udp", ("127.0.0.10", 5060), 0)
        statuses = [event.response.status for event in events_of(drain(ep), RequestRejected)]
        self.assertEqual(statuses, [503])

    def test_a_finished_transaction_frees_its_place(self):
        ep = make_endpoint("bob", ("udp", "tcp"), limits=Limits(rate=0, max_per_source=1))
        ep.receive(request_from(1), "tcp", ALICE, 0)
        (event,) = drain(ep)
        ep.respond(event.transaction, 200, now=0)  # over TCP, no timer J: ends at once
        sent(ep)
        ep.receive(request_from(2), "tcp", ALICE, 0)
        self.assertEqual(len(events_of(drain(ep), RequestReceived)), 1)

    def test_retransmissions_of_a_held_transaction_are_still_absorbed(self):
        ep = make_endpoint("bob", limits=Limits(rate=0, max_per_source=1))
        ep.receive(request_from(1), "udp", ALICE, 0)
        (event,) = drain(ep)
        ep.respond(event.transaction, 200, now=0)
        sent(ep)
        ep.receive(request_from(1), "udp", ALICE, 10)  # the same request again
        self.assertEqual([status_of(datagram) for datagram in sent(ep)], [200])


class StatelessAnswerTest(unittest.TestCase):
    def test_a_stateless_challenge_keeps_no_transaction(self):
        ep = make_endpoint("bob")
        ep.receive(request_from(1, make=invite), "udp", ALICE, 0)
        (event,) = drain(ep)
        ep.respond(event.transaction, 401, fields=[("WWW-Authenticate", "Digest x")],
                   now=0, stateless=True)
        self.assertEqual([status_of(datagram) for datagram in sent(ep)], [401])
        self.assertEqual(ep.server_transactions, {})
        self.assertEqual(run_timers(ep, FakeClock(), 64000), [])  # no timer G: no resend
        # The INVITE again is a new request, answered anew by the user.
        ep.receive(request_from(1, make=invite), "udp", ALICE, 100)
        self.assertEqual(len(events_of(drain(ep), RequestReceived)), 1)

    def test_a_2xx_to_invite_is_never_stateless(self):
        ep = make_endpoint("bob")
        ep.receive(request_from(1, make=invite), "udp", ALICE, 0)
        (event,) = drain(ep)
        with self.assertRaises(InvalidState):
            ep.respond(event.transaction, 200, now=0, stateless=True)

    def test_a_stateless_200_to_options_reaches_the_sender(self):
        ep = make_endpoint("bob")
        ep.receive(request_from(1), "udp", ALICE, 0)
        (event,) = drain(ep)
        ep.respond(event.transaction, 200, now=0, stateless=True)
        (datagram,) = sent(ep)
        self.assertEqual((datagram.host, datagram.port), ALICE)
        self.assertEqual(parsed(datagram).call_id, "flood-1")
        self.assertEqual(ep.server_transactions, {})
