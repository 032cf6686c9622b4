"""SIP requests and responses: parsing, serialisation and responses built from requests
(RFC 3261 sections 7, 8.2.6, 18.3, 20 and 25).

`parse_message(data)` takes the bytes of one message; `message.to_bytes()` writes it back
(`bytes(message)` too, on CPython: MicroPython does not call `__bytes__`).
Header values stay text as written (folded lines joined), so a message round-trips
exactly and structure is parsed only for the headers someone asks for.
"""

from .errors import ParseError
from .headers import (
    _KEYS,
    header_key,
    is_header_name,
    is_token,
    parse_address,
    parse_cseq,
    parse_via,
    split_list,
)
from .uri import is_digits, parse_uri

SIP_VERSION = "SIP/2.0"
CRLF = "\r\n"

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    423: "Interval Too Brief",
    429: "Too Many Requests",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}

# Headers copied from a request into every response to it (RFC 3261 section 8.2.6.2).
_COPIED = ("via", "from", "to", "call-id", "cseq")
_DIALOG_METHODS = ("INVITE", "SUBSCRIBE", "REFER", "NOTIFY")  # their 2xx may make a dialog


class Message:
    """Start line aside, requests and responses share headers and body."""

    __slots__ = ("fields", "body", "_index", "_parsed")

    def __init__(self, fields=None, body=b""):
        # Each field is [name as written, value as written]; order is kept.
        self.fields = fields if fields is not None else []
        self.body = body
        self._index = None
        self._parsed = None  # header key -> parsed value, filled on first use

    def _changed(self):
        self._index = None
        self._parsed = None

    def _parse_once(self, key, parser, missing):
        """Parse the first value of a header once; later calls return the same object
        (treat it as read-only). Raises ParseError when it is missing or malformed."""
        index = self._lookup()
        parsed = self._parsed
        if parsed is None:
            parsed = self._parsed = {}
        elif key in parsed:
            return parsed[key]
        values = index.get(key)
        if not values:
            raise ParseError(missing)
        value = parser(values[0])
        parsed[key] = value
        return value

    def _lookup(self):
        index = self._index
        if index is None:
            self._parsed = None
            index = {}
            keys = _KEYS
            for name, value in self.fields:
                key = keys.get(name) or header_key(name)
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
            self._index = index
        return index

    # -- reading -------------------------------------------------------------------------

    def get(self, name, default=None):
        """The first value of a header, as written (any name form: `Call-ID`, `i`)."""
        index = self._index or self._lookup()
        values = index.get(name)  # callers inside the core pass lookup keys already
        if values is None:
            values = index.get(header_key(name))
        return values[0] if values else default

    def get_all(self, name):
        """Every value of a header, one per header line, as written."""
        return list(self._lookup().get(header_key(name), ()))

    def get_list(self, name):
        """Every element of a comma-separated list header, across all its lines."""
        out = []
        for value in self._lookup().get(header_key(name), ()):
            out.extend(split_list(value))
        return out

    def has(self, name):
        return header_key(name) in self._lookup()

    @property
    def call_id(self):
        return self.get("call-id")

    @property
    def cseq(self):
        return self._parse_once("cseq", parse_cseq, "Missing CSeq")

    @property
    def from_(self):
        return self._parse_once("from", parse_address, "Missing From")

    @property
    def to(self):
        return self._parse_once("to", parse_address, "Missing To")

    def vias(self):
        """All Via values, parsed, top first."""
        return [parse_via(v) for v in self.get_list("via")]

    def top_via(self):
        return self._parse_once("via", _parse_top_via, "Missing Via")

    @property
    def content_type(self):
        """The media type in lower case without parameters, or None."""
        value = self.get("content-type")
        if value is None:
            return None
        return value.partition(";")[0].strip().lower()

    # -- writing -------------------------------------------------------------------------

    def add(self, name, value):
        self.fields.append([name, str(value)])
        self._changed()

    def add_first(self, name, value):
        self.fields.insert(0, [name, str(value)])
        self._changed()

    def remove(self, name):
        key = header_key(name)
        self.fields = [f for f in self.fields if header_key(f[0]) != key]
        self._changed()

    def set(self, name, value):
        """Replace every value of a header with one, keeping the first one's position."""
        key = header_key(name)
        fields = []
        placed = False
        for field in self.fields:
            if header_key(field[0]) == key:
                if not placed:
                    fields.append([name, str(value)])
                    placed = True
            else:
                fields.append(field)
        if not placed:
            fields.append([name, str(value)])
        self.fields = fields
        self._changed()

    def start_line(self):
        raise NotImplementedError

    def __bytes__(self):
        lines = [self.start_line()]
        for name, value in self.fields:
            lines.append(name + ": " + value)
        lines.append("")
        lines.append("")
        return CRLF.join(lines).encode() + self.body

    def to_bytes(self):
        return self.__bytes__()


