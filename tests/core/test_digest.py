"""Digest authentication: RFC examples, the client's choices, and bad challenges."""

import unittest

from appliance.sip.digest import (
    DigestClient,
    constant_time_equal,
    expected_response,
    parse_challenge,
    parse_credentials,
)
from appliance.sip.errors import ParseError
from appliance.sip.message import Response, make_request

from .helpers import TokenSource

NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


class TestRfcExamples(unittest.TestCase):
    def test_rfc7616_section_3_9_1(self):
        for algorithm, expected in (
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ):
            self.assertEqual(expected_response(
                algorithm, "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
                "/dir/index.html", NONCE, "00000001", CNONCE, "auth"), expected)

    def test_rfc2617_section_3_5(self):
        self.assertEqual(expected_response(
            "MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth"),
            "6629fae49393a05397450978507c4ef1")


def challenge_response(status, *challenges):
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    return Response(status, None, [[name, c] for c in challenges])


def register():
    return make_request("REGISTER", "sip:pbx.example.net", "sip:frontdoor@example.net",
                        "t1", "c1", 1, to_uri="sip:frontdoor@example.net")


class Server:
    """The registrar's side of the check, from the same module's server helpers."""

    passwords = {("frontdoor", "home"): "s3cret"}

    def verify(self, request, header="authorization"):
        params = parse_credentials(request.get(header))
        password = self.passwords[(params["username"], params["realm"])]
        algorithm = params.get("algorithm", "MD5")
        session = algorithm.upper().endswith("-SESS")
        if session:
            algorithm = algorithm[:-5]
        expected = expected_response(
            algorithm, params["username"], params["realm"], password, request.method,
            params["uri"], params["nonce"], params.get("nc"), params.get("cnonce"),
            params.get("qop"), request.body, session)
        return constant_time_equal(expected, params["response"]), params


class TestClient(unittest.TestCase):
    def setUp(self):
        self.client = DigestClient(
            lambda realm: ("frontdoor", "s3cret") if realm == "home" else None, TokenSource())

    def test_strongest_algorithm_wins_and_credentials_verify(self):
        response = challenge_response(
            401,
            'Digest realm="home", nonce="n1", qop="auth", algorithm=MD5',
            'Digest realm="home", nonce="n1", qop="auth", algorithm=SHA-256',
            'Digest realm="home", nonce="n1", qop="auth,auth-int", algorithm=SHA-512-256',
        )
        self.assertTrue(self.client.challenged(response))
        request = register()
        self.assertEqual(self.client.authorize(request), 1)
        ok, params = Server().verify(request)
        self.assertTrue(ok)
        self.assertEqual((params["algorithm"], params["qop"], params["nc"]),
                         ("SHA-512-256", "auth", "00000001"))
        self.assertEqual(params["uri"], "sip:pbx.example.net")

    def test_refresh_reuses_the_challenge_and_counts_nc(self):
        self.client.challenged(challenge_response(
            401, 'Digest realm="home", nonce="n1", qop="auth", algorithm=SHA-256'))
        ncs = []
        for _ in range(3):
            request = register()
            self.client.authorize(request)
            ok, params = Server().verify(request)
            self.assertTrue(ok)
            ncs.append(params["nc"])
        self.assertEqual(ncs, ["00000001", "00000002", "00000003"])

    def test_same_nonce_refused_again_means_wrong_password(self):
        challenge = 'Digest realm="home", nonce="n1", qop="auth"'
        self.assertTrue(self.client.challenged(challenge_response(401, challenge)))
        self.assertFalse(self.client.challenged(challenge_response(401, challenge)))

    def test_stale_nonce_is_answered_without_new_credentials(self):
        self.client.challenged(challenge_response(401, 'Digest realm="home", nonce="n1"'))
        stale = 'Digest realm="home", nonce="n2", stale=TRUE'
        self.assertTrue(self.client.challenged(challenge_response(401, stale)))
        request = register()
        self.client.authorize(request)
        self.assertEqual(parse_credentials(request.get("authorization"))["nonce"], "n2")

    def test_proxy_challenge_gets_proxy_authorization(self):
        self.client.challenged(challenge_response(
            407, 'Digest realm="home", nonce="p1", qop="auth", opaque="xyz"'))
        request = register()
        self.client.authorize(request)
        self.assertIsNone(request.get("authorization"))
        ok, params = Server().verify(request, "proxy-authorization")
        self.assertTrue(ok)
        self.assertEqual(params["opaque"], "xyz")

    def test_a_proxy_and_the_device_behind_it_in_one_realm_both_get_answers(self):
        # The home proxy (407) and the light behind it (401) both say realm "home".
        self.assertTrue(self.client.challenged(challenge_response(
            407, 'Digest realm="home", nonce="p1", qop="auth"')))
        self.assertTrue(self.client.challenged(challenge_response(
            401, 'Digest realm="home", nonce="d1", qop="auth"')))
        request = register()
        self.assertEqual(self.client.authorize(request), 2)
        self.assertEqual(parse_credentials(request.get("proxy-authorization"))["nonce"], "p1")
        self.assertEqual(parse_credentials(request.get("authorization"))["nonce"], "d1")

    def test_without_qop_the_rfc2069_form_is_used(self):
        self.client.challenged(challenge_response(401, 'Digest realm="home", nonce="n1"'))
        request = register()
        self.client.authorize(request)
        ok, params = Server().verify(request)
        self.assertTrue(ok)
        self.assertIsNone(params.get("qop"))
        self.assertIsNone(params.get("nc"))

    def test_no_credentials_for_the_realm_or_no_usable_challenge(self):
        self.assertFalse(self.client.challenged(
            challenge_response(401, 'Digest realm="elsewhere", nonce="n1"')))
        self.assertFalse(self.client.challenged(challenge_response(
            401, 'Basic realm="home"', 'Digest realm="home", nonce="n", algorithm=SHA-1',
            'Digest realm="home"', 'Digest nonce=', 'Digest realm="home, nonce="x"')))
        request = register()
        self.assertEqual(self.client.authorize(request), 0)

    def test_challenge_parsing(self):
        challenge = parse_challenge(
            'Digest realm="home \\"arpa\\"", nonce="abc", algorithm=sha-256-sess, '
            'qop="auth, auth-int", stale=true, opaque="o"')
        self.assertEqual((challenge.realm, challenge.nonce, challenge.algorithm),
                         ('home "arpa"', "abc", "SHA-256"))
        self.assertTrue(challenge.session and challenge.stale)
        self.assertEqual(challenge.qop, ("auth", "auth-int"))
        with self.assertRaises(ParseError):
            parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-1')

    def test_constant_time_equal(self):
        self.assertTrue(constant_time_equal("abcd", "abcd"))
        self.assertFalse(constant_time_equal("abcd", "abce"))
        self.assertFalse(constant_time_equal("abcd", "abc"))
