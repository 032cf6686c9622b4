"""SIPp, a real SIP peer, against a real `appliance run` on loopback.

Each scenario in scenarios/ is one UAC call: SIPp sends a request and expects exactly one
final status (anything else, or silence, fails the call). `sipp -m 1` exits 0 only when
every call succeeded (1: a call failed, 99: no call ran, 255: fatal error), so each test
asserts the exit status and, on failure, shows SIPp's error and message logs (kept in the
test's tmp_path) with the agent's log.
"""

import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import HOST, free_port

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SIPP_TIMEOUT = 10  # seconds SIPp may run one test (-timeout); the process gets 20 more
RECV_TIMEOUT_MS = 5000  # per expected response (-recv_timeout)
REPLY_TIMEOUT = 5.0  # seconds to wait for the agent over a raw socket
MAX_UDP_PAYLOAD = 65507  # the largest IPv4 UDP datagram: "64 KB" as sent on the wire


class SippResult:
    def __init__(self, returncode, workdir, name):
        self.returncode = returncode
        self.workdir = workdir
        self.name = name

    def _read(self, suffix):
        path = self.workdir / (self.name + suffix)
        return path.read_text(errors="replace") if path.exists() else "(no %s)\n" % path.name

    def report(self, agent):
        return "\n".join(
            [
                "sipp exited %s (0: all calls succeeded, 1: a call failed, 99: no call ran, "
                "255: fatal error)" % self.returncode,
                "--- sipp output (last 40 lines) ---",
                "\n".join(self._read(".out").splitlines()[-40:]),
                "--- sipp errors (%s) ---" % (self.workdir / (self.name + ".errors.log")),
                self._read(".errors.log"),
                "--- sipp messages ---",
                self._read(".messages.log"),
                "--- agent ---",
                agent.output(),
            ]
        )


def sipp_command(sipp_binary, scenario, user, address, workdir, name, transport="u1",
                 calls=1, rate=1, limit=1, timeout=SIPP_TIMEOUT):
    """The argv of one SIPp client run of `scenario` against `address`, its logs kept in
    `workdir` under `name`."""
    # fmt: off
    return [
        sipp_binary, "-sf", str(SCENARIOS / scenario),
        "-m", str(calls), "-l", str(limit), "-r", str(rate),
        "-t", transport, "-i", HOST, "-p", str(free_port()), "-s", user,
        "-timeout", "%ds" % timeout, "-timeout_error",
        "-recv_timeout", str(RECV_TIMEOUT_MS),
        "-nostdin",
        # An unexpected message still aborts the call as failed (abortunexp), but
        # without the BYE SIPp would send into a dialog that never existed.
        "-default_behaviors", "all,-bye",
        "-trace_err", "-error_file", str(workdir / (name + ".errors.log")),
        "-trace_msg", "-message_file", str(workdir / (name + ".messages.log")),
        address,
    ]
    # fmt: on


@pytest.fixture
def sipp(sipp_binary, agent, tmp_path):
    """Run a scenario against the agent: sipp(SCENARIO, user, transport="u1", **more)."""
    runs = []

    def run(scenario, user, transport="u1", calls=1, rate=1, limit=1, timeout=SIPP_TIMEOUT):
        name = "%s-%s-%d" % (Path(scenario).stem, transport, len(runs))
        runs.append(name)
        command = sipp_command(sipp_binary, scenario, user, agent.address, tmp_path, name,
                               transport, calls, rate, limit, timeout)
        with open(tmp_path / (name + ".out"), "wb") as out:
            try:
                proc = subprocess.run(
                    command,
                    cwd=tmp_path,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout + 20,
                    check=False,
                )
                returncode = proc.returncode
            except subprocess.TimeoutExpired:
                returncode = "nothing: killed after %ds" % (timeout + 20)
        return SippResult(returncode, tmp_path, name)

    return run


def assert_sipp_passed(result, agent):
    if result.returncode != 0:
        pytest.fail(result.report(agent), pytrace=False)


# -- one request, one expected answer -------------------------------------------------------


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_options_to_a_device_gets_200_with_allow(sipp, agent, transport):
    """A device URI answers OPTIONS with 200 whose Allow lists OPTIONS, over UDP and TCP."""
    assert_sipp_passed(sipp("options.xml", "porch", transport), agent)


@pytest.mark.parametrize(
    "scenario, user",
    [
        pytest.param("unknown_method.xml", "frontdoor", id="FOOBAR-501-with-Allow"),
        pytest.param("message_405.xml", "frontdoor", id="MESSAGE-to-a-door-405-with-Allow"),
        pytest.param("unknown_user.xml", "nobody-here", id="unknown-user-404"),
        pytest.param("cseq_mismatch.xml", "porch", id="CSeq-mismatch-400"),
        pytest.param("version_3.xml", "porch", id="SIP-3.0-505"),
        pytest.param("require_unknown.xml", "porch", id="Require-420-with-Unsupported"),
        pytest.param("unknown_scheme.xml", "porch", id="unknown-scheme-416"),
        pytest.param("max_forwards_zero.xml", "porch", id="Max-Forwards-0-200"),
    ],
)
def test_request_gets_its_status(sipp, agent, scenario, user):
    """Each scenario's request gets exactly the status (and headers) the scenario expects;
    the test id names them."""
    assert_sipp_passed(sipp(scenario, user), agent)


