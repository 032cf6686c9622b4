"""Digest authentication (RFC 3261 section 22, with the algorithms of RFC 7616 and RFC 8760).

The client side: `DigestClient` answers 401/407 challenges. It picks the strongest algorithm
offered (SHA-512-256, then SHA-256, then MD5), counts `nc` per nonce, answers a
`stale=true` challenge again without asking for new credentials, and keeps each realm's
challenge so that the next request (a registration refresh) carries credentials at once
instead of costing a round trip. The server side needs `parse_credentials` and
`expected_response`, compared with `constant_time_equal`.
"""

from .errors import ParseError
from .hashes import MD5, SHA256, SHA512_256, hex_digest
from .headers import is_token, split_quoted, unquote

# Strongest first (RFC 8760 section 2.4: a client uses the strongest it supports).
ALGORITHMS = (SHA512_256, SHA256, MD5)
_STRENGTH = {SHA512_256: 3, SHA256: 2, MD5: 1}


def parse_params(text):
    """`name=value, name="quoted value"` -> dict with lower-case names, values unquoted."""
    params = {}
    for item in split_quoted(text, ","):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not eq or not is_token(name):
            raise ParseError("Malformed digest parameter")
        params[name] = unquote(value.strip())
    return params


class Challenge:
    """A Digest challenge from WWW-Authenticate (401) or Proxy-Authenticate (407)."""

    __slots__ = ("realm", "nonce", "opaque", "algorithm", "session", "qop", "stale", "proxy")

    def __init__(self, realm, nonce, opaque=None, algorithm=MD5, session=False, qop=(),
                 stale=False, proxy=False):
        self.realm = realm
        self.nonce = nonce
        self.opaque = opaque
        self.algorithm = algorithm
        self.session = session
        self.qop = qop
        self.stale = stale
        self.proxy = proxy


