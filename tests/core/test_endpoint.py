"""The Endpoint: the UAS checks of RFC 3261 section 8.2, where responses go (18.2.2 and
RFC 3581), merged requests, dialogs, CANCEL, what is dropped, the client side, and two
endpoints talking in memory with and without loss."""

import unittest

from appliance.sip.dialog import Dialog
from appliance.sip.endpoint import MAGIC_COOKIE, Datagram
from appliance.sip.errors import InvalidState
from appliance.sip.events import (
    MessageDropped,
    RequestCancelled,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
)
from appliance.sip.limits import Limits
from appliance.sip.message import Request, Response, make_response, parse_message
from appliance.sip.transaction import ACCEPTED, COMPLETED, CONFIRMED, PROCEEDING, TERMINATED

from .helpers import (
    ALICE,
    ALLOW,
    BOB,
    DropFirst,
    FakeClock,
    UaPair,
    ack,
    bye,
    cancel,
    drain,
    invite,
    is_request,
    kinds,
    make_endpoint,
    make_request,
    message,
    method_of,
    options,
    outgoing,
    parsed,
    run_timers,
    sent,
    status_of,
    times,
    wire,
)

ALLOW_TEXT = ", ".join(ALLOW)


class UasCase(unittest.TestCase):
    """bob, listening on UDP and TCP, receiving what alice sends."""

    supported = ()

    def setUp(self):
        self.clock = FakeClock()
        self.ep = make_endpoint("bob", ("udp", "tcp"), supported=self.supported)

    def receive(self, request, transport="udp", source=ALICE, at=None):
        if at is not None:
            self.clock.set(at)
        data = request if isinstance(request, bytes) else wire(request)
        self.ep.receive(data, transport, source, self.clock.now)
        return drain(self.ep), sent(self.ep)

    def accepted(self, request, **kw):
        events, out = self.receive(request, **kw)
        self.assertEqual(kinds(events), ["RequestReceived"])
        self.assertEqual(out, [])
        return events[0]

    def rejected(self, request, status, **kw):
        """Receive a request the core answers itself; return the parsed response."""
        events, out = self.receive(request, **kw)
        self.assertEqual(kinds(events), ["RequestRejected"])
        self.assertEqual(len(out), 1)
        response = parsed(out[0])
        self.assertEqual(response.status, status)
        self.assertEqual(events[0].response.status, status)
        self.assertEqual(events[0].request.get("cseq"), response.get("cseq"))
        return response

    def respond(self, transaction, status, **kw):
        self.ep.respond(transaction, status, now=self.clock.now, **kw)
        out = sent(self.ep)
        self.assertEqual(len(out), 1)
        return out[0]


class OptionsTest(UasCase):
    def test_options_reaches_the_tu(self):
        event = self.accepted(options())
        self.assertIsInstance(event, RequestReceived)
        self.assertEqual(event.request.method, "OPTIONS")
        self.assertIsNotNone(event.transaction)
        self.assertEqual(event.source, ("udp",) + ALICE)
        self.assertIsNone(event.dialog)

    def test_200_copies_via_from_to_call_id_cseq_and_adds_a_tag(self):
        request = options(fields=[("Accept", "application/sdp")])
        event = self.accepted(request)
        datagram = self.respond(event.transaction, 200)
        self.assertEqual((datagram.transport, datagram.host, datagram.port), ("udp",) + ALICE)
        response = parsed(datagram)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.reason, "OK")
        self.assertEqual(response.get_all("via"), request.get_all("via"))
        self.assertEqual(response.get("from"), request.get("from"))
        self.assertEqual(response.get("call-id"), request.get("call-id"))
        self.assertEqual(response.get("cseq"), "1 OPTIONS")
        tag = response.to.tag
        self.assertIsNotNone(tag)
        self.assertEqual(response.get("to"), request.get("to") + ";tag=" + tag)
        self.assertEqual(response.get("content-length"), "0")
        self.assertFalse(response.has("accept"))

    def test_exact_bytes(self):
        event = self.accepted(options())
        datagram = self.respond(event.transaction, 200, to_tag="t1")
        self.assertEqual(
            datagram.data,
            b"SIP/2.0 200 OK\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-test-1\r\n"
            b"From: <sip:alice@127.0.0.1:5061>;tag=alice-tag\r\n"
            b"To: <sip:bob@127.0.0.1:5062>;tag=t1\r\n"
            b"Call-ID: call-1\r\n"
            b"CSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n",
        )

    def test_fields_and_body(self):
        event = self.accepted(options())
        datagram = self.respond(event.transaction, 200, fields=[("Allow", "OPTIONS")],
                                body=b"v=0\r\n")
        response = parsed(datagram)
        self.assertEqual(response.get("allow"), "OPTIONS")
        self.assertEqual(response.get("content-length"), "5")
        self.assertEqual(response.body, b"v=0\r\n")

    def test_one_tag_for_every_response_of_the_transaction(self):
        event = self.accepted(invite())
        ringing = parsed(self.respond(event.transaction, 180))
        ok = parsed(self.respond(event.transaction, 200))
        self.assertIsNotNone(ringing.to.tag)
        self.assertEqual(ok.to.tag, ringing.to.tag)

    def test_existing_to_tag_kept(self):
        dialog = Dialog.as_uas(invite(), "bob-tag")
        self.ep.add_dialog(dialog)
        event = self.accepted(bye(to_tag="bob-tag", cseq=2))
        response = parsed(self.respond(event.transaction, 200))
        self.assertEqual(response.get("to"), "<sip:bob@127.0.0.1:5062>;tag=bob-tag")

    def test_server_header(self):
        ep = make_endpoint("bob", user_agent="appliance/0.1")
        ep.receive(wire(options()), "udp", ALICE, 0)
        event = drain(ep)[0]
        ep.respond(event.transaction, 200)
        self.assertEqual(parsed(sent(ep)[0]).get("server"), "appliance/0.1")

    def test_respond_after_the_final_response_raises(self):
        event = self.accepted(options())
        self.respond(event.transaction, 200)
        with self.assertRaises(InvalidState):
            self.ep.respond(event.transaction, 200)

    def test_max_forwards_zero_still_processed(self):
        # Max-Forwards counts hops between proxies; a UAS serves the request (RFC 3261
        # section 11 even uses Max-Forwards 0 to ask a UA's capabilities).
        self.accepted(options(max_forwards="0"))

    def test_compact_headers(self):
        data = (
            b"OPTIONS sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
            b"v: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-compact\r\n"
            b"f: <sip:alice@127.0.0.1>;tag=x\r\n"
            b"t: <sip:bob@127.0.0.1>\r\n"
            b"i: compact-1\r\n"
            b"CSeq: 7 OPTIONS\r\n"
            b"l: 0\r\n\r\n"
        )
        event = self.accepted(data)
        response = parsed(self.respond(event.transaction, 200, to_tag="t"))
        self.assertEqual(response.call_id, "compact-1")
        self.assertEqual(response.get("t"), "<sip:bob@127.0.0.1>;tag=t")


