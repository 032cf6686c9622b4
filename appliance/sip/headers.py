"""Structured header values: lists, parameters, name-addr, Via and CSeq (RFC 3261 sections
20 and 25).

Messages keep every header value as the text it arrived as; these parsers turn a value into
structure on demand, so the fast path never pays for headers nobody reads.
"""

from .errors import ParseError
from .uri import is_digits, parse_host, parse_uri

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_WS = " \t"

# Compact forms (RFC 3261 section 7.3.3 and the registries of later RFCs), mapped to the
# lower-case long name that is the key every lookup uses.
COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}


# Names seen before, mapped to their keys: header names repeat from message to message,
# so each distinct spelling is lowered and checked once. Bounded against floods of
# made-up names.
_KEYS = {}  # type: dict[str, str]
_KEYS_MAX = 512


def header_key(name):
    """The lookup key of a header name: lower case, compact forms expanded."""
    key = _KEYS.get(name)
    if key is None:
        key = name.lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_KEYS) < _KEYS_MAX and is_token(name):
            _KEYS[name] = key
    return key


def is_token(text):
    return bool(text) and _TOKEN_CHARS.issuperset(text)


def is_header_name(name):
    """True for a valid header name (a token); cheap for names seen before."""
    return name in _KEYS or is_token(name)


def split_quoted(text, sep):
    """Split on `sep` outside quoted strings and angle brackets; parts are stripped.

    Backslash escapes inside quoted strings are honoured. Raises ParseError for an
    unterminated quote or bracket.
    """
    if '"' not in text and "<" not in text:
        return [part.strip(_WS) for part in text.split(sep)]
    parts = []
    start = 0
    quoted = False
    angle = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif angle:
            if ch == ">":
                angle = False
        elif ch == "<":
            angle = True
        elif ch == sep:
            parts.append(text[start:i].strip(_WS))
            start = i + 1
        i += 1
    if quoted:
        raise ParseError("Unterminated quoted string")
    if angle:
        raise ParseError("Unterminated angle bracket")
    parts.append(text[start:].strip(_WS))
    return parts


def split_list(value):
    """The elements of a comma-separated header value (RFC 3261 section 7.3.1)."""
    return [part for part in split_quoted(value, ",") if part]


def unquote(text):
    """The content of a quoted-string (backslash escapes removed), or the text itself."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            i += 1
            ch = inner[i]
        out.append(ch)
        i += 1
    return "".join(out)


def quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text):
    """Parse header parameters `;name=value;flag` (text starting after the first ';').

    Returns a list of (name, value or None); values keep quotes as written.
    """
    params = []
    for item in split_quoted(text, ";"):
        name, eq, value = item.partition("=")
        name = name.strip(_WS)
        if not is_token(name):
            raise ParseError("Malformed header parameter %r" % item[:40])
        if eq:
            value = value.strip(_WS)
            if not value:
                raise ParseError("Empty value for parameter %r" % name)
            if value[0] == '"':
                if len(value) < 2 or value[-1] != '"':
                    raise ParseError("Bad quoted parameter %r" % name)
            params.append((name, value))
        else:
            params.append((name, None))
    return params


def get_param(params, name, default=None):
    """Look up a parameter by case-insensitive name; "" for a flag without a value."""
    name = name.lower()
    for key, value in params:
        if key.lower() == name:
            return "" if value is None else value
    return default


def format_params(params):
    return "".join(";" + n if v is None else ";%s=%s" % (n, v) for n, v in params)


class Address:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route...

    `uri` is parsed; `display_name` is unquoted (None when absent). A Contact of `*` has
    `star` set and no URI.
    """

    __slots__ = ("display_name", "uri", "params", "star")

    def __init__(self, uri, display_name=None, params=None, star=False):
        self.uri = uri
        self.display_name = display_name
        self.params = params if params is not None else []
        self.star = star

    @property
    def tag(self):
        return get_param(self.params, "tag")

    def param(self, name, default=None):
        return get_param(self.params, name, default)

    def set_param(self, name, value):
        lname = name.lower()
        self.params = [(n, v) for n, v in self.params if n.lower() != lname]
        self.params.append((name, value))

    def __str__(self):
        if self.star:
            return "*"
        head = "<%s>" % self.uri
        if self.display_name is not None:
            head = quote(self.display_name) + " " + head
        return head + format_params(self.params)

    def __repr__(self):
        return "<Address %s>" % self


