"""Digest authentication as a server: round trips with DigestClient, stale and replayed
nonces, the bounded nonce table, and what a refusal says."""

import unittest

from appliance.sip.auth import (
    FAILED,
    FORBIDDEN,
    MISSING,
    OK,
    STALE,
    DigestServer,
)
from appliance.sip.digest import DigestClient, expected_response, parse_credentials
from appliance.sip.errors import SipError
from appliance.sip.message import Response, make_request

from .helpers import TokenSource

REALM = "home.arpa"
PORCH = "sip:porch@home.arpa"
PASSWORD = "s3cret-Porch"
WRONG = "guess-1234"
USERS = {"alice": PASSWORD}
LIFETIME = 300000


def credentials(username):
    return USERS.get(username)


def request(uri=PORCH, cseq=1, method="MESSAGE"):
    return make_request(method, uri, "sip:alice@home.arpa", "at", "call-1", cseq,
                        fields=[("Content-Type", "text/plain")], body=b"on")


def response_of(challenge):
    status, name, values = challenge
    return Response(status, None, [[name, value] for value in values])


def client(password=PASSWORD, user="alice", realm=REALM):
    def lookup(asked):
        return (user, password) if asked == realm else None
    return DigestClient(lookup, TokenSource("c"))


def server(**kw):
    return DigestServer(REALM, TokenSource("5"), **kw)


def answered(digest_client, challenge, uri=PORCH, cseq=1):
    """A request carrying `digest_client`'s answer to `challenge`."""
    digest_client.challenged(response_of(challenge))
    out = request(uri, cseq)
    digest_client.authorize(out)
    return out


def params_of(challenge):
    return [parse_credentials(value) for value in challenge[2]]


class TestChallenge(unittest.TestCase):
    def test_strongest_first_with_one_nonce(self):
        digest = server(algorithms=("MD5", "SHA-512-256", "sha-256"))
        status, name, values = digest.challenge(0)
        self.assertEqual((status, name), (401, "WWW-Authenticate"))
        self.assertEqual([p["algorithm"] for p in params_of((status, name, values))],
                         ["SHA-512-256", "SHA-256", "MD5"])
        nonce = parse_credentials(values[0])["nonce"]
        opaque = parse_credentials(values[0])["opaque"]
        self.assertEqual(values[1], 'Digest realm="home.arpa", nonce="%s", opaque="%s", '
                         'qop="auth", algorithm=SHA-256' % (nonce, opaque))
        self.assertEqual(len(nonce), 16 + 1 + 32)  # random bits, the time (0), the MAC
        self.assertEqual(digest.nonces_held, 0)  # a challenge is remembered nowhere

    def test_stale_flag_and_fresh_nonces(self):
        digest = server()
        first = params_of(digest.challenge(0))
        second = params_of(digest.challenge(0, stale=True))
        self.assertNotEqual(first[0]["nonce"], second[0]["nonce"])
        self.assertEqual([p.get("stale") for p in first], [None, None])
        self.assertEqual([p.get("stale") for p in second], ["true", "true"])

    def test_proxy_mode_uses_407_and_proxy_headers(self):
        digest = server(proxy=True)
        challenge = digest.challenge(0)
        self.assertEqual(challenge[:2], (407, "Proxy-Authenticate"))
        signed = answered(client(), challenge)
        self.assertIsNone(signed.get("authorization"))
        self.assertIsNotNone(signed.get("proxy-authorization"))
        self.assertEqual(digest.check(signed, 0, credentials).outcome, OK)
        # The same credentials in Authorization are not for a proxy.
        moved = request()
        moved.add("Authorization", signed.get("proxy-authorization"))
        self.assertEqual(digest.check(moved, 0, credentials).outcome, MISSING)

    def test_misuse_raises(self):
        for kw in ({"algorithms": ("SHA-1",)}, {"algorithms": ()}, {"max_nonces": 0}):
            with self.assertRaises(SipError):
                server(**kw)
        with self.assertRaises(SipError):
            DigestServer("home\r\nX: y", TokenSource())
        digest = server()
        signed = answered(client(), digest.challenge(0))
        with self.assertRaises(SipError):
            digest.rejection(digest.check(signed, 0, credentials), 0)


