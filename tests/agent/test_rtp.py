"""RTP and RTCP: packets read and written byte for byte, the sender's numbering, the
receiver's loss and jitter, and the reports that carry them."""

import struct

import pytest

from appliance.media.rtcp import (
    ReportBlock,
    build_bye,
    build_fir,
    build_pli,
    build_rr,
    build_sr,
    ntp_from_unix,
    ntp_middle,
    parse_rtcp,
    round_trip,
)
from appliance.media.rtp import RtpPacket, RtpSender, RtpStats, is_rtcp, parse_rtp

SSRC = 0x11223344


def rtp_bytes(first=0x80, second=0x00, sequence=1, timestamp=160, ssrc=SSRC, rest=b""):
    return struct.pack("!BBHII", first, second, sequence, timestamp, ssrc) + rest


def counting_random(*chunks):
    """A `random` for RtpSender that hands out the given bytes in turn."""
    pending = list(chunks)

    def random(size):
        chunk = pending.pop(0)
        assert len(chunk) == size
        return chunk

    return random


# RTP packets


def test_parse_reads_the_header_fields():
    packet = parse_rtp(rtp_bytes(0x80, 0x80 | 8, 0xBEEF, 0xDEADBEEF, SSRC, b"\xd5" * 160))
    assert packet.marker is True
    assert packet.payload_type == 8
    assert packet.sequence == 0xBEEF
    assert packet.timestamp == 0xDEADBEEF
    assert packet.ssrc == SSRC
    assert packet.payload == b"\xd5" * 160
    assert packet.csrcs == ()


def test_csrcs_extension_and_padding_are_not_payload():
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 2) + b"\x10\xaa\x00\x00" + b"\x00" * 4
    padding = b"\x00\x00\x03"
    data = rtp_bytes(0x80 | 0x20 | 0x10 | 2, 0, rest=csrcs + extension + b"audio" + padding)
    packet = parse_rtp(data)
    assert packet.payload == b"audio"
    assert packet.csrcs == (1, 2)


def test_packet_written_is_the_packet_read():
    packet = RtpPacket(0, 65535, 0xFFFFFFFF, SSRC, b"\xff" * 160, marker=True, csrcs=(7,))
    data = packet.to_bytes()
    assert data[:12] == rtp_bytes(0x81, 0x80, 65535, 0xFFFFFFFF)
    assert bytes(packet) == data
    again = parse_rtp(data)
    assert (again.marker, again.payload_type, again.sequence, again.timestamp, again.ssrc,
            again.payload, again.csrcs) == (True, 0, 65535, 0xFFFFFFFF, SSRC, b"\xff" * 160, (7,))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x80\x00\x00\x01", "RTP packet too short"),
        (rtp_bytes(0x40), "RTP version is not 2"),
        (rtp_bytes(0x00), "RTP version is not 2"),
        (rtp_bytes(0x82, rest=b"\x00\x00\x00\x01"), "RTP CSRC list overruns the packet"),
        (rtp_bytes(0x90, rest=b"\xbe\xde"), "RTP header extension overruns the packet"),
        (rtp_bytes(0x90, rest=b"\xbe\xde\x00\x02\x00\x00\x00\x00"),
         "RTP header extension overruns the packet"),
        (rtp_bytes(0xA0, rest=b"abc\x00"), "RTP padding is bad"),
        (rtp_bytes(0xA0, rest=b"abc\x05"), "RTP padding is bad"),
    ],
)
def test_malformed_packets_are_refused_with_a_reason(data, reason):
    with pytest.raises(ValueError) as info:
        parse_rtp(data)
    assert str(info.value) == reason


def test_padding_may_take_the_whole_payload():
    assert parse_rtp(rtp_bytes(0xA0, rest=b"\x00\x00\x00\x04")).payload == b""


def test_rtcp_told_from_rtp_on_a_shared_port():
    assert is_rtcp(build_rr(SSRC))
    assert is_rtcp(build_sr(SSRC, 3900000000.0, 0, 0, 0))
    for payload_type in (0, 8, 101, 127):
        assert not is_rtcp(rtp_bytes(second=payload_type))
        assert not is_rtcp(rtp_bytes(second=0x80 | payload_type))
    assert not is_rtcp(b"\x80")
    assert not is_rtcp(b"\x40\xc9\x00\x01")


