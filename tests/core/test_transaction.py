"""The four transaction state machines of RFC 3261 section 17, driven through an Endpoint
with a fake clock: every timer's exact firing times, every transition, and the TRANSITIONS
table itself."""

import unittest

from appliance.sip.errors import InvalidState
from appliance.sip.events import TransportFailed
from appliance.sip.message import Request, make_response, parse_message
from appliance.sip.transaction import (
    ACCEPTED,
    CALLING,
    COMPLETED,
    CONFIRMED,
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    PROCEEDING,
    TERMINATED,
    TRANSITIONS,
    TRYING,
    TRYING_DELAY,
    TimerValues,
    status_class,
)

from .helpers import (
    ALICE,
    BOB,
    FakeClock,
    ack,
    drain,
    invite,
    kinds,
    make_endpoint,
    options,
    outgoing,
    parsed,
    run_timers,
    sent,
    status_of,
    times,
    wire,
)

TO_BOB = ("udp",) + BOB


def answer(request_datagram, status, to_tag="bob-tag", fields=None):
    """The bytes of bob's response to a request alice sent."""
    request = parsed(request_datagram)
    return make_response(request, status, to_tag=to_tag, fields=fields).to_bytes()


def deltas(values):
    return [b - a for a, b in zip(values, values[1:])]


class ClientCase(unittest.TestCase):
    transport = "udp"
    timers = None

    def setUp(self):
        self.clock = FakeClock()
        self.ep = make_endpoint("alice", self.transport, timers=self.timers)

    def send(self, request, destination=None):
        if destination is None:
            destination = (self.transport,) + BOB
        tx = self.ep.send_request(outgoing(request), destination, self.clock.now)
        out = sent(self.ep)
        self.assertEqual(len(out), 1)
        return tx, out[0]

    def receive(self, data):
        self.ep.receive(data, self.transport, BOB, self.clock.now)
        return drain(self.ep)

    def run_to(self, until):
        return run_timers(self.ep, self.clock, until)


