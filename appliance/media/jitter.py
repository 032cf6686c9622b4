"""An adaptive jitter buffer: incoming RTP audio is held just long enough that packets
delayed by the network still arrive before their turn to play.

The receiver calls `put()` for every packet and the player calls `get()` once per ptime;
`get` returns the payload due, or None when there is nothing to play (the caller plays
silence or conceals). Times are integer milliseconds of the caller's clock.

Playout follows the packets' timestamps, extended past their 32-bit wrap. The next slot to
play is a timestamp, the cursor, which moves one ptime per `get`; whatever arrives for a slot
already played is late. The delay is measured from the fastest packet of the last two
seconds (the least transit time, arrival less timestamp): how long that packet would wait.

How the delay adapts: the target is the spread of recent transit times (the 98th percentile
less the least, over the last ~2 s of packets) plus one ptime, within [min_delay, max_delay].
Playout is in whole frames, so the delay is kept within half a ptime of the target, and never
below min_delay. Below that, `get` holds the cursor back a frame at once (playing nothing for
it), so the delay grows as soon as the network worsens; above it, `get` skips one frame at
most once a second, so it shrinks slowly, except at the start of a talkspurt (the marker bit,
after a silence), where it goes straight to the target since waiting or skipping there cuts
no speech. Over max_delay, `get` skips as many frames as it takes.

A packet that would wait more than max_delay, or that is more than max_delay late, is off
the timeline: the sender's timestamps jumped, or the path changed. With the marker bit, or
when a second such packet in a row agrees with the first, a new timeline starts from it.
"""

from bisect import insort
from collections import deque

_TIMESTAMP_MOD = 1 << 32
_SEQUENCE_MOD = 1 << 16
# Sequence gaps this large are a restarted sender, not lost packets (RFC 3550 A.1).
_MAX_DROPOUT = 3000
# Sequence numbers remembered to recognise duplicates.
_RECENT_SEQUENCES = 256
_WINDOW_MS = 2000
_SHRINK_INTERVAL_MS = 1000


