"""Keep-alives on one flow to the registrar (RFC 5626 sections 3.5 and 4.4), as a sans-I/O
state machine.

    keepalive = KeepAlive(25000, "tcp", random, token)
    keepalive.start(now)
    data = keepalive.handle_timer(now)   # bytes to send on the flow now, or None
    keepalive.state == FAILED            # a ping went unanswered: recover the flow
    keepalive.pong(now)                  # a CRLF pong arrived on the flow
    keepalive.stun_response(message, now)     # True when the STUN answer was ours

What goes out depends on the flow:
- a stream (TCP, TLS): the double-CRLF ping; with `answered` (the registrar speaks
  outbound) the single-CRLF pong must come back within `timeout` (10 s, section 4.4.1);
- UDP with `stun`: a STUN Binding request (section 4.4.2), sent again after 0.5, 1, 2...
  seconds until `timeout`; an error response or a changed XOR-MAPPED-ADDRESS also fails
  the flow;
- otherwise (a registrar without outbound): a double CRLF that only keeps the NAT's
  mapping or the connection open; nothing comes back, so nothing can fail.

Pings go every 80-100% of `interval` ms, so that appliances started together spread out.
States: "off" (before start), "idle" (the next ping is scheduled), "waiting" (a ping is
unanswered), "failed" (until the caller starts it again on a new flow).
"""

from .stun import BINDING_SUCCESS, binding_request, xor_mapped_address

OFF = "off"
IDLE = "idle"
WAITING = "waiting"
FAILED = "failed"

PING = b"\r\n\r\n"
ANSWER_TIMEOUT = 10000  # ms, RFC 5626 section 4.4.1
STUN_RTO = 500  # ms before the first retransmission of a STUN keep-alive


class KeepAlive:
    """`transport` is the flow's ("udp", "tcp" or "tls"); `random()` gives floats in
    [0, 1) for the jitter; `token(n)` n random hex digits (STUN transaction ids)."""

    def __init__(self, interval, transport, random, token=None, stun=False, answered=False,
                 timeout=ANSWER_TIMEOUT):
        if interval < 1:
            raise ValueError("a keep-alive interval must be 1 ms or more")
        if stun and (transport != "udp" or token is None):
            raise ValueError("STUN keep-alives need UDP and a token source")
        self.interval = interval
        self.transport = transport
        self.random = random
        self.token = token
        self.stun = stun
        self.answered = answered or stun
        self.timeout = timeout
        self.state = OFF
        self.mapped = None  # (host, port) the last STUN answer showed
        self.last_answer = None  # ms
        self.error = None  # why the flow failed
        self.sent = 0
        self._next = None  # the next ping or retransmission (ms)
        self._deadline = None  # when an unanswered ping fails the flow (ms)
        self._request = None  # the STUN request awaiting its answer
        self._rto = STUN_RTO

    def start(self, now):
        """Begin (or begin again on a new flow): the first ping after one interval."""
        self.state = IDLE
        self.error = None
        self._request = None
        self._deadline = None
        self._schedule(now)

    def stop(self):
        self.state = OFF
        self._next = self._deadline = self._request = None

    def fail(self, error):
        """The caller saw the flow fail (its connection closed, a send failed)."""
        self.state = FAILED
        self.error = error
        self._next = self._deadline = self._request = None

    def get_timer(self):
        """When `handle_timer` must be called next (ms), or None."""
        if self._deadline is not None and (self._next is None or self._deadline < self._next):
            return self._deadline
        return self._next

    def handle_timer(self, now):
        """The bytes to send now (a ping or a STUN retransmission), or None. After it,
        `state` is FAILED when the answer is overdue."""
        if self.state != IDLE and self.state != WAITING:
            return None
        if self.state == WAITING and now >= self._deadline:
            self.fail("no answer to the keep-alive in %d s" % (self.timeout // 1000))
            return None
        if self._next is None or now < self._next:
            return None
        if self.state == WAITING:  # a STUN request not yet answered: send it again
            self._rto *= 2
            self._next = min(now + self._rto, self._deadline)
            return self._request.to_bytes()
        self.sent += 1
        if not self.answered:
            self._schedule(now)
            return PING
        self.state = WAITING
        self._deadline = now + self.timeout
        if not self.stun:
            self._next = None
            return PING
        self._rto = STUN_RTO
        self._next = now + self._rto
        self._request = binding_request(_bytes_from_hex(self.token(24)))
        return self._request.to_bytes()

    def pong(self, now):
        """A CRLF pong arrived on the stream flow."""
        if self.state == WAITING and not self.stun:
            self._answered(now)

    def stun_response(self, message, now):
        """A STUN message from the flow's peer: True when it answers our keep-alive."""
        request = self._request
        if request is None or message.transaction_id != request.transaction_id:
            return False
        if message.message_type != BINDING_SUCCESS:
            self.fail("the keep-alive was refused (STUN error response)")
            return True
        mapped = xor_mapped_address(message)
        if mapped is not None and self.mapped is not None and mapped != self.mapped:
            self.mapped = mapped
            self.fail("the flow's public address changed to %s:%d" % mapped)
            return True
        if mapped is not None:
            self.mapped = mapped
        self._answered(now)
        return True

    def status(self, now):
        return {
            "transport": self.transport,
            "method": "stun" if self.stun else "crlf",
            "answered": self.answered,
            "interval": self.interval // 1000,
            "state": self.state,
            "last_answer_ago": None if self.last_answer is None
            else (now - self.last_answer) // 1000,
            "error": self.error,
        }

    def _answered(self, now):
        self.state = IDLE
        self.last_answer = now
        self._request = None
        self._deadline = None
        self._schedule(now)

    def _schedule(self, now):
        self._next = now + self.interval * 4 // 5 + int(self.random() * (self.interval // 5))


def _bytes_from_hex(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))