class ResponseDestinationTest(UasCase):
    """RFC 3261 sections 18.2.1 and 18.2.2, RFC 3581."""

    def test_same_host_no_rport_goes_to_sent_by_port(self):
        request = options(sent_by="127.0.0.1:5061")
        event = self.accepted(request, source=("127.0.0.1", 40000))
        self.assertEqual(event.request.get("via"), request.get("via"))
        datagram = self.respond(event.transaction, 200)
        self.assertEqual((datagram.host, datagram.port), ("127.0.0.1", 5061))
        self.assertEqual(parsed(datagram).get("via"), request.get("via"))

    def test_received_added_when_sent_by_differs(self):
        event = self.accepted(options(sent_by="pc33.example.com:5070", branch="z9hG4bK-r1"),
                              source=("192.0.2.7", 5999))
        via = "SIP/2.0/UDP pc33.example.com:5070;branch=z9hG4bK-r1;received=192.0.2.7"
        self.assertEqual(event.request.get("via"), via)
        datagram = self.respond(event.transaction, 200)
        self.assertEqual(parsed(datagram).get("via"), via)
        # To received, at the sent-by port.
        self.assertEqual((datagram.transport, datagram.host, datagram.port),
                         ("udp", "192.0.2.7", 5070))
        self.assertIsNone(datagram.alternative)

    def test_sent_by_without_port_means_5060(self):
        event = self.accepted(options(sent_by="pc33.example.com"), source=("192.0.2.7", 5999))
        datagram = self.respond(event.transaction, 200)
        self.assertEqual((datagram.host, datagram.port), ("192.0.2.7", 5060))

    def test_rport_filled_and_response_to_source_port(self):
        event = self.accepted(
            options(sent_by="10.0.0.5:5060", branch="z9hG4bK-r2", rport=True),
            source=("192.0.2.7", 40000),
        )
        via = "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-r2;rport=40000;received=192.0.2.7"
        self.assertEqual(event.request.get("via"), via)
        datagram = self.respond(event.transaction, 200)
        self.assertEqual(parsed(datagram).get("via"), via)
        self.assertEqual((datagram.host, datagram.port), ("192.0.2.7", 40000))

    def test_rport_adds_received_even_for_the_same_host(self):
        # RFC 3581 section 4: received is added even when it equals sent-by.
        event = self.accepted(options(rport=True), source=("127.0.0.1", 40001))
        via = event.request.top_via()
        self.assertEqual(via.received, "127.0.0.1")
        self.assertEqual(via.rport, "40001")
        datagram = self.respond(event.transaction, 200)
        self.assertEqual((datagram.host, datagram.port), ("127.0.0.1", 40001))

    def test_ipv6_sent_by_equal_to_source_gets_no_received(self):
        request = options(sent_by="[2001:db8::1]:5061")
        event = self.accepted(request, source=("2001:db8::1", 5061))
        self.assertEqual(event.request.get("via"), request.get("via"))
        self.assertIsNone(event.request.top_via().received)

    def test_ipv6_source_differing(self):
        event = self.accepted(options(sent_by="[2001:db8::1]:5061"),
                              source=("2001:db8::2", 5061))
        self.assertEqual(event.request.top_via().received, "2001:db8::2")

    def test_only_the_top_via_is_stamped(self):
        second = "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-proxy"
        request = options(sent_by="pc33.example.com:5070", fields=[("Via", second)])
        event = self.accepted(request, source=("192.0.2.7", 5070))
        response = parsed(self.respond(event.transaction, 200))
        vias = response.get_list("via")
        self.assertEqual(len(vias), 2)
        self.assertEqual(vias[1], second)
        self.assertEqual(response.top_via().received, "192.0.2.7")

    def test_stamped_via_in_a_comma_list(self):
        request = options(via="SIP/2.0/UDP a.example.com:5070;branch=z9hG4bK-c1, "
                              "SIP/2.0/UDP b.example.com;branch=z9hG4bK-c2")
        event = self.accepted(request, source=("192.0.2.8", 5070))
        vias = event.request.vias()
        self.assertEqual(len(vias), 2)
        self.assertEqual(vias[0].received, "192.0.2.8")
        self.assertEqual(vias[1].host, "b.example.com")
        self.assertIsNone(vias[1].received)

    def test_maddr(self):
        event = self.accepted(
            options(via="SIP/2.0/UDP pc33.example.com:5070;branch=z9hG4bK-m;maddr=239.1.1.1"),
            source=("192.0.2.7", 5999),
        )
        datagram = self.respond(event.transaction, 200)
        self.assertEqual((datagram.host, datagram.port), ("239.1.1.1", 5070))

    def test_tcp_goes_back_over_the_connection(self):
        request = options(transport="TCP", sent_by="client.example.com:5070")
        event = self.accepted(request, transport="tcp", source=("192.0.2.9", 49152))
        self.assertEqual(event.source, ("tcp", "192.0.2.9", 49152))
        datagram = self.respond(event.transaction, 200)
        self.assertEqual((datagram.transport, datagram.host, datagram.port),
                         ("tcp", "192.0.2.9", 49152))
        # If that connection is gone: received, at the sent-by port (18.2.2).
        self.assertEqual(datagram.alternative, ("192.0.2.9", 5070))
        self.assertEqual(parsed(datagram).top_via().received, "192.0.2.9")

    def test_tcp_alternative_default_port(self):
        event = self.accepted(options(transport="TCP", sent_by="127.0.0.1"), transport="tcp",
                              source=("127.0.0.1", 49153))
        datagram = self.respond(event.transaction, 200)
        self.assertEqual((datagram.host, datagram.port), ("127.0.0.1", 49153))
        self.assertEqual(datagram.alternative, ("127.0.0.1", 5060))

    def test_rejection_follows_the_same_rules(self):
        _, out = self.receive(
            make_request("SUBSCRIBE", sent_by="10.0.0.5:5060", rport=True),
            source=("192.0.2.7", 40002),
        )
        self.assertEqual(status_of(out[0]), 405)
        self.assertEqual((out[0].host, out[0].port), ("192.0.2.7", 40002))