class Request(Message):
    __slots__ = ("method", "uri_text", "version", "_uri")

    def __init__(self, method, uri, fields=None, body=b"", version=SIP_VERSION):
        super().__init__(fields, body)
        self.method = method
        self.version = version
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri = None
        else:
            self.uri_text = str(uri)
            self._uri = uri

    @property
    def uri(self):
        """The Request-URI, parsed (ParseError, 416 for unknown schemes, if it is bad)."""
        if self._uri is None:
            self._uri = parse_uri(self.uri_text)
        return self._uri

    def start_line(self):
        return "%s %s %s" % (self.method, self.uri_text, self.version)

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.uri_text)


class Response(Message):
    __slots__ = ("status", "reason", "version")

    def __init__(self, status, reason=None, fields=None, body=b"", version=SIP_VERSION):
        super().__init__(fields, body)
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")
        self.version = version

    def start_line(self):
        return "%s %d %s" % (self.version, self.status, self.reason)

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.reason)


def _parse_top_via(value):
    if "," in value:
        values = split_list(value)
        if not values:
            raise ParseError("Malformed Via")  # only commas: "Via: ,,"
        value = values[0]
    return parse_via(value)


def _split_version(text):
    """Return (major, minor) of `SIP/x.y`, or None when it is not a SIP version at all."""
    if len(text) < 7 or text[:4].upper() != "SIP/":
        return None
    major, dot, minor = text[4:].partition(".")
    if not dot or not is_digits(major) or not is_digits(minor):
        return None
    return int(major), int(minor)


def _parse_start_line(line):
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if len(parts) < 2 or _split_version(parts[0]) is None:
            raise ParseError("Malformed status line")
        status = parts[1]
        if len(status) != 3 or not is_digits(status) or status[0] not in "123456":
            raise ParseError("Malformed status code")
        reason = parts[2] if len(parts) == 3 else ""
        return Response(int(status), reason, version=parts[0])
    method, sp, rest = line.partition(" ")
    uri, sp2, version = rest.rpartition(" ")
    if not sp or not sp2 or not is_token(method):
        raise ParseError("Malformed request line")
    if _split_version(version) is None:
        raise ParseError("Malformed SIP version")
    if not uri or " " in uri or "\t" in uri:
        raise ParseError("Malformed Request-URI")
    return Request(method, uri, version=version)


def _parse_fields(lines):
    fields = []
    for line in lines:
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            if not fields:
                raise ParseError("Continuation line before any header")
            # Folding is LWS: the line break and leading white space become one space.
            # (SP and HTAB only: other white space is part of the value, as unfolded.)
            fields[-1][1] = (fields[-1][1] + " " + line.strip(" \t")).strip(" \t")
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_header_name(name):
            raise ParseError("Malformed header line")
        fields.append([name, value.strip(" \t")])
    return fields


def parse_message(data, stream=False):
    """Parse the bytes of one SIP message.

    Over a datagram transport (`stream=False`) a message without Content-Length takes the
    rest of the datagram and bytes beyond Content-Length are discarded (RFC 3261 section
    18.3). Raises ParseError; when the start line and headers were readable, the error's
    `message` attribute holds the partial message so that a request can still be answered.
    """
    start = 0
    while data[start : start + 2] == b"\r\n":
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if data.endswith(b"\r\n"):
            end = len(data) - 2  # headers end where the datagram ends: no empty line
        else:
            raise ParseError("Missing end of headers")
    try:
        head = data[start:end].decode()
    except UnicodeError:
        raise ParseError("Headers are not UTF-8")
    lines = head.split(CRLF)
    if head.count("\n") >= len(lines) or head.count("\r") >= len(lines):
        # A bare CR or LF: lines must end in CRLF (RFC 3261 section 7), and one inside a
        # value would let a peer write lines of its own into anything that shows it.
        raise ParseError("Bare CR or LF in the headers")
    try:
        message = _parse_start_line(lines[0])
    except ParseError as error:
        if lines[0][:4].upper() != "SIP/":
            # Keep what can be read, so that a broken request line still gets its 400.
            try:
                fields = _parse_fields(lines[1:])
            except ParseError:
                raise error
            error.message = Request(lines[0].partition(" ")[0], "", fields)
        raise error
    message.fields = _parse_fields(lines[1:])
    body = data[end + 4 :]
    length_text = message.get("content-length")
    if length_text is not None:
        length_text = length_text.strip()
        if not is_digits(length_text):
            raise ParseError("Malformed Content-Length", 400, message)
        length = int(length_text)
        if length > len(body):
            raise ParseError("Content-Length larger than the message body", 400, message)
        body = body[:length]
    elif stream:
        body = b""
    message.body = body
    return message