# The sender


def test_sender_numbers_packets_from_random_starting_points():
    sender = RtpSender(0, random=counting_random(b"\x00\x00\x00\x2a", b"\xff\xfe",
                                                 b"\xff\xff\xff\x00"))
    assert sender.ssrc == 42
    first = parse_rtp(sender.packet(b"\xff" * 160, 160, marker=True))
    second = parse_rtp(sender.packet(b"\xff" * 160, 160))
    third = parse_rtp(sender.packet(b"\xff" * 80, 80))
    assert [p.sequence for p in (first, second, third)] == [65534, 65535, 0]
    assert [p.timestamp for p in (first, second, third)] == [0xFFFFFF00, 0xFFFFFFA0, 0x40]
    assert [p.marker for p in (first, second, third)] == [True, False, False]
    assert {p.ssrc for p in (first, second, third)} == {42}
    assert (sender.packets, sender.octets) == (3, 400)
    assert sender.last_timestamp == 0x40


def test_sender_ssrc_given_and_draws_differ():
    assert RtpSender(8, ssrc=SSRC).ssrc == SSRC
    assert parse_rtp(RtpSender(8, ssrc=SSRC).packet(b"", 160)).payload_type == 8
    draws = {(s.ssrc, s.sequence, s.timestamp) for s in (RtpSender(0) for _ in range(4))}
    assert len(draws) == 4


def test_skipped_time_shows_in_the_next_timestamp():
    sender = RtpSender(0, ssrc=SSRC, random=counting_random(b"\x00\x10", b"\x00\x00\x10\x00"))
    sender.packet(b"\xff" * 160, 160)
    sender.skip(8000)
    after = parse_rtp(sender.packet(b"\xff" * 160, 160, marker=True))
    assert after.timestamp == 0x1000 + 160 + 8000
    assert after.sequence == 0x11
    assert sender.timestamp_after(20) == after.timestamp + 160


def test_event_packets_keep_their_timestamp_and_take_sequence_numbers():
    sender = RtpSender(0, ssrc=SSRC, random=counting_random(b"\x00\x01", b"\x00\x00\x03\x20"))
    sender.packet(b"\xff" * 160, 160)
    start = sender.timestamp
    events = [parse_rtp(sender.event_packet(101, b"\x05\x0a\x00\xa0", i == 0, start))
              for i in range(3)]
    assert [e.sequence for e in events] == [2, 3, 4]
    assert {e.timestamp for e in events} == {start}
    assert [e.marker for e in events] == [True, False, False]
    assert {e.payload_type for e in events} == {101}
    assert sender.timestamp == start
    assert (sender.packets, sender.octets) == (4, 172)


# The receiver's statistics


def packet(sequence, timestamp=None, ssrc=SSRC):
    if timestamp is None:
        timestamp = sequence * 160
    return RtpPacket(0, sequence % 65536, timestamp % (1 << 32), ssrc, b"\xff" * 160)


def feed(stats, sequences, delays=None):
    """Packets sent every 20 ms (160 timestamp units), arriving after `delays` units."""
    results = []
    for index, sequence in enumerate(sequences):
        delay = delays[index] if delays else 400
        results.append(stats.update(packet(sequence), sequence * 160 + delay))
    return results


def test_a_new_source_is_valid_after_two_packets_in_sequence():
    stats = RtpStats()
    assert stats.report(0) is None
    assert feed(stats, [100, 101, 102]) == [False, True, True]
    assert stats.received == 2
    report = stats.report(0)
    assert report["ssrc"] == SSRC
    assert (report["fraction_lost"], report["cumulative_lost"]) == (0, 0)
    assert report["extended_highest"] == 102


def test_probation_starts_over_when_the_sequence_breaks():
    stats = RtpStats()
    assert feed(stats, [10, 20, 21, 22]) == [False, False, True, True]
    assert stats.lost_since_start == 0


