"""G.711 (ITU-T, 1988): μ-law (PCMU) and A-law (PCMA), the two codecs every SIP phone speaks.

PCM here is 16-bit signed little-endian mono at 8 kHz, the format the audio ports use; each
encoded byte is one sample. The results are those of the classic Sun reference code (and of
the `audioop` module that carried it, gone since Python 3.13): μ-law encodes the top 14 bits
of a sample, A-law the top 13.

A call carries 50 frames a second each way, so both directions are table lookups run by C
loops rather than arithmetic per sample in Python. Encoding indexes a 65536-byte table with
the signed sample itself: a negative index reaches the upper half, where the sample's two's
complement lands. Decoding translates the codes twice, once into the low bytes of the
samples and once into the high bytes, and interleaves the two.
"""

import sys
from array import array

# μ-law works on a 14-bit magnitude with this bias added, which makes each segment start
# at a power of two (G.711 table 2a); the biased magnitude saturates at 13 bits.
_ULAW_BIAS = 33
_ULAW_MAX = 0x1FFF


def _ulaw_encode_14(value):
    """The μ-law code of a 14-bit signed sample (a 16-bit one shifted right by 2)."""
    if value < 0:
        value = -value
        sign_mask = 0x7F
    else:
        sign_mask = 0xFF
    biased = min(value + _ULAW_BIAS, _ULAW_MAX)
    # The segment is where the biased magnitude's top bit sits: 33..63 is segment 0.
    segment = biased.bit_length() - 6
    mantissa = (biased >> (segment + 1)) & 0x0F
    return ((segment << 4) | mantissa) ^ sign_mask


def _ulaw_decode_byte(code):
    """The 16-bit sample a μ-law code stands for: the middle of its quantisation step."""
    code = ~code & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 1) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return -4 * magnitude if code & 0x80 else 4 * magnitude


def _alaw_encode_13(value):
    """The A-law code of a 13-bit signed sample (a 16-bit one shifted right by 3)."""
    if value < 0:
        # One's complement: A-law's negative steps mirror the positive ones exactly.
        value = -value - 1
        sign_mask = 0x55
    else:
        sign_mask = 0xD5
    # Segments 0 and 1 share one step size; from segment 2 on, each doubles it.
    segment = max(value.bit_length() - 5, 0)
    mantissa = (value >> max(segment, 1)) & 0x0F
    return ((segment << 4) | mantissa) ^ sign_mask


def _alaw_decode_byte(code):
    """The 16-bit sample an A-law code stands for: the middle of its quantisation step."""
    code ^= 0x55
    segment = (code >> 4) & 0x07
    step = code & 0x0F
    if segment == 0:
        magnitude = (step << 1) + 1
    else:
        magnitude = ((step << 1) + 33) << (segment - 1)
    return 8 * magnitude if code & 0x80 else -8 * magnitude


def _encode_table(encode, bits):
    """The code of every 16-bit sample, indexed by the sample mod 2**16.

    `encode` sees only the top `bits` bits, so it is called once per run of 2**(16 - bits)
    samples that share them, and the run is filled by strided slices: the table is built in
    milliseconds at import, which matters on a Raspberry Pi.
    """
    size = 1 << bits
    half = size >> 1
    codes = bytes(encode(top - size if top >= half else top) for top in range(size))
    run = 1 << (16 - bits)
    table = bytearray(1 << 16)
    for offset in range(run):
        table[offset::run] = codes
    return bytes(table)


def _decode_tables(decode):
    """Two 256-byte translation tables: each code's sample, low byte and high byte."""
    samples = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(s & 0xFF for s in samples), bytes(s >> 8 for s in samples)


_ULAW_ENCODE = _encode_table(_ulaw_encode_14, 14)
_ALAW_ENCODE = _encode_table(_alaw_encode_13, 13)
_ULAW_LOW, _ULAW_HIGH = _decode_tables(_ulaw_decode_byte)
_ALAW_LOW, _ALAW_HIGH = _decode_tables(_alaw_decode_byte)


def _samples(pcm):
    """The signed 16-bit samples of little-endian PCM, as a sequence of ints."""
    octets = memoryview(pcm).cast("B")
    if len(octets) % 2:
        raise ValueError("16-bit PCM must have an even number of bytes, not %d" % len(octets))
    if sys.byteorder == "little":
        return octets.cast("h")
    samples = array("h", octets)
    samples.byteswap()
    return samples


def _decode(data, low, high):
    data = bytes(data)
    pcm = bytearray(2 * len(data))
    pcm[0::2] = data.translate(low)
    pcm[1::2] = data.translate(high)
    return bytes(pcm)


def ulaw_encode(pcm):
    """μ-law bytes for 16-bit little-endian PCM, one byte per sample."""
    return bytes(map(_ULAW_ENCODE.__getitem__, _samples(pcm)))


def ulaw_decode(data):
    """16-bit little-endian PCM for μ-law bytes, two bytes per code."""
    return _decode(data, _ULAW_LOW, _ULAW_HIGH)


def alaw_encode(pcm):
    """A-law bytes for 16-bit little-endian PCM, one byte per sample."""
    return bytes(map(_ALAW_ENCODE.__getitem__, _samples(pcm)))


def alaw_decode(data):
    """16-bit little-endian PCM for A-law bytes, two bytes per code."""
    return _decode(data, _ALAW_LOW, _ALAW_HIGH)


ENCODERS = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
DECODERS = {"PCMU": ulaw_decode, "PCMA": alaw_decode}

# The code of a zero sample, which muted and silent frames are made of.
SILENCE = {"PCMU": 0xFF, "PCMA": 0xD5}


def silence(codec, samples):
    """`samples` encoded zero samples of `codec` ("PCMU" or "PCMA")."""
    try:
        code = SILENCE[codec]
    except KeyError:
        raise ValueError("not a G.711 codec: %r" % (codec,)) from None
    return bytes((code,)) * samples
