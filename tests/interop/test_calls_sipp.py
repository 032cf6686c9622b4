"""Calls with the intercom and from the doorbell, against real SIPp and a real `appliance
run`: the same behaviours as tests/agent/test_calls.py, with SIPp in the phone's place.

SIPp calls in as user demo (answering the 401 with its [authentication] keyword: MD5 only,
and `-auth_uri` so that the digest-uri is the Request-URI): CANCEL while it rings, BYE,
a hold re-INVITE, an offer of nothing we speak, and RFC 4733 digits played from SIPp's own
DTMF pcaps (/usr/share/sip-tester/dtmf_2833_*.pcap, telephone-event on payload type 101)
that open the strike, or do not. Then SIPp plays the household: two callees on their own
ports that the doorbell rings in parallel or one after the other.

Every SIPp run is `-m 1` with `-timeout`, so a broken exchange fails instead of hanging;
on failure the report shows SIPp's error and message logs and the agent's log.
"""

import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import (
    HOST,
    SIPP_INSTALL_HINT,
    free_port,
    peer_unavailable,
    running_home,
    wait_for,
)
from .test_sipp import SCENARIOS, SippResult, sipp_command
from .test_subscribe import finish, sim

SIPP_TIMEOUT = 15  # seconds one SIPp run may take (-timeout); the process gets 10 more
PCAPS = Path("/usr/share/sip-tester")

HOME = """
[agent]
name = "intercom-pi"
simulate = true
digest_algorithms = ["MD5"]      # SIPp answers only the first challenge, and only MD5

[[users]]
name = "demo"
password = "demo"
devices = ["intercom"]

[[devices]]
name = "strike"
type = "relay"
pin = 23
pulse = %(pulse)s

[[devices]]
name = "intercom"
type = "intercom"
answer_after = %(answer_after)s
dtmf_code = "1234"
strike = "strike"
audio = "null"
max_call_time = %(max_call_time)s
"""

DOORBELL = """
[[devices]]
name = "doorbell"
type = "doorbell"
pin = 27
call = ["sip:alice@%(host)s:%(alice)d", "sip:bob@%(host)s:%(bob)d"]
ring = "%(ring)s"
ring_time = %(ring_time)s
"""


def home(answer_after=0, max_call_time=600, pulse=1, extra=""):
    return running_home(HOME % {"answer_after": answer_after, "max_call_time": max_call_time,
                                "pulse": pulse} + extra, "sipcall-")


def call(sipp_binary, agent, tmp_path, scenario, timeout=SIPP_TIMEOUT):
    """SIPp calling the intercom with `scenario`, started: (process, SippResult)."""
    name = Path(scenario).stem
    command = sipp_command(sipp_binary, scenario, "intercom", agent.address, tmp_path, name,
                           timeout=timeout)
    # The digest-uri is the Request-URI (SIPp's default leaves the user part out); the
    # SDP's [media_ip]:[media_port] is where the agent's RTP goes and the pcaps come from.
    command[1:1] = ["-auth_uri", "intercom@%s" % agent.address,
                    "-mi", HOST, "-mp", str(free_port())]
    return _start(command, tmp_path, name)


def callee(sipp_binary, tmp_path, scenario, port, timeout=SIPP_TIMEOUT):
    """SIPp answering calls on HOST:`port` with `scenario` (one call), started."""
    name = "%s-%d" % (Path(scenario).stem, port)
    # fmt: off
    command = [
        sipp_binary, "-sf", str(SCENARIOS / scenario), "-m", "1",
        "-i", HOST, "-p", str(port), "-mi", HOST, "-mp", str(free_port()),
        "-timeout", "%ds" % timeout, "-timeout_error", "-nostdin",
        "-default_behaviors", "all,-bye",
        "-trace_err", "-error_file", str(tmp_path / (name + ".errors.log")),
        "-trace_msg", "-message_file", str(tmp_path / (name + ".messages.log")),
    ]
    # fmt: on
    return _start(command, tmp_path, name)


