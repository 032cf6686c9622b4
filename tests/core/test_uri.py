"""appliance/sip/uri.py: SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966)."""

import unittest

from appliance.sip.errors import ParseError
from appliance.sip.uri import OpaqueUri, Uri, parse_host, parse_params, parse_uri


class ParseErrorMixin:
    def parse_error(self, text, strict=True):
        """The ParseError that parse_uri(text) raises."""
        try:
            parse_uri(text, strict)
        except ParseError as error:
            return error
        raise AssertionError("no ParseError for %r" % text)


class TestSipUri(unittest.TestCase):
    def test_user_and_host(self):
        uri = parse_uri("sip:alice@atlanta.com")
        self.assertIsInstance(uri, Uri)
        self.assertEqual(uri.scheme, "sip")
        self.assertEqual(uri.user, "alice")
        self.assertIsNone(uri.password)
        self.assertEqual(uri.host, "atlanta.com")
        self.assertIsNone(uri.port)
        self.assertEqual(uri.params, [])
        self.assertEqual(uri.headers, [])
        self.assertFalse(uri.secure)
        self.assertEqual(uri.hostport(), "atlanta.com")

    def test_password_and_transport(self):
        uri = parse_uri("sip:alice:secretword@atlanta.com;transport=tcp")
        self.assertEqual(uri.user, "alice")
        self.assertEqual(uri.password, "secretword")
        self.assertEqual(uri.host, "atlanta.com")
        self.assertEqual(uri.params, [("transport", "tcp")])

    def test_empty_password(self):
        uri = parse_uri("sip:alice:@atlanta.com")
        self.assertEqual(uri.user, "alice")
        self.assertEqual(uri.password, "")
        self.assertEqual(str(uri), "sip:alice:@atlanta.com")

    def test_telephone_subscriber_user(self):
        uri = parse_uri("sip:+1-212-555-1212:1234@gateway.com;user=phone")
        self.assertEqual(uri.user, "+1-212-555-1212")
        self.assertEqual(uri.password, "1234")
        self.assertEqual(uri.host, "gateway.com")
        self.assertEqual(uri.param("user"), "phone")

    def test_sips(self):
        uri = parse_uri("sips:1212@gateway.com")
        self.assertEqual(uri.scheme, "sips")
        self.assertTrue(uri.secure)
        self.assertEqual(uri.user, "1212")

    def test_scheme_is_case_insensitive(self):
        uri = parse_uri("SIP:alice@atlanta.com")
        self.assertEqual(uri.scheme, "sip")
        self.assertEqual(parse_uri("SiPs:alice@atlanta.com").scheme, "sips")

    def test_no_user(self):
        uri = parse_uri("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com")
        self.assertIsNone(uri.user)
        self.assertEqual(uri.host, "atlanta.com")
        self.assertEqual(uri.param("method"), "REGISTER")
        self.assertEqual(uri.headers, [("to", "alice%40atlanta.com")])

    def test_user_with_semicolon(self):
        # A ';' before the '@' belongs to the user part (RFC 3261 19.1.1 user-unreserved).
        uri = parse_uri("sip:alice;day=tuesday@atlanta.com")
        self.assertEqual(uri.user, "alice;day=tuesday")
        self.assertEqual(uri.host, "atlanta.com")
        self.assertEqual(uri.params, [])

    def test_user_part_from_rfc4475_semiuri(self):
        uri = parse_uri("sip:user;par=u%40example.net@example.com")
        self.assertEqual(uri.user, "user;par=u%40example.net")
        self.assertEqual(uri.host, "example.com")
        self.assertEqual(uri.params, [])

    def test_escapes_are_kept_as_written(self):
        uri = parse_uri("sip:sips%3Auser%40example.com@example.net")
        self.assertEqual(uri.user, "sips%3Auser%40example.com")
        self.assertEqual(uri.host, "example.net")

    def test_escaped_nul_does_not_shorten_the_user(self):
        uri = parse_uri("sip:null-%00-null@example.com")
        self.assertEqual(uri.user, "null-%00-null")
        self.assertTrue(uri != parse_uri("sip:null-@example.com"))

    def test_ipv4_host_and_port(self):
        uri = parse_uri("sip:alice@192.0.2.4:5070")
        self.assertEqual(uri.host, "192.0.2.4")
        self.assertEqual(uri.port, 5070)
        self.assertEqual(uri.hostport(), "192.0.2.4:5070")

    def test_ipv6_reference(self):
        uri = parse_uri("sip:alice@[2001:db8::10]:5070;transport=tcp")
        self.assertEqual(uri.host, "[2001:db8::10]")
        self.assertEqual(uri.port, 5070)
        self.assertEqual(uri.param("transport"), "tcp")
        self.assertEqual(uri.hostport(), "[2001:db8::10]:5070")

    def test_ipv6_without_port(self):
        uri = parse_uri("sip:[::1]")
        self.assertIsNone(uri.user)
        self.assertEqual(uri.host, "[::1]")
        self.assertIsNone(uri.port)

    def test_ipv6_with_embedded_ipv4(self):
        uri = parse_uri("sip:bob@[::ffff:192.0.2.1]")
        self.assertEqual(uri.host, "[::ffff:192.0.2.1]")

    def test_port_bounds(self):
        self.assertEqual(parse_uri("sip:h.example.com:0").port, 0)
        self.assertEqual(parse_uri("sip:h.example.com:1").port, 1)
        self.assertEqual(parse_uri("sip:h.example.com:65535").port, 65535)
        self.assertEqual(parse_uri("sip:h.example.com:05060").port, 5060)

    def test_flag_and_valued_params(self):
        uri = parse_uri("sip:proxy.example.com;lr;Transport=TCP;maddr=239.255.255.1;ttl=15")
        self.assertEqual(
            uri.params,
            [("lr", None), ("Transport", "TCP"), ("maddr", "239.255.255.1"), ("ttl", "15")],
        )
        self.assertEqual(uri.param("lr"), "")
        self.assertTrue(uri.has_param("lr"))
        self.assertTrue(uri.has_param("LR"))
        self.assertEqual(uri.param("transport"), "TCP")
        self.assertEqual(uri.param("TRANSPORT"), "TCP")
        self.assertIsNone(uri.param("user"))
        self.assertEqual(uri.param("user", "ip"), "ip")
        self.assertFalse(uri.has_param("user"))

    def test_param_chars(self):
        uri = parse_uri("sip:h.example.com;x=[a]/b:c&d+e$f;y=%41")
        self.assertEqual(uri.param("x"), "[a]/b:c&d+e$f")
        self.assertEqual(uri.param("y"), "%41")

    def test_headers(self):
        uri = parse_uri("sip:alice@atlanta.com?subject=project%20x&priority=urgent")
        self.assertEqual(uri.headers, [("subject", "project%20x"), ("priority", "urgent")])
        self.assertEqual(uri.params, [])

    def test_params_and_headers(self):
        uri = parse_uri("sip:user@example.com;lr?Route=%3Csip:sip.example.com%3E")
        self.assertEqual(uri.params, [("lr", None)])
        self.assertEqual(uri.headers, [("Route", "%3Csip:sip.example.com%3E")])

    def test_empty_header_value(self):
        uri = parse_uri("sip:alice@atlanta.com?body=")
        self.assertEqual(uri.headers, [("body", "")])

    def test_copy_is_independent(self):
        uri = parse_uri("sip:alice@atlanta.com;lr?x=y")
        copy = uri.copy()
        self.assertEqual(str(copy), str(uri))
        self.assertTrue(copy == uri)
        copy.params.append(("maddr", "192.0.2.1"))
        copy.headers.append(("a", "b"))
        self.assertEqual(str(uri), "sip:alice@atlanta.com;lr?x=y")

    def test_built_uri(self):
        uri = Uri("sip", "bob", "biloxi.com", 5061, [("transport", "tls")])
        self.assertEqual(str(uri), "sip:bob@biloxi.com:5061;transport=tls")
        self.assertEqual(repr(uri), "<Uri sip:bob@biloxi.com:5061;transport=tls>")
        self.assertEqual(str(Uri(host="biloxi.com")), "sip:biloxi.com")


