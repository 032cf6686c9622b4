"""SIP over TLS against a real home proxy: Kamailio's tls module with a certificate of the
test's CA (openssl), the devices registered through `sips:` and reached over the TLS
connection they registered on."""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import (
    ROOT,
    _agent_env,
    _start_agent,
    _stop,
    make_certificates,
    start_kamailio,
    wait_for,
)
from .peers import HOST, free_port
from .test_registration import registrations, write_config

USERS = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="siptls-")  # short: the control socket lives here
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tls_config(path, kamailio, ca, certificates=None, keepalive=None):
    """The home of test_registration with the registrar at Kamailio's sips: URI, [tls] ca,
    alice as a user of the porch, and with `certificates` a certificate and key for a
    tls: listener of its own."""
    write_config(path, kamailio.tls_uri, "pi-s3cret", keepalive=keepalive)
    lines = ['ca = "%s"' % ca]
    if certificates is not None:
        lines += ['certificate = "%s"' % certificates.server_cert,
                  'key = "%s"' % certificates.server_key]
    path.write_text(path.read_text() + "[tls]\n" + "\n".join(lines) + "\n\n"
                    '[[users]]\nname = "alice"\npassword = "alice-pw"\n'
                    'devices = ["porch", "frontdoor"]\n')


def appliance(*args):
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args], capture_output=True, text=True,
        timeout=30, env=_agent_env(), cwd=ROOT)


@pytest.mark.parametrize("listener", [False, True], ids=["no-tls-listener", "tls-listener"])
def test_devices_register_over_tls_and_are_reached_through_the_proxy(workdir, listener):
    certificates = make_certificates(Path(workdir, "certs"))
    with start_kamailio(Path(workdir, "kamailio"), USERS, tls=certificates) as kamailio:
        config = Path(workdir, "home.toml")
        tls_config(config, kamailio, certificates.ca, certificates if listener else None,
                   keepalive=1)
        extra = ["--listen", "tls:%s:%d" % (HOST, free_port())] if listener else []
        agent = _start_agent(workdir, ["-c", str(config), *extra])
        try:
            assert wait_for(lambda: len(registrations(agent)) == 2 and all(
                r["registered"] for r in registrations(agent).values())), (
                agent.output() + kamailio.log())
            assert agent.status()["nat"]["flow"] == "tls:%s:%d" % (HOST, kamailio.tls_port)
            # RFC 5626 keep-alives on the flow: double-CRLF pings, Kamailio's CRLF pongs.
            assert wait_for(lambda: (agent.status()["nat"]["keepalive"] or {})
                            .get("last_answer_ago") is not None), agent.status()["nat"]
            keepalive = agent.status()["nat"]["keepalive"]
            assert (keepalive["method"], keepalive["transport"]) == ("crlf", "tls")
            # Kamailio holds the bindings on its TLS socket, Contacts saying transport=tls.
            location = kamailio.location()
            for name in ("frontdoor", "porch"):
                assert "AoR: %s" % name in location, location
            assert location.count("Socket: tls:%s:%d" % (HOST, kamailio.tls_port)) == 2, location
            addresses = re.findall(r"Address: (\S+)", location)
            assert len(addresses) == 2, location
            assert all(a.endswith(";transport=tls") for a in addresses), addresses

            # A user of the realm, over TLS to the proxy, switches the porch light: the
            # request reaches the agent over the connection it registered on (whose far
            # end is Kamailio's TLS port, not a port Kamailio connected from).
            result = appliance(
                "do", "sip:porch@home.arpa", "on", "--proxy", kamailio.tls_uri,
                "--ca", str(certificates.ca), "--from", "sip:alice@home.arpa",
                "--user", "alice", "--password", "alice-pw", "--timeout", "5")
            assert result.returncode == 0, result.stdout + result.stderr + agent.output()
            assert "porch: on" in result.stdout, result.stdout
            tls_port = agent.port if not listener else int(extra[1].rpartition(":")[2])
            assert "DO sip:porch@127.0.0.1:%d;transport=tls from tls:%s:%d -> 200 OK" % (
                tls_port, HOST, kamailio.tls_port) in agent.log(), agent.log()
            result = appliance(
                "options", "sip:frontdoor@home.arpa", "--proxy", kamailio.tls_uri,
                "--ca", str(certificates.ca), "--from", "sip:alice@home.arpa",
                "--user", "alice", "--password", "alice-pw", "--timeout", "5")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + result.stderr
            assert agent.log().count("from tls:%s:%d -> 200" % (HOST, kamailio.tls_port)) == 2
        finally:
            _stop(agent)
        # Unregistered on the clean stop, over the same TLS flow.
        location = kamailio.location()
        assert "AoR: frontdoor" not in location and "AoR: porch" not in location, location


def test_a_proxy_certificate_from_another_ca_fails_registration_clearly(workdir):
    certificates = make_certificates(Path(workdir, "certs"))
    stranger = make_certificates(Path(workdir, "other-certs"))  # another CA altogether
    with start_kamailio(Path(workdir, "kamailio"), USERS, tls=certificates) as kamailio:
        config = Path(workdir, "home.toml")
        tls_config(config, kamailio, stranger.ca)
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            line = ("TLS connection to %s (%s:%d) failed: certificate verify failed: "
                    "unable to get local issuer certificate" % (HOST, HOST, kamailio.tls_port))
            assert wait_for(lambda: line in agent.log()), agent.output()
            assert wait_for(lambda: registrations(agent) and all(
                r["last_error"] for r in registrations(agent).values())), agent.output()
            for status in registrations(agent).values():
                assert not status["registered"]
                assert status["last_error"] == "could not send to the registrar"
            assert kamailio.registers() == 0  # nothing got through to it
            # The agent serves on: a device answers directly.
            result = appliance("options", "sip:frontdoor@%s" % agent.address, "--timeout", "5")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + result.stderr
        finally:
            _stop(agent)
