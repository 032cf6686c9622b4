"""Tones for the call tests, in pure Python (no NumPy): WAV and raw files of a sine to
send, and the measure of what arrived: its dominant frequency (a Goertzel scan of the
voice band, refined to 1 Hz) and how much of it is that tone.

What an ALSA `file` plugin over a `null` slave played (tests/agent/audio_alsa.py) is raw
16-bit PCM in whole periods with runs of silent periods between the frames it was given:
`frames_with_sound` keeps the periods that hold any sound.
"""

import array
import math
import wave

from ..agent.audio_signal import samples, share_at, tone

RATE = 8000
FRAME = 160  # samples: 20 ms at 8 kHz, one RTP packet of G.711


def tone_pcm(freq, seconds, rate=RATE):
    """`seconds` of a `freq` Hz sine (16-bit little-endian mono PCM)."""
    return tone(freq, rate, round(seconds * rate)).tobytes()


def write_wav(path, pcm, rate=RATE):
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def read_wav(path):
    """(samples, rate) of a mono 16-bit WAV file."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2), path
        return samples(wav.readframes(wav.getnframes())), wav.getframerate()


def frames_with_sound(pcm, frame=FRAME, quiet=16):
    """The samples of the `frame`-sample periods of `pcm` that hold sound, end to end: a
    raw file as the ALSA null plugin's clockless playback leaves it, or a call's recording
    without its silent frames. A period is silent when no sample exceeds `quiet` (baresip
    decodes the G.711 silence it gets at a call's start to a small offset, not zeros)."""
    size = frame * 2
    silence = bytes(size)
    kept = array.array("h")
    for start in range(0, len(pcm) - size + 1, size):
        period = pcm[start:start + size]
        if period == silence:
            continue
        period = samples(period)
        if max(period) > quiet or min(period) < -quiet:
            kept.extend(period)
    return kept


def _power(block, freq, rate):
    coefficient = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for s in block:
        s1, s2 = s + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


def _hann(block):
    n = len(block)
    return [s * (0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))) for i, s in enumerate(block)]


def dominant_frequency(block, rate, low=100, high=3900, step=20):
    """The frequency (Hz, to 1 Hz) holding the most energy in `block` between `low` and
    `high`: a Goertzel scan every `step` Hz over the first 50 ms (whose Hann window's main
    lobe, 40 Hz each side, cannot fall between two steps), then every 1 Hz around the
    highest over the whole block (1 Hz takes a block of a second or so)."""
    assert len(block) >= rate // 20, "%d samples are too few to measure" % len(block)
    head = _hann(block[:rate // 20])
    coarse = max(range(low, high + 1, step), key=lambda f: _power(head, f, rate))
    whole = _hann(block)
    return max(range(coarse - step, coarse + step + 1), key=lambda f: _power(whole, f, rate))


def measure(block, rate, expected, seconds=1.0):
    """What a tone that arrived looks like: `samples`, its `dominant` frequency over (at
    most) the middle `seconds` of `block`, and over all of it, cut in 20 ms pieces, the
    mean `share` of a piece's energy at `expected` Hz and the part of the pieces that are
    `clean` (0.9 of their energy or more there): 1.0 and 1.0 for a pure, unbroken tone."""
    middle = array.array("h", block)
    keep = int(seconds * rate)
    if len(middle) > keep:
        start = (len(middle) - keep) // 2
        middle = middle[start:start + keep]
    piece = rate // 50
    shares = [share_at(block[i:i + piece], expected, rate)
              for i in range(0, len(block) - piece + 1, piece)]
    return {"samples": len(block), "dominant": dominant_frequency(middle, rate),
            "share": round(sum(shares) / len(shares), 3) if shares else 0.0,
            "clean": round(sum(s >= 0.9 for s in shares) / len(shares), 3) if shares else 0.0}
