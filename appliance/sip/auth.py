"""Digest authentication as a server: challenging requests and checking their credentials
(RFC 3261 section 22, RFC 7616, RFC 8760).

The UAS side of `digest.py`, whose parsing, hashing and comparison it uses. One
`DigestServer` per realm:

    server = DigestServer("home.arpa", token)            # proxy=True: 407 / Proxy-*
    result = server.check(request, now, credentials)     # credentials(user) -> password
    if result.ok:
        ...                                               # result.username sent it
    else:
        status, name, values = server.rejection(result, now)
        # make_response(request, status, fields=[(name, v) for v in values])

`challenge(now, stale=False)` gives the (401, "WWW-Authenticate", values) of a first
challenge directly. `token(n)` returns n random hex digits; times are integer milliseconds.
ACK and CANCEL cannot be challenged (RFC 3261 section 22.1): do not check them.

Outcomes of `check` (`AuthResult.outcome`):
- OK: the response is right for a nonce we issued, still fresh, with a nonce count above
  every one accepted before for that nonce.
- STALE: the response is right, but for a nonce that has expired or that we do not know
  (issued before a restart, or dropped from a full table). Answered with a new challenge
  with stale=true, which a client retries without asking its user (RFC 7616 section 3.3:
  stale only when the digest was valid, so a wrong password never gets it).
- MISSING: no Digest credentials for our realm (the usual first request; not worth a
  warning).
- FAILED: credentials for our realm that do not pass: malformed, a parameter missing, an
  algorithm we did not offer, no qop=auth, a digest-uri other than the Request-URI, an
  unknown user, a wrong response, a nonce count not above the last one (a replay).
- FORBIDDEN: a second failure on the same nonce (answered 403, below).

Rules:
- One challenge per algorithm offered, strongest first (RFC 8760 section 2.4), all with the
  same nonce and opaque (as in RFC 7616 section 3.9.1), qop="auth". qop=auth-int, -sess
  algorithms and RFC 2069 answers without qop are refused: qop=auth with nc and cnonce is
  what makes replays detectable.
- A nonce is made, not stored: 64 random bits, its creation time and a 128-bit SHA-256
  MAC of both under a secret of the server's (`token(32)`, new with each server, so a
  restart makes earlier nonces unknown). Challenging costs no memory, so a flood of
  requests that are never authenticated cannot push a client's nonce out of a table
  between its challenge and its answer. A nonce older than `nonce_lifetime` ms is stale.
- A nonce is remembered (its creation time, the last nonce count accepted, a failure on it)
  once credentials are checked against it, in a table of at most `max_nonces`; making room
  forgets the entry used first, and every nonce made no later than a forgotten one is stale
  from then on, so a forgotten nonce can never be replayed from a count of 1 again.
- A nonce count is recorded only when the response is right, so a forged request cannot
  use up a client's counts. Nonce counts must rise (RFC 7616 section 3.4); one that does
  not is a replay, or requests sent in parallel arriving out of order: it is refused with a
  fresh nonce, which the client answers without asking its user.
- A failure on a fresh nonce of ours is answered with a challenge that repeats that nonce
  (stale absent): the sign by which clients, ours included (`DigestClient.challenged`),
  tell a wrong password and stop instead of trying once more per new nonce. Credentials
  refused a second time on that nonce (a client that took no notice, or someone guessing)
  get 403 Forbidden, "the request SHOULD NOT be repeated" (RFC 3261 section 21.4.4); a
  right answer on it still passes, for a client that asked its user again. Other failures
  get a fresh challenge.
- An unknown user costs the same hashing as a known one, and gets the same answer.
- The digest-uri must equal the Request-URI (or one of the `targets` the caller names: the
  address of record a proxy retargeted to the Contact): as text, or as URIs under RFC 3261
  section 19.1.4. The opaque, when sent with a nonce of ours, must be ours.
- Responses are compared with `constant_time_equal`. Reasons are fixed phrases for the
  log: no password, expected response or peer-supplied text is ever in one (the claimed
  user name is in `AuthResult.username`; log it with %r). They are not meant for the wire:
  the status line stays "401 Unauthorized".
"""

from .digest import ALGORITHMS, constant_time_equal, expected_response, parse_credentials
from .errors import ParseError, SipError
from .hashes import MD5, SHA256, hex_digest
from .headers import quote
from .uri import parse_uri

OK = "ok"
STALE = "stale"
MISSING = "missing"
FAILED = "failed"
FORBIDDEN = "forbidden"

NONCE_RANDOM_DIGITS = 16  # 64 random bits per nonce
MAC_DIGITS = 32  # 128 bits of HMAC-SHA-256
SECRET_DIGITS = 64
OPAQUE_DIGITS = 16
_REQUIRED = ("username", "nonce", "uri", "response")
_HEX = frozenset("0123456789abcdefABCDEF")


