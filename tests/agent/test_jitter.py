"""The jitter buffer, driven by a simulated network: a sender every 20 ms, delays chosen per
packet, a player calling `get` every 20 ms. Every payload names its packet, so what the
listener hears can be checked: in order, each once, nothing lost that arrived in time."""

import random

import pytest

from appliance.media.jitter import JitterBuffer

PTIME = 20


def stream(count, delay, first=0, sequence=1000, timestamp=5000, marker_at=(0,)):
    """Packets `first` .. `first + count - 1` of a sender that started at 0 ms, sending one
    every 20 ms; packet n arrives `delay(n)` ms after it was sent. Each is
    (arrival, sequence, timestamp, payload, marker), sequence and timestamp wrapping."""
    return [
        (PTIME * n + delay(n), (sequence + n) % 65536, (timestamp + 160 * n) % (1 << 32),
         n.to_bytes(4, "big"), n in marker_at)
        for n in range(first, first + count)
    ]


def play(buffer, packets, until_ms, phase=7, check=None):
    """Deliver the packets at their arrival times and call `get` every ptime from `phase`
    ms until `until_ms`. Returns (time, packet number) for every payload played."""
    pending = sorted(packets, key=lambda packet: packet[0])
    heard = []
    index = 0
    for now in range(phase, until_ms, PTIME):
        while index < len(pending) and pending[index][0] <= now:
            arrival, sequence, timestamp, payload, marker = pending[index]
            buffer.put(sequence, timestamp, payload, arrival, marker)
            index += 1
        payload = buffer.get(now)
        if payload is not None:
            heard.append((now, int.from_bytes(payload, "big")))
        if check:
            check(buffer)
    return heard


def numbers(heard):
    return [number for _, number in heard]


def waits(heard, packets):
    arrivals = {int.from_bytes(p[3], "big"): p[0] for p in packets}
    return [now - arrivals[number] for now, number in heard]


@pytest.mark.parametrize("phase", [0, 7, 13, 19])
def test_steady_stream_plays_everything_in_order_at_the_least_delay(phase):
    buffer = JitterBuffer()
    packets = stream(500, lambda n: 30)
    heard = play(buffer, packets, 10100, phase)
    assert numbers(heard) == list(range(500))
    assert (buffer.played, buffer.lost, buffer.late, buffer.duplicates) == (500, 0, 0, 0)
    assert buffer.min_delay <= buffer.delay_ms < buffer.min_delay + PTIME
    assert all(buffer.min_delay <= wait < buffer.min_delay + PTIME
               for wait in waits(heard, packets))


def test_nothing_plays_until_the_first_packet_has_waited_the_least_delay():
    buffer = JitterBuffer()
    assert buffer.get(0) is None
    buffer.put(1, 160, b"first", 100)
    assert buffer.get(100) is None
    assert buffer.get(110) is None
    assert buffer.get(120) == b"first"
    assert buffer.lost == 0


def test_reordered_packets_play_in_order():
    # Every fifth packet is overtaken by the next one: it arrives 15 ms after it.
    packets = stream(500, lambda n: 65 if n % 5 == 0 else 30)
    buffer = JitterBuffer(min_delay=60)
    assert numbers(play(buffer, packets, 10200)) == list(range(500))
    assert (buffer.lost, buffer.late) == (0, 0)


def test_jitter_grows_the_delay_keeps_loss_under_one_percent_and_the_delay_returns():
    # 5 s of a steady network, 60 s with 0-60 ms of random extra delay, 20 s steady again.
    generator = random.Random(20240501)
    packets = (stream(250, lambda n: 30)
               + stream(3000, lambda n: 30 + generator.uniform(0, 60), first=250)
               + stream(1000, lambda n: 30, first=3250))
    buffer = JitterBuffer()
    delays = []
    heard = play(buffer, packets, 85200, check=lambda b: delays.append(b.delay_ms))
    played = numbers(heard)
    assert played == sorted(played)
    assert delays[240] < buffer.min_delay + PTIME
    assert buffer.inserted > 0
    assert 60 <= delays[1500] <= 110  # 30 s in: the delay covers the 60 ms spread
    # Once adapted (a second into the jitter), under 1% of the packets missed their turn.
    adapted = set(range(300, 3250))
    assert len(adapted - set(played)) < len(adapted) / 100
    assert len(set(range(4250)) - set(played)) == buffer.lost + buffer.dropped
    # A steady network again: the delay came back down, one frame a second.
    assert buffer.min_delay <= delays[-1] < buffer.min_delay + PTIME
    assert buffer.dropped <= 4