class TestTelUri(unittest.TestCase):
    def test_global_number(self):
        uri = parse_uri("tel:+1-201-555-0123")
        self.assertEqual(uri.scheme, "tel")
        self.assertEqual(uri.user, "+1-201-555-0123")
        self.assertIsNone(uri.host)
        self.assertIsNone(uri.port)
        self.assertEqual(uri.params, [])

    def test_local_number_with_context(self):
        uri = parse_uri("tel:7042;phone-context=example.com")
        self.assertEqual(uri.user, "7042")
        self.assertEqual(uri.param("phone-context"), "example.com")

    def test_scheme_case(self):
        self.assertEqual(parse_uri("TEL:+358-555-1234567").scheme, "tel")

    def test_visual_separators_do_not_count(self):
        # RFC 3966 section 4.
        self.assertTrue(parse_uri("tel:+1-201-555-0123") == parse_uri("tel:+1.201.555.0123"))
        self.assertTrue(parse_uri("tel:+1-201-555-0123") == parse_uri("tel:+12015550123"))
        self.assertTrue(parse_uri("tel:+1(201)5550123") == parse_uri("tel:+12015550123"))
        self.assertTrue(parse_uri("tel:+12015550123") != parse_uri("tel:+12015550124"))

    def test_params_compare_unordered(self):
        a = parse_uri("tel:7042;phone-context=example.com;ext=22")
        b = parse_uri("tel:7042;ext=22;Phone-Context=EXAMPLE.com")
        self.assertTrue(a == b)
        self.assertTrue(a != parse_uri("tel:7042;phone-context=example.com"))

    def test_tel_is_not_sip(self):
        self.assertTrue(parse_uri("tel:+12015550123") != parse_uri("sip:+12015550123@h.com"))

    def test_empty_number(self):
        self.assertEqual(ParseErrorMixin().parse_error("tel:").reason, "Empty tel URI")
        self.assertEqual(ParseErrorMixin().parse_error("tel:;x=1").reason, "Empty tel URI")

    def test_bad_characters(self):
        self.assertEqual(
            ParseErrorMixin().parse_error("tel:+1 201").reason,
            "Invalid character ' ' in URI number",
        )


