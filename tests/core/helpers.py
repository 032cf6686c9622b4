"""Helpers for the core's tests (after h11's tests/helpers.py).

Everything here runs on MicroPython too: no dataclasses, typing or os.path.

- `TokenSource`: a deterministic stand-in for the random token source (counter in hex).
- `make_endpoint(name, ...)`: an Endpoint for "alice" (127.0.0.1:5061) or "bob"
  (127.0.0.1:5062) with deterministic tokens.
- `make_request(method, ...)` and `options`/`invite`/`message`/`bye`/`ack`/`cancel`:
  requests as a peer would send them (Via, Max-Forwards, From, To, Call-ID, CSeq,
  Content-Length); `wire(request)` gives the bytes.
- `FakeClock` and `run_timers(endpoint, clock, until)`: time is an int of milliseconds,
  advanced explicitly; `run_timers` stops at every deadline, so the times at which a
  transaction retransmits are exact.
- `UaPair`: alice and bob joined in memory, with loss simulated by a drop predicate.
"""

from appliance.sip.endpoint import Capabilities, Endpoint
from appliance.sip.errors import ParseError
from appliance.sip.message import Request, parse_message
from appliance.sip.transaction import TimerValues

HOST = "127.0.0.1"
ADDRESSES = {"alice": (HOST, 5061), "bob": (HOST, 5062)}
ALICE = ADDRESSES["alice"]
BOB = ADDRESSES["bob"]
ALICE_URI = "sip:alice@127.0.0.1:5061"
BOB_URI = "sip:bob@127.0.0.1:5062"

ALLOW = ("OPTIONS", "INVITE", "ACK", "CANCEL", "BYE", "MESSAGE", "INFO")
ACCEPT = ("application/sdp", "text/plain")

# One prefix per endpoint keeps their branches and tags apart (and readable in failures).
_PREFIXES = {"alice": "a", "bob": "b"}


class TokenSource:
    """Counter-based hex tokens: `prefix` then the count, zero-padded to the length."""

    def __init__(self, prefix=""):
        self.prefix = prefix
        self.count = 0

    def __call__(self, length):
        self.count += 1
        digits = "%x" % self.count
        pad = length - len(self.prefix) - len(digits)
        return (self.prefix + "0" * pad + digits)[-length:] if pad >= 0 else digits[-length:]


def make_endpoint(name, transport="udp", allow=ALLOW, accept=ACCEPT, supported=(),
                  timers=None, user_agent=None, limits=None):
    """An Endpoint listening on the address of `name` for `transport` ("udp", "tcp", or a
    tuple of them). `timers` defaults to TimerValues(t1=500, t2=4000, t4=5000); `limits`
    to the endpoint's own."""
    if isinstance(transport, str):
        transport = (transport,)
    address = ADDRESSES[name]
    local = {}
    for name_ in transport:
        local[name_] = address
    return Endpoint(
        local,
        TokenSource(_PREFIXES.get(name, "f")),
        Capabilities(allow=allow, accept=accept, supported=supported),
        timers if timers is not None else TimerValues(t1=500, t2=4000, t4=5000),
        user_agent,
        limits,
    )


def make_request(method, uri=BOB_URI, branch="z9hG4bK-test-1", call_id="call-1", cseq=1,
                 from_tag="alice-tag", to_tag=None, transport="UDP", sent_by="127.0.0.1:5061",
                 rport=False, via=None, cseq_method=None, max_forwards="70", fields=(),
                 body=b"", content_type=None, omit=(), from_uri=ALICE_URI, to_uri=BOB_URI):
    """A request as a peer sends it. `via` replaces the whole Via value; `omit` names
    headers (lower case) to leave out; `fields` are extra (name, value) pairs, added
    before Content-Type and Content-Length."""
    if via is None:
        via = "SIP/2.0/%s %s;branch=%s" % (transport, sent_by, branch)
        if rport:
            via += ";rport"
    from_value = "<%s>" % from_uri
    if from_tag is not None:
        from_value += ";tag=" + from_tag
    to_value = "<%s>" % to_uri
    if to_tag is not None:
        to_value += ";tag=" + to_tag
    out = [
        ["Via", via],
        ["Max-Forwards", max_forwards],
        ["From", from_value],
        ["To", to_value],
        ["Call-ID", call_id],
        ["CSeq", "%d %s" % (cseq, cseq_method or method)],
    ]
    for name, value in fields:
        out.append([name, str(value)])
    if body and content_type is not None:
        out.append(["Content-Type", content_type])
    out.append(["Content-Length", str(len(body))])
    out = [field for field in out if field[0].lower() not in omit]
    return Request(method, uri, out, body)


def options(**kw):
    return make_request("OPTIONS", **kw)


def invite(**kw):
    return make_request("INVITE", **kw)


def message(**kw):
    kw.setdefault("body", b"hello")
    kw.setdefault("content_type", "text/plain")
    return make_request("MESSAGE", **kw)


def bye(**kw):
    return make_request("BYE", **kw)


def ack(**kw):
    return make_request("ACK", **kw)


def cancel(**kw):
    return make_request("CANCEL", **kw)


def wire(request):
    return request.to_bytes()


def outgoing(request):
    """A request for `Endpoint.send_request`: no Via (the endpoint writes it)."""
    request.remove("via")
    return request


# -- inspecting an endpoint ------------------------------------------------------------


