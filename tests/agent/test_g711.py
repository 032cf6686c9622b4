"""G.711: every 16-bit sample encodes as the reference algorithm says, every code decodes to
its G.711 value, and speech-level audio survives the round trip."""

import math
import struct
import sys
import warnings

import pytest

from appliance.media.g711 import (
    DECODERS,
    ENCODERS,
    alaw_decode,
    alaw_encode,
    silence,
    ulaw_decode,
    ulaw_encode,
)

ALL_SAMPLES = range(-32768, 32768)
ALL_PCM = struct.pack("<65536h", *ALL_SAMPLES)
ALL_CODES = bytes(range(256))


def pcm(*samples):
    return struct.pack("<%dh" % len(samples), *samples)


def samples_of(data):
    return struct.unpack("<%dh" % (len(data) // 2), data)


# The reference: G.711's segment tables searched one segment at a time, as the Sun code
# (and audioop) does it, written here without the module's tables or bit tricks.

ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def reference_ulaw(sample):
    value = sample // 4
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 33
    for segment, end in enumerate(ULAW_SEGMENT_ENDS):
        if value <= end:
            return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask


def reference_alaw(sample):
    value = sample // 8
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    for segment, end in enumerate(ALAW_SEGMENT_ENDS):
        if value <= end:
            shift = 1 if segment < 2 else segment
            return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask
    return 0x7F ^ mask


def reference_ulaw_value(code):
    code ^= 0xFF
    exponent = (code >> 4) & 7
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return -magnitude if code & 0x80 else magnitude


def reference_alaw_value(code):
    code ^= 0x55
    exponent = (code >> 4) & 7
    magnitude = ((code & 0x0F) << 4) + 8
    if exponent:
        magnitude = (magnitude + 0x100) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


def test_every_sample_encodes_as_the_reference_says():
    assert ulaw_encode(ALL_PCM) == bytes(map(reference_ulaw, ALL_SAMPLES))
    assert alaw_encode(ALL_PCM) == bytes(map(reference_alaw, ALL_SAMPLES))


def test_every_code_decodes_as_the_reference_says():
    assert samples_of(ulaw_decode(ALL_CODES)) == tuple(map(reference_ulaw_value, ALL_CODES))
    assert samples_of(alaw_decode(ALL_CODES)) == tuple(map(reference_alaw_value, ALL_CODES))


def test_same_results_as_audioop_while_python_has_it():
    """Up to 3.12 the stdlib's audioop is the yardstick; from 3.13, which dropped it (the
    reason this codec exists), its absence is what the test sees."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            assert sys.version_info >= (3, 13)  # gone only where Python dropped it
            return
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_known_codes_at_zero_and_full_scale():
    # Zero is 0xFF in μ-law and 0xD5 in A-law (even bits inverted); full scale saturates.
    assert ulaw_encode(pcm(0, 32767, -32768)) == b"\xff\x80\x00"
    assert alaw_encode(pcm(0, 32767, -32768)) == b"\xd5\xaa\x2a"
    assert samples_of(ulaw_decode(b"\xff\x7f\x80\x00")) == (0, 0, 32124, -32124)
    assert samples_of(alaw_decode(b"\xd5\x55\xaa\x2a")) == (8, -8, 32256, -32256)


def test_a_decoded_code_encodes_back_to_itself():
    # Except μ-law's "negative zero" 0x7F, which decodes to 0 like 0xFF.
    for code in range(256):
        value = samples_of(ulaw_decode(bytes((code,))))[0]
        assert ulaw_encode(pcm(value)) == bytes((0xFF if code == 0x7F else code,))
        value = samples_of(alaw_decode(bytes((code,))))[0]
        assert alaw_encode(pcm(value)) == bytes((code,))


def test_round_trip_error_stays_within_a_quantisation_step():
    # G.711 keeps about 5 bits of relative precision: the error grows with the level.
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        decoded = samples_of(decode(encode(ALL_PCM)))
        for sample, value in zip(ALL_SAMPLES, decoded, strict=True):
            if abs(sample) <= 32000:
                assert abs(sample - value) <= abs(sample) / 32 + 8, (sample, value)


def test_a_tone_survives_a_call_with_speech_quality():
    # One second of a 1 kHz tone at -10 dBFS; G.711 promises about 38 dB SNR at this level.
    tone = [round(10362 * math.sin(2 * math.pi * 1000 * n / 8000 + 0.3)) for n in range(8000)]
    for codec in ("PCMU", "PCMA"):
        heard = samples_of(DECODERS[codec](ENCODERS[codec](pcm(*tone))))
        signal = sum(s * s for s in tone)
        noise = sum((s - h) ** 2 for s, h in zip(tone, heard, strict=True))
        assert 10 * math.log10(signal / noise) > 35, codec


def test_one_byte_per_sample_and_two_back():
    frame = pcm(*range(-8000, 8000, 100))
    for codec in ("PCMU", "PCMA"):
        encoded = ENCODERS[codec](frame)
        assert len(encoded) == 160
        assert len(DECODERS[codec](encoded)) == 320
        assert ENCODERS[codec](b"") == b"" and DECODERS[codec](b"") == b""


def test_bytearray_and_memoryview_input():
    frame = pcm(*range(-16000, 16000, 200))
    assert ulaw_encode(bytearray(frame)) == ulaw_encode(frame)
    assert alaw_encode(memoryview(frame)) == alaw_encode(frame)
    encoded = ulaw_encode(frame)
    assert ulaw_decode(bytearray(encoded)) == ulaw_decode(encoded)
    assert alaw_decode(memoryview(encoded)) == alaw_decode(encoded)


def test_odd_length_pcm_is_refused():
    with pytest.raises(ValueError) as info:
        ulaw_encode(b"\x00\x01\x02")
    assert str(info.value) == "16-bit PCM must have an even number of bytes, not 3"
    with pytest.raises(ValueError):
        alaw_encode(b"\x00")


def test_silence_is_the_code_of_a_zero_sample():
    assert silence("PCMU", 160) == b"\xff" * 160
    assert silence("PCMA", 3) == b"\xd5\xd5\xd5"
    for codec in ("PCMU", "PCMA"):
        assert silence(codec, 160) == ENCODERS[codec](bytes(320))
        assert all(abs(s) <= 8 for s in samples_of(DECODERS[codec](silence(codec, 160))))
    with pytest.raises(ValueError) as info:
        silence("G722", 160)
    assert str(info.value) == "not a G.711 codec: 'G722'"