def parse_address(text):
    """Parse a name-addr or addr-spec, optionally followed by header parameters."""
    text = text.strip(_WS)
    if text == "*":
        return Address(None, star=True)
    display = None
    if text.startswith('"'):
        i = 1
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                break
            i += 1
        else:
            raise ParseError("Unterminated display name")
        display = unquote(text[: i + 1])
        text = text[i + 1 :].lstrip(_WS)
        if not text.startswith("<"):
            raise ParseError("Expected <URI> after display name")
    lt = text.find("<")
    if lt >= 0:
        if display is None:
            words = text[:lt].split()
            for word in words:
                if not is_token(word):
                    raise ParseError("Malformed display name")
            display = " ".join(words) if words else None
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError("Unterminated angle bracket")
        uri = parse_uri(text[lt + 1 : gt], False)
        rest = text[gt + 1 :].strip(_WS)
    else:
        # addr-spec: parameters after the URI belong to the header (RFC 3261 section 20).
        uri_text, semi, rest = text.partition(";")
        uri = parse_uri(uri_text.strip(_WS), False)
        rest = semi + rest
    params = []
    if rest:
        if rest[0] != ";":
            raise ParseError("Junk after address %r" % rest[:40])
        params = parse_params(rest[1:])
    return Address(uri, display, params)


class Via:
    """One Via value: sent-protocol, sent-by and parameters."""

    __slots__ = ("protocol", "transport", "host", "port", "params")

    def __init__(self, transport, host, port=None, params=None, protocol="SIP/2.0"):
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else []

    @property
    def branch(self):
        return get_param(self.params, "branch")

    @property
    def received(self):
        return get_param(self.params, "received")

    @property
    def rport(self):
        """None without rport; "" for a bare `rport`; the port text once filled in."""
        return get_param(self.params, "rport")

    def param(self, name, default=None):
        return get_param(self.params, name, default)

    def set_param(self, name, value=None):
        lname = name.lower()
        for i, (key, _) in enumerate(self.params):
            if key.lower() == lname:
                self.params[i] = (key, value)
                return
        self.params.append((name, value))

    def sent_by(self):
        if self.port is None:
            return self.host
        return "%s:%d" % (self.host, self.port)

    def __str__(self):
        return "%s/%s %s%s" % (
            self.protocol, self.transport, self.sent_by(), format_params(self.params),
        )


def parse_via(text):
    """Parse one Via value such as `SIP/2.0/UDP host:5060;branch=z9hG4bK...`."""
    head, semi, param_text = text.partition(";")
    parts = head.split("/")
    if len(parts) != 3:
        raise ParseError("Malformed Via")
    name = parts[0].strip(_WS)
    version = parts[1].strip(_WS)
    words = parts[2].split()
    if len(words) < 2 or not is_token(name) or not is_token(version):
        raise ParseError("Malformed Via")
    transport = words[0].upper()
    if not is_token(transport):
        raise ParseError("Malformed Via transport")
    host, port = parse_host("".join(words[1:]))
    params = parse_params(param_text) if semi else []
    return Via(transport, host, port, params, name.upper() + "/" + version)


class CSeq:
    __slots__ = ("number", "method")

    def __init__(self, number, method):
        self.number = number
        self.method = method

    def __str__(self):
        return "%d %s" % (self.number, self.method)


def parse_cseq(text):
    words = text.split()
    if len(words) != 2 or not is_digits(words[0]) or not is_token(words[1]):
        raise ParseError("Malformed CSeq")
    number = int(words[0])
    # RFC 3261 section 20.16: "expressible as a 32-bit unsigned integer" (the 2**31 limit
    # of section 8.1.1.5 binds only the first number a UAC picks; RFC 4475 section 3.1.2.4).
    if number >= 2**32:
        raise ParseError("CSeq number out of range")
    return CSeq(number, words[1])