def test_lost_packets_are_counted_per_interval_and_in_total():
    stats = RtpStats()
    feed(stats, [s for s in range(1000, 1101) if s % 10 != 5])  # 10 of 100 missing
    report = stats.report(0)
    assert report["cumulative_lost"] == 10
    assert report["fraction_lost"] == 10 * 256 // 100
    feed(stats, range(1101, 1201))
    report = stats.report(0)
    assert (report["fraction_lost"], report["cumulative_lost"]) == (0, 10)
    assert stats.received == 190


def test_sequence_wraparound_counts_cycles():
    stats = RtpStats()
    feed(stats, range(65530, 65550))
    assert stats.extended_highest == 65536 + 13
    assert stats.report(0)["extended_highest"] == 65536 + 13
    assert stats.lost_since_start == 0


def test_late_and_repeated_packets_do_not_move_the_highest():
    stats = RtpStats()
    feed(stats, [1, 2, 3, 5, 6, 4, 6])
    assert stats.extended_highest == 6
    assert stats.received == 6  # 2..6, 4 late, and 6 again
    assert stats.lost_since_start == -1  # the duplicate


def test_a_big_jump_is_a_restart_once_a_second_packet_confirms_it():
    stats = RtpStats()
    feed(stats, range(1, 50))
    # The restarted sender's timestamps start over too, which is no jitter.
    assert stats.update(packet(20000, timestamp=0), 8000) is False
    assert stats.extended_highest == 49
    assert stats.update(packet(20001, timestamp=160), 8160) is True
    assert stats.extended_highest == 20001
    assert stats.update(packet(20002, timestamp=320), 8320) is True
    assert stats.lost_since_start == 0
    assert stats.jitter == 0


def test_a_new_ssrc_starts_the_statistics_over():
    stats = RtpStats()
    feed(stats, range(1, 50))
    assert stats.update(packet(7, ssrc=99), 0) is False
    assert stats.update(packet(8, ssrc=99), 160) is True
    assert stats.ssrc == 99
    assert (stats.received, stats.extended_highest) == (1, 8)


def test_steady_arrival_has_no_jitter():
    stats = RtpStats()
    feed(stats, range(100), [400] * 100)
    assert stats.jitter == 0


def test_jitter_converges_on_the_mean_transit_difference():
    # Every other packet 20 ms (160 units) late: each transit differs by 160 from the last.
    stats = RtpStats()
    feed(stats, range(300), [400 + 160 * (n % 2) for n in range(300)])
    assert 155 <= stats.jitter <= 160
    assert stats.report(0)["jitter"] == stats.jitter


def test_event_updates_sharing_a_timestamp_are_not_jitter():
    stats = RtpStats()
    feed(stats, range(50))
    for n in range(50, 60):  # ten updates of one telephone-event, started at packet 50
        stats.update(packet(n, timestamp=50 * 160), n * 160 + 400)
    assert stats.jitter == 0


def test_report_echoes_the_last_sender_report_and_its_age():
    stats = RtpStats()
    feed(stats, range(10))
    assert (stats.report(0)["last_sr"], stats.report(0)["delay_since_last_sr"]) == (0, 0)
    stats.sender_report(0x12345678, 8000)
    report = stats.report(8000 + 4000)  # half a second later
    assert report["last_sr"] == 0x12345678
    assert report["delay_since_last_sr"] == 32768


def test_report_makes_a_report_block():
    stats = RtpStats()
    feed(stats, [s for s in range(1, 40) if s != 20])
    block = ReportBlock(**stats.report(0))
    (rr,) = parse_rtcp(build_rr(0xCAFE, [block]))
    assert rr.reports == [block]
    assert block.cumulative_lost == 1


# RTCP


def test_sender_report_round_trip_with_blocks_and_cname():
    blocks = [
        ReportBlock(0xAAAA, 25, 1234, 0x1FFFF, 80, 0xBEEF0000, 65536),
        ReportBlock(0xBBBB, 0, -3, 7, 0, 0, 0),
    ]
    ntp = ntp_from_unix(1700000000.25)
    data = build_sr(SSRC, ntp, 0xFFFFFFF0, 500, 80000, blocks, cname="porch@home.arpa")
    sr, sdes = parse_rtcp(data)
    assert sr.kind == "SR"
    assert (sr.ssrc, sr.rtp_timestamp, sr.packets, sr.octets) == (SSRC, 0xFFFFFFF0, 500, 80000)
    assert sr.ntp_time == ntp
    assert sr.ntp_middle == ntp_middle(ntp)
    assert sr.reports == blocks
    assert sdes.kind == "SDES"
    assert sdes.cnames == {SSRC: "porch@home.arpa"}