class TestMalformed(unittest.TestCase, ParseErrorMixin):
    def test_unsupported_scheme_is_416(self):
        error = self.parse_error("nobodyKnowsThisScheme:totallyopaquecontent")
        self.assertEqual(error.status, 416)
        self.assertEqual(error.reason, "Unsupported URI Scheme")
        self.assertEqual(self.parse_error("http://www.example.com/").status, 416)
        self.assertEqual(self.parse_error("soap.beep://192.0.2.103:3002").status, 416)

    def test_other_errors_are_400(self):
        for text in ("alice@atlanta.com", ":alice", "sip:", "sip:alice@", "sip:h:99999"):
            self.assertEqual(self.parse_error(text).status, 400)

    def test_no_scheme(self):
        self.assertEqual(
            self.parse_error("alice@atlanta.com").reason, "Malformed URI 'alice@atlanta.com'"
        )
        self.assertEqual(self.parse_error(":alice").reason, "Malformed URI ':alice'")

    def test_bad_scheme_characters(self):
        self.assertEqual(
            self.parse_error(" sip:alice@atlanta.com").reason,
            "Invalid character ' ' in URI scheme",
        )
        self.assertEqual(
            self.parse_error("s_p:alice@atlanta.com").reason,
            "Invalid character '_' in URI scheme",
        )

    def test_missing_host(self):
        self.assertEqual(self.parse_error("sip:").reason, "Missing host")
        self.assertEqual(self.parse_error("sip:alice@").reason, "Missing host")
        self.assertEqual(self.parse_error("sip:alice@;lr").reason, "Missing host")
        self.assertEqual(self.parse_error("sip:alice@:5060").reason, "Missing host")

    def test_empty_user(self):
        self.assertEqual(self.parse_error("sip:@atlanta.com").reason, "Empty user in URI")
        self.assertEqual(self.parse_error("sip::pw@atlanta.com").reason, "Empty user in URI")

    def test_bad_user_characters(self):
        self.assertEqual(
            self.parse_error("sip:al ice@atlanta.com").reason,
            "Invalid character ' ' in URI user",
        )
        self.assertEqual(
            self.parse_error("sip:al<ice@atlanta.com").reason,
            "Invalid character '<' in URI user",
        )

    def test_bad_password_characters(self):
        # ';' and '?' may stand in a user but not in a password.
        self.assertEqual(
            self.parse_error("sip:alice:p;w@atlanta.com").reason,
            "Invalid character ';' in URI password",
        )

    def test_bad_host_characters(self):
        self.assertEqual(
            self.parse_error("sip:alice@atl_anta.com").reason,
            "Invalid character '_' in URI host",
        )
        self.assertEqual(
            self.parse_error("sip:alice@atlanta.com>").reason,
            "Invalid character '>' in URI host",
        )

    def test_port_out_of_range(self):
        self.assertEqual(self.parse_error("sip:atlanta.com:65536").reason, "Port out of range")
        self.assertEqual(self.parse_error("sip:atlanta.com:99999").reason, "Port out of range")

    def test_bad_ports(self):
        self.assertEqual(self.parse_error("sip:atlanta.com:").reason, "Bad port ''")
        self.assertEqual(self.parse_error("sip:atlanta.com:50a").reason, "Bad port '50a'")
        self.assertEqual(self.parse_error("sip:atlanta.com:-1").reason, "Bad port '-1'")
        self.assertEqual(self.parse_error("sip:atlanta.com:123456").reason, "Bad port '123456'")
        self.assertEqual(self.parse_error("sip:atlanta.com:5060:1").reason, "Bad port '5060:1'")
        self.assertEqual(self.parse_error("sip:atlanta.com: 5060").reason, "Bad port ' 5060'")

    def test_non_ascii_digits_are_not_a_port(self):
        # str.isdigit() accepts these on CPython, and int() then refuses some of them.
        self.assertEqual(self.parse_error("sip:atlanta.com:\u00b2").status, 400)
        self.assertEqual(self.parse_error("sip:atlanta.com:50\u0660").status, 400)

    def test_bad_ipv6_references(self):
        self.assertEqual(self.parse_error("sip:[2001:db8::1").reason,
                         "Unterminated IPv6 reference")
        self.assertEqual(self.parse_error("sip:[2001:db8::1]x").reason,
                         "Junk after IPv6 reference")
        self.assertEqual(self.parse_error("sip:[]").reason, "Bad IPv6 reference")
        self.assertEqual(self.parse_error("sip:[192.0.2.1]").reason, "Bad IPv6 reference")
        self.assertEqual(self.parse_error("sip:[2001:db8::g]").reason,
                         "Invalid character 'g' in URI host")
        self.assertEqual(self.parse_error("sip:[::1]:").reason, "Bad port ''")
        self.assertEqual(self.parse_error("sip:[::1]:70000").reason, "Port out of range")

    def test_bad_params(self):
        self.assertEqual(self.parse_error("sip:atlanta.com;").reason, "Empty URI parameter")
        self.assertEqual(self.parse_error("sip:atlanta.com;;lr").reason, "Empty URI parameter")
        self.assertEqual(self.parse_error("sip:atlanta.com;=tcp").reason, "Empty URI parameter")
        self.assertEqual(
            self.parse_error("sip:atlanta.com; lr").reason,
            "Invalid character ' ' in URI parameter",
        )
        self.assertEqual(
            self.parse_error("sip:atlanta.com;x=a,b").reason,
            "Invalid character ',' in URI parameter",
        )

    def test_bad_headers(self):
        self.assertEqual(self.parse_error("sip:atlanta.com?subject").reason,
                         "Malformed URI header 'subject'")
        self.assertEqual(self.parse_error("sip:atlanta.com?=x").reason,
                         "Malformed URI header '=x'")
        self.assertEqual(self.parse_error("sip:atlanta.com?a=b&").reason,
                         "Malformed URI header ''")
        self.assertEqual(
            self.parse_error("sip:atlanta.com?a=b c").reason,
            "Invalid character ' ' in URI header",
        )

    def test_bad_escapes(self):
        self.assertEqual(self.parse_error("sip:a%4@atlanta.com").reason, "Bad escape in URI user")
        self.assertEqual(self.parse_error("sip:a%@atlanta.com").reason, "Bad escape in URI user")
        self.assertEqual(self.parse_error("sip:a%zz@atlanta.com").reason,
                         "Bad escape in URI user")
        self.assertEqual(self.parse_error("sip:a%g1@atlanta.com").reason,
                         "Bad escape in URI user")
        self.assertEqual(self.parse_error("sip:a:p%2@atlanta.com").reason,
                         "Bad escape in URI password")
        self.assertEqual(self.parse_error("sip:atlanta.com;x=%G1").reason,
                         "Bad escape in URI parameter")
        self.assertEqual(self.parse_error("sip:atlanta.com;x%=1").reason,
                         "Bad escape in URI parameter")
        self.assertEqual(self.parse_error("sip:atlanta.com?x=%").reason,
                         "Bad escape in URI header")
        self.assertEqual(self.parse_error("tel:+1%2").reason, "Bad escape in URI number")

    def test_good_escapes(self):
        self.assertEqual(parse_uri("sip:%61lice@atlanta.com").user, "%61lice")
        self.assertEqual(parse_uri("sip:a%3a%3Bb@atlanta.com").user, "a%3a%3Bb")
        self.assertEqual(parse_uri("sip:%25@atlanta.com").user, "%25")

    def test_parse_host_directly(self):
        self.assertEqual(parse_host("example.com"), ("example.com", None))
        self.assertEqual(parse_host("example.com:5060"), ("example.com", 5060))
        self.assertEqual(parse_host("[::1]:5061"), ("[::1]", 5061))
        self.assertRaises(ParseError, parse_host, "")
        self.assertRaises(ParseError, parse_host, "example.com:x")

    def test_parse_params_directly(self):
        self.assertEqual(parse_params("lr;transport=udp"), [("lr", None), ("transport", "udp")])
        self.assertRaises(ParseError, parse_params, "")


