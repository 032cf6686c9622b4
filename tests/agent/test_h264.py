"""appliance/media/h264.py: what the camera reads of its encoder's RTP (RFC 6184)."""

import base64
import struct

from appliance.media import h264

# A constrained-baseline level 2.2 SPS and its PPS, as x264 writes them for 640x480.
SPS = base64.b64decode("Z0LAFtoCgPbARAAAAwAEAAADAHo8WLqA")
PPS = base64.b64decode("aM48gA==")
IDR = bytes([0x65, 0x88, 0x84]) + b"\x00" * 40
SLICE = bytes([0x41, 0x9A, 0x02]) + b"\x00" * 40


def stap_a(*units):
    return bytes([0x18]) + b"".join(struct.pack("!H", len(u)) + u for u in units)


def fu_a(unit, start, end=False):
    header = (unit[0] & 0xE0) | 28
    fu = (0x80 if start else 0) | (0x40 if end else 0) | (unit[0] & 0x1F)
    return bytes([header, fu]) + unit[1:10]


def test_single_nal_unit_packets():
    assert h264.nal_units(SPS) == [(h264.SPS, SPS)]
    assert h264.nal_units(SLICE)[0][0] == h264.SLICE


def test_a_stap_a_carries_each_of_its_units():
    assert h264.nal_units(stap_a(SPS, PPS)) == [(h264.SPS, SPS), (h264.PPS, PPS)]
    truncated = stap_a(SPS, PPS)[:-1]  # the last unit runs past the packet: not read
    assert h264.nal_units(truncated) == [(h264.SPS, SPS)]


def test_an_fu_a_names_its_unit_in_the_first_fragment_only():
    kind, unit = h264.nal_units(fu_a(IDR, start=True))[0]
    assert kind == h264.IDR and unit[0] == IDR[0]  # the NAL header rebuilt
    assert h264.nal_units(fu_a(IDR, start=False, end=True)) == []


def test_what_starts_a_keyframe():
    assert h264.starts_keyframe(SPS)
    assert h264.starts_keyframe(stap_a(SPS, PPS))
    assert h264.starts_keyframe(fu_a(IDR, start=True))
    assert not h264.starts_keyframe(fu_a(IDR, start=False))
    assert not h264.starts_keyframe(PPS)
    assert not h264.starts_keyframe(fu_a(SLICE, start=True))
    assert not h264.starts_keyframe(b"")


def test_the_sdp_parameters_of_the_parameter_sets():
    assert h264.profile_level_id(SPS) == "42c016"  # constrained baseline, level 2.2
    assert h264.sprop_parameter_sets(SPS, PPS) == "Z0LAFtoCgPbARAAAAwAEAAADAHo8WLqA,aM48gA=="


def test_packets_make_the_byte_stream_again():
    stream = h264.annex_b(stap_a(SPS, PPS)) + h264.annex_b(fu_a(IDR, start=True)) \
        + h264.annex_b(fu_a(IDR, start=False, end=True)) + h264.annex_b(SLICE)
    start = b"\x00\x00\x00\x01"
    first_fragment = IDR[:10]
    assert stream == (start + SPS + start + PPS + start + first_fragment + IDR[1:10]
                      + start + SLICE)
