"""RTP (RFC 3550): the packet codec, the sending side's sequence and clock, and the receiving
side's statistics for RTCP reports.

`parse_rtp(data)` reads one datagram and `RtpPacket.to_bytes()` writes one. `RtpSender`
numbers and stamps outgoing packets; `RtpStats` follows one incoming source as RFC 3550
appendix A.1 (sequence validity), A.3 (loss) and A.8 (interarrival jitter) describe, and
says what the next RTCP report block about it should carry. Nothing here opens a socket or
reads a clock: times come in as arguments.
"""

import os
import struct

VERSION = 2
HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")

RTP_SEQ_MOD = 1 << 16
_TIMESTAMP_MOD = 1 << 32

# RFC 3550 appendix A.1: a source is valid after this many packets in sequence; a jump
# ahead of fewer than MAX_DROPOUT numbers is loss, one back of fewer than MAX_MISORDER is a
# late or repeated packet, and anything else is taken for a restarted sender once a second
# packet confirms it.
MIN_SEQUENTIAL = 2
MAX_DROPOUT = 3000
MAX_MISORDER = 100

# The cumulative number of packets lost is a signed 24-bit field in a report block.
_LOST_MAX = 0x7FFFFF
_LOST_MIN = -0x800000


class RtpPacket:
    """One RTP packet. `payload` is the media alone: CSRCs, the header extension and padding
    are gone after `parse_rtp`, and `to_bytes()` writes neither extension nor padding."""

    __slots__ = ("marker", "payload_type", "sequence", "timestamp", "ssrc", "payload", "csrcs")

    def __init__(self, payload_type, sequence, timestamp, ssrc, payload=b"", marker=False,
                 csrcs=()):
        self.marker = marker
        self.payload_type = payload_type
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.csrcs = tuple(csrcs)

    def to_bytes(self):
        first = (VERSION << 6) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        header = _HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)
        csrcs = struct.pack("!%dI" % len(self.csrcs), *self.csrcs)
        return header + csrcs + bytes(self.payload)

    __bytes__ = to_bytes

    def __repr__(self):
        return "RtpPacket(pt=%d, seq=%d, ts=%d, ssrc=0x%08x, %d bytes%s)" % (
            self.payload_type, self.sequence, self.timestamp, self.ssrc, len(self.payload),
            ", marker" if self.marker else "")


def parse_rtp(data):
    """The RtpPacket in one datagram; ValueError with a short reason when it is not one."""
    if len(data) < HEADER_SIZE:
        raise ValueError("RTP packet too short")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != VERSION:
        raise ValueError("RTP version is not 2")
    start = HEADER_SIZE + 4 * (first & 0x0F)
    if start > len(data):
        raise ValueError("RTP CSRC list overruns the packet")
    csrcs = struct.unpack_from("!%dI" % (first & 0x0F), data, HEADER_SIZE)
    if first & 0x10:
        if start + 4 > len(data):
            raise ValueError("RTP header extension overruns the packet")
        (words,) = struct.unpack_from("!H", data, start + 2)
        start += 4 + 4 * words
        if start > len(data):
            raise ValueError("RTP header extension overruns the packet")
    end = len(data)
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or padding > end - start:
            raise ValueError("RTP padding is bad")
        end -= padding
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, bytes(data[start:end]),
                     bool(second & 0x80), csrcs)


def is_rtcp(data):
    """Whether a datagram is RTCP rather than RTP, where both share a port (RFC 5761
    section 4: RTCP packet types 192-223 sit where RTP would have a marker bit and payload
    types 64-95, which are never assigned)."""
    return len(data) >= 2 and data[0] >> 6 == VERSION and 192 <= data[1] <= 223


def _random_int(random, size):
    return int.from_bytes(random(size), "big")


