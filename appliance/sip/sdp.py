"""SDP (RFC 8866) and the offer/answer model (RFC 3264) for G.711 audio and H.264 video.

What the intercom speaks: PCMU and PCMA at 8 kHz (static payload types 0 and 8), ptime 20,
and telephone-event (RFC 4733) for DTMF on a dynamic payload type. What a camera sends:
H.264 (RFC 6184) in packetization mode 1, at the profile and level its encoder reports
(`Video`), never receiving video itself.

`parse()` reads any SDP into a `Session` of `Media`; `offer()` makes ours; `answer()`
answers an offer: the first audio stream with a codec we share gets the offerer's first
such codec (RFC 3264 section 6.1: the offerer's order is its preference), the first video
stream offering H.264 in mode 1 gets our video when we have some, every other stream is
refused with port 0, and None comes back when no stream can be accepted (the caller sends
488); `accepted()` reads the answer to our offer the same way, one kind at a time.

Directions (RFC 3264 section 6.1): an offer's sendonly is answered recvonly and the other
way round; a connection address of 0.0.0.0 (RFC 2543's hold) counts as sendonly.

SRTP (RFC 3711) keyed with SDES (RFC 4568): given our key (`srtp_key`, the base64 of a
30-byte master key and salt, made by the caller), `answer()` takes an audio stream's first
a=crypto line with a suite of ours (AES_CM_128_HMAC_SHA1_80 or _32), a single inline key,
no MKI and no session parameter it does not know, and answers it with the same tag and
suite and our key, on the profile offered: RTP/SAVP, RTP/SAVPF, or RTP/AVP with a=crypto
(SRTP as a best effort, as baresip's `srtp` mode offers it). Without `srtp_key`, or without
such a line, an RTP/SAVP(F) audio stream is refused and RTP/AVP is answered in the clear.
Video is never secured here: an RTP/SAVP video stream is refused.
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
H264 = "H264"
VIDEO_TYPE = 96  # the payload type we offer H.264 on
VIDEO_CLOCK = 90000
FEEDBACK = ("nack pli", "ccm fir")  # RTCP feedback we act on (RFC 4585, RFC 5104)
PLAIN = ("RTP/AVP", "RTP/AVPF")
SECURE = ("RTP/SAVP", "RTP/SAVPF")  # SRTP profiles (RFC 3711, RFC 5124)
AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
AES_CM_128_HMAC_SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
SUITES = (AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32)  # ours, in our preference
KEY_CHARACTERS = 40  # base64 of the 16-byte master key and 14-byte salt both suites take
CRYPTO_TAG = 1  # the tag of the a=crypto line we offer
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

SENDRECV = "sendrecv"
SENDONLY = "sendonly"
RECVONLY = "recvonly"
INACTIVE = "inactive"
DIRECTIONS = (SENDRECV, SENDONLY, RECVONLY, INACTIVE)
_REVERSE = {SENDRECV: SENDRECV, SENDONLY: RECVONLY, RECVONLY: SENDONLY, INACTIVE: INACTIVE}


class Crypto:
    """One a=crypto attribute (RFC 4568 section 9.1): `tag`, crypto `suite`, the inline
    master key and salt `key` (base64, as written), and the rest of its key parameter:
    `lifetime` and `mki` ("value:length") as written, or None; `params`, the session
    parameters. `parse_crypto()` reads one, `str()` writes it."""

    def __init__(self, tag, suite, key, lifetime=None, mki=None, params=()):
        self.tag = tag
        self.suite = suite
        self.key = key
        self.lifetime = lifetime
        self.mki = mki
        self.params = tuple(params)

    def usable(self):
        """Whether we can key SRTP with it: a suite of ours, a key of the length they take,
        no MKI (libsrtp through pylibsrtp takes none), no session parameter but the window
        size hint and a zero key derivation rate (RFC 4568 6.3: one not understood
        refuses the line)."""
        if self.suite not in SUITES or self.mki is not None or not _key_text(self.key):
            return False
        for param in self.params:
            if not (param.startswith("WSH=") or param == "KDR=0"):
                return False
        return True

    def __str__(self):
        key = "inline:" + self.key
        if self.lifetime is not None:
            key += "|" + self.lifetime
        if self.mki is not None:
            key += "|" + self.mki
        return " ".join(["%d %s %s" % (self.tag, self.suite, key)] + list(self.params))

    def __repr__(self):
        return "Crypto(%d %s)" % (self.tag, self.suite)  # never the key


def parse_crypto(value):
    """A Crypto from an a=crypto attribute's value ("1 AES_CM_128_HMAC_SHA1_80
    inline:KEY|2^31|1:4 WSH=64"); ParseError when malformed. Of several keys (joined by
    ";", each with an MKI) the first is kept."""
    parts = (value or "").split()
    if len(parts) < 3 or not parts[0].isdigit() or len(parts[0]) > 10:
        raise ParseError("Malformed SDP Crypto")
    method, _, info = parts[2].partition(":")
    if method != "inline" or not info:
        raise ParseError("Malformed SDP Crypto Key")
    keys = info.split(";")
    fields = keys[0].split("|")
    key = fields[0]
    lifetime = None
    mki = None
    for field in fields[1:]:
        if ":" in field:
            mki = field
        else:
            lifetime = field
    if len(fields) > 3 or not key or (len(keys) > 1 and mki is None):
        raise ParseError("Malformed SDP Crypto Key")  # several keys each need an MKI
    return Crypto(int(parts[0]), parts[1], key, lifetime, mki, parts[3:])


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

    def crypto(self):
        """The stream's a=crypto lines, as Crypto, in the offerer's order; malformed ones
        left out."""
        out = []
        for key, value in self.attributes:
            if key == "crypto":
                try:
                    out.append(parse_crypto(value))
                except ParseError:
                    continue
        return out

    @property
    def direction(self):
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return None

    def fmtp(self, number):
        """{parameter name (lower case): value} of payload type `number`'s a=fmtp."""
        prefix = "%d " % number
        for key, value in self.attributes:
            if key == "fmtp" and value and value.startswith(prefix):
                out = {}
                for part in value[len(prefix):].split(";"):
                    name, _, text = part.strip().partition("=")
                    if name:
                        out[name.lower()] = text.strip()
                return out
        return {}


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