class NonInviteClientUdpTest(ClientCase):
    def test_starts_in_trying_keyed_by_branch_and_method(self):
        tx, first = self.send(options())
        self.assertEqual(tx.machine, NON_INVITE_CLIENT)
        self.assertEqual(tx.state, TRYING)
        branch = parsed(first).top_via().branch
        self.assertEqual(tx.key, (branch, "OPTIONS"))
        self.assertIs(self.ep.client_transactions[tx.key], tx)
        self.assertEqual(first.transport, "udp")
        self.assertEqual((first.host, first.port), BOB)

    def test_timer_e_doubles_up_to_t2_then_timer_f_times_out(self):
        tx, first = self.send(options())
        timed = self.run_to(32000)
        # E fires at T1, then each interval doubles up to T2 (RFC 3261 17.1.2.2).
        self.assertEqual(
            times(timed), [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        )
        self.assertEqual(deltas([0] + times(timed)),
                         [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000])
        for _, datagram in timed:
            self.assertEqual(datagram.data, first.data)
            self.assertEqual((datagram.transport, datagram.host, datagram.port),
                             ("udp",) + BOB)
        # Timer F = 64*T1 = 32 s.
        events = drain(self.ep)
        self.assertEqual(kinds(events), ["TransactionTimedOut"])
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})
        # Nothing more, ever.
        self.assertEqual(self.run_to(100000), [])
        self.assertEqual(drain(self.ep), [])

    def test_timer_f_not_before_64_t1(self):
        tx, _ = self.send(options())
        self.run_to(31999)
        self.assertEqual(drain(self.ep), [])
        self.assertEqual(tx.state, TRYING)
        self.run_to(32000)
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])

    def test_provisional_moves_to_proceeding_and_e_continues_at_t2(self):
        tx, first = self.send(options())
        self.assertEqual(times(self.run_to(600)), [500])
        self.clock.set(600)
        events = self.receive(answer(first, 100, to_tag=None))
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertEqual(events[0].response.status, 100)
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, PROCEEDING)
        self.assertIsNone(tx.response)
        # The E armed in Trying fires at 1500; from Proceeding on it is reset to T2.
        timed = self.run_to(20000)
        self.assertEqual(times(timed), [1500, 5500, 9500, 13500, 17500])
        self.assertEqual(sent(self.ep), [])

    def test_more_provisionals_stay_in_proceeding(self):
        tx, first = self.send(options())
        self.receive(answer(first, 100, to_tag=None))
        events = self.receive(answer(first, 180))
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertEqual(tx.state, PROCEEDING)

    def test_timer_f_fires_in_proceeding(self):
        tx, first = self.send(options())
        self.receive(answer(first, 100, to_tag=None))
        self.run_to(32000)
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})

    def test_final_response_completes_then_timer_k_terminates(self):
        tx, first = self.send(options())
        self.clock.set(700)
        events = self.receive(answer(first, 200))
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertEqual(events[0].response.status, 200)
        self.assertEqual(tx.state, COMPLETED)
        self.assertEqual(tx.response.status, 200)
        # No retransmission in Completed; K = T4 = 5 s.
        self.assertEqual(self.run_to(5699), [])
        self.assertEqual(tx.state, COMPLETED)
        self.assertIs(self.ep.client_transactions[tx.key], tx)
        self.run_to(5700)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})
        # Timer F, still in the queue, has nothing left to act on, and no longer holds
        # the ended transaction (nor its messages) until it is due at 32 s.
        self.assertEqual(tx.timers, [])
        self.assertFalse([entry for entry in self.ep._timers if entry[2] is tx])
        self.assertEqual(self.run_to(40000), [])
        self.assertEqual(drain(self.ep), [])

    def test_error_response_completes_too(self):
        for status in (302, 404, 503, 603):
            tx, first = self.send(options())
            events = self.receive(answer(first, status))
            self.assertEqual(kinds(events), ["ResponseReceived"])
            self.assertEqual(tx.state, COMPLETED)
            self.assertEqual(sent(self.ep), [])  # no ACK outside INVITE

    def test_retransmitted_final_absorbed_in_completed(self):
        tx, first = self.send(options())
        data = answer(first, 200)
        self.assertEqual(kinds(self.receive(data)), ["ResponseReceived"])
        self.assertEqual(self.receive(data), [])
        self.assertEqual(self.receive(answer(first, 100, to_tag=None)), [])
        self.assertEqual(sent(self.ep), [])
        self.assertEqual(tx.state, COMPLETED)

    def test_response_after_terminated_is_a_stray(self):
        tx, first = self.send(options())
        self.receive(answer(first, 200))
        self.run_to(5000)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(kinds(self.receive(answer(first, 200))), ["MessageDropped"])

    def test_transport_error_in_trying(self):
        tx, _ = self.send(options())
        self.ep.transport_error("udp", BOB[0], BOB[1], 10)
        events = drain(self.ep)
        self.assertEqual(kinds(events), ["TransportFailed"])
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})
        self.assertEqual(self.run_to(40000), [])
        self.assertEqual(drain(self.ep), [])

    def test_transport_error_in_proceeding(self):
        tx, first = self.send(options())
        self.receive(answer(first, 100, to_tag=None))
        self.ep.transport_error("udp", BOB[0], BOB[1], 10)
        self.assertEqual(kinds(drain(self.ep)), ["TransportFailed"])
        self.assertEqual(tx.state, TERMINATED)

    def test_transport_error_elsewhere_is_ignored(self):
        tx, _ = self.send(options())
        self.ep.transport_error("udp", "192.0.2.1", 5060, 10)
        self.ep.transport_error("tcp", BOB[0], BOB[1], 10)
        self.assertEqual(drain(self.ep), [])
        self.assertEqual(tx.state, TRYING)

    def test_transport_error_in_completed_is_ignored(self):
        tx, first = self.send(options())
        self.receive(answer(first, 200))
        self.ep.transport_error("udp", BOB[0], BOB[1], 10)
        self.assertEqual(drain(self.ep), [])
        self.assertEqual(tx.state, COMPLETED)


class NonInviteClientTcpTest(ClientCase):
    transport = "tcp"

    def test_no_retransmissions_and_timer_f(self):
        tx, first = self.send(options())
        self.assertEqual(first.transport, "tcp")
        self.assertEqual(self.run_to(31999), [])
        self.assertEqual(drain(self.ep), [])
        self.run_to(32000)
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])
        self.assertEqual(tx.state, TERMINATED)

    def test_timer_k_is_zero(self):
        tx, first = self.send(options())
        events = self.receive(answer(first, 200))
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})
        self.assertEqual(tx.response.status, 200)

    def test_provisional_then_final(self):
        tx, first = self.send(options())
        self.receive(answer(first, 100, to_tag=None))
        self.assertEqual(tx.state, PROCEEDING)
        self.receive(answer(first, 404))
        self.assertEqual(tx.state, TERMINATED)