class RtpSender:
    """The sending side of one RTP stream: its SSRC, sequence numbers and timestamps.

    The initial sequence number and timestamp are random (RFC 3550 section 5.1), drawn from
    `random(n) -> n bytes`, `os.urandom` unless a test passes its own. `packets` and
    `octets` are the counts an RTCP sender report carries; `last_timestamp` is the
    timestamp of the last media packet, and `timestamp_after` carries it forward to the
    moment a report is sent.
    """

    def __init__(self, payload_type, ssrc=None, clock_rate=8000, random=None):
        random = random or os.urandom
        self.payload_type = payload_type
        self.ssrc = _random_int(random, 4) if ssrc is None else ssrc
        self.clock_rate = clock_rate
        self.sequence = _random_int(random, 2)
        self.timestamp = _random_int(random, 4)
        self.last_timestamp = self.timestamp
        self.packets = 0
        self.octets = 0

    def packet(self, payload, samples, marker=False):
        """The next media packet, carrying `samples` samples' worth of `payload`.

        Set `marker` on the first packet of a talkspurt, after `skip` (RFC 3551 section 4.1).
        """
        data = self._packet(self.payload_type, payload, marker, self.timestamp)
        self.last_timestamp = self.timestamp
        self.timestamp = (self.timestamp + samples) % _TIMESTAMP_MOD
        return data

    def packet_at(self, payload, timestamp, marker=False):
        """A media packet at a timestamp the caller keeps: video, whose packets all carry
        the capture time of their picture, `marker` on a picture's last one (RFC 6184)."""
        self.last_timestamp = timestamp
        return self._packet(self.payload_type, payload, marker, timestamp)

    def timestamp_after(self, elapsed_ms):
        """The timestamp `elapsed_ms` milliseconds after the last media packet's: what a
        sender report sent then carries beside its NTP time (RFC 3550 section 6.4.1)."""
        return (self.last_timestamp + elapsed_ms * self.clock_rate // 1000) % _TIMESTAMP_MOD

    def skip(self, samples):
        """Let `samples` samples pass unsent: silence suppressed, a call on hold, or the
        time a telephone-event took. The next packet's timestamp shows the gap."""
        self.timestamp = (self.timestamp + samples) % _TIMESTAMP_MOD

    def event_packet(self, payload_type, payload, marker, timestamp):
        """A packet of another payload type at a timestamp the caller keeps: an RFC 4733
        telephone-event, whose packets all carry the timestamp of the event's start. It
        takes the next sequence number but leaves the media timestamp alone."""
        return self._packet(payload_type, payload, marker, timestamp)

    def _packet(self, payload_type, payload, marker, timestamp):
        header = _HEADER.pack(VERSION << 6, (0x80 if marker else 0) | payload_type,
                              self.sequence, timestamp, self.ssrc)
        self.sequence = (self.sequence + 1) % RTP_SEQ_MOD
        self.packets += 1
        self.octets += len(payload)
        return header + bytes(payload)


class RtpStats:
    """What a receiver knows about one source: RFC 3550 appendix A.1, A.3 and A.8.

    `update(packet, arrival)` for every RTP packet of the stream, `arrival` being the
    receive time in timestamp units (the caller scales its own clock by the clock rate;
    only differences matter). A packet from another SSRC means a new source: the
    statistics start over, with the new source on probation again.

    `report(now)` gives the fields of the next report block as a dict keyed like
    rtcp.ReportBlock's arguments, so `ReportBlock(**stats.report(now))` makes one; `now` is
    in the same units as `arrival`.
    """

    def __init__(self, clock_rate=8000):
        self.clock_rate = clock_rate
        self.ssrc = None
        self._restart(None)

    def _restart(self, ssrc):
        self.ssrc = ssrc
        self.probation = MIN_SEQUENTIAL
        self.received = 0
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self._expected_prior = 0
        self._received_prior = 0
        self._transit = None
        self._last_timestamp = None
        self._jitter = 0  # times 16, as in RFC 3550 appendix A.8
        self._last_sr = 0
        self._last_sr_arrival = None

    def _init_seq(self, sequence):
        self.base_seq = sequence
        self.max_seq = sequence
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0

    def update(self, packet, arrival):
        """Count one received packet. Returns whether it is valid: False while a new source
        is on probation and for a packet that jumps too far from the sequence."""
        if packet.ssrc != self.ssrc:
            self._restart(packet.ssrc)
            self._init_seq(packet.sequence)
            self.max_seq = (packet.sequence - 1) % RTP_SEQ_MOD
        if not self._update_seq(packet.sequence):
            return False
        self._update_jitter(packet.timestamp, arrival)
        return True

    def _update_seq(self, sequence):
        delta = (sequence - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            if sequence == (self.max_seq + 1) % RTP_SEQ_MOD:
                self.probation -= 1
                self.max_seq = sequence
                if self.probation == 0:
                    self._init_seq(sequence)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = sequence
            return False
        if delta < MAX_DROPOUT:
            if sequence < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = sequence
        elif delta <= RTP_SEQ_MOD - MAX_MISORDER:
            if sequence != self.bad_seq:
                self.bad_seq = (sequence + 1) % RTP_SEQ_MOD
                return False
            # Two packets in sequence after a big jump: the sender restarted its numbering.
            self._init_seq(sequence)
            self._transit = None
        # else a duplicate or a packet out of order: counted, but the maximum stays.
        self.received += 1
        return True

    def _update_jitter(self, timestamp, arrival):
        # Packets that share a timestamp (the updates of one telephone-event) were not sent
        # at their timestamp's time, so their transit says nothing about the network.
        if timestamp == self._last_timestamp:
            return
        self._last_timestamp = timestamp
        transit = (arrival - timestamp) % _TIMESTAMP_MOD
        if self._transit is not None:
            difference = (transit - self._transit) % _TIMESTAMP_MOD
            if difference >= _TIMESTAMP_MOD >> 1:
                difference = _TIMESTAMP_MOD - difference
            self._jitter += difference - ((self._jitter + 8) >> 4)
        self._transit = transit

    def sender_report(self, ntp_middle, arrival):
        """Note an RTCP sender report from this source: the middle 32 bits of its NTP
        timestamp, and when it arrived (in `arrival`'s units), for the next report's LSR
        and DLSR (RFC 3550 section 6.4.1)."""
        self._last_sr = ntp_middle
        self._last_sr_arrival = arrival

    @property
    def extended_highest(self):
        """The highest sequence number received, with the count of wraparounds above it."""
        return self.cycles + self.max_seq

    @property
    def expected(self):
        return self.extended_highest - self.base_seq + 1

    @property
    def lost_since_start(self):
        """Packets expected less packets received: negative when duplicates arrived."""
        return self.expected - self.received

    @property
    def jitter(self):
        """The interarrival jitter estimate, in timestamp units."""
        return self._jitter >> 4

    def report(self, now):
        """The next report block's fields, or None before any valid packet: there is no
        source to report on. Resets the interval that `fraction_lost` covers."""
        if self.ssrc is None or self.received == 0:
            return None
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction_lost = 0
        else:
            fraction_lost = (lost_interval << 8) // expected_interval
        if self._last_sr_arrival is None:
            delay = 0
        else:
            # In units of 1/65536 second, the unit of the middle 32 bits of an NTP time.
            delay = (now - self._last_sr_arrival) * 65536 // self.clock_rate
        return {
            "ssrc": self.ssrc,
            "fraction_lost": fraction_lost,
            "cumulative_lost": max(_LOST_MIN, min(_LOST_MAX, self.lost_since_start)),
            "extended_highest": self.extended_highest % _TIMESTAMP_MOD,
            "jitter": self.jitter,
            "last_sr": self._last_sr,
            "delay_since_last_sr": max(0, delay) % _TIMESTAMP_MOD,
        }
