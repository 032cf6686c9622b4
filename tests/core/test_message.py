"""appliance/sip/message.py: parsing, serialising and framing SIP messages (RFC 3261
sections 7, 8.2.6, 18.3, 20 and 25)."""

import sys
import unittest

from appliance.sip.errors import ParseError
from appliance.sip.headers import Address, CSeq, Via
from appliance.sip.message import (
    REASONS,
    Request,
    Response,
    StreamParser,
    make_request,
    make_response,
    parse_message,
)
from appliance.sip.uri import parse_uri

from .helpers import error_of

INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"v=0\r\n"
)

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.3\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1"
    b";received=192.0.2.2\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"Record-Route: <sip:server10.biloxi.com;lr>, <sip:bigbox3.site3.atlanta.com;lr>\r\n"
    b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OPTIONS = (
    b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:carol@chicago.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

COMPACT = (
    b"MESSAGE sip:user2@domain.com SIP/2.0\r\n"
    b"v: SIP/2.0/TCP user1pc.domain.com;branch=z9hG4bK776sgdkse\r\n"
    b"Max-Forwards: 70\r\n"
    b"f: sip:user1@domain.com;tag=49583\r\n"
    b"t: sip:user2@domain.com\r\n"
    b"i: asd88asd77a@1.2.3.4\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"c: text/plain\r\n"
    b"l: 18\r\n"
    b"\r\n"
    b"Watson, come here."
)


def request_text(extra=b"", body=b"", length=None, start=b"OPTIONS sip:bob@biloxi.com SIP/2.0"):
    """A small request; Content-Length is the body's unless `length` (bytes) is given."""
    if length is None:
        length = str(len(body)).encode()
    return (
        start + b"\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\r\n"
        b"To: <sip:bob@biloxi.com>\r\n"
        b"From: <sip:alice@atlanta.com>;tag=1\r\n"
        b"Call-ID: c1@pc33\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        + extra
        + (b"Content-Length: " + length + b"\r\n" if length != b"-" else b"")
        + b"\r\n"
        + body
    )


class TestParseRequest(unittest.TestCase):
    def test_start_line(self):
        request = parse_message(INVITE)
        self.assertIsInstance(request, Request)
        self.assertEqual(request.method, "INVITE")
        self.assertEqual(request.uri_text, "sip:bob@biloxi.com")
        self.assertEqual(request.version, "SIP/2.0")
        self.assertEqual(str(request.uri), "sip:bob@biloxi.com")
        self.assertEqual(request.uri.user, "bob")
        self.assertEqual(repr(request), "<Request INVITE sip:bob@biloxi.com>")

    def test_headers_as_written(self):
        request = parse_message(INVITE)
        self.assertEqual(request.get("Max-Forwards"), "70")
        self.assertEqual(request.get("To"), "Bob <sip:bob@biloxi.com>")
        self.assertEqual(request.call_id, "a84b4c76e66710@pc33.atlanta.com")
        self.assertEqual(request.content_type, "application/sdp")
        self.assertEqual(len(request.fields), 9)
        self.assertEqual(
            request.fields[0], ["Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"]
        )

    def test_structured_headers(self):
        request = parse_message(INVITE)
        cseq = request.cseq
        self.assertIsInstance(cseq, CSeq)
        self.assertEqual((cseq.number, cseq.method), (314159, "INVITE"))
        self.assertIsInstance(request.from_, Address)
        self.assertEqual(request.from_.tag, "1928301774")
        self.assertEqual(request.from_.display_name, "Alice")
        self.assertIsNone(request.to.tag)
        self.assertEqual(str(request.to.uri), "sip:bob@biloxi.com")
        via = request.top_via()
        self.assertIsInstance(via, Via)
        self.assertEqual(via.branch, "z9hG4bK776asdhds")

    def test_body(self):
        request = parse_message(INVITE)
        self.assertEqual(request.body, b"v=0\r\n")

    def test_missing_headers(self):
        request = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        self.assertIsNone(request.get("call-id"))
        self.assertEqual(request.get("call-id", "none"), "none")
        self.assertIsNone(request.call_id)
        self.assertFalse(request.has("via"))
        self.assertEqual(request.get_all("via"), [])
        self.assertEqual(request.get_list("via"), [])
        self.assertEqual(request.vias(), [])
        self.assertEqual(error_of(lambda: request.cseq).reason, "Missing CSeq")
        self.assertEqual(error_of(lambda: request.from_).reason, "Missing From")
        self.assertEqual(error_of(lambda: request.to).reason, "Missing To")
        self.assertEqual(error_of(request.top_via).reason, "Missing Via")
        self.assertIsNone(request.content_type)

    def test_unknown_scheme_request_uri(self):
        request = parse_message(request_text(start=b"OPTIONS urn:x:y SIP/2.0"))
        self.assertEqual(request.uri_text, "urn:x:y")
        error = error_of(lambda: request.uri)
        self.assertEqual(error.status, 416)

    def test_other_version_is_kept(self):
        request = parse_message(request_text(start=b"OPTIONS sip:bob@biloxi.com SIP/7.0"))
        self.assertEqual(request.version, "SIP/7.0")

    def test_content_type_without_parameters(self):
        request = parse_message(
            request_text(b"Content-Type: Text/Plain ; charset=UTF-8\r\n", b"hi")
        )
        self.assertEqual(request.content_type, "text/plain")


class TestParseResponse(unittest.TestCase):
    def test_status_line(self):
        response = parse_message(RINGING)
        self.assertIsInstance(response, Response)
        self.assertEqual(response.status, 180)
        self.assertEqual(response.reason, "Ringing")
        self.assertEqual(response.version, "SIP/2.0")
        self.assertEqual(repr(response), "<Response 180 Ringing>")
        self.assertEqual(response.body, b"")

    def test_reason_phrases(self):
        def reason(line):
            return parse_message(line + b"\r\nContent-Length: 0\r\n\r\n").reason

        self.assertEqual(reason(b"SIP/2.0 404 Not Found Here"), "Not Found Here")
        self.assertEqual(reason(b"SIP/2.0 100 "), "")
        self.assertEqual(reason(b"SIP/2.0 100"), "")
        self.assertEqual(reason(b"SIP/2.0 200  two  spaces "), " two  spaces ")
        self.assertEqual(
            reason(b"SIP/2.0 200 = 2**3 * 5**2 \xd0\xbd\xd0\xbe"),
            "= 2**3 * 5**2 \u043d\u043e",
        )

    def test_vias_across_lines(self):
        response = parse_message(RINGING)
        vias = response.vias()
        self.assertEqual(len(vias), 3)
        self.assertEqual(vias[0].host, "server10.biloxi.com")
        self.assertEqual(vias[2].received, "192.0.2.1")
        self.assertEqual(response.top_via().branch, "z9hG4bK4b43c2ff8.1")

    def test_bad_status_lines(self):
        for line, reason in (
            (b"SIP/2.0 2000 OK", "Malformed status code"),
            (b"SIP/2.0 20 OK", "Malformed status code"),
            (b"SIP/2.0 099 Low", "Malformed status code"),
            (b"SIP/2.0 4294967301 Big", "Malformed status code"),
            (b"SIP/2.0 2x0 OK", "Malformed status code"),
            (b"SIP/2.0 \xc2\xb200 OK", "Malformed status code"),
            (b"SIP/2.0", "Malformed status line"),
            (b"SIP/2 200 OK", "Malformed status line"),
            (b"SIP/x.0 200 OK", "Malformed status line"),
        ):
            error = error_of(parse_message, line + b"\r\nContent-Length: 0\r\n\r\n")
            self.assertEqual(error.reason, reason)
            self.assertIsNone(error.message)  # a response is never answered


class TestLookup(unittest.TestCase):
    def test_any_name_form(self):
        message = parse_message(COMPACT)
        for name in ("i", "I", "Call-ID", "call-id", "CALL-ID"):
            self.assertEqual(message.get(name), "asd88asd77a@1.2.3.4")
            self.assertTrue(message.has(name))
        self.assertEqual(message.get("content-length"), "18")
        self.assertEqual(message.get("L"), "18")
        self.assertEqual(message.get("Content-Type"), "text/plain")
        self.assertEqual(message.content_type, "text/plain")
        self.assertEqual(message.get("from"), "sip:user1@domain.com;tag=49583")
        self.assertEqual(message.from_.tag, "49583")
        self.assertEqual(message.to.uri.user, "user2")
        self.assertEqual(message.top_via().transport, "TCP")
        self.assertEqual(message.body, b"Watson, come here.")

    def test_long_form_found_by_compact_name(self):
        message = parse_message(INVITE)
        self.assertEqual(message.get("i"), "a84b4c76e66710@pc33.atlanta.com")
        self.assertEqual(message.get("v"), "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds")
        self.assertEqual(message.get("m"), "<sip:alice@pc33.atlanta.com>")
        self.assertEqual(message.get("c"), "application/sdp")

    def test_get_list_across_lines(self):
        message = parse_message(request_text(
            b"Supported: timer, 100rel\r\n"
            b"k: path\r\n"
            b"Supported: gruu,, replaces\r\n"
        ))
        self.assertEqual(message.get_list("supported"), ["timer", "100rel", "path", "gruu",
                                                         "replaces"])
        self.assertEqual(message.get_all("Supported"),
                         ["timer, 100rel", "path", "gruu,, replaces"])
        self.assertEqual(message.get("k"), "timer, 100rel")

    def test_get_list_with_quoted_commas(self):
        message = parse_message(request_text(
            b'Contact: "Bell, A" <sip:a@h>;q=0.5, <sip:b@h>\r\n'
            b"m: <sip:c@h>\r\n"
        ))
        self.assertEqual(
            message.get_list("contact"), ['"Bell, A" <sip:a@h>;q=0.5', "<sip:b@h>", "<sip:c@h>"]
        )

    def test_via_list_in_one_line(self):
        message = parse_message(request_text().replace(
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8",
            b"Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com"
            b";branch=z9hG4bK2\r\nv: SIP/2.0/UDP c.example.com;branch=z9hG4bK3",
        ))
        self.assertEqual([via.host for via in message.vias()],
                         ["a.example.com", "b.example.com", "c.example.com"])
        self.assertEqual(message.top_via().host, "a.example.com")
        self.assertEqual(message.top_via().branch, "z9hG4bK1")

    def test_whitespace_around_colon(self):
        message = parse_message(request_text(b"Subject   :  lunch \t\r\nX-Empty:\r\n"))
        self.assertEqual(message.get("subject"), "lunch")
        self.assertEqual(message.get("x-empty"), "")
        self.assertTrue(message.has("X-EMPTY"))

    def test_value_keeps_colons(self):
        message = parse_message(request_text(b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"))
        self.assertEqual(message.get("date"), "Sat, 13 Nov 2010 23:29:00 GMT")


class TestFolding(unittest.TestCase):
    def test_continuation_lines_unfolded(self):
        message = parse_message(request_text(
            b"Subject: I know you're there,\r\n"
            b"         pick up the phone\r\n"
            b"\t and talk to me!\r\n"
        ))
        self.assertEqual(message.get("subject"),
                         "I know you're there, pick up the phone and talk to me!")

    def test_folded_value_starting_on_next_line(self):
        message = parse_message(request_text(b"Route:\r\n <sip:services.example.com;lr>\r\n"))
        self.assertEqual(message.get("route"), "<sip:services.example.com;lr>")

    def test_folded_structured_headers(self):
        # RFC 4475 3.1.1.1 (wsinv) style.
        data = (
            b"INVITE sip:vivekg@chair-dnrc.example.com SIP/2.0\r\n"
            b"TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
            b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n'
            b"  ;\r\n  tag = 98asjd8\r\n"
            b"cseq: 0009\r\n  INVITE\r\n"
            b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        message = parse_message(data)
        self.assertEqual(message.to.tag, "1918181833n")
        self.assertEqual(message.from_.display_name, 'J Rosenberg \\"')
        self.assertEqual(message.from_.tag, "98asjd8")
        self.assertEqual(message.cseq.number, 9)
        self.assertEqual(message.cseq.method, "INVITE")
        self.assertEqual(message.top_via().host, "192.0.2.2")
        self.assertEqual(message.top_via().branch, "390skdjuw")

    def test_continuation_before_any_header(self):
        error = error_of(parse_message, b"OPTIONS sip:a@b SIP/2.0\r\n x: y\r\n\r\n")
        self.assertEqual(error.reason, "Continuation line before any header")


class TestBody(unittest.TestCase):
    def test_binary_body_untouched(self):
        body = b"\x00\x01\r\n\r\n\xff\xfe\nbare LF\rbare CR\x00"
        message = parse_message(request_text(b"Content-Type: application/octet-stream\r\n", body))
        self.assertEqual(message.body, body)
        self.assertEqual(message.to_bytes(), request_text(
            b"Content-Type: application/octet-stream\r\n", body))

    def test_body_that_looks_like_headers(self):
        body = b"INVITE sip:x@y SIP/2.0\r\nContent-Length: 99\r\n\r\n"
        message = parse_message(request_text(b"Content-Type: message/sipfrag\r\n", body))
        self.assertEqual(message.body, body)

    def test_extra_datagram_bytes_discarded(self):
        # RFC 3261 section 18.3: octets beyond Content-Length in a datagram are discarded.
        data = request_text(b"Content-Type: text/plain\r\n", b"hello EXTRA BYTES", b"5")
        message = parse_message(data)
        self.assertEqual(message.body, b"hello")
        self.assertEqual(message.get("content-length"), "5")

    def test_zero_length_with_trailing_bytes(self):
        message = parse_message(request_text(body=b"\r\nINVITE junk", length=b"0"))
        self.assertEqual(message.body, b"")

    def test_missing_content_length_takes_rest_of_datagram(self):
        data = request_text(b"Content-Type: text/plain\r\n", b"all of\r\nthis\x00", b"-")
        message = parse_message(data)
        self.assertFalse(message.has("content-length"))
        self.assertEqual(message.body, b"all of\r\nthis\x00")

    def test_missing_content_length_on_a_stream_means_no_body(self):
        data = request_text(b"Content-Type: text/plain\r\n", b"ignored", b"-")
        self.assertEqual(parse_message(data, True).body, b"")

    def test_content_length_larger_than_body(self):
        data = request_text(b"Content-Type: text/plain\r\n", b"short", b"9999")
        error = error_of(parse_message, data)
        self.assertEqual(error.reason, "Content-Length larger than the message body")
        self.assertEqual(error.status, 400)
        # The request could be read: it is attached so that a 400 can be sent.
        self.assertIsInstance(error.message, Request)
        self.assertEqual(error.message.method, "OPTIONS")
        self.assertEqual(error.message.call_id, "c1@pc33")
        self.assertEqual(error.message.top_via().branch, "z9hG4bKnashds8")

    def test_malformed_content_length(self):
        for value in (b"-999", b"5a", b"", b"0x10", b"1 2", b"+5", b"\xc2\xb2", b"\xd9\xa0"):
            error = error_of(parse_message, request_text(length=value))
            self.assertEqual(error.reason, "Malformed Content-Length")
            self.assertIsInstance(error.message, Request)

    def test_content_length_whitespace(self):
        message = parse_message(request_text(body=b"abc", length=b"  3  "))
        self.assertEqual(message.body, b"abc")

    def test_compact_content_length(self):
        message = parse_message(COMPACT + b"trailing")
        self.assertEqual(message.body, b"Watson, come here.")


class TestFraming(unittest.TestCase):
    def test_leading_crlfs_ignored(self):
        message = parse_message(b"\r\n\r\n\r\n" + OPTIONS)
        self.assertEqual(message.method, "OPTIONS")
        self.assertEqual(message.to_bytes(), OPTIONS)

    def test_missing_end_of_headers(self):
        error = error_of(parse_message, b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x")
        self.assertEqual(error.reason, "Missing end of headers")
        self.assertEqual(error_of(parse_message, b"").reason, "Missing end of headers")

    def test_headers_ending_with_the_datagram(self):
        # RFC 4475 3.1.2.15 (baddn) ends after the last header's CRLF, without an empty line.
        message = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nl: 0\r\n")
        self.assertEqual(message.call_id, "x")
        self.assertEqual(message.body, b"")

    def test_headers_not_utf8(self):
        error = error_of(parse_message, b"OPTIONS sip:a@b SIP/2.0\r\nSubject: \xff\r\n\r\n")
        self.assertEqual(error.reason, "Headers are not UTF-8")

    def test_utf8_header_values(self):
        message = parse_message(request_text("Subject: caf\u00e9 \u2603\r\n".encode()))
        self.assertEqual(message.get("subject"), "caf\u00e9 \u2603")

    def test_malformed_header_line(self):
        for line in (b"NoColonHere", b"Bad Name: x", b": empty name", b"X@Y: z"):
            error = error_of(parse_message, request_text(line + b"\r\n"))
            self.assertEqual(error.reason, "Malformed header line")

    def test_bad_request_lines_keep_the_headers(self):
        for start, reason in (
            (b"INVITE sip:bob@biloxi.com", "Malformed request line"),
            (b"INVITE", "Malformed request line"),
            (b"INV ITE sip:bob@biloxi.com SIP/2.0", "Malformed Request-URI"),
            (b"INVITE sip:bob@biloxi.com SIP/2.0 ", "Malformed SIP version"),
            (b"INVITE sip:bob@biloxi.com HTTP/1.1", "Malformed SIP version"),
            (b"INVITE sip:bob@biloxi.com SIP/\xc2\xb2.0", "Malformed SIP version"),
            (b"INVITE  sip:bob@biloxi.com SIP/2.0", "Malformed Request-URI"),
            (b"INVITE sip:bob@biloxi.com  SIP/2.0", "Malformed Request-URI"),
            (b"INVITE sip:bob@biloxi.com; lr SIP/2.0", "Malformed Request-URI"),
            (b"INV@TE sip:bob@biloxi.com SIP/2.0", "Malformed request line"),
        ):
            error = error_of(parse_message, request_text(start=start))
            self.assertEqual(error.reason, reason)
            self.assertIsInstance(error.message, Request)
            self.assertEqual(error.message.call_id, "c1@pc33")
            self.assertEqual(error.message.method, start.decode().partition(" ")[0])

    def test_bad_request_line_and_bad_headers(self):
        error = error_of(parse_message, b"INVITE\r\nno colon\r\n\r\n")
        self.assertEqual(error.reason, "Malformed request line")
        self.assertIsNone(error.message)


class TestRoundTrip(unittest.TestCase):
    # `bytes(message)` is the CPython spelling; MicroPython's bytes() does not call
    # __bytes__, so the portable core (and these tests) use `to_bytes()`.

    def test_bytes_on_cpython(self):
        if sys.implementation.name != "cpython":
            raise unittest.SkipTest("bytes() calls __bytes__ only on CPython")
        for data in (INVITE, RINGING, OPTIONS, COMPACT):
            self.assertEqual(bytes(parse_message(data)), data)

    def test_canonical_messages(self):
        for data in (INVITE, RINGING, OPTIONS, COMPACT, request_text(body=b"\x00\xff")):
            self.assertEqual(parse_message(data).to_bytes(), data)

    def test_empty_reason(self):
        data = b"SIP/2.0 100 \r\nContent-Length: 0\r\n\r\n"
        self.assertEqual(parse_message(data).to_bytes(), data)

    def test_reserialised_folded_message_parses_the_same(self):
        data = request_text(b"Subject: one,\r\n two\r\n")
        message = parse_message(data)
        again = parse_message(message.to_bytes())
        self.assertEqual(again.fields, message.fields)
        self.assertEqual(again.to_bytes(), message.to_bytes())

    def test_built_messages(self):
        request = Request("OPTIONS", parse_uri("sip:bob@biloxi.com"),
                          [["Call-ID", "x"], ["Content-Length", "0"]])
        self.assertEqual(request.uri_text, "sip:bob@biloxi.com")
        self.assertEqual(
            request.to_bytes(),
            b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n",
        )
        self.assertEqual(Response(200).to_bytes(), b"SIP/2.0 200 OK\r\n\r\n")
        self.assertEqual(Response(799).reason, "Unknown")
        self.assertEqual(Response(486, "Gone Fishing").reason, "Gone Fishing")
        self.assertEqual(REASONS[481], "Call/Transaction Does Not Exist")


class TestEditing(unittest.TestCase):
    def test_add_and_lookup_refresh(self):
        message = parse_message(OPTIONS)
        self.assertIsNone(message.get("subject"))
        message.add("Subject", "hello")
        self.assertEqual(message.get("s"), "hello")
        self.assertEqual(message.fields[-1], ["Subject", "hello"])
        message.add("Subject", 42)
        self.assertEqual(message.get_all("subject"), ["hello", "42"])

    def test_add_first(self):
        message = parse_message(OPTIONS)
        message.add_first("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp")
        self.assertEqual(message.top_via().host, "proxy.example.com")
        self.assertEqual(len(message.vias()), 2)
        self.assertEqual(message.to_bytes().split(b"\r\n")[1],
                         b"Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp")

    def test_remove_every_name_form(self):
        message = parse_message(request_text(b"Supported: a\r\nk: b\r\nSUPPORTED: c\r\n"))
        message.remove("k")
        self.assertFalse(message.has("supported"))
        self.assertEqual(message.get_list("supported"), [])
        self.assertEqual(message.call_id, "c1@pc33")

    def test_set_keeps_first_position(self):
        message = parse_message(request_text(b"Supported: a\r\nX-Other: 1\r\nk: b\r\n"))
        message.set("Supported", "timer")
        names = [field[0] for field in message.fields]
        self.assertEqual(names, ["Via", "To", "From", "Call-ID", "CSeq", "Supported", "X-Other",
                                 "Content-Length"])
        self.assertEqual(message.get_all("supported"), ["timer"])
        message.set("Subject", "new")
        self.assertEqual(message.fields[-1], ["Subject", "new"])

    def test_structured_values_follow_edits(self):
        message = parse_message(OPTIONS)
        self.assertEqual(message.cseq.number, 63104)
        message.set("CSeq", "63105 OPTIONS")
        self.assertEqual(message.cseq.number, 63105)
        self.assertIsNone(message.to.tag)
        message.set("To", "<sip:carol@chicago.com>;tag=xyz")
        self.assertEqual(message.to.tag, "xyz")
        message.remove("via")
        self.assertEqual(error_of(message.top_via).reason, "Missing Via")


class TestMakeResponse(unittest.TestCase):
    def test_copies_and_tags(self):
        request = parse_message(INVITE)
        response = make_response(request, 486, to_tag="a6c85cf")
        self.assertEqual(response.status, 486)
        self.assertEqual(response.reason, "Busy Here")
        self.assertEqual(
            response.to_bytes(),
            b"SIP/2.0 486 Busy Here\r\n"
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
            b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
            b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
            b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
            b"CSeq: 314159 INVITE\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n",
        )

    def test_record_route_goes_into_the_responses_that_make_a_dialog(self):
        routed = INVITE.replace(b"Max-Forwards", b"Record-Route: <sip:p1.example.com;lr>, "
                                b"<sip:p2.example.com;lr>\r\nMax-Forwards")
        request = parse_message(routed)
        for status in (180, 200):
            response = make_response(request, status, to_tag="t")
            self.assertEqual(response.get_all("record-route"),
                             ["<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"])
        for status in (100, 486):
            self.assertEqual(make_response(request, status, to_tag="t")
                             .get_all("record-route"), [])
        options = parse_message(routed.replace(b"INVITE", b"OPTIONS"))
        self.assertEqual(make_response(options, 200, to_tag="t").get_all("record-route"), [])

    def test_every_via_in_order(self):
        request = parse_message(request_text().replace(
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8",
            b"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com"
            b";branch=z9hG4bK2\r\nv: SIP/2.0/UDP p3.example.com;branch=z9hG4bK3",
        ))
        response = make_response(request, 200, to_tag="t")
        self.assertEqual(
            response.get_all("via"),
            [
                (
                    "SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, "
                    "SIP/2.0/UDP p2.example.com;branch=z9hG4bK2"
                ),
                "SIP/2.0/UDP p3.example.com;branch=z9hG4bK3",
            ],
        )
        self.assertEqual(response.fields[1][0], "v")  # names kept as the request wrote them

    def test_existing_to_tag_kept(self):
        request = parse_message(request_text().replace(
            b"To: <sip:bob@biloxi.com>", b"To: <sip:bob@biloxi.com>;tag=existing"))
        response = make_response(request, 200, to_tag="new")
        self.assertEqual(response.get("to"), "<sip:bob@biloxi.com>;tag=existing")
        self.assertEqual(response.to.tag, "existing")

    def test_tag_like_text_is_not_a_tag(self):
        request = parse_message(request_text().replace(
            b"To: <sip:bob@biloxi.com>", b'To: "tag" <sip:tag@biloxi.com;tag=uri>'))
        response = make_response(request, 200, to_tag="new")
        self.assertEqual(response.to.tag, "new")
        self.assertEqual(response.get("to"), '"tag" <sip:tag@biloxi.com;tag=uri>;tag=new')

    def test_compact_to_gets_tag(self):
        response = make_response(parse_message(COMPACT), 202, to_tag="x1")
        self.assertEqual(response.get("t"), "sip:user2@domain.com;tag=x1")
        self.assertEqual(response.to.tag, "x1")

    def test_no_tag_on_100(self):
        request = parse_message(request_text(b"Timestamp: 54.1 0.3\r\nSubject: s\r\n"))
        trying = make_response(request, 100, to_tag="ignored")
        self.assertEqual(trying.reason, "Trying")
        self.assertEqual(trying.get("to"), "<sip:bob@biloxi.com>")
        self.assertEqual(trying.get("timestamp"), "54.1 0.3")  # RFC 3261 8.2.6.1
        self.assertIsNone(trying.get("subject"))
        final = make_response(request, 200, to_tag="t")
        self.assertIsNone(final.get("timestamp"))

    def test_no_tag_without_one_given(self):
        response = make_response(parse_message(OPTIONS), 200)
        self.assertEqual(response.get("to"), "<sip:carol@chicago.com>")

    def test_unreadable_to_copied_unchanged(self):
        request = parse_message(request_text().replace(
            b"To: <sip:bob@biloxi.com>", b'To: "x <sip:bob@biloxi.com>;tag=5'))
        response = make_response(request, 400, "Unterminated display name", to_tag="t")
        self.assertEqual(response.get("to"), '"x <sip:bob@biloxi.com>;tag=5')
        self.assertEqual(response.reason, "Unterminated display name")

    def test_fields_and_body(self):
        response = make_response(
            parse_message(OPTIONS), 200, to_tag="t",
            fields=[("Allow", "INVITE, ACK"), ("Accept", "application/sdp")],
            body=b"v=0\r\n",
        )
        names = [field[0] for field in response.fields]
        self.assertEqual(names, ["Via", "To", "From", "Call-ID", "CSeq", "Allow", "Accept",
                                 "Content-Length"])
        self.assertEqual(response.get("content-length"), "5")
        self.assertEqual(response.body, b"v=0\r\n")
        self.assertEqual(response.to_bytes()[-9:], b"\r\n\r\nv=0\r\n")

    def test_other_headers_not_copied(self):
        response = make_response(parse_message(INVITE), 200, to_tag="t")
        for name in ("max-forwards", "contact", "content-type"):
            self.assertFalse(response.has(name))

    def test_response_parses_back(self):
        response = make_response(parse_message(INVITE), 603, to_tag="t")
        again = parse_message(response.to_bytes())
        self.assertEqual(again.status, 603)
        self.assertEqual(again.reason, "Decline")
        self.assertEqual(again.cseq.method, "INVITE")
        self.assertEqual(again.to.tag, "t")


def feed_bytewise(parser, data):
    out = []
    for i in range(len(data)):
        out.extend(parser.feed(data[i : i + 1]))
    return out


class TestStreamParser(unittest.TestCase):
    STREAM = INVITE + b"\r\n\r\n" + OPTIONS + COMPACT + RINGING
    EXPECTED = (INVITE, StreamParser.PING, OPTIONS, COMPACT, RINGING)

    def test_whole_stream(self):
        self.assertEqual(StreamParser().feed(self.STREAM), list(self.EXPECTED))

    def test_one_byte_at_a_time(self):
        parser = StreamParser()
        self.assertEqual(feed_bytewise(parser, self.STREAM), list(self.EXPECTED))
        self.assertEqual(parser.feed(b""), [])

    def test_stream_that_is_not_sip_is_refused(self):
        # Framed but not SIP, and binary bytes with no header end (a TLS hello on the TCP
        # port): both refused at once rather than buffered, so the connection is closed.
        for junk in (b"NOT SIP\r\nContent-Length: 0\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\n",
                     b"\x16\x03\x01\x00\xc4\x01\x00\x00\xc0\x03\x03"):
            with self.assertRaises(ParseError):
                StreamParser().feed(junk)

    def test_every_split_point(self):
        for i in range(len(self.STREAM) + 1):
            parser = StreamParser()
            out = parser.feed(self.STREAM[:i]) + parser.feed(self.STREAM[i:])
            self.assertEqual(out, list(self.EXPECTED))

    def test_arbitrary_chunks(self):
        for size in (2, 3, 7, 13, 64, 100, 499):
            parser = StreamParser()
            out = []
            for start in range(0, len(self.STREAM), size):
                out.extend(parser.feed(self.STREAM[start : start + size]))
            self.assertEqual(out, list(self.EXPECTED))

    def test_framed_messages_parse(self):
        messages = [parse_message(item, True) for item in StreamParser().feed(self.STREAM)
                    if item != StreamParser.PING]
        self.assertEqual([m.to_bytes() for m in messages], [INVITE, OPTIONS, COMPACT, RINGING])
        self.assertEqual(messages[2].body, b"Watson, come here.")

    def test_binary_body_with_blank_lines(self):
        body = b"\r\n\r\n\x00\r\n\r\n"
        data = request_text(b"Content-Type: application/octet-stream\r\n", body)
        parser = StreamParser()
        self.assertEqual(feed_bytewise(parser, data + data), [data, data])

    def test_ping_and_pong(self):
        # RFC 5626 section 3.5.1: CRLFCRLF is a ping, a single CRLF the pong.
        self.assertEqual(StreamParser().feed(b"\r\n\r\n"), [StreamParser.PING])
        self.assertEqual(StreamParser().feed(b"\r\n\r\n\r\n\r\n"),
                         [StreamParser.PING, StreamParser.PING])
        self.assertEqual(StreamParser().feed(b"\r\n" + OPTIONS), [StreamParser.PONG, OPTIONS])
        self.assertEqual(feed_bytewise(StreamParser(), b"\r\n\r\n" + OPTIONS + b"\r\n" + OPTIONS),
                         [StreamParser.PING, OPTIONS, StreamParser.PONG, OPTIONS])

    def test_pong_expected_is_delivered_at_once(self):
        # The side that pinged takes a lone CRLF as the pong without waiting for more.
        parser = StreamParser()
        parser.pong_expected = True
        self.assertEqual(parser.feed(b"\r\n"), [StreamParser.PONG])
        self.assertFalse(parser.pong_expected)
        # The next lone CRLF is held again: it may begin a ping.
        self.assertEqual(parser.feed(b"\r\n"), [])
        self.assertEqual(parser.feed(b"\r\n"), [StreamParser.PING])

    def test_pong_expected_arriving_bytewise(self):
        parser = StreamParser()
        parser.pong_expected = True
        self.assertEqual(parser.feed(b"\r"), [])
        self.assertEqual(parser.feed(b"\n"), [StreamParser.PONG])

    def test_partial_line_breaks_wait(self):
        parser = StreamParser()
        self.assertEqual(parser.feed(b"\r"), [])
        self.assertEqual(parser.feed(b"\n"), [])
        self.assertEqual(parser.feed(b"\r"), [])
        self.assertEqual(parser.feed(b"\n"), [StreamParser.PING])

    def test_incomplete_message_waits(self):
        parser = StreamParser()
        self.assertEqual(parser.feed(INVITE[:-1]), [])
        self.assertEqual(parser.feed(INVITE[-1:] + OPTIONS[:10]), [INVITE])
        self.assertEqual(parser.feed(OPTIONS[10:]), [OPTIONS])

    def test_content_length_larger_than_sent_waits(self):
        parser = StreamParser()
        data = request_text(b"Content-Type: text/plain\r\n", b"short", b"9999")
        self.assertEqual(parser.feed(data), [])

    def test_missing_content_length(self):
        data = request_text(b"Content-Type: text/plain\r\n", b"body", b"-")
        parser = StreamParser()
        error = error_of(feed_bytewise, parser, data)
        self.assertEqual(error.reason, "Missing Content-Length on a stream")

    def test_malformed_content_length(self):
        for value in (b"-999", b"x", b"", b"\xc2\xb2"):
            error = error_of(StreamParser().feed, request_text(length=value))
            self.assertEqual(error.reason, "Malformed Content-Length")

    def test_compact_and_case_insensitive_content_length(self):
        data = request_text(body=b"abc", length=b"-").replace(
            b"\r\n\r\nabc", b"\r\nCONTENT-LENGTH :  3\r\n\r\nabc")
        self.assertEqual(StreamParser().feed(data + OPTIONS), [data, OPTIONS])

    def test_stray_line_break(self):
        self.assertEqual(error_of(StreamParser().feed, b"\nOPTIONS").reason,
                         "Stray line break in stream")
        self.assertEqual(error_of(StreamParser().feed, b"\r\rOPTIONS").reason,
                         "Stray line break in stream")

    def test_headers_too_long(self):
        parser = StreamParser(max_message=100)
        self.assertEqual(parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\n"), [])
        error = error_of(parser.feed, b"X-Long: " + b"x" * 100)
        self.assertEqual(error.reason, "Headers too long")

    def test_oversize_message(self):
        parser = StreamParser(max_message=len(OPTIONS) + 10)
        self.assertEqual(parser.feed(OPTIONS), [OPTIONS])
        data = request_text(b"Content-Type: text/plain\r\n", b"b" * 20)
        self.assertEqual(error_of(StreamParser(max_message=len(data) - 1).feed, data).reason,
                         "Message too large")
        # Refused on the announced length, before the body has come.
        head = request_text(length=b"1000000")
        self.assertEqual(error_of(StreamParser().feed, head).reason, "Message too large")

    def test_exactly_max_message(self):
        self.assertEqual(StreamParser(max_message=len(OPTIONS)).feed(OPTIONS), [OPTIONS])

    # Framing is incremental (each feed scans only its own bytes and the three before):
    # however the stream is cut, what comes out is what one feed of it all gives.

    LONG_START = request_text(b"Content-Type: text/plain\r\n", b"\r\nlong\r\n\r\n",
                              start=b"OPTIONS sip:" + b"b" * 600 + b"@biloxi.com SIP/2.0")
    BINARY = request_text(b"Content-Type: application/octet-stream\r\n", b"\r\n\r\n\x00\r\n")
    PIPELINED = (INVITE + b"\r\n\r\n" + OPTIONS + b"\r\n" + COMPACT + BINARY + b"\r\n\r\n"
                 + b"\r\n\r\n" + LONG_START + RINGING + b"\r\n" + OPTIONS + b"\r\n\r\n")
    PIPELINED_OUT = [INVITE, StreamParser.PING, OPTIONS, StreamParser.PONG, COMPACT, BINARY,
                     StreamParser.PING, StreamParser.PING, LONG_START, RINGING,
                     StreamParser.PONG, OPTIONS, StreamParser.PING]

    def feed_pieces(self, cuts):
        """Feed PIPELINED cut at the offsets `cuts`; what came out, and the parser."""
        parser = StreamParser()
        out = []
        start = 0
        for cut in list(cuts) + [len(self.PIPELINED)]:
            out.extend(parser.feed(self.PIPELINED[start:cut]))
            start = cut
        return out, parser

    def test_pipelined_stream_bytewise_as_at_once(self):
        at_once = StreamParser().feed(self.PIPELINED)
        self.assertEqual(at_once, self.PIPELINED_OUT)
        out, parser = self.feed_pieces(range(1, len(self.PIPELINED)))
        self.assertEqual(out, at_once)
        self.assertEqual(parser.feed(b""), [])

    def test_pipelined_stream_at_every_split_point(self):
        for cut in range(len(self.PIPELINED) + 1):
            self.assertEqual(self.feed_pieces([cut])[0], self.PIPELINED_OUT, "cut at %d" % cut)

    def test_pipelined_stream_in_pieces_of_every_size(self):
        for size in range(2, 80):
            cuts = range(size, len(self.PIPELINED), size)
            self.assertEqual(self.feed_pieces(cuts)[0], self.PIPELINED_OUT, "size %d" % size)

    def test_pipelined_stream_in_pieces_of_random_sizes(self):
        seed = 12345  # a fixed linear congruential sequence: the same cuts on every run
        for _ in range(50):
            cuts = []
            cut = 0
            while True:
                seed = (seed * 1103515245 + 12345) % 2147483648
                cut += 1 + seed % 97
                if cut >= len(self.PIPELINED):
                    break
                cuts.append(cut)
            self.assertEqual(self.feed_pieces(cuts)[0], self.PIPELINED_OUT, repr(cuts))

    def test_header_end_straddling_two_feeds(self):
        head = COMPACT.index(b"\r\n\r\n")
        for split in (head + 1, head + 2, head + 3):  # "\r" + "\n\r\n", "\r\n" + "\r\n", ...
            parser = StreamParser()
            self.assertEqual(parser.feed(COMPACT[:split]), [])
            self.assertEqual(parser.feed(COMPACT[split:]), [COMPACT], "split at %d" % split)
        # Held over several feeds, then ended: the end is found in the bytes that span them.
        parser = StreamParser()
        for piece in (COMPACT[: head - 5], COMPACT[head - 5 : head + 2]):
            self.assertEqual(parser.feed(piece), [])
        self.assertEqual(parser.feed(COMPACT[head + 2 :] + OPTIONS), [COMPACT, OPTIONS])

    def test_headers_too_long_when_trickled(self):
        start = b"OPTIONS sip:a@b SIP/2.0\r\nX-Long: "
        data = start + b"x" * 200
        parser = StreamParser(max_message=100)
        for i in range(100):
            self.assertEqual(parser.feed(data[i : i + 1]), [])
        self.assertEqual(error_of(parser.feed, data[100:101]).reason, "Headers too long")
        # Headers that do end within the limit are framed, a byte at a time too.
        data = request_text()
        parser = StreamParser(max_message=len(data))
        self.assertEqual(feed_bytewise(parser, data), [data])
        parser = StreamParser(max_message=len(data) - 1)
        self.assertEqual(error_of(feed_bytewise, parser, data).reason, "Message too large")

    def test_body_too_large_when_trickled(self):
        data = request_text(b"Content-Type: text/plain\r\n", b"b" * 20)
        parser = StreamParser(max_message=len(data) - 1)
        head = data.index(b"\r\n\r\n") + 3
        self.assertEqual(feed_bytewise(parser, data[:head]), [])
        self.assertEqual(error_of(parser.feed, data[head : head + 1]).reason,
                         "Message too large")

    def test_not_sip_refused_at_once_when_trickled(self):
        # The start line is checked as its bytes come, not only once the headers end.
        for data, reason in ((b"OPT\x16", "Not a SIP message"),
                             (b"OPTIONS\rx", "Not a SIP message"),
                             (b"GET / HTTP/1.1\r\n", "Not a SIP start line"),
                             (b"OPTIONS sip:a@b SIP/2.0" + b"\x00", "Not a SIP message")):
            parser = StreamParser()
            self.assertEqual(feed_bytewise(parser, data[:-1]), [])
            self.assertEqual(error_of(parser.feed, data[-1:]).reason, reason)
        # A byte that cannot be in a start line, past its first 256 bytes, is not refused
        # until the line ends (the check looks no further, trickled or not).
        data = b"OPTIONS sip:" + b"a" * 300 + b"\x01"
        self.assertEqual(feed_bytewise(StreamParser(), data), [])
        self.assertEqual(StreamParser().feed(data), [])

    def test_fault_after_trickled_message_returns_it_first(self):
        data = request_text(b"Content-Type: text/plain\r\n", b"body")
        parser = StreamParser()
        self.assertEqual(feed_bytewise(parser, data[:-1]), [])
        self.assertEqual(parser.feed(data[-1:] + b"\nOPTIONS"), [data])
        self.assertEqual(parser.error.reason, "Stray line break in stream")
        self.assertEqual(error_of(parser.feed, OPTIONS).reason, "Stray line break in stream")


class TestMakeRequest(unittest.TestCase):
    def test_request_outside_a_dialog(self):
        request = make_request("OPTIONS", "sip:porch@home.arpa", "sip:alice@example.net",
                               "a1b2", "call-9", 7, routes=["sip:pbx.example.net;lr"],
                               fields=[("Accept", "application/sdp")])
        self.assertEqual(request.to_bytes(), (
            b"OPTIONS sip:porch@home.arpa SIP/2.0\r\n"
            b"Route: <sip:pbx.example.net;lr>\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: <sip:alice@example.net>;tag=a1b2\r\n"
            b"To: <sip:porch@home.arpa>\r\n"
            b"Call-ID: call-9\r\n"
            b"CSeq: 7 OPTIONS\r\n"
            b"Accept: application/sdp\r\n"
            b"Content-Length: 0\r\n\r\n"
        ))
        self.assertEqual(request.cseq.method, "OPTIONS")

    def test_to_may_differ_and_body_sets_length(self):
        request = make_request("MESSAGE", "sip:bob@10.0.0.2:5060", "sip:frontdoor@home.arpa",
                               "t", "c", to_uri="sip:bob@example.net", body=b"Door open")
        self.assertEqual(request.get("to"), "<sip:bob@example.net>")
        self.assertEqual(request.get("content-length"), "9")
        self.assertEqual(request.body, b"Door open")


if __name__ == "__main__":
    unittest.main()
