"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966).

`parse_uri(text)` returns a `Uri`; `str(uri)` gives the text back. Components are kept as
written (escapes included) so a URI round-trips exactly; `uri == other` applies the
comparison rules of RFC 3261 section 19.1.4.
"""

from .errors import ParseError

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
_USER_CHARS = frozenset(_UNRESERVED + "%&=+$,;?/")
_PASSWORD_CHARS = frozenset(_UNRESERVED + "%&=+$,")
_PARAM_CHARS = frozenset(_UNRESERVED + "%[]/:&+$")
_HEADER_CHARS = frozenset(_UNRESERVED + "%[]/?:+$")
_HOST_CHARS = frozenset(_ALNUM + "-.")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_TEL_CHARS = frozenset(_UNRESERVED + "%+#[]/:&$,=?")
_SCHEME_CHARS = frozenset(_ALNUM + "+-.")
_HEX = "0123456789abcdefABCDEF"
_DIGITS = frozenset("0123456789")
# RFC 2396 "reserved" (and "%" itself): escapes of these stay escapes when comparing, as
# they are not equivalent to the character they encode (RFC 3261 section 19.1.4).
_RESERVED = ";/?:@&=+$,%"

# Parameters that make two URIs differ when only one of them has it (19.1.4: "The same is
# true for the transport-parameter, ttl-parameter, user-parameter, and method components";
# and maddr).
_SIGNIFICANT_PARAMS = ("transport", "user", "ttl", "method", "maddr")


def is_digits(text, most=32):
    """True for a run of 1 to `most` ASCII digits: safe to give to `int`. (`str.isdigit`
    also takes digits of other scripts, which `int` refuses; and CPython's `int` refuses
    strings of thousands of digits, which a peer may send.)"""
    return 0 < len(text) <= most and _DIGITS.issuperset(text)


def _check(text, allowed, what):
    if not allowed.issuperset(text):
        for ch in text:
            if ch not in allowed:
                raise ParseError("Invalid character %r in URI %s" % (ch, what))
    if "%" in text:
        _unescape(text, what)


def _unescape(text, what="component"):
    """Decode %HH escapes, except those of reserved characters and of octets above 0x7f
    (any octet may be escaped, UTF-8 or not), which are kept (in upper case); the result
    is used for comparison only."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise ParseError("Bad escape in URI %s" % what)
            code = int(pair, 16)
            if code > 0x7F or chr(code) in _RESERVED:
                out.extend(b"%" + pair.upper().encode())
            else:
                out.append(code)
            i += 3
        else:
            out.extend(ch.encode())
            i += 1
    try:
        return bytes(out).decode()
    except UnicodeError:
        raise ParseError("Bad escape in URI %s" % what)


