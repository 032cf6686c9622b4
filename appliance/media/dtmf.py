"""DTMF digits: RFC 4733 telephone-events in RTP, SIP INFO bodies, and a PIN entered with them.

A caller at the door keypad or on a phone presses digits; they arrive as telephone-event
packets on the media stream (`DtmfReceiver`) or, from some PBXs, as SIP INFO requests
(`parse_info`). `PinCollector` turns the digits into a yes or no for a code.

Sending one digit: `event_payloads` gives the payloads; each goes out through
`RtpSender.event_packet` with the timestamp the media stream had when the digit began, one
per ptime, and the media timestamp moves on by the digit's duration (`RtpSender.skip`).
"""

import hmac

EVENTS = "0123456789*#ABCD"  # RFC 4733 section 3.2: event codes 0-15
VOLUME = 10  # -10 dBm0, the power of a digit sent from a keypad
END_PACKETS = 3  # RFC 4733 section 2.5.1.4: the final packet is sent three times
_MAX_DURATION = 0xFFFF  # the 16-bit duration field, in timestamp units
_RECENT_EVENTS = 16
_PIN_DIGITS = "0123456789ABCD"  # * and # steer the entry, so no code contains them


def parse_event(payload):
    """(event code, end bit, volume, duration) of a telephone-event payload (RFC 4733
    section 2.3); ValueError when it is shorter than the 4 bytes of one event."""
    if len(payload) < 4:
        raise ValueError("telephone-event payload too short")
    return payload[0], bool(payload[1] & 0x80), payload[1] & 0x3F, (payload[2] << 8) | payload[3]


def _checked_digit(digit):
    """`digit` in upper case; ValueError when the caller passes something else."""
    upper = digit.upper()
    if len(upper) != 1 or upper not in EVENTS:
        raise ValueError("not a DTMF digit: %r" % (digit,))
    return upper


def _event_payload(event, end, duration):
    return bytes((event, (0x80 if end else 0) | VOLUME, duration >> 8, duration & 0xFF))


def event_payloads(digit, duration_ms=100, clock_rate=8000, ptime=20):
    """The telephone-event payloads that send one digit, each with its marker bit, to go
    out one per ptime: the first with the marker, then updates whose duration grows by a
    ptime, then the final duration with the end bit, three times."""
    event = EVENTS.index(_checked_digit(digit))
    total = duration_ms * clock_rate // 1000
    step = ptime * clock_rate // 1000
    if not 0 < step <= total <= _MAX_DURATION:
        raise ValueError("a digit lasts from one ptime to %d timestamp units" % _MAX_DURATION)
    payloads = [(_event_payload(event, False, duration), duration == step)
                for duration in range(step, total, step)]
    final = _event_payload(event, True, total)
    payloads += [(final, not payloads and index == 0) for index in range(END_PACKETS)]
    return payloads


class DtmfReceiver:
    """Digits from the telephone-event packets of one stream, each reported once.

    An event is known by its RTP timestamp, which all of its packets share: the first
    packet seen with a new one reports the digit (it may be an update or an end packet, if
    the first were lost), the rest are repeats. Recent events are remembered, so a repeat of
    an earlier digit that arrives out of order is no new digit either. A different code at
    the same timestamp is taken for a new digit, from a sender that does not move its
    timestamp on between events.
    """

    def __init__(self):
        self._recent = []

    def feed(self, timestamp, payload):
        """The digit this packet begins, or None. A payload too short to read and event
        codes above 15 (tones other than DTMF) are ignored: they come from the peer."""
        try:
            event = parse_event(payload)[0]
        except ValueError:
            return None
        if event >= len(EVENTS) or (timestamp, event) in self._recent:
            return None
        self._recent.append((timestamp, event))
        if len(self._recent) > _RECENT_EVENTS:
            del self._recent[0]
        return EVENTS[event]


def _digit(text):
    """The DTMF digit `text` names, or None: one of EVENTS, or an event code 0-15, which
    some phones send for * and # (10 and 11)."""
    text = text.strip().upper()
    if len(text) == 1 and text in EVENTS:
        return text
    if text.isdigit() and int(text) < len(EVENTS):
        return EVENTS[int(text)]
    return None


def parse_info(content_type, body):
    """The digit in the body of a SIP INFO, or None: `application/dtmf-relay` ("Signal=5",
    keys in any case) or `application/dtmf` (the digit alone). Other types, or none, are
    not DTMF."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if media_type == "application/dtmf":
        return _digit(body)
    if media_type != "application/dtmf-relay":
        return None
    for line in body.splitlines():
        key, equals, value = line.partition("=")
        if equals and key.strip().lower() == "signal":
            return _digit(value)
    return None


class PinCollector:
    """A code entered on a keypad: digits, then # to check them; * starts over.

    `feed(digit)` returns None while digits are entered, then "accepted" or "refused" at #.
    The `attempts`-th refusal in a row returns "locked", as does everything after it. A #
    with nothing before it is refused but not counted: it guesses nothing. An entry longer
    than MAX_DIGITS is refused at #.
    """

    MAX_DIGITS = 32

    def __init__(self, code, attempts=3):
        code = str(code).upper()
        if not code or len(code) > self.MAX_DIGITS or code.strip(_PIN_DIGITS):
            raise ValueError("a PIN is 1 to %d digits 0-9 or A-D" % self.MAX_DIGITS)
        self._code = code.encode("ascii")
        self.attempts = attempts
        self.failures = 0
        self.locked = False
        self._entry = []
        self._overflow = False

    def feed(self, digit):
        if self.locked:
            return "locked"
        digit = _checked_digit(digit)
        if digit == "*":
            self._clear()
            return None
        if digit != "#":
            if len(self._entry) < self.MAX_DIGITS:
                self._entry.append(digit)
            else:
                self._overflow = True
            return None
        entry = "".join(self._entry).encode("ascii")
        overflow = self._overflow
        self._clear()
        if not entry:
            return "refused"
        # Compared in constant time, so the time to answer tells nothing of the code.
        if hmac.compare_digest(entry, self._code) and not overflow:
            self.failures = 0
            return "accepted"
        self.failures += 1
        if self.failures >= self.attempts:
            self.locked = True
            return "locked"
        return "refused"

    def _clear(self):
        self._entry = []
        self._overflow = False
