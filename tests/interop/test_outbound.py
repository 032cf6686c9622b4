"""RFC 5626 outbound against a real Kamailio (registrar with outbound_mode and its stun
module): the stored instance id, flows kept alive, and a failed flow recovered."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import ROOT, _agent_env, _start_agent, _stop, start_kamailio
from .test_registration import options_via, registrations, wait_for, workdir, write_config

__all__ = ["workdir"]  # the fixture, imported for the tests below

USERS = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}


def contacts_of(location, aor):
    """The Contact blocks Kamailio holds for `aor` (from `kamcmd ul.dump`)."""
    match = re.search(r"AoR: %s\b(.*?)(?=AoR: |\Z)" % aor, location, re.S)
    return re.findall(r"Contact: \{(.*?)\}", match.group(1), re.S) if match else []


def everyone_registered(agent):
    entries = registrations(agent)
    return entries and all(entry["registered"] for entry in entries.values())


def test_instance_id_is_stored_and_a_restarted_agent_replaces_its_bindings(workdir):
    with start_kamailio(Path(workdir, "kamailio"), USERS) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret", keepalive=1)
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            assert wait_for(lambda: everyone_registered(agent)), agent.output()
            instance = Path(workdir, "state", "instance-id").read_text().strip()
            [contact] = contacts_of(kamailio.location(), "frontdoor")
            assert "Instance: <urn:uuid:%s>" % instance in contact, contact
            assert "Reg-Id: 1" in contact, contact
            assert registrations(agent)["frontdoor"]["outbound"] is True
            # Outbound over UDP: STUN keep-alives, answered by the registrar.
            assert wait_for(lambda: (agent.status()["nat"]["keepalive"] or {})
                            .get("last_answer_ago") is not None), agent.status()["nat"]
            keepalive = agent.status()["nat"]["keepalive"]
            assert (keepalive["method"], keepalive["transport"]) == ("stun", "udp")
            assert keepalive["state"] in ("idle", "waiting") and keepalive["error"] is None
            text = subprocess.run(
                [sys.executable, "-m", "appliance.cli", "status", "--control", agent.control],
                capture_output=True, text=True, timeout=10, env=_agent_env(), cwd=ROOT,
            ).stdout
            assert "keep-alive: stun on udp:127.0.0.1:%d every 1s, " % kamailio.port in text, text
        finally:
            agent.process.kill()  # a crash: no unregister
            agent.process.wait(5)
        # The next run (another port, so another Contact) has the same instance id and
        # reg-id: the registrar replaces the old binding instead of keeping both.
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            assert wait_for(lambda: everyone_registered(agent)), agent.output()
            assert Path(workdir, "state", "instance-id").read_text().strip() == instance
            [contact] = contacts_of(kamailio.location(), "frontdoor")
            assert ":%d" % agent.port in contact, contact
            result = options_via(kamailio, "sip:frontdoor@home.arpa")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()
        finally:
            _stop(agent)


def test_without_outbound_a_crashed_agent_leaves_a_stale_binding(workdir):
    # The counterpart of the test above: what outbound = false gives.
    with start_kamailio(Path(workdir, "kamailio"), USERS) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret", devices=("frontdoor",),
                     proxy_extra="outbound = false\n")
        for _ in range(2):
            agent = _start_agent(workdir, ["-c", str(config)])
            assert wait_for(lambda: everyone_registered(agent)), agent.output()  # noqa: B023
            assert registrations(agent)["frontdoor"]["outbound"] is False
            agent.process.kill()
            agent.process.wait(5)
        contacts = contacts_of(kamailio.location(), "frontdoor")
        assert len(contacts) == 2 and not any("Instance: <urn" in c for c in contacts), contacts
        assert not Path(workdir, "state", "instance-id").exists()


def test_tcp_flow_missed_pong_fails_the_flow_and_registers_again(workdir):
    with start_kamailio(Path(workdir, "kamailio"), USERS) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri + ";transport=tcp", "pi-s3cret",
                     devices=("frontdoor",), keepalive=1)
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            assert wait_for(lambda: everyone_registered(agent)), agent.output()
            assert registrations(agent)["frontdoor"]["contact"].endswith(";transport=tcp")
            # Kamailio answers the double-CRLF pings with CRLF pongs.
            assert wait_for(lambda: (agent.status()["nat"]["keepalive"] or {})
                            .get("last_answer_ago") is not None), agent.status()["nat"]
            nat = agent.status()["nat"]
            assert nat["flow"] == "tcp:127.0.0.1:%d" % kamailio.port
            assert (nat["keepalive"]["method"], nat["keepalive"]["transport"]) == ("crlf", "tcp")
            result = options_via(kamailio, "sip:frontdoor@home.arpa")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()

            # The registrar hangs: the connection stays up, but no pong comes back.
            os.killpg(kamailio.process.pid, signal.SIGSTOP)
            try:
                assert wait_for(lambda: "no answer to the keep-alive" in agent.log(),
                                timeout=20), agent.output()
                assert "flow to the registrar tcp:127.0.0.1:%d failed" % kamailio.port \
                    in agent.log()
            finally:
                os.killpg(kamailio.process.pid, signal.SIGCONT)
            # The REGISTER sent on a new connection is answered once it wakes up, and
            # keep-alives run again on the new flow.
            started = time.monotonic()
            assert wait_for(lambda: agent.status()["nat"]["keepalive"] is not None
                            and agent.status()["nat"]["keepalive"]["state"] != "failed"
                            and everyone_registered(agent), timeout=20), agent.output()
            assert time.monotonic() - started < 20
            assert registrations(agent)["frontdoor"]["failures"] == 0
            result = options_via(kamailio, "sip:frontdoor@home.arpa")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()
        finally:
            _stop(agent)


def test_an_outbound_proxy_carries_the_registrations(workdir):
    # The registrar's name means nothing here; every REGISTER goes to the outbound proxy
    # with a preloaded Route (the proxy's URI with lr, and ob for RFC 5626).
    with start_kamailio(Path(workdir, "kamailio"), USERS) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, "sip:registrar.invalid", "pi-s3cret", devices=("frontdoor",),
                     proxy_extra='outbound_proxy = "%s"\n' % kamailio.uri)
        agent = _start_agent(workdir, ["-c", str(config), "--verbose"])
        try:
            assert wait_for(lambda: everyone_registered(agent)), agent.output()
            assert "Route: <%s;lr;ob>" % kamailio.uri in agent.log(), agent.log()
            assert "response=" not in agent.log()  # the debug log keeps digests out
            assert "registrar.invalid" not in agent.status()["nat"]["flow"]
            result = options_via(kamailio, "sip:frontdoor@home.arpa")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()
        finally:
            _stop(agent)
