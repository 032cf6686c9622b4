"""SIP over TLS (appliance/net/tls.py, the TLS side of net/tcp.py and net/stack.py) over
real loopback sockets, with certificates `openssl` makes for this module: a test CA, a
server certificate for localhost and 127.0.0.1, one for another host, one that expired,
and one from another CA.

The peers are Python's own ssl (a client that verifies with the test CA, a registrar of
the test's own) and plain TCP sockets that never start or finish a handshake.
"""

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.client import send_once
from appliance.net.resolver import locate
from appliance.net.stack import SipStack
from appliance.net.tcp import MAX_ACCEPTED, MAX_PER_SOURCE
from appliance.net.tls import TlsContexts, TlsError
from appliance.sip.events import (
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportFailed,
)
from appliance.sip.message import make_request
from appliance.sip.uri import parse_uri
from appliance.watch import Watch

from .support import (
    REPLY_WAIT,
    Reply,
    agent_from,
    clean_env,
    options_request,
    read_stream_message,
    run,
    wait_until,
)

SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
CA_CONFIG = """[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
"""


class Pki:
    """Certificates for the tests, made with `openssl` in `workdir`."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.ca = self._ca("ca")
        self.other_ca = self._ca("other-ca")
        self.server_cert, self.server_key = self._issue("server", "ca", SAN)
        self.wrong_host_cert, self.wrong_host_key = self._issue(
            "wrong-host", "ca", "subjectAltName=DNS:elsewhere.example\n")
        self.other_cert, self.other_key = self._issue("other", "other-ca", SAN)
        self.expired_cert, self.expired_key = self._issue("expired", "ca", SAN, expired=True)
        self.name_only_cert, self.name_only_key = self._issue(
            "name-only", "ca", "subjectAltName=DNS:localhost\n")
        self.encrypted_key = str(self.dir / "encrypted.key")
        self._run("pkey", "-in", self.server_key, "-aes256", "-passout", "pass:secret",
                  "-out", self.encrypted_key)

    def _run(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

    def _ca(self, name):
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                  "/CN=%s" % name, "-keyout", name + ".key", "-out", name + ".crt")
        return str(self.dir / (name + ".crt"))

    def _issue(self, name, ca, extensions, expired=False):
        (self.dir / (name + ".ext")).write_text(extensions)
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                  "-keyout", name + ".key", "-out", name + ".csr")
        if expired:  # `openssl x509` cannot date a certificate in the past; `openssl ca` can
            (self.dir / "ca.cnf").write_text(CA_CONFIG)
            (self.dir / "index.txt").write_text("")
            (self.dir / "serial").write_text("01\n")
            self._run("ca", "-batch", "-config", "ca.cnf", "-cert", ca + ".crt", "-keyfile",
                      ca + ".key", "-in", name + ".csr", "-out", name + ".crt", "-notext",
                      "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
                      "-extfile", name + ".ext")
        else:
            self._run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey",
                      ca + ".key", "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
                      "-out", name + ".crt")
        return str(self.dir / (name + ".crt")), str(self.dir / (name + ".key"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        message = "openssl is not installed; apt-get install openssl"
        if os.environ.get("CI") == "true":
            pytest.fail("missing in CI: " + message, pytrace=False)
        pytest.skip(message)  # only outside CI: with CI=true the line above fails
    return Pki(tmp_path_factory.mktemp("pki"))


HOME = """
[agent]
name = "tls-home"
domain = "home.arpa"
simulate = true
listen = %(listen)s
control = "{control}"
state_dir = "state"

[tls]
%(tls)s
%(more)s
[[users]]
name = "alice"
password = "alice-pw"
devices = ["porch", "frontdoor", "intercom"]

[[devices]]
name = "porch"
type = "light"
pin = 22

[[devices]]
name = "frontdoor"
type = "door"
pin = 17