class NonInviteClientScaledTimersTest(ClientCase):
    timers = TimerValues(t1=100, t2=400, t4=1000)

    def test_timers_scale_with_t1_t2_t4(self):
        self.send(options())
        timed = self.run_to(6400)
        # E: T1, 2*T1, then capped at T2 = 400; F at 64*T1 = 6.4 s.
        self.assertEqual(times(timed)[:6], [100, 300, 700, 1100, 1500, 1900])
        self.assertEqual(times(timed)[-1], 6300)
        self.assertEqual(deltas(times(timed))[1:], [400] * (len(timed) - 2))
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])

    def test_timer_f_at_64_t1(self):
        self.send(options())
        self.run_to(6399)
        self.assertEqual(drain(self.ep), [])
        self.run_to(6400)
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])

    def test_timer_k_is_t4(self):
        tx, first = self.send(options())
        self.receive(answer(first, 200))
        self.run_to(999)
        self.assertEqual(tx.state, COMPLETED)
        self.run_to(1000)
        self.assertEqual(tx.state, TERMINATED)


class InviteClientUdpTest(ClientCase):
    def test_starts_in_calling(self):
        tx, _ = self.send(invite())
        self.assertEqual(tx.machine, INVITE_CLIENT)
        self.assertEqual(tx.state, CALLING)
        self.assertEqual(tx.key[1], "INVITE")

    def test_timer_a_doubles_without_cap_then_timer_b(self):
        tx, first = self.send(invite())
        timed = self.run_to(32000)
        self.assertEqual(times(timed), [500, 1500, 3500, 7500, 15500, 31500])
        self.assertEqual(deltas([0] + times(timed)), [500, 1000, 2000, 4000, 8000, 16000])
        for _, datagram in timed:
            self.assertEqual(datagram.data, first.data)
        events = drain(self.ep)
        self.assertEqual(kinds(events), ["TransactionTimedOut"])
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})
        self.assertEqual(self.run_to(100000), [])

    def test_provisional_stops_timer_a(self):
        tx, first = self.send(invite())
        self.assertEqual(times(self.run_to(1600)), [500, 1500])
        events = self.receive(answer(first, 180))
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertEqual(tx.state, PROCEEDING)
        # No retransmission in Proceeding, and timer B has no effect there (figure 5):
        # the TU ends a call attempt that rings forever with CANCEL.
        self.assertEqual(self.run_to(100000), [])
        self.assertEqual(drain(self.ep), [])
        self.assertEqual(tx.state, PROCEEDING)

    def test_each_provisional_is_passed_up(self):
        tx, first = self.send(invite())
        self.receive(answer(first, 100, to_tag=None))
        events = self.receive(answer(first, 180)) + self.receive(answer(first, 183))
        self.assertEqual([e.response.status for e in events], [180, 183])
        self.assertEqual(tx.state, PROCEEDING)

    def test_error_response_is_acked_by_the_transaction(self):
        request = invite(fields=[("Route", "<sip:proxy.example.com;lr>")])
        tx, first = self.send(request)
        sent_invite = parsed(first)
        response = answer(first, 486)
        self.clock.set(1000)
        events = self.receive(response)
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertEqual(events[0].response.status, 486)
        self.assertEqual(tx.state, COMPLETED)
        out = sent(self.ep)
        self.assertEqual(len(out), 1)
        self.assertEqual((out[0].transport, out[0].host, out[0].port), ("udp",) + BOB)
        ack_ = parsed(out[0])
        self.assertIsInstance(ack_, Request)
        self.assertEqual(ack_.method, "ACK")
        # RFC 3261 17.1.1.3: same Request-URI, one Via equal to the INVITE's top Via,
        # From, Call-ID and Route of the INVITE, To of the response, CSeq number/ACK.
        self.assertEqual(ack_.uri_text, sent_invite.uri_text)
        self.assertEqual(ack_.get_all("via"), [sent_invite.get("via")])
        self.assertEqual(ack_.top_via().branch, sent_invite.top_via().branch)
        self.assertEqual(ack_.get("cseq"), "1 ACK")
        self.assertEqual(ack_.cseq.number, sent_invite.cseq.number)
        self.assertEqual(ack_.get("to"), parse_message(response).get("to"))
        self.assertEqual(ack_.to.tag, "bob-tag")
        self.assertEqual(ack_.get("from"), sent_invite.get("from"))
        self.assertEqual(ack_.call_id, sent_invite.call_id)
        self.assertEqual(ack_.get_all("route"), ["<sip:proxy.example.com;lr>"])
        self.assertEqual(ack_.get("max-forwards"), "70")
        self.assertEqual(ack_.body, b"")

    def test_all_error_classes_are_acked(self):
        for status in (300, 404, 500, 600):
            tx, first = self.send(invite())
            self.receive(answer(first, status))
            self.assertEqual(tx.state, COMPLETED)
            out = sent(self.ep)
            self.assertEqual(len(out), 1)
            self.assertEqual(parsed(out[0]).method, "ACK")

    def test_error_after_provisional_is_acked(self):
        tx, first = self.send(invite())
        self.receive(answer(first, 180))
        self.receive(answer(first, 603))
        self.assertEqual(tx.state, COMPLETED)
        self.assertEqual(parsed(sent(self.ep)[0]).method, "ACK")

    def test_retransmitted_error_resends_ack_without_event(self):
        tx, first = self.send(invite())
        response = answer(first, 486)
        self.assertEqual(kinds(self.receive(response)), ["ResponseReceived"])
        first_ack = sent(self.ep)
        for _ in range(3):
            self.assertEqual(self.receive(response), [])
            again = sent(self.ep)
            self.assertEqual(len(again), 1)
            self.assertEqual(again[0].data, first_ack[0].data)
        self.assertEqual(tx.state, COMPLETED)

    def test_no_invite_retransmission_in_completed(self):
        _, first = self.send(invite())
        self.clock.set(100)
        self.receive(answer(first, 486))
        sent(self.ep)
        self.assertEqual(self.run_to(31000), [])

    def test_timer_d_is_32_seconds(self):
        tx, first = self.send(invite())
        self.clock.set(1000)
        self.receive(answer(first, 486))
        self.run_to(32999)
        self.assertEqual(tx.state, COMPLETED)
        self.assertIs(self.ep.client_transactions[tx.key], tx)
        self.run_to(33000)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})
        self.assertEqual(drain(self.ep), [])  # D ends quietly

    def test_2xx_is_passed_up_and_accepted_lasts_64_t1(self):
        tx, first = self.send(invite())
        self.run_to(100)
        self.receive(answer(first, 180))
        events = self.receive(answer(first, 200))
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertEqual(events[0].response.status, 200)
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, ACCEPTED)  # RFC 6026
        self.assertEqual(tx.response.status, 200)
        # The ACK for a 2xx is the TU's: the transaction sends none ...
        self.assertEqual(sent(self.ep), [])
        # ... and every 2xx that follows (its ACK lost, or another fork) goes up too.
        self.assertEqual(self.run_to(2000), [])
        again = self.receive(answer(first, 200, to_tag="fork2"))
        self.assertEqual(kinds(again), ["ResponseReceived"])
        self.assertEqual(again[0].response.to.tag, "fork2")
        self.assertEqual(self.run_to(32099), [])
        self.assertEqual(tx.state, ACCEPTED)
        self.run_to(32100)  # timer M = 64*T1 after the first 2xx
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})
        self.assertEqual(drain(self.ep), [])

    def test_2xx_in_calling(self):
        tx, first = self.send(invite())
        self.receive(answer(first, 200))
        self.assertEqual(tx.state, ACCEPTED)

    def test_transport_error_in_calling(self):
        tx, _ = self.send(invite())
        self.ep.transport_error("udp", BOB[0], BOB[1], 0)
        events = drain(self.ep)
        self.assertEqual(kinds(events), ["TransportFailed"])
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})

    def test_transport_error_in_completed(self):
        tx, first = self.send(invite())
        self.receive(answer(first, 486))
        self.ep.transport_error("udp", BOB[0], BOB[1], 0)
        self.assertEqual(kinds(drain(self.ep)), ["TransportFailed"])
        self.assertEqual(tx.state, TERMINATED)


