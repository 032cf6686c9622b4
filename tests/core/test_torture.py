"""The RFC 4475 torture messages (tests/data/rfc4475/) through a fresh Endpoint.

Each message is one UDP datagram to a new endpoint; what it answers (or that it drops the
message, or hands it to the user) is checked against the table below, one entry per file
with its RFC 4475 section. tests/data/rfc4475/MANIFEST.txt gives the RFC's expectation for
each; test.dat is in the RFC's archive but not described by it, so it is only fed to the
never-raises checks. The same bytes are then fed over TCP, one byte at a time through
StreamParser.
"""

import unittest

from appliance.sip.endpoint import Capabilities, Endpoint
from appliance.sip.errors import ParseError
from appliance.sip.events import MessageDropped, RequestReceived, RequestRejected
from appliance.sip.message import StreamParser, parse_message
from appliance.sip.transaction import TimerValues
from tests.core.helpers import TokenSource

DATA = __file__.rsplit("/", 2)[0] + "/data/rfc4475/"
SOURCE = ("192.0.2.1", 5060)
ALLOW = ("OPTIONS", "INVITE", "ACK", "CANCEL", "BYE")
ACCEPT = ("application/sdp",)

RECEIVED = "received"  # passed every check: a RequestReceived event, nothing sent
DROPPED = "dropped"  # a response matching no transaction: MessageDropped, nothing sent

# file -> (status sent, reason phrase) | (RECEIVED, method) | (DROPPED, drop reason),
# for an endpoint with Capabilities(allow=ALLOW, accept=ACCEPT).
EXPECTED = {
    # 3.1.1 Valid messages
    "wsinv": (481, "Call/Transaction Does Not Exist"),  # 3.1.1.1: To tag, no such dialog
    "intmeth": (501, "Not Implemented"),  # 3.1.1.2
    "esc01": (RECEIVED, "INVITE"),  # 3.1.1.3
    "escnull": (405, "Method Not Allowed"),  # 3.1.1.4: REGISTER to a non-registrar
    "esc02": (501, "Not Implemented"),  # 3.1.1.5: RE%47IST%45R is not REGISTER
    "lwsdisp": (RECEIVED, "OPTIONS"),  # 3.1.1.6
    "longreq": (RECEIVED, "INVITE"),  # 3.1.1.7
    "dblreq": (405, "Method Not Allowed"),  # 3.1.1.8: REGISTER; trailing INVITE ignored
    "semiuri": (RECEIVED, "OPTIONS"),  # 3.1.1.9
    "transports": (RECEIVED, "OPTIONS"),  # 3.1.1.10
    "mpart01": (405, "Method Not Allowed"),  # 3.1.1.11: MESSAGE not served here
    "unreason": (DROPPED, "response matches no transaction"),  # 3.1.1.12
    "noreason": (DROPPED, "response matches no transaction"),  # 3.1.1.13
    # 3.1.2 Invalid messages
    "badinv01": (400, "Malformed header parameter ''"),  # 3.1.2.1: ;;,;,, in Via
    "clerr": (400, "Content-Length larger than the message body"),  # 3.1.2.2
    "ncl": (400, "Malformed Content-Length"),  # 3.1.2.3: Content-Length -999
    "scalar02": (400, "CSeq number out of range"),  # 3.1.2.4
    "scalarlg": (DROPPED, "CSeq number out of range"),  # 3.1.2.5: a response
    "quotbal": (400, "Unterminated display name"),  # 3.1.2.6
    "ltgtruri": (400, "Malformed Request-URI"),  # 3.1.2.7: <sip:...> as Request-URI
    "lwsruri": (400, "Malformed Request-URI"),  # 3.1.2.8: "; lr" in the Request-URI
    "lwsstart": (400, "Malformed Request-URI"),  # 3.1.2.9: several SP in Request-Line
    "trws": (400, "Malformed SIP version"),  # 3.1.2.10: SP after SIP/2.0
    "escruri": (400, "Headers not allowed in the Request-URI"),  # 3.1.2.11
    "baddate": (RECEIVED, "INVITE"),  # 3.1.2.12: Date is not read by this UAS
    "regbadct": (405, "Method Not Allowed"),  # 3.1.2.13: REGISTER to a non-registrar
    "badaspec": (400, "Invalid character ' ' in URI scheme"),  # 3.1.2.14: < sip:... >
    "baddn": (400, "Malformed display name"),  # 3.1.2.15
    "badvers": (505, "Version Not Supported"),  # 3.1.2.16: SIP/7.0
    "mismatch01": (400, "CSeq method does not match the request method"),  # 3.1.2.17
    "mismatch02": (400, "CSeq method does not match the request method"),  # 3.1.2.18
    "bigcode": (DROPPED, "Malformed status code"),  # 3.1.2.19: a response
    # 3.2 Transaction layer semantics
    "badbranch": (RECEIVED, "OPTIONS"),  # 3.2.1: branch "z9hG4bK": RFC 2543 matching
    # 3.3 Application-layer semantics
    "insuf": (400, "Missing Call-ID"),  # 3.3.1: no Call-ID, From or To
    "unkscm": (416, "Unsupported URI Scheme"),  # 3.3.2
    "novelsc": (416, "Unsupported URI Scheme"),  # 3.3.3: soap.beep
    "unksm2": (405, "Method Not Allowed"),  # 3.3.4: REGISTER to a non-registrar
    "bext01": (420, "Bad Extension"),  # 3.3.5
    "invut": (415, "Unsupported Media Type"),  # 3.3.6
    "regaut01": (405, "Method Not Allowed"),  # 3.3.7
    "multi01": (400, "Multiple Call-ID headers"),  # 3.3.8
    "mcl01": (400, "Multiple Content-Length headers"),  # 3.3.9
    "bcast": (DROPPED, "response matches no transaction"),  # 3.3.10: a response
    "zeromf": (RECEIVED, "OPTIONS"),  # 3.3.11: Max-Forwards 0 at the endpoint
    "cparam01": (405, "Method Not Allowed"),  # 3.3.12: REGISTER to a non-registrar
    "cparam02": (405, "Method Not Allowed"),  # 3.3.13: REGISTER to a non-registrar
    "regescrt": (405, "Method Not Allowed"),  # 3.3.14: REGISTER to a non-registrar
    "sdp01": (RECEIVED, "INVITE"),  # 3.3.15: the 406 is the user's call (needs the SDP)
    # 3.4 Backward compatibility
    "inv2543": (RECEIVED, "INVITE"),  # 3.4.1: RFC 2543 INVITE, body to end of datagram
}