class TestOpaqueUri(unittest.TestCase, ParseErrorMixin):
    def test_unknown_scheme_when_not_strict(self):
        uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent", strict=False)
        self.assertIsInstance(uri, OpaqueUri)
        self.assertEqual(uri.scheme, "nobodyknowsthisscheme")
        self.assertEqual(uri.text, "totallyopaquecontent")
        self.assertEqual(str(uri), "nobodyknowsthisscheme:totallyopaquecontent")
        self.assertIsNone(uri.user)
        self.assertIsNone(uri.host)
        self.assertIsNone(uri.port)
        self.assertIsNone(uri.param("transport"))
        self.assertEqual(uri.param("transport", "udp"), "udp")
        self.assertFalse(uri.has_param("lr"))

    def test_round_trip(self):
        for text in ("isbn:2983792873", "http://www.example.com/a?b=c", "name:John_Smith",
                     "soap.beep://192.0.2.103:3002", "mailto:alice@atlanta.com"):
            self.assertEqual(str(parse_uri(text, strict=False)), text)

    def test_comparison_is_by_text_without_case(self):
        a = parse_uri("HTTP://www.example.com/", strict=False)
        b = parse_uri("http://WWW.example.com/", strict=False)
        self.assertTrue(a == b)
        self.assertEqual(hash(a), hash(b))
        self.assertTrue(a != parse_uri("http://www.example.org/", strict=False))

    def test_never_equal_to_sip(self):
        opaque = parse_uri("im:alice@atlanta.com", strict=False)
        self.assertTrue(opaque != parse_uri("sip:alice@atlanta.com"))
        self.assertFalse(parse_uri("sip:alice@atlanta.com") == opaque)

    def test_sip_and_tel_are_still_parsed(self):
        self.assertIsInstance(parse_uri("sip:alice@atlanta.com", strict=False), Uri)
        self.assertIsInstance(parse_uri("tel:+1234", strict=False), Uri)
        self.assertEqual(self.parse_error("sip:alice@", strict=False).reason, "Missing host")

    def test_whitespace_and_brackets_rejected(self):
        for text in ("http://a b", "http://a<b", "http://a>b", 'http://a"b', "http://a\tb"):
            error = self.parse_error(text, strict=False)
            self.assertEqual(error.status, 400)