def test_sender_report_keeps_the_ntp_fraction():
    ntp = 3900000000.123456
    (sr,) = parse_rtcp(build_sr(SSRC, ntp, 0, 0, 0))
    assert abs(sr.ntp_time - ntp) < 1e-6
    assert sr.ntp_middle == ntp_middle(ntp) == (3900000000 % 65536) << 16 | int(0.123456 * 65536)


def test_receiver_report_bytes():
    assert build_rr(SSRC) == b"\x80\xc9\x00\x01" + struct.pack("!I", SSRC)
    # A CNAME whose item ends on a word boundary still gets a zero octet: a whole zero word.
    assert build_rr(SSRC, cname="ab")[8:] == (
        b"\x81\xca\x00\x03" + struct.pack("!I", SSRC) + b"\x01\x02ab" + b"\x00" * 4
    )
    (rr,) = parse_rtcp(build_rr(SSRC))
    assert (rr.kind, rr.ssrc, rr.reports) == ("RR", SSRC, [])


@pytest.mark.parametrize("cname", ["a", "ab", "abc", "abcd", "é" * 100])
def test_cnames_of_every_length_round_trip(cname):
    _, sdes = parse_rtcp(build_rr(SSRC, cname=cname))
    assert sdes.cnames == {SSRC: cname}
    assert sdes.items == [(SSRC, 1, cname)]


def test_sdes_with_several_chunks_and_items():
    # A mixer describes two sources; the first chunk's items end on a word boundary.
    chunks = (struct.pack("!I", 1) + b"\x01\x02ab\x00\x00\x00\x00"
              + struct.pack("!I", 2) + b"\x01\x01c\x02\x03Bob\x00\x00\x00\x00")
    (sdes,) = parse_rtcp(b"\x82\xca\x00\x07" + chunks)
    assert sdes.items == [(1, 1, "ab"), (2, 1, "c"), (2, 2, "Bob")]
    assert sdes.cnames == {1: "ab", 2: "c"}


def test_cumulative_lost_is_signed_24_bits():
    for lost, expected in ((-1, -1), (0x7FFFFF, 0x7FFFFF), (10**9, 0x7FFFFF),
                           (-(10**9), -0x800000)):
        block = ReportBlock(1, 0, lost, 0, 0, 0, 0)
        (rr,) = parse_rtcp(build_rr(SSRC, [block]))
        assert rr.reports[0].cumulative_lost == expected


def test_bye_opens_with_a_report_and_carries_the_reason():
    for reason in (None, "", "a", "call ended", "hung up!"):
        packets = parse_rtcp(build_bye(SSRC, reason, cname="porch@home.arpa"))
        assert [p.kind for p in packets] == ["RR", "SDES", "BYE"]
        assert packets[2].ssrcs == [SSRC]
        assert packets[2].reason == reason
    assert [p.kind for p in parse_rtcp(build_bye(SSRC))] == ["RR", "BYE"]