def make_request(method, uri, from_uri, from_tag, call_id, cseq=1, to_uri=None, routes=(),
                 fields=(), body=b""):
    """A request outside any dialog (RFC 3261 section 8.1.1): Route (a preloaded route
    set), Max-Forwards 70, From with its tag, To (the Request-URI unless given), Call-ID,
    CSeq, then `fields` and Content-Length. Via is the endpoint's to write."""
    out = [["Route", "<%s>" % route] for route in routes]
    out.append(["Max-Forwards", "70"])
    out.append(["From", "<%s>;tag=%s" % (from_uri, from_tag)])
    out.append(["To", "<%s>" % (to_uri if to_uri is not None else uri)])
    out.append(["Call-ID", call_id])
    out.append(["CSeq", "%d %s" % (cseq, method)])
    for name, value in fields:
        out.append([name, str(value)])
    out.append(["Content-Length", str(len(body))])
    return Request(method, uri, out, body)


def make_response(request, status, reason=None, to_tag=None, fields=None, body=b""):
    """A response to `request` (RFC 3261 section 8.2.6): Via, From, To, Call-ID and CSeq
    copied, a To tag added when given and the request had none, then `fields` and
    Content-Length. A 101-299 to a request that makes a dialog also carries its
    Record-Route (section 12.1.1), so the caller's route set goes through the proxies."""
    out = []
    keys = _KEYS
    record_route = 100 < status < 300 and request.method in _DIALOG_METHODS
    for name, value in request.fields:
        key = keys.get(name) or header_key(name)
        if key == "record-route" and record_route:
            out.append([name, value])
        elif key in _COPIED:
            if key == "to" and to_tag is not None and status != 100:
                try:
                    tagged = "tag" in value.lower() and parse_address(value).tag is not None
                except ParseError:
                    tagged = True  # a To that cannot be read is copied as it is
                if not tagged:
                    value = value + ";tag=" + to_tag
            out.append([name, value])
        elif key == "timestamp" and status == 100:
            out.append([name, value])
    if fields:
        for name, value in fields:
            out.append([name, str(value)])
    out.append(["Content-Length", str(len(body))])
    return Response(status, reason, out, body)