class InviteClientTcpTest(ClientCase):
    transport = "tcp"

    def test_no_timer_a_but_timer_b(self):
        self.send(invite())
        self.assertEqual(self.run_to(31999), [])
        self.run_to(32000)
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])

    def test_timer_d_is_zero(self):
        tx, first = self.send(invite())
        events = self.receive(answer(first, 486))
        self.assertEqual(kinds(events), ["ResponseReceived"])
        out = sent(self.ep)
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0].transport, "tcp")
        self.assertEqual(parsed(out[0]).method, "ACK")
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.client_transactions, {})


class InviteClientScaledTimersTest(ClientCase):
    timers = TimerValues(t1=100, t2=400, t4=1000)

    def test_timer_a_and_b_scale_with_t1(self):
        self.send(invite())
        timed = self.run_to(6400)
        # A is never capped by T2.
        self.assertEqual(times(timed), [100, 300, 700, 1500, 3100, 6300])
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])

    def test_timer_d_does_not_scale(self):
        # Timer D is "> 32 s for UDP" (RFC 3261 table 4), not a multiple of T1.
        tx, first = self.send(invite())
        self.receive(answer(first, 486))
        self.run_to(31999)
        self.assertEqual(tx.state, COMPLETED)
        self.run_to(32000)
        self.assertEqual(tx.state, TERMINATED)


