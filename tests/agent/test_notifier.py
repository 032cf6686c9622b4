"""The agent as a notifier (RFC 6665), over real loopback UDP: who may watch, what the
NOTIFYs say, and every way a subscription ends.

A `Watcher` is a subscriber written for the test: a UDP socket, SUBSCRIBEs answered
through the core's DigestClient (the client half; the agent's server half is under test),
NOTIFYs read and answered as the test says. Limits are lowered on the agent's notifier
for a test, and the stack's T1 shortened, so that what the RFCs time in tens of seconds
takes one or two.
"""

import asyncio
import contextlib
import itertools
import json
import socket
import xml.etree.ElementTree as ElementTree

import pytest

from appliance.sip.digest import DigestClient
from appliance.sip.message import make_request, make_response, parse_message
from appliance.sip.transaction import TimerValues

from .support import REPLY_WAIT, agent_from, run, wait_until

HOME = """
[agent]
name = "test-home"
domain = "home.arpa"
simulate = true
listen = ["udp:127.0.0.1:0"]
control = "{control}"

[[users]]
name = "alice"
password = "alice-pw"
devices = ["frontdoor", "doorbell"]

[[users]]
name = "guest"
password = "guest-pw"
devices = ["doorbell"]

[[devices]]
name = "frontdoor"
type = "door"
pin = 17

[[devices]]
name = "doorbell"
type = "doorbell"
pin = 27
"""
PIDF = "{urn:ietf:params:xml:ns:pidf}"


def home(tmp_path):
    return agent_from(tmp_path, HOME)


def port_of(agent):
    return agent.stack.bound[0][2]


class Watcher:
    """A subscriber on its own UDP socket."""

    _numbers = itertools.count(1)

    def __init__(self, agent, user="alice", password="alice-pw"):
        self.agent_port = port_of(agent)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.get_running_loop()
        self.digest = DigestClient(lambda realm: (user, password), _token)
        self.call_id = "watch-%d" % next(self._numbers)
        self.cseq = 0
        self.remote_tag = None
        self.notifies = asyncio.Queue()
        self.responses = asyncio.Queue()
        self.answer = 200  # what NOTIFYs get; None: no answer
        self._reader = self.loop.create_task(self._read())

    async def _read(self):
        while True:
            data, _ = await self.loop.sock_recvfrom(self.sock, 65535)
            message = parse_message(data)
            if hasattr(message, "method"):
                if self.answer is not None:
                    response = make_response(message, self.answer)
                    await self.loop.sock_sendto(self.sock, response.to_bytes(),
                                                ("127.0.0.1", self.agent_port))
                await self.notifies.put(message)
            else:
                await self.responses.put(message)

    async def subscribe(self, device="frontdoor", event="appliance", expires=120,
                        fields=()):
        """SUBSCRIBE (in the dialog once there is one); answers a challenge once."""
        for _ in range(2):
            self.cseq += 1
            request = make_request(
                "SUBSCRIBE", "sip:%s@127.0.0.1:%d" % (device, self.agent_port),
                "sip:watcher@127.0.0.1:%d" % self.port, "wtag", self.call_id, self.cseq,
                fields=[("Via", "SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s%d;rport"
                         % (self.port, self.call_id, self.cseq)),
                        ("Contact", "<sip:watcher@127.0.0.1:%d>" % self.port),
                        ("Event", event), ("Expires", expires), *fields],
            )
            if self.remote_tag:
                request.set("To", "<sip:%s@127.0.0.1:%d>;tag=%s"
                            % (device, self.agent_port, self.remote_tag))
            self.digest.authorize(request)
            await self.loop.sock_sendto(self.sock, request.to_bytes(),
                                        ("127.0.0.1", self.agent_port))
            response = await self.response()
            if response.status in (401, 407) and self.digest.challenged(response):
                continue
            break
        if response.status == 200 and self.remote_tag is None:
            self.remote_tag = response.to.tag
        return response

    async def response(self):
        while True:
            response = await asyncio.wait_for(self.responses.get(), REPLY_WAIT)
            if response.status >= 200:
                return response

    async def notify(self, timeout=REPLY_WAIT):
        return await asyncio.wait_for(self.notifies.get(), timeout)

    async def no_notify(self, seconds):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.notifies.get(), seconds)

    def close(self):
        self._reader.cancel()
        self.sock.close()


