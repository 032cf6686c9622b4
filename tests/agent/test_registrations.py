"""Registrations (appliance/registrations.py) against a registrar the test plays, in virtual
time: failover across located servers, keep-alives and flow recovery, Contact updates.

Each test runs on a `VirtualLoop`, whose clock jumps to the next timer instead of sleeping,
so minutes of backoff take milliseconds; `FakeStack` stands in for `SipStack`, records what
goes out and lets the test answer it. What is asserted is what a user would notice: how
many REGISTERs go where and when, the state `appliance status` shows, and the log.
"""

import asyncio
import collections
import itertools
import logging
import math
import re
import selectors
import socket

from appliance import registrations as registrations_module
from appliance.config import IntercomDevice, ProxyConfig
from appliance.config_values import Secret
from appliance.net.resolver import ResolveError, Target
from appliance.net.stack import RandomTokens
from appliance.registrations import Registrations
from appliance.sip.events import ResponseReceived, TransactionTimedOut, TransportFailed
from appliance.sip.keepalive import PING
from appliance.sip.message import make_response

UDP_A = Target("udp", "198.51.100.1", 5060)
UDP_B = Target("udp", "198.51.100.2", 5060)
TCP_A = Target("tcp", "198.51.100.1", 5060)
TCP_B = Target("tcp", "198.51.100.2", 5060)
LOCAL = "192.0.2.10"  # the machine's address toward the registrar
INSTANCE = "6f1c9b9e-0000-4000-8000-000000000001"
RTT = 0.05  # seconds between a REGISTER and the registrar's answer, when it answers itself
SLACK = RTT + 0.01  # a round trip plus the virtual clock's millisecond steps
FIVE = ("door", "porch", "bell", "gate", "strike")

# -- virtual time -------------------------------------------------------------------------

TEST_LIMIT = 3600.0  # virtual seconds any test body may take
MAX_TURNS = 100_000  # loop iterations any test may take: a busy loop fails, not hangs


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that never waits: where the loop would sleep `timeout` seconds, it moves
    `clock` on by that much (in whole milliseconds, rounded up, as epoll does) and polls."""

    def __init__(self):
        super().__init__()
        self.clock = 1_000_000  # ms; any start will do, as with a monotonic clock
        self.turns = 0

    def select(self, timeout=None):
        self.turns += 1
        if self.turns > MAX_TURNS:
            raise RuntimeError("over %d loop turns: something is spinning" % MAX_TURNS)
        if timeout is None:
            raise RuntimeError("nothing is scheduled: the loop would wait forever")
        if timeout > 0:
            self.clock += max(1, math.ceil(timeout * 1000 - 1e-6))
        return super().select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: when nothing is ready, its clock jumps to the next
    timer instead of sleeping until it. Sockets are still polled (without waiting)."""

    def __init__(self):
        self.jumping = _JumpingSelector()
        super().__init__(self.jumping)

    def time(self):
        return self.jumping.clock / 1000


def run(body):
    """Run the coroutine function `body` on a fresh VirtualLoop, bounded by TEST_LIMIT
    virtual seconds; then cancel what it left running and close the loop. An exception in
    a callback (one of Registrations' timers) fails the test, where asyncio would only
    log it."""
    loop = VirtualLoop()
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    try:
        result = loop.run_until_complete(asyncio.wait_for(body(), TEST_LIMIT))
        assert errors == []
        return result
    finally:
        loop.jumping.turns = 0  # room to cancel, even after a spin
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks))
        loop.close()


# -- the stack and the registrar ------------------------------------------------------------

# What FakeStack saw: a keep-alive (ms, bytes, flow) and a close_flow call (ms, flow).
KeepAliveSent = collections.namedtuple("KeepAliveSent", "at data flow")
Closed = collections.namedtuple("Closed", "at flow")


class Transaction:
    """What `SipStack.send_request` returns, as far as Registrations looks at it: the request
    and where the core sends it. `target` (where it was asked to go) and `at` (ms) are
    for the test."""

    def __init__(self, request, destination, target, at):
        self.request = request
        self.destination = destination
        self.target = target
        self.at = at