[[devices]]
name = "intercom"
type = "intercom"
answer_after = 0
audio = "null"
"""

LISTEN = '["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"]'


def home(pki, listen=LISTEN, more="", server=True):
    tls = 'ca = "%s"\n' % pki.ca
    if server:
        tls += 'certificate = "%s"\nkey = "%s"\n' % (pki.server_cert, pki.server_key)
    return HOME % {"listen": listen, "tls": tls, "more": more}


def port_of(stack, transport):
    return next(port for bound, _, port in stack.bound if bound == transport)


def client_context(pki):
    return ssl.create_default_context(cafile=pki.ca)


async def tls_connect(port, context, server_hostname="localhost"):
    return await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_hostname), REPLY_WAIT)


async def ask_over_tls(pki, port, call_id):
    """OPTIONS to sip:porch@ over a new TLS connection: its reply."""
    reader, writer = await tls_connect(port, client_context(pki))
    try:
        via = "TLS 127.0.0.1:%d" % writer.get_extra_info("sockname")[1]
        writer.write(options_request("sip:porch@127.0.0.1:%d;transport=tls" % port, via,
                                     call_id, "z9hG4bK-" + call_id))
        return Reply(await read_stream_message(reader)), via, writer
    finally:
        writer.close()


async def closed_by_peer(reader, timeout=REPLY_WAIT):
    """True once the peer closed the connection (whatever it sent before), False if it
    is still open after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@contextlib.asynccontextmanager
async def tls_server(cert, key, handshake_timeout=10.0, sources=None):
    """A bare SipStack with only a tls: listener that answers every request 200; with
    `sources` a list, the source of each request is added to it."""
    def answer(event):
        if isinstance(event, RequestReceived) and event.transaction is not None:
            if sources is not None:
                sources.append(event.source)
            stack.respond(event.transaction, 200)

    stack = SipStack([("tls", "127.0.0.1", 0)], answer, tls=TlsContexts(cert, key),
                     handshake_timeout=handshake_timeout)
    await stack.start()
    try:
        yield stack, port_of(stack, "tls")
    finally:
        await stack.close()


# -- the server side ---------------------------------------------------------------------------


def test_options_over_tls_are_answered_on_the_connection(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO)

    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            port = port_of(agent.stack, "tls")
            assert agent.stack.endpoint.local["tls"] == ("127.0.0.1", port)
            reply, via, writer = await ask_over_tls(pki, port, "tls-1")
            assert reply.status == 200 and reply.get("Call-ID") == "tls-1"
            assert reply.get("Via").startswith("SIP/2.0/" + via + ";")
            assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            assert any(" from tls:127.0.0.1:" in r.getMessage() and "OPTIONS" in r.getMessage()
                       for r in caplog.records)

    run(body())


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_older_than_1_2_is_refused(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO, logger="appliance.net.tcp")

    async def body():
        async with tls_server(pki.server_cert, pki.server_key) as (_, port):
            context = client_context(pki)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # lets this client offer TLS 1.1
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await tls_connect(port, context)
            assert await wait_until(lambda: "TLS handshake with 127.0.0.1:" in caplog.text)
            assert "unsupported protocol" in caplog.text, caplog.text

    run(body())