class RejectionTest(UasCase):
    def test_405_with_allow_for_a_known_method(self):
        for method in ("SUBSCRIBE", "REGISTER", "PUBLISH", "REFER"):
            response = self.rejected(make_request(method, branch="z9hG4bK-" + method), 405)
            self.assertEqual(response.reason, "Method Not Allowed")
            self.assertEqual(response.get("allow"), ALLOW_TEXT)
            self.assertIsNotNone(response.to.tag)

    def test_501_with_allow_for_an_unknown_method(self):
        response = self.rejected(make_request("FOO"), 501)
        self.assertEqual(response.reason, "Not Implemented")
        self.assertEqual(response.get("allow"), ALLOW_TEXT)
        self.assertEqual(response.get("cseq"), "1 FOO")

    def test_415_with_accept(self):
        response = self.rejected(message(content_type="application/x-unknown"), 415)
        self.assertEqual(response.get("accept"), "application/sdp, text/plain")
        self.assertEqual(response.get("accept-encoding"), "identity")

    def test_415_for_an_unknown_content_encoding(self):
        self.rejected(message(fields=[("Content-Encoding", "gzip")]), 415)

    def test_accepted_body(self):
        event = self.accepted(message())
        self.assertEqual(event.request.body, b"hello")

    def test_416_for_a_tel_uri(self):
        response = self.rejected(options(uri="tel:+15551234567"), 416)
        self.assertEqual(response.reason, "Unsupported URI Scheme")

    def test_416_for_an_unknown_scheme(self):
        self.rejected(options(uri="http://example.com/"), 416)

    def test_420_with_unsupported(self):
        response = self.rejected(options(fields=[("Require", "foo, 100rel")]), 420)
        self.assertEqual(response.reason, "Bad Extension")
        self.assertEqual(response.get("unsupported"), "foo, 100rel")

    def test_505(self):
        data = wire(options()).replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1)
        response = self.rejected(data, 505)
        self.assertEqual(response.reason, "Version Not Supported")

    def test_400_missing_call_id(self):
        response = self.rejected(options(omit=("call-id",)), 400)
        self.assertEqual(response.reason, "Missing Call-ID")
        self.assertFalse(response.has("call-id"))

    def test_400_duplicated_cseq(self):
        response = self.rejected(options(fields=[("CSeq", "2 OPTIONS")]), 400)
        self.assertEqual(response.reason, "Multiple CSeq headers")

    def test_400_cseq_method_mismatch(self):
        response = self.rejected(options(cseq_method="INVITE"), 400)
        self.assertEqual(response.reason, "CSeq method does not match the request method")

    def test_400_malformed_max_forwards(self):
        for value in ("abc", "-1", "256", "1 2"):
            response = self.rejected(options(max_forwards=value, branch="z9hG4bK-" + value),
                                     400)
            self.assertEqual(response.reason, "Malformed Max-Forwards")

    def test_400_body_without_content_type(self):
        response = self.rejected(make_request("MESSAGE", body=b"x"), 400)
        self.assertEqual(response.reason, "Missing Content-Type")

    def test_400_unreadable_require(self):
        response = self.rejected(options(fields=[("Require", 'foo"bar')]), 400)
        self.assertEqual(response.reason, "Unterminated quoted string")

    def test_400_malformed_via_answered_statelessly(self):
        events, out = self.receive(options(via="garbage"), source=("192.0.2.7", 5999))
        self.assertEqual(kinds(events), ["RequestRejected"])
        self.assertEqual(status_of(out[0]), 400)
        # No usable Via: back to where it came from.
        self.assertEqual((out[0].host, out[0].port), ("192.0.2.7", 5999))
        self.assertEqual(self.ep.server_transactions, {})

    def test_400_with_an_unreadable_to_still_answered(self):
        data = (
            b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-q\r\n"
            b"To: <sip:bob@127.0.0.1;tag=1\r\n"
            b"Content-Length: x\r\n\r\n"
        )
        events, out = self.receive(data)
        self.assertEqual(kinds(events), ["RequestRejected"])
        self.assertEqual(status_of(out[0]), 400)
        self.assertEqual(parsed(out[0]).reason, "Malformed Content-Length")

    def test_a_rejection_is_stateless(self):
        # RFC 3261 section 8.2.7: nothing is kept; a retransmission is answered anew.
        self.rejected(make_request("FOO"), 501)
        self.assertEqual(self.ep.server_transactions, {})
        self.rejected(make_request("FOO"), 501, at=500)

    def test_a_rejected_invite_is_not_resent_until_timer_h(self):
        # One the sender cannot ACK (no Call-ID) would otherwise go out 11 times, toward
        # an address that may never have sent it.
        self.rejected(invite(omit=("call-id",)), 400)
        self.assertEqual(run_timers(self.ep, self.clock, 64 * 500), [])

    def test_order_of_checks(self):
        # The version first, then syntax, then the method (RFC 3261 8.2.1).
        data = wire(make_request("FOO", omit=("call-id",))).replace(b" SIP/2.0\r\n",
                                                                     b" SIP/3.0\r\n", 1)
        self.rejected(data, 505)
        self.rejected(make_request("FOO", omit=("call-id",), branch="z9hG4bK-2"), 400)

    def test_ack_and_cancel_need_no_allow(self):
        ep = make_endpoint("bob", allow=("OPTIONS",))
        ep.receive(wire(cancel()), "udp", ALICE, 0)
        response = parsed(sent(ep)[0])
        self.assertEqual(response.status, 481)


class SupportedExtensionTest(UasCase):
    supported = ("100rel",)

    def test_only_unsupported_tags_listed(self):
        response = self.rejected(invite(fields=[("Require", "foo, 100rel")]), 420)
        self.assertEqual(response.get("unsupported"), "foo")

    def test_supported_require_passes(self):
        self.accepted(invite(fields=[("Require", "100rel")]))