class Video:
    """The H.264 stream a camera's encoder makes: its profile-level-id (six hex digits, from
    the encoder's sequence parameter set) and, when known, the sprop-parameter-sets (the
    base64 SPS and PPS) that let a receiver decode before the first in-band ones."""

    def __init__(self, profile_level_id, sprop=None):
        self.profile_level_id = profile_level_id
        self.sprop = sprop

    def fmtp(self, number):
        text = "a=fmtp:%d packetization-mode=1;profile-level-id=%s" % (
            number, self.profile_level_id)
        if self.sprop:
            text += ";sprop-parameter-sets=" + self.sprop
        return text


class Negotiated:
    """What an offer and its answer agreed for one stream (audio, or video with `kind`).
    With SRTP: `crypto`, the peer's a=crypto (its suite and the key of what it sends), and
    `local_key`, ours (base64: the key of what we send); both None in the clear."""

    kind = "audio"

    def __init__(self, codec, payload_type, event_type, address, port, direction, ptime,
                 index, crypto=None, local_key=None):
        self.codec = codec  # PCMU, PCMA (audio) or H264 (video)
        self.payload_type = payload_type
        self.event_type = event_type  # telephone-event's payload type, or None
        self.address = address  # where the peer receives RTP
        self.port = port
        self.direction = direction  # ours: do we send, receive, both, neither
        self.ptime = ptime
        self.index = index  # the m= line's position
        self.crypto = crypto
        self.local_key = local_key

    @property
    def suite(self):
        """The SRTP crypto suite agreed, or None in the clear."""
        return self.crypto.suite if self.crypto is not None else None

    @property
    def sending(self):
        return self.direction in (SENDRECV, SENDONLY)

    @property
    def receiving(self):
        return self.direction in (SENDRECV, RECVONLY)

    def __repr__(self):
        return "Negotiated(%s %s/%d, events %s, %s:%d, %s%s)" % (
            self.kind, self.codec, self.payload_type, self.event_type, self.address,
            self.port, self.direction, ", " + self.suite if self.crypto else "")


