"""What the peers of an endpoint can make it hold and do: a request rate per source address
and bounded transaction tables.

    limits = Limits(rate=50, burst=100, max_transactions=1024, max_per_source=256)
    endpoint = Endpoint(local, token, limits=limits)

- Requests (and anything that is not a response: garbage counts) from one source address
  beyond `rate` a second, after a `burst`, are dropped unanswered: a flood costs a table
  look-up per datagram, not a parse and a reply, and another address carries on. All ports
  of an address share its allowance. Responses count too, but those from an address
  requests of ours are waiting on (a registrar answering a burst of REGISTERs).
- A new request that would make more than `max_transactions` server transactions, or more
  than `max_per_source` from its source address, is answered 503 with Retry-After
  (`retry_after` seconds) without a transaction, so no one address can take the table.

Memory stays bounded too: at most `max_sources` addresses are remembered by the rate
limiter (an address whose allowance is whole again is forgotten first).
"""


class Limits:
    """The limits an Endpoint enforces; `rate` 0 turns the rate limit off."""

    __slots__ = ("rate", "burst", "max_sources", "max_transactions", "max_per_source",
                 "retry_after")

    def __init__(self, rate=50, burst=100, max_sources=1024, max_transactions=1024,
                 max_per_source=256, retry_after=5):
        if rate < 0 or burst < 1 or max_sources < 1 or max_transactions < 1 \
                or max_per_source < 1 or retry_after < 1:
            raise ValueError("limits must be positive (rate 0: no rate limit)")
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self.max_transactions = max_transactions
        self.max_per_source = max_per_source
        self.retry_after = retry_after


class RateLimiter:
    """A token bucket per source address: `rate` requests a second, `burst` at once.

    Integer arithmetic in thousandths of a request, with times in milliseconds: each
    millisecond adds `rate` thousandths, a request takes a thousand.
    """

    def __init__(self, rate, burst, max_sources):
        self.rate = rate
        self.full = burst * 1000
        self.max_sources = max_sources
        self._buckets = {}  # address -> [thousandths left, when last topped up (ms)]
        self._swept = None  # when the table was last swept for whole buckets

    def allow(self, address, now):
        """Whether a request from `address` at `now` (ms) is within its allowance; it is
        taken from the allowance when it is. Returns 1 when allowed, 0 when refused, and
        -1 for the first refusal of an episode (to report it once): one that ends only
        when the address has been quiet long enough to have its whole allowance again, not
        with each request the rate lets through."""
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._make_room(now)
            self._buckets[address] = [self.full - 1000, now, False]
            return 1
        left = bucket[0] + (now - bucket[1]) * self.rate
        if left >= self.full:
            left = self.full
            bucket[2] = False  # quiet long enough for a whole allowance: the episode ended
        bucket[1] = now
        if left >= 1000:
            bucket[0] = left - 1000
            return 1
        bucket[0] = left
        if bucket[2]:
            return 0
        bucket[2] = True  # limited from now on, until a request is allowed again
        return -1

    def limited(self, now):
        """The addresses being refused now."""
        return [address for address, bucket in self._buckets.items()
                if bucket[2] and bucket[0] + (now - bucket[1]) * self.rate < 1000]

    def _make_room(self, now):
        """Forget the addresses whose allowance is whole again (they would start afresh
        anyway); at most once a second, and when none is, an arbitrary one."""
        buckets = self._buckets
        if self._swept is None or now - self._swept >= 1000:
            self._swept = now
            whole = [address for address, bucket in buckets.items()
                     if bucket[0] + (now - bucket[1]) * self.rate >= self.full]
            for address in whole:
                del buckets[address]
            if whole:
                return
        for address in buckets:
            del buckets[address]
            return