class ServerCase(unittest.TestCase):
    transport = "udp"
    timers = None

    def setUp(self):
        self.clock = FakeClock()
        self.ep = make_endpoint("bob", self.transport, timers=self.timers)

    def receive(self, request, at=None):
        if at is not None:
            self.clock.set(at)
        data = request if isinstance(request, bytes) else wire(request)
        self.ep.receive(data, self.transport, ALICE, self.clock.now)
        return drain(self.ep)

    def start(self, request):
        events = self.receive(request)
        self.assertEqual(kinds(events), ["RequestReceived"])
        return events[0].transaction

    def respond(self, tx, status, at=None, **kw):
        if at is not None:
            self.clock.set(at)
        response = self.ep.respond(tx, status, now=self.clock.now, **kw)
        out = sent(self.ep)
        self.assertEqual(len(out), 1)
        self.assertEqual(status_of(out[0]), status)
        return response, out[0]

    def run_to(self, until):
        return run_timers(self.ep, self.clock, until)


class NonInviteServerUdpTest(ServerCase):
    def test_starts_in_trying(self):
        tx = self.start(options())
        self.assertEqual(tx.machine, NON_INVITE_SERVER)
        self.assertEqual(tx.state, TRYING)
        self.assertIs(self.ep.server_transactions[tx.key], tx)
        self.assertEqual(tx.key[0], "z9hG4bK-test-1")
        self.assertEqual(sent(self.ep), [])
        # Unlike INVITE, no automatic 100 Trying.
        self.assertEqual(self.run_to(1000), [])

    def test_retransmission_absorbed_in_trying(self):
        tx = self.start(options())
        self.assertEqual(self.receive(options(), at=500), [])
        self.assertEqual(sent(self.ep), [])
        self.assertEqual(tx.state, TRYING)

    def test_provisional_then_retransmission_resends_it(self):
        tx = self.start(options())
        _, provisional = self.respond(tx, 100)
        self.assertEqual(tx.state, PROCEEDING)
        self.assertEqual(self.receive(options(), at=500), [])
        again = sent(self.ep)
        self.assertEqual([d.data for d in again], [provisional.data])

    def test_final_response_then_retransmission_gets_it_again(self):
        tx = self.start(options())
        _, final = self.respond(tx, 200, at=600)
        self.assertEqual(tx.state, COMPLETED)
        for at in (1000, 2000, 4000):
            self.assertEqual(self.receive(options(), at=at), [])
            again = sent(self.ep)
            self.assertEqual(len(again), 1)
            self.assertEqual(again[0].data, final.data)
            self.assertEqual((again[0].host, again[0].port), ALICE)

    def test_no_retransmission_of_its_own(self):
        tx = self.start(options())
        self.respond(tx, 200)
        self.assertEqual(self.run_to(40000), [])

    def test_timer_j_is_64_t1(self):
        tx = self.start(options())
        self.respond(tx, 200, at=600)
        self.run_to(32599)
        self.assertEqual(tx.state, COMPLETED)
        self.assertIs(self.ep.server_transactions[tx.key], tx)
        self.run_to(32600)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.server_transactions, {})
        self.assertEqual(drain(self.ep), [])
        # The same request now starts a new transaction.
        self.assertEqual(kinds(self.receive(options())), ["RequestReceived"])

    def test_second_final_response_raises(self):
        tx = self.start(options())
        self.respond(tx, 200)
        with self.assertRaises(InvalidState):
            self.ep.respond(tx, 500, now=0)
        with self.assertRaises(InvalidState):
            self.ep.respond(tx, 180, now=0)
        self.assertEqual(sent(self.ep), [])

    def test_transport_error_in_trying_terminates_quietly(self):
        tx = self.start(options())
        self.respond(tx, 100)
        self.ep.transport_error("udp", ALICE[0], ALICE[1], 0)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.server_transactions, {})
        self.assertEqual(drain(self.ep), [])