class FakeEndpoint:
    def __init__(self, local):
        self.local = local  # transport -> (host, port) for Via and Contact
        self.token = RandomTokens()


class FakeStack:
    """`SipStack` as Registrations uses it (appliance/net/stack.py), in memory.

    Every REGISTER is kept in `sent`. The test answers it with `answer()`, or sets
    `registrar(transaction)`, called one RTT after each REGISTER goes out, to play a
    registrar that answers by itself; both go through `handler` and `closed_handler` as
    the real stack's events do. `connected` says whether the TCP flow is still open (a
    keep-alive on a closed one cannot be sent); `over_tcp` makes the core send every
    request over TCP whatever the target, as it does with one over 1300 bytes.
    """

    def __init__(self, transports=("udp", "tcp")):
        self.endpoint = FakeEndpoint({transport: (LOCAL, 5060) for transport in transports})
        self.bound = [(transport, "0.0.0.0", 5060) for transport in transports]
        self.route_source = LOCAL  # what the routing table picks toward the registrar
        self.handler = None
        self.closed_handler = None
        self.pong_handler = None
        self.registrar = None
        self.connected = True
        self.over_tcp = False
        self.sent = []  # Transactions, in order
        self.waiting = []  # those the test has not answered yet
        self.keepalives = []  # KeepAliveSent
        self.closed = []  # Closed
        self.kept = set()  # flows kept open

    def now(self):
        # round(), where SipStack truncates: this clock stands exactly on whole
        # milliseconds, which float error could otherwise turn into the one before.
        return round(asyncio.get_running_loop().time() * 1000)

    def send_request(self, request, destination):
        target = tuple(destination)
        where = ("tcp",) + target[1:] if self.over_tcp else target
        transaction = Transaction(request, where, target, self.now())
        self.sent.append(transaction)
        if self.registrar is not None:
            asyncio.get_running_loop().call_later(RTT, self.registrar, transaction)
        else:
            self.waiting.append(transaction)
        return transaction

    def send_keepalive(self, data, transport, host, port):
        self.keepalives.append(KeepAliveSent(self.now(), data, (transport, host, port)))
        return transport == "udp" or self.connected

    def keep_flow(self, transport, host, port, keep=True):
        if keep:
            self.kept.add((transport, host, port))
        else:
            self.kept.discard((transport, host, port))

    def close_flow(self, transport, host, port):
        self.closed.append(Closed(self.now(), (transport, host, port)))

    def families(self):
        return (socket.AF_INET,)  # IPv4 listeners only

    def local_host_toward(self, transport, host):
        return self.route_source

    def set_local_host(self, host):
        for transport, bound_host, port in self.bound:
            if bound_host in ("0.0.0.0", "", "::") and (":" in host) == (bound_host == "::"):
                self.endpoint.local[transport] = (host if ":" not in host else "[%s]" % host, port)

    def connection_lost(self, transport, host, port):
        """The registrar closed the TCP connection."""
        self.closed_handler(transport, host, port)

    def answer(self, respond):
        """Answer every REGISTER not answered yet, oldest first, and those they lead to,
        with the event `respond(transaction)` returns."""
        while self.waiting:
            self.handler(respond(self.waiting.pop(0)))


def ok(transaction, outbound=False):
    """A 200 that grants the Contact of the REGISTER it answers for 600 s."""
    fields = [("Contact", transaction.request.get("contact") + ";expires=600")]
    if outbound:
        fields.append(("Require", "outbound"))
    return ResponseReceived(
        make_response(transaction.request, 200, to_tag="r1", fields=fields), transaction
    )


def refusal(status):
    def respond(transaction):
        return ResponseReceived(
            make_response(transaction.request, status, to_tag="r1"), transaction
        )

    return respond


def device(transaction):
    return transaction.request.to.uri.user


def contact(transaction):
    return transaction.request.get("contact")