# With Capabilities(allow=("OPTIONS",)): the INVITE and MESSAGE requests that get past the
# syntax checks now get 405 (RFC 3261 8.2.1); every other file is answered as above.
OPTIONS_ONLY = {
    "wsinv": (405, "Method Not Allowed"),
    "esc01": (405, "Method Not Allowed"),
    "longreq": (405, "Method Not Allowed"),
    "mpart01": (405, "Method Not Allowed"),
    "ltgtruri": (405, "Method Not Allowed"),
    "escruri": (405, "Method Not Allowed"),
    "baddate": (405, "Method Not Allowed"),
    "invut": (405, "Method Not Allowed"),
    "sdp01": (405, "Method Not Allowed"),
    "inv2543": (405, "Method Not Allowed"),
}

# Over TCP, one byte at a time: what StreamParser frames for each file, in order (a status
# for each message answered, RECEIVED/DROPPED for the others, "ping"/"pong"), and the
# ParseError that ends the stream, if any. Files not listed frame as one message, answered
# as over UDP, and leave nothing behind.
STREAM = {
    "baddn": ([], None),  # no empty line after the headers: still waiting
    "clerr": ([], None),  # Content-Length 9999: waits for the rest (3.1.2.2)
    # What follows the framed message is refused as soon as its first line shows it
    # cannot start a SIP message.
    "dblreq": ([405, StreamParser.PONG, RECEIVED], "Not a SIP start line"),
    "inv2543": ([], "Missing Content-Length on a stream"),
    "mcl01": ([400], "Not a SIP start line"),  # framed by the first, 13
    "ncl": ([], "Malformed Content-Length"),  # 3.1.2.3: close the connection
}