class NonInviteServerTcpTest(ServerCase):
    transport = "tcp"

    def test_timer_j_is_zero(self):
        tx = self.start(options(transport="TCP"))
        _, final = self.respond(tx, 200)
        self.assertEqual(final.transport, "tcp")
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.server_transactions, {})


class InviteServerUdpTest(ServerCase):
    def test_starts_in_proceeding(self):
        tx = self.start(invite())
        self.assertEqual(tx.machine, INVITE_SERVER)
        self.assertEqual(tx.state, PROCEEDING)
        self.assertEqual(tx.key, ("z9hG4bK-test-1", "127.0.0.1:5061", "INVITE"))

    def test_100_trying_after_200_ms(self):
        tx = self.start(invite())
        self.assertEqual(TRYING_DELAY, 200)
        self.assertEqual(self.run_to(199), [])
        timed = self.run_to(200)
        self.assertEqual(times(timed), [200])
        trying = parsed(timed[0][1])
        self.assertEqual(trying.status, 100)
        # A 100 carries no To tag (RFC 3261 8.2.6.1) and copies the rest.
        self.assertIsNone(trying.to.tag)
        request = invite()
        for name in ("via", "from", "to", "call-id", "cseq"):
            self.assertEqual(trying.get(name), request.get(name))
        self.assertEqual(tx.state, PROCEEDING)
        # Just one.
        self.assertEqual(self.run_to(40000), [])

    def test_no_100_when_the_tu_answered_sooner(self):
        tx = self.start(invite())
        self.respond(tx, 180, at=50)
        self.assertEqual(self.run_to(40000), [])

    def test_no_100_after_a_final_response(self):
        tx = self.start(invite())
        self.respond(tx, 200, at=10)
        self.assertEqual(self.run_to(1000), [])

    def test_retransmitted_invite_resends_last_provisional(self):
        tx = self.start(invite())
        self.respond(tx, 180, at=50)
        _, ringing = self.respond(tx, 183, at=60)
        self.assertEqual(self.receive(invite(), at=500), [])
        again = sent(self.ep)
        self.assertEqual([d.data for d in again], [ringing.data])
        self.assertEqual(tx.state, PROCEEDING)

    def test_retransmitted_invite_resends_the_automatic_100(self):
        self.start(invite())
        timed = self.run_to(200)
        self.assertEqual(self.receive(invite(), at=500), [])
        self.assertEqual([d.data for d in sent(self.ep)], [timed[0][1].data])

    def test_retransmitted_invite_before_any_response(self):
        self.start(invite())
        self.assertEqual(self.receive(invite(), at=100), [])
        self.assertEqual(sent(self.ep), [])

    def test_error_response_retransmitted_by_timer_g_until_timer_h(self):
        tx = self.start(invite())
        _, final = self.respond(tx, 486, at=1000)
        self.assertEqual(tx.state, COMPLETED)
        timed = self.run_to(33000)
        # G: T1, 2*T1, 4*T1, then capped at T2 (RFC 3261 17.2.1); H = 64*T1.
        self.assertEqual(
            times(timed),
            [1500, 2500, 4500, 8500, 12500, 16500, 20500, 24500, 28500, 32500],
        )
        for _, datagram in timed:
            self.assertEqual(datagram.data, final.data)
        events = drain(self.ep)
        self.assertEqual(kinds(events), ["TransactionTimedOut"])
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.server_transactions, {})
        self.assertEqual(self.run_to(100000), [])

    def test_timer_h_not_before_64_t1(self):
        tx = self.start(invite())
        self.respond(tx, 486, at=1000)
        self.run_to(32999)
        self.assertEqual(drain(self.ep), [])
        self.assertEqual(tx.state, COMPLETED)

    def test_retransmitted_invite_in_completed_resends_final(self):
        tx = self.start(invite())
        _, final = self.respond(tx, 404)
        self.assertEqual(self.receive(invite(), at=100), [])
        self.assertEqual([d.data for d in sent(self.ep)], [final.data])

    def test_ack_confirms_then_timer_i(self):
        tx = self.start(invite())
        response, _ = self.respond(tx, 486, at=1000)
        to_tag = response.to.tag
        self.assertIsNotNone(to_tag)
        self.assertEqual(times(self.run_to(1600)), [1500])
        # The ACK for a non-2xx has the INVITE's branch (RFC 3261 17.1.1.3).
        events = self.receive(ack(to_tag=to_tag), at=1600)
        self.assertEqual(events, [])  # absorbed by the transaction
        self.assertEqual(tx.state, CONFIRMED)
        # ACK retransmissions are absorbed in Confirmed.
        self.assertEqual(self.receive(ack(to_tag=to_tag), at=1700), [])
        self.assertEqual(sent(self.ep), [])
        # G stopped (the one due at 2500 does nothing), H too.
        self.assertEqual(self.run_to(6599), [])
        self.assertEqual(tx.state, CONFIRMED)
        # I = T4 = 5 s after the ACK.
        self.run_to(6600)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.server_transactions, {})
        self.run_to(40000)
        self.assertEqual(drain(self.ep), [])

    def test_ack_in_proceeding_does_nothing(self):
        tx = self.start(invite())
        self.assertEqual(self.receive(ack()), [])
        self.assertEqual(tx.state, PROCEEDING)

    def test_2xx_is_accepted_for_64_t1_and_resent_only_by_the_tu(self):
        tx = self.start(invite())
        self.respond(tx, 180)
        _, ok = self.respond(tx, 200)
        self.assertEqual(tx.state, ACCEPTED)  # RFC 6026
        # 2xx retransmission is the TU's business, not the transaction's ...
        self.assertEqual(self.run_to(1000), [])
        self.assertTrue(self.ep.resend_2xx(tx))
        self.assertEqual([d.data for d in sent(self.ep)], [ok.data])
        # ... and a retransmitted INVITE is absorbed, not answered again nor passed up.
        self.assertEqual(self.receive(invite(), at=1500), [])
        self.assertEqual(sent(self.ep), [])
        self.run_to(32000)  # timer L
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.server_transactions, {})
        self.assertFalse(self.ep.resend_2xx(tx))
        self.assertEqual(self.run_to(64000), [])

    def test_final_after_final_raises(self):
        tx = self.start(invite())
        self.respond(tx, 486)
        with self.assertRaises(InvalidState):
            self.ep.respond(tx, 200, now=0)

    def test_transport_error_in_proceeding_terminates(self):
        tx = self.start(invite())
        self.ep.transport_error("udp", ALICE[0], ALICE[1], 0)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.run_to(1000), [])  # and no 100 Trying