def parse_host(text):
    """Split `host[:port]`; return (host, port or None). IPv6 references keep brackets."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError("Unterminated IPv6 reference")
        host = text[: end + 1]
        rest = text[end + 1 :]
        _check(host[1:-1], _IPV6_CHARS, "host")
        if ":" not in host:
            raise ParseError("Bad IPv6 reference")
        if rest and not rest.startswith(":"):
            raise ParseError("Junk after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
        if not host:
            raise ParseError("Missing host")
        _check(host, _HOST_CHARS, "host")
    port = None
    if port_text is not None:
        if not is_digits(port_text) or len(port_text) > 5:
            raise ParseError("Bad port %r" % port_text)
        port = int(port_text)
        if port > 65535:
            raise ParseError("Port out of range")
    return host, port


def parse_params(text, allowed=_PARAM_CHARS, what="parameter"):
    """Parse `;a=b;c` (text without the first ';') into a list of (name, value or None)."""
    params = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise ParseError("Empty URI parameter")
        _check(name, allowed, what)
        if eq:
            _check(value, allowed, what)
            params.append((name, value))
        else:
            params.append((name, None))
    return params


class Uri:
    """A parsed URI. For tel URIs, `user` holds the telephone-subscriber and `host` is None."""

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers")

    def __init__(
        self, scheme="sip", user=None, host=None, port=None, params=None, headers=None,
        password=None,
    ):
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if params is not None else []
        self.headers = headers if headers is not None else []

    def param(self, name, default=None):
        """The value of a URI parameter (name case-insensitive); "" when it has no value."""
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return "" if value is None else value
        return default

    def has_param(self, name):
        return self.param(name) is not None

    @property
    def secure(self):
        return self.scheme == "sips"

    def hostport(self):
        if self.port is None:
            return self.host
        return "%s:%d" % (self.host, self.port)

    def copy(self):
        return Uri(
            self.scheme, self.user, self.host, self.port, list(self.params),
            list(self.headers), self.password,
        )

    def __str__(self):
        out = [self.scheme, ":"]
        if self.scheme == "tel":
            out.append(self.user)
        else:
            if self.user is not None:
                out.append(self.user)
                if self.password is not None:
                    out.append(":")
                    out.append(self.password)
                out.append("@")
            out.append(self.hostport())
        for name, value in self.params:
            out.append(";" + name if value is None else ";%s=%s" % (name, value))
        if self.headers:
            out.append("?")
            out.append("&".join("%s=%s" % (n, v) for n, v in self.headers))
        return "".join(out)

    def __repr__(self):
        return "<Uri %s>" % self

    def __eq__(self, other):
        if not isinstance(other, Uri):
            return NotImplemented
        return _comparison_key(self) == _comparison_key(other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        scheme, user, password, host, port = _comparison_key(self)[:5]
        return hash((scheme, user, password, host, port))


def _comparison_key(uri):
    """The parts that RFC 3261 19.1.4 compares, normalised."""
    if uri.scheme == "tel":
        # RFC 3966 section 4: visual separators do not count; parameters compare unordered.
        number = "".join(ch for ch in _unescape(uri.user) if ch not in "-.()")
        params = sorted((n.lower(), (v or "").lower()) for n, v in uri.params)
        return ("tel", number.lower(), None, None, None, params, [])
    user = _unescape(uri.user) if uri.user is not None else None
    password = _unescape(uri.password) if uri.password is not None else None
    params = {}
    for name, value in uri.params:
        name = _unescape(name).lower()
        params[name] = _unescape(value).lower() if value is not None else ""
    # Only significant parameters that one side lacks, and shared ones, decide equality:
    # keep every significant one, and mark the rest so that absent ones compare equal.
    headers = sorted((_unescape(n).lower(), _unescape(v)) for n, v in uri.headers)
    return (
        uri.scheme, user, password, uri.host.lower(), uri.port, _ParamsKey(params), headers,
    )


class _ParamsKey:
    """URI parameters compared per 19.1.4: shared ones must match, and `transport`, `user`,
    `ttl`, `method` and `maddr` must be present on both sides or on neither."""

    __slots__ = ("params",)

    def __init__(self, params):
        self.params = params

    def __eq__(self, other):
        mine = self.params
        theirs = other.params
        for name in _SIGNIFICANT_PARAMS:
            if (name in mine) != (name in theirs):
                return False
        for name, value in mine.items():
            if name in theirs and theirs[name] != value:
                return False
        return True

    def __ne__(self, other):
        return not self.__eq__(other)


class OpaqueUri:
    """An absoluteURI of a scheme this UA does not interpret (`isbn:`, `http:`), as it may
    stand in From, To or Contact (RFC 3261 section 25.1). Compared by its text."""

    __slots__ = ("scheme", "text")
    user = host = port = password = None
    params = headers = ()

    def __init__(self, scheme, text):
        self.scheme = scheme
        self.text = text

    def param(self, name, default=None):
        return default

    def has_param(self, name):
        return False

    def __str__(self):
        return self.scheme + ":" + self.text

    def __eq__(self, other):
        return isinstance(other, OpaqueUri) and str(self).lower() == str(other).lower()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(str(self).lower())


def parse_uri(text, strict=True):
    """Parse a sip:, sips: or tel: URI. Raises ParseError: 416 for other schemes, unless
    `strict` is false, when they come back as an OpaqueUri."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme:
        raise ParseError("Malformed URI %r" % text[:40])
    lower = scheme.lower()
    if lower != "sip" and lower != "sips":
        _check(scheme, _SCHEME_CHARS, "scheme")
    scheme = lower
    if scheme == "tel":
        number, _, params_text = rest.partition(";")
        if not number:
            raise ParseError("Empty tel URI")
        _check(number, _TEL_CHARS, "number")
        params = parse_params(params_text) if params_text else []
        return Uri("tel", number, None, None, params)
    if scheme != "sip" and scheme != "sips":
        if strict:
            raise ParseError("Unsupported URI Scheme", 416)
        for ch in rest:
            if ch in " \t<>\"":
                raise ParseError("Invalid character %r in URI" % ch)
        return OpaqueUri(scheme, rest)

    user = password = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user, colon, password_text = userinfo.partition(":")
        if colon:
            _check(password_text, _PASSWORD_CHARS, "password")
            password = password_text
        if not user:
            raise ParseError("Empty user in URI")
        _check(user, _USER_CHARS, "user")

    headers_text = None
    q = rest.find("?")
    if q >= 0:
        headers_text = rest[q + 1 :]
        rest = rest[:q]
    hostport, semi, params_text = rest.partition(";")
    host, port = parse_host(hostport)
    params = parse_params(params_text) if semi else []
    headers = []
    if headers_text is not None:
        for item in headers_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise ParseError("Malformed URI header %r" % item[:40])
            _check(name, _HEADER_CHARS, "header")
            _check(value, _HEADER_CHARS, "header")
            headers.append((name, value))
    return Uri(scheme, user, host, port, params, headers, password)
