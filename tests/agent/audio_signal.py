"""Test signals in pure Python: tones to send through an audio port, and the measure of
what came out (how much of a block's energy lies at one frequency)."""

import array
import math

AMPLITUDE = 8000
# Off the zero crossings: the tones of these tests (500 and 1000 Hz, sampled at 8 or
# 48 kHz) never have a sample of 0, so silence (runs of zeros) can be cut out of them.
PHASE = math.pi / 16


def tone(freq, rate, count, start=0):
    """`count` samples of a sine at `freq` Hz, from sample `start` of the tone."""
    step = 2 * math.pi * freq / rate
    return array.array(
        "h", [round(AMPLITUDE * math.sin(PHASE + step * n)) for n in range(start, start + count)]
    )


def tone_frames(freq, rate, frame_samples, count):
    """`count` frames (bytes) of one continuous tone."""
    return [
        tone(freq, rate, frame_samples, start=i * frame_samples).tobytes() for i in range(count)
    ]


def samples(pcm):
    return array.array("h", bytes(pcm))


def share_at(block, freq, rate):
    """The share (0 to 1) of `block`'s energy at `freq` Hz: 1 for a pure tone there that
    fills whole periods, near 0 for silence or any other frequency (Goertzel)."""
    energy = sum(s * s for s in block)
    if not energy:
        return 0.0
    coefficient = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for s in block:
        s1, s2 = s + coefficient * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return 2 * power / (len(block) * energy)


def sounds(block, run=8):
    """The stretches of sound in `block`, split where it holds at least `run` zero samples
    in a row: the frames a device played, without the silence it played between them."""
    found = []
    sound = array.array("h")
    zeros = 0
    for s in block:
        if s == 0:
            zeros += 1
            continue
        if zeros >= run and sound:
            found.append(sound)
            sound = array.array("h")
        elif sound:
            sound.extend([0] * zeros)
        zeros = 0
        sound.append(s)
    if sound:
        found.append(sound)
    return found