class TestRoundTrip(unittest.TestCase):
    def test_each_algorithm(self):
        for algorithm in ("MD5", "SHA-256", "SHA-512-256"):
            digest = server(algorithms=(algorithm,))
            signed = answered(client(), digest.challenge(0))
            self.assertEqual(parse_credentials(signed.get("authorization"))["algorithm"],
                             algorithm)
            result = digest.check(signed, 1000, credentials)
            self.assertEqual((result.outcome, result.username, result.reason),
                             (OK, "alice", None))
            self.assertTrue(result.ok)

    def test_client_takes_the_strongest_offered(self):
        digest = server(algorithms=("MD5", "SHA-256", "SHA-512-256"))
        signed = answered(client(), digest.challenge(0))
        self.assertEqual(parse_credentials(signed.get("authorization"))["algorithm"],
                         "SHA-512-256")
        self.assertTrue(digest.check(signed, 0, credentials).ok)

    def test_no_algorithm_means_md5(self):
        for algorithms, outcome in ((("SHA-256", "MD5"), OK), (("SHA-256",), FAILED)):
            digest = server(algorithms=algorithms)
            nonce = params_of(digest.challenge(0))[0]["nonce"]
            signed = request()
            signed.add("Authorization", (
                'Digest username="alice", realm="home.arpa", nonce="%s", uri="%s", '
                'response="%s", qop=auth, nc=00000001, cnonce="xyz"') % (
                nonce, PORCH, expected_response("MD5", "alice", REALM, PASSWORD, "MESSAGE",
                                                PORCH, nonce, "00000001", "xyz", "auth")))
            self.assertEqual(digest.check(signed, 0, credentials).outcome, outcome)

    def test_increasing_nc_on_one_nonce_passes(self):
        digest = server()
        alice = client()
        alice.challenged(response_of(digest.challenge(0)))
        for cseq in (1, 2, 3):
            signed = request(cseq=cseq)
            alice.authorize(signed)
            self.assertEqual(parse_credentials(signed.get("authorization"))["nc"],
                             "%08x" % cseq)
            self.assertTrue(digest.check(signed, 1000 * cseq, credentials).ok)

    def test_digest_uri_equal_by_uri_comparison_passes(self):
        digest = server()
        signed = answered(client(), digest.challenge(0), uri="sip:porch@HOME.arpa")
        same = request("sip:porch@home.arpa")
        same.add("Authorization", signed.get("authorization"))
        self.assertTrue(digest.check(same, 0, credentials).ok)