class MergedRequestTest(UasCase):
    """RFC 3261 section 8.2.2.2."""

    def test_482_for_the_same_request_by_another_path(self):
        first = self.accepted(options(branch="z9hG4bK-path1"))
        self.respond(first.transaction, 200)
        response = self.rejected(options(branch="z9hG4bK-path2"), 482)
        self.assertEqual(response.reason, "Loop Detected")

    def test_482_while_the_first_is_unanswered(self):
        self.accepted(invite(branch="z9hG4bK-path1"))
        self.rejected(invite(branch="z9hG4bK-path2"), 482)

    def test_accepted_once_the_first_transaction_is_gone(self):
        first = self.accepted(options(branch="z9hG4bK-path1"))
        self.respond(first.transaction, 200)
        run_timers(self.ep, self.clock, 32000)  # timer J
        self.assertEqual(first.transaction.state, TERMINATED)
        self.accepted(options(branch="z9hG4bK-path3"))

    def test_retransmission_is_not_merged(self):
        first = self.accepted(options(branch="z9hG4bK-path1"))
        events, out = self.receive(options(branch="z9hG4bK-path1"))
        self.assertEqual((events, out), ([], []))
        self.assertEqual(first.transaction.state, "Trying")

    def test_other_cseq_or_from_tag_or_call_id_is_new(self):
        self.accepted(options(branch="z9hG4bK-1"))
        self.accepted(options(branch="z9hG4bK-2", cseq=2))
        self.accepted(options(branch="z9hG4bK-3", from_tag="other"))
        self.accepted(options(branch="z9hG4bK-4", call_id="call-2"))


class DialogRequestTest(UasCase):
    def setUp(self):
        UasCase.setUp(self)
        self.dialog = Dialog.as_uas(
            invite(cseq=5, fields=[("Contact", "<sip:alice@192.0.2.10>")]), "bob-tag"
        )
        self.ep.add_dialog(self.dialog)

    def test_481_for_a_to_tag_matching_no_dialog(self):
        response = self.rejected(bye(to_tag="unknown-tag"), 481)
        self.assertEqual(response.reason, "Call/Transaction Does Not Exist")
        self.assertEqual(response.to.tag, "unknown-tag")

    def test_481_for_another_call_id(self):
        self.rejected(bye(to_tag="bob-tag", call_id="other", cseq=6), 481)

    def test_dialog_for_makes_a_dialog_the_endpoint_did_not_know(self):
        # A subscriber whose first NOTIFY overtakes the 2xx (RFC 6665 4.1.2.4).
        asked = []

        def dialog_for(request):
            asked.append(request.method)
            if request.to.tag != "new-tag":
                return None
            return Dialog.as_uas(request, "new-tag")

        self.ep.dialog_for = dialog_for
        event = self.accepted(bye(to_tag="new-tag", call_id="other", cseq=1))
        self.assertEqual(event.dialog.id, ("other", "new-tag", "alice-tag"))
        self.assertIs(self.ep.dialogs[event.dialog.id], event.dialog)
        self.rejected(bye(to_tag="unknown-tag", call_id="third", branch="z9hG4bK-3"), 481)
        self.assertEqual(asked, ["BYE", "BYE"])

    def test_request_within_the_dialog_reaches_the_tu(self):
        event = self.accepted(bye(to_tag="bob-tag", cseq=6))
        self.assertIs(event.dialog, self.dialog)
        self.assertEqual(self.dialog.remote_seq, 6)

    def test_lower_cseq_gets_500(self):
        response = self.rejected(bye(to_tag="bob-tag", cseq=4), 500)
        self.assertEqual(response.reason, "CSeq Out of Order")
        self.assertEqual(self.dialog.remote_seq, 5)

    def test_reinvite_refreshes_the_target(self):
        event = self.accepted(invite(to_tag="bob-tag", cseq=6,
                                     fields=[("Contact", "<sip:alice@198.51.100.1>")]))
        self.assertIs(event.dialog, self.dialog)
        self.assertEqual(str(self.dialog.remote_target), "sip:alice@198.51.100.1")

    def test_reinvite_with_an_unreadable_contact_gets_400(self):
        response = self.rejected(invite(to_tag="bob-tag", cseq=6,
                                        fields=[("Contact", "<sip:alice@198.51.100.1")]), 400)
        self.assertEqual(response.reason, "Unterminated angle bracket")

    def test_ack_for_a_2xx_reaches_the_tu_without_transaction(self):
        events, out = self.receive(ack(to_tag="bob-tag", cseq=5, branch="z9hG4bK-ack2xx"))
        self.assertEqual(kinds(events), ["RequestReceived"])
        self.assertIsNone(events[0].transaction)
        self.assertIs(events[0].dialog, self.dialog)
        self.assertEqual(events[0].request.method, "ACK")
        self.assertEqual(out, [])
        self.assertEqual(self.ep.server_transactions, {})

    def test_ack_matching_no_transaction_and_no_dialog_is_dropped(self):
        events, out = self.receive(ack(to_tag="nobody", branch="z9hG4bK-stray-ack"))
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(events[0].reason, "ACK outside any dialog")
        self.assertEqual(events[0].source, ("udp",) + ALICE)
        self.assertEqual(out, [])

    def test_ack_without_to_tag_is_dropped(self):
        events, out = self.receive(ack(branch="z9hG4bK-untagged-ack"))
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(out, [])

    def test_removed_dialog(self):
        self.ep.remove_dialog(self.dialog)
        self.rejected(bye(to_tag="bob-tag", cseq=6), 481)


