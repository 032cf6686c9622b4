"""appliance/sip/headers.py: lists, parameters, addresses, Via and CSeq (RFC 3261 sections
7.3, 20 and 25)."""

import unittest

from appliance.sip.headers import (
    Address,
    CSeq,
    Via,
    format_params,
    get_param,
    header_key,
    is_token,
    parse_address,
    parse_cseq,
    parse_params,
    parse_via,
    quote,
    split_list,
    split_quoted,
    unquote,
)
from appliance.sip.uri import OpaqueUri, Uri, parse_uri

from .helpers import error_of


class TestNames(unittest.TestCase):
    def test_long_names_any_case(self):
        self.assertEqual(header_key("Call-ID"), "call-id")
        self.assertEqual(header_key("call-id"), "call-id")
        self.assertEqual(header_key("CALL-ID"), "call-id")
        self.assertEqual(header_key("X-Custom-Thing"), "x-custom-thing")

    def test_compact_forms(self):
        # RFC 3261 section 7.3.3 and 20.
        for compact, key in (
            ("i", "call-id"), ("m", "contact"), ("e", "content-encoding"),
            ("l", "content-length"), ("c", "content-type"), ("f", "from"),
            ("s", "subject"), ("k", "supported"), ("t", "to"), ("v", "via"),
        ):
            self.assertEqual(header_key(compact), key)
            self.assertEqual(header_key(compact.upper()), key)

    def test_compact_forms_of_later_rfcs(self):
        self.assertEqual(header_key("o"), "event")
        self.assertEqual(header_key("u"), "allow-events")
        self.assertEqual(header_key("r"), "refer-to")
        self.assertEqual(header_key("b"), "referred-by")
        self.assertEqual(header_key("x"), "session-expires")

    def test_is_token(self):
        self.assertTrue(is_token("INVITE"))
        self.assertTrue(is_token("!interesting-Method0123456789_*+`.%indeed'~"))
        self.assertFalse(is_token(""))
        self.assertFalse(is_token("a b"))
        self.assertFalse(is_token("a:b"))
        self.assertFalse(is_token("a@b"))
        self.assertFalse(is_token('"a"'))
        self.assertFalse(is_token("caf\u00e9"))


class TestLists(unittest.TestCase):
    def test_plain(self):
        self.assertEqual(split_list("a, b ,c"), ["a", "b", "c"])
        self.assertEqual(split_list("INVITE,ACK,\tBYE"), ["INVITE", "ACK", "BYE"])
        self.assertEqual(split_list("single"), ["single"])

    def test_empty_elements_dropped(self):
        # RFC 3261 7.3.1 / 25.1: empty list elements are ignored.
        self.assertEqual(split_list("a,,b, ,"), ["a", "b"])
        self.assertEqual(split_list(""), [])
        self.assertEqual(split_list(" , "), [])

    def test_comma_in_quoted_display_name(self):
        self.assertEqual(
            split_list('"Bell, Alexander" <sip:a.g.bell@example.com>;tag=43, <sip:b@h>'),
            ['"Bell, Alexander" <sip:a.g.bell@example.com>;tag=43', "<sip:b@h>"],
        )

    def test_comma_in_angle_brackets(self):
        self.assertEqual(
            split_list("<sip:a,b@example.com>, <sip:c@example.com>"),
            ["<sip:a,b@example.com>", "<sip:c@example.com>"],
        )

    def test_angle_bracket_in_quotes(self):
        self.assertEqual(
            split_list('"a <b, c" <sip:x@h>, d'), ['"a <b, c" <sip:x@h>', "d"]
        )

    def test_escaped_quote_keeps_string_open(self):
        self.assertEqual(
            split_list('"a \\", b" <sip:x@h>, c'), ['"a \\", b" <sip:x@h>', "c"]
        )

    def test_escaped_backslash_closes_string(self):
        self.assertEqual(split_list('"a\\\\", b'), ['"a\\\\"', "b"])

    def test_quoted_parameter_values(self):
        self.assertEqual(
            split_list('Digest realm="a, b", nonce="c"'), ['Digest realm="a, b"', 'nonce="c"']
        )

    def test_unterminated(self):
        self.assertEqual(error_of(split_list, '"a, b').reason, "Unterminated quoted string")
        self.assertEqual(error_of(split_list, '"a\\"').reason, "Unterminated quoted string")
        self.assertEqual(error_of(split_list, "<sip:a@h, b").reason,
                         "Unterminated angle bracket")

    def test_split_on_semicolons(self):
        self.assertEqual(split_quoted('a; b="x;y" ;c', ";"), ["a", 'b="x;y"', "c"])

    def test_quote_and_unquote(self):
        self.assertEqual(quote('say "hi" \\o/'), '"say \\"hi\\" \\\\o/"')
        self.assertEqual(unquote('"say \\"hi\\" \\\\o/"'), 'say "hi" \\o/')
        self.assertEqual(unquote('"plain"'), "plain")
        self.assertEqual(unquote('""'), "")
        self.assertEqual(unquote("token"), "token")
        self.assertEqual(unquote('"'), '"')
        for text in ("", "a", '"', "\\", 'x\\"y', "caf\u00e9"):
            self.assertEqual(unquote(quote(text)), text)


