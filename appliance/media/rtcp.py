"""RTCP (RFC 3550 section 6): the compound packets a call's endpoints exchange every few
seconds, with the loss, jitter and round-trip time each side sees.

`build_sr`, `build_rr` and `build_bye` write compound packets; `parse_rtcp` reads one into
a list of packets, each with a `kind` ("SR", "RR", "SDES", "BYE", "PLI", "FIR" or "other").
PLI (RFC 4585 section 6.3.1) and FIR (RFC 5104 section 4.3.1) are how a video receiver asks
for a keyframe; `build_pli` and `build_fir` write them. Times are NTP times: float seconds
since 1900, as `ntp_from_unix` makes them.
"""

import struct
from collections import namedtuple

VERSION = 2

SR = 200
RR = 201
SDES = 202
BYE = 203
PSFB = 206  # payload-specific feedback (RFC 4585)
FMT_PLI = 1
FMT_FIR = 4

SDES_CNAME = 1

# Seconds from the NTP epoch (1900) to the Unix one (1970).
NTP_UNIX_OFFSET = 2208988800

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IIIIII")  # SSRC, NTP seconds and fraction, RTP ts, counts
_REPORT_BLOCK = struct.Struct("!IIIIII")
_MAX_COUNT = 31  # the 5-bit count field of the header
_LOST_MAX = 0x7FFFFF
_LOST_MIN = -0x800000

ReportBlock = namedtuple(
    "ReportBlock",
    ("ssrc", "fraction_lost", "cumulative_lost", "extended_highest", "jitter", "last_sr",
     "delay_since_last_sr"),
)
ReportBlock.__doc__ = """What a receiver reports about one source (RFC 3550 section 6.4.1).

`fraction_lost` is in 1/256ths since the previous report; `cumulative_lost` is signed
(duplicates can make it negative); `jitter` is in timestamp units; `last_sr` is the middle 32
bits of the NTP time of the source's last SR (0 when none came), and `delay_since_last_sr`
the time since it arrived, in 1/65536 seconds."""


def ntp_from_unix(unix_time):
    """The NTP time (seconds since 1900) of a Unix time (seconds since 1970)."""
    return unix_time + NTP_UNIX_OFFSET


def ntp_middle(ntp_time):
    """The middle 32 bits of an NTP time, in 1/65536 seconds: what LSR echoes."""
    return int(ntp_time * 65536) & 0xFFFFFFFF


def round_trip(report, arrival_ntp_middle):
    """The round-trip time in seconds that a report block about our stream shows, given when
    it arrived (the middle 32 bits of our NTP time then): RFC 3550 section 6.4.1's
    A - LSR - DLSR. None when the peer has had no SR from us to echo. A result below zero
    (the peer's DLSR a little generous on a fast network) is 0.0."""
    if report.last_sr == 0:
        return None
    elapsed = (arrival_ntp_middle - report.last_sr - report.delay_since_last_sr) & 0xFFFFFFFF
    if elapsed >= 0x80000000:
        return 0.0
    return elapsed / 65536


# Writing