class VideoNegotiated(Negotiated):
    """What an offer and its answer agreed for the video stream: `feedback`, the RTCP
    feedback the peer said it sends or takes (a=rtcp-fb: "nack pli", "ccm fir")."""

    kind = "video"

    def __init__(self, payload_type, address, port, direction, index, feedback=()):
        super().__init__(H264, payload_type, None, address, port, direction, 0, index)
        self.feedback = tuple(feedback)


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


def offer(address, port, session_id, version=1, direction=SENDRECV, codecs=CODECS,
          video=None, crypto=None, layout=None):
    """Our offer: an audio stream at `address`:`port` (none when `port` is None) with
    `codecs` and telephone-event, on RTP/SAVP keyed with `crypto` = (suite, our base64
    key) when given, then, with `video` = (port, Video) or (port, Video, direction),
    H.264: sendonly by default (a camera's), recvonly to watch one; inactive when the audio
    is.

    A new offer in a session keeps the m= lines of the one before, in their order (RFC 3264
    section 8): `layout` lists them, (kind, proto, formats text, "audio", "video" or None
    for whose stream of ours it carried). Ours go where they were, or in a refused line of
    their kind; any other line is written refused, with port 0; a stream of ours without a
    place goes last."""
    lines = _head(address, session_id, version)
    audio = []
    if port is not None:
        formats = [STATIC_TYPES[codec] for codec in codecs] + [EVENT_TYPE]
        audio.append("m=audio %d %s %s" % (port, "RTP/SAVP" if crypto else "RTP/AVP",
                                           " ".join(str(n) for n in formats)))
        for codec in codecs:
            audio.append("a=rtpmap:%d %s/8000" % (STATIC_TYPES[codec], codec))
        audio.append("a=rtpmap:%d %s/8000" % (EVENT_TYPE, TELEPHONE_EVENT))
        audio.append("a=fmtp:%d 0-16" % EVENT_TYPE)
        audio.append("a=ptime:%d" % PTIME)
        audio.append("a=" + direction)
        if crypto:
            audio.append("a=crypto:%s" % Crypto(CRYPTO_TAG, crypto[0], crypto[1]))
    pictures = []
    if video is not None:
        video_direction = video[2] if len(video) > 2 else SENDONLY
        if direction == INACTIVE:
            video_direction = INACTIVE
        _video_lines(pictures, video[0], "RTP/AVP", VIDEO_TYPE, video[1], FEEDBACK,
                     video_direction)
    layout = layout or ()
    audio_at = _place(layout, "audio")
    video_at = _place(layout, "video")
    for index, entry in enumerate(layout):
        if index == audio_at and audio:
            lines.extend(audio)
            audio = []
        elif index == video_at and pictures:
            lines.extend(pictures)
            pictures = []
        else:
            lines.append("m=%s 0 %s %s" % entry[:3])
    lines.extend(audio)
    lines.extend(pictures)
    return _text(lines)


def _place(layout, kind):
    """Where in `layout` our `kind` of stream goes: where it was, else a line of that kind
    no stream of ours holds (refused: RFC 3264 section 8.1 lets a new stream take it)."""
    free = None
    for index, entry in enumerate(layout):
        if entry[3] == kind:
            return index
        if free is None and entry[0] == kind and entry[3] is None:
            free = index
    return free


def layout_of(session, audio=None, video=None):
    """The m= lines of `session`, an offer or answer just exchanged, as `offer` takes them
    for the next: `audio` and `video` are what it agreed for ours (Negotiated,
    VideoNegotiated or None), which name their lines by index."""
    out = []
    for index, media in enumerate(session.media):
        ours = "audio" if audio is not None and audio.index == index else \
            "video" if video is not None and video.index == index else None
        out.append((media.kind, media.proto, " ".join(media.formats), ours))
    return out