class TestRoundTrip(unittest.TestCase):
    FORMS = (
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sips:1212@gateway.com",
        "sip:alice@192.0.2.4",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:%61lice@AtLanTa.CoM;Transport=TCP",
        "sip:alice@[2001:db8::10]:5070;transport=tcp",
        "sip:[::1]",
        "sip:proxy.example.com:5060;lr",
        "sip:proxy.example.com;lr;maddr=239.255.255.1;ttl=15;unknown-no-value;x=y",
        "sip:user@example.com;lr?Route=%3Csip:sip.example.com%3E",
        "sip:user;par=u%40example.net@example.com",
        "sip:null-%00-null@example.com",
        "sip:sips%3Auser%40example.com@example.net",
        "sip:vivekg@chair-dnrc.example.com;unknownparam",
        "sip:alice@atlanta.com?body=",
        "sip:alice:@atlanta.com",
        "sip:h.example.com:0",
        "sip:h.example.com:65535",
        "sip:-_.!~*'()&=+$,;?/@example.com",
        "sip:a:-_.!~*'()&=+$,@example.com",
        "tel:+1-201-555-0123",
        "tel:7042;phone-context=example.com",
        "tel:+358-555-1234567;postd=pp22",
    )

    def test_exact_round_trips(self):
        for text in self.FORMS:
            self.assertEqual(str(parse_uri(text)), text)

    def test_round_trip_is_stable(self):
        for text in self.FORMS:
            once = str(parse_uri(text))
            self.assertEqual(str(parse_uri(once)), once)


