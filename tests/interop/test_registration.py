"""Every device registers through a real home proxy (Kamailio) and is reached through it."""

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import (
    ROOT,
    _agent_env,
    _start_agent,
    _stop,
    free_port,
    start_kamailio,
    wait_for,
)


def write_config(path, registrar, password, expires=600, devices=("frontdoor", "porch"),
                 keepalive=None, stun=None, proxy_extra=""):
    kinds = {"frontdoor": 'type = "door"\npin = 17', "porch": 'type = "light"\npin = 22',
             "doorbell": 'type = "doorbell"\npin = 27'}
    text = ('[agent]\nname = "frontdoor-pi"\ndomain = "home.arpa"\nsimulate = true\n'
            'state_dir = "state"\n\n'
            '[proxy]\nregistrar = "%s"\nusername = "frontdoor-pi"\npassword = "%s"\n'
            "expires = %d\n%s\n" % (registrar, password, expires, proxy_extra))
    if keepalive is not None or stun is not None:
        text += "[nat]\n"
        if keepalive is not None:
            text += "keepalive = %d\n" % keepalive
        if stun is not None:
            text += 'stun = "%s"\n' % stun
        text += "\n"
    for name in devices:
        text += '[[devices]]\nname = "%s"\n%s\n\n' % (name, kinds[name])
    path.write_text(text)




def options_via(kamailio, uri):
    """OPTIONS to `uri` sent through the proxy by a user of the realm."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "options", uri, "--proxy", kamailio.uri,
         "--from", "sip:alice@home.arpa", "--user", "alice", "--password", "alice-pw",
         "--timeout", "5"],
        capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT,
    )


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="sipreg-")  # short: the control socket lives here
    yield path
    shutil.rmtree(path, ignore_errors=True)


def registrations(agent):
    return {r["device"]: r for r in agent.status()["registrations"]}


def test_devices_register_are_reached_through_the_proxy_and_unregister(workdir):
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret")
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            assert wait_for(lambda: all(r["registered"] for r in registrations(agent).values())
                            and len(registrations(agent)) == 2), agent.output()
            status = registrations(agent)["frontdoor"]
            assert status["aor"] == "sip:frontdoor@home.arpa"
            assert status["last_error"] is None and status["granted"] == 600
            assert 0 < status["expires_in"] <= 600

            text = subprocess.run(
                [sys.executable, "-m", "appliance.cli", "status", "--control", agent.control],
                capture_output=True, text=True, timeout=10, env=_agent_env(), cwd=ROOT,
            ).stdout
            assert "frontdoor  sip:frontdoor@home.arpa: registered, expires in" in text, text

            result = options_via(kamailio, "sip:frontdoor@home.arpa")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()
            assert "OPTIONS sip:frontdoor@127.0.0.1:%d" % agent.port in agent.log()
        finally:
            _stop(agent)
        # Unregistered on the clean stop: the proxy no longer knows where the door is.
        result = options_via(kamailio, "sip:frontdoor@home.arpa")
        assert result.stdout.startswith("SIP/2.0 404"), result.stdout + kamailio.log()


def test_wrong_password_is_reported_and_not_retried_at_once(workdir):
    with start_kamailio(Path(workdir, "kamailio"), {"frontdoor-pi": "pi-s3cret"}) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "not-the-password")
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            assert wait_for(lambda: all(r["last_error"] for r in registrations(agent).values())
                            and registrations(agent)), agent.output()
            for status in registrations(agent).values():
                assert not status["registered"]
                assert status["last_error"] == "authentication failed"
                assert status["next_register_in"] >= 14  # backoff: 30 s, less jitter
            assert "pi-s3cret" not in agent.output() and "not-the-password" not in agent.output()
            assert "not registered: authentication failed" in agent.log()
            # One failed attempt (challenged, answer refused), then quiet until the backoff.
            time.sleep(2.0)
            assert registrations(agent)["frontdoor"]["failures"] == 1
            # The registrar saw two REGISTERs per device: the first and the answer.
            assert kamailio.registers("sip:frontdoor@home.arpa") == 2, kamailio.log()
        finally:
            _stop(agent)


def test_a_registrar_that_does_not_resolve_is_reported_and_the_agent_serves_on(workdir):
    config = Path(workdir, "home.toml")
    write_config(config, "sip:registrar.invalid", "pi-s3cret")
    agent = _start_agent(workdir, ["-c", str(config)])
    try:
        assert wait_for(lambda: registrations(agent)), agent.output()
        status = registrations(agent)["frontdoor"]
        assert not status["registered"]
        assert status["last_error"].startswith("cannot resolve registrar.invalid")
        assert agent.log().count("cannot resolve registrar.invalid") == 1  # one line, no loop
        # ... and the devices still answer directly.
        result = subprocess.run(
            [sys.executable, "-m", "appliance.cli", "options",
             "sip:frontdoor@127.0.0.1:%d" % agent.port, "--timeout", "5"],
            capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT,
        )
        assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout
    finally:
        _stop(agent)


def test_after_the_registrar_restarts_the_devices_register_again(workdir):
    # Kamailio keeps its location table in memory: a restart forgets every binding. The
    # devices come back with their next refresh (expires 60: within about 30 s), answering
    # the new instance's challenge.
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    port = free_port()
    config = Path(workdir, "home.toml")
    agent = None
    try:
        with start_kamailio(Path(workdir, "kamailio-1"), users, port=port) as first:
            write_config(config, first.uri, "pi-s3cret", expires=60)
            agent = _start_agent(workdir, ["-c", str(config)])
            assert wait_for(lambda: all(r["registered"] for r in registrations(agent).values())
                            and registrations(agent)), agent.output()
        with start_kamailio(Path(workdir, "kamailio-2"), users, port=port) as second:
            assert "AoR: frontdoor" not in second.location()  # forgotten
            assert wait_for(lambda: "AoR: frontdoor" in second.location()
                            and "AoR: porch" in second.location(), timeout=45), (
                agent.output() + second.log())
            result = options_via(second, "sip:frontdoor@home.arpa")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()
    finally:
        if agent is not None:
            _stop(agent)


def test_a_reload_keeps_unchanged_bindings_and_registers_the_new_device(workdir):
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret")
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            assert wait_for(lambda: len(registrations(agent)) == 2 and all(
                r["registered"] for r in registrations(agent).values())), agent.output()
            before = kamailio.registers("sip:frontdoor@home.arpa")

            write_config(config, kamailio.uri, "pi-s3cret", devices=("frontdoor", "doorbell"))
            agent.process.send_signal(signal.SIGHUP)
            assert wait_for(lambda: set(registrations(agent)) == {"frontdoor", "doorbell"}
                            and registrations(agent)["doorbell"]["registered"]), agent.output()
            assert options_via(kamailio, "sip:doorbell@home.arpa").stdout.startswith(
                "SIP/2.0 200 OK")
            # The porch unregistered; the door's binding was left alone.
            assert wait_for(lambda: options_via(kamailio, "sip:porch@home.arpa").stdout
                            .startswith("SIP/2.0 404")), kamailio.log()
            assert kamailio.registers("sip:frontdoor@home.arpa") == before
            assert options_via(kamailio, "sip:frontdoor@home.arpa").stdout.startswith(
                "SIP/2.0 200 OK")
        finally:
            _stop(agent)