class CancelTest(UasCase):
    def test_cancel_of_a_pending_invite(self):
        invited = self.accepted(invite())
        events, out = self.receive(cancel(), at=1000)
        self.assertEqual(kinds(events), ["RequestCancelled"])
        self.assertIsInstance(events[0], RequestCancelled)
        self.assertIs(events[0].transaction, invited.transaction)
        self.assertIs(events[0].request, invited.request)
        self.assertEqual([(status_of(d), method_of(d)) for d in out],
                         [(200, "CANCEL"), (487, "INVITE")])
        ok, terminated = parsed(out[0]), parsed(out[1])
        # The same To tag for both (RFC 3261 9.2).
        self.assertIsNotNone(ok.to.tag)
        self.assertEqual(ok.to.tag, terminated.to.tag)
        self.assertEqual(terminated.reason, "Request Terminated")
        self.assertEqual(invited.transaction.state, COMPLETED)
        # The 487 is ACKed like any error response.
        events, out = self.receive(ack(to_tag=terminated.to.tag), at=1100)
        self.assertEqual((events, out), ([], []))
        self.assertEqual(invited.transaction.state, CONFIRMED)

    def test_cancel_after_a_provisional_uses_its_tag(self):
        invited = self.accepted(invite())
        ringing = parsed(self.respond(invited.transaction, 180))
        events, out = self.receive(cancel())
        self.assertEqual(kinds(events), ["RequestCancelled"])
        self.assertEqual([parsed(d).to.tag for d in out], [ringing.to.tag] * 2)

    def test_cancel_after_the_final_response_has_no_effect(self):
        invited = self.accepted(invite())
        self.respond(invited.transaction, 486)
        events, out = self.receive(cancel())
        # It matched a transaction: 200 (RFC 3261 9.2), nothing else.
        self.assertEqual(events, [])
        self.assertEqual([(status_of(d), method_of(d)) for d in out], [(200, "CANCEL")])
        self.assertEqual(invited.transaction.state, COMPLETED)

    def test_cancel_with_no_invite_gets_481(self):
        self.rejected(cancel(), 481)

    def test_cancel_with_another_branch_gets_481(self):
        self.accepted(invite(branch="z9hG4bK-inv"))
        self.rejected(cancel(branch="z9hG4bK-other"), 481)

    def test_cancel_after_a_2xx_gets_200_and_changes_nothing(self):
        invited = self.accepted(invite())
        self.respond(invited.transaction, 200)
        events, out = self.receive(cancel())
        self.assertEqual(events, [])  # the call stands
        self.assertEqual([parse_message(d.data).status for d in out], [200])

    def test_retransmitted_cancel(self):
        self.accepted(invite())
        _, out = self.receive(cancel())
        events, again = self.receive(cancel(), at=500)
        self.assertEqual(events, [])
        self.assertEqual([d.data for d in again], [out[0].data])

    def test_cancel_is_not_a_merged_request(self):
        self.accepted(invite(branch="z9hG4bK-inv"))
        events, _ = self.receive(cancel(branch="z9hG4bK-inv"))
        self.assertEqual(kinds(events), ["RequestCancelled"])


class DroppedTest(UasCase):
    def test_stray_response(self):
        data = make_response(options(), 200, to_tag="x").to_bytes()
        events, out = self.receive(data, source=BOB)
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(events[0].reason, "response matches no transaction")
        self.assertEqual(events[0].source, ("udp",) + BOB)
        self.assertEqual(out, [])

    def test_response_without_via(self):
        data = b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        events, _ = self.receive(data)
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(events[0].reason, "Missing Via")

    def test_request_without_via(self):
        events, out = self.receive(options(omit=("via",)))
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(out, [])

    def test_unparseable_bytes(self):
        events, out = self.receive(b"\x00\x01garbage")
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(events[0].data, b"\x00\x01garbage")
        self.assertEqual(events[0].source, ("udp",) + ALICE)
        self.assertEqual(out, [])

    def test_response_without_to_to_an_invite_is_dropped(self):
        ep = make_endpoint("alice")
        request = outgoing(invite())
        ep.send_request(request, ("udp",) + BOB, 0)
        sent(ep)
        branch = request.top_via().branch
        data = ("SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=%s\r\n"
                "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n" % branch).encode()
        ep.receive(data, "udp", BOB, 10)
        events = drain(ep)
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(events[0].reason, "Missing To")
        self.assertEqual(sent(ep), [])

    def garbage(self):
        good = wire(invite(fields=[("Contact", "<sip:alice@192.0.2.1>"),
                                   ("Require", "100rel")],
                           body=b"v=0\r\n", content_type="application/sdp"))
        out = [
            b"", b"\r\n", b"\r\n\r\n", b" ", b"INVITE", b"SIP/2.0", b"SIP/2.0 200 OK\r\n\r\n",
            b"SIP/2.0 999999 x\r\n\r\n", b"\xff\xfe\xfd" * 40, b"\x00" * 100,
            b"INVITE sip:a SIP/2.0\r\nVia: \r\n\r\n", b": : :\r\n\r\n",
            (
                b"OPTIONS sip:bob@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
                b"From: \"unterminated <sip:a@b>;tag=1\r\nTo: <sip:b@h\r\nCall-ID: x\r\n"
                b"CSeq: 1 OPTIONS\r\n\r\n"
            ),
        ]
        # Every prefix of a good message, and deterministic byte substitutions.
        for end in range(0, len(good), 7):
            out.append(good[:end])
        seed = 12345
        specials = b'<>";,:@ \t\r\n=%[]/\x00\xff'
        for _ in range(300):
            data = bytearray(good)
            for _ in range(3):
                seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
                where = seed % len(data)
                data[where] = specials[(seed >> 8) % len(specials)]
            out.append(bytes(data))
        return out

    def test_crlf_keepalive_datagram_is_ignored_quietly(self):
        # Phones keep NAT bindings open with bare CRLFs: neither answered nor "dropped".
        ep = make_endpoint("bob")
        for data in (b"\r\n\r\n", b"\r\n", b"\n"):
            ep.receive(data, "udp", ALICE, 0)
            self.assertEqual(drain(ep), [])
            self.assertEqual(ep.datagrams_to_send(), [])

    def test_garbage_never_raises(self):
        for transport in ("udp", "tcp"):
            # All at one instant, from one address: no rate limit, or most would be dropped.
            ep = make_endpoint("bob", ("udp", "tcp"), limits=Limits(rate=0))
            ep.add_dialog(Dialog.as_uas(invite(), "bob-tag"))
            for data in self.garbage():
                ep.receive(data, transport, ALICE, 0)
                for event in drain(ep):
                    self.assertTrue(
                        isinstance(event, (MessageDropped, RequestRejected, RequestReceived)),
                        repr(event),
                    )
                sent(ep)
            run_timers(ep, FakeClock(), 100000)


