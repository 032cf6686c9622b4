"""SIP over TCP (appliance/net/tcp.py) to a running agent over loopback: the limit on the
connections one address may hold, and how refusals are logged under a flood of them.

The peers are plain asyncio streams from 127.0.0.1 and 127.0.0.2 (both loopback)."""

import asyncio
import logging

from appliance.net.tcp import (
    MAX_PER_SOURCE,
    REFUSAL_LOG_INTERVAL,
    TcpConnection,
    TcpConnections,
)

from .support import (
    REPLY_WAIT,
    Reply,
    agent_from,
    options_request,
    read_stream_message,
    run,
    wait_until,
)

HOME = """
[agent]
name = "tcp-home"
simulate = true
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
control = "{control}"
state_dir = "state"

[[devices]]
name = "porch"
type = "light"
pin = 22
"""


def tcp_port(agent):
    return next(port for transport, _, port in agent.stack.bound if transport == "tcp")


async def connect(port, source="127.0.0.1"):
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), REPLY_WAIT)


async def closed_at_once(reader):
    """True when the agent closed the connection without a word."""
    try:
        return await asyncio.wait_for(reader.read(), REPLY_WAIT) == b""
    except ConnectionResetError:
        return True


async def options_answered(port, reader, writer, call_id):
    via = "TCP %s:%d" % writer.get_extra_info("sockname")[:2]
    writer.write(options_request("sip:porch@127.0.0.1:%d" % port, via, call_id,
                                 "z9hG4bK-" + call_id))
    return Reply(await read_stream_message(reader)).status == 200


def test_one_address_cannot_take_every_connection(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="appliance.net.tcp")

    async def body():
        async with agent_from(tmp_path, HOME) as agent:
            port = tcp_port(agent)
            streams = agent.stack._tcp
            held = []
            try:
                for _ in range(MAX_PER_SOURCE):
                    held.append(await connect(port))
                assert await wait_until(lambda: streams.sources["127.0.0.1"] == MAX_PER_SOURCE)
                # The next from that address is closed at once; so is each of a burst after
                # it, with one line in the log for them all.
                for _ in range(20):
                    reader, writer = await connect(port)
                    try:
                        assert await closed_at_once(reader)
                    finally:
                        writer.close()
                refusals = [r for r in caplog.records if "refus" in r.getMessage()]
                assert len(refusals) == 1, caplog.text
                assert refusals[0].levelname == "WARNING"
                assert refusals[0].getMessage().startswith("refusing a TCP connection from "
                                                           "127.0.0.1:")
                assert refusals[0].getMessage().endswith(
                    ": %d connections from 127.0.0.1 open; further refusals are logged at "
                    "most every %g s" % (MAX_PER_SOURCE, REFUSAL_LOG_INTERVAL))
                assert streams.sources["127.0.0.1"] == MAX_PER_SOURCE

                # Another address is served, and so are the connections held.
                reader, writer = await connect(port, "127.0.0.2")
                try:
                    assert await options_answered(port, reader, writer, "other-source")
                finally:
                    writer.close()
                assert await options_answered(port, *held[0], "held-0")

                # A connection that closes frees its slot for that address.
                held.pop()[1].close()
                assert await wait_until(
                    lambda: streams.sources["127.0.0.1"] == MAX_PER_SOURCE - 1)
                held.append(await connect(port))
                assert await options_answered(port, *held[-1], "slot-freed")
            finally:
                for _, writer in held:
                    writer.close()
            assert await wait_until(lambda: not streams.sources)

    run(body())


def test_refusals_of_a_burst_are_counted_in_one_line_after_it(caplog):
    caplog.set_level(logging.INFO, logger="appliance.net.tcp")

    async def body():
        streams = TcpConnections(stack=None)
        refused = TcpConnection(streams)
        refused.peer = ("192.0.2.7", 40000)
        for _ in range(5):
            streams._refused("192.0.2.7", refused, "32 connections from 192.0.2.7 open")
        streams._refused(None, refused, "256 connections open")
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [  # one for the source, one for the total
            "refusing a TCP connection from 192.0.2.7:40000: %s; further refusals are "
            "logged at most every %g s" % (why, REFUSAL_LOG_INTERVAL)
            for why in ("32 connections from 192.0.2.7 open", "256 connections open")]
        # The sweep after the burst says how many went unlogged.
        now = asyncio.get_running_loop().time()
        streams._report_refusals(now + REFUSAL_LOG_INTERVAL)
        lines = [r.getMessage() for r in caplog.records][2:]
        assert lines == ["refused 4 more TCP connections from 192.0.2.7 in the %g s after "
                         "the last line" % REFUSAL_LOG_INTERVAL]
        # ... and a later refusal starts a new burst, with a line of its own.
        streams._refused("192.0.2.7", refused, "32 connections from 192.0.2.7 open")
        assert len(caplog.records) == 4

    run(body())