def _video_lines(lines, port, proto, number, video, feedback, direction):
    lines.append("m=video %d %s %d" % (port, proto, number))
    lines.append("a=rtpmap:%d %s/%d" % (number, H264, VIDEO_CLOCK))
    lines.append(video.fmtp(number))
    for kind in feedback:
        lines.append("a=rtcp-fb:%d %s" % (number, kind))
    lines.append("a=" + direction)


def answer(offered, address, port, session_id, version=1, video=None, srtp_key=None):
    """Answer the Session `offered` with our audio at `address`:`port` (none when `port`
    is None), secured with our `srtp_key` (base64) when the offer asks for SRTP and that
    is given, and, with `video` = (port, Video), our H.264: (SDP text, audio Negotiated or
    None, video Negotiated or None), or None when no stream can be accepted."""
    if srtp_key is not None and not _key_text(srtp_key):
        raise ValueError("srtp_key must be the base64 of 30 bytes")
    audio = None
    chosen_video = None
    lines = _head(address, session_id, version)
    for index, media in enumerate(offered.media):
        live = media.port != 0 and offered.address_of(media) is not None
        if live and port is not None and audio is None and media.kind == "audio" \
                and media.proto in PLAIN + SECURE:
            crypto = _pick_crypto(media) if srtp_key is not None else None
            pick = _pick(media)
            if pick is not None and (crypto is not None or media.proto in PLAIN):
                audio = _answer_audio(lines, media, pick, offered, port, index, crypto,
                                      srtp_key)
                continue
        if live and video is not None and chosen_video is None and media.kind == "video" \
                and media.proto in PLAIN:
            number = _pick_video(media)
            if number is not None:
                direction = _sending_only(_REVERSE[offered.direction_of(media)])
                feedback = _feedback(media, number)
                _video_lines(lines, video[0], media.proto, number, video[1], feedback,
                             direction)
                chosen_video = VideoNegotiated(number, offered.address_of(media), media.port,
                                               direction, index, feedback)
                continue
        lines.append("m=%s 0 %s %s" % (media.kind, media.proto, " ".join(media.formats)))
    if audio is None and chosen_video is None:
        return None
    return _text(lines), audio, chosen_video


def _answer_audio(lines, media, pick, offered, port, index, crypto, srtp_key):
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
    if crypto is not None:
        lines.append("a=crypto:%s" % Crypto(crypto.tag, crypto.suite, srtp_key))
    return Negotiated(codec, number, event, offered.address_of(media), media.port,
                      direction, _ptime(media), index, crypto,
                      srtp_key if crypto is not None else None)


def accepted(answered, kind="audio", crypto=None):
    """What the answer `answered` (a Session) to our offer agreed for its first `kind`
    stream ("audio" or "video"), or None when it refused that stream (port 0, or no codec
    of ours). With `crypto` = (suite, our base64 key), the audio we offered on RTP/SAVP:
    the answer must key it too (RFC 4568: its a=crypto with our tag and suite)."""
    for index, media in enumerate(answered.media):
        if media.kind != kind:
            continue
        address = answered.address_of(media)
        if media.port == 0 or address is None:
            return None
        direction = _REVERSE[answered.direction_of(media)]
        if kind == "video":
            number = _pick_video(media)
            if number is None:
                return None
            return VideoNegotiated(number, address, media.port, direction, index,
                                   _feedback(media, number))
        pick = _pick(media)
        if pick is None:
            return None
        theirs = None
        if crypto:
            theirs = _pick_crypto(media, CRYPTO_TAG, crypto[0])
            if theirs is None:
                return None
        codec, number, event = pick
        return Negotiated(codec, number, event, address, media.port, direction,
                          _ptime(media), index, theirs, crypto[1] if crypto else None)
    return None


# -- inside ------------------------------------------------------------------------------


def _formats(media):
    """(payload type, encoding name, clock rate) of each of the stream's formats that has
    a name, in the sender's order; none when its rtpmap is malformed."""
    try:
        known = media.rtpmap()
    except ParseError:
        return []
    out = []
    for text in media.formats:
        try:
            number = int(text)
        except ValueError:
            continue
        name, clock = known.get(number, (None, None))
        if name is not None:
            out.append((number, name, clock))
    return out