def read(name):
    with open(DATA + name + ".dat", "rb") as f:
        return f.read()


def manifest_names():
    """Every file MANIFEST.txt describes, without the .dat."""
    names = []
    with open(DATA + "MANIFEST.txt", "rb") as f:
        for line in f.read().decode().split("\n"):
            if line and not line.startswith("#"):
                names.append(line.split("  ")[0][:-4])
    return names


def new_endpoint(allow=ALLOW, accept=ACCEPT):
    return Endpoint(
        {"udp": ("127.0.0.1", 5060), "tcp": ("127.0.0.1", 5060)},
        TokenSource(),
        Capabilities(allow=allow, accept=accept),
        TimerValues(),
    )


def drain(endpoint):
    """(datagrams, events) the endpoint has for its user now."""
    datagrams = endpoint.datagrams_to_send()
    events = []
    while True:
        event = endpoint.next_event()
        if event is None:
            return datagrams, events
        events.append(event)


def outcome(datagrams, events):
    """What the endpoint did, in the form of EXPECTED's entries."""
    if datagrams:
        response = parse_message(datagrams[0].data)
        return (response.status, response.reason)
    if len(events) == 1 and isinstance(events[0], RequestReceived):
        return (RECEIVED, events[0].request.method)
    if len(events) == 1 and isinstance(events[0], MessageDropped):
        return (DROPPED, events[0].reason)
    return (None, events)


class TortureCase(unittest.TestCase):
    def receive(self, name, allow=ALLOW, accept=ACCEPT):
        endpoint = new_endpoint(allow, accept)
        endpoint.receive(read(name), "udp", SOURCE, 0)
        datagrams, events = drain(endpoint)
        return endpoint, datagrams, events

    def check_answer(self, name, datagrams, events, status, reason, transport="udp"):
        self.assertEqual(len(datagrams), 1, name)
        datagram = datagrams[0]
        self.assertEqual((datagram.transport, datagram.host), (transport, SOURCE[0]), name)
        response = parse_message(datagram.data)
        self.assertEqual((response.status, response.reason), (status, reason), name)
        self.assertEqual(len(events), 1, name)
        self.assertIsInstance(events[0], RequestRejected, name)
        self.assertEqual(events[0].response.status, status, name)
        request = events[0].request
        # Section 8.2.6.2: Call-ID, CSeq and every Via come back; To gets a tag.
        self.assertEqual(response.call_id, request.call_id, name)
        self.assertEqual(response.get_all("via"), request.get_all("via"), name)
        if request.has("to") and status != 400:
            self.assertIsNotNone(response.to.tag, name)
        return response


class TestTable(unittest.TestCase):
    def test_one_entry_per_described_file(self):
        names = manifest_names()
        self.assertEqual(len(names), 50)
        self.assertIn("test", names)
        described = [name for name in names if name != "test"]
        self.assertEqual(sorted(described), sorted(EXPECTED))
        for name in OPTIONS_ONLY:
            self.assertIn(name, EXPECTED)
        for name in STREAM:
            self.assertIn(name, EXPECTED)