class TestParams(unittest.TestCase):
    def test_flags_and_values(self):
        self.assertEqual(
            parse_params("tag=1928301774;lr;expires=3600"),
            [("tag", "1928301774"), ("lr", None), ("expires", "3600")],
        )

    def test_whitespace_around_separators(self):
        # SEMI and EQUAL allow surrounding white space (RFC 3261 section 25.1).
        self.assertEqual(
            parse_params(" tag =  98asjd8 ; q = 0.33 ;secondparam"),
            [("tag", "98asjd8"), ("q", "0.33"), ("secondparam", None)],
        )

    def test_quoted_values_keep_quotes(self):
        self.assertEqual(
            parse_params('description="a;b,c=d";x=1'),
            [("description", '"a;b,c=d"'), ("x", "1")],
        )
        self.assertEqual(parse_params('q="\\"x\\""'), [("q", '"\\"x\\""')])

    def test_lookup(self):
        params = parse_params("Tag=abc;LR;q=0.5")
        self.assertEqual(get_param(params, "tag"), "abc")
        self.assertEqual(get_param(params, "TAG"), "abc")
        self.assertEqual(get_param(params, "lr"), "")
        self.assertIsNone(get_param(params, "expires"))
        self.assertEqual(get_param(params, "expires", "3600"), "3600")

    def test_format(self):
        params = [("tag", "1"), ("lr", None), ("x", '"a b"')]
        self.assertEqual(format_params(params), ';tag=1;lr;x="a b"')
        self.assertEqual(format_params([]), "")

    def test_errors(self):
        self.assertEqual(error_of(parse_params, "tag=").reason, "Empty value for parameter 'tag'")
        self.assertEqual(error_of(parse_params, "=1").reason, "Malformed header parameter '=1'")
        self.assertEqual(error_of(parse_params, "").reason, "Malformed header parameter ''")
        self.assertEqual(error_of(parse_params, "a;;b").reason, "Malformed header parameter ''")
        self.assertEqual(error_of(parse_params, "a b=1").reason,
                         "Malformed header parameter 'a b=1'")
        self.assertEqual(error_of(parse_params, 'x="abc').reason, "Unterminated quoted string")
        self.assertEqual(error_of(parse_params, 'x="').reason, "Unterminated quoted string")


