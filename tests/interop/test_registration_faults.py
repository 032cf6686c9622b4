"""A registrar or STUN server that misbehaves: one clear line in the log and status, a
retry on the backoff schedule, never a crash or a tight loop."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import (
    ROOT,
    _agent_env,
    _start_agent,
    _stop,
    free_port,
    sipp_server,
    start_kamailio,
)
from .peers import HOST
from .test_registration import registrations, wait_for, workdir, write_config

__all__ = ["workdir"]  # the fixture, imported for the tests below

@pytest.mark.parametrize("scenario", ["register_200_without_contact.xml",
                                      "register_garbage.xml"])
def test_a_broken_registrar_gets_one_log_line_and_a_backoff(workdir, sipp_binary, scenario):
    port = free_port()
    messages = Path(workdir, "sipp.messages.log")
    with sipp_server(sipp_binary, scenario, HOST, port, messages=messages):
        config = Path(workdir, "home.toml")
        write_config(config, "sip:%s:%d" % (HOST, port), "pi-s3cret", devices=("frontdoor",))
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            assert wait_for(lambda: registrations(agent).get("frontdoor", {})
                            .get("last_error")), agent.output()
            status = registrations(agent)["frontdoor"]
            assert not status["registered"]
            assert status["last_error"] == "200 OK without our Contact"
            assert 30 - 1 <= status["next_register_in"] <= 60  # RFC 5626: 30-60 s at first
            time.sleep(2.0)  # quiet until then: no loop
            assert registrations(agent)["frontdoor"]["failures"] == 1
            line = "sip:frontdoor@home.arpa not registered: 200 OK without our Contact"
            assert agent.log().count(line) == 1, agent.log()
            assert messages.read_text().count("REGISTER sip:") == 1
            # The device still answers.
            result = subprocess.run(
                [sys.executable, "-m", "appliance.cli", "options",
                 "sip:frontdoor@%s" % agent.address, "--timeout", "5"],
                capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT)
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout
        finally:
            _stop(agent)


def test_a_stun_server_that_does_not_answer_is_reported_once(workdir):
    users = {"frontdoor-pi": "pi-s3cret"}
    silent = "%s:%d" % (HOST, free_port())  # nothing listens there
    with start_kamailio(Path(workdir, "kamailio"), users) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret", devices=("frontdoor",), keepalive=1,
                     stun=silent)
        agent = _start_agent(workdir, ["-c", str(config)])
        try:
            # Registration does not wait for it: the Contact has the local address.
            assert wait_for(lambda: registrations(agent).get("frontdoor", {})
                            .get("registered")), agent.output()
            assert registrations(agent)["frontdoor"]["contact"] == \
                "sip:frontdoor@%s" % agent.address
            assert wait_for(lambda: agent.status()["nat"]["error"]), agent.status()["nat"]
            nat = agent.status()["nat"]
            assert nat["error"] == "no answer from the STUN server %s" % silent
            assert nat["public"] is None
            time.sleep(4.0)  # several more unanswered requests: still one line
            assert agent.log().count("no answer from the STUN server") == 1, agent.log()
        finally:
            _stop(agent)