class TestRefusals(unittest.TestCase):
    def check(self, digest, signed, now=0):
        return digest.check(signed, now, credentials)

    def test_no_authorization(self):
        digest = server()
        result = self.check(digest, request())
        self.assertEqual((result.outcome, result.username, result.reason),
                         (MISSING, None, "No credentials"))
        self.assertFalse(result.ok)
        status, name, values = digest.rejection(result, 0)
        self.assertEqual((status, name, len(values)), (401, "WWW-Authenticate", 2))
        self.assertEqual(params_of((status, name, values))[0].get("stale"), None)

    def test_other_realm(self):
        elsewhere = DigestServer("elsewhere", TokenSource("e"))
        signed = answered(client(realm="elsewhere"), elsewhere.challenge(0))
        self.assertTrue(elsewhere.check(signed, 0, credentials).ok)
        result = self.check(server(), signed)
        self.assertEqual((result.outcome, result.reason),
                         (MISSING, "No credentials for this realm"))

    def test_wrong_password_repeats_the_nonce_then_403(self):
        digest = server()
        guesser = client(WRONG)
        challenge = digest.challenge(0)
        nonce = params_of(challenge)[0]["nonce"]
        signed = answered(guesser, challenge)
        result = self.check(digest, signed)
        self.assertEqual((result.outcome, result.username, result.reason),
                         (FAILED, "alice", "Wrong response"))
        again = digest.rejection(result, 0)
        self.assertEqual(again[0], 401)
        self.assertEqual([p["nonce"] for p in params_of(again)], [nonce, nonce])
        # The same nonce refused again: DigestClient knows the password is wrong.
        self.assertFalse(guesser.challenged(response_of(again)))
        # A client that retries on it anyway gets 403.
        retry = request(cseq=2)
        guesser.authorize(retry)
        result = self.check(digest, retry)
        self.assertEqual((result.outcome, result.reason), (FORBIDDEN, "Wrong response"))
        self.assertEqual(digest.rejection(result, 0), (403, None, []))
        # The right password on that nonce (the user asked again) still passes.
        right = answered(client(), challenge, cseq=3)
        self.assertTrue(self.check(digest, right).ok)

    def test_unknown_user_is_answered_as_a_wrong_password(self):
        digest = server()
        challenge = digest.challenge(0)
        result = self.check(digest, answered(client(user="mallory"), challenge))
        self.assertEqual((result.outcome, result.username, result.reason),
                         (FAILED, "mallory", "Unknown user"))
        self.assertEqual(params_of(digest.rejection(result, 0))[0]["nonce"],
                         params_of(challenge)[0]["nonce"])

    def test_replayed_nc_fails_with_a_fresh_nonce(self):
        digest = server()
        challenge = digest.challenge(0)
        signed = answered(client(), challenge)
        self.assertTrue(self.check(digest, signed).ok)
        result = self.check(digest, signed, 1000)
        self.assertEqual((result.outcome, result.reason),
                         (FAILED, "Nonce count not increasing"))
        fresh = params_of(digest.rejection(result, 1000))[0]
        self.assertNotEqual(fresh["nonce"], params_of(challenge)[0]["nonce"])
        self.assertIsNone(fresh.get("stale"))

    def test_lower_nc_fails(self):
        digest = server()
        alice = client()
        alice.challenged(response_of(digest.challenge(0)))
        first, second = request(cseq=1), request(cseq=2)
        alice.authorize(first)
        alice.authorize(second)
        self.assertTrue(self.check(digest, second).ok)
        self.assertEqual(self.check(digest, first).outcome, FAILED)

    def test_a_forged_request_does_not_use_up_nonce_counts(self):
        digest = server()
        challenge = digest.challenge(0)
        forged = answered(client(WRONG), challenge)
        forged_params = parse_credentials(forged.get("authorization"))
        forged.set("Authorization", forged.get("authorization").replace(
            "nc=" + forged_params["nc"], "nc=ffffffff"))
        self.assertEqual(self.check(digest, forged).outcome, FAILED)
        self.assertTrue(self.check(digest, answered(client(), challenge)).ok)

    def test_uri_mismatch(self):
        digest = server()
        signed = answered(client(), digest.challenge(0), uri="sip:strike@home.arpa")
        moved = request(PORCH)
        moved.add("Authorization", signed.get("authorization"))
        result = self.check(digest, moved)
        self.assertEqual((result.outcome, result.reason),
                         (FAILED, "Digest URI does not match the Request-URI"))

    def test_malformed_credentials(self):
        digest = server()
        base = ('username="alice", realm="home.arpa", nonce="NONCE", uri="%s", '
                'response="0123", algorithm=SHA-256, ' % PORCH)
        cases = (
            ("Digest " + base + "qop=auth, nc=00000001", "Missing digest parameter cnonce"),
            ("Digest " + base + 'cnonce="x"', "qop=auth required"),
            ("Digest " + base + 'qop=auth-int, nc=00000001, cnonce="x"', "qop=auth required"),
            ("Digest " + base + 'qop=auth, nc=1, cnonce="x"', "Malformed nonce count"),
            ("Digest " + base + 'qop=auth, nc=0000000g, cnonce="x"', "Malformed nonce count"),
            ("Digest " + base.replace("SHA-256", "SHA-512-256") + 'qop=auth, nc=00000001, '
             'cnonce="x"', "Digest algorithm not offered"),
            ("Digest " + base.replace("SHA-256", "SHA-256-sess") + 'qop=auth, nc=00000001, '
             'cnonce="x"', "Digest algorithm not offered"),
            ("Digest " + base.replace('uri="%s", ' % PORCH, "") + 'qop=auth, '
             'nc=00000001, cnonce="x"', "Missing digest parameter uri"),
            ('Digest realm="home.arpa", username', "Malformed credentials"),
        )
        for value, reason in cases:
            # A fresh nonce each: a second refusal on one nonce would be FORBIDDEN.
            nonce = params_of(digest.challenge(0))[0]["nonce"]
            signed = request()
            signed.add("Authorization", value.replace("NONCE", nonce))
            result = digest.check(signed, 0, credentials)
            self.assertEqual((result.outcome, result.reason), (FAILED, reason), value)

    def test_opaque_must_be_ours(self):
        digest = server()
        signed = answered(client(), digest.challenge(0))
        value = signed.get("authorization")
        opaque = parse_credentials(value)["opaque"]
        signed.set("Authorization", value.replace(opaque, "0" * len(opaque)))
        result = self.check(digest, signed)
        self.assertEqual((result.outcome, result.reason), (FAILED, "Opaque mismatch"))


