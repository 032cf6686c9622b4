"""The agent in-process, spoken to over real loopback UDP and TCP sockets.

Requests are written out byte for byte; responses are read by a small reader of the test's
own (tests/agent/support.py), not by the core's parser.
"""

import asyncio
import contextlib
import logging
import random
import socket

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from appliance.agent import Agent
from appliance.config import demo_config

from .support import (
    REPLY_WAIT,
    TEST_ENV,
    Reply,
    options_request,
    read_stream_message,
    run,
    via_params,
    wait_until,
)

DEMO_DEVICES = ("frontdoor", "porch", "strike", "doorbell", "intercom", "camera")


def _config(tmp_path, **overrides):
    settings = {
        "agent.listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
        "agent.control": str(tmp_path / "control.sock"),
    }
    settings.update(overrides)
    return demo_config(overrides=settings, environ=TEST_ENV)


@contextlib.asynccontextmanager
async def running_agent(tmp_path, **overrides):
    agent = Agent(_config(tmp_path, **overrides))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.close()


def agent_port(agent):
    """The port the agent listens on, as `status` reports it (UDP and TCP share it)."""
    listen = agent.status()["agent"]["listen"]
    ports = {int(spec.rpartition(":")[2]) for spec in listen}
    assert len(ports) == 1, listen
    (port,) = ports
    assert port != 0
    return port