class TestOverUdp(TortureCase):
    def test_every_file(self):
        for name in sorted(EXPECTED):
            _endpoint, datagrams, events = self.receive(name)
            self.assertEqual(outcome(datagrams, events), EXPECTED[name], name)

    def test_rejected_requests(self):
        for name in sorted(EXPECTED):
            status, reason = EXPECTED[name]
            if status in (RECEIVED, DROPPED):
                continue
            _endpoint, datagrams, events = self.receive(name)
            self.check_answer(name, datagrams, events, status, reason)

    def test_received_requests(self):
        for name in sorted(EXPECTED):
            kind, method = EXPECTED[name]
            if kind != RECEIVED:
                continue
            endpoint, datagrams, events = self.receive(name)
            self.assertEqual(datagrams, [], name)
            self.assertEqual(len(events), 1, name)
            event = events[0]
            self.assertIsInstance(event, RequestReceived, name)
            self.assertEqual(event.request.method, method, name)
            self.assertEqual(event.source, ("udp",) + SOURCE, name)
            self.assertIsNone(event.dialog, name)
            # The user answers; processing goes on as for any request.
            response = endpoint.respond(event.transaction, 200, now=1)
            sent, _ = drain(endpoint)
            self.assertEqual(len(sent), 1, name)
            self.assertEqual(sent[0].data, response.to_bytes(), name)
            answer = parse_message(sent[0].data)
            self.assertEqual(answer.status, 200, name)
            self.assertIsNotNone(answer.to.tag, name)
            self.assertEqual(answer.cseq.method, method, name)

    def test_dropped_responses(self):
        for name in ("unreason", "noreason", "bcast", "scalarlg", "bigcode"):
            _endpoint, datagrams, events = self.receive(name)
            self.assertEqual(datagrams, [], name)
            self.assertEqual(len(events), 1, name)
            self.assertIsInstance(events[0], MessageDropped, name)
            self.assertEqual(events[0].reason, EXPECTED[name][1], name)
            self.assertEqual(events[0].source, ("udp",) + SOURCE, name)

    def test_allow_on_405_and_501(self):
        for name in ("intmeth", "esc02", "escnull", "regaut01", "mpart01", "dblreq"):
            _endpoint, datagrams, _events = self.receive(name)
            response = parse_message(datagrams[0].data)
            self.assertIn(response.status, (405, 501), name)
            self.assertEqual(response.get("allow"), "OPTIONS, INVITE, ACK, CANCEL, BYE", name)

    def test_bext01_unsupported_lists_require_tags(self):
        # 3.3.5: 420 with Unsupported; a UAS lists Require, not Proxy-Require.
        _endpoint, datagrams, events = self.receive("bext01")
        response = self.check_answer("bext01", datagrams, events, 420, "Bad Extension")
        self.assertEqual(response.get_list("unsupported"),
                         ["nothingSupportsThis", "nothingSupportsThisEither"])

    def test_invut_415_lists_accept(self):
        _endpoint, datagrams, events = self.receive("invut")
        response = self.check_answer("invut", datagrams, events, 415, "Unsupported Media Type")
        self.assertEqual(response.get("accept"), "application/sdp")

    def test_zeromf_is_not_483(self):
        _endpoint, _datagrams, events = self.receive("zeromf")
        self.assertEqual(events[0].request.get("max-forwards"), "0")

    def test_lwsdisp_display_name(self):
        _endpoint, _datagrams, events = self.receive("lwsdisp")
        self.assertEqual(events[0].request.from_.display_name, "caller")

    def test_semiuri_user_part(self):
        _endpoint, _datagrams, events = self.receive("semiuri")
        uri = events[0].request.uri
        self.assertEqual(uri.user, "user;par=u%40example.net")
        self.assertEqual(uri.host, "example.com")
        self.assertEqual(uri.params, [])

    def test_transports_via_values(self):
        _endpoint, _datagrams, events = self.receive("transports")
        vias = events[0].request.vias()
        self.assertEqual([via.transport for via in vias], ["UDP", "SCTP", "TLS", "UNKNOWN",
                                                           "TCP"])

    def test_longreq_not_truncated(self):
        _endpoint, _datagrams, events = self.receive("longreq")
        request = events[0].request
        self.assertEqual(len(request.vias()), 34)
        self.assertEqual(len(request.body), int(request.get("content-length")))

    def test_esc01_escapes_kept(self):
        _endpoint, _datagrams, events = self.receive("esc01")
        self.assertEqual(events[0].request.uri.user, "sips%3Auser%40example.com")

    def test_inv2543_body_is_rest_of_datagram(self):
        data = read("inv2543")
        _endpoint, _datagrams, events = self.receive("inv2543")
        request = events[0].request
        self.assertFalse(request.has("content-length"))
        self.assertEqual(request.body, data[data.find(b"\r\n\r\n") + 4 :])
        self.assertIsNone(request.top_via().branch)

    def test_mpart01_body_untouched(self):
        data = read("mpart01")
        _endpoint, _datagrams, events = self.receive("mpart01", allow=("OPTIONS", "MESSAGE"),
                                                  accept=("multipart/mixed",))
        request = events[0].request
        self.assertIsInstance(events[0], RequestReceived)
        self.assertEqual(request.body, data[data.find(b"\r\n\r\n") + 4 :])
        self.assertIn(b"\x00", request.body)

    def test_responses_go_back_to_the_source(self):
        _endpoint, datagrams, _events = self.receive("badvers")
        self.assertEqual((datagrams[0].host, datagrams[0].port), SOURCE)

    def test_rejects_are_stateless_for_unparsable_requests(self):
        # A request whose framing broke is answered without a transaction.
        for name in ("clerr", "ncl", "trws", "lwsstart"):
            endpoint, _datagrams, _events = self.receive(name)
            self.assertEqual(endpoint.server_transactions, {}, name)


