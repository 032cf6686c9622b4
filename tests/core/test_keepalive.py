"""Keep-alives on a flow to the registrar (RFC 5626 sections 3.5.1 and 4.4)."""

import unittest

from appliance.sip.keepalive import FAILED, IDLE, OFF, PING, WAITING, KeepAlive
from appliance.sip.stun import (
    BINDING_ERROR,
    BINDING_SUCCESS,
    XOR_MAPPED_ADDRESS,
    Message,
    encode_xor_mapped_address,
    parse_message,
)
from tests.core.helpers import TokenSource


def fixed(value):
    return lambda: value


def answer(request_bytes, host="203.0.113.1", port=40000, message_type=BINDING_SUCCESS):
    request = parse_message(request_bytes)
    tid = request.transaction_id
    attributes = []
    if message_type == BINDING_SUCCESS:
        attributes.append((XOR_MAPPED_ADDRESS, encode_xor_mapped_address(host, port, tid)))
    return Message(message_type, tid, attributes)


def advance(keepalive, until):
    """Run the timer until `until` ms; returns [(time, bytes)] of what went out."""
    sent = []
    while True:
        due = keepalive.get_timer()
        if due is None or due > until:
            return sent
        data = keepalive.handle_timer(due)
        if data is not None:
            sent.append((due, data))


class TestStreamKeepAlive(unittest.TestCase):
    def test_ping_within_80_to_100_percent_of_the_interval(self):
        for jitter, expected in ((0.0, 20000), (0.999, 24995)):
            keepalive = KeepAlive(25000, "tcp", fixed(jitter), answered=True)
            keepalive.start(0)
            self.assertEqual(keepalive.get_timer(), expected)

    def test_pong_keeps_the_flow(self):
        keepalive = KeepAlive(25000, "tcp", fixed(0.0), answered=True)
        keepalive.start(0)
        self.assertEqual(keepalive.handle_timer(20000), PING)
        self.assertEqual(keepalive.state, WAITING)
        keepalive.pong(20050)
        self.assertEqual(keepalive.state, IDLE)
        self.assertEqual(keepalive.last_answer, 20050)
        self.assertEqual(keepalive.get_timer(), 40050)

    def test_missing_pong_fails_the_flow_after_ten_seconds(self):
        keepalive = KeepAlive(25000, "tcp", fixed(0.0), answered=True)
        keepalive.start(0)
        keepalive.handle_timer(20000)
        self.assertEqual(keepalive.get_timer(), 30000)
        self.assertIsNone(keepalive.handle_timer(29999))
        self.assertEqual(keepalive.state, WAITING)
        self.assertIsNone(keepalive.handle_timer(30000))
        self.assertEqual(keepalive.state, FAILED)
        self.assertIn("no answer", keepalive.error)
        self.assertIsNone(keepalive.get_timer())
        keepalive.pong(30100)  # too late: the flow stays failed until started anew
        self.assertEqual(keepalive.state, FAILED)

    def test_started_again_after_failure(self):
        keepalive = KeepAlive(25000, "tcp", fixed(0.0), answered=True)
        keepalive.start(0)
        advance(keepalive, 30000)
        self.assertEqual(keepalive.state, FAILED)
        keepalive.start(31000)
        self.assertEqual(keepalive.state, IDLE)
        self.assertIsNone(keepalive.error)
        self.assertEqual(keepalive.get_timer(), 51000)

    def test_without_outbound_a_stream_ping_expects_nothing(self):
        # A registrar without outbound need not answer pings: nothing can fail.
        keepalive = KeepAlive(25000, "tcp", fixed(0.0))
        keepalive.start(0)
        sent = advance(keepalive, 100000)
        self.assertEqual([at for at, _ in sent], [20000, 40000, 60000, 80000, 100000])
        self.assertEqual(keepalive.state, IDLE)

    def test_a_failed_keepalive_stays_quiet_until_started_again(self):
        keepalive = KeepAlive(25000, "tcp", fixed(0.0), answered=True)
        keepalive.start(0)
        keepalive.fail("the connection closed")
        self.assertEqual((keepalive.state, keepalive.error), (FAILED, "the connection closed"))
        self.assertIsNone(keepalive.get_timer())
        self.assertIsNone(keepalive.handle_timer(20000))
        self.assertEqual(keepalive.state, FAILED)

    def test_unsolicited_pong_is_ignored(self):
        keepalive = KeepAlive(25000, "tcp", fixed(0.0), answered=True)
        keepalive.start(0)
        keepalive.pong(100)
        self.assertIsNone(keepalive.last_answer)
        self.assertEqual(keepalive.get_timer(), 20000)

    def test_off_until_started(self):
        keepalive = KeepAlive(25000, "tcp", fixed(0.0), answered=True)
        self.assertEqual(keepalive.state, OFF)
        self.assertIsNone(keepalive.get_timer())
        self.assertIsNone(keepalive.handle_timer(100000))