def test_other_packet_types_are_kept_and_padding_on_the_last_packet_removed():
    feedback = b"\xa1\xcd\x00\x03" + struct.pack("!II", SSRC, 5) + b"\x00\x00\x00\x04"
    _, other = parse_rtcp(build_rr(SSRC) + feedback)
    assert (other.kind, other.packet_type, other.count) == ("other", 205, 1)
    assert other.body == struct.pack("!II", SSRC, 5)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "RTCP packet is empty"),
        (build_rr(SSRC) + b"\x80\xc9", "RTCP header overruns the compound packet"),
        (b"\x40\xc9\x00\x01" + b"\x00" * 4, "RTCP version is not 2"),
        (build_rr(SSRC)[:6], "RTCP length overruns the compound packet"),
        (b"\xa0\xc9\x00\x01" + b"\x00\x00\x00\x01" + build_rr(SSRC),
         "RTCP padding before the last packet"),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x00", "RTCP padding is bad"),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x09", "RTCP padding is bad"),
        (b"\x81\xc9\x00\x01" + b"\x00" * 4, "RTCP report blocks overrun the packet"),
        (b"\x80\xc8\x00\x01" + b"\x00" * 4, "RTCP SR too short"),
        (b"\x80\xc9\x00\x00", "RTCP RR too short"),
        (b"\x81\xca\x00\x01" + b"\x00" * 4, "RTCP SDES items overrun the packet"),
        (b"\x81\xca\x00\x02" + b"\x00" * 4 + b"\x01\x09ab", "RTCP SDES items overrun the packet"),
        (b"\x82\xca\x00\x02" + b"\x00" * 4 + b"\x00" * 4, "RTCP SDES chunk overruns the packet"),
        (b"\x82\xcb\x00\x01" + b"\x00" * 4, "RTCP BYE sources overrun the packet"),
        (b"\x81\xcb\x00\x02" + b"\x00" * 4 + b"\x09abc", "RTCP BYE reason overruns the packet"),
    ],
)
def test_malformed_compound_packets_are_refused(data, reason):
    with pytest.raises(ValueError) as info:
        parse_rtcp(data)
    assert str(info.value) == reason


def test_ntp_time_and_its_middle_bits():
    assert ntp_from_unix(0) == 2208988800
    assert ntp_middle(2208988800.5) == ((2208988800 & 0xFFFF) << 16) | 0x8000
    assert ntp_middle(0x1_0000_0000 + 1.0) == 0x10000  # wraps with the NTP era


def test_round_trip_time_from_a_report_about_our_stream():
    sent = ntp_from_unix(1700000000.0)
    # The peer held our SR for 1 s before its report, which reached us 1.25 s after the SR.
    block = ReportBlock(SSRC, 0, 0, 0, 0, ntp_middle(sent), 65536)
    assert round_trip(block, ntp_middle(sent + 1.25)) == 0.25
    assert round_trip(block._replace(last_sr=0), ntp_middle(sent + 1.25)) is None
    assert round_trip(block, ntp_middle(sent + 0.999)) == 0.0
    # Across a wrap of the 32-bit middle (every 65536 s) it still comes out right.
    wrap = 65536.0 * 3 - 0.5
    block = ReportBlock(SSRC, 0, 0, 0, 0, ntp_middle(wrap), 0)
    assert round_trip(block, ntp_middle(wrap + 0.75)) == 0.75


def test_keyframe_requests_pli_and_fir_are_read_byte_for_byte():
    pli = build_pli(SSRC, 0xCAFEBABE)
    # RFC 4585 6.1: V=2, FMT=1, PT=206, length 2; then the sender's and the media's SSRC.
    assert pli == struct.pack("!BBHII", 0x81, 206, 2, SSRC, 0xCAFEBABE)
    (packet,) = parse_rtcp(build_rr(SSRC) + pli)[1:]
    assert (packet.kind, packet.ssrc, packet.media_ssrc) == ("PLI", SSRC, 0xCAFEBABE)
    assert packet.asks_for(0xCAFEBABE) and not packet.asks_for(1)
    fir = build_fir(SSRC, 0xCAFEBABE, 7)
    # RFC 5104 4.3.1: FMT=4, media SSRC 0, then (SSRC, sequence number, 24 reserved bits).
    assert fir == struct.pack("!BBHIIII", 0x84, 206, 4, SSRC, 0, 0xCAFEBABE, 7 << 24)
    (packet,) = parse_rtcp(fir)
    assert (packet.kind, packet.entries) == ("FIR", [(0xCAFEBABE, 7)])
    assert packet.asks_for(0xCAFEBABE)


def test_a_short_feedback_packet_is_an_error_not_a_crash():
    with pytest.raises(ValueError):
        parse_rtcp(struct.pack("!BBHI", 0x81, 206, 1, SSRC))
    with pytest.raises(ValueError):  # a FIR entry cut short
        parse_rtcp(struct.pack("!BBHIII", 0x84, 206, 3, SSRC, 0, 5))