class TestOptionsOnly(TortureCase):
    def test_every_file(self):
        for name in sorted(EXPECTED):
            _endpoint, datagrams, events = self.receive(name, allow=("OPTIONS",))
            expected = OPTIONS_ONLY.get(name, EXPECTED[name])
            self.assertEqual(outcome(datagrams, events), expected, name)

    def test_invite_gets_405_with_allow(self):
        for name in ("invut", "esc01", "inv2543", "sdp01"):
            _endpoint, datagrams, events = self.receive(name, allow=("OPTIONS",))
            response = self.check_answer(name, datagrams, events, 405, "Method Not Allowed")
            self.assertEqual(response.get("allow"), "OPTIONS")
            self.assertEqual(response.cseq.method, "INVITE")

    def test_unknown_method_gets_501_with_allow(self):
        for name in ("intmeth", "esc02"):
            _endpoint, datagrams, events = self.receive(name, allow=("OPTIONS",))
            response = self.check_answer(name, datagrams, events, 501, "Not Implemented")
            self.assertEqual(response.get("allow"), "OPTIONS")


def feed_stream(endpoint, data):
    """Feed `data` one byte at a time through a StreamParser into the endpoint over TCP.

    Returns (what each framed item led to, the ParseError that stopped framing or None).
    A ParseError from the parser is the documented end of a stream that cannot be framed;
    anything the endpoint raises fails the test.
    """
    parser = StreamParser()
    results = []
    error = None
    for i in range(len(data)):
        try:
            items = parser.feed(data[i : i + 1])
        except ParseError as e:
            error = e
            break
        for item in items:
            if item == StreamParser.PING or item == StreamParser.PONG:
                results.append(item)
                continue
            endpoint.receive(item, "tcp", SOURCE, 0)
            datagrams, events = drain(endpoint)
            if datagrams:
                results.append(parse_message(datagrams[0].data).status)
            else:
                results.append(outcome(datagrams, events)[0])
    return results, error


class TestOverTcp(unittest.TestCase):
    def test_every_file_byte_at_a_time(self):
        for name in sorted(EXPECTED):
            endpoint = new_endpoint()
            results, error = feed_stream(endpoint, read(name))
            if name in STREAM:
                expected, reason = STREAM[name]
                self.assertEqual(results, expected, name)
                if reason is None:
                    self.assertIsNone(error, name)
                else:
                    self.assertEqual(error.reason, reason, name)
            else:
                self.assertIsNone(error, name)
                self.assertEqual(results, [EXPECTED[name][0]], name)

    def test_answers_go_back_over_the_connection(self):
        endpoint = new_endpoint()
        data = read("badvers")
        endpoint.receive(data, "tcp", SOURCE, 0)
        datagrams, _events = drain(endpoint)
        self.assertEqual(len(datagrams), 1)
        self.assertEqual((datagrams[0].transport, datagrams[0].host, datagrams[0].port),
                         ("tcp",) + SOURCE)
        self.assertEqual(parse_message(datagrams[0].data).status, 505)

    def test_all_files_on_one_connection(self):
        # Everything that frames arrives on one stream, until the first framing error.
        endpoint = new_endpoint()
        stream = b"".join(read(name) for name in sorted(EXPECTED) if name not in STREAM)
        results, error = feed_stream(endpoint, stream)
        self.assertIsNone(error)
        self.assertEqual(len(results), len(EXPECTED) - len(STREAM))