class TestComparison(unittest.TestCase):
    """RFC 3261 section 19.1.4, every example it lists."""

    def assert_equivalent(self, a, b):
        ua = parse_uri(a)
        ub = parse_uri(b)
        self.assertTrue(ua == ub, "%s should equal %s" % (a, b))
        self.assertTrue(ub == ua, "%s should equal %s" % (b, a))
        self.assertFalse(ua != ub)
        self.assertEqual(hash(ua), hash(ub))

    def assert_different(self, a, b):
        ua = parse_uri(a)
        ub = parse_uri(b)
        self.assertFalse(ua == ub, "%s should not equal %s" % (a, b))
        self.assertFalse(ub == ua, "%s should not equal %s" % (b, a))
        self.assertTrue(ua != ub)

    # "The URIs within each of the following sets are equivalent:"

    def test_rfc_equivalent_escape_and_case(self):
        self.assert_equivalent(
            "sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"
        )

    def test_rfc_equivalent_unknown_params_on_one_side(self):
        self.assert_equivalent("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5")
        self.assert_equivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on")
        self.assert_equivalent(
            "sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"
        )

    def test_rfc_equivalent_param_order(self):
        self.assert_equivalent(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        )

    def test_rfc_equivalent_header_order(self):
        self.assert_equivalent(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        )

    # "The URIs within each of the following sets are not equivalent:"

    def test_rfc_different_usernames(self):
        self.assert_different(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"
        )

    def test_rfc_different_ports(self):
        self.assert_different("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060")

    def test_rfc_different_transports(self):
        self.assert_different("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp")

    def test_rfc_different_port_and_transport(self):
        self.assert_different("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp")

    def test_rfc_different_header_component(self):
        self.assert_different(
            "sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"
        )

    def test_rfc_host_is_not_resolved(self):
        self.assert_different("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4")

    def test_rfc_equality_is_not_transitive(self):
        self.assert_equivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on")
        self.assert_equivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=off")
        self.assert_different(
            "sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"
        )

    # The rules of 19.1.4 behind the examples.

    def test_sip_and_sips_never_equal(self):
        self.assert_different("sip:alice@atlanta.com", "sips:alice@atlanta.com")

    def test_user_and_password_presence(self):
        self.assert_different("sip:atlanta.com", "sip:alice@atlanta.com")
        self.assert_different("sip:alice@atlanta.com", "sip:alice:pw@atlanta.com")
        self.assert_different("sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com")
        self.assert_equivalent("sip:alice:p%77@atlanta.com", "sip:alice:pw@atlanta.com")

    def test_significant_params_on_one_side(self):
        for param in ("user=ip", "ttl=1", "method=INVITE", "maddr=192.0.2.1", "transport=udp"):
            self.assert_different("sip:bob@biloxi.com", "sip:bob@biloxi.com;" + param)

    def test_shared_params_must_match(self):
        self.assert_equivalent(
            "sip:bob@biloxi.com;maddr=192.0.2.1", "sip:bob@biloxi.com;MADDR=192.0.2.1"
        )
        self.assert_different(
            "sip:bob@biloxi.com;maddr=192.0.2.1", "sip:bob@biloxi.com;maddr=192.0.2.2"
        )
        self.assert_different("sip:bob@biloxi.com;lr;x=1", "sip:bob@biloxi.com;lr;x=2")
        self.assert_equivalent("sip:bob@biloxi.com;lr", "sip:bob@biloxi.com")

    def test_header_names_without_case(self):
        self.assert_equivalent(
            "sip:carol@chicago.com?subject=next%20meeting",
            "sip:carol@chicago.com?Subject=next%20meeting",
        )
        self.assert_different(
            "sip:carol@chicago.com?Subject=next%20meeting",
            "sip:carol@chicago.com?Subject=last%20meeting",
        )

    def test_escapes_of_unreserved_characters(self):
        self.assert_equivalent("sip:%61%6c%69%63%65@atlanta.com", "sip:alice@atlanta.com")
        self.assert_equivalent("sip:%7e@atlanta.com", "sip:~@atlanta.com")
        self.assert_different("sip:%41lice@atlanta.com", "sip:alice@atlanta.com")

    def test_escapes_of_reserved_characters(self):
        # 19.1.4: only characters outside the "reserved" set equal their %HH encoding.
        self.assert_different("sip:a%3Bb@atlanta.com", "sip:a;b@atlanta.com")
        self.assert_different("sip:a%3Fb@atlanta.com", "sip:a?b@atlanta.com")
        self.assert_different("sip:a%2Cb@atlanta.com", "sip:a,b@atlanta.com")
        self.assert_equivalent("sip:a%3bb@atlanta.com", "sip:a%3Bb@atlanta.com")
        self.assert_different("sip:a%253B@atlanta.com", "sip:a%3B@atlanta.com")

    def test_host_without_case_and_ipv6(self):
        self.assert_equivalent("sip:alice@[2001:DB8::1]", "sip:alice@[2001:db8::1]")
        self.assert_equivalent("sip:alice@ATLANTA.com:5060", "sip:alice@atlanta.COM:5060")

    def test_not_equal_to_other_types(self):
        uri = parse_uri("sip:alice@atlanta.com")
        self.assertFalse(uri == "sip:alice@atlanta.com")
        self.assertTrue(uri != "sip:alice@atlanta.com")
        self.assertFalse(uri == None)

    def test_usable_as_dict_key(self):
        seen = {parse_uri("sip:%61lice@atlanta.com;transport=TCP"): 1}
        self.assertIn(parse_uri("sip:alice@AtLanTa.CoM;Transport=tcp"), seen)


if __name__ == "__main__":
    unittest.main()