class InviteServerTcpTest(ServerCase):
    transport = "tcp"

    def test_no_timer_g_but_timer_h(self):
        tx = self.start(invite(transport="TCP"))
        self.respond(tx, 486, at=300)
        self.assertEqual(self.run_to(32299), [])
        self.assertEqual(tx.state, COMPLETED)
        self.run_to(32300)
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])
        self.assertEqual(tx.state, TERMINATED)

    def test_timer_i_is_zero(self):
        tx = self.start(invite(transport="TCP"))
        response, _ = self.respond(tx, 486, at=300)
        self.assertEqual(self.receive(ack(transport="TCP", to_tag=response.to.tag)), [])
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(self.ep.server_transactions, {})

    def test_100_trying_over_tcp_too(self):
        self.start(invite(transport="TCP"))
        timed = self.run_to(200)
        self.assertEqual([status_of(d) for _, d in timed], [100])
        self.assertEqual(timed[0][1].transport, "tcp")


class InviteServerScaledTimersTest(ServerCase):
    timers = TimerValues(t1=100, t2=400, t4=1000)

    def test_timer_g_h_i_scale(self):
        tx = self.start(invite())
        self.respond(tx, 486, at=0)
        timed = self.run_to(6400)
        self.assertEqual(times(timed)[:5], [100, 300, 700, 1100, 1500])
        self.assertEqual(times(timed)[-1], 6300)
        self.assertEqual(kinds(drain(self.ep)), ["TransactionTimedOut"])

    def test_timer_i_is_t4(self):
        tx = self.start(invite())
        response, _ = self.respond(tx, 486, at=0)
        self.receive(ack(to_tag=response.to.tag), at=150)
        self.run_to(1149)
        self.assertEqual(tx.state, CONFIRMED)
        self.run_to(1150)
        self.assertEqual(tx.state, TERMINATED)

    def test_100_trying_delay_does_not_scale(self):
        self.start(invite())
        self.assertEqual(times(self.run_to(1000)), [200])


