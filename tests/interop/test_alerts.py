"""Alerts (RFC 3428 MESSAGE) from a running `appliance run` to SIPp playing the person a
door's or doorbell's `notify` names: delivered at once, kept through an outage and delivered
in order when it ends, and sent through the home proxy (Kamailio), answering its 407."""

import contextlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import ROOT, _start_agent, _stop, free_port, start_kamailio
from .peers import HOST
from .test_subscribe import sim, wait_for

SCENARIOS = ROOT / "tests" / "interop" / "scenarios"
SIPP_WAIT = 20.0  # seconds for SIPp to take what it waits for
TIME = "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]"


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="sipalert-")  # short: the control socket lives here
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def write_home(path, notify, proxy=None):
    """A simulated home whose front door and doorbell alert `notify`; with `proxy` (the
    registrar's URI) they register there as frontdoor-pi and alert through it."""
    text = '[agent]\nname = "frontdoor-pi"\ndomain = "home.arpa"\nsimulate = true\n' \
           'state_dir = "state"\n\n'
    if proxy is not None:
        text += '[proxy]\nregistrar = "%s"\nusername = "frontdoor-pi"\n' \
                'password = "pi-s3cret"\n\n' % proxy
    for name, kind, pin in (("frontdoor", "door", 17), ("doorbell", "doorbell", 27)):
        text += '[[devices]]\nname = "%s"\ntype = "%s"\npin = %d\nnotify = ["%s"]\n\n' % (
            name, kind, pin, notify)
    path.write_text(text)


@contextlib.contextmanager
def running_agent(workdir, config):
    agent = _start_agent(str(workdir), ["-c", str(config)])
    try:
        assert agent.running(), agent.output()
        yield agent
    finally:
        _stop(agent)