class JitterBuffer:
    """The playout buffer of one incoming audio stream. Counters, kept across `reset()`:
    `played` (payloads returned), `late` (arrived after their slot, or far off the timeline,
    and dropped), `lost` (sequence numbers never played, the late ones included; a silence
    the sender left out is not loss), `duplicates`, `dropped` (frames skipped to shrink the
    delay) and `inserted` (empty frames played to lengthen it)."""

    def __init__(self, ptime=20, min_delay=20, max_delay=200, clock_rate=8000):
        if not 0 < ptime <= min_delay <= max_delay:
            raise ValueError("need 0 < ptime <= min_delay <= max_delay")
        self.ptime = ptime
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.clock_rate = clock_rate
        self._frame = ptime * clock_rate // 1000
        self._transits = deque(maxlen=max(_WINDOW_MS // ptime, 10))
        self.played = 0
        self.late = 0
        self.lost = 0
        self.duplicates = 0
        self.dropped = 0
        self.inserted = 0
        self.reset()

    def reset(self):
        """Forget the stream: a new source (SSRC) follows, with its own numbering."""
        self._packets = {}  # extended timestamp -> (sequence, payload, marker)
        self._order = []  # the extended timestamps in _packets, ascending
        self._high_timestamp = None  # the highest timestamp seen, as sent
        self._high_extended = 0  # ... and extended
        self._recent = set()
        self._recent_order = deque()
        self._transits.clear()
        self._least_transit = None
        self._stray_transit = None  # an off-timeline packet's, waiting for a second
        self.target_ms = self.min_delay
        self._cursor = None  # the extended timestamp of the next slot
        self._playing = False  # False while filling, before the first slot or a talkspurt
        self._last_get_ms = None
        self._last_shrink_ms = None
        self._last_sequence = None  # the last sequence number played or skipped

    @property
    def delay_ms(self):
        """The playout delay: how long the fastest recent packet waits to be played. The
        target until playing has begun."""
        if not self._playing or self._last_get_ms is None:
            return self.target_ms
        return self._playout_offset() - self._least_transit

    def put(self, sequence, timestamp, payload, now_ms, marker=False):
        """Take in one packet that arrived at `now_ms`; `marker` is its RTP marker bit."""
        if sequence in self._recent:
            self.duplicates += 1
            return
        self._remember(sequence)
        extended = self._extend(timestamp)
        transit = now_ms - self._ms(extended)
        # Audio from before what has been played: playing it now would go backward.
        last = self._last_sequence
        behind = last is not None and (last - sequence) % _SEQUENCE_MOD < _MAX_DROPOUT
        if self._off_timeline(transit):
            if behind or not (marker or self._agrees_with_stray(transit)):
                if not behind:
                    self._stray_transit = transit
                self.late += 1
                return
            self._new_timeline(timestamp, extended)
        self._stray_transit = None
        self._note_transit(transit)
        if behind or (self._cursor is not None and extended < self._cursor):
            self.late += 1
            return
        if extended not in self._packets:
            insort(self._order, extended)
        self._packets[extended] = (sequence, bytes(payload), marker)

    def get(self, now_ms):
        """The payload to play now, or None: nothing due, a packet missing, the buffer still
        filling, or a frame inserted to lengthen the delay."""
        ready = self._adapt(now_ms) if self._playing else True
        if ready and not self._playing:
            ready = self._start(now_ms)
        self._last_get_ms = now_ms
        return self._play_slot() if ready else None

    def _lowest_delay(self):
        """The least delay to keep: half a frame under the target, or min_delay."""
        return max(self.min_delay, self.target_ms - self.ptime / 2)

    def _adapt(self, now_ms):
        """Move the delay toward the target; False when this slot is given to silence."""
        delay = now_ms - self._ms(self._cursor) - self._least_transit
        lowest = self._lowest_delay()
        if delay < lowest and delay + self.ptime <= self.max_delay:
            self.inserted += 1
            return False
        shrink_due = now_ms - self._last_shrink_ms >= _SHRINK_INTERVAL_MS
        too_long = delay > self.target_ms + self.ptime / 2 and delay - self.ptime >= lowest
        if shrink_due and too_long:
            self._skip_slot()
            delay -= self.ptime
            self._last_shrink_ms = now_ms
        while delay > self.max_delay:
            self._skip_slot()
            delay -= self.ptime
        if self._order and self._order[0] >= self._cursor + self._frame:
            # Nothing for this slot, and the next packet opens a talkspurt: start it on time.
            if self._packets[self._order[0]][2]:
                self._playing = False
        return True

    def _start(self, now_ms):
        """Begin playing at the earliest packet once it has waited out the target delay."""
        if not self._order:
            return False
        head = self._order[0]
        if now_ms - self._ms(head) - self._least_transit < self._lowest_delay():
            return False
        self._cursor = head
        self._playing = True
        self._last_shrink_ms = now_ms
        return True

    def _play_slot(self):
        payloads = []
        for sequence, payload, _ in self._take_slot():
            if self._last_sequence is not None:
                gap = (sequence - self._last_sequence - 1) % _SEQUENCE_MOD
                if gap < _MAX_DROPOUT:
                    self.lost += gap
            self._last_sequence = sequence
            payloads.append(payload)
        if not payloads:
            return None
        self.played += 1
        return payloads[0] if len(payloads) == 1 else b"".join(payloads)

    def _skip_slot(self):
        for sequence, _, _ in self._take_slot():
            self._last_sequence = sequence
            self.dropped += 1

    def _take_slot(self):
        """Remove and return the packets of the slot at the cursor, and move the cursor on.
        One packet usually; several when the sender's packets are shorter than a ptime."""
        end = self._cursor + self._frame
        taken = []
        while self._order and self._order[0] < end:
            taken.append(self._packets.pop(self._order.pop(0)))
        self._cursor = end
        return taken

    def _playout_offset(self):
        """When a timestamp plays, less the timestamp itself, in ms, on the current course:
        the slot at the cursor plays a ptime after the last `get`."""
        if self._playing and self._last_get_ms is not None:
            return self._last_get_ms + self.ptime - self._ms(self._cursor)
        return self._least_transit + self.target_ms

    def _off_timeline(self, transit):
        if self._least_transit is None:
            return False
        wait = self._playout_offset() - transit
        return wait > self.max_delay + self.ptime or wait < -self.max_delay

    def _agrees_with_stray(self, transit):
        """Whether the off-timeline packet before this one had the same transit time, within
        half a ptime: two in a row are a new timeline, a burst after a stall is not (its
        packets arrive together, each transit a ptime less than the one before)."""
        stray = self._stray_transit
        return stray is not None and 2 * abs(transit - stray) < self.ptime

    def _new_timeline(self, timestamp, extended):
        """Start over from the packet at hand; the counters and duplicate memory stay."""
        self._high_timestamp = timestamp
        self._high_extended = extended
        self._packets.clear()
        self._order.clear()
        self._transits.clear()
        self._least_transit = None
        self._cursor = None
        self._playing = False

    def _note_transit(self, transit):
        self._transits.append(transit)
        ordered = sorted(self._transits)
        count = len(ordered)
        self._least_transit = ordered[0]
        # The 98th percentile: a rare straggler (one in fifty) does not set the delay.
        spread = ordered[count - 1 - count // 50] - ordered[0]
        self.target_ms = max(self.min_delay, min(self.max_delay, spread + self.ptime))

    def _remember(self, sequence):
        self._recent.add(sequence)
        self._recent_order.append(sequence)
        if len(self._recent_order) > _RECENT_SEQUENCES:
            self._recent.discard(self._recent_order.popleft())

    def _extend(self, timestamp):
        """The timestamp counted on from the first one, through 32-bit wraps either way."""
        if self._high_timestamp is None:
            self._high_timestamp = timestamp
            return self._high_extended
        delta = (timestamp - self._high_timestamp) % _TIMESTAMP_MOD
        if delta >= _TIMESTAMP_MOD >> 1:
            delta -= _TIMESTAMP_MOD
        extended = self._high_extended + delta
        if delta > 0:
            self._high_timestamp = timestamp
            self._high_extended = extended
        return extended

    def _ms(self, extended):
        return extended * 1000 // self.clock_rate