class TestUdpKeepAlive(unittest.TestCase):
    def test_crlf_without_stun_expects_nothing(self):
        keepalive = KeepAlive(25000, "udp", fixed(0.0))
        keepalive.start(0)
        sent = advance(keepalive, 100000)
        self.assertEqual([data for _, data in sent], [PING] * 5)
        self.assertEqual([at for at, _ in sent], [20000, 40000, 60000, 80000, 100000])
        self.assertEqual(keepalive.state, IDLE)

    def test_stun_answer_keeps_the_flow_and_shows_the_mapping(self):
        keepalive = KeepAlive(25000, "udp", fixed(0.0), TokenSource("c"), stun=True)
        keepalive.start(0)
        data = keepalive.handle_timer(20000)
        self.assertEqual(parse_message(data).message_type, 0x0001)
        self.assertTrue(keepalive.stun_response(answer(data), 20010))
        self.assertEqual(keepalive.state, IDLE)
        self.assertEqual(keepalive.mapped, ("203.0.113.1", 40000))
        self.assertEqual(keepalive.status(30010)["last_answer_ago"], 10)

    def test_stun_request_retransmitted_with_doubling_waits_then_fails(self):
        keepalive = KeepAlive(25000, "udp", fixed(0.0), TokenSource("c"), stun=True)
        keepalive.start(0)
        sent = advance(keepalive, 31000)
        times = [at for at, _ in sent]
        self.assertEqual(times, [20000, 20500, 21500, 23500, 27500])
        ids = set(parse_message(data).transaction_id for _, data in sent)
        self.assertEqual(len(ids), 1)  # retransmissions of one transaction
        self.assertEqual(keepalive.state, FAILED)

    def test_answer_to_a_retransmission_counts(self):
        keepalive = KeepAlive(25000, "udp", fixed(0.0), TokenSource("c"), stun=True)
        keepalive.start(0)
        sent = advance(keepalive, 22000)
        self.assertTrue(keepalive.stun_response(answer(sent[-1][1]), 22000))
        self.assertEqual(keepalive.state, IDLE)

    def test_error_response_fails_the_flow(self):
        # RFC 5626 section 4.4.2: a Binding error response means the flow has failed.
        keepalive = KeepAlive(25000, "udp", fixed(0.0), TokenSource("c"), stun=True)
        keepalive.start(0)
        data = keepalive.handle_timer(20000)
        self.assertTrue(keepalive.stun_response(answer(data, message_type=BINDING_ERROR), 1))
        self.assertEqual(keepalive.state, FAILED)
        self.assertIn("STUN error", keepalive.error)

    def test_changed_mapping_fails_the_flow(self):
        # RFC 5626 section 4.4.2: a new public address means the old flow is gone.
        keepalive = KeepAlive(25000, "udp", fixed(0.0), TokenSource("c"), stun=True)
        keepalive.start(0)
        first = keepalive.handle_timer(20000)
        keepalive.stun_response(answer(first, port=40000), 20010)
        second = keepalive.handle_timer(keepalive.get_timer())
        self.assertTrue(keepalive.stun_response(answer(second, port=40002), 40020))
        self.assertEqual(keepalive.state, FAILED)
        self.assertIn("203.0.113.1:40002", keepalive.error)

    def test_foreign_stun_answer_is_not_ours(self):
        keepalive = KeepAlive(25000, "udp", fixed(0.0), TokenSource("c"), stun=True)
        keepalive.start(0)
        keepalive.handle_timer(20000)
        other = Message(BINDING_SUCCESS, b"x" * 12, [])
        self.assertFalse(keepalive.stun_response(other, 20010))
        self.assertEqual(keepalive.state, WAITING)

    def test_stun_needs_udp(self):
        with self.assertRaises(ValueError):
            KeepAlive(25000, "tcp", fixed(0.0), TokenSource("c"), stun=True)


if __name__ == "__main__":
    unittest.main()
