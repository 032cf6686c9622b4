"""`appliance subscribe` (appliance/watch.py) against real notifiers: a running
`appliance run` (the door opens through `appliance sim`, Ctrl-C unsubscribes, the agent's
shutdown ends the watch), and SIPp playing a notifier whose first NOTIFY overtakes its 200
and which challenges the refresh."""

import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import HOST, ROOT, _agent_env, _start_agent, _stop, running_home, wait_for
from .peers import free_port
from .test_subscribe import sim, subscriptions

LINE_WAIT = 10.0  # seconds for the next line of `appliance subscribe`
EXIT_WAIT = 5.0  # seconds for it to exit after SIGINT (it waits at most 2 s itself)
CLIENT_WAIT = 20.0
PASSWORD = "s3cret-door"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"

HOME = """
[agent]
name = "watched"
simulate = true

[[users]]
name = "demo"
password = "%s"
devices = ["frontdoor"]

[[devices]]
name = "frontdoor"
type = "door"
pin = 17
""" % PASSWORD


@pytest.fixture
def home():
    with running_home(HOME, "sipwatch-") as agent:
        yield agent


class Watcher:
    """`appliance subscribe URI ...` in the background: its stdout lines in a queue."""

    def __init__(self, uri, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "subscribe", uri, *args],
            cwd=ROOT, env=_agent_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.out = []
        self.err = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.out, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self.err, None),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, kept, lines):
        for line in stream:
            kept.append(line)
            if lines is not None:
                lines.put(line.rstrip("\n"))

    def output(self):
        return "--- subscribe stdout ---\n%s--- subscribe stderr ---\n%s" % (
            "".join(self.out), "".join(self.err))

    def line(self, timeout=LINE_WAIT):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("`appliance subscribe` printed no line within %.0f s (exit status %s)"
                        "\n%s" % (timeout, self.process.poll(), self.output()), pytrace=False)

    def interrupt(self, signum=signal.SIGINT, timeout=EXIT_WAIT):
        """Send `signum`; the exit status within `timeout`."""
        started = time.monotonic()
        self.process.send_signal(signum)
        status = self.wait(timeout)
        return status, time.monotonic() - started

    def wait(self, timeout=EXIT_WAIT):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("`appliance subscribe` did not exit within %.0f s\n%s"
                        % (timeout, self.output()), pytrace=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def subscribe(uri, *args):
    """`appliance subscribe` run to completion (it must end by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "subscribe", uri, *args], cwd=ROOT,
        env=_agent_env(), capture_output=True, text=True, timeout=CLIENT_WAIT, check=False)


def door(agent):
    return "sip:frontdoor@%s" % agent.address


def local(changed):
    return datetime.fromisoformat(changed).astimezone().strftime("%Y-%m-%d %H:%M:%S")


# -- against the agent --------------------------------------------------------------------


def test_a_line_per_notify_until_sigint_then_unsubscribed(home):
    seq = home.status()["devices"]["frontdoor"]["seq"]
    with Watcher(door(home), "--user", "demo", "--password", PASSWORD) as watcher:
        first = watcher.line()
        assert re.fullmatch(r"%s  frontdoor  closed  seq %d" % (STAMP, seq), first), first
        [entry] = subscriptions(home)
        assert (entry["device"], entry["user"], entry["event"], entry["state"]) == (
            "frontdoor", "demo", "appliance", "active")
        assert 590 <= entry["expires_in"] <= 600  # --expires' default, granted as asked

        sim(home, "frontdoor", "open")
        second = watcher.line()
        changed = home.status()["devices"]["frontdoor"]["changed"]
        assert second == "%s  frontdoor  open  seq %d" % (local(changed), seq + 1)

        status, took = watcher.interrupt(signal.SIGINT)
        assert status == 0, watcher.output()
        assert took < EXIT_WAIT
    assert wait_for(lambda: not subscriptions(home)), subscriptions(home)
    assert "demo unsubscribed from frontdoor (appliance)" in home.log()
    output = watcher.output()
    assert watcher.lines.empty(), output  # nothing printed after the interrupt
    assert "".join(watcher.err) == "", output
    for secret in (PASSWORD, "Authorization", "response="):
        assert secret not in output


def test_presence_prints_the_basic_status_and_the_note(home):
    with Watcher(door(home), "--event", "presence", "--user", "demo",
                 "--password", PASSWORD) as watcher:
        first = watcher.line()
        assert re.fullmatch(r"%s  frontdoor  closed \(Door closed( since [0-9:]{8})?\)"
                            % STAMP, first), first
        assert subscriptions(home)[0]["event"] == "presence"
        sim(home, "frontdoor", "open")
        second = watcher.line()
        changed = home.status()["devices"]["frontdoor"]["changed"]
        assert second == "%s  frontdoor  open (Door open since %s)" % (
            local(changed), local(changed)[11:])
        status, _ = watcher.interrupt(signal.SIGTERM)
        assert status == 0, watcher.output()
    assert wait_for(lambda: not subscriptions(home)), subscriptions(home)


def test_json_prints_each_body_on_one_line(home):
    with Watcher(door(home), "--json", "--user", "demo", "--password", PASSWORD) as watcher:
        first = json.loads(watcher.line())
        assert (first["device"], first["type"], first["state"]) == ("frontdoor", "door",
                                                                    "closed")
        sim(home, "frontdoor", "open")
        second = json.loads(watcher.line())
        assert (second["state"], second["seq"]) == ("open", first["seq"] + 1)
        assert second["changed"] == home.status()["devices"]["frontdoor"]["changed"]
        assert watcher.interrupt()[0] == 0, watcher.output()


def test_a_wrong_password_exits_1_and_says_so(home):
    result = subscribe(door(home), "--user", "demo", "--password", "not-it")
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr == "SUBSCRIBE failed: 401 Unauthorized (check --user and the " \
                            "password)\n"
    assert subscriptions(home) == []


def test_no_credentials_says_which_options_to_pass(home):
    result = subscribe(door(home))
    assert result.returncode == 1, result
    assert "SUBSCRIBE failed: 401 Unauthorized" in result.stderr
    assert "--user" in result.stderr


def test_an_unknown_event_package_exits_1_with_489(home):
    result = subscribe(door(home), "--event", "nonsense", "--user", "demo",
                       "--password", PASSWORD)
    assert result.returncode == 1, result
    assert result.stderr == "SUBSCRIBE failed: 489 Bad Event (the device offers: presence, " \
                            "appliance)\n"


def test_expires_0_prints_the_state_once_and_exits_0(home):
    result = subscribe(door(home), "--expires", "0", "--user", "demo", "--password", PASSWORD)
    assert result.returncode == 0, result
    assert re.fullmatch(r"%s  frontdoor  closed  seq \d+\n" % STAMP, result.stdout), result
    assert wait_for(lambda: not subscriptions(home)), subscriptions(home)


def test_the_agent_stopping_ends_the_watch_with_its_reason(tmp_path):
    workdir = tempfile.mkdtemp(prefix="sipwatch-")
    try:
        config = Path(workdir, "home.toml")
        config.write_text(HOME)
        agent = _start_agent(workdir, ["-c", str(config)])
        with Watcher(door(agent), "--user", "demo", "--password", PASSWORD) as watcher:
            try:
                assert "frontdoor  closed" in watcher.line()
            finally:
                _stop(agent)  # a last NOTIFY: terminated;reason=deactivated
            assert watcher.wait() == 1, watcher.output()
            assert "".join(watcher.err) == "subscription ended: deactivated\n"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_no_notifier_exits_1_after_the_timeout():
    port = free_port()
    started = time.monotonic()
    result = subscribe("sip:frontdoor@%s:%d" % (HOST, port), "--timeout", "1")
    assert result.returncode == 1, result
    assert result.stderr.startswith("no "), result.stderr  # no (final) response from ...
    assert time.monotonic() - started < CLIENT_WAIT


# -- against SIPp as the notifier ---------------------------------------------------------

# A notifier that sends its first NOTIFY before the 200 to the SUBSCRIBE, and the 200 only
# once the NOTIFY is answered (so the watcher must make the dialog from the NOTIFY, RFC 6665
# section 4.1.2.4, and answer 200, not 481), grants 2 s, challenges
# the refresh that follows at 80% of them and checks its credentials (verifyauth), sends
# the next state, and ends on the watcher's Expires: 0 with a terminated NOTIFY. Any 481,
# a missing To tag, a wrong CSeq or an unexpected message fails the call.
NOTIFIER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="notifier: NOTIFY before 200, refresh challenged">
  <recv request="SUBSCRIBE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="Via:" check_it="true" assign_to="via"/>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="to"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true"
            assign_to="contact"/>
      <ereg regexp="^ *appliance$" search_in="hdr" header="Event:" check_it="true"
            assign_to="e1"/>
      <ereg regexp="^ *1 SUBSCRIBE" search_in="hdr" header="CSeq:" check_it="true"
            assign_to="c1"/>
    </action>
  </recv>
  <send><![CDATA[
NOTIFY [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:frontdoor@[local_ip]:[local_port]>;tag=[pid]n[call_number]
To:[$from]
Call-ID: [call_id]
CSeq: 1 NOTIFY
Contact: <sip:frontdoor@[local_ip]:[local_port]>
Max-Forwards: 70
Event: appliance
Subscription-State: active;expires=2
Content-Type: application/json
Content-Length: [len]

{"device":"frontdoor","type":"door","state":"closed","changed":null,"seq":5}]]></send>
  <recv response="200"/>
  <send><![CDATA[
SIP/2.0 200 OK
Via:[$via]
From:[$from]
To:[$to];tag=[pid]n[call_number]
Call-ID: [call_id]
CSeq: 1 SUBSCRIBE
Contact: <sip:frontdoor@[local_ip]:[local_port]>
Expires: 2
Content-Length: 0

]]></send>

  <recv request="SUBSCRIBE" timeout="10000">
    <action>
      <ereg regexp="tag=[0-9]+n" search_in="hdr" header="To:" check_it="true" assign_to="t2"/>
      <ereg regexp="^ *2 SUBSCRIBE" search_in="hdr" header="CSeq:" check_it="true"
            assign_to="c2"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="home.arpa", nonce="[pid]n[call_number]", qop="auth", algorithm=MD5
Content-Length: 0

]]></send>
  <recv request="SUBSCRIBE">
    <action>
      <ereg regexp="^ *3 SUBSCRIBE" search_in="hdr" header="CSeq:" check_it="true"
            assign_to="c3"/>
      <verifyauth assign_to="authvalid" username="demo" password="demo"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="end"><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="good"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:frontdoor@[local_ip]:[local_port]>
Expires: 30
Content-Length: 0

]]></send>
  <send><![CDATA[
NOTIFY [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:frontdoor@[local_ip]:[local_port]>;tag=[pid]n[call_number]
To:[$from]
Call-ID: [call_id]
CSeq: 2 NOTIFY
Contact: <sip:frontdoor@[local_ip]:[local_port]>
Max-Forwards: 70
Event: appliance
Subscription-State: active;expires=30
Content-Type: application/json
Content-Length: [len]

{"device":"frontdoor","type":"door","state":"open","changed":"2026-11-21T10:32:05+00:00","seq":6}]]></send>
  <recv response="200"/>

  <!-- The test sends SIGINT now. -->
  <recv request="SUBSCRIBE" timeout="15000">
    <action>
      <ereg regexp="^ *0$" search_in="hdr" header="Expires:" check_it="true" assign_to="x4"/>
      <ereg regexp="^ *4 SUBSCRIBE" search_in="hdr" header="CSeq:" check_it="true"
            assign_to="c4"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Expires: 0
Content-Length: 0

]]></send>
  <send><![CDATA[
NOTIFY [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:frontdoor@[local_ip]:[local_port]>;tag=[pid]n[call_number]
To:[$from]
Call-ID: [call_id]
CSeq: 3 NOTIFY
Max-Forwards: 70
Event: appliance
Subscription-State: terminated
Content-Length: 0

]]></send>
  <recv response="200"/>
  <label id="end"/>
  <Reference variables="e1,c1,t2,c2,c3,x4,c4"/>
</scenario>
"""


def start_notifier(sipp_binary, workdir, port):
    scenario = workdir / "notifier.xml"
    scenario.write_text(NOTIFIER)
    process = subprocess.Popen(
        [sipp_binary, "-sf", str(scenario), "-i", HOST, "-p", str(port), "-t", "u1",
         "-m", "1", "-nr", "-nd", "-timeout", "40s", "-timeout_error", "-trace_err",
         "-error_file", str(workdir / "notifier.errors.log"), "-trace_msg", "-message_file",
         str(workdir / "notifier.messages.log")],
        cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # listening once the port is taken
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                return process
        if process.poll() is not None:
            raise AssertionError("SIPp exited: %s" % process.stderr.read())
        time.sleep(0.05)
    process.kill()
    raise AssertionError("SIPp did not start listening on %d" % port)


def sipp_report(workdir):
    parts = []
    for name in ("notifier.errors.log", "notifier.messages.log"):
        path = workdir / name
        parts.append("--- %s ---\n%s" % (name, path.read_text(errors="replace")
                                         if path.exists() else "(none)"))
    return "\n".join(parts)


def test_a_notify_before_the_200_makes_the_dialog_and_a_challenged_refresh_carries_on(
        sipp_binary, tmp_path):
    port = free_port()
    notifier = start_notifier(sipp_binary, tmp_path, port)
    try:
        with Watcher("sip:frontdoor@%s:%d" % (HOST, port), "--user", "demo",
                     "--password", "demo") as watcher:
            first = watcher.line()  # from the NOTIFY that came before the 200
            assert re.fullmatch(r"%s  frontdoor  closed  seq 5" % STAMP, first), (
                first + "\n" + sipp_report(tmp_path))
            # After the refresh at 80% of 2 s, its challenge and the answer:
            second = watcher.line()
            assert second == "%s  frontdoor  open  seq 6" % local("2026-11-21T10:32:05+00:00")
            status, _ = watcher.interrupt(signal.SIGINT)
            assert status == 0, watcher.output()
        try:
            sipp_status = notifier.wait(15)
        except subprocess.TimeoutExpired:
            sipp_status = "still running"
        assert sipp_status == 0, "SIPp: %s\n%s\n%s" % (sipp_status, watcher.output(),
                                                       sipp_report(tmp_path))
        assert "".join(watcher.err) == "", watcher.output()
    finally:
        if notifier.poll() is None:
            notifier.kill()
            notifier.wait(5)