def _start(command, tmp_path, name):
    with open(tmp_path / (name + ".out"), "wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT)
    return process, SippResult(None, tmp_path, name)


def passed(run, agent, timeout=SIPP_TIMEOUT + 10):
    """Wait for the SIPp run `run` and fail with its report unless it exited 0."""
    result = finish(*run, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(result.report(agent), pytrace=False)
    return result


def stopped(*runs):
    for process, _ in runs:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def calls(agent):
    return agent.status()["calls"]


def ended(agent, reason):
    """The agent's log has a call that ended for `reason`."""
    return any(" ended: %s" % reason in line for line in agent.log().splitlines())


# -- SIPp calls the intercom ----------------------------------------------------------------


def test_a_call_hung_up_with_bye(sipp_binary, tmp_path):
    with home() as agent:
        run = call(sipp_binary, agent, tmp_path, "call_bye.xml")
        try:
            assert wait_for(lambda: [c["state"] for c in calls(agent)] == ["answered"]), (
                agent.output())
            # RTP flows to SIPp's [media_port] (silence from the null audio, 50 a second).
            assert wait_for(lambda: [c["media"]["sent"] >= 10 for c in calls(agent)] == [
                True]), calls(agent)
            passed(run, agent)
        finally:
            stopped(run)
        assert calls(agent) == []
        assert ended(agent, "the other side hung up"), agent.log()


def received(result, status):
    """How many responses with `status` SIPp's message log shows it received."""
    log = result.workdir / (result.name + ".messages.log")
    return log.read_text(errors="replace").count("\n\nSIP/2.0 %d " % status) if log.exists() \
        else 0


def test_cancel_while_it_rings_gets_487(sipp_binary, tmp_path):
    with home(answer_after=5) as agent:
        run = call(sipp_binary, agent, tmp_path, "call_cancel.xml")
        try:
            assert wait_for(lambda: [c["state"] for c in calls(agent)] == ["ringing"]), (
                agent.output())
            result = passed(run, agent)
        finally:
            stopped(run)
        assert calls(agent) == []
        assert ended(agent, "cancelled by the caller"), agent.log()
        assert received(result, 487) == 1, result.report(agent)  # our ACK stopped it


def test_hold_with_a_reinvite_answers_recvonly(sipp_binary, tmp_path):
    with home() as agent:
        run = call(sipp_binary, agent, tmp_path, "call_hold.xml")
        try:
            assert wait_for(lambda: [c["media"].get("direction") for c in calls(agent)] == [
                "recvonly"]), agent.output()
            sent = [c["media"]["sent"] for c in calls(agent)]
            time.sleep(0.5)
            assert [c["media"]["sent"] for c in calls(agent)] == sent  # held: silent
            passed(run, agent)
        finally:
            stopped(run)
        assert calls(agent) == []
        assert "media now recvonly" in agent.log()
        assert ended(agent, "the other side hung up"), agent.log()


def test_an_offer_of_only_opus_gets_488(sipp_binary, tmp_path):
    with home() as agent:
        run = call(sipp_binary, agent, tmp_path, "call_488.xml")
        try:
            result = passed(run, agent)
        finally:
            stopped(run)
        assert received(result, 488) == 1, result.report(agent)
        assert calls(agent) == []
        assert "appliance.calls: call " not in agent.log()  # no call began


@pytest.fixture
def dtmf_pcaps():
    missing = [name for name in ("1", "2", "3", "4", "9", "pound")
               if not (PCAPS / ("dtmf_2833_%s.pcap" % name)).exists()]
    if missing:
        peer_unavailable("SIPp's DTMF pcaps (%s in %s)" % (", ".join(missing), PCAPS),
                         SIPP_INSTALL_HINT)


def strike(agent):
    return agent.status()["devices"]["strike"]["state"]


def test_the_door_code_in_rfc4733_digits_opens_the_strike(sipp_binary, dtmf_pcaps, tmp_path):
    with home(pulse=1) as agent:
        run = call(sipp_binary, agent, tmp_path, "call_dtmf_code.xml")
        try:
            assert wait_for(lambda: calls(agent)), agent.output()
            assert strike(agent) == "off"
            assert wait_for(lambda: strike(agent) == "on"), agent.output()
            assert wait_for(lambda: strike(agent) == "off", timeout=3), agent.output()  # pulse
            passed(run, agent)
        finally:
            stopped(run)
        log = agent.log()
        assert "the door code from demo is right: opening strike" in log, log
        assert "wrong door code" not in log, log
        assert ended(agent, "the other side hung up"), log


def test_a_wrong_code_in_rfc4733_digits_leaves_the_door_shut(sipp_binary, dtmf_pcaps,
                                                              tmp_path):
    with home(pulse=1) as agent:
        run = call(sipp_binary, agent, tmp_path, "call_dtmf_wrong.xml")
        try:
            assert wait_for(lambda: calls(agent)), agent.output()
            states = set()
            deadline = time.monotonic() + SIPP_TIMEOUT
            while run[0].poll() is None and time.monotonic() < deadline:
                states.add(strike(agent))
            passed(run, agent)
        finally:
            stopped(run)
        log = agent.log()
        assert states == {"off"}, (states, log)
        assert "a wrong door code from demo (1 in a row)" in log, log
        assert "is right" not in log, log
        assert ended(agent, "the other side hung up"), log


def shifted_pcap(source, target, offset):
    """A copy of the pcap `source` at `target` whose RTP timestamps are `offset` later.

    SIPp's play_pcap_audio replays the RTP header as captured (it rewrites the addresses,
    ports and UDP checksum only), and all packets of an RFC 4733 event share the timestamp
    of its start: a digit played twice from one file is one digit. A copy with another
    timestamp is a new press of the same key."""
    data = bytearray(source.read_bytes())
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}[bytes(data[:4])]
    link = struct.unpack_from(order + "I", data, 20)[0]
    link_header = {1: 14, 101: 0, 113: 16}[link]  # Ethernet, raw IP, Linux cooked
    position = 24
    while position < len(data):
        captured = struct.unpack_from(order + "I", data, position + 8)[0]
        ip = position + 16 + link_header
        rtp = ip + (data[ip] & 0x0F) * 4 + 8
        data[rtp - 2:rtp] = b"\0\0"  # no UDP checksum (SIPp computes its own anyway)
        timestamp = struct.unpack_from(">I", data, rtp + 4)[0]
        struct.pack_into(">I", data, rtp + 4, (timestamp + offset) & 0xFFFFFFFF)
        position += 16 + captured
    target.write_bytes(bytes(data))


def test_three_wrong_codes_end_the_call(sipp_binary, dtmf_pcaps, tmp_path):
    for attempt in (1, 2, 3):
        for digit in ("9", "pound"):
            shifted_pcap(PCAPS / ("dtmf_2833_%s.pcap" % digit),
                         tmp_path / ("attempt%d_%s.pcap" % (attempt, digit)),
                         attempt * 0x20000)
    with home(pulse=1) as agent:
        run = call(sipp_binary, agent, tmp_path, "call_dtmf_locked.xml")
        try:
            assert wait_for(lambda: calls(agent)), agent.output()
            states = set()
            deadline = time.monotonic() + SIPP_TIMEOUT
            while run[0].poll() is None and time.monotonic() < deadline:
                states.add(strike(agent))
            passed(run, agent)  # the third # brought the intercom's BYE
        finally:
            stopped(run)
        log = agent.log()
        assert states == {"off"}, (states, log)
        for failures in (1, 2, 3):
            assert "a wrong door code from demo (%d in a row)" % failures in log, log
        assert ended(agent, "three wrong door codes"), log
        assert calls(agent) == []


# -- the doorbell rings the household: SIPp answers ----------------------------------------


def listening(port):
    """True once something (SIPp) has bound UDP `port` on HOST."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def household(sipp_binary, tmp_path, alice_scenario, bob_scenario):
    """Two SIPp callees, alice and bob, each on a port of its own, listening."""
    runs = {}
    for name, scenario in (("alice", alice_scenario), ("bob", bob_scenario)):
        port = free_port()
        runs[name] = (port, callee(sipp_binary, tmp_path, scenario, port))
    if not wait_for(lambda: all(listening(port) for port, _ in runs.values())):
        stopped(*(run for _, run in runs.values()))
        pytest.fail("SIPp did not bind its ports:\n" + "\n".join(
            (result.workdir / (result.name + ".out")).read_text(errors="replace")
            for _, (_, result) in runs.items()), pytrace=False)
    return runs


def doorbell(runs, ring, ring_time=2, max_call_time=3):
    extra = DOORBELL % {"host": HOST, "alice": runs["alice"][0], "bob": runs["bob"][0],
                        "ring": ring, "ring_time": ring_time}
    return home(max_call_time=max_call_time, extra=extra)


def peers(agent):
    return [(c["peer"].partition("@")[0], c["state"]) for c in calls(agent)]


def test_parallel_ringing_the_first_to_answer_gets_the_visitor(sipp_binary, tmp_path):
    runs = household(sipp_binary, tmp_path, "call_callee_answer.xml",
                     "call_callee_cancelled.xml")
    alice, bob = runs["alice"][1], runs["bob"][1]
    try:
        with doorbell(runs, "parallel") as agent:
            sim(agent, "doorbell", "press")
            assert wait_for(lambda: peers(agent) == [("sip:alice", "answered")]), (
                agent.output())
            sim(agent, "doorbell", "press")  # a press during the call: nothing new
            passed(bob, agent)  # rang, then CANCEL, 487, ACK
            passed(alice, agent)  # answered; BYE once max_call_time is over
            assert wait_for(lambda: calls(agent) == []), calls(agent)
            log = agent.log()
            assert "doorbell: ringing sip:alice@%s:%d, sip:bob@%s:%d (parallel)" % (
                HOST, runs["alice"][0], HOST, runs["bob"][0]) in log, log
            assert ended(agent, "answered elsewhere"), log
            assert ended(agent, "longer than 3 s"), log
            assert "doorbell pressed during a call: the call goes on" in log, log
            assert "nobody answered" not in log, log
    finally:
        stopped(alice, bob)


def test_sequential_ringing_goes_on_to_the_next_after_ring_time(sipp_binary, tmp_path):
    runs = household(sipp_binary, tmp_path, "call_callee_cancelled.xml",
                     "call_callee_answer.xml")
    alice, bob = runs["alice"][1], runs["bob"][1]
    try:
        with doorbell(runs, "sequential") as agent:
            sim(agent, "doorbell", "press")
            assert wait_for(lambda: peers(agent) == [("sip:alice", "ringing")]), (
                agent.output())
            passed(alice, agent)  # rang for ring_time, then CANCEL, 487, ACK
            assert wait_for(lambda: peers(agent) == [("sip:bob", "answered")]), (
                agent.output())
            passed(bob, agent)  # answered; BYE once max_call_time is over
            assert wait_for(lambda: calls(agent) == []), calls(agent)
            lines = agent.log().splitlines()
            no_answer = _index(lines, "with sip:alice@%s:%d ended: no answer"
                               % (HOST, runs["alice"][0]))
            answered = _index(lines, "with sip:bob@%s:%d answered" % (HOST, runs["bob"][0]))
            assert no_answer is not None and answered is not None, agent.log()
            assert no_answer < answered, agent.log()  # one after the other
            assert ended(agent, "longer than 3 s"), agent.log()
    finally:
        stopped(alice, bob)


def _index(lines, text):
    return next((number for number, line in enumerate(lines) if text in line), None)
