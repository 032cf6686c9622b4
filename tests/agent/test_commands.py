"""Lights and relays obeying the command language over real loopback UDP, only for users
they are shared with (the language itself: tests/core/test_commands.py)."""

import asyncio
import contextlib
import itertools
import json
import socket

import pytest

from appliance.config import ConfigError, load
from appliance.sip.digest import DigestClient
from appliance.sip.message import make_request, make_response, parse_message

from .support import REPLY_WAIT, TEST_ENV, agent_from, run, wait_until
from .test_notifier import Watcher, state_of

# -- lights and relays over SIP ----------------------------------------------------------

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
devices = ["porch", "strike", "hall"]

[[users]]
name = "guest"
password = "guest-pw"
devices = ["hall"]

[[devices]]
name = "porch"
type = "light"
pin = 22
dimmable = true
reply = true

[[devices]]
name = "hall"
type = "light"
pin = 23

[[devices]]
name = "strike"
type = "relay"
pin = 24
pulse = 0.3
"""


def home(tmp_path):
    return agent_from(tmp_path, HOME)


class Controller:
    """A user agent that sends MESSAGE and DO, answering challenges with its credentials."""

    _numbers = itertools.count(1)

    def __init__(self, agent, user="alice", password="alice-pw", host="127.0.0.1"):
        self.agent_port = agent.stack.bound[0][2]
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.get_running_loop()
        self.digest = DigestClient(lambda realm: (user, password), lambda n: "ab" * (n // 2))
        self.cseq = 0
        self.requests = []

    async def send(self, device, body, method="DO", content_type="text/plain", answer=True):
        call_id = "control-%d" % next(self._numbers)
        for _ in range(2):
            self.cseq += 1
            fields = [("Via", "SIP/2.0/UDP %s:%d;branch=z9hG4bK%s%d;rport"
                       % (self.host, self.port, call_id, self.cseq))]
            if content_type:
                fields.append(("Content-Type", content_type))
            request = make_request(method, "sip:%s@127.0.0.1:%d" % (device, self.agent_port),
                                   "sip:alice@%s:%d" % (self.host, self.port), "ctag", call_id,
                                   self.cseq, fields=fields, body=body)
            self.digest.authorize(request)
            await self.loop.sock_sendto(self.sock, request.to_bytes(),
                                        ("127.0.0.1", self.agent_port))
            response = await self._final()
            if answer and response.status in (401, 407) and self.digest.challenged(response):
                continue
            return response
        return response

    async def _final(self):
        while True:
            data, _ = await asyncio.wait_for(self.loop.sock_recvfrom(self.sock, 65535),
                                             REPLY_WAIT)
            message = parse_message(data)
            if hasattr(message, "method"):
                self.requests.append(message)
            elif message.status >= 200:
                return message

    async def request(self):
        """The next request sent to us (a reply MESSAGE), answered 200."""
        while not self.requests:
            data, _ = await asyncio.wait_for(self.loop.sock_recvfrom(self.sock, 65535),
                                             REPLY_WAIT)
            message = parse_message(data)
            if hasattr(message, "method"):
                self.requests.append(message)
        request = self.requests.pop(0)
        await self.loop.sock_sendto(self.sock, make_response(request, 200).to_bytes(),
                                    ("127.0.0.1", self.agent_port))
        return request

    def close(self):
        self.sock.close()


@contextlib.asynccontextmanager
async def controller(agent, **kwargs):
    peer = Controller(agent, **kwargs)
    try:
        yield peer
    finally:
        peer.close()


def pin(agent, name):
    return agent.devices[name].output.pin.state


def test_do_and_message_switch_the_light_for_an_allowed_user(tmp_path):
    async def body():
        async with home(tmp_path) as agent, controller(agent) as alice:
            response = await alice.send("porch", b"on")
            assert response.status == 200
            assert response.get("content-type") == "application/json"
            assert json.loads(response.body) == dict(json.loads(response.body),
                                                     device="porch", state="on",
                                                     brightness=100)
            assert pin(agent, "porch") == 1.0
            response = await alice.send("porch", b'{"state": "ON", "brightness": 40}',
                                        content_type="application/json")
            assert json.loads(response.body)["brightness"] == 40
            assert pin(agent, "porch") == pytest.approx(0.4)
            response = await alice.send("porch", b"off", method="MESSAGE")
            assert (response.status, response.body) == (200, b"")  # RFC 3428: no body
            assert pin(agent, "porch") == 0
            response = await alice.send("hall", b"<dmp><command>ON</command></dmp>",
                                        content_type="application/dmp")
            assert (response.status, pin(agent, "hall")) == (200, 1)

    run(body())


def test_a_relay_pulses_and_falls_back(tmp_path):
    async def body():
        async with home(tmp_path) as agent, controller(agent) as alice:
            response = await alice.send("strike", b"pulse")
            assert json.loads(response.body)["state"] == "on"
            assert pin(agent, "strike") == 1
            assert await wait_until(lambda: pin(agent, "strike") == 0, timeout=2.0)

    run(body())


def test_nothing_moves_without_the_right_user(tmp_path):
    async def body():
        async with home(tmp_path) as agent:
            async with controller(agent) as anonymous:
                response = await anonymous.send("porch", b"on", answer=False)
                assert response.status == 401
                assert response.get("www-authenticate").startswith("Digest ")
            async with controller(agent, password="wrong") as mallory:
                assert (await mallory.send("porch", b"on")).status == 401
            async with controller(agent, user="guest", password="guest-pw") as guest:
                assert (await guest.send("porch", b"on")).status == 403
                assert (await guest.send("hall", b"on")).status == 200
            assert pin(agent, "porch") == 0

    run(body())


def test_bad_requests_get_their_status_and_move_nothing(tmp_path):
    async def body():
        async with home(tmp_path) as agent, controller(agent) as alice:
            for payload, content_type, status in (
                (b"open sesame", "text/plain", 400),
                (b"on" + b" " * 1100, "text/plain", 413),
                (b"", "text/plain", 400),
                (b"<p>on</p>", "text/html", 415),
                (b"dim 50", "text/plain", 200),
            ):
                response = await alice.send("hall", payload, content_type=content_type)
                if status == 200:  # hall is not dimmable: said so, and it stays off
                    status = 400
                    assert response.reason == "Hall is not dimmable; use on or off"
                assert response.status == status, (payload, response.reason)
            assert pin(agent, "hall") == 0

    run(body())


def test_watchers_of_a_light_hear_it_switch(tmp_path):
    async def body():
        async with home(tmp_path) as agent, controller(agent) as alice:
            watcher = Watcher(agent)
            try:
                assert (await watcher.subscribe("porch")).status == 200
                assert state_of(await watcher.notify())["state"] == "off"
                await alice.send("porch", b"dim 30")
                state = state_of(await watcher.notify())
                assert (state["state"], state["brightness"], state["seq"]) == ("on", 30, 1)
            finally:
                watcher.close()

    run(body())


def test_a_source_that_keeps_failing_is_slowed_and_others_are_not(tmp_path):
    async def body():
        async with home(tmp_path) as agent:
            async with controller(agent, password="wrong") as mallory:
                statuses = [(await mallory.send("porch", b"on")).status for _ in range(7)]
            # Five refusals (401, then 403 for the same refused nonce again), then 503 with
            # Retry-After, without a look at the credentials.
            assert statuses[0] == 401 and set(statuses[1:5]) == {403}, statuses
            assert statuses[5:] == [503, 503], statuses
            async with controller(agent, password="wrong") as again:
                response = await again.send("porch", b"on", answer=False)
                assert response.status == 503
                assert 1 <= int(response.get("retry-after")) <= 60
            assert pin(agent, "porch") == 0
            # Another source is not held up by that one's failures.
            async with controller(agent, host="127.0.0.2") as alice:
                assert (await alice.send("porch", b"on")).status == 200

    run(body())


def test_a_trusted_lan_skips_the_challenge_and_nothing_else_does(tmp_path):
    async def body():
        text = HOME.replace('name = "test-home"\n',
                            'name = "test-home"\ntrust = ["127.0.0.2/32"]\n')
        async with agent_from(tmp_path, text) as agent:
            async with controller(agent, user="nobody", password="-",
                                  host="127.0.0.2") as lan:
                response = await lan.send("porch", b"on", answer=False)
                assert response.status == 200
                assert pin(agent, "porch") == 1.0
            async with controller(agent, user="nobody", password="-") as other:
                assert (await other.send("porch", b"off", answer=False)).status == 401
                assert pin(agent, "porch") == 1.0

    run(body())


def test_only_a_home_network_may_be_trusted(tmp_path):
    path = tmp_path / "home.toml"
    path.write_text('[agent]\ntrust = ["8.8.8.0/24"]\n')
    with pytest.raises(ConfigError) as refused:
        load(str(path), environ=TEST_ENV)
    assert 'agent.trust[0]: "8.8.8.0/24" is not a network of the home' in str(refused.value)


def test_a_light_with_reply_answers_a_message_with_its_state(tmp_path):
    async def body():
        async with home(tmp_path) as agent, controller(agent) as alice:
            response = await alice.send("porch", b"dim 40", method="MESSAGE")
            assert (response.status, response.body) == (200, b"")
            reply = await alice.request()
            assert reply.method == "MESSAGE"
            assert reply.body == b"Porch is on, brightness 40"
            assert str(reply.from_.uri) == "sip:porch@home.arpa"
            # A DO carries the state in its 200: no MESSAGE for it; hall has no reply.
            await alice.send("porch", b"off")
            await alice.send("hall", b"on", method="MESSAGE")
            with pytest.raises(TimeoutError):
                await alice.request()

    run(body())