class TestNonces(unittest.TestCase):
    def test_expired_nonce_is_stale_and_the_client_retries_alone(self):
        digest = server()
        asked = []

        def lookup(realm):
            asked.append(realm)
            return ("alice", PASSWORD)

        alice = DigestClient(lookup, TokenSource("c"))
        alice.challenged(response_of(digest.challenge(0)))
        early = request(cseq=1)
        alice.authorize(early)
        self.assertTrue(digest.check(early, LIFETIME - 1, credentials).ok)
        late = request(cseq=2)
        alice.authorize(late)
        result = digest.check(late, LIFETIME, credentials)
        self.assertEqual((result.outcome, result.username, result.reason),
                         (STALE, "alice", "Nonce expired"))
        stale = digest.rejection(result, LIFETIME)
        self.assertEqual([p["stale"] for p in params_of(stale)], ["true", "true"])
        self.assertTrue(alice.challenged(response_of(stale)))
        retry = request(cseq=3)
        alice.authorize(retry)
        self.assertTrue(digest.check(retry, LIFETIME, credentials).ok)
        # The client's lookup ran for its answers; nobody was asked for a new password.
        self.assertEqual(set(asked), {REALM})

    def test_unknown_nonce_is_stale_only_with_the_right_password(self):
        before_restart = server()
        challenge = before_restart.challenge(0)
        after_restart = DigestServer(REALM, TokenSource("9"))
        result = after_restart.check(answered(client(), challenge), 0, credentials)
        self.assertEqual((result.outcome, result.reason), (STALE, "Unknown nonce"))
        self.assertEqual(params_of(after_restart.rejection(result, 0))[0]["stale"], "true")
        result = after_restart.check(answered(client(WRONG), challenge), 0, credentials)
        self.assertEqual((result.outcome, result.reason), (FAILED, "Wrong response"))
        self.assertIsNone(params_of(after_restart.rejection(result, 0))[0].get("stale"))

    def test_expired_nonce_with_a_wrong_password_fails(self):
        digest = server()
        signed = answered(client(WRONG), digest.challenge(0))
        result = digest.check(signed, LIFETIME, credentials)
        self.assertEqual((result.outcome, result.nonce), (FAILED, None))

    def test_a_flood_of_challenges_holds_nothing_and_stales_no_client(self):
        digest = server(max_nonces=4)
        mine = digest.challenge(0)
        for now in range(1, 2001):
            digest.challenge(now)  # requests that are never authenticated
        self.assertEqual(digest.nonces_held, 0)
        self.assertTrue(digest.check(answered(client(), mine), 2001, credentials).ok)

    def test_used_nonces_are_bounded_and_a_forgotten_one_cannot_be_replayed(self):
        digest = server(max_nonces=4)
        unused = digest.challenge(0)
        clients = []
        for now in range(1, 7):
            alice = client()
            self.assertTrue(digest.check(answered(alice, digest.challenge(now)), now,
                                         credentials).ok)
            clients.append(alice)
            self.assertLessEqual(digest.nonces_held, 4)
        # The first two nonces were forgotten: their next count would look new, so they
        # are stale (a client retries at once on a fresh nonce), as is any nonce made
        # before them.
        for forgotten in clients[:2]:
            again = request(cseq=2)
            forgotten.authorize(again)
            result = digest.check(again, 10, credentials)
            self.assertEqual((result.outcome, result.reason), (STALE, "Unknown nonce"))
        result = digest.check(answered(client(), unused), 10, credentials)
        self.assertEqual(result.outcome, STALE)
        # The ones remembered carry on, with rising counts.
        for remembered in clients[2:]:
            again = request(cseq=2)
            remembered.authorize(again)
            self.assertTrue(digest.check(again, 10, credentials).ok)

    def test_a_nonce_we_did_not_make_is_unknown(self):
        digest = server()
        challenge = digest.challenge(0)
        nonce = params_of(challenge)[0]["nonce"]
        forged = nonce[:-1] + ("0" if nonce[-1] != "0" else "1")
        status, name, values = challenge
        values = [value.replace(nonce, forged) for value in values]
        result = digest.check(answered(client(), (status, name, values)), 1, credentials)
        self.assertEqual((result.outcome, result.reason), (STALE, "Unknown nonce"))
        self.assertEqual(digest.nonces_held, 0)
        later = "%s%x%s" % (nonce[:16], 10 ** 9, nonce[-32:])  # a time of its own choosing
        values = [value.replace(forged, later) for value in values]
        result = digest.check(answered(client(), (status, name, values)), 1, credentials)
        self.assertEqual(result.outcome, STALE)


class TestNoSecrets(unittest.TestCase):
    def test_no_password_or_expected_response_in_any_result(self):
        digest = server()
        challenge = digest.challenge(0)
        nonce = params_of(challenge)[0]["nonce"]
        signed = answered(client(WRONG), challenge)
        sent = parse_credentials(signed.get("authorization"))
        expected = expected_response("SHA-256", "alice", REALM, PASSWORD, "MESSAGE", PORCH,
                                     nonce, sent["nc"], sent["cnonce"], "auth")
        results = [
            digest.check(signed, 0, credentials),  # FAILED
            digest.check(signed, 0, credentials),  # FORBIDDEN
            digest.check(answered(client(), challenge), 0, credentials),  # OK
            digest.check(answered(client(), challenge), LIFETIME, credentials),  # STALE
            digest.check(request(), 0, credentials),  # MISSING
        ]
        self.assertEqual([r.outcome for r in results], [FAILED, FORBIDDEN, OK, STALE, MISSING])
        for result in results:
            for text in (repr(result), str(result.reason), str(result.username)):
                for secret in (PASSWORD, WRONG, expected):
                    self.assertFalse(secret in text, text)
            for value in digest.rejection(result, 0)[2] if not result.ok else ():
                for secret in (PASSWORD, WRONG, expected):
                    self.assertFalse(secret in value, value)