class AuthResult:
    """What `DigestServer.check` found. `username` is the user the credentials claim
    (None without credentials): authenticated only when `ok`. `reason` is a fixed phrase
    for the log (None when ok). `nonce` is the nonce of ours a rejection repeats, or None."""

    __slots__ = ("outcome", "username", "reason", "nonce")

    def __init__(self, outcome, username=None, reason=None, nonce=None):
        self.outcome = outcome
        self.username = username
        self.reason = reason
        self.nonce = nonce

    @property
    def ok(self):
        return self.outcome == OK

    def __repr__(self):
        return "AuthResult(%s, username=%r, reason=%r)" % (
            self.outcome, self.username, self.reason)


class _Nonce:
    __slots__ = ("created", "nc", "failed")

    def __init__(self, created):
        self.created = created
        self.nc = 0  # the highest nonce count accepted
        self.failed = False  # credentials were refused on it once


class DigestServer:
    """Challenges and checks requests for one realm.

    `algorithms`: the ones offered, of "MD5", "SHA-256" and "SHA-512-256" (any order; they
    are offered strongest first). `nonce_lifetime`: ms a nonce stays fresh. `max_nonces`:
    how many nonces are remembered. `proxy`: 407 / Proxy-Authenticate /
    Proxy-Authorization instead of 401 / WWW-Authenticate / Authorization.
    """

    def __init__(self, realm, token, algorithms=(SHA256, MD5), nonce_lifetime=300000,
                 max_nonces=256, proxy=False):
        if not realm or "\r" in realm or "\n" in realm:
            raise SipError("a realm is one line of text")
        offered = [name.upper() for name in algorithms]
        for name in offered:
            if name not in ALGORITHMS:
                raise SipError("unknown digest algorithm %r" % name)
        self.algorithms = tuple(name for name in ALGORITHMS if name in offered)
        if not self.algorithms:
            raise SipError("no digest algorithm offered")
        if nonce_lifetime < 1 or max_nonces < 1:
            raise SipError("nonce_lifetime and max_nonces must be positive")
        self.realm = realm
        self.token = token
        self.nonce_lifetime = nonce_lifetime
        self.max_nonces = max_nonces
        self.proxy = proxy
        self.status = 407 if proxy else 401
        self.challenge_header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        self.credentials_header = "Proxy-Authorization" if proxy else "Authorization"
        self.opaque = token(OPAQUE_DIGITS)
        self._secret = token(SECRET_DIGITS).encode()
        self._nonces = {}  # nonce -> _Nonce, for the nonces credentials were checked on
        # Those nonces in the order first used, as a ring: the slot written next holds the
        # oldest.
        self._ring = [None] * max_nonces
        self._next = 0
        self._floor = None  # nonces made at or before this time (ms) are stale

    @property
    def nonces_held(self):
        """How many nonces the table remembers (at most `max_nonces`)."""
        return len(self._nonces)

    # -- challenging -------------------------------------------------------------------

    def challenge(self, now, stale=False):
        """A new challenge: (status, header name, [one value per algorithm, strongest
        first]), all with one fresh nonce."""
        return self._challenge(self._issue(now), stale)

    def rejection(self, result, now):
        """How to answer a request whose check did not pass: (status, header name,
        values), as `challenge` gives them; 403 has no header (name None, no values)."""
        outcome = result.outcome
        if outcome == OK:
            raise SipError("an accepted request needs no rejection")
        if outcome == FORBIDDEN:
            return (403, None, [])
        if result.nonce is not None and result.nonce in self._nonces:
            return self._challenge(result.nonce, False)
        return self.challenge(now, outcome == STALE)

    def _issue(self, now):
        text = self.token(NONCE_RANDOM_DIGITS) + "%x" % now
        return text + self._mac(text)

    def _mac(self, text):
        """HMAC-SHA-256 (RFC 2104) of `text` under the secret, in MAC_DIGITS hex digits."""
        inner = hex_digest(SHA256, _xor(self._secret, 0x36) + text.encode())
        outer = hex_digest(SHA256, _xor(self._secret, 0x5C) + _unhex(inner))
        return outer[:MAC_DIGITS]

    def _made(self, nonce):
        """When we made `nonce` (ms), or None when it is not one of ours."""
        if len(nonce) <= NONCE_RANDOM_DIGITS + MAC_DIGITS or not _HEX.issuperset(nonce):
            return None
        text = nonce[:-MAC_DIGITS]
        if not constant_time_equal(self._mac(text), nonce[-MAC_DIGITS:]):
            return None
        return int(text[NONCE_RANDOM_DIGITS:], 16)

    def _entry(self, nonce):
        """The table's entry for a nonce of ours (made for it on first use, making room as
        needed), or None for a nonce that is not ours or is forgotten."""
        entry = self._nonces.get(nonce)
        if entry is not None:
            return entry
        made = self._made(nonce)
        if made is None or (self._floor is not None and made <= self._floor):
            return None
        oldest = self._ring[self._next]
        if oldest is not None:
            forgotten = self._nonces.pop(oldest)
            if self._floor is None or forgotten.created > self._floor:
                self._floor = forgotten.created
            if made <= self._floor:
                # Made no later than the nonce just forgotten: it goes stale with it.
                self._ring[self._next] = None
                return None
        self._ring[self._next] = nonce
        self._next = (self._next + 1) % self.max_nonces
        entry = self._nonces[nonce] = _Nonce(made)
        return entry

    def _challenge(self, nonce, stale):
        common = "Digest realm=%s, nonce=%s, opaque=%s, qop=\"auth\", algorithm=" % (
            quote(self.realm), quote(nonce), quote(self.opaque))
        values = []
        for algorithm in self.algorithms:
            value = common + algorithm
            if stale:
                value += ", stale=true"
            values.append(value)
        return (self.status, self.challenge_header, values)

    # -- checking ----------------------------------------------------------------------

    def check(self, request, now, credentials, targets=()):
        """Check the request's credentials for our realm; `credentials(username)` returns
        the user's password, or None for an unknown user. `targets` are URIs the client may
        have addressed besides the Request-URI (the address of record a proxy retargeted
        to us). Returns an AuthResult; bad input from the peer never raises."""
        params = None
        malformed = False
        other_realm = False
        for value in request.get_all(self.credentials_header):
            try:
                found = parse_credentials(value)
            except ParseError:
                malformed = True
                continue
            if found.get("realm") == self.realm:
                params = found
                break
            other_realm = True
        if params is None:
            if malformed:
                return AuthResult(FAILED, None, "Malformed credentials")
            if other_realm:
                return AuthResult(MISSING, None, "No credentials for this realm")
            return AuthResult(MISSING, None, "No credentials")

        username = params.get("username")
        reason = self._malformed(params, request, targets)
        if reason is not None:
            return self._refuse(params.get("nonce"), username, reason, now)
        nonce = params["nonce"]
        entry = self._entry(nonce)
        if entry is not None and "opaque" in params and params["opaque"] != self.opaque:
            return self._refuse(nonce, username, "Opaque mismatch", now)

        password = credentials(username)
        # An unknown user costs the same hashing as a known one.
        expected = expected_response(
            params.get("algorithm", MD5).upper(), username, self.realm,
            password if password is not None else "", request.method, params["uri"],
            nonce, params["nc"], params["cnonce"], "auth")
        right = constant_time_equal(expected, params["response"].lower())
        if password is None:
            return self._refuse(nonce, username, "Unknown user", now)
        if not right:
            return self._refuse(nonce, username, "Wrong response", now)
        if entry is None:
            return AuthResult(STALE, username, "Unknown nonce")
        if self._expired(entry, now):
            return AuthResult(STALE, username, "Nonce expired")
        nc = int(params["nc"], 16)
        if nc <= entry.nc:
            return AuthResult(FAILED, username, "Nonce count not increasing")
        entry.nc = nc
        return AuthResult(OK, username)

    def _malformed(self, params, request, targets):
        """Why well-formed credentials for our realm cannot be checked, or None."""
        for name in _REQUIRED:
            if not params.get(name):
                return "Missing digest parameter " + name
        if params.get("algorithm", MD5).upper() not in self.algorithms:
            return "Digest algorithm not offered"
        if params.get("qop", "").lower() != "auth":
            return "qop=auth required"
        nc = params.get("nc", "")
        if len(nc) != 8 or not _HEX.issuperset(nc):
            return "Malformed nonce count"
        if not params.get("cnonce"):
            return "Missing digest parameter cnonce"
        if not any(_same_uri(params["uri"], uri) for uri in [request.uri_text] + list(targets)):
            return "Digest URI does not match the Request-URI"
        return None

    def _refuse(self, nonce, username, reason, now):
        """Refused credentials: FAILED, repeating the nonce when it is a fresh one of ours
        (the sign of a wrong password), FORBIDDEN when it was refused before."""
        entry = self._entry(nonce) if nonce else None
        if entry is None or self._expired(entry, now):
            return AuthResult(FAILED, username, reason)
        if entry.failed:
            return AuthResult(FORBIDDEN, username, reason)
        entry.failed = True
        return AuthResult(FAILED, username, reason, nonce)

    def _expired(self, entry, now):
        return now - entry.created >= self.nonce_lifetime


def _xor(key, pad):
    """The HMAC key block: `key` (at most 64 bytes) padded with zeros, each byte ^ pad."""
    return bytes([byte ^ pad for byte in key + bytes(64 - len(key))])


def _unhex(digits):
    return bytes([int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)])


def _same_uri(digest_uri, request_uri):
    """The digest-uri names the Request-URI: the same text, or equal URIs (19.1.4)."""
    if digest_uri == request_uri:
        return True
    try:
        mine = parse_uri(request_uri, False)
        theirs = parse_uri(digest_uri, False)
    except ParseError:
        return False
    # Compared only within one class: a Uri and an OpaqueUri are never the same.
    return type(mine) is type(theirs) and mine == theirs