class TransitionsTableTest(unittest.TestCase):
    INITIAL = {
        INVITE_CLIENT: CALLING,
        NON_INVITE_CLIENT: TRYING,
        INVITE_SERVER: PROCEEDING,
        NON_INVITE_SERVER: TRYING,
    }
    # The timers each machine may act on (RFC 3261 figures 5-8), A/E/G retransmit only.
    TIMERS = {
        INVITE_CLIENT: ("timer B", "timer D", "timer M"),
        NON_INVITE_CLIENT: ("timer F", "timer K"),
        INVITE_SERVER: ("timer H", "timer I", "timer L"),
        NON_INVITE_SERVER: ("timer J",),
    }
    INPUTS = ("1xx", "2xx", "300-699", "ACK", "transport error")

    def test_four_machines(self):
        self.assertEqual(sorted(TRANSITIONS.keys()), sorted(self.INITIAL.keys()))

    def reachable(self, machine):
        table = TRANSITIONS[machine]
        seen = [self.INITIAL[machine]]
        todo = [self.INITIAL[machine]]
        while todo:
            state = todo.pop()
            for target in table.get(state, {}).values():
                if target not in seen:
                    seen.append(target)
                    todo.append(target)
        return seen

    def test_every_named_state_is_reachable(self):
        for machine, table in TRANSITIONS.items():
            named = list(table.keys())
            for moves in table.values():
                named.extend(moves.values())
            reachable = self.reachable(machine)
            for state in named:
                self.assertIn(state, reachable)
            self.assertIn(TERMINATED, reachable)

    def test_terminated_is_final(self):
        for table in TRANSITIONS.values():
            self.assertFalse(TERMINATED in table)

    def test_initial_state_has_moves(self):
        for machine, initial in self.INITIAL.items():
            self.assertIn(initial, TRANSITIONS[machine])

    def test_inputs_are_known(self):
        for machine, table in TRANSITIONS.items():
            for moves in table.values():
                for name in moves:
                    self.assertTrue(name in self.INPUTS or name in self.TIMERS[machine],
                                    "%s: %s" % (machine, name))

    def test_states_are_named_as_in_the_rfc(self):
        names = ("Calling", "Trying", "Proceeding", "Accepted", "Completed", "Confirmed",
                 "Terminated")  # Accepted: RFC 6026
        for table in TRANSITIONS.values():
            for state, moves in table.items():
                self.assertIn(state, names)
                for target in moves.values():
                    self.assertIn(target, names)

    def test_only_invite_server_has_confirmed(self):
        for machine in TRANSITIONS:
            self.assertEqual(CONFIRMED in self.reachable(machine), machine == INVITE_SERVER)

    def test_client_final_responses(self):
        self.assertEqual(TRANSITIONS[INVITE_CLIENT][CALLING]["2xx"], ACCEPTED)
        self.assertEqual(TRANSITIONS[INVITE_CLIENT][PROCEEDING]["300-699"], COMPLETED)
        self.assertEqual(TRANSITIONS[NON_INVITE_CLIENT][TRYING]["2xx"], COMPLETED)

    def test_status_class(self):
        self.assertEqual([status_class(s) for s in (100, 199, 200, 299, 300, 699)],
                         ["1xx", "1xx", "2xx", "2xx", "300-699", "300-699"])

    def test_default_timer_values(self):
        timers = TimerValues()
        self.assertEqual((timers.t1, timers.t2, timers.t4), (500, 4000, 5000))


class EventsTest(unittest.TestCase):
    def test_events_are_facts(self):
        ep = make_endpoint("alice")
        tx = ep.send_request(outgoing(options()), TO_BOB, 0)
        ep.transport_error("udp", BOB[0], BOB[1], 0)
        event = drain(ep)[0]
        self.assertIsInstance(event, TransportFailed)
        self.assertIs(event.transaction, tx)
        self.assertTrue(repr(event).startswith("TransportFailed(transaction="))



if __name__ == "__main__":
    unittest.main()