class TestNeverRaises(unittest.TestCase):
    """Bad input never escapes the endpoint: not at receive time, not when timers run."""

    def run_all_timers(self, endpoint):
        for now in (200, 500, 4000, 32000, 64 * 500, 64 * 500 + 5000, 10 * 60 * 1000):
            endpoint.handle_timer(now)
            drain(endpoint)

    def test_udp(self):
        for name in manifest_names():
            for allow in (ALLOW, ("OPTIONS",), ("OPTIONS", "INVITE", "MESSAGE", "REGISTER")):
                endpoint = new_endpoint(allow)
                endpoint.receive(read(name), "udp", SOURCE, 0)
                drain(endpoint)
                self.run_all_timers(endpoint)

    def test_udp_twice(self):
        # A retransmission of each file hits whatever the first copy left behind.
        for name in manifest_names():
            endpoint = new_endpoint()
            endpoint.receive(read(name), "udp", SOURCE, 0)
            first, _ = drain(endpoint)
            endpoint.receive(read(name), "udp", SOURCE, 100)
            again, _ = drain(endpoint)
            # The same answer (a stateless 400 carries a new To tag, so compare status).
            self.assertEqual([parse_message(d.data).status for d in again],
                             [parse_message(d.data).status for d in first], name)
            self.run_all_timers(endpoint)

    def test_tcp(self):
        for name in manifest_names():
            endpoint = new_endpoint()
            feed_stream(endpoint, read(name))
            self.run_all_timers(endpoint)

    def test_crafted_faults(self):
        # Faults the RFC 4475 files do not have, each of which once escaped `receive` as a
        # ValueError or ParseError: digits of other scripts (str.isdigit accepts them,
        # int() may not) and a To that cannot be parsed but mentions a tag.
        base = read("zeromf").decode()
        for old, new, status, reason in (
            ("Content-Length: 0", "Content-Length: \u00b2", 400, "Malformed Content-Length"),
            ("Content-Length: 0", "Content-Length: \u0660", 400, "Malformed Content-Length"),
            ("CSeq: 39234321", "CSeq: 3923\u00b2", 400, "Malformed CSeq"),
            ("Max-Forwards: 0", "Max-Forwards: \u00b270", 400, "Malformed Max-Forwards"),
            ("user@example.com SIP", "user@example.com:5\u00b2 SIP", 400,
             "Malformed Request-URI"),
            ("SIP/2.0\r\nTo", "SIP/\u00b2.0\r\nTo", 400, "Malformed SIP version"),
            ("To: sip:user@example.com", 'To: "x <sip:user@example.com>;tag=5', 400,
             "Unterminated display name"),
            ("To: sip:user@example.com", "To: <sip:user@example.com>;tag=5;;", 400,
             "Malformed header parameter ''"),
        ):
            self.assertIn(old, base)
            endpoint = new_endpoint()
            endpoint.receive(base.replace(old, new).encode(), "udp", SOURCE, 0)
            datagrams, events = drain(endpoint)
            self.assertEqual(outcome(datagrams, events), (status, reason), new)
        endpoint = new_endpoint()
        endpoint.receive(read("unreason").replace(b"200", b"\xc2\xb200", 1), "udp", SOURCE, 0)
        self.assertEqual(outcome(*drain(endpoint)), (DROPPED, "Malformed status code"))

    def test_truncated_datagrams(self):
        # Every file cut short at a few points, as a lossy path might deliver it.
        for name in manifest_names():
            data = read(name)
            for cut in (1, 10, len(data) // 3, len(data) // 2, len(data) - 3):
                endpoint = new_endpoint()
                endpoint.receive(data[:cut], "udp", SOURCE, 0)
                datagrams, events = drain(endpoint)
                self.assertTrue(len(datagrams) + len(events) > 0, name)


if __name__ == "__main__":
    unittest.main()
