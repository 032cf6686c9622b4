"""`appliance do` and `appliance message` against a running `appliance run`: a light dims
and goes off, a wrong password and an unknown command exit 1 with the status line, and a
stock softphone (baresip) switches the light on with an authenticated MESSAGE."""

import re
import subprocess
import sys

import pytest

from .conftest import ROOT, _agent_env, running_home, start_baresip, wait_for

HOME = """
[agent]
name = "porch-pi"
simulate = true
digest_algorithms = ["MD5"]      # baresip 1.0 answers only MD5

[[users]]
name = "alice"
password = "alice-pw"
devices = ["porch", "strike"]

[[devices]]
name = "porch"
type = "light"
pin = 22
dimmable = true

[[devices]]
name = "strike"
type = "relay"
pin = 23
pulse = 1
"""

USAGE = "Use on, off, toggle, dim 0-100, pulse [SECONDS] or status"


@pytest.fixture
def home():
    with running_home(HOME, "sipdo-") as agent:
        yield agent


def appliance(*args):
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=ROOT,
                          env=_agent_env(), capture_output=True, text=True, timeout=20)


def porch(agent):
    return agent.status()["devices"]["porch"]


def test_do_dims_the_light_and_message_switches_it_off(home, tmp_path):
    agent = home
    uri = "sip:porch@%s" % agent.address
    done = appliance("do", uri, "dim", "40", "--user", "alice", "--password", "alice-pw")
    assert (done.returncode, done.stdout) == (0, "SIP/2.0 200 OK\nporch: on, brightness 40\n"), (
        done.stderr + agent.output())
    assert (porch(agent)["state"], porch(agent)["brightness"]) == ("on", 40)

    secret = tmp_path / "alice.secret"
    secret.write_text("alice-pw\n")
    sent = appliance("message", uri, "off", "--user", "alice", "--password-file", str(secret))
    assert (sent.returncode, sent.stdout) == (0, "SIP/2.0 200 OK\n"), sent.stderr
    assert porch(agent)["state"] == "off"

    # Home Assistant's JSON, over TCP, with the whole response shown.
    shown = appliance("do", uri + ";transport=tcp", "--json", '{"state": "ON", "brightness": 70}',
                      "--user", "alice", "--password", "alice-pw", "-v")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.startswith("SIP/2.0 200 OK\n")
    assert "Content-Type: application/json" in shown.stdout
    assert '"brightness": 70' in shown.stdout
    assert "alice-pw" not in shown.stdout + shown.stderr
    assert "Authorization" not in shown.stdout
    assert (porch(agent)["state"], porch(agent)["brightness"]) == ("on", 70)
    assert re.search(r"DO sip:porch@\S+;transport=tcp from tcp:\S+ -> 200 OK", agent.log())

    # The relay pulses for its configured second, then lets go by itself.
    strike = appliance("do", "sip:strike@%s" % agent.address, "pulse",
                       "--user", "alice", "--password", "alice-pw")
    assert (strike.returncode, strike.stdout) == (0, "SIP/2.0 200 OK\nstrike: on\n")
    assert wait_for(lambda: agent.status()["devices"]["strike"]["state"] == "off", 5)


def test_a_wrong_password_and_an_unknown_command_exit_1(home):
    agent = home
    uri = "sip:porch@%s" % agent.address
    before = porch(agent)
    refused = appliance("do", uri, "on", "--user", "alice", "--password", "wrong")
    assert (refused.returncode, refused.stdout) == (1, "SIP/2.0 401 Unauthorized\n")
    assert "wrong" not in refused.stdout + refused.stderr
    assert porch(agent) == before

    unknown = appliance("do", uri, "explode", "--user", "alice", "--password", "alice-pw")
    assert (unknown.returncode, unknown.stdout) == (1, "SIP/2.0 400 %s\n" % USAGE)
    bad = appliance("message", uri, "dim", "400", "--user", "alice", "--password", "alice-pw")
    assert bad.returncode == 1
    assert bad.stdout.startswith("SIP/2.0 400 ")
    assert porch(agent) == before

    # Mistakes caught before anything is sent.
    assert appliance("do", uri, "--user", "alice", "--password", "alice-pw").returncode == 1
    not_json = appliance("do", uri, "--json", "{on", "--user", "alice", "--password", "x")
    assert not_json.returncode == 1
    assert "--json is not JSON" in not_json.stderr
    half = appliance("do", uri, "on", "--user", "alice")
    assert half.returncode == 1
    assert "needs both --user and --password" in half.stderr


def test_baresip_switches_the_light_on_with_a_message(home, tmp_path):
    # A stock softphone's chat: baresip sends MESSAGE "on" (text/plain) to its current
    # contact, answers the digest challenge with the account's auth_pass, and the pin goes
    # high before the 200.
    agent = home
    assert porch(agent)["state"] == "off"
    with start_baresip(tmp_path, "<sip:alice@127.0.0.1>;auth_pass=alice-pw;regint=0",
                       '"Porch" <sip:porch@%s>' % agent.address) as baresip:
        assert wait_for(lambda: "Populated 1 contact" in baresip.shown()), baresip.shown()
        # The first contact becomes the current one; then chat to it.
        baresip.command("/contact_next")
        baresip.command("/message on")
        assert wait_for(lambda: "porch: on by alice -> on" in agent.log()), (
            agent.log() + baresip.shown())
    assert porch(agent)["state"] == "on"
    log = agent.log()
    assert re.search(r"MESSAGE sip:porch@\S+ from \S+ -> 401 Unauthorized", log), log
    assert re.search(r"MESSAGE sip:porch@\S+ from \S+ -> 200 OK", log), log