class Recipient:
    """SIPp as the person alerted: takes `calls` MESSAGEs on HOST:port, then exits (0 when
    every one went as its scenario says); `messages()` are the MESSAGEs it logged."""

    def __init__(self, sipp_binary, workdir, scenario, port, calls, transport="u1"):
        self.log_path = workdir / ("alice-%d.messages.log" % port)
        self.process = subprocess.Popen(
            [sipp_binary, "-sf", str(SCENARIOS / scenario), "-i", HOST, "-p", str(port),
             "-t", transport, "-m", str(calls), "-nostdin", "-trace_msg",
             "-message_file", str(self.log_path)],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def wait(self, timeout=SIPP_WAIT):
        """SIPp's exit status, or None when it is still waiting after `timeout` s."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)

    def messages(self):
        """Each MESSAGE received, in order: (its header lines, its body as text)."""
        if not self.log_path.exists():
            return []
        out = []
        for block in self.log_path.read_bytes().decode(errors="replace").split("\n" + "-" * 47):
            _, received, rest = block.partition("message received")
            message = rest.partition("\n\n")[2]
            if not received or not message.startswith("MESSAGE "):
                continue
            head, _, body = message.partition("\r\n\r\n")
            lines = head.split("\r\n")
            length = int(next(line.split(":", 1)[1] for line in lines
                              if line.lower().startswith("content-length:")))
            out.append((lines, body.encode()[:length].decode()))
        return out

    def texts(self):
        return [body for _, body in self.messages()]


@contextlib.contextmanager
def recipient(sipp_binary, workdir, scenario, port, calls, transport="u1"):
    peer = Recipient(sipp_binary, workdir, scenario, port, calls, transport)
    try:
        yield peer
    finally:
        peer.stop()


def header(lines, name):
    prefix = name.lower() + ":"
    return next(line.split(":", 1)[1].strip() for line in lines
                if line.lower().startswith(prefix))


def alerts(agent):
    return {entry["target"]: entry for entry in agent.status()["alerts"]}


def registered(agent):
    entries = agent.status()["registrations"]
    return entries and all(entry["registered"] for entry in entries)


def warnings_about(agent, target):
    return [line for line in agent.log().splitlines()
            if " WARNING " in line and target in line]


def test_alice_reads_that_the_front_door_opened(sipp_binary, workdir):
    port = free_port()
    target = "sip:alice@%s:%d" % (HOST, port)
    config = workdir / "home.toml"
    write_home(config, target)
    with running_agent(workdir, config) as agent, \
            recipient(sipp_binary, workdir, "message_alert_recipient.xml", port, 1) as alice:
        sim(agent, "frontdoor", "open")
        # The scenario's <ereg> checks the text: another one fails SIPp's exit status.
        assert alice.wait() == 0, alice.texts() + [agent.output()]
        [(lines, text)] = alice.messages()
        assert re.fullmatch("Front door opened at " + TIME, text), text
        assert lines[0] == "MESSAGE %s SIP/2.0" % target
        assert header(lines, "From").startswith("<sip:frontdoor@home.arpa>;tag=")
        assert header(lines, "To") == "<%s>" % target
        assert header(lines, "Content-Type") == "text/plain;charset=UTF-8"
        assert header(lines, "CSeq") == "1 MESSAGE"
        assert wait_for(lambda: alerts(agent)[target]["delivered"] == 1), agent.output()
        assert alerts(agent)[target] == {
            "target": target, "queued": 0, "failing": False, "failures": 0,
            "last_error": None, "retry_in": None, "delivered": 1, "dropped": 0}
        assert "MESSAGE to %s (frontdoor: %s) -> 200 OK" % (target, text) in agent.log()
        assert not warnings_about(agent, target)


def test_alerts_wait_out_an_outage_and_arrive_in_order(sipp_binary, workdir):
    # Over TCP, so that nobody listening fails each attempt at once (connection refused);
    # over UDP an unanswered MESSAGE fails only when timer F fires, after 32 s.
    port = free_port()
    target = "sip:alice@%s:%d;transport=tcp" % (HOST, port)
    config = workdir / "home.toml"
    write_home(config, target)
    with running_agent(workdir, config) as agent:
        sim(agent, "frontdoor", "open")
        assert wait_for(lambda: alerts(agent)[target]["failing"]), agent.output()
        sim(agent, "frontdoor", "closed")
        sim(agent, "doorbell", "press")
        # The first retry comes 2.5-5 s after the first failure, and fails too.
        assert wait_for(lambda: alerts(agent)[target]["failures"] >= 2, timeout=8), (
            agent.output())
        status = alerts(agent)[target]
        assert status["queued"] == 3 and status["delivered"] == 0, status
        assert status["last_error"] == "cannot reach tcp:%s:%d" % (HOST, port), status
        # One warning for the streak; its later failures are logged at DEBUG only.
        [warning] = warnings_about(agent, target)
        assert "alerts to %s failing: cannot reach" % target in warning, warning
        assert "alerts kept" in warning, warning

        with recipient(sipp_binary, workdir, "message_alert_inbox.xml", port, 3,
                       transport="t1") as alice:
            # The next retry comes 5-10 s after the second failure.
            assert alice.wait() == 0, alice.texts() + [agent.output()]
            texts = alice.texts()
        assert len(texts) == 3, texts
        for text, pattern in zip(texts, ("Front door opened at ", "Front door closed at ",
                                         "Doorbell rang at "), strict=True):
            assert re.fullmatch(pattern + TIME, text), texts
        assert wait_for(lambda: alerts(agent)[target]["delivered"] == 3), agent.output()
        status = alerts(agent)[target]
        assert (status["failing"], status["queued"], status["dropped"]) == (False, 0, 0)
        assert re.search(r"alerts to %s delivered again after \d+ failure\(s\)\n"
                         % re.escape(target), agent.log()), agent.output()
        assert len(warnings_about(agent, target)) == 1, agent.output()


def test_alerts_go_through_the_home_proxy_with_its_credentials(sipp_binary, workdir):
    # Kamailio asks every request but REGISTER for proxy credentials (407). The agent's
    # first MESSAGE carries none, so Kamailio answering it past the challenge (404 while
    # alice has not registered, then relaying to her phone) shows the challenge answered.
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(workdir / "kamailio", users) as kamailio:
        target = "sip:alice@home.arpa"
        config = workdir / "home.toml"
        write_home(config, target, proxy=kamailio.uri)
        with running_agent(workdir, config) as agent:
            assert wait_for(lambda: registered(agent)), agent.output()

            # Alice's phone is not registered: Kamailio has nowhere to send it (404). The
            # alert waits for her, with one warning.
            sim(agent, "frontdoor", "open")
            assert wait_for(lambda: alerts(agent)[target]["failures"] >= 1), agent.output()
            status = alerts(agent)[target]
            assert (status["last_error"], status["queued"], status["dropped"]) == (
                "404 Not Found", 1, 0)
            assert len(warnings_about(agent, target)) == 1, agent.output()

            inbox = free_port()
            with recipient(sipp_binary, workdir, "message_alert_inbox.xml", inbox,
                           2) as alice:
                register = subprocess.run(
                    [sipp_binary, "%s:%d" % (kamailio.host, kamailio.port),
                     "-sf", str(SCENARIOS / "message_alert_register.xml"),
                     "-i", HOST, "-p", str(free_port()), "-m", "1", "-au", "alice",
                     "-ap", "alice-pw", "-key", "inbox", "%s:%d" % (HOST, inbox),
                     "-nostdin", "-timeout", "10"],
                    cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True,
                    timeout=30)
                assert register.returncode == 0, kamailio.log()
                sim(agent, "frontdoor", "closed")
                assert alice.wait() == 0, alice.texts() + [agent.output(), kamailio.log()]
                [(_, opened), (lines, text)] = alice.messages()
            # Both, in the order of the events, once her phone is there.
            assert re.fullmatch("Front door opened at " + TIME, opened), opened
            assert re.fullmatch("Front door closed at " + TIME, text), text
            assert header(lines, "From").startswith("<sip:frontdoor@home.arpa>;tag=")
            assert header(lines, "To") == "<%s>" % target
            assert lines[0] == "MESSAGE sip:alice@%s:%d SIP/2.0" % (HOST, inbox)  # found
            assert wait_for(lambda: alerts(agent)[target]["delivered"] == 2), agent.output()
            assert re.search(r"alerts to %s delivered again after \d+ failure\(s\)\n"
                             % re.escape(target), agent.log()), agent.output()
            assert len(warnings_about(agent, target)) == 1, agent.output()
            assert "pi-s3cret" not in agent.output()