def _token(length):
    return "".join(next(_hex) for _ in range(length))


_hex = itertools.cycle("0123456789abcdef")


@contextlib.asynccontextmanager
async def watcher(agent, **kwargs):
    peer = Watcher(agent, **kwargs)
    try:
        yield peer
    finally:
        peer.close()


def state_of(notify):
    return json.loads(notify.body)


# -- subscribing -------------------------------------------------------------------------


def test_subscribe_gets_the_state_now_then_every_change_in_order(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            response = await alice.subscribe()
            assert (response.status, response.get("expires")) == (200, "120")
            first = await alice.notify()
            assert first.get("subscription-state").startswith("active;expires=1")
            assert first.get("content-type") == "application/json"
            assert state_of(first)["state"] == "closed"
            for state in ("open", "closed", "open"):
                agent.simulate("frontdoor", state)
                await asyncio.sleep(0.02)
            states = [state_of(await alice.notify()) for _ in range(3)]
            assert [s["state"] for s in states] == ["open", "closed", "open"]
            assert [s["seq"] for s in states] == [1, 2, 3]  # one per event: gaps show
            [entry] = agent.status()["subscriptions"]
            assert (entry["user"], entry["device"], entry["notifications"]) == (
                "alice", "frontdoor", 4)

    run(body())


def test_presence_for_a_stock_phone(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            response = await alice.subscribe(event="presence")
            assert response.status == 200
            first = await alice.notify()
            assert first.get("content-type") == "application/pidf+xml"
            document = ElementTree.fromstring(first.body)
            assert document.get("entity") == "sip:frontdoor@home.arpa"
            assert document.find(PIDF + "tuple/" + PIDF + "status/" + PIDF + "basic").text \
                == "closed"
            agent.simulate("frontdoor", "open")
            document = ElementTree.fromstring((await alice.notify()).body)
            assert document.find(".//" + PIDF + "basic").text == "open"
            assert document.find(PIDF + "note").text.startswith("Door open since ")
            assert document.find(".//" + PIDF + "timestamp") is not None

    run(body())


def test_who_may_subscribe(tmp_path):
    async def body():
        async with home(tmp_path) as agent:
            async with watcher(agent, password="wrong") as mallory:
                assert (await mallory.subscribe()).status == 401
                await mallory.no_notify(0.3)  # no state for a wrong password
            async with watcher(agent, user="guest", password="guest-pw") as guest:
                assert (await guest.subscribe()).status == 403  # not shared with guest
                assert (await guest.subscribe("doorbell")).status == 200
                assert state_of(await guest.notify())["device"] == "doorbell"
            assert [(s["user"], s["device"]) for s in agent.status()["subscriptions"]] == [
                ("guest", "doorbell")]

    run(body())


def test_unknown_package_interval_too_brief_and_cap(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            response = await alice.subscribe(event="dialog")
            assert response.status == 489
            assert response.get("allow-events") == "presence, appliance"
            response = await alice.subscribe(expires=10)
            assert (response.status, response.get("min-expires")) == (423, "60")
            response = await alice.subscribe(expires=86400)
            assert (response.status, response.get("expires")) == (200, "3600")
            response = await alice.subscribe(event="appliance", fields=[("Accept",
                                                                           "text/html")])
            assert response.status == 406

    run(body())


# -- ending ------------------------------------------------------------------------------


def test_unsubscribe_gets_a_last_notify_terminated(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            await alice.subscribe()
            await alice.notify()
            response = await alice.subscribe(expires=0)
            assert response.status == 200
            last = await alice.notify()
            assert last.get("subscription-state") == "terminated"
            assert await wait_until(lambda: not agent.status()["subscriptions"])
            agent.simulate("frontdoor", "open")
            await alice.no_notify(0.3)

    run(body())


def test_a_fetch_gets_the_state_once(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            response = await alice.subscribe(expires=0)
            assert (response.status, response.get("expires")) == (200, "0")
            only = await alice.notify()
            assert only.get("subscription-state") == "terminated;reason=timeout"
            assert state_of(only)["state"] == "closed"
            assert await wait_until(lambda: not agent.status()["subscriptions"])

    run(body())


def test_a_lapsed_subscription_ends_with_reason_timeout(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            agent.notifier.min_expires = 1
            await alice.subscribe(expires=1)
            await alice.notify()
            last = await alice.notify(timeout=3.0)
            assert last.get("subscription-state") == "terminated;reason=timeout"
            assert await wait_until(lambda: not agent.status()["subscriptions"])

    run(body())


def test_a_refresh_in_an_unknown_dialog_gets_481(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            alice.remote_tag = "no-such-tag"
            assert (await alice.subscribe()).status == 481

    run(body())


def test_a_notify_answered_481_drops_the_subscription(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            alice.answer = 481  # the watcher forgot it
            await alice.subscribe()
            await alice.notify()
            assert await wait_until(lambda: not agent.status()["subscriptions"])
            agent.simulate("frontdoor", "open")
            await alice.no_notify(0.3)

    run(body())


def test_a_watcher_that_never_answers_is_dropped(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            # T1 of 20 ms: the NOTIFY's transaction gives up after 64 * T1 = 1.3 s.
            agent.stack.endpoint.timers = TimerValues(t1=20, t2=160, t4=200)
            alice.answer = None
            await alice.subscribe()
            await alice.notify()  # and its retransmissions, unanswered
            assert await wait_until(lambda: not agent.status()["subscriptions"], timeout=5)

    run(body())


def test_subscriptions_are_bounded(tmp_path):
    async def body():
        async with home(tmp_path) as agent:
            agent.notifier.max_per_device = 2
            watchers = [Watcher(agent) for _ in range(3)]
            try:
                for accepted in watchers[:2]:
                    assert (await accepted.subscribe()).status == 200
                response = await watchers[2].subscribe()
                assert (response.status, response.get("retry-after")) == (503, "60")
                # The doorbell has room of its own.
                assert (await watchers[2].subscribe("doorbell")).status == 200
            finally:
                for peer in watchers:
                    peer.close()

    run(body())


def test_a_subscribe_without_a_usable_contact_gets_400_not_200(tmp_path):
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            response = await alice.subscribe(fields=[("Contact", "<sip:")])
            assert response.status == 400
            assert not agent.status()["subscriptions"]

    run(body())


def test_unsubscribing_while_a_notify_is_unanswered_ends_once(tmp_path):
    # The last NOTIFY waits for the outstanding one; meanwhile nothing spins or repeats.
    async def body():
        async with home(tmp_path) as agent, watcher(agent) as alice:
            alice.answer = None  # the first NOTIFY stays unanswered for now
            await alice.subscribe()
            first = await alice.notify()
            response = await alice.subscribe(expires=0)
            assert response.status == 200
            assert agent.notifier._timer is None  # no timer re-armed in the past
            alice.answer = 200
            await alice.loop.sock_sendto(alice.sock, make_response(first, 200).to_bytes(),
                                         ("127.0.0.1", alice.agent_port))
            notify = await alice.notify()
            while notify.cseq.number == first.cseq.number:  # retransmissions of the first
                notify = await alice.notify()
            assert notify.get("subscription-state") == "terminated"
            assert await wait_until(lambda: not agent.status()["subscriptions"])

    run(body())
