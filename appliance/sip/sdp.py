"""SDP (RFC 8866) and the offer/answer model (RFC 3264) for G.711 audio calls.

What the intercom speaks: PCMU and PCMA at 8 kHz (static payload types 0 and 8), ptime 20,
and telephone-event (RFC 4733) for DTMF on a dynamic payload type. `parse()` reads any
SDP into a `Session` of `Media`; `offer()` makes ours; `answer()` answers an offer: the
first audio stream with a codec we share gets the offerer's first such codec (RFC 3264
section 6.1: the offerer's order is its preference), every other stream is refused with
port 0, and None comes back when no audio stream can be accepted (the caller sends 488);
`accepted()` reads the answer to our offer the same way.

Directions (RFC 3264 section 6.1): an offer's sendonly is answered recvonly and the other
way round; a connection address of 0.0.0.0 (RFC 2543's hold) counts as sendonly.
"""

from .errors import ParseError

PCMU = "PCMU"
PCMA = "PCMA"
TELEPHONE_EVENT = "telephone-event"
CODECS = (PCMU, PCMA)  # ours, in our order of preference
STATIC = {0: PCMU, 8: PCMA}  # RFC 3551 static payload types we know
STATIC_TYPES = {PCMU: 0, PCMA: 8}
EVENT_TYPE = 101  # the payload type we offer telephone-event on
PTIME = 20  # ms of audio per packet

SENDRECV = "sendrecv"
SENDONLY = "sendonly"
RECVONLY = "recvonly"
INACTIVE = "inactive"
DIRECTIONS = (SENDRECV, SENDONLY, RECVONLY, INACTIVE)
_REVERSE = {SENDRECV: SENDRECV, SENDONLY: RECVONLY, RECVONLY: SENDONLY, INACTIVE: INACTIVE}


class Media:
    """One m= line and what follows it."""

    def __init__(self, kind, port, proto, formats, connection=None, attributes=None):
        self.kind = kind  # "audio", "video", ...
        self.port = port
        self.proto = proto  # "RTP/AVP"
        self.formats = list(formats)  # payload types as text, in the sender's order
        self.connection = connection  # the c= address of this stream, if it has its own
        self.attributes = list(attributes or [])  # (name, value or None), in order

    def attribute(self, name):
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def rtpmap(self):
        """{payload type (int): (encoding name, clock rate)} from a=rtpmap, with the
        static types we know for those without one."""
        out = {}
        for text in self.formats:
            try:
                number = int(text)
            except ValueError:
                continue
            if number in STATIC:
                out[number] = (STATIC[number], 8000)
        for key, value in self.attributes:
            if key != "rtpmap" or not value:
                continue
            number, _, rest = value.partition(" ")
            name, _, clock = rest.strip().partition("/")
            try:
                out[int(number)] = (name, int(clock.partition("/")[0] or "0"))
            except ValueError:
                raise ParseError("Malformed SDP rtpmap")
        return out

    @property
    def direction(self):
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return None


class Session:
    """A parsed session description."""

    def __init__(self, origin, connection, media, attributes=None, name="-"):
        self.origin = origin  # (username, session id, version, address type, address)
        self.connection = connection  # the session-level c= address, or None
        self.media = list(media)
        self.attributes = list(attributes or [])
        self.name = name

    def address_of(self, media):
        return media.connection or self.connection

    def direction_of(self, media):
        """The stream's direction: its own attribute, else the session's, else sendrecv;
        a 0.0.0.0 connection address (RFC 2543 hold) is sendonly."""
        direction = media.direction
        if direction is None:
            for key, _ in self.attributes:
                if key in DIRECTIONS:
                    direction = key
        if direction is None:
            direction = SENDRECV
        if self.address_of(media) == "0.0.0.0" and direction == SENDRECV:
            direction = SENDONLY
        return direction


class Negotiated:
    """What an offer and its answer agreed for the audio stream."""

    def __init__(self, codec, payload_type, event_type, address, port, direction, ptime,
                 index):
        self.codec = codec  # PCMU or PCMA
        self.payload_type = payload_type
        self.event_type = event_type  # telephone-event's payload type, or None
        self.address = address  # where the peer receives RTP
        self.port = port
        self.direction = direction  # ours: do we send, receive, both, neither
        self.ptime = ptime
        self.index = index  # the m= line's position

    @property
    def sending(self):
        return self.direction in (SENDRECV, SENDONLY)

    @property
    def receiving(self):
        return self.direction in (SENDRECV, RECVONLY)

    def __repr__(self):
        return "Negotiated(%s/%d, events %s, %s:%d, %s)" % (
            self.codec, self.payload_type, self.event_type, self.address, self.port,
            self.direction)


# -- reading -----------------------------------------------------------------------------


