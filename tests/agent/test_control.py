"""The control socket: newline-delimited JSON over a real UNIX socket, served by a running
agent's ControlServer."""

import asyncio
import contextlib
import json
import os
import socket
import stat

import pytest

from appliance.agent import Agent
from appliance.config import demo_config
from appliance.control import MAX_LINE, ControlError, ControlServer, request

from .support import REPLY_WAIT, run, short_dir

STATUS_KEYS = ("devices", "registrations", "nat", "subscriptions", "calls", "mqtt")


@pytest.fixture
def control_path(tmp_path):
    return os.path.join(short_dir(tmp_path), "run", "control.sock")


@contextlib.asynccontextmanager
async def serving(path):
    config = demo_config(
        overrides={
            "agent.listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
            "agent.control": path,
        },
        environ={},
    )
    agent = Agent(config)
    await agent.start()
    server = ControlServer(agent, path)
    try:
        await server.start()
        yield agent, server
    finally:
        await server.close()
        await agent.close()


class Client:
    """One control connection: write a line, read the reply line."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def ask_raw(self, line):
        self.writer.write(line)
        await self.writer.drain()
        reply = await asyncio.wait_for(self.reader.readline(), REPLY_WAIT)
        assert reply.endswith(b"\n"), reply
        return json.loads(reply)

    async def ask(self, obj):
        return await self.ask_raw(json.dumps(obj).encode() + b"\n")


@contextlib.asynccontextmanager
async def connect(path):
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), REPLY_WAIT)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()


def test_status_reply_has_the_documented_keys(control_path):
    async def body():
        async with serving(control_path), connect(control_path) as client:
            reply = await client.ask({"command": "status"})
        assert reply["ok"] is True
        status = reply["status"]
        for key in STATUS_KEYS:
            assert key in status, key
        devices = status["devices"]
        assert set(devices) == {"frontdoor", "porch", "strike", "doorbell", "intercom", "camera"}
        for name, device in devices.items():
            assert isinstance(device["type"], str) and isinstance(device["state"], str), name
        assert devices["frontdoor"]["type"] == "door"
        assert devices["porch"]["type"] == "light"
        assert devices["porch"]["brightness"] == 0
        assert isinstance(status["registrations"], list)
        assert isinstance(status["subscriptions"], list)
        assert isinstance(status["calls"], list)

    run(body())


def test_sim_drives_the_input_and_status_shows_it(control_path):
    async def body():
        async with serving(control_path), connect(control_path) as client:
            reply = await client.ask({"command": "sim", "device": "frontdoor", "state": "open"})
            assert reply == {"ok": True, "device": reply["device"]}
            assert reply["device"]["state"] == "open"
            status = await client.ask({"command": "status"})
            assert status["status"]["devices"]["frontdoor"]["state"] == "open"

    run(body())


def test_the_module_client_gets_the_reply_and_raises_on_errors(control_path):
    async def body():
        async with serving(control_path):
            reply = await request(control_path, {"command": "status"}, timeout=REPLY_WAIT)
            assert reply["ok"] is True and "devices" in reply["status"]
            with pytest.raises(ControlError) as refused:
                await request(
                    control_path,
                    {"command": "sim", "device": "garage", "state": "open"},
                    timeout=REPLY_WAIT,
                )
            assert "no device 'garage'" in str(refused.value)

    run(body())


@pytest.mark.parametrize(
    "line, error_start",
    [
        (b"{not json\n", "bad request: "),
        (b'["status"]\n', "bad request: a request is a JSON object"),
        (b"\xff\xfe\n", "bad request: "),
        (b'{"command": "reboot"}\n', "unknown command 'reboot'; commands: status, sim"),
        (b"{}\n", "unknown command None; commands: status, sim"),
        (
            b'{"command": "sim", "device": "garage", "state": "open"}\n',
            "no device 'garage'; devices: frontdoor, porch, strike, doorbell, intercom",
        ),
        (
            b'{"command": "sim", "device": "frontdoor", "state": "ajar"}\n',
            "a door is 'open' or 'closed', not 'ajar'",
        ),
    ],
)
def test_a_bad_request_gets_an_error_and_the_connection_keeps_working(
    control_path, line, error_start
):
    async def body():
        async with serving(control_path), connect(control_path) as client:
            reply = await client.ask_raw(line)
            assert reply["ok"] is False
            assert reply["error"].startswith(error_start), reply["error"]
            again = await client.ask({"command": "status"})
            assert again["ok"] is True

    run(body())


def test_a_line_too_long_is_refused_and_the_server_keeps_working(control_path):
    async def body():
        async with serving(control_path):
            async with connect(control_path) as client:
                reply = await client.ask_raw(b"x" * (MAX_LINE + 10) + b"\n")
                assert reply == {"ok": False, "error": "request line too long"}
            async with connect(control_path) as client:
                assert (await client.ask({"command": "status"}))["ok"] is True

    run(body())


def test_a_client_that_hangs_up_does_not_stop_the_server(control_path):
    async def body():
        async with serving(control_path):
            for _ in range(3):
                _, writer = await asyncio.open_unix_connection(control_path)
                writer.write(b'{"command": "sta')  # half a request, then gone
                writer.close()
            async with connect(control_path) as client:
                assert (await client.ask({"command": "status"}))["ok"] is True

    run(body())


def test_the_socket_is_private_and_removed_on_close(control_path):
    async def body():
        async with serving(control_path):
            mode = stat.S_IMODE(os.stat(control_path).st_mode)
            assert stat.S_ISSOCK(os.stat(control_path).st_mode)
            assert mode == 0o600, oct(mode)
            directory = stat.S_IMODE(os.stat(os.path.dirname(control_path)).st_mode)
            assert directory & 0o077 == 0, oct(directory)  # a directory of its own
        assert not os.path.exists(control_path)

    run(body())


def test_a_second_server_on_a_live_socket_is_refused(control_path):
    async def body():
        async with serving(control_path) as (agent, _):
            second = ControlServer(agent, control_path)
            with pytest.raises(ControlError) as refused:
                await second.start()
            message = str(refused.value)
            assert control_path in message
            assert "another agent is running" in message and "--control" in message
            await second.close()
            # The first one is untouched.
            assert os.path.exists(control_path)
            async with connect(control_path) as client:
                assert (await client.ask({"command": "status"}))["ok"] is True

    run(body())


def test_a_stale_socket_file_is_replaced(control_path):
    os.makedirs(os.path.dirname(control_path), mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(control_path)  # an agent that died without cleaning up
    stale.close()
    assert os.path.exists(control_path)

    async def body():
        async with serving(control_path), connect(control_path) as client:
            assert (await client.ask({"command": "status"}))["ok"] is True
            assert stat.S_IMODE(os.stat(control_path).st_mode) == 0o600

    run(body())


def test_close_hangs_up_on_connected_clients_and_returns(control_path):
    async def body():
        async with serving(control_path) as (_, server):
            async with connect(control_path) as client:
                assert (await client.ask({"command": "status"}))["ok"] is True
                # The client stays connected (a monitor, say) while the agent stops.
                await asyncio.wait_for(server.close(), REPLY_WAIT)
                assert await asyncio.wait_for(client.reader.read(), REPLY_WAIT) == b""
            assert not os.path.exists(control_path)

    run(body())


def test_a_file_that_is_not_a_socket_is_never_deleted(control_path):
    os.makedirs(os.path.dirname(control_path), mode=0o700)
    with open(control_path, "w") as f:
        f.write("precious")

    async def body():
        with pytest.raises(ControlError, match="exists and is not a socket"):
            async with serving(control_path):
                pass

    run(body())
    with open(control_path) as f:
        assert f.read() == "precious"


def test_a_directory_others_may_write_is_refused(control_path):
    directory = os.path.dirname(control_path)
    os.makedirs(directory)
    os.chmod(directory, 0o777)  # what someone else could have made first in /tmp

    async def body():
        with pytest.raises(ControlError, match="writable by others"):
            async with serving(control_path):
                pass

    run(body())
    assert not os.path.exists(control_path)