class SendRequestTest(unittest.TestCase):
    def setUp(self):
        self.ep = make_endpoint("alice", ("udp", "tcp"))

    def test_via_with_magic_cookie_branch_and_rport(self):
        request = outgoing(options())
        tx = self.ep.send_request(request, ("udp",) + BOB, 0)
        out = sent(self.ep)
        self.assertEqual(len(out), 1)
        wire_request = parsed(out[0])
        self.assertEqual(wire_request.fields[0][0], "Via")
        vias = wire_request.get_list("via")
        self.assertEqual(len(vias), 1)
        via = wire_request.top_via()
        self.assertEqual(via.transport, "UDP")
        self.assertEqual(via.sent_by(), "127.0.0.1:5061")
        self.assertTrue(via.branch.startswith(MAGIC_COOKIE))
        self.assertEqual(len(via.branch), len(MAGIC_COOKIE) + 16)
        self.assertEqual(via.rport, "")
        self.assertEqual(vias[0], "SIP/2.0/UDP 127.0.0.1:5061;branch=%s;rport" % via.branch)
        self.assertEqual(tx.key, (via.branch, "OPTIONS"))
        self.assertEqual(wire_request.get("content-length"), "0")

    def test_existing_via_replaced(self):
        request = options()  # carries a Via
        self.ep.send_request(request, ("udp",) + BOB, 0)
        wire_request = parsed(sent(self.ep)[0])
        self.assertEqual(len(wire_request.get_list("via")), 1)
        self.assertTrue(wire_request.top_via().branch != "z9hG4bK-test-1")

    def test_content_length_added(self):
        request = outgoing(options(omit=("content-length",)))
        self.ep.send_request(request, ("udp",) + BOB, 0)
        self.assertEqual(parsed(sent(self.ep)[0]).get("content-length"), "0")

    def test_new_branch_each_time(self):
        a = self.ep.send_request(outgoing(options()), ("udp",) + BOB, 0)
        b = self.ep.send_request(outgoing(options()), ("udp",) + BOB, 0)
        self.assertTrue(a.key[0] != b.key[0])
        self.assertEqual(len(self.ep.client_transactions), 2)

    def big(self):
        return outgoing(message(body=b"x" * 1400))

    def test_large_request_goes_over_tcp(self):
        tx = self.ep.send_request(self.big(), ("udp",) + BOB, 0)
        out = sent(self.ep)
        self.assertEqual(out[0].transport, "tcp")
        self.assertEqual((out[0].host, out[0].port), BOB)
        self.assertEqual(parsed(out[0]).top_via().transport, "TCP")
        self.assertTrue(tx.reliable)
        self.assertEqual(tx.destination, ("tcp",) + BOB)

    def test_large_request_stays_on_udp_without_tcp(self):
        ep = make_endpoint("alice", "udp")
        ep.send_request(self.big(), ("udp",) + BOB, 0)
        self.assertEqual(sent(ep)[0].transport, "udp")

    def test_large_request_stays_on_udp_when_asked(self):
        self.ep.send_request(self.big(), ("udp",) + BOB, 0, allow_upgrade=False)
        self.assertEqual(sent(self.ep)[0].transport, "udp")

    def test_small_request_stays_on_udp(self):
        self.ep.send_request(outgoing(message(body=b"x" * 100)), ("udp",) + BOB, 0)
        self.assertEqual(sent(self.ep)[0].transport, "udp")

    def test_ack_is_sent_without_a_transaction(self):
        result = self.ep.send_request(outgoing(ack(to_tag="bob-tag")), ("udp",) + BOB, 0)
        self.assertIsNone(result)
        out = sent(self.ep)
        self.assertEqual(len(out), 1)
        self.assertEqual(parsed(out[0]).method, "ACK")
        self.assertEqual(self.ep.client_transactions, {})
        self.assertIsNone(self.ep.get_timer())

    def test_datagram_repr(self):
        datagram = Datagram(b"abc", "udp", "127.0.0.1", 5062)
        self.assertEqual(repr(datagram), "<Datagram udp:127.0.0.1:5062 3 bytes>")