def located(monkeypatch, *targets):
    """Make RFC 3263 give `targets`; returns the list of `transports` each lookup named."""
    lookups = []

    async def locate(uri, transports, families):
        lookups.append(transports)
        return list(targets)

    monkeypatch.setattr(registrations_module, "locate", locate)
    return lookups


def make_registrations(stack, names, **options):
    proxy = ProxyConfig(registrar="sip:pbx.example.net", username="hall", password=Secret("secret"))
    registrations = Registrations(
        stack, proxy, [IntercomDevice(name=name) for name in names], **options
    )
    stack.handler = registrations.handle
    stack.closed_handler = registrations.connection_closed
    stack.pong_handler = registrations.pong
    return registrations


def messages(caplog, text):
    return [record.getMessage() for record in caplog.records if text in record.getMessage()]


def gaps(transactions):
    """Seconds between one REGISTER and the next."""
    return [(b.at - a.at) / 1000 for a, b in itertools.pairwise(transactions)]


def waits_within(gap, low, high):
    """`gap` is a wait drawn from [low, high] plus at most a round trip."""
    return low <= gap <= high + SLACK


# -- keep-alives and flow recovery --------------------------------------------------------


def test_a_registrar_without_outbound_gets_crlf_pings_and_no_pong_is_awaited(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    located(monkeypatch, TCP_A)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door"], keepalive=25, instance_id=INSTANCE)
        stack.registrar = lambda transaction: stack.handler(ok(transaction, outbound=False))
        await registrations.start()
        await asyncio.sleep(300)

        assert len(stack.sent) == 1
        assert registrations.status()[0]["state"] == "registered"
        assert {(ping.data, ping.flow) for ping in stack.keepalives} == {(PING, TCP_A)}
        assert len(stack.keepalives) >= 11
        assert all(20 <= gap <= 25 for gap in gaps(stack.keepalives))
        assert stack.closed == []
        keepalive = registrations.flow_status()["keepalive"]
        assert keepalive["method"] == "crlf"
        assert keepalive["answered"] is False
        assert keepalive["state"] == "idle"

    run(body)
    assert messages(caplog, "flow to the registrar") == []


def test_an_unanswered_ping_fails_the_flow_once_and_the_devices_register_again_at_once(
    monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    located(monkeypatch, TCP_A)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(
            stack, ["door", "bell", "gate"], keepalive=5, instance_id=INSTANCE
        )
        await registrations.start()
        # door and bell are registered (outbound); gate is refused and retries in 30-60 s,
        # so a timer runs while the flow is failed. No pong ever comes back.
        stack.answer(lambda t: ok(t, outbound=True) if device(t) != "gate" else refusal(403)(t))
        await asyncio.sleep(16)  # the ping goes at 4-5 s, fails 10 s later

        assert len(stack.keepalives) == 1
        assert len(stack.closed) == 1
        assert stack.closed[0] == Closed(stack.keepalives[0].at + 10000, TCP_A)
        again = stack.sent[3:]
        assert sorted(device(t) for t in again) == ["bell", "door"]
        assert all(t.at == stack.closed[0].at for t in again)  # at once, not after a wait

        await asyncio.sleep(60)  # nothing answers the new REGISTERs

        assert len(stack.closed) == 1
        assert len(stack.keepalives) == 1
        assert collections.Counter(device(t) for t in stack.sent) == dict(door=2, bell=2, gate=2)

    run(body)
    assert messages(caplog, "flow to the registrar") == [
        "flow to the registrar tcp:198.51.100.1:5060 failed: no answer to the keep-alive "
        "in 10 s; registering again"
    ]


def test_a_registrar_that_closes_every_flow_is_not_hammered(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    located(monkeypatch, TCP_A)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door"], keepalive=25, instance_id=INSTANCE)

        def answer_and_close(transaction):
            stack.handler(ok(transaction, outbound=True))
            stack.connection_lost(*transaction.destination)

        stack.registrar = answer_and_close
        await registrations.start()
        await asyncio.sleep(10)
        assert len(stack.sent) == 2  # the first recovery is immediate, the next waits

        await asyncio.sleep(590)
        # RFC 5626 section 4.5 backoff between recoveries: 30-60 s, 60-120 s, 120-240 s...
        waits = gaps(stack.sent)
        assert waits[0] <= SLACK
        for gap, (low, high) in zip(
            waits[1:], [(30, 60), (60, 120), (120, 240), (240, 480)], strict=False
        ):
            assert waits_within(gap, low, high), waits
        assert 5 <= len(stack.sent) <= 6
        assert all(t.target == TCP_A for t in stack.sent)
        await asyncio.sleep(RTT)  # the answer to a REGISTER that has just gone, if one has
        assert registrations.status()[0]["failures"] == 0
        return len(stack.sent)

    count = run(body)
    flows = messages(caplog, "flow to the registrar")
    assert len(flows) == count
    assert flows[0].endswith("the registrar closed the connection; registering again")
    assert all(" registering again in " in line for line in flows[1:])


def test_a_registrar_that_went_away_gets_one_flow_failure_then_the_backoff(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    located(monkeypatch, TCP_A)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door"], keepalive=25, instance_id=INSTANCE)
        stack.registrar = lambda transaction: stack.handler(ok(transaction, outbound=True))
        await registrations.start()
        await asyncio.sleep(5)

        # The registrar stops: it closes the connection and refuses every new one.
        stack.registrar = lambda transaction: stack.handler(TransportFailed(transaction))
        stack.connected = False
        stack.connection_lost(*TCP_A)
        await asyncio.sleep(600)

        assert len(stack.closed) == 1
        waits = gaps(stack.sent)
        assert 4.9 <= waits[0] <= 5 + SLACK  # the flow failure: registering again at once
        for gap, (low, high) in zip(
            waits[1:], [(30, 60), (60, 120), (120, 240), (240, 480)], strict=False
        ):
            assert waits_within(gap, low, high), waits
        assert 5 <= len(stack.sent) <= 6
        await asyncio.sleep(RTT)  # the answer to a REGISTER that has just gone, if one has
        status = registrations.status()[0]
        assert status["state"] == "backoff"
        assert status["last_error"] == "could not send to the registrar"
        assert status["failures"] == len(stack.sent) - 1  # all but the first
        # One warning per failed attempt, each saying when the next one goes.
        failures = messages(caplog, "not registered")
        assert len(failures) == len(stack.sent) - 1
        assert all(re.search(r"next attempt in \d+ s$", line) for line in failures), failures

    run(body)
    assert messages(caplog, "flow to the registrar") == [
        "flow to the registrar tcp:198.51.100.1:5060 failed: the registrar closed the "
        "connection; registering again"
    ]


# -- failover (RFC 3263 section 4.3) ------------------------------------------------------


def test_when_every_server_answers_503_each_device_tries_each_once_then_backs_off(
    monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    located(monkeypatch, UDP_A, UDP_B)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, FIVE)
        await registrations.start()
        stack.answer(refusal(503))

        per_device = collections.defaultdict(list)
        for transaction in stack.sent:
            per_device[device(transaction)].append(transaction.target)
        assert per_device == {name: [UDP_A, UDP_B] for name in FIVE}
        for status in registrations.status():
            assert status["state"] == "backoff"
            assert status["failures"] == 1
            assert status["last_error"] == "503 Service Unavailable"

        await asyncio.sleep(61)  # the first retry comes within 30-60 s
        retries = stack.sent[10:]
        assert sorted(device(t) for t in retries) == sorted(FIVE)
        assert {t.target for t in retries} == {UDP_A}

    run(body)
    assert messages(caplog, "; trying ") == [
        "registrar udp:198.51.100.1:5060: 503 Service Unavailable; trying udp:198.51.100.2:5060"
    ]


def test_after_a_503_every_device_registers_at_the_next_server_with_one_log_line(
    monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    located(monkeypatch, UDP_A, UDP_B)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, FIVE)
        await registrations.start()
        stack.answer(lambda t: refusal(503)(t) if t.target == UDP_A else ok(t))

        assert collections.Counter(t.target for t in stack.sent) == {UDP_A: 5, UDP_B: 5}
        for status in registrations.status():
            assert status["state"] == "registered"
            assert status["failures"] == 0
            assert status["last_error"] is None
        assert registrations.flow_status()["flow"] == "udp:198.51.100.2:5060"

    run(body)
    assert messages(caplog, "; trying ") == [
        "registrar udp:198.51.100.1:5060: 503 Service Unavailable; trying udp:198.51.100.2:5060"
    ]
    assert len(messages(caplog, " registered at udp:198.51.100.2:5060 ")) == 5


def test_a_register_the_core_moves_to_tcp_is_tried_once_per_server_per_attempt(monkeypatch):
    located(monkeypatch, UDP_A, UDP_B)

    async def body():
        stack = FakeStack()
        stack.over_tcp = True  # as with a REGISTER over 1300 bytes (RFC 3261 18.1.1)
        stack.registrar = lambda transaction: stack.handler(TransportFailed(transaction))
        registrations = make_registrations(stack, ["door"])
        await registrations.start()
        await asyncio.sleep(600)

        assert {t.destination[0] for t in stack.sent} == {"tcp"}
        attempts = [[stack.sent[0]]]
        for transaction, gap in zip(stack.sent[1:], gaps(stack.sent), strict=True):
            if gap > 1:
                attempts.append([])
            attempts[-1].append(transaction)
        assert all([t.target for t in attempt] == [UDP_A, UDP_B] for attempt in attempts[:-1])
        assert [t.target for t in attempts[-1]] in ([UDP_A], [UDP_A, UDP_B])
        # Attempts 30-60 s, 60-120 s, 120-240 s, 240-480 s apart: at most five in 600 s.
        assert 4 <= len(attempts) <= 5
        assert registrations.status()[0]["failures"] >= len(attempts) - 1

    run(body)


def test_after_failing_at_a_tcp_server_the_retry_goes_to_the_first_over_udp(monkeypatch):
    located(monkeypatch, UDP_A, TCP_B)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door"])
        await registrations.start()
        stack.handler(TransactionTimedOut(stack.sent[0]))
        assert stack.sent[1].target == TCP_B
        assert contact(stack.sent[1]) == "<sip:door@192.0.2.10:5060;transport=tcp>"

        stack.handler(TransportFailed(stack.sent[1]))
        status = registrations.status()[0]
        assert status["state"] == "backoff"
        assert status["failures"] == 1
        await asyncio.sleep(61)

        assert len(stack.sent) == 3
        assert stack.sent[2].target == UDP_A
        assert contact(stack.sent[2]) == "<sip:door@192.0.2.10:5060>"
        assert TCP_B not in stack.kept  # the connection to the second is no longer held

    run(body)


# -- Contacts -------------------------------------------------------------------------------


def test_a_contact_that_changes_while_a_register_is_outstanding_is_registered_next(
    monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    located(monkeypatch, UDP_A)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door"])
        await registrations.start()
        registrations.set_public(("203.0.113.9", 40000))  # STUN answers before the registrar
        assert len(stack.sent) == 1

        stack.handler(ok(stack.sent[0]))  # it lists the Contact of that first REGISTER
        status = registrations.status()[0]
        assert status["failures"] == 0
        assert status["last_error"] is None
        assert len(stack.sent) == 2
        assert contact(stack.sent[1]) == "<sip:door@203.0.113.9:40000>"

        stack.answer(ok)
        status = registrations.status()[0]
        assert status["state"] == "registered"
        assert status["contact"] == "sip:door@203.0.113.9:40000"
        assert status["failures"] == 0

    run(body)
    assert messages(caplog, "not registered") == []


def test_a_tcp_only_listen_registers_with_a_tcp_contact(monkeypatch):
    lookups = located(monkeypatch, TCP_A)

    async def body():
        stack = FakeStack(transports=("tcp",))
        registrations = make_registrations(stack, ["door"])
        await registrations.start()
        assert lookups == [("tcp",)]
        assert [t.target for t in stack.sent] == [TCP_A]
        assert contact(stack.sent[0]) == "<sip:door@192.0.2.10:5060;transport=tcp>"
        stack.answer(ok)
        assert registrations.status()[0]["state"] == "registered"

    run(body)


# -- a registrar that does not resolve ----------------------------------------------------


def resolving_on_second_lookup(monkeypatch):
    """locate() fails once, then finds TCP_A; returns the list of lookups made."""
    lookups = []

    async def locate(uri, transports, families):
        lookups.append(uri)
        if len(lookups) == 1:
            raise ResolveError("cannot resolve pbx.example.net: no address")
        return [TCP_A]

    monkeypatch.setattr(registrations_module, "locate", locate)
    return lookups


def test_a_registrar_that_does_not_resolve_is_looked_up_again_after_the_backoff(
    monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="appliance.registrations")
    lookups = resolving_on_second_lookup(monkeypatch)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door"])
        await registrations.start()
        assert (
            registrations.status()[0]["last_error"] == "cannot resolve pbx.example.net: no address"
        )
        await asyncio.sleep(29)
        assert stack.sent == []
        await asyncio.sleep(32)  # the retry comes within 30-60 s
        assert len(lookups) == 2
        assert [t.target for t in stack.sent] == [TCP_A]

    run(body)
    assert len(messages(caplog, "no address; registering the devices in ")) == 1


def test_stop_cancels_a_pending_lookup_retry(monkeypatch):
    lookups = resolving_on_second_lookup(monkeypatch)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door"])
        await registrations.start()
        await registrations.stop()
        await asyncio.sleep(600)
        assert len(lookups) == 1
        assert stack.sent == []

    run(body)


# -- a config reload -------------------------------------------------------------------------


def test_a_reload_registers_the_new_unregisters_the_gone_and_leaves_the_rest(monkeypatch):
    located(monkeypatch, UDP_A)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door", "porch", "bell"])

        def registrar(transaction):  # challenges the bell, once it has credentials
            request = transaction.request
            if device(transaction) == "bell" and len(stack.sent) > 3 \
                    and request.get("authorization") is None:
                stack.handler(ResponseReceived(make_response(request, 401, to_tag="r1", fields=[
                    ("WWW-Authenticate", 'Digest realm="home", nonce="n1", qop="auth"')]),
                    transaction))
            else:
                stack.handler(ok(transaction))

        stack.registrar = registrar
        await registrations.start()
        await asyncio.sleep(10)
        assert len(stack.sent) == 3
        door = registrations.registrations["door"]

        registrations.update([
            IntercomDevice(name="door"),
            IntercomDevice(name="bell", username="bell", password=Secret("new")),
            IntercomDevice(name="gate"),
        ])
        await asyncio.sleep(10)
        after = [(device(t), t.request.get("expires")) for t in stack.sent[3:]]
        assert sorted(after) == [("bell", "600"), ("bell", "600"), ("gate", "600"),
                                 ("porch", "0")]
        answer = [t.request for t in stack.sent if t.request.get("authorization")]
        assert len(answer) == 1 and 'username="bell"' in answer[0].get("authorization")
        assert registrations.registrations["door"] is door  # its binding untouched
        assert [(entry["device"], entry["state"]) for entry in registrations.status()] == [
            ("door", "registered"), ("bell", "registered"), ("gate", "registered")]

    run(body)


def test_a_reload_before_the_registrar_is_found_registers_the_new_list(monkeypatch):
    lookups = resolving_on_second_lookup(monkeypatch)

    async def body():
        stack = FakeStack()
        registrations = make_registrations(stack, ["door", "porch"])
        stack.registrar = lambda transaction: stack.handler(ok(transaction))
        await registrations.start()
        registrations.update([IntercomDevice(name="door"), IntercomDevice(name="gate")])
        await asyncio.sleep(120)
        assert len(lookups) == 2
        assert sorted(device(t) for t in stack.sent) == ["door", "gate"]

    run(body)