def parse(data):
    """A Session from SDP bytes or text; ParseError (400-class: the caller answers 400 or
    488) for what is not SDP."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeError:
            raise ParseError("SDP Is Not UTF-8")
    origin = None
    connection = None
    session_attributes = []
    name = "-"
    media = []
    current = None
    seen_version = False
    for line in data.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise ParseError("Malformed SDP Line")
        kind = line[0]
        value = line[2:]
        if kind == "v":
            if value.strip() != "0":
                raise ParseError("Unsupported SDP Version")
            seen_version = True
        elif kind == "o":
            parts = value.split()
            if len(parts) != 6:
                raise ParseError("Malformed SDP Origin")
            origin = (parts[0], parts[1], parts[2], parts[4], parts[5])
        elif kind == "s":
            name = value
        elif kind == "c":
            address = _connection(value)
            if current is None:
                connection = address
            else:
                current.connection = address
        elif kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise ParseError("Malformed SDP Media")
            port_text = parts[1].partition("/")[0]
            if not port_text.isdigit() or int(port_text) > 65535:
                raise ParseError("Malformed SDP Media Port")
            current = Media(parts[0], int(port_text), parts[2], parts[3:])
            media.append(current)
        elif kind == "a":
            key, _, attribute = value.partition(":")
            pair = (key, attribute if _ else None)
            if current is None:
                session_attributes.append(pair)
            else:
                current.attributes.append(pair)
    if not seen_version or origin is None:
        raise ParseError("Malformed SDP: v= and o= Are Required")
    return Session(origin, connection, media, session_attributes, name)


def _connection(value):
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise ParseError("Malformed SDP Connection")
    return parts[2].partition("/")[0]


# -- writing -----------------------------------------------------------------------------


def offer(address, port, session_id, version=1, direction=SENDRECV, codecs=CODECS):
    """Our offer: one audio stream at `address`:`port` with `codecs` and telephone-event."""
    formats = [STATIC_TYPES[codec] for codec in codecs] + [EVENT_TYPE]
    lines = _head(address, session_id, version)
    lines.append("m=audio %d RTP/AVP %s" % (port, " ".join(str(n) for n in formats)))
    for codec in codecs:
        lines.append("a=rtpmap:%d %s/8000" % (STATIC_TYPES[codec], codec))
    lines.append("a=rtpmap:%d %s/8000" % (EVENT_TYPE, TELEPHONE_EVENT))
    lines.append("a=fmtp:%d 0-16" % EVENT_TYPE)
    lines.append("a=ptime:%d" % PTIME)
    lines.append("a=" + direction)
    return _text(lines)


def answer(offered, address, port, session_id, version=1):
    """Answer the Session `offered` with our audio at `address`:`port`: (SDP text,
    Negotiated), or None when no audio stream can be accepted."""
    chosen = None
    lines = _head(address, session_id, version)
    for index, media in enumerate(offered.media):
        pick = None
        if chosen is None and media.kind == "audio" and media.port != 0 \
                and media.proto in ("RTP/AVP", "RTP/AVPF"):
            pick = _pick(media)
        if pick is None:
            lines.append("m=%s 0 %s %s" % (media.kind, media.proto, " ".join(media.formats)))
            continue
        codec, number, event = pick
        direction = _REVERSE[offered.direction_of(media)]
        formats = [str(number)] + ([str(event)] if event is not None else [])
        lines.append("m=audio %d %s %s" % (port, media.proto, " ".join(formats)))
        lines.append("a=rtpmap:%d %s/8000" % (number, codec))
        if event is not None:
            lines.append("a=rtpmap:%d %s/8000" % (event, TELEPHONE_EVENT))
            lines.append("a=fmtp:%d 0-16" % event)
        lines.append("a=ptime:%d" % PTIME)
        lines.append("a=" + direction)
        chosen = Negotiated(codec, number, event, offered.address_of(media), media.port,
                            direction, _ptime(media), index)
    if chosen is None or chosen.address is None:
        return None
    return _text(lines), chosen


def accepted(answered):
    """What the answer `answered` (a Session) to our offer agreed, or None when it refused
    the audio stream (port 0, or no codec of ours)."""
    for index, media in enumerate(answered.media):
        if media.kind != "audio":
            continue
        if media.port == 0:
            return None
        pick = _pick(media)
        if pick is None or answered.address_of(media) is None:
            return None
        codec, number, event = pick
        direction = _REVERSE[answered.direction_of(media)]
        return Negotiated(codec, number, event, answered.address_of(media), media.port,
                          direction, _ptime(media), index)
    return None


# -- inside ------------------------------------------------------------------------------


def _pick(media):
    """(codec, its payload type, telephone-event's payload type or None) for the first
    of the stream's formats that we speak, or None."""
    try:
        known = media.rtpmap()
    except ParseError:
        return None
    codec = None
    event = None
    for text in media.formats:
        try:
            number = int(text)
        except ValueError:
            continue
        name, clock = known.get(number, (None, None))
        if name is None:
            continue
        upper = name.upper()
        if codec is None and upper in CODECS and clock == 8000:
            codec = (upper, number)
        elif event is None and name.lower() == TELEPHONE_EVENT and clock == 8000:
            event = number
    if codec is None:
        return None
    return codec[0], codec[1], event


def _ptime(media):
    value = media.attribute("ptime")
    if value and value.strip().isdigit() and 10 <= int(value) <= 60:
        return int(value)
    return PTIME


def _head(address, session_id, version):
    family = "IP6" if ":" in address else "IP4"
    return ["v=0", "o=- %s %d IN %s %s" % (session_id, version, family, address),
            "s=-", "c=IN %s %s" % (family, address), "t=0 0"]


def _text(lines):
    return "\r\n".join(lines) + "\r\n"
