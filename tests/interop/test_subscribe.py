"""Door watchers (RFC 6665) against a running `appliance run`: SIPp subscribes as a user,
sees the door open through `appliance sim`, refreshes and unsubscribes."""

import subprocess
import sys

import pytest

from .conftest import ROOT, _agent_env, running_home, start_baresip, wait_for
from .test_sipp import SippResult, sipp_command


def sim(agent, device, state):
    result = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "sim", device, state, "--control",
         agent.control], capture_output=True, text=True, timeout=10, env=_agent_env(),
        cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr




def start_sipp(sipp_binary, agent, tmp_path, scenario, user, transport="u1", timeout=40):
    name = "%s-%s" % (scenario.rpartition(".")[0], transport)
    command = sipp_command(sipp_binary, scenario, user, agent.address, tmp_path, name,
                           transport, timeout=timeout)
    # The digest-uri is the Request-URI (SIPp's default leaves the user part out).
    command[1:1] = ["-auth_uri", "%s@%s" % (user, agent.address)]
    out = open(tmp_path / (name + ".out"), "wb")
    process = subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT)
    out.close()
    return process, SippResult(None, tmp_path, name)


def finish(process, result, timeout=60):
    try:
        result.returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        result.returncode = "nothing: killed after %ds" % timeout
    return result


def subscriptions(agent):
    return agent.status()["subscriptions"]


HOME = """
[agent]
name = "frontdoor-pi"
simulate = true
digest_algorithms = ["MD5"]      # SIPp answers only the first challenge, and only MD5

[[users]]
name = "demo"
password = "demo"
devices = ["frontdoor", "doorbell"]

[[users]]
name = "guest"
password = "guest"
devices = ["doorbell"]

[[devices]]
name = "frontdoor"
type = "door"
pin = 17

[[devices]]
name = "doorbell"
type = "doorbell"
pin = 27
"""


@pytest.fixture
def home():
    with running_home(HOME, "sipsub-") as agent:
        yield agent


def test_a_watcher_sees_the_door_open_refreshes_and_unsubscribes(sipp_binary, home, tmp_path):
    agent = home
    for transport in ("u1", "t1"):
        process, result = start_sipp(sipp_binary, agent, tmp_path, "subscribe_door.xml",
                                     "frontdoor", transport)
        try:
            assert wait_for(lambda: subscriptions(agent)), agent.output()
            [entry] = subscriptions(agent)
            assert (entry["device"], entry["user"], entry["event"]) == (
                "frontdoor", "demo", "appliance")
            assert entry["notifications"] == 1
            seq = agent.status()["devices"]["frontdoor"]["seq"]
            sim(agent, "frontdoor", "open")
        finally:
            finish(process, result)
        assert result.returncode == 0, result.report(agent)
        assert agent.status()["devices"]["frontdoor"]["seq"] > seq
        assert wait_for(lambda: not subscriptions(agent)), subscriptions(agent)
        log = agent.log()
        assert "demo subscribed to frontdoor (appliance) for 120 s" in log
        assert "demo unsubscribed from frontdoor (appliance)" in log
        sim(agent, "frontdoor", "closed")


def test_baresip_watches_the_door_as_a_buddy(home, tmp_path):
    # A stock softphone: baresip's presence module subscribes to a contact marked
    # presence=p2p and shows it Online while the door is open (PIDF basic "open").
    agent = home
    with start_baresip(tmp_path, "<sip:demo@127.0.0.1>;auth_pass=demo;regint=0",
                       '"Door" <sip:frontdoor@%s>;presence=p2p' % agent.address) as baresip:
        assert wait_for(lambda: "demo subscribed to frontdoor (presence)" in agent.log()), (
            agent.log() + baresip.shown())
        sim(agent, "frontdoor", "open")
        door = "<sip:frontdoor@%s>" % agent.address
        assert wait_for(lambda: "%s changed status from Offline to Online" % door
                        in baresip.shown()), baresip.shown()
        sim(agent, "frontdoor", "closed")
        assert wait_for(lambda: "%s changed status from Online to Offline" % door
                        in baresip.shown()), baresip.shown()
    # It unsubscribed on the way out.
    assert wait_for(lambda: "demo unsubscribed from frontdoor (presence)" in agent.log())


def test_a_lapsed_subscription_and_a_vanished_watcher_end(sipp_binary, home, tmp_path):
    # Both at once, as each takes its time: one lets its subscription lapse after 60 s
    # (terminated;reason=timeout), the other stops answering after its first NOTIFY and is
    # dropped once that NOTIFY's transaction gives up (32 s).
    agent = home
    lapsing = start_sipp(sipp_binary, agent, tmp_path, "subscribe_expiry.xml", "frontdoor",
                         timeout=90)
    vanishing = start_sipp(sipp_binary, agent, tmp_path, "subscribe_silent.xml", "frontdoor",
                           timeout=20)
    try:
        assert wait_for(lambda: len(subscriptions(agent)) == 2), agent.output()
        assert finish(*vanishing, timeout=30).returncode == 0, vanishing[1].report(agent)
        assert wait_for(lambda: len(subscriptions(agent)) == 1, timeout=40), (
            subscriptions(agent))
        assert "ended: no answer to NOTIFY" in agent.log()
        result = finish(*lapsing, timeout=90)
        assert result.returncode == 0, result.report(agent)
        assert wait_for(lambda: not subscriptions(agent)), subscriptions(agent)
        assert "ended: timeout" in agent.log()
    finally:
        for process, _ in (lapsing, vanishing):
            if process.poll() is None:
                process.kill()