class TestAddress(unittest.TestCase):
    def test_quoted_display_name_with_escapes(self):
        address = parse_address('"Alice \\"Al\\" Smith" <sip:alice@atlanta.com>;tag=1928301774')
        self.assertEqual(address.display_name, 'Alice "Al" Smith')
        self.assertEqual(str(address.uri), "sip:alice@atlanta.com")
        self.assertEqual(address.tag, "1928301774")
        self.assertFalse(address.star)

    def test_quoted_display_name_ending_in_backslash(self):
        address = parse_address('"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8')
        self.assertEqual(address.display_name, 'J Rosenberg \\"')
        self.assertEqual(address.tag, "98asjd8")

    def test_quoted_display_name_with_separators(self):
        address = parse_address('"Bell, <Alexander>; x" <sip:a.g.bell@example.com>')
        self.assertEqual(address.display_name, "Bell, <Alexander>; x")
        self.assertEqual(address.uri.user, "a.g.bell")
        self.assertEqual(address.params, [])

    def test_quoted_display_name_with_utf8(self):
        address = parse_address('"Caf\u00e9 \u00c5" <sip:cafe@example.com>')
        self.assertEqual(address.display_name, "Caf\u00e9 \u00c5")

    def test_empty_quoted_display_name(self):
        address = parse_address('"" <sip:alice@atlanta.com>')
        self.assertEqual(address.display_name, "")

    def test_token_display_name(self):
        address = parse_address("Bob  Smith <sip:bob@biloxi.com>")
        self.assertEqual(address.display_name, "Bob Smith")
        self.assertEqual(address.uri.user, "bob")

    def test_token_display_name_without_space(self):
        # RFC 4475 3.1.1.6 (lwsdisp): no LWS between the display name and '<'.
        address = parse_address("caller<sip:caller@example.com>;tag=323")
        self.assertEqual(address.display_name, "caller")
        self.assertEqual(address.tag, "323")

    def test_no_display_name(self):
        address = parse_address("<sip:alice@atlanta.com>")
        self.assertIsNone(address.display_name)
        self.assertIsNone(address.tag)

    def test_addr_spec_params_belong_to_the_header(self):
        # RFC 3261 section 20: without <>, parameters after the URI are header parameters.
        address = parse_address("sip:alice@atlanta.com;tag=88sja8x")
        self.assertEqual(str(address.uri), "sip:alice@atlanta.com")
        self.assertEqual(address.uri.params, [])
        self.assertEqual(address.tag, "88sja8x")
        self.assertIsNone(address.display_name)

    def test_addr_spec_contact_param(self):
        # RFC 4475 3.3.12 (cparam01): ;unknownparam is a contact-param, not a URI param.
        address = parse_address("sip:+19725552222@gw1.example.net;unknownparam")
        self.assertEqual(str(address.uri), "sip:+19725552222@gw1.example.net")
        self.assertEqual(address.params, [("unknownparam", None)])

    def test_name_addr_keeps_uri_params(self):
        address = parse_address("<sip:alice@atlanta.com;transport=tcp;lr>;tag=1;expires=60")
        self.assertEqual(address.uri.param("transport"), "tcp")
        self.assertTrue(address.uri.has_param("lr"))
        self.assertIsNone(address.param("transport"))
        self.assertEqual(address.tag, "1")
        self.assertEqual(address.param("expires"), "60")
        self.assertEqual(address.params, [("tag", "1"), ("expires", "60")])

    def test_name_addr_with_uri_headers(self):
        # RFC 4475 3.3.14 (regescrt).
        address = parse_address("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
        self.assertEqual(address.uri.headers, [("Route", "%3Csip:sip.example.com%3E")])

    def test_whitespace_around_parts(self):
        address = parse_address(
            '  "Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; '
            "secondparam ; q = 0.33  "
        )
        self.assertEqual(address.display_name, 'Quoted string ""')
        self.assertEqual(
            address.params, [("newparam", "newvalue"), ("secondparam", None), ("q", "0.33")]
        )

    def test_star(self):
        address = parse_address("*")
        self.assertTrue(address.star)
        self.assertIsNone(address.uri)
        self.assertEqual(str(address), "*")
        self.assertTrue(parse_address("  * ").star)

    def test_other_schemes_are_opaque(self):
        address = parse_address("<http://www.example.com>;tag=1")
        self.assertIsInstance(address.uri, OpaqueUri)
        self.assertEqual(str(address.uri), "http://www.example.com")
        self.assertEqual(address.tag, "1")
        address = parse_address("isbn:2983792873")
        self.assertIsInstance(address.uri, OpaqueUri)
        self.assertEqual(str(address.uri), "isbn:2983792873")

    def test_tel_uri(self):
        address = parse_address("<tel:+1-201-555-0123>;tag=x")
        self.assertIsInstance(address.uri, Uri)
        self.assertEqual(address.uri.scheme, "tel")

    def test_errors(self):
        for text, reason in (
            ('"Mr. J. User <sip:j.user@example.com>', "Unterminated display name"),
            ('"x" sip:x@example.com', "Expected <URI> after display name"),
            ("Bell, Alexander <sip:a.g.bell@example.com>", "Malformed display name"),
            ("J. User, Esq. <sip:j@example.com>", "Malformed display name"),
            ("<sip:alice@atlanta.com", "Unterminated angle bracket"),
            ("<sip:alice@atlanta.com> junk", "Junk after address 'junk'"),
            ("<sip:alice@atlanta.com>;", "Malformed header parameter ''"),
            ("<sip:alice@atlanta.com>;tag=", "Empty value for parameter 'tag'"),
            ("< sip:t.watson@example.org >", "Invalid character ' ' in URI scheme"),
            ("<sip:alice@>", "Missing host"),
            ("", "Malformed URI ''"),
        ):
            self.assertEqual(error_of(parse_address, text).reason, reason)

    def test_str(self):
        address = Address(parse_uri("sip:alice@atlanta.com;lr"), 'A "B"', [("tag", "x")])
        self.assertEqual(str(address), '"A \\"B\\"" <sip:alice@atlanta.com;lr>;tag=x')
        self.assertEqual(repr(address), '<Address "A \\"B\\"" <sip:alice@atlanta.com;lr>;tag=x>')
        self.assertEqual(str(Address(parse_uri("sip:a@b"))), "<sip:a@b>")

    def test_str_parses_back(self):
        for text in (
            '"Alice \\"Al\\"" <sip:alice@atlanta.com>;tag=1',
            "Bob <sip:bob@biloxi.com;transport=tcp>;expires=60",
            "sip:carol@chicago.com;tag=5",
        ):
            address = parse_address(text)
            again = parse_address(str(address))
            self.assertEqual(again.display_name, address.display_name)
            self.assertEqual(str(again.uri), str(address.uri))
            self.assertEqual(again.params, address.params)

    def test_set_param_replaces(self):
        address = parse_address("<sip:a@b>;TAG=1;x=2")
        address.set_param("tag", "9")
        self.assertEqual(address.params, [("x", "2"), ("tag", "9")])
        self.assertEqual(address.tag, "9")


class TestVia(unittest.TestCase):
    def test_simple(self):
        via = parse_via("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds")
        self.assertIsInstance(via, Via)
        self.assertEqual(via.protocol, "SIP/2.0")
        self.assertEqual(via.transport, "UDP")
        self.assertEqual(via.host, "pc33.atlanta.com")
        self.assertIsNone(via.port)
        self.assertEqual(via.branch, "z9hG4bK776asdhds")
        self.assertIsNone(via.received)
        self.assertIsNone(via.rport)
        self.assertEqual(via.sent_by(), "pc33.atlanta.com")
        self.assertEqual(str(via), "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds")

    def test_lws_around_slashes_and_colon(self):
        # RFC 4475 3.1.1.1 (wsinv), once unfolded.
        via = parse_via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw")
        self.assertEqual((via.protocol, via.transport, via.host), ("SIP/2.0", "UDP", "192.0.2.2"))
        self.assertEqual(via.branch, "390skdjuw")
        via = parse_via("SIP / 2.0 / UDP first.example.com: 4000;ttl=16 ;maddr=224.2.0.1 "
                        ";branch=z9hG4bKa7c6a8dlze.1")
        self.assertEqual(via.host, "first.example.com")
        self.assertEqual(via.port, 4000)
        self.assertEqual(via.param("ttl"), "16")
        self.assertEqual(via.param("maddr"), "224.2.0.1")
        self.assertEqual(via.branch, "z9hG4bKa7c6a8dlze.1")
        via = parse_via("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
        self.assertEqual(via.transport, "TCP")
        self.assertEqual(via.host, "spindle.example.com")
        self.assertEqual(via.branch, "z9hG4bK9ikj8")

    def test_case_of_protocol_and_transport(self):
        via = parse_via("sip/2.0/tls example.com:5061")
        self.assertEqual(via.protocol, "SIP/2.0")
        self.assertEqual(via.transport, "TLS")
        self.assertEqual(via.port, 5061)
        self.assertEqual(via.params, [])

    def test_other_transports(self):
        for transport in ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "UNKNOWN"):
            self.assertEqual(parse_via("SIP/2.0/%s t.example.com" % transport).transport,
                             transport)

    def test_ipv6_sent_by(self):
        via = parse_via(
            "SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bK1;received=2001:db8::9:255"
        )
        self.assertEqual(via.host, "[2001:db8::9:1]")
        self.assertEqual(via.port, 5061)
        self.assertEqual(via.received, "2001:db8::9:255")
        self.assertEqual(via.sent_by(), "[2001:db8::9:1]:5061")
        via = parse_via("SIP/2.0/UDP [::1];branch=z9hG4bK2")
        self.assertEqual(via.host, "[::1]")
        self.assertIsNone(via.port)

    def test_received_rport_branch(self):
        via = parse_via(
            "SIP/2.0/UDP bobspc.biloxi.com:5060;received=192.0.2.4;rport=9988;branch=z9hG4bKnas"
        )
        self.assertEqual(via.received, "192.0.2.4")
        self.assertEqual(via.rport, "9988")
        self.assertEqual(via.branch, "z9hG4bKnas")

    def test_bare_rport(self):
        # RFC 3581: a request asks for rport with the bare parameter.
        via = parse_via("SIP/2.0/UDP h.example.com;rport;branch=z9hG4bKx")
        self.assertEqual(via.rport, "")
        self.assertEqual(via.params, [("rport", None), ("branch", "z9hG4bKx")])

    def test_params_are_case_insensitive(self):
        via = parse_via("SIP/2.0/UDP h.example.com;BRANCH=z9hG4bKx;Received=192.0.2.1")
        self.assertEqual(via.branch, "z9hG4bKx")
        self.assertEqual(via.received, "192.0.2.1")

    def test_set_param(self):
        via = parse_via("SIP/2.0/UDP h.example.com:5060;rport;branch=z9hG4bKx")
        via.set_param("rport", "5070")
        via.set_param("received", "192.0.2.1")
        self.assertEqual(
            str(via),
            "SIP/2.0/UDP h.example.com:5060;rport=5070;branch=z9hG4bKx;received=192.0.2.1",
        )
        via.set_param("RECEIVED", "192.0.2.9")
        self.assertEqual(via.received, "192.0.2.9")
        self.assertEqual(len(via.params), 3)

    def test_quoted_param(self):
        via = parse_via('SIP/2.0/UDP h.example.com;x="a;b";branch=z9hG4bKq')
        self.assertEqual(via.param("x"), '"a;b"')
        self.assertEqual(via.branch, "z9hG4bKq")

    def test_built(self):
        via = Via("TCP", "192.0.2.1", 5060, [("branch", "z9hG4bKabc")])
        self.assertEqual(str(via), "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKabc")
        self.assertEqual(str(parse_via(str(via))), str(via))

    def test_errors(self):
        for text, reason in (
            ("SIP/2.0 h.example.com", "Malformed Via"),
            ("SIP/2.0/UDP", "Malformed Via"),
            ("SIP/2.0/UDP/X h.example.com", "Malformed Via"),
            ("SIP/2@0/UDP h.example.com", "Malformed Via"),
            ("/2.0/UDP h.example.com", "Malformed Via"),
            ("", "Malformed Via"),
            ("SIP/2.0/U@P h.example.com", "Malformed Via transport"),
            ("SIP/2.0/UDP h.example.com:99999", "Port out of range"),
            ("SIP/2.0/UDP h.example.com:", "Bad port ''"),
            ("SIP/2.0/UDP h_x.example.com", "Invalid character '_' in URI host"),
            ("SIP/2.0/UDP 192.0.2.15;;", "Malformed header parameter ''"),
            ("SIP/2.0/UDP 192.0.2.15;branch=", "Empty value for parameter 'branch'"),
        ):
            self.assertEqual(error_of(parse_via, text).reason, reason)


class TestCSeq(unittest.TestCase):
    def test_parse(self):
        cseq = parse_cseq("4711 INVITE")
        self.assertIsInstance(cseq, CSeq)
        self.assertEqual(cseq.number, 4711)
        self.assertEqual(cseq.method, "INVITE")
        self.assertEqual(str(cseq), "4711 INVITE")

    def test_whitespace_and_leading_zeros(self):
        cseq = parse_cseq("  0009 \t INVITE ")
        self.assertEqual(cseq.number, 9)
        self.assertEqual(cseq.method, "INVITE")
        self.assertEqual(str(cseq), "9 INVITE")

    def test_method_is_case_sensitive_token(self):
        self.assertEqual(parse_cseq("1 invite").method, "invite")
        self.assertEqual(parse_cseq("1 NEWMETHOD").method, "NEWMETHOD")

    def test_bounds(self):
        # RFC 3261 section 20.16: a 32-bit unsigned integer. RFC 4475 3.1.2.4: > 2**32-1 is bad.
        self.assertEqual(parse_cseq("0 OPTIONS").number, 0)
        self.assertEqual(parse_cseq("2147483647 OPTIONS").number, 2147483647)
        self.assertEqual(parse_cseq("2147483648 OPTIONS").number, 2147483648)
        self.assertEqual(parse_cseq("4294967295 OPTIONS").number, 4294967295)
        self.assertEqual(error_of(parse_cseq, "4294967296 OPTIONS").reason,
                         "CSeq number out of range")
        self.assertEqual(error_of(parse_cseq, "36893488147419103232 REGISTER").reason,
                         "CSeq number out of range")

    def test_errors(self):
        for text in ("", "1", "INVITE", "-1 INVITE", "+1 INVITE", "1.5 INVITE", "x INVITE",
                     "1 INVITE extra", "1 INV@TE", "1 INVITE,", "\u00b2 INVITE",
                     "1\u0660 INVITE"):
            self.assertEqual(error_of(parse_cseq, text).reason, "Malformed CSeq")


if __name__ == "__main__":
    unittest.main()