def test_missing_call_id_gets_400(agent):
    """A request without Call-ID gets 400 with a reason naming Call-ID.

    Not a SIPp scenario: SIPp files every incoming message under its Call-ID and drops one
    without ("SIP message without Call-ID discarded"), and the 400 can carry no Call-ID of
    the request's. So a plain UDP socket plays the peer.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(REPLY_TIMEOUT)
        local_port = sock.getsockname()[1]
        request = (
            "OPTIONS sip:porch@%s SIP/2.0\r\n"
            "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-no-call-id;rport\r\n"
            "From: <sip:tester@%s:%d>;tag=nocallid\r\n"
            "To: <sip:porch@%s>\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n"
            "\r\n" % (agent.address, HOST, local_port, HOST, local_port, agent.address)
        ).encode()
        sock.sendto(request, (agent.host, agent.port))
        try:
            response = sock.recv(65535)
        except TimeoutError:
            response = None
    if response is None:
        pytest.fail(
            "no response within %.0f s\n%s" % (REPLY_TIMEOUT, agent.output()), pytrace=False
        )
    status_line = response.split(b"\r\n", 1)[0].decode(errors="replace")
    assert status_line.startswith("SIP/2.0 400 "), status_line
    assert "Call-ID" in status_line, status_line
    assert b"branch=z9hG4bK-no-call-id" in response  # the answer is to our request


# -- load ----------------------------------------------------------------------------------


def test_burst_of_200_options_all_answered(sipp, agent):
    """200 OPTIONS at 100/s over UDP: every one gets 200, the agent counts each request
    once (retransmissions are absorbed) and still answers afterwards."""
    before = agent.status()["sip"]
    result = sipp("options.xml", "frontdoor", calls=200, rate=100, limit=200, timeout=20)
    assert_sipp_passed(result, agent)

    status = agent.status()
    assert set(status["devices"]) >= {"frontdoor", "porch", "strike", "doorbell", "intercom"}
    assert status["sip"]["requests"] - before["requests"] == 200, status["sip"]
    assert status["sip"]["rejected"] == before["rejected"], status["sip"]
    assert_sipp_passed(sipp("options.xml", "frontdoor"), agent)


# -- garbage -------------------------------------------------------------------------------


def _truncated_request(agent):
    request = (
        "OPTIONS sip:porch@%s SIP/2.0\r\n"
        "Via: SIP/2.0/UDP %s:9;branch=z9hG4bK-truncated\r\n"
        "From: <sip:tester@%s>;tag=cut\r\n"
        "To: <sip:porch@%s>\r\n"
        "Call-ID: truncated-request\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n"
        "\r\n" % (agent.address, HOST, HOST, agent.address)
    ).encode()
    return request[: request.index(b"To: <sip:") + 12]  # cut in the middle of To


def test_garbage_does_not_stop_the_agent(sipp, agent):
    """Random bytes, a truncated request and a 64 KB junk datagram over UDP, then a TCP
    connection that sends bytes no SIP framing can hold: the agent drops the datagrams,
    closes that connection, and still answers OPTIONS with 200 over UDP and TCP."""
    rng = random.Random(4475)  # fixed garbage: a failure can be replayed
    request_line = b"OPTIONS sip:porch@%s SIP/2.0\r\n" % agent.address.encode()
    datagrams = [
        rng.randbytes(512),
        _truncated_request(agent),
        request_line + rng.randbytes(MAX_UDP_PAYLOAD - len(request_line)),
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            assert len(datagram) <= MAX_UDP_PAYLOAD
            sock.sendto(datagram, (agent.host, agent.port))

    with socket.create_connection((agent.host, agent.port), timeout=REPLY_TIMEOUT) as conn:
        conn.sendall(b"\x16\x03\x01\x00\xa5GARBAGE \x00\xff\xfe is no SIP message\r\n\r\n")
        closed = _wait_closed(conn, REPLY_TIMEOUT)
    if not closed:
        pytest.fail(
            "the agent kept a TCP connection that sent garbage open for %.0f s\n%s"
            % (REPLY_TIMEOUT, agent.output()),
            pytrace=False,
        )

    assert_sipp_passed(sipp("options.xml", "porch", "u1"), agent)
    assert_sipp_passed(sipp("options.xml", "porch", "t1"), agent)
    sip = agent.status()["sip"]
    assert sip["dropped"] >= 3, sip  # the random, truncated and junk datagrams at least
    assert sip["requests"] == 2, sip  # no garbage passed for a request


def test_tls_hello_on_the_tcp_port_is_refused_at_once(agent):
    """A TLS client pointed at the TCP port (binary bytes, no CRLF CRLF anywhere) gets its
    connection closed promptly instead of hanging until the idle timeout."""
    client_hello = b"\x16\x03\x01\x00\xc4\x01\x00\x00\xc0\x03\x03" + bytes(range(189))
    with socket.create_connection((agent.host, agent.port), timeout=REPLY_TIMEOUT) as conn:
        conn.sendall(client_hello)
        closed = _wait_closed(conn, 2.0)
    assert agent.running()
    assert closed, "a TLS ClientHello on the TCP port left the connection open for 2 s"


def _wait_closed(conn, timeout):
    """True when the peer closes `conn` (EOF or reset) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        conn.settimeout(remaining)
        try:
            if conn.recv(4096) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