def _packet(packet_type, count, body):
    """One RTCP packet: the header, then `body`, whose length is a multiple of 4."""
    return _HEADER.pack((VERSION << 6) | count, packet_type, len(body) // 4) + body


def _report_blocks(reports):
    if len(reports) > _MAX_COUNT:
        raise ValueError("at most %d report blocks fit one RTCP packet" % _MAX_COUNT)
    blocks = []
    for block in reports:
        lost = max(_LOST_MIN, min(_LOST_MAX, block.cumulative_lost)) & 0xFFFFFF
        blocks.append(_REPORT_BLOCK.pack(
            block.ssrc, (block.fraction_lost << 24) | lost, block.extended_highest & 0xFFFFFFFF,
            block.jitter & 0xFFFFFFFF, block.last_sr, block.delay_since_last_sr & 0xFFFFFFFF))
    return b"".join(blocks)


def _padded_text(text):
    """A length octet and the UTF-8 of `text`, as SDES items and BYE reasons carry text."""
    data = text.encode("utf-8")
    if len(data) > 255:
        raise ValueError("RTCP text is longer than 255 bytes")
    return bytes((len(data),)) + data


def _sdes_cname(ssrc, cname):
    chunk = struct.pack("!IB", ssrc, SDES_CNAME) + _padded_text(cname)
    # The item list ends with at least one zero octet, then zeros to a 32-bit boundary.
    chunk += bytes(4 - len(chunk) % 4)
    return _packet(SDES, 1, chunk)


def build_sr(ssrc, ntp_time, rtp_timestamp, packets, octets, reports=(), cname=None):
    """A compound packet: a sender report with `reports`, then SDES CNAME when given.

    `rtp_timestamp` is the media timestamp of the same instant as `ntp_time`; `packets` and
    `octets` count what was sent since the stream began (they wrap at 2**32)."""
    seconds = int(ntp_time)
    fraction = int((ntp_time - seconds) * 0x100000000)
    body = _SENDER_INFO.pack(ssrc, seconds & 0xFFFFFFFF, fraction, rtp_timestamp & 0xFFFFFFFF,
                             packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    data = _packet(SR, len(reports), body + _report_blocks(reports))
    if cname is not None:
        data += _sdes_cname(ssrc, cname)
    return data


def build_rr(ssrc, reports=(), cname=None):
    """A compound packet: a receiver report with `reports` (none when nothing was received
    yet), then SDES CNAME when given."""
    data = _packet(RR, len(reports), struct.pack("!I", ssrc) + _report_blocks(reports))
    if cname is not None:
        data += _sdes_cname(ssrc, cname)
    return data


def build_bye(ssrc, reason=None, reports=(), cname=None):
    """A compound packet that ends our stream: a receiver report first (RFC 3550 section 6.1
    wants one to open every compound packet, even one that says goodbye), SDES CNAME when
    given, then BYE with the reason, if any."""
    body = struct.pack("!I", ssrc)
    if reason is not None:
        body += _padded_text(reason)
        body += bytes(-len(body) % 4)
    return build_rr(ssrc, reports, cname) + _packet(BYE, 1, body)


# Reading


class SenderReport:
    """An SR. `ntp_middle` is the middle of `ntp_time` exactly as sent, for LSR."""

    kind = "SR"
    __slots__ = ("ssrc", "ntp_time", "ntp_middle", "rtp_timestamp", "packets", "octets",
                 "reports")

    def __init__(self, ssrc, ntp_time, ntp_middle, rtp_timestamp, packets, octets, reports):
        self.ssrc = ssrc
        self.ntp_time = ntp_time
        self.ntp_middle = ntp_middle
        self.rtp_timestamp = rtp_timestamp
        self.packets = packets
        self.octets = octets
        self.reports = reports


class ReceiverReport:
    kind = "RR"
    __slots__ = ("ssrc", "reports")

    def __init__(self, ssrc, reports):
        self.ssrc = ssrc
        self.reports = reports


class SourceDescription:
    """An SDES packet. `items` lists (ssrc, item type, text) in order; `cnames` maps each
    SSRC that has a CNAME to it."""

    kind = "SDES"
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    @property
    def cnames(self):
        return {ssrc: text for ssrc, item_type, text in self.items if item_type == SDES_CNAME}


class Bye:
    kind = "BYE"
    __slots__ = ("ssrcs", "reason")

    def __init__(self, ssrcs, reason):
        self.ssrcs = ssrcs
        self.reason = reason


class PictureLossIndication:
    """PLI: the receiver `ssrc` lost pictures of the stream `media_ssrc`."""

    kind = "PLI"
    __slots__ = ("ssrc", "media_ssrc")

    def __init__(self, ssrc, media_ssrc):
        self.ssrc = ssrc
        self.media_ssrc = media_ssrc

    def asks_for(self, ssrc):
        return self.media_ssrc == ssrc


class FullIntraRequest:
    """FIR: the receiver `ssrc` asks the streams in `entries` ([(ssrc, sequence number)])
    for a keyframe; a request sent again keeps its sequence number."""

    kind = "FIR"
    __slots__ = ("ssrc", "entries")

    def __init__(self, ssrc, entries):
        self.ssrc = ssrc
        self.entries = entries

    def asks_for(self, ssrc):
        return any(target == ssrc for target, _ in self.entries)


class OtherPacket:
    """An RTCP packet of a type not read here (APP, XR, feedback): kept whole."""

    kind = "other"
    __slots__ = ("packet_type", "count", "body")

    def __init__(self, packet_type, count, body):
        self.packet_type = packet_type
        self.count = count
        self.body = body


def _parse_report_blocks(body, offset, count):
    if offset + count * _REPORT_BLOCK.size > len(body):
        raise ValueError("RTCP report blocks overrun the packet")
    reports = []
    for _ in range(count):
        ssrc, lost_word, highest, jitter, last_sr, delay = _REPORT_BLOCK.unpack_from(body, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        reports.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, last_sr, delay))
        offset += _REPORT_BLOCK.size
    return reports


def _parse_sr(count, body):
    if len(body) < _SENDER_INFO.size:
        raise ValueError("RTCP SR too short")
    ssrc, seconds, fraction, rtp_timestamp, packets, octets = _SENDER_INFO.unpack_from(body)
    reports = _parse_report_blocks(body, _SENDER_INFO.size, count)
    middle = ((seconds & 0xFFFF) << 16) | (fraction >> 16)
    return SenderReport(ssrc, seconds + fraction / 0x100000000, middle, rtp_timestamp,
                        packets, octets, reports)


def _parse_rr(count, body):
    if len(body) < 4:
        raise ValueError("RTCP RR too short")
    (ssrc,) = struct.unpack_from("!I", body)
    return ReceiverReport(ssrc, _parse_report_blocks(body, 4, count))


def _parse_sdes(count, body):
    items = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise ValueError("RTCP SDES chunk overruns the packet")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        while True:
            if offset >= len(body):
                raise ValueError("RTCP SDES items overrun the packet")
            item_type = body[offset]
            if item_type == 0:
                # The end of the list, then zeros to the next 32-bit boundary.
                offset += 4 - offset % 4
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise ValueError("RTCP SDES items overrun the packet")
            end = offset + 2 + body[offset + 1]
            items.append((ssrc, item_type, body[offset + 2 : end].decode("utf-8", "replace")))
            offset = end
    return SourceDescription(items)


def _parse_bye(count, body):
    if 4 * count > len(body):
        raise ValueError("RTCP BYE sources overrun the packet")
    ssrcs = list(struct.unpack_from("!%dI" % count, body))
    reason = None
    offset = 4 * count
    if offset < len(body):
        end = offset + 1 + body[offset]
        if end > len(body):
            raise ValueError("RTCP BYE reason overruns the packet")
        reason = body[offset + 1 : end].decode("utf-8", "replace")
    return Bye(ssrcs, reason)


def _parse_psfb(count, body):
    if len(body) < 8:
        raise ValueError("RTCP feedback too short")
    ssrc, media_ssrc = struct.unpack_from("!II", body)
    if count == FMT_PLI:
        return PictureLossIndication(ssrc, media_ssrc)
    if count == FMT_FIR:
        if (len(body) - 8) % 8:
            raise ValueError("RTCP FIR entries overrun the packet")
        entries = [(target, seq >> 24) for target, seq in
                   (struct.unpack_from("!II", body, offset) for offset in range(8, len(body), 8))]
        return FullIntraRequest(ssrc, entries)
    return OtherPacket(PSFB, count, body)


def build_pli(ssrc, media_ssrc):
    """A PLI from `ssrc` about the stream `media_ssrc`."""
    return _packet(PSFB, FMT_PLI, struct.pack("!II", ssrc, media_ssrc))


def build_fir(ssrc, media_ssrc, sequence):
    """A FIR from `ssrc` asking `media_ssrc` for a keyframe; `sequence` (0-255) goes up by
    one with each new request."""
    return _packet(PSFB, FMT_FIR, struct.pack("!IIII", ssrc, 0, media_ssrc,
                                              (sequence & 0xFF) << 24))


_PARSERS = {SR: _parse_sr, RR: _parse_rr, SDES: _parse_sdes, BYE: _parse_bye,
            PSFB: _parse_psfb}


def parse_rtcp(data):
    """The packets of one compound RTCP datagram, in order; ValueError when the lengths do
    not add up to the datagram, a version is not 2, or a packet overruns its length.

    A compound packet need not start with SR or RR here: reduced-size RTCP (RFC 5506)
    sends feedback alone, and whatever came is better read than dropped."""
    if not data:
        raise ValueError("RTCP packet is empty")
    packets = []
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            raise ValueError("RTCP header overruns the compound packet")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != VERSION:
            raise ValueError("RTCP version is not 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise ValueError("RTCP length overruns the compound packet")
        body_end = end
        if first & 0x20:
            if end != len(data):
                raise ValueError("RTCP padding before the last packet")
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - _HEADER.size:
                raise ValueError("RTCP padding is bad")
            body_end -= padding
        count = first & 0x1F
        body = bytes(data[offset + _HEADER.size : body_end])
        parser = _PARSERS.get(packet_type)
        packets.append(parser(count, body) if parser else OtherPacket(packet_type, count, body))
        offset = end
    return packets