class UaPairTest(unittest.TestCase):
    def test_options_round_trip(self):
        pair = UaPair()
        tx = pair.alice.send_request(outgoing(options()), ("udp",) + BOB, 0)
        moved = pair.deliver()
        self.assertEqual(len(moved), 1)
        events = drain(pair.bob)
        self.assertEqual(kinds(events), ["RequestReceived"])
        server_tx = events[0].transaction
        pair.bob.respond(server_tx, 200, now=pair.clock.now)
        self.assertEqual([status_of(d) for d in pair.deliver()], [200])
        events = drain(pair.alice)
        self.assertEqual(kinds(events), ["ResponseReceived"])
        self.assertIsInstance(events[0], ResponseReceived)
        self.assertEqual(events[0].response.status, 200)
        self.assertIs(events[0].transaction, tx)
        self.assertEqual(tx.state, COMPLETED)
        # Timer K (T4) ends alice's transaction, timer J (64*T1) bob's.
        pair.run_until(5000)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(pair.alice.client_transactions, {})
        self.assertEqual(server_tx.state, COMPLETED)
        pair.run_until(32000)
        self.assertEqual(server_tx.state, TERMINATED)
        self.assertEqual(pair.bob.server_transactions, {})
        self.assertEqual(drain(pair.alice) + drain(pair.bob), [])
        self.assertEqual(len(pair.log), 2)

    def test_over_tcp(self):
        pair = UaPair("tcp")
        tx = pair.alice.send_request(outgoing(options()), ("tcp",) + BOB, 0)
        pair.deliver()
        pair.bob.respond(drain(pair.bob)[0].transaction, 200)
        pair.deliver()
        self.assertEqual(kinds(drain(pair.alice)), ["ResponseReceived"])
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(pair.bob.server_transactions, {})
        self.assertEqual([d.transport for _, _, d, _ in pair.log], ["tcp", "tcp"])

    def test_lost_requests_recovered_by_retransmission(self):
        pair = UaPair()
        drop = DropFirst(2, is_request)
        tx = pair.alice.send_request(outgoing(options()), ("udp",) + BOB, 0)
        pair.deliver(drop=drop)
        pair.run_until(1499, drop=drop)
        self.assertEqual(drain(pair.bob), [])
        pair.run_until(1500, drop=drop)
        events = drain(pair.bob)
        self.assertEqual(kinds(events), ["RequestReceived"])
        self.assertEqual(len(drop.dropped), 2)
        self.assertEqual(times(pair.sent_by("alice", dropped=True)), [0, 500])
        self.assertEqual(times(pair.sent_by("alice", dropped=False)), [1500])
        pair.bob.respond(events[0].transaction, 200, now=pair.clock.now)
        pair.deliver()
        events = drain(pair.alice)
        self.assertEqual([e.response.status for e in events], [200])
        self.assertEqual(tx.state, COMPLETED)
        # No more retransmissions after the response.
        pair.run_until(3500)
        self.assertEqual(len(pair.sent_by("alice")), 3)

    def test_lost_response_resent_on_the_retransmitted_request(self):
        pair = UaPair()
        drop = DropFirst(1, lambda d: not is_request(d))
        tx = pair.alice.send_request(outgoing(options()), ("udp",) + BOB, 0)
        pair.deliver()
        server_tx = drain(pair.bob)[0].transaction
        pair.bob.respond(server_tx, 200, now=0)
        pair.deliver(drop=drop)
        self.assertEqual(len(drop.dropped), 1)
        self.assertEqual(drain(pair.alice), [])
        self.assertEqual(tx.state, "Trying")
        # Timer E at 500 retransmits; bob's transaction answers with the same 200.
        pair.run_until(500, drop=drop)
        self.assertEqual(drain(pair.bob), [])
        events = drain(pair.alice)
        self.assertEqual([e.response.status for e in events], [200])
        self.assertEqual(tx.state, COMPLETED)
        bob_sent = pair.sent_by("bob")
        self.assertEqual(times(bob_sent), [0, 500])
        self.assertEqual(bob_sent[0][1].data, bob_sent[1][1].data)

    def test_cancel_a_ringing_invite(self):
        pair = UaPair()
        request = outgoing(invite(fields=[("Contact", "<sip:alice@127.0.0.1:5061>")]))
        invite_tx = pair.alice.send_request(request, ("udp",) + BOB, 0)
        pair.deliver()
        invited = drain(pair.bob)[0]
        pair.bob.respond(invited.transaction, 180, now=pair.clock.now)
        pair.deliver()
        drain(pair.alice)
        cancel_tx = pair.alice.send_cancel(invite_tx, ("udp",) + BOB, pair.clock.now)
        self.assertEqual(cancel_tx.key, (invite_tx.key[0], "CANCEL"))  # the INVITE's branch
        pair.deliver()
        self.assertEqual(kinds(drain(pair.bob)), ["RequestCancelled"])
        pair.deliver()  # bob's 200 to the CANCEL and 487 to the INVITE; alice ACKs the 487
        answers = [(e.response.status, e.response.cseq.method) for e in drain(pair.alice)]
        self.assertEqual(sorted(answers), [(200, "CANCEL"), (487, "INVITE")])
        pair.deliver()
        self.assertEqual(invited.transaction.state, CONFIRMED)  # the ACK arrived
        # Nothing left to cancel once the INVITE has its final response.
        self.assertIsNone(pair.alice.send_cancel(invite_tx, ("udp",) + BOB, pair.clock.now))

    def test_invite_call(self):
        pair = UaPair()
        request = outgoing(invite(fields=[("Contact", "<sip:alice@127.0.0.1:5061>")]))
        invite_tx = pair.alice.send_request(request, ("udp",) + BOB, 0)
        pair.deliver()
        invited = drain(pair.bob)[0]
        # bob's TU is slow: the transaction sends 100 Trying at 200 ms, which stops A.
        pair.run_until(200)
        self.assertEqual([e.response.status for e in drain(pair.alice)], [100])
        self.assertEqual(invite_tx.state, PROCEEDING)
        pair.bob.respond(invited.transaction, 180, now=pair.clock.now)
        ok = pair.bob.respond(invited.transaction, 200, now=pair.clock.now,
                              fields=[("Contact", "<sip:bob@127.0.0.1:5062>")])
        bob_dialog = Dialog.as_uas(invited.request, ok.to.tag)
        pair.bob.add_dialog(bob_dialog)
        pair.deliver()
        responses = [e.response for e in drain(pair.alice)]
        self.assertEqual([r.status for r in responses], [180, 200])
        self.assertEqual(invite_tx.state, ACCEPTED)
        alice_dialog = Dialog.as_uac(invite_tx.request, responses[1])
        pair.alice.add_dialog(alice_dialog)
        # The ACK for the 2xx: built from the dialog, sent without a transaction.
        ack_request = alice_dialog.create_request("ACK")
        self.assertEqual(ack_request.uri_text, "sip:bob@127.0.0.1:5062")
        self.assertIsNone(pair.alice.send_request(ack_request, ("udp",) + BOB, pair.clock.now))
        pair.deliver()
        events = drain(pair.bob)
        self.assertEqual(kinds(events), ["RequestReceived"])
        self.assertEqual(events[0].request.method, "ACK")
        self.assertIs(events[0].dialog, bob_dialog)
        self.assertIsNone(events[0].transaction)
        # alice hangs up.
        bye_tx = pair.alice.send_request(alice_dialog.create_request("BYE"), ("udp",) + BOB,
                                         pair.clock.now)
        pair.deliver()
        events = drain(pair.bob)
        self.assertEqual([e.request.method for e in events], ["BYE"])
        self.assertIs(events[0].dialog, bob_dialog)
        self.assertEqual(bob_dialog.remote_seq, 2)
        pair.bob.respond(events[0].transaction, 200, now=pair.clock.now)
        pair.deliver()
        self.assertEqual([e.response.status for e in drain(pair.alice)], [200])
        self.assertEqual(bye_tx.state, COMPLETED)

    def test_rejected_invite_with_lost_ack(self):
        pair = UaPair()
        invite_tx = pair.alice.send_request(outgoing(invite()), ("udp",) + BOB, 0)
        pair.deliver()
        invited = drain(pair.bob)[0]
        pair.bob.respond(invited.transaction, 486, now=0)
        drop = DropFirst(1, lambda d: is_request(d) and method_of(d) == "ACK")
        pair.deliver(drop=drop)
        self.assertEqual([e.response.status for e in drain(pair.alice)], [486])
        self.assertEqual(len(drop.dropped), 1)
        self.assertEqual(invited.transaction.state, COMPLETED)
        # Timer G resends the 486 at 500; alice's transaction ACKs it again, quietly.
        pair.run_until(500, drop=drop)
        self.assertEqual(drain(pair.alice), [])
        self.assertEqual(invited.transaction.state, CONFIRMED)
        self.assertEqual(invite_tx.state, COMPLETED)
        self.assertEqual(drain(pair.bob), [])
        pair.run_until(32000)
        self.assertEqual(invite_tx.state, TERMINATED)
        self.assertEqual(invited.transaction.state, TERMINATED)
        self.assertEqual(drain(pair.alice) + drain(pair.bob), [])