class UdpPeer:
    """A UDP socket on loopback that sends hand-written requests and reads replies."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.get_running_loop()

    async def send(self, data, port):
        await self.loop.sock_sendto(self.sock, data, ("127.0.0.1", port))

    async def receive(self, timeout=REPLY_WAIT):
        data, address = await asyncio.wait_for(self.loop.sock_recvfrom(self.sock, 65535), timeout)
        return data, address

    async def ask(self, port, user, call_id, **kwargs):
        """Send a request to sip:USER@ the agent (Via with rport) and read the reply."""
        request = options_request(
            "sip:%s@127.0.0.1:%d" % (user, port),
            "UDP 127.0.0.1:%d;rport" % self.port,
            call_id,
            "z9hG4bK-" + call_id.partition("@")[0],
            **kwargs,
        )
        await self.send(request, port)
        data, _ = await self.receive()
        return Reply(data)

    async def nothing_for(self, seconds):
        """True when no datagram arrives within `seconds`."""
        try:
            data, _ = await self.receive(seconds)
        except TimeoutError:
            return True
        pytest.fail("expected no datagram, got %r" % data)

    def close(self):
        self.sock.close()


@contextlib.asynccontextmanager
async def udp_peer():
    peer = UdpPeer()
    try:
        yield peer
    finally:
        peer.close()


# -- UDP ---------------------------------------------------------------------------------


def test_options_to_a_device_answers_200_with_its_capabilities(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as peer:
            port = agent_port(agent)
            uri = "sip:porch@127.0.0.1:%d" % port
            # The Via names a port nothing listens on; with rport the answer must come
            # back to the port the request was sent from (RFC 3581).
            request = options_request(uri, "UDP 127.0.0.1:9;rport", "opt-1@test", "z9hG4bK-opt-1")
            await peer.send(request, port)
            data, source = await peer.receive()
            reply = Reply(data)

            assert source == ("127.0.0.1", port)
            assert (reply.status, reply.reason) == (200, "OK")
            assert "OPTIONS" in reply.tokens("Allow")
            assert "application/sdp" in reply.tokens("Accept")
            assert reply.get("Supported") == ""  # no extensions yet; present, as 11.2 asks
            assert reply.get("Call-ID") == "opt-1@test"
            assert reply.get("CSeq") == "1 OPTIONS"
            assert reply.get("From") == "<sip:tester@127.0.0.1>;tag=f7a1"
            to = reply.get("To")
            assert to.startswith("<%s>;tag=" % uri) and len(to) > len("<%s>;tag=" % uri)
            sent_by, params = via_params(reply.get("Via"))
            assert sent_by == "SIP/2.0/UDP 127.0.0.1:9"
            assert params == {
                "branch": "z9hG4bK-opt-1",
                "rport": str(peer.port),
                "received": "127.0.0.1",
            }
            assert reply.get("Content-Length") == "0" and reply.body == b""

    run(body())


def test_without_rport_the_answer_goes_to_the_via_port(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as sender, udp_peer() as via_port:
            port = agent_port(agent)
            via = "UDP 127.0.0.1:%d" % via_port.port
            request = options_request(
                "sip:porch@127.0.0.1:%d" % port, via, "opt-2@test", "z9hG4bK-opt-2"
            )
            await sender.send(request, port)
            data, _ = await via_port.receive()
            reply = Reply(data)
            assert reply.status == 200
            # The Via is returned as sent: its host is the source, there is no rport.
            assert reply.get("Via") == "SIP/2.0/%s;branch=z9hG4bK-opt-2" % via
            assert await sender.nothing_for(0.2)

    run(body())


def test_options_to_an_unknown_user_is_404(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as peer:
            port = agent_port(agent)
            reply = await peer.ask(port, "garage", "unknown@test")
            assert (reply.status, reply.reason) == (404, "Not Found")
            assert ";tag=" in reply.get("To")
            assert reply.get("Call-ID") == "unknown@test"

    run(body())


def test_message_to_a_door_is_405_and_to_a_light_challenged_without_moving_it(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as peer:
            port = agent_port(agent)
            reply = await peer.ask(
                port,
                "frontdoor",
                "message@test",
                method="MESSAGE",
                body=b"on",
                content_type="text/plain",
            )
            assert (reply.status, reply.reason) == (405, "Method Not Allowed")
            allow = reply.tokens("Allow")
            assert "OPTIONS" in allow and "MESSAGE" not in allow and "DO" not in allow
            assert reply.get("CSeq") == "1 MESSAGE"
            reply = await peer.ask(port, "porch", "message2@test", method="MESSAGE",
                                   body=b"on", content_type="text/plain")
            assert reply.status == 401  # no credentials: challenged, and the light stays off
            assert agent.devices["porch"].state == "off"

    run(body())


def test_an_unknown_method_is_501_with_allow(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as peer:
            port = agent_port(agent)
            reply = await peer.ask(port, "porch", "frob@test", method="FROBNICATE")
            assert (reply.status, reply.reason) == (501, "Not Implemented")
            assert "OPTIONS" in reply.tokens("Allow")
            assert reply.get("CSeq") == "1 FROBNICATE"

    run(body())


def test_options_is_answered_statelessly_every_time_it_comes(tmp_path):
    # RFC 3261 section 8.2.7: nothing is kept for an OPTIONS, so a flood of them fills no
    # table; a retransmission is answered afresh, for the same transaction.
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as peer:
            port = agent_port(agent)
            request = options_request(
                "sip:frontdoor@127.0.0.1:%d" % port,
                "UDP 127.0.0.1:%d;rport" % peer.port,
                "again@test",
                "z9hG4bK-again",
            )
            await peer.send(request, port)
            first, _ = await peer.receive()
            assert agent.status()["sip"]["transactions"] == 0
            await peer.send(request, port)
            second = Reply((await peer.receive())[0])
            first = Reply(first)
            assert (first.status, second.status) == (200, 200)
            for name in ("Via", "Call-ID", "CSeq"):
                assert second.get(name) == first.get(name)
            assert agent.status()["sip"]["transactions"] == 0

    run(body())


def test_a_source_over_its_rate_is_dropped_while_another_is_answered(tmp_path, caplog):
    async def body():
        async with running_agent(tmp_path, **{"agent.rate_limit": 5}) as agent, \
                udp_peer() as flooder:
            port = agent_port(agent)
            for n in range(40):
                await flooder.send(options_request(
                    "sip:frontdoor@127.0.0.1:%d" % port,
                    "UDP 127.0.0.1:%d;rport" % flooder.port, "flood-%d@test" % n,
                    "z9hG4bK-flood-%d" % n), port)
            answered = 0
            with contextlib.suppress(TimeoutError):
                while True:
                    await flooder.receive(0.5)
                    answered += 1
            # The burst (twice the rate) and what the rate earned meanwhile, no more.
            assert 10 <= answered < 20, answered
            sip = agent.status()["sip"]
            assert sip["limited"] == 40 - answered
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            other.bind(("127.0.0.2", 0))
            other.setblocking(False)
            loop = asyncio.get_running_loop()
            with other:
                await loop.sock_sendto(other, options_request(
                    "sip:frontdoor@127.0.0.1:%d" % port,
                    "UDP 127.0.0.2:%d;rport" % other.getsockname()[1], "lan@test",
                    "z9hG4bK-lan"), ("127.0.0.1", port))
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(other, 65535), REPLY_WAIT)
            assert Reply(data).status == 200
        warnings = [r.getMessage() for r in caplog.records if "faster than" in r.getMessage()]
        assert warnings == ["127.0.0.1 sends requests faster than 5/s: dropping them until it "
                            "slows down"]

    run(body())


def test_a_datagram_of_random_bytes_gets_no_answer_and_the_agent_carries_on(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as peer:
            port = agent_port(agent)
            junk = random.Random(4475).randbytes(300)
            await peer.send(junk, port)
            assert await peer.nothing_for(0.3)
            assert agent.status()["sip"]["dropped"] == 1
            reply = await peer.ask(port, "porch", "after@test")
            assert reply.status == 200 and reply.get("Call-ID") == "after@test"

    run(body())


# -- TCP ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def tcp_connection(port):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), REPLY_WAIT)
    try:
        yield reader, writer
    finally:
        writer.close()


def _tcp_via(writer):
    return "TCP 127.0.0.1:%d" % writer.get_extra_info("sockname")[1]


def test_tcp_two_requests_on_one_connection_are_both_answered_on_it(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent:
            port = agent_port(agent)
            async with tcp_connection(port) as (reader, writer):
                via = _tcp_via(writer)
                first = options_request(
                    "sip:porch@127.0.0.1:%d" % port, via, "tcp-1@test", "z9hG4bK-tcp-1"
                )
                second = options_request(
                    "sip:garage@127.0.0.1:%d" % port, via, "tcp-2@test", "z9hG4bK-tcp-2", cseq=2
                )
                writer.write(first + second)  # pipelined in one write
                await writer.drain()
                replies = [Reply(await read_stream_message(reader)) for _ in range(2)]
            by_call = {reply.get("Call-ID"): reply for reply in replies}
            assert by_call["tcp-1@test"].status == 200
            assert by_call["tcp-2@test"].status == 404
            assert by_call["tcp-2@test"].get("CSeq") == "2 OPTIONS"
            for reply in replies:
                assert reply.get("Via").startswith("SIP/2.0/" + via + ";")

    run(body())


def test_tcp_a_request_written_one_byte_at_a_time_is_answered(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent:
            port = agent_port(agent)
            async with tcp_connection(port) as (reader, writer):
                writer.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
                )
                request = options_request(
                    "sip:porch@127.0.0.1:%d" % port,
                    _tcp_via(writer),
                    "bytewise@test",
                    "z9hG4bK-bytewise",
                )
                for index in range(len(request)):
                    writer.write(request[index : index + 1])
                    await writer.drain()
                    await asyncio.sleep(0.001)  # let the agent read each byte on its own
                reply = Reply(await read_stream_message(reader))
            assert reply.status == 200 and reply.get("Call-ID") == "bytewise@test"

    run(body())


def test_tcp_garbage_closes_that_connection_and_udp_still_works(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent, udp_peer() as peer:
            port = agent_port(agent)
            async with tcp_connection(port) as (reader, writer):
                writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # no Content-Length
                await writer.drain()
                assert await asyncio.wait_for(reader.read(), REPLY_WAIT) == b""  # closed
            request = options_request(
                "sip:porch@127.0.0.1:%d" % port,
                "UDP 127.0.0.1:%d;rport" % peer.port,
                "udp-after@test",
                "z9hG4bK-udp-after",
            )
            await peer.send(request, port)
            data, _ = await peer.receive()
            assert Reply(data).status == 200
            # ... and a new TCP connection is served too.
            async with tcp_connection(port) as (reader, writer):
                writer.write(
                    options_request(
                        "sip:porch@127.0.0.1:%d" % port,
                        _tcp_via(writer),
                        "tcp-after@test",
                        "z9hG4bK-tcp-after",
                    )
                )
                await writer.drain()
                assert Reply(await read_stream_message(reader)).status == 200

    run(body())


# -- status and devices --------------------------------------------------------------------


def test_status_lists_the_demo_devices_at_the_bound_port(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent:
            port = agent_port(agent)
            status = agent.status()
        assert list(status["devices"]) == list(DEMO_DEVICES)
        for name, device in status["devices"].items():
            assert device["uri"] == "sip:%s@127.0.0.1:%d" % (name, port)
        assert status["agent"]["listen"] == ["udp:127.0.0.1:%d" % port, "tcp:127.0.0.1:%d" % port]
        assert status["devices"]["frontdoor"] == {
            "type": "door",
            "state": "closed",
            "changed": None,  # no event yet
            "seq": 0,
            "uri": "sip:frontdoor@127.0.0.1:%d" % port,
        }
        assert status["devices"]["porch"]["brightness"] == 0

    run(body())


def test_a_configured_domain_is_the_host_of_the_device_uris(tmp_path):
    async def body():
        async with running_agent(tmp_path, **{"agent.domain": "home.arpa"}) as agent:
            status = agent.status()
        assert status["devices"]["porch"]["uri"] == "sip:porch@home.arpa"

    run(body())


def test_simulated_door_opens_and_the_change_is_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="appliance")

    def logged(text):
        return any(text in record.getMessage() for record in caplog.records)

    async def body():
        async with running_agent(tmp_path) as agent:
            assert agent.status()["devices"]["frontdoor"]["state"] == "closed"
            shown = agent.simulate("frontdoor", "open")
            assert shown["state"] == "open"
            assert agent.status()["devices"]["frontdoor"]["state"] == "open"
            # gpiozero calls back on its own thread; the agent hops onto the loop and logs.
            assert await wait_until(lambda: logged("frontdoor (door): open"))
            agent.simulate("frontdoor", "closed")
            assert agent.status()["devices"]["frontdoor"]["state"] == "closed"
            assert await wait_until(lambda: logged("frontdoor (door): closed"))

    run(body())


def test_simulated_doorbell_press_is_counted(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent:
            agent.simulate("doorbell", "press")

            def doorbell():
                return agent.status()["devices"]["doorbell"]

            assert await wait_until(lambda: doorbell()["presses"] == 1)
            assert await wait_until(lambda: doorbell()["state"] == "idle")  # released

    run(body())


def test_simulate_rejects_an_unknown_device_and_a_bad_state(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent:
            with pytest.raises(ValueError) as unknown:
                agent.simulate("garage", "open")
            assert str(unknown.value) == (
                "no device 'garage'; devices: frontdoor, porch, strike, doorbell, intercom, camera"
            )
            with pytest.raises(Exception) as bad_state:
                agent.simulate("frontdoor", "ajar")
            assert str(bad_state.value) == "a door is 'open' or 'closed', not 'ajar'"
            with pytest.raises(Exception) as no_input:
                agent.simulate("porch", "on")
            assert "porch" in str(no_input.value) and "no input" in str(no_input.value)
            assert agent.status()["devices"]["frontdoor"]["state"] == "closed"

    run(body())


def test_simulate_refuses_on_an_agent_with_real_pins(tmp_path):
    # simulate = false, with gpiozero's MockFactory injected so no board is needed (PWM
    # pins: the demo's porch light is dimmable).
    config = _config(tmp_path, **{"agent.simulate": False})
    agent = Agent(config, pin_factory=MockFactory(pin_class=MockPWMPin))
    try:
        with pytest.raises(ValueError) as refused:
            agent.simulate("frontdoor", "open")
        assert "simulate = true" in str(refused.value)
    finally:
        run(agent.close())


# -- IPv6, and the move to TCP for large requests ---------------------------------------


def _ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv6_udp_and_tcp_answer_options(tmp_path):
    if not _ipv6_loopback_available():
        pytest.fail("this machine has no IPv6 loopback (::1); the agent's IPv6 path needs it")

    async def body():
        listen = ["udp:[::1]:0", "tcp:[::1]:0"]
        async with running_agent(tmp_path, **{"agent.listen": listen}) as agent:
            port = agent_port(agent)
            uri = "sip:porch@[::1]:%d" % port
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
                sock.bind(("::1", 0))
                sock.setblocking(False)
                own_port = sock.getsockname()[1]
                request = options_request(uri, "UDP [::1]:9;rport", "v6-1@test", "z9hG4bK-v6-1")
                await loop.sock_sendto(sock, request, ("::1", port))
                data, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 65535), REPLY_WAIT)
            assert Reply(data).status == 200
            assert source[:2] == ("::1", port)
            _, params = via_params(Reply(data).get("Via"))
            assert params["rport"] == str(own_port)
            # RFC 3581: with rport, received is added even when it equals the sent-by host;
            # an IPv6 address goes in bare, without brackets (RFC 3261 grammar, RFC 5118).
            assert params["received"] == "::1"

            reader, writer = await asyncio.open_connection("::1", port)
            try:
                writer.write(options_request(uri.replace(";", "") + ";transport=tcp",
                                             "TCP [::1]:9", "v6-2@test", "z9hG4bK-v6-2"))
                reply = Reply(await read_stream_message(reader))
            finally:
                writer.close()
            assert reply.status == 200

    run(body())


def test_a_request_over_1300_bytes_moves_from_udp_to_tcp(tmp_path, caplog):
    from appliance.client import send_once

    async def body():
        async with running_agent(tmp_path) as agent:
            uri = "sip:porch@127.0.0.1:%d" % agent_port(agent)
            with caplog.at_level(logging.INFO, logger="appliance.agent"):
                result = await send_once("OPTIONS", uri, timeout=REPLY_WAIT,
                                         fields=[("X-Padding", "p" * 1400)])
            assert result.response is not None and result.response.status == 200
            lines = [r.getMessage() for r in caplog.records if "OPTIONS" in r.getMessage()]
            assert len(lines) == 1 and " from tcp:127.0.0.1:" in lines[0], lines

            caplog.clear()
            with caplog.at_level(logging.INFO, logger="appliance.agent"):
                result = await send_once("OPTIONS", uri, timeout=REPLY_WAIT)
            assert result.response.status == 200
            lines = [r.getMessage() for r in caplog.records if "OPTIONS" in r.getMessage()]
            assert len(lines) == 1 and " from udp:127.0.0.1:" in lines[0], lines

    run(body())


def test_tcp_connections_beyond_the_limit_are_refused_and_the_rest_served(tmp_path):
    from appliance.net.tcp import MAX_ACCEPTED, MAX_PER_SOURCE

    async def body():
        async with running_agent(tmp_path) as agent:
            port = agent_port(agent)
            held = []
            try:
                for n in range(MAX_ACCEPTED):  # from many addresses: each has a cap too
                    source = "127.0.0.%d" % (2 + n // MAX_PER_SOURCE)
                    held.append(await asyncio.open_connection(
                        "127.0.0.1", port, local_addr=(source, 0)))
                assert await wait_until(
                    lambda: len(agent.stack._tcp.connections) == MAX_ACCEPTED)
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:  # one too many: cut off at once
                    assert await asyncio.wait_for(reader.read(), REPLY_WAIT) == b""
                finally:
                    writer.close()
                reader, writer = held[0]
                writer.write(options_request("sip:porch@127.0.0.1:%d" % port,
                                             _tcp_via(writer), "held-0@test", "z9hG4bK-held"))
                assert Reply(await read_stream_message(reader)).status == 200
                # The agent's own connections (to its registrar) still get a place.
                accepted = asyncio.Event()
                server = await asyncio.start_server(lambda r, w: accepted.set(), "127.0.0.1", 0)
                async with server:
                    agent.stack.send_raw(b"\r\n\r\n", "tcp", "127.0.0.1",
                                         server.sockets[0].getsockname()[1])
                    await asyncio.wait_for(accepted.wait(), REPLY_WAIT)
            finally:
                for _, writer in held:
                    writer.close()

    run(body())


def test_a_tcp_peer_that_never_reads_is_cut_off_and_others_are_served(tmp_path):
    async def body():
        async with running_agent(tmp_path) as agent:
            port = agent_port(agent)
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            uri = "sip:porch@127.0.0.1:%d" % port
            via = "TCP 127.0.0.1:%d" % sock.getsockname()[1]
            closed = False
            try:
                # Requests sent as fast as possible, answers never read: the agent stops
                # reading (flow control) and, past its limit, drops the connection.
                for i in range(20000):
                    data = options_request(uri, via, "flood-%d@test" % i, "z9hG4bK-f%d" % i)
                    try:
                        await asyncio.wait_for(loop.sock_sendall(sock, data), 0.5)
                    except (TimeoutError, ConnectionError):
                        closed = True
                        break
            finally:
                sock.close()
            assert closed, "the agent kept reading from a peer that never reads"
            async with udp_peer() as peer:
                await peer.send(options_request(uri, "UDP 127.0.0.1:%d;rport" % peer.port,
                                                "after-flood@test", "z9hG4bK-after"), port)
                data, _ = await peer.receive()
                assert Reply(data).status == 200

    run(body(), deadline=120)