def test_delay_never_exceeds_the_maximum_under_wild_jitter():
    generator = random.Random(7)
    packets = stream(3000, lambda n: 30 + generator.uniform(0, 400))
    buffer = JitterBuffer()
    delays = []
    heard = play(buffer, packets, 61000, check=lambda b: delays.append(b.delay_ms))
    assert max(delays) <= buffer.max_delay
    assert max(waits(heard, packets)) <= buffer.max_delay
    assert numbers(heard) == sorted(numbers(heard))
    assert buffer.late > 0


def test_sequence_and_timestamp_wraparound():
    packets = stream(300, lambda n: 30, sequence=65436, timestamp=(1 << 32) - 160 * 100)
    buffer = JitterBuffer()
    assert numbers(play(buffer, packets, 6100)) == list(range(300))
    assert (buffer.lost, buffer.late) == (0, 0)


def test_duplicates_play_once():
    packets = stream(200, lambda n: 30)
    copies = [(arrival + 5, *rest) for arrival, *rest in packets]
    late_copies = [(arrival + 300, *rest) for arrival, *rest in packets[:50]]
    buffer = JitterBuffer()
    assert numbers(play(buffer, packets + copies + late_copies, 4200)) == list(range(200))
    assert buffer.duplicates == 250
    assert (buffer.played, buffer.lost, buffer.late) == (200, 0, 0)


def test_lost_packets_are_counted_once_each():
    missing = {17, 18, 100, 250, 251, 252, 398}
    packets = [p for p in stream(400, lambda n: 30) if int.from_bytes(p[3], "big") not in missing]
    buffer = JitterBuffer()
    heard = play(buffer, packets, 8200)
    assert numbers(heard) == [n for n in range(400) if n not in missing]
    assert (buffer.lost, buffer.late) == (7, 0)


def test_a_packet_after_its_turn_is_late_and_not_played():
    packets = stream(300, lambda n: 150 if n == 100 else 30)
    buffer = JitterBuffer()
    heard = play(buffer, packets, 6200)
    assert numbers(heard) == [n for n in range(300) if n != 100]
    assert (buffer.late, buffer.lost) == (1, 1)


def test_silence_left_out_by_the_sender_is_not_loss():
    # Two talkspurts, 3 s of silence sent as nothing: the second opens with the marker bit.
    first = stream(100, lambda n: 30)
    second = stream(100, lambda n: 30, first=250, sequence=1000 - 150, marker_at=(250,))
    buffer = JitterBuffer()
    heard = play(buffer, first + second, 7200)
    assert numbers(heard) == list(range(100)) + list(range(250, 350))
    assert (buffer.lost, buffer.late) == (0, 0)
    assert max(waits(heard, first + second)) < buffer.min_delay + PTIME


def test_talkspurt_after_silence_starts_at_the_target_delay():
    # Jitter grew the delay; the network has calmed, but the delay comes down only a frame a
    # second mid-speech. The next talkspurt (after 200 ms of silence) starts at the target.
    generator = random.Random(3)
    jittery = stream(400, lambda n: 30 + generator.uniform(0, 80))
    calm = stream(120, lambda n: 30, first=400, marker_at=())
    resumed = stream(100, lambda n: 30, first=530, sequence=1000 - 10, marker_at=(530,))
    packets = jittery + calm + resumed
    buffer = JitterBuffer()
    heard = play(buffer, packets, 12800)
    wait_of = dict(zip(numbers(heard), waits(heard, packets), strict=True))
    assert wait_of[519] >= 60
    assert all(wait_of[n] < buffer.min_delay + PTIME for n in range(530, 630))


def test_a_new_timeline_with_the_marker_bit_is_followed_at_once():
    # The sender jumps its timestamps (after hold, or a new mixer) and says so with the marker.
    first = stream(200, lambda n: 30)
    second = [(arrival, sequence, (timestamp + 1_000_000) % (1 << 32), payload, marker)
              for arrival, sequence, timestamp, payload, marker
              in stream(200, lambda n: 30, first=250, sequence=1000 - 50, marker_at=(250,))]
    buffer = JitterBuffer()
    heard = play(buffer, first + second, 9200)
    assert numbers(heard) == list(range(200)) + list(range(250, 450))
    assert (buffer.lost, buffer.late) == (0, 0)


@pytest.mark.parametrize("jump", [1_000_000, -1_000_000, 1 << 31])
def test_a_timestamp_jump_without_marker_costs_one_packet(jump):
    packets = [(arrival, sequence, (timestamp + (jump if n >= 200 else 0)) % (1 << 32), payload,
                marker)
               for n, (arrival, sequence, timestamp, payload, marker)
               in enumerate(stream(400, lambda n: 30))]
    buffer = JitterBuffer()
    heard = play(buffer, packets, 8200)
    assert set(numbers(heard)) >= set(range(400)) - {200}
    assert numbers(heard) == sorted(numbers(heard))
    assert buffer.lost <= 1