class HelpersTest(unittest.TestCase):
    def test_token_source_is_deterministic_hex(self):
        ep1 = make_endpoint("alice")
        ep2 = make_endpoint("alice")
        self.assertEqual(ep1.new_branch(), ep2.new_branch())
        tag = make_endpoint("bob").new_tag()
        self.assertEqual(len(tag), 12)
        for ch in tag:
            self.assertIn(ch, "0123456789abcdef")

    def test_builders(self):
        request = make_request("INFO", cseq=3, to_tag="t", call_id="c")
        again = parse_message(wire(request))
        self.assertIsInstance(again, Request)
        self.assertEqual(again.get("cseq"), "3 INFO")
        self.assertEqual(again.to.tag, "t")
        self.assertFalse(isinstance(again, Response))


if __name__ == "__main__":
    unittest.main()


def raw_request(via="SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-raw-1", method="OPTIONS",
                cseq="1 OPTIONS", extra=""):
    return (
        "%s sip:bob@127.0.0.1:5062 SIP/2.0\r\nVia: %s\r\nFrom: <sip:alice@h>;tag=a1\r\n"
        "To: <sip:bob@h>\r\nCall-ID: raw-1\r\nCSeq: %s\r\n%sContent-Length: 0\r\n\r\n"
        % (method, via, cseq, extra)
    ).encode()


class TestHostileInput(unittest.TestCase):
    def test_thousands_of_digits_get_400_not_an_exception(self):
        # CPython's int() refuses strings over 4300 digits: the parser must not reach it.
        for cseq, extra, reason in (
            ("1" * 5000 + " OPTIONS", "", "Malformed CSeq"),
            ("1 OPTIONS", "Max-Forwards: %s\r\n" % ("7" * 5000), "Malformed Max-Forwards"),
        ):
            ep = make_endpoint("bob")
            ep.receive(raw_request(cseq=cseq, extra=extra), "udp", ALICE, 0)
            out = sent(ep)
            self.assertEqual([status_of(d) for d in out], [400])
            self.assertEqual(parsed(out[0]).reason, reason)

    def test_an_ack_is_never_answered_even_when_malformed(self):
        ep = make_endpoint("bob")
        data = raw_request(via="SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKa", method="ACK",
                           cseq="1 ACK")
        ep.receive(data, "udp", ALICE, 0)
        self.assertEqual(sent(ep), [])
        self.assertEqual(kinds(drain(ep)), ["MessageDropped"])

    def test_received_added_without_breaking_a_quoted_comma(self):
        ep = make_endpoint("bob")
        via = 'SIP/2.0/UDP 10.0.0.1:5060;x="a,b";branch=z9hG4bK-q;rport, SIP/2.0/UDP 10.0.0.2'
        ep.receive(raw_request(via=via), "udp", ("203.0.113.9", 4000), 0)
        event = drain(ep)[0]
        ep.respond(event.transaction, 200, now=0)
        response = parsed(sent(ep)[0])
        self.assertEqual(response.get_list("via"), [
            'SIP/2.0/UDP 10.0.0.1:5060;x="a,b";branch=z9hG4bK-q;rport=4000;received=203.0.113.9',
            "SIP/2.0/UDP 10.0.0.2",
        ])

    def test_maddr_honoured_only_for_a_multicast_group(self):
        for maddr, host in (("198.51.100.9", "203.0.113.9"), ("example.com", "203.0.113.9"),
                            ("239.1.2.3", "239.1.2.3")):
            ep = make_endpoint("bob")
            via = "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-m;maddr=" + maddr
            ep.receive(raw_request(via=via), "udp", ("203.0.113.9", 4000), 0)
            ep.respond(drain(ep)[0].transaction, 200, now=0)
            datagram = sent(ep)[0]
            self.assertEqual((datagram.host, datagram.port), (host, 5070), maddr)

    def test_bare_line_feed_inside_headers_is_dropped(self):
        ep = make_endpoint("bob")
        data = raw_request(extra="Subject: x\nWARNING forged log line\r\n")
        ep.receive(data, "udp", ALICE, 0)
        self.assertEqual(sent(ep), [])
        events = drain(ep)
        self.assertEqual(kinds(events), ["MessageDropped"])
        self.assertEqual(events[0].reason, "Bare CR or LF in the headers")
        self.assertTrue("forged" not in repr(events[0]))  # raw bytes stay out of repr()


class TestConnectionClosed(unittest.TestCase):
    def test_server_transaction_outlives_its_connection(self):
        # The request's connection closes before the answer: the response still goes out,
        # addressed to the Via's sent-by as the fallback (RFC 3261 section 18.2.2).
        ep = make_endpoint("bob", ("udp", "tcp"))
        via = "SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-tcp-1"
        ep.receive(raw_request(via=via), "tcp", ("127.0.0.1", 40001), 0)
        event = drain(ep)[0]
        ep.connection_closed("tcp", "127.0.0.1", 40001, 10)
        ep.respond(event.transaction, 200, now=20)
        datagram = sent(ep)[0]
        self.assertEqual(status_of(datagram), 200)
        self.assertEqual((datagram.host, datagram.port, datagram.alternative),
                         ("127.0.0.1", 40001, ("127.0.0.1", 5061)))

    def test_client_transaction_fails_when_its_connection_closes(self):
        ep = make_endpoint("alice", ("udp", "tcp"))
        transaction = ep.send_request(outgoing(options()), ("tcp", "127.0.0.1", 5062), 0)
        sent(ep)
        ep.connection_closed("tcp", "127.0.0.1", 5062, 5)
        self.assertEqual(kinds(drain(ep)), ["TransportFailed"])
        self.assertEqual(transaction.state, "Terminated")