def drain(endpoint):
    """Every pending event, in order."""
    out = []
    while True:
        event = endpoint.next_event()
        if event is None:
            return out
        out.append(event)


def sent(endpoint):
    """Every pending Datagram, in order."""
    return endpoint.datagrams_to_send()


def parsed(datagram):
    return parse_message(datagram.data, datagram.transport != "udp")


def is_request(datagram):
    return not datagram.data.startswith(b"SIP/2.0 ")


def status_of(datagram):
    """The status code of a response datagram, or None for a request."""
    if is_request(datagram):
        return None
    return int(datagram.data[8:11].decode())


def method_of(datagram):
    """The method of a request datagram, or the CSeq method of a response."""
    message_ = parsed(datagram)
    if isinstance(message_, Request):
        return message_.method
    return message_.cseq.method


def kinds(events):
    return [type(event).__name__ for event in events]


def events_of(events, cls):
    return [event for event in events if isinstance(event, cls)]


# -- time ------------------------------------------------------------------------------


class FakeClock:
    """Milliseconds, advanced only when a test says so."""

    def __init__(self, now=0):
        self.now = now

    def advance(self, ms):
        self.now += ms
        return self.now

    def set(self, now):
        if now < self.now:
            raise ValueError("time goes forward only")
        self.now = now
        return now


def run_timers(endpoint, clock, until):
    """Fire every timer of `endpoint` due up to `until`, each at its own deadline, and
    return [(time, Datagram)] for what it sent; the clock ends at `until`."""
    out = []
    while True:
        deadline = endpoint.get_timer()
        if deadline is None or deadline > until:
            break
        if deadline > clock.now:
            clock.set(deadline)
        endpoint.handle_timer(clock.now)
        for datagram in endpoint.datagrams_to_send():
            out.append((clock.now, datagram))
    clock.set(until)
    return out


def times(timed):
    return [t for t, _ in timed]


class DropFirst:
    """A drop predicate: drops the first `count` datagrams that `match` accepts."""

    def __init__(self, count, match=None):
        self.count = count
        self.match = match
        self.dropped = []

    def __call__(self, datagram):
        if len(self.dropped) >= self.count:
            return False
        if self.match is not None and not self.match(datagram):
            return False
        self.dropped.append(datagram)
        return True


# -- two agents in memory --------------------------------------------------------------


class UaPair:
    """alice (127.0.0.1:5061) and bob (127.0.0.1:5062) joined in memory.

    `deliver(now, drop)` moves every pending Datagram to the endpoint listening at its
    (host, port), until nothing is pending, and returns what moved; `drop(datagram)`
    returning true loses that datagram instead. `log` keeps (time, sender name, Datagram,
    dropped) for everything that went out. `run_until(t)` fires every timer of both
    endpoints at its own deadline up to `t`, delivering after each.
    """

    def __init__(self, transport="udp", timers=None, allow=ALLOW, clock=None):
        self.clock = clock if clock is not None else FakeClock()
        self.alice = make_endpoint("alice", transport, allow=allow, timers=timers)
        self.bob = make_endpoint("bob", transport, allow=allow, timers=timers)
        self.names = {id(self.alice): "alice", id(self.bob): "bob"}
        self.log = []

    def endpoint_at(self, host, port):
        for endpoint in (self.alice, self.bob):
            for address in endpoint.local.values():
                if address[0] == host and address[1] == port:
                    return endpoint
        return None

    def deliver(self, now=None, drop=None):
        if now is None:
            now = self.clock.now
        moved = []
        for _ in range(100):
            pending = False
            for sender in (self.alice, self.bob):
                for datagram in sender.datagrams_to_send():
                    pending = True
                    lost = drop is not None and drop(datagram)
                    self.log.append((now, self.names[id(sender)], datagram, lost))
                    if lost:
                        continue
                    target = self.endpoint_at(datagram.host, datagram.port)
                    if target is None:
                        raise AssertionError("nobody at %s:%s" % (datagram.host, datagram.port))
                    source = sender.local[datagram.transport]
                    target.receive(datagram.data, datagram.transport, source, now)
                    moved.append(datagram)
            if not pending:
                return moved
        raise AssertionError("datagrams kept coming")

    def next_deadline(self):
        deadlines = [d for d in (self.alice.get_timer(), self.bob.get_timer()) if d is not None]
        return min(deadlines) if deadlines else None

    def advance(self, ms, drop=None):
        """Move the clock by `ms` in one step, fire what is due, deliver."""
        now = self.clock.advance(ms)
        self.alice.handle_timer(now)
        self.bob.handle_timer(now)
        return self.deliver(now, drop)

    def run_until(self, until, drop=None):
        moved = []
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > until:
                break
            if deadline > self.clock.now:
                self.clock.set(deadline)
            now = self.clock.now
            self.alice.handle_timer(now)
            self.bob.handle_timer(now)
            moved.extend(self.deliver(now, drop))
        self.clock.set(until)
        moved.extend(self.deliver(until, drop))
        return moved

    def events(self, endpoint):
        return drain(endpoint)

    def sent_by(self, name, dropped=None):
        """(time, Datagram) of what `name` sent, optionally only dropped or delivered."""
        return [
            (t, d) for t, who, d, lost in self.log
            if who == name and (dropped is None or lost == dropped)
        ]


def error_of(function, *args):
    """The ParseError that function(*args) raises."""
    try:
        function(*args)
    except ParseError as error:
        return error
    raise AssertionError("no ParseError from %r" % (args,))