def parse_challenge(value, proxy=False):
    """Parse one challenge; ParseError for another scheme or a malformed one.

    Algorithms are matched without regard to case (RFC 7616 section 3.3); an algorithm
    this client does not know also raises ParseError, so that the caller skips it."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ParseError("Not a Digest challenge")
    params = parse_params(rest)
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None or not nonce:
        raise ParseError("Digest challenge without realm or nonce")
    algorithm = params.get("algorithm", MD5).upper()
    session = algorithm.endswith("-SESS")
    if session:
        algorithm = algorithm[:-5]
    if algorithm not in _STRENGTH:
        raise ParseError("Unknown digest algorithm %r" % algorithm)
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(realm, nonce, params.get("opaque"), algorithm, session, qop,
                     params.get("stale", "").lower() == "true", proxy)


def challenges_of(response):
    """Every Digest challenge of a 401 or 407 that this client can answer."""
    name = "proxy-authenticate" if response.status == 407 else "www-authenticate"
    out = []
    for value in response.get_all(name):
        try:
            out.append(parse_challenge(value, response.status == 407))
        except ParseError:
            continue  # another scheme, or an algorithm we lack: another challenge may do
    return out


def expected_response(algorithm, username, realm, password, method, uri, nonce, nc=None,
                      cnonce=None, qop=None, body=b"", session=False):
    """The `response` value of RFC 7616 section 3.4.1 (or RFC 2617's without qop)."""
    a1 = "%s:%s:%s" % (username, realm, password)
    ha1 = hex_digest(algorithm, a1)
    if session:
        ha1 = hex_digest(algorithm, "%s:%s:%s" % (ha1, nonce, cnonce))
    if qop == "auth-int":
        a2 = "%s:%s:%s" % (method, uri, hex_digest(algorithm, body))
    else:
        a2 = "%s:%s" % (method, uri)
    ha2 = hex_digest(algorithm, a2)
    if qop:
        return hex_digest(algorithm, "%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2))
    return hex_digest(algorithm, "%s:%s:%s" % (ha1, nonce, ha2))


def parse_credentials(value):
    """The parameters of an Authorization or Proxy-Authorization Digest value."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ParseError("Not Digest credentials")
    return parse_params(rest)


def constant_time_equal(a, b):
    """Compare two strings in time that depends on their length only."""
    if len(a) != len(b):
        return False
    result = 0
    for x, y in zip(a.encode(), b.encode()):
        result |= x ^ y
    return result == 0


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _RealmState:
    __slots__ = ("challenge", "nc")

    def __init__(self, challenge):
        self.challenge = challenge
        self.nc = 0


def same_credentials(username, password):
    """The `credentials` of a DigestClient that answers every realm with one user (a home
    proxy has one realm)."""

    def credentials(realm):
        return (username, password)

    return credentials


class DigestClient:
    """Answers challenges for one user agent's requests to one peer (a registrar, a
    proxy, a device).

    `credentials(realm)` returns (username, password) for a realm, or None; `token(n)`
    returns n random hex digits (for cnonce). Use: `authorize(request)` before sending any
    request; on a 401/407, `challenged(response)` says whether to send it again (with a
    new CSeq and branch, and `authorize` once more)."""

    def __init__(self, credentials, token):
        self.credentials = credentials
        self.token = token
        # (proxy?, realm) -> _RealmState: a proxy (407) and the UAS behind it (401) may
        # name the same realm, as a home's proxy and its devices often do.
        self._realms = {}

    def challenged(self, response):
        """Take the challenges of a 401/407. False when retrying cannot help: no
        credentials for any realm offered, or the same nonce refused again without stale
        (the password is wrong)."""
        usable = {}
        for challenge in challenges_of(response):
            if self.credentials(challenge.realm) is None:
                continue
            key = (challenge.proxy, challenge.realm)
            best = usable.get(key)
            if best is None or _STRENGTH[challenge.algorithm] > _STRENGTH[best.algorithm]:
                usable[key] = challenge
        if not usable:
            return False
        retry = False
        for key, challenge in usable.items():
            state = self._realms.get(key)
            if state is not None and state.challenge.nonce == challenge.nonce \
                    and not challenge.stale:
                continue  # our answer to this very nonce was refused
            self._realms[key] = _RealmState(challenge)
            retry = True
        return retry

    def forget(self, realm=None):
        """Drop the cached challenges of a realm (or of all)."""
        if realm is None:
            self._realms = {}
        else:
            for key in [key for key in self._realms if key[1] == realm]:
                del self._realms[key]

    def authorize(self, request):
        """Add Authorization / Proxy-Authorization for every realm with a cached challenge
        (replacing earlier ones). Returns the number added."""
        request.remove("authorization")
        request.remove("proxy-authorization")
        added = 0
        for (_, realm), state in self._realms.items():
            credentials = self.credentials(realm)
            if credentials is None:
                continue
            name = "Proxy-Authorization" if state.challenge.proxy else "Authorization"
            request.add_first(name, self._answer(state, credentials, request))
            added += 1
        return added

    def _answer(self, state, credentials, request):
        challenge = state.challenge
        username, password = credentials
        qop = None
        if "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        nc = cnonce = None
        if qop or challenge.session:
            state.nc += 1
            nc = "%08x" % state.nc
            cnonce = self.token(16)
        uri = request.uri_text
        digest = expected_response(
            challenge.algorithm, username, challenge.realm, password, request.method, uri,
            challenge.nonce, nc, cnonce, qop, request.body, challenge.session,
        )
        algorithm = challenge.algorithm + ("-sess" if challenge.session else "")
        parts = [
            "username=" + _quote(username),
            "realm=" + _quote(challenge.realm),
            "nonce=" + _quote(challenge.nonce),
            "uri=" + _quote(uri),
            "response=" + _quote(digest),
            "algorithm=" + algorithm,
        ]
        if cnonce is not None:
            parts.append("cnonce=" + _quote(cnonce))
        if challenge.opaque is not None:
            parts.append("opaque=" + _quote(challenge.opaque))
        if qop:
            parts.append("qop=" + qop)
            parts.append("nc=" + nc)
        return "Digest " + ", ".join(parts)