def _pick(media):
    """(codec, its payload type, telephone-event's payload type or None) for the first
    of the stream's formats that we speak, or None."""
    codec = None
    event = None
    for number, name, clock in _formats(media):
        upper = name.upper()
        if codec is None and upper in CODECS and clock == 8000:
            codec = (upper, number)
        elif event is None and name.lower() == TELEPHONE_EVENT and clock == 8000:
            event = number
    if codec is None:
        return None
    return codec[0], codec[1], event


def _pick_crypto(media, tag=None, suite=None):
    """The stream's first a=crypto line we can key SRTP with (of `tag` and `suite` when
    given: the answer to our own), or None."""
    for crypto in media.crypto():
        if crypto.usable() and (tag is None or crypto.tag == tag) \
                and (suite is None or crypto.suite == suite):
            return crypto
    return None


def _key_text(text):
    """Whether `text` is the base64 of a 30-byte master key and salt: 40 characters of
    the alphabet, no padding (30 bytes need none)."""
    if len(text) != KEY_CHARACTERS:
        return False
    for character in text:
        if character not in _BASE64:
            return False
    return True


def _pick_video(media):
    """The payload type of the stream's H.264/90000 format in packetization mode 1 (the
    mode that fragments frames larger than a packet; mode 0 cannot carry them) whose profile
    suits what we send, or None. We send Constrained Baseline, which every decoder of the
    Baseline, Main, Extended and High profiles decodes (RFC 6184 section 8.1): a format of
    that profile is taken first, then the first of the others (RFC 6184 section 8.2.2: an
    answer picks among the offered ones), never one of an intra-only profile (it cannot
    decode P frames)."""
    compatible = None
    for number, name, clock in _formats(media):
        if name.upper() != H264 or clock != VIDEO_CLOCK:
            continue
        fmtp = media.fmtp(number)
        if fmtp.get("packetization-mode") != "1":
            continue
        fit = _profile_fit(fmtp.get("profile-level-id", "42000a"))
        if fit == 2:
            return number
        if fit == 1 and compatible is None:
            compatible = number
    return compatible


# profile_idc of the profiles whose decoders decode Constrained Baseline; with its
# constraint_set3 flag, 110, 122 and 244 are intra-only, and 44 always is.
_DECODERS = (66, 77, 83, 86, 88, 100, 110, 118, 122, 128, 244)
_INTRA_WITH_SET3 = (110, 122, 244)


def _profile_fit(text):
    """2: profile-level-id `text` names Constrained Baseline (Baseline with constraint_set1,
    or Main or Extended with the flags that make them it); 1: a profile whose decoders
    decode it; 0: one that cannot (intra-only), or a value that is not three hex bytes
    (then it is read as Baseline, as when it is missing: 1)."""
    if len(text) != 6:
        return 1
    try:
        profile = int(text[:2], 16)
        flags = int(text[2:4], 16)
    except ValueError:
        return 1
    set0, set1, set3 = flags & 0x80, flags & 0x40, flags & 0x10
    if (profile == 66 and set1) or (profile == 77 and set0) or (profile == 88 and set0 and set1):
        return 2
    if profile == 44 or (profile in _INTRA_WITH_SET3 and set3):
        return 0
    return 1 if profile in _DECODERS else 0


def _feedback(media, number):
    """The RTCP feedback of ours (FEEDBACK) that the stream lists for `number` or for
    every format ("*")."""
    listed = []
    for key, value in media.attributes:
        if key != "rtcp-fb" or not value:
            continue
        target, _, kind = value.partition(" ")
        kind = " ".join(kind.split()).lower()
        if target in ("*", str(number)) and kind in FEEDBACK and kind not in listed:
            listed.append(kind)
    return listed


def _sending_only(direction):
    """A camera sends and never receives video: the direction left of `direction`."""
    return SENDONLY if direction in (SENDRECV, SENDONLY) else INACTIVE


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
