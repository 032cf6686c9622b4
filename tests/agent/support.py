"""Helpers shared by the agent-tier tests: hand-written SIP bytes, a small response reader
that does not use the core's parser (so the core is not checked against itself), and bounded
waits. Nothing here stands in for our own code."""

import asyncio
import contextlib
import os
import tempfile
import time

# Every wait in these tests is bounded; a test body as a whole gets this long.
TEST_DEADLINE = 30.0
REPLY_WAIT = 3.0


def run(coro, deadline=TEST_DEADLINE):
    """asyncio.run with an upper bound on the whole test body."""
    return asyncio.run(asyncio.wait_for(coro, deadline))


def short_dir(tmp_path):
    """A directory for a UNIX socket: tmp_path unless its path is too long for sun_path."""
    if len(str(tmp_path)) < 80:
        return str(tmp_path)
    return tempfile.mkdtemp(prefix="sa-", dir="/tmp")


def options_request(
    uri, via, call_id, branch, cseq=1, method="OPTIONS", extra="", body=b"", content_type=None
):
    """The exact bytes of a request; `via` is the text after "SIP/2.0/" without the branch
    ("UDP 127.0.0.1:5070;rport"), `extra` more header lines, each ending in CRLF."""
    via_proto, _, via_rest = via.partition(" ")
    sent_by, _, via_params = via_rest.partition(";")
    via_line = "Via: SIP/2.0/%s %s;branch=%s%s\r\n" % (
        via_proto,
        sent_by,
        branch,
        ";" + via_params if via_params else "",
    )
    head = (
        "%s %s SIP/2.0\r\n" % (method, uri)
        + via_line
        + "Max-Forwards: 70\r\n"
        + "From: <sip:tester@127.0.0.1>;tag=f7a1\r\n"
        + "To: <%s>\r\n" % uri
        + "Call-ID: %s\r\n" % call_id
        + "CSeq: %d %s\r\n" % (cseq, method)
        + extra
        + ("Content-Type: %s\r\n" % content_type if content_type else "")
        + "Content-Length: %d\r\n\r\n" % len(body)
    )
    return head.encode() + body


class Reply:
    """A response as the test reads it: status, reason, header (name, value) pairs, body."""

    def __init__(self, data):
        self.data = data
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8").split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        assert version == "SIP/2.0", lines[0]
        self.status = int(status)
        self.reason = reason
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))

    def all(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def get(self, name):
        values = self.all(name)
        assert len(values) == 1, "%s appears %d times in\n%s" % (name, len(values), self.data)
        return values[0]

    def tokens(self, name):
        """A comma-separated header's items ("Allow: OPTIONS, ACK" -> ["OPTIONS", "ACK"])."""
        return [item.strip() for value in self.all(name) for item in value.split(",")]


def via_params(via):
    """'SIP/2.0/UDP h:p;branch=x;rport=1' -> ('SIP/2.0/UDP h:p', {'branch': 'x', ...})."""
    sent, *params = via.split(";")
    out = {}
    for param in params:
        name, _, value = param.partition("=")
        out[name.strip().lower()] = value.strip()
    return sent.strip(), out


async def read_stream_message(reader, timeout=REPLY_WAIT):
    """One SIP message framed by Content-Length off a stream."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            length = int(value.strip())
    body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return head + body


async def wait_until(predicate, timeout=REPLY_WAIT, interval=0.01):
    """Poll `predicate` on the loop until it is true; False once `timeout` passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 at this moment."""
    import socket

    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        return port
    raise RuntimeError("no free port pair found")


# The environment of the agents these tests make: mDNS off, as tests of their own turn it
# on (tests/interop/test_mdns.py): parallel test agents would announce alike devices.
TEST_ENV = {"SIP_APPLIANCE_MDNS_ENABLED": "false"}


def clean_env():
    """The environment for a subprocess agent: no SIP_APPLIANCE_* settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIP_APPLIANCE_")}
    env.update(TEST_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env, root


@contextlib.asynccontextmanager
async def agent_from(tmp_path, config_text):
    """A started Agent with the TOML `config_text` ("{control}" stands for a control
    socket path short enough for a UNIX socket), closed on the way out."""
    from appliance.agent import Agent
    from appliance.config import load

    path = tmp_path / "home.toml"
    path.write_text(config_text.replace("{control}", short_dir(tmp_path) + "/control.sock"))
    agent = Agent(load(str(path), environ=TEST_ENV))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.close()