class StreamParser:
    """Frames SIP messages out of a byte stream (TCP, TLS) by Content-Length.

    `feed(data)` returns a list whose items are the bytes of each complete message,
    or `PING` (a double CRLF, RFC 5626 keep-alive) or `PONG` (a single CRLF). Raises
    ParseError when the stream cannot be framed (the connection should then be closed).
    Messages framed before the fault in the same `feed` are returned first, so that they
    are answered (RFC 4475 3.1.1.8, 3.3.9); `error` then holds the fault, which the next
    `feed` raises.

    A lone CRLF could be the start of a ping, so it is held until more bytes come, unless
    `pong_expected` is set (this side sent a ping): then it is the pong, at once.

    A feed costs in proportion to its own bytes, not to what is held: a peer trickling a
    message a byte at a time up to `max_message` must not make each segment rescan and
    recopy all those before it. The start of an unfinished message is kept as the bytes a
    scan left, made a bytearray when more is added to it (on CPython faster than a list
    of the pieces joined at the end, as fast on MicroPython's WebAssembly port), and
    copied out once, complete; the search for the end of its headers resumes three bytes
    before the new ones, and its start line is checked again only when they could change
    the verdict.
    """

    PING = "ping"
    PONG = "pong"

    def __init__(self, max_message=65536):
        self.max_message = max_message
        self.pong_expected = False
        self.error = None
        self._hold(b"", 0)

    def feed(self, data):
        if self.error is not None:
            raise self.error
        out = []
        try:
            self._frame(data, out)
        except ParseError as error:
            if not out:
                raise
            self.error = error
            self._hold(b"", 0)
        return out

    def _hold(self, rest, total):
        """Hold `rest`, what a scan left unframed: the start of a message (`total` its
        whole length once its headers are in, else 0), or of a keep-alive."""
        self._held = rest
        self._grown = False  # _held is a bytearray of our own, that more was added to
        self._tail = rest[-3:]  # a header end may straddle this feed and the next
        self._total = total
        self._message = bool(rest) and rest[0] not in (13, 10)  # not CR, LF
        # Its start line is in and was checked: _check_start has no more to say about it.
        self._line = total > 0 or b"\r\n" in rest[:512]

    def _frame(self, data, out):
        if not self._message:
            # Nothing held, or at most three bytes of a keep-alive.
            self._scan(self._held + data if self._held else data, 0, out)
        elif not data:
            pass  # a message's start stays held as it was
        elif self._total:
            # Its headers are in: wait for the rest of the body, then copy it out.
            need = self._total - len(self._held)
            if len(data) < need:
                self._add(data)
            else:
                out.append(self._joined(data[:need]))
                self._hold(b"", 0)
                self._scan(data, need, out)
        elif not self._more_headers(data):
            # The end of its headers has come: frame from the message's start, once.
            self._scan(self._joined(data), 0, out)

    def _more_headers(self, data):
        """Hold `data`, more of a message whose headers have not ended, and return True;
        or return False, holding nothing, when they end in `data`."""
        tail = self._tail
        if b"\r\n\r\n" in tail + data[:3] or b"\r\n\r\n" in data:
            return False
        size = len(self._held)
        if size + len(data) > self.max_message:
            raise ParseError("Headers too long")
        if not self._line and size < 512:
            # _check_start looks at the first 512 bytes. Its verdict on them can change
            # only with a control byte (the start line's CRLF among them), or once a CR
            # that ended them is no longer at the end: else there is no need to ask again.
            check = tail.endswith(b"\r")
            if not check:
                for byte in data[: 512 - size]:
                    if (byte < 32 and byte != 9) or byte == 127:
                        check = True
                        break
            if check:
                start = bytes(self._held) + data[: 512 - size]
                _check_start(start)
                self._line = b"\r\n" in start
        self._add(data)
        self._tail = data[-3:] if len(data) >= 3 else (tail + data)[-3:]
        return True

    def _add(self, data):
        if not self._grown:
            self._held = bytearray(self._held)
            self._grown = True
        self._held += data

    def _joined(self, data):
        """What is held, then `data`, as one bytes object."""
        return (bytes(self._held) if self._grown else self._held) + data

    def _scan(self, buffer, pos, out):
        """Frame what `buffer` holds from `pos` (the start of a message or a keep-alive),
        and hold what is left."""
        size = len(buffer)
        total = 0
        while pos < size:
            if buffer[pos] in (13, 10):  # CR, LF
                rest = size - pos
                if buffer.startswith(b"\r\n\r\n", pos):
                    out.append(self.PING)
                    pos += 4
                    continue
                pong = buffer.startswith(b"\r\n", pos)
                if rest < 4 and b"\r\n\r\n".startswith(buffer[pos:]) \
                        and not (pong and self.pong_expected):
                    break  # wait: it may still become a ping
                if pong:
                    out.append(self.PONG)
                    self.pong_expected = False
                    pos += 2
                    continue
                raise ParseError("Stray line break in stream")
            end = buffer.find(b"\r\n\r\n", pos)
            if end < 0:
                if size - pos > self.max_message:
                    raise ParseError("Headers too long")
                _check_start(buffer[pos : pos + 512])
                break
            head = buffer[pos:end]
            _check_start(head)
            total = end + 4 + _stream_content_length(head) - pos
            if total > self.max_message:
                raise ParseError("Message too large")
            if size - pos < total:
                break
            out.append(buffer[pos : pos + total])
            pos += total
            total = 0
        self._hold(buffer[pos:] if pos else buffer, total)


def _check_start(buffer):
    """Refuse a stream early when its first bytes cannot begin a SIP message (a TLS hello
    on the TCP port, binary junk), instead of buffering until the size limit."""
    line_end = buffer.find(b"\r\n")
    first = buffer if line_end < 0 else buffer[:line_end]
    if line_end < 0 and first.endswith(b"\r"):
        first = first[:-1]  # the CR of a line end still on its way
    for byte in first[:256]:
        if (byte < 32 and byte != 9) or byte == 127:
            raise ParseError("Not a SIP message")
    if line_end >= 0:
        upper = first.upper()
        if not upper.startswith(b"SIP/") and b" SIP/" not in upper:
            raise ParseError("Not a SIP start line")


def _stream_content_length(head):
    """Content-Length from raw header bytes; on a stream it is mandatory (RFC 3261 18.3)."""
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        if colon and (name == b"content-length" or name == b"l"):
            value = value.strip()
            if not value.isdigit() or len(value) > 32:
                raise ParseError("Malformed Content-Length")
            return int(value)
    raise ParseError("Missing Content-Length on a stream")