def test_a_burst_after_a_stall_keeps_the_timeline():
    # The network holds packets 200-224 for half a second, then delivers them at once.
    packets = stream(900, lambda n: 30 + (4530 - 20 * n if 200 <= n < 225 else 0))
    buffer = JitterBuffer()
    heard = play(buffer, packets, 18200)
    assert numbers(heard) == sorted(numbers(heard))
    assert numbers(heard)[:200] == list(range(200))
    assert buffer.lost == buffer.late <= 25
    # The late packets grew the delay; once the network proved steady it came back down, a
    # frame a second.
    assert buffer.played + buffer.lost + buffer.dropped == 900
    assert buffer.dropped <= 8
    assert waits(heard, packets)[-1] < buffer.min_delay + PTIME


def test_a_shorter_path_brings_the_delay_under_the_maximum_at_once():
    # The network gets 170 ms faster, and 100 ms later 40 ms faster still: packets would
    # wait longer than max_delay, though the delay was shortened a moment ago.
    packets = stream(600, lambda n: 240 if n < 200 else 70 if n < 205 else 30)
    buffer = JitterBuffer()
    heard = play(buffer, packets, 12500)
    assert max(waits(heard, packets)) <= buffer.max_delay
    assert numbers(heard) == sorted(numbers(heard))
    # The frames given up to shorten the delay: some here, some still on the old path.
    assert buffer.played + buffer.dropped + buffer.lost == 600
    assert buffer.dropped + buffer.lost <= 12


@pytest.mark.parametrize("change, lost", [(300, 1), (-300, 25)])
def test_a_path_changed_by_more_than_the_maximum_is_a_new_timeline(change, lost):
    # 300 ms longer: the first packet on the new path is late, the rest play. 300 ms shorter:
    # what was still on the old path arrives after the new path's packets and is late.
    before = 30 if change > 0 else 330
    packets = stream(600, lambda n: before + (change if n >= 200 else 0))
    buffer = JitterBuffer()
    heard = play(buffer, packets, 12500)
    assert numbers(heard) == sorted(numbers(heard))
    assert buffer.lost <= lost
    assert len(heard) + buffer.lost == 600
    assert waits(heard, packets)[-1] < buffer.min_delay + PTIME


def test_audio_never_goes_back_to_stragglers_of_an_abandoned_path():
    # The path gets 300 ms shorter and the buffer follows the new one; then packets held up
    # on the old path arrive in a row, while the new path loses three.
    def delay(n):
        return 330 if n < 190 else 530 if n < 200 else 30

    packets = [p for p in stream(400, delay) if int.from_bytes(p[3], "big") not in (215, 216, 217)]
    buffer = JitterBuffer()
    heard = play(buffer, packets, 8500)
    assert numbers(heard) == sorted(numbers(heard))
    assert set(numbers(heard)) >= set(range(218, 400))
    assert len(heard) + buffer.lost == 400


def test_a_new_source_after_reset():
    buffer = JitterBuffer()
    assert len(play(buffer, stream(100, lambda n: 30), 2200)) == 100
    buffer.reset()
    # Another SSRC numbers from elsewhere: lower sequence numbers, an unrelated timestamp.
    later = stream(100, lambda n: 30, first=110, sequence=5, timestamp=77)
    heard = play(buffer, later, 4400, phase=2207)
    assert numbers(heard) == list(range(110, 210))
    assert (buffer.lost, buffer.late, buffer.played) == (0, 0, 200)


def test_packets_shorter_than_a_ptime_are_played_together():
    packets = [(10 * n + 30, 1000 + n, 5000 + 80 * n, bytes((n % 256,)) * 80, n == 0)
               for n in range(400)]
    buffer = JitterBuffer()
    frames = []
    for now in range(7, 4200, PTIME):
        for arrival, sequence, timestamp, payload, marker in packets:
            if now - PTIME < arrival <= now:
                buffer.put(sequence, timestamp, payload, arrival, marker)
        frame = buffer.get(now)
        if frame is not None:
            frames.append(frame)
    assert frames == [bytes((2 * n % 256,)) * 80 + bytes(((2 * n + 1) % 256,)) * 80
                      for n in range(200)]
    assert buffer.lost == 0


def test_limits_are_checked():
    with pytest.raises(ValueError):
        JitterBuffer(min_delay=300, max_delay=200)
    with pytest.raises(ValueError):
        JitterBuffer(ptime=20, min_delay=10)