def test_a_peer_that_never_finishes_its_handshake_is_dropped(pki, caplog):
    caplog.set_level(logging.INFO, logger="appliance.net.tcp")

    async def body():
        async with tls_server(pki.server_cert, pki.server_key, handshake_timeout=0.5) \
                as (stack, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            local_port = writer.get_extra_info("sockname")[1]
            try:
                assert await wait_until(lambda: stack._tls.count() == 1)
                started = time.monotonic()
                assert await closed_by_peer(reader), "still open"
                assert 0.3 < time.monotonic() - started < 2.0
            finally:
                writer.close()
            assert "TLS handshake with 127.0.0.1:%d failed: no handshake within 0.5 s" \
                % local_port in caplog.text
            assert stack._tls.count() == 0
            # ... and the listener serves on.
            reader, writer = await tls_connect(port, client_context(pki))
            writer.write(options_request("sip:x@127.0.0.1", "TLS 127.0.0.1:5061", "after-1",
                                         "z9hG4bK-after-1"))
            assert Reply(await read_stream_message(reader)).status == 200
            writer.close()

    run(body())


def test_plain_sip_on_the_tls_port_is_dropped_and_the_agent_serves_on(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO, logger="appliance.net.tcp")

    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            port = port_of(agent.stack, "tls")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            via = "TCP 127.0.0.1:%d" % writer.get_extra_info("sockname")[1]
            writer.write(options_request("sip:porch@127.0.0.1:%d" % port, via, "plain-1",
                                         "z9hG4bK-plain-1"))
            try:
                assert await closed_by_peer(reader)
            finally:
                writer.close()
            assert "TLS handshake with %s failed: " % via[4:] in caplog.text, caplog.text
            assert agent.stack._tls.count() == 0
            reply, _, _ = await ask_over_tls(pki, port, "after-plain")
            assert reply.status == 200

    run(body())


def test_tls_connections_count_from_accept_against_the_limit(pki):
    async def body():
        # A handshake timeout long enough that no held peer is dropped during the test.
        async with tls_server(pki.server_cert, pki.server_key, handshake_timeout=60) \
                as (stack, port):
            held = []
            try:
                # Peers that connect and say nothing: each holds a slot while its
                # handshake may still come (then the handshake timeout frees it). From
                # as many loopback addresses as it takes to pass the limit per source.
                for index in range(MAX_ACCEPTED):
                    source = "127.0.0.%d" % (2 + index // MAX_PER_SOURCE)
                    held.append(await asyncio.open_connection("127.0.0.1", port,
                                                              local_addr=(source, 0)))
                assert await wait_until(lambda: stack._tls.count() == MAX_ACCEPTED)
                with pytest.raises((ssl.SSLError, ConnectionError, TimeoutError)):
                    await tls_connect(port, client_context(pki))  # one too many: cut off
                assert stack._tls.sources["127.0.0.1"] == 0  # refused, so not counted
                held.pop()[1].close()
                assert await wait_until(lambda: stack._tls.count() == MAX_ACCEPTED - 1)
                reply, _, _ = await ask_over_tls(pki, port, "within-limit")
                assert reply.status == 200
            finally:
                for _, writer in held:
                    writer.close()

    run(body())


def test_a_certificate_that_cannot_be_loaded_stops_the_start(tmp_path, pki):
    async def body():
        stack = SipStack([("tls", "127.0.0.1", 0)], print,
                         tls=TlsContexts(pki.server_cert, pki.other_key))
        with pytest.raises(TlsError) as raised:
            await stack.start()
        await stack.close()
        assert str(raised.value) == (
            "tls.key: %s is not the private key of the certificate %s; name the key the "
            "certificate was made for" % (pki.other_key, pki.server_cert))
        stack = SipStack([("tcp", "127.0.0.1", 0)], print, tls=TlsContexts(ca=pki.server_key))
        with pytest.raises(TlsError) as raised:
            await stack.start()
        assert str(raised.value) == ("tls.ca: cannot load %s: no certificate or crl found; "
                                     "name a file of PEM certificates" % pki.server_key)

    run(body())


@pytest.mark.parametrize("certificate, key, expected", [
    ("server_key", "server_key",
     "tls.certificate: {certificate} is not a PEM certificate; name the server's certificate "
     "(-----BEGIN CERTIFICATE-----)"),
    ("server_cert", "ca",
     "tls.key: {key} is not a PEM private key; name the certificate's private key "
     "(-----BEGIN PRIVATE KEY-----)"),
    ("server_cert", "encrypted_key",
     "tls.key: {key} is encrypted (has a password); name an unencrypted private key "
     "(openssl pkey -in {key} -out NEW.pem)"),
    ("missing", "server_key",
     "tls.certificate: cannot read {certificate}: No such file or directory; name a "
     "readable PEM file"),
    ("server_cert", "missing",
     "tls.key: cannot read {key}: No such file or directory; name a readable PEM file"),
])
def test_a_certificate_problem_names_the_file_at_fault(pki, certificate, key, expected):
    paths = {"missing": str(pki.dir / "missing.pem")}
    certificate = paths.get(certificate) or getattr(pki, certificate)
    key = paths.get(key) or getattr(pki, key)
    with pytest.raises(TlsError) as raised:  # an encrypted key is refused, never asked for
        TlsContexts(certificate, key).server()
    assert str(raised.value) == expected.format(certificate=certificate, key=key)


# -- the client side ---------------------------------------------------------------------------


def test_a_client_reaches_a_sips_uri_without_a_tls_listener(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO)

    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            port = port_of(agent.stack, "tls")
            for uri in ("sips:porch@localhost:%d" % port,
                        "sip:porch@127.0.0.1:%d;transport=tls" % port):
                result = await send_once("OPTIONS", uri, ca=pki.ca, timeout=REPLY_WAIT)
                assert result.response is not None, result.error
                assert result.response.status == 200
                via = result.response.get("via")
                assert via.startswith("SIP/2.0/TLS "), via
            lines = [r.getMessage() for r in caplog.records if "OPTIONS" in r.getMessage()
                     and r.name.startswith("appliance.agent")]
            assert len(lines) == 2 and all(" from tls:127.0.0.1:" in line for line in lines)

    run(body())


@pytest.mark.parametrize("server, uri_host, reason", [
    ("wrong_host", "localhost",
     "Hostname mismatch, certificate is not valid for 'localhost'."),
    ("wrong_host", "127.0.0.1",
     "IP address mismatch, certificate is not valid for '127.0.0.1'."),
    ("other", "localhost", "unable to get local issuer certificate"),
    ("expired", "localhost", "certificate has expired"),
])
def test_a_server_that_fails_verification_is_unreachable_and_logged(pki, caplog, server,
                                                                     uri_host, reason):
    caplog.set_level(logging.INFO, logger="appliance.net.tcp")
    cert, key = getattr(pki, server + "_cert"), getattr(pki, server + "_key")

    async def body():
        async with tls_server(cert, key) as (stack, port):
            uri = "sips:porch@%s:%d" % (uri_host, port)
            started = time.monotonic()
            result = await send_once("OPTIONS", uri, ca=pki.ca, timeout=REPLY_WAIT)
            assert time.monotonic() - started < REPLY_WAIT / 2  # failed, not timed out
            assert result.response is None
            assert result.error == "cannot reach %s over tls" % uri
            line = "TLS connection to %s (127.0.0.1:%d) failed: certificate verify failed: %s" \
                % (uri_host, port, reason)
            assert line in [r.getMessage() for r in caplog.records], caplog.text
            assert [r.levelname for r in caplog.records if r.getMessage() == line] \
                == ["WARNING"]
            assert stack._tls.connections == {}  # nothing got through

    run(body())


class TlsClient:
    """A SipStack of the test's own that sends OPTIONS to sips: URIs, located as the
    agent locates them, with the test CA and no tls: listener."""

    def __init__(self, pki):
        self.stack = SipStack([("tcp", "127.0.0.1", 0)], self._on_event,
                              tls=TlsContexts(ca=pki.ca))
        self.waiting = {}  # client transaction -> Future of its outcome

    async def __aenter__(self):
        await self.stack.start()
        return self

    async def __aexit__(self, *exc):
        await self.stack.close()

    def _on_event(self, event):
        if isinstance(event, ResponseReceived) and event.response.status < 200:
            return
        if isinstance(event, ResponseReceived | TransportFailed | TransactionTimedOut):
            future = self.waiting.pop(event.transaction, None)
            if future is not None and not future.done():
                future.set_result(event.response.status if isinstance(event, ResponseReceived)
                                  else type(event).__name__)

    async def options(self, uri_text):
        """The status of the final response, or the name of the event that ended it."""
        uri = parse_uri(uri_text)
        target = (await locate(uri, transports=("tcp", "tls")))[0]
        endpoint = self.stack.endpoint
        request = make_request("OPTIONS", uri, "sip:tester@127.0.0.1", endpoint.new_tag(),
                               endpoint.new_call_id())
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.stack.send_request(request, tuple(target))] = future
        return await asyncio.wait_for(future, REPLY_WAIT)


def test_a_tls_connection_is_reused_only_for_the_name_it_was_verified_for(pki):
    async def body():
        sources = []
        async with tls_server(pki.server_cert, pki.server_key, sources=sources) \
                as (server, port), TlsClient(pki) as client:
            for host in ("localhost", "127.0.0.1", "localhost", "127.0.0.1"):
                assert await client.options("sips:porch@%s:%d" % (host, port)) == 200
            # Two names of one server, 127.0.0.1:port: a connection each, each used again.
            assert sources[0] == sources[2] and sources[1] == sources[3]
            assert sources[0] != sources[1]
            assert sorted(client.stack._tls.verified) == [
                ("127.0.0.1", port, "127.0.0.1"), ("127.0.0.1", port, "localhost")]
            assert len(server._tls.connections) == 2
            # Accepted ones count against the limit per source; ours to a server do not.
            assert server._tls.sources == {"127.0.0.1": 2} and not client.stack._tls.sources

    run(body())


def test_a_name_the_server_cannot_prove_does_not_ride_another_names_connection(pki, caplog):
    caplog.set_level(logging.INFO, logger="appliance.net.tcp")

    async def body():
        sources = []
        # A certificate for localhost alone, not for the address it is served on.
        async with tls_server(pki.name_only_cert, pki.name_only_key, sources=sources) \
                as (_, port), TlsClient(pki) as client:
            assert await client.options("sips:porch@localhost:%d" % port) == 200
            # The connection open to 127.0.0.1:port proved "localhost", not "127.0.0.1".
            assert await client.options("sips:porch@127.0.0.1:%d" % port) \
                == "TransportFailed"
            assert "TLS connection to 127.0.0.1 (127.0.0.1:%d) failed: certificate verify " \
                "failed: IP address mismatch, certificate is not valid for '127.0.0.1'." \
                % port in caplog.text, caplog.text
            # ... and the one that proved its name carries on.
            assert await client.options("sips:porch@localhost:%d" % port) == 200
            assert len(sources) == 2 and sources[0] == sources[1]
            assert list(client.stack._tls.verified) == [("127.0.0.1", port, "localhost")]

    run(body())


async def appliance_command(*args, timeout=20):
    """`appliance ARGS...` run to its end: (exit status, stdout, stderr)."""
    process = await spawn(*args)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode(), err.decode()


async def spawn(*args):
    env, root = clean_env()
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance.cli", *args, cwd=root, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def test_the_command_line_takes_the_ca_with_dash_dash_ca(tmp_path, pki):
    appliance = appliance_command

    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            uri = "sips:porch@localhost:%d" % port_of(agent.stack, "tls")
            status, out, err = await appliance("options", uri, "--ca", pki.ca, "--timeout", "3")
            assert (status, out.splitlines()[0]) == (0, "SIP/2.0 200 OK"), out + err
            status, out, err = await appliance("do", uri, "on", "--ca", pki.ca, "--user",
                                               "alice", "--password", "alice-pw",
                                               "--timeout", "3")
            assert status == 0 and "porch: on" in out, out + err
            # Without --ca the system's CAs know nothing of the test CA.
            status, out, err = await appliance("options", uri, "--timeout", "3")
            assert status == 1 and out == ""
            assert "certificate verify failed: unable to get local issuer certificate" in err
            assert "cannot reach %s over tls" % uri in err
            assert "Traceback" not in err

    run(body(), deadline=60)


def test_subscribe_over_tls_prints_the_door_opening(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO, logger="appliance.agent")

    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            uri = "sips:frontdoor@localhost:%d" % port_of(agent.stack, "tls")
            process = await spawn("subscribe", uri, "--ca", pki.ca, "--user", "alice",
                                  "--password", "alice-pw", "--timeout", "3")
            try:
                first = await asyncio.wait_for(process.stdout.readline(), 15)
                assert "  frontdoor  closed  seq " in first.decode(), first
                agent.simulate("frontdoor", "open")
                second = await asyncio.wait_for(process.stdout.readline(), REPLY_WAIT)
                assert "  frontdoor  open  seq " in second.decode(), second
                process.send_signal(signal.SIGTERM)  # unsubscribes, exit 0
                _, err = await asyncio.wait_for(process.communicate(), 10)
                assert process.returncode == 0, err.decode()
                assert "Traceback" not in err.decode()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            lines = [r.getMessage() for r in caplog.records
                     if r.getMessage().startswith("SUBSCRIBE ")]
            # Challenged, subscribed, and unsubscribed in the dialog (to the agent's
            # Contact, its address): all on the one connection verified for localhost.
            assert [line.split(" -> ")[1][:3] for line in lines] == ["401", "200", "200"]
            sources = {line.split(" from ")[1].split(" ")[0] for line in lines}
            assert len(sources) == 1 and sources.pop().startswith("tls:127.0.0.1:"), lines

    run(body(), deadline=60)


def test_a_watch_over_tls_pings_its_connection_and_ends_when_it_is_gone(tmp_path, pki):
    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            port = port_of(agent.stack, "tls")
            lines, errors = [], []
            watch = Watch("sips:frontdoor@localhost:%d" % port, username="alice",
                          password="alice-pw", ca=pki.ca, keepalive=0.1, out=lines.append,
                          err=errors.append)
            watching = asyncio.create_task(watch.run())
            try:
                assert await wait_until(lambda: lines)
                (connection,) = agent.stack._tls.connections.values()
                since = connection.last_used
                # CRLF pings keep the agent's end of the flow from going idle.
                assert await wait_until(lambda: connection.last_used > since + 0.3)
                assert len(lines) == 1  # no NOTIFY came meanwhile
                connection.transport.abort()  # the flow is gone: no NOTIFY can come
                assert await asyncio.wait_for(watching, REPLY_WAIT) == 1
            finally:
                watching.cancel()
            assert errors[-1] == ("subscription ended: the connection to 127.0.0.1:%d "
                                  "closed; no NOTIFY can reach us" % port), errors

    run(body())


def test_a_call_over_tls_is_answered_with_srtp(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO, logger="appliance.agent")
    caplog.set_level(logging.INFO, logger="appliance.media.session")

    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            uri = "sip:intercom@127.0.0.1:%d;transport=tls" % port_of(agent.stack, "tls")
            status, out, err = await appliance_command(
                "call", uri, "--ca", pki.ca, "--user", "alice", "--password", "alice-pw",
                "--audio", "null", "--duration", "1", "--timeout", "10")
            assert status == 0, out + err
            lines = out.splitlines()
            assert lines[0] == "calling " + uri
            assert lines[1].startswith("answered by "), out
            assert lines[2].startswith("ended: hung up after 1 s (RTP sent "), out
            invites = [r.getMessage() for r in caplog.records
                       if r.getMessage().startswith("INVITE ")]
            assert invites and all(" from tls:127.0.0.1:" in line for line in invites), invites
            # Over TLS the caller offers SRTP (its keys travel encrypted), and it is taken.
            srtp = [r.getMessage() for r in caplog.records if "the audio is SRTP" in
                    r.getMessage()]
            assert [line.partition(": ")[2] for line in srtp] == [
                "the audio is SRTP (AES_CM_128_HMAC_SHA1_80)"], srtp

    run(body(), deadline=60)


@pytest.mark.parametrize("command", ["subscribe", "call"])
def test_subscribe_and_call_to_a_server_of_another_ca_fail_clearly(tmp_path, pki, command):
    async def body():
        async with agent_from(tmp_path, home(pki)) as agent:
            name = "frontdoor" if command == "subscribe" else "intercom"
            uri = "sips:%s@localhost:%d" % (name, port_of(agent.stack, "tls"))
            extra = ["--audio", "null"] if command == "call" else []
            status, out, err = await appliance_command(
                command, uri, "--ca", pki.other_ca, "--user", "alice", "--password",
                "alice-pw", "--timeout", "3", *extra)
            assert status == 1, out + err
            assert "TLS connection to localhost (127.0.0.1:%d) failed: certificate verify " \
                "failed: unable to get local issuer certificate" % port_of(agent.stack, "tls") \
                in err, err
            if command == "subscribe":
                assert out == ""
                assert "cannot reach %s over tls" % uri in err
            else:
                assert out.splitlines()[1].startswith("ended: cannot reach %s (" % uri), out
            assert "Traceback" not in err
            assert agent.notifier.subscriptions == {}

    run(body(), deadline=60)


# -- registering over TLS ----------------------------------------------------------------------


class Registrar:
    """A registrar of the test's own on a TLS listener: answers REGISTER 200 (echoing the
    Contact), answers CRLF pings, and keeps the connection to send requests back on."""

    def __init__(self, pki):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.connections = []  # (reader, writer) of each connection accepted
        self.registers = asyncio.Queue()  # each REGISTER: {header name (lower): value}
        self.replies = asyncio.Queue()  # responses to what the test sent
        self.pings = 0
        self.server = None
        self.port = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                 ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        for _, writer in self.connections:
            writer.close()
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections.append((reader, writer))
        while True:
            try:
                data = await reader.readuntil(b"\r\n\r\n")
                if data == b"\r\n\r\n":  # an RFC 5626 ping: pong
                    self.pings += 1
                    writer.write(b"\r\n")
                    continue
                head = _fields(data)
                body = await reader.readexactly(int(head.get("content-length", "0")))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if data.startswith(b"SIP/2.0 "):
                await self.replies.put(Reply(data + body))
                continue
            await self.registers.put(head)
            echo = "".join("%s: %s\r\n" % (name, head[name.lower()])
                           for name in ("Via", "From", "Call-ID", "CSeq"))
            writer.write(("SIP/2.0 200 OK\r\n%sTo: %s;tag=reg-1\r\nContact: %s;expires=600"
                          "\r\nContent-Length: 0\r\n\r\n"
                          % (echo, head["to"], head["contact"])).encode())


def _fields(head):
    """A message head's header fields, {lower-case name: value} (one of each here)."""
    fields = {}
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name:
            fields[name.strip().lower()] = value.strip()
    return fields


@pytest.mark.parametrize("listen", [LISTEN, '["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]'],
                         ids=["tls-listener", "no-tls-listener"])
def test_devices_register_over_tls_and_are_reached_on_that_connection(tmp_path, pki, listen):
    async def body():
        async with Registrar(pki) as registrar:
            more = ('[proxy]\nregistrar = "sips:localhost:%d"\nusername = "pi"\n'
                    'password = "pi-pw"\n\n[nat]\nkeepalive = 1\n' % registrar.port)
            with_listener = "tls:" in listen
            async with agent_from(tmp_path, home(pki, listen, more, with_listener)) as agent:
                register = await asyncio.wait_for(registrar.registers.get(), REPLY_WAIT)
                tls_port = port_of(agent.stack, "tls" if with_listener else "tcp")
                assert register["via"].startswith("SIP/2.0/TLS 127.0.0.1:%d;" % tls_port)
                contact = register["contact"]
                assert contact.startswith("<sip:porch@127.0.0.1:%d;transport=tls>" % tls_port)
                assert await wait_until(lambda: agent.registrations.status()[0]["registered"])
                assert agent.registrations.flow_status()["flow"] \
                    == "tls:127.0.0.1:%d" % registrar.port

                # The registrar reaches the device on the connection the REGISTER came on.
                (_, writer), = registrar.connections
                uri = contact[1:contact.index(">")]
                writer.write(options_request(uri, "TLS 127.0.0.1:%d" % registrar.port,
                                             "back-1", "z9hG4bK-back-1"))
                reply = await asyncio.wait_for(registrar.replies.get(), REPLY_WAIT)
                assert reply.status == 200 and reply.get("Call-ID") == "back-1"
                # Keep-alives on the flow are CRLF pings, as over TCP.
                assert await wait_until(lambda: registrar.pings >= 1, timeout=3.0)
                assert len(registrar.connections) == 1

    run(body())
