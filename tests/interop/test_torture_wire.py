"""The RFC 4475 and RFC 5118 torture messages over real UDP and TCP to a running agent.

tests/core/test_torture.py feeds the RFC 4475 files to the core alone; here they go to a
real `appliance run` (the demo home) over its sockets: each file as one UDP datagram, and
over TCP on a connection of its own, once as the RFC writes it and once with the user part
of its Request-URI changed to a demo device, so that it reaches the agent's devices
(`porch` for OPTIONS and the rest, `intercom` for INVITE). The RFC's users (vivekg,
user, ...) are not devices of the demo home: a request that passes the core's checks gets
404 as written. The RFC 5118 (IPv6) messages go the same way to an agent listening on
[::1], when the machine has IPv6 loopback.

After every message the agent must still answer OPTIONS sip:porch@... with 200 (over the
same transport, from another socket); at the end its log must hold no traceback, and it
must stop cleanly (the `agent` fixture checks that).

What each message gets is in the tables below, one entry per file with its RFC section:
a valid request gets a response (404 for a user that is not a device, the RFC's answer
for the rest), never a 5xx but 501 for an unknown method and 505 for a version; an
invalid one gets 400, or a 405/505 for a fault the UAS checks first, or nothing where the
RFC says to drop it; a response is dropped. Over TCP a message that cannot be framed
closes the connection, or leaves it waiting for the bytes its Content-Length promises.

How the messages reach the agent unchanged:

- Over UDP an answer goes to the request's source address and its top Via's sent-by port
  (5060 when none, RFC 3261 section 18.2.2). Each IPv4 datagram comes from a socket of its
  own on a random address of 127.0.0.0/8 bound to that port, so the Via can stay as the
  RFC writes it and no retransmission of an earlier answer can reach a later socket. On
  [::1] there is one address: answers are matched to their message by Call-ID and CSeq.
- Some messages share a branch and sent-by (RFC 4475 cparam01/cparam02, escnull/regescrt,
  unkscm/novelsc; RFC 5118 4.1 to 4.4, the 4.10 pair, and the corrected copies below):
  sent to one agent within 32 s, the second would be a retransmission of the first
  (section 17.2.3), or a merged request (8.2.2.2). Such a message gets ".rN" appended to
  its top Via's branch and its Call-ID, nothing else.
- An INVITE's non-2xx final answer is acknowledged, as a UAC does (section 17.1.1.3).
"""

import random
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from appliance.sip.errors import ParseError
from appliance.sip.message import Request, StreamParser, parse_message

from .conftest import _start_agent, _stop, peer_unavailable

DATA = Path(__file__).resolve().parents[1] / "data"
REPLY_TIMEOUT = 5.0  # seconds for the agent's answer to the OPTIONS probe
QUIET = 0.1  # seconds without more bytes after which a connection has said all it will

DROPPED = "dropped"  # UDP: no answer
OPEN = "open"  # TCP: no (more) answers, the connection is kept, waiting for bytes
CLOSED = "closed"  # TCP: the agent closed the connection without an answer

# -- what each message gets ----------------------------------------------------------------
#
# file -> (status as written, status with a device's Request-URI): the final status of
# the answer over UDP, or DROPPED. None in the second place: the file has no SIP
# Request-URI to change (a response, an unknown scheme).

RFC4475 = {
    # 3.1.1 Valid messages
    "wsinv": (481, 481),  # 3.1.1.1: its To tag names a dialog that does not exist
    "intmeth": (501, 501),  # 3.1.1.2: unknown method, with Allow
    "esc01": (404, 401),  # 3.1.1.3: the INVITE to the intercom is challenged
    "escnull": (405, 405),  # 3.1.1.4: REGISTER to a UA that is not a registrar
    "esc02": (501, 501),  # 3.1.1.5: RE%47IST%45R is not REGISTER
    "lwsdisp": (404, 200),  # 3.1.1.6
    "longreq": (404, 401),  # 3.1.1.7
    "dblreq": (405, 405),  # 3.1.1.8: the REGISTER; the trailing INVITE is ignored
    "semiuri": (404, 200),  # 3.1.1.9
    "transports": (404, 200),  # 3.1.1.10
    "mpart01": (415, 415),  # 3.1.1.11: multipart/mixed is not a type it accepts
    "unreason": (DROPPED, None),  # 3.1.1.12: a response matching no transaction
    "noreason": (DROPPED, None),  # 3.1.1.13: the same
    # 3.1.2 Invalid messages
    "badinv01": (400, 400),  # 3.1.2.1
    "clerr": (400, 400),  # 3.1.2.2
    "ncl": (400, 400),  # 3.1.2.3
    "scalar02": (400, 400),  # 3.1.2.4
    "scalarlg": (DROPPED, None),  # 3.1.2.5: a response
    "quotbal": (400, 400),  # 3.1.2.6
    "ltgtruri": (400, 400),  # 3.1.2.7
    "lwsruri": (400, 400),  # 3.1.2.8
    "lwsstart": (400, 400),  # 3.1.2.9
    "trws": (400, 400),  # 3.1.2.10
    "escruri": (400, 400),  # 3.1.2.11
    "baddate": (404, 401),  # 3.1.2.12: Date is not read: processed as valid
    "regbadct": (405, 405),  # 3.1.2.13: REGISTER is refused for its method first
    "badaspec": (400, 400),  # 3.1.2.14
    "baddn": (400, 400),  # 3.1.2.15
    "badvers": (505, 505),  # 3.1.2.16
    "mismatch01": (400, 400),  # 3.1.2.17
    "mismatch02": (400, 400),  # 3.1.2.18: a 400 rather than the 501 (the RFC allows both)
    "bigcode": (DROPPED, None),  # 3.1.2.19: a response
    # 3.2 Transaction layer semantics
    "badbranch": (404, 200),  # 3.2.1: RFC 2543 transaction matching
    # 3.3 Application-layer semantics
    "insuf": (400, 400),  # 3.3.1
    "unkscm": (416, None),  # 3.3.2
    "novelsc": (416, None),  # 3.3.3
    "unksm2": (405, 405),  # 3.3.4: REGISTER to a UA that is not a registrar
    "bext01": (420, 420),  # 3.3.5
    "invut": (415, 415),  # 3.3.6
    "regaut01": (405, 405),  # 3.3.7
    "multi01": (400, 400),  # 3.3.8
    "mcl01": (400, 400),  # 3.3.9
    "bcast": (DROPPED, None),  # 3.3.10: a response
    "zeromf": (404, 200),  # 3.3.11: Max-Forwards 0 at the endpoint is not 483
    "cparam01": (405, 405),  # 3.3.12
    "cparam02": (405, 405),  # 3.3.13
    "regescrt": (405, 405),  # 3.3.14
    "sdp01": (404, 401),  # 3.3.15
    # 3.4 Backward compatibility
    "inv2543": (404, 401),  # 3.4.1: an RFC 2543 INVITE
    # In the RFC's archive, not described by it: no SIP version, no Via: nothing to answer.
    "test": (DROPPED, DROPPED),
}

# Over TCP, where it differs from UDP: file -> (statuses, then the connection OPEN or
# CLOSED), the same with or without a device's Request-URI; or the end state alone, after
# the answer UDP gets. Every other file gets its UDP answer, and the connection stays OPEN.
RFC4475_STREAM = {
    "baddn": ((), OPEN),  # no empty line after its headers: the rest may still come
    "clerr": ((), OPEN),  # 3.1.2.2: waits for the 9999 bytes of its Content-Length
    "ncl": ((), CLOSED),  # 3.1.2.3: a negative Content-Length cannot frame anything
    "inv2543": ((), CLOSED),  # 3.4.1: no Content-Length, which a stream needs
    "test": ((), CLOSED),  # not a SIP start line
    # Framed by the first of its two Content-Length values (13) and answered; what follows
    # cannot start a message, so the connection is closed after the answer (3.3.9).
    "mcl01": ((400,), CLOSED),
    # The REGISTER, a CRLF (a keep-alive pong), the INVITE framed by its Content-Length
    # (to joe: 404), then bytes that cannot start a message: closed (3.1.1.8).
    "dblreq": ((405, 404), CLOSED),
}

RFC5118 = {
    "4.1-ipv6-good": (405, 405),  # REGISTER to a UA that is not a registrar
    # The Request-URI's IPv6 reference lacks its brackets; the RFC asks for 400, but the
    # method is checked before the Request-URI (RFC 3261 8.2.1, then 8.2.2.1).
    "4.2-ipv6-bad": (405, 405),
    "4.3-port-ambiguous": (405, 405),
    "4.4-port-unambiguous": (405, 405),
    "4.5-via-received-param-with-delim": (481, 481),  # a BYE with a To tag, no dialog
    "4.5-via-received-param-no-delim": (404, 200),
    # As printed, its Content-Length (268) is larger than its body (251 bytes): 400 over
    # UDP, and a TCP connection waits for the rest. Corrected, it is answered.
    "4.6-ipv6-in-sdp": (400, 400),
    "4.7-mult-ip-in-header": (481, 481),  # a BYE with a To tag; answered to port 6050
    # As printed, their Content-Length (181, 236) is shorter than their bodies (189, 245):
    # the INVITE is read with its body cut there; over TCP the rest cannot start a message.
    "4.8-mult-ip-in-sdp": (404, 401),
    "4.9-ipv4-mapped-ipv6": (404, 401),  # answered to the top Via's port, 19823
    "4.10-ipv6-bug-abnf-3-colons": (404, 200),  # tolerated, as the RFC asks
    "4.10-ipv6-correct-abnf-2-colons": (404, 200),
}
RFC5118_STREAM = {
    "4.6-ipv6-in-sdp": ((), OPEN),
    # Answered as over UDP; the rest of the body cannot start a message: closed.
    "4.8-mult-ip-in-sdp": CLOSED,
    "4.9-ipv4-mapped-ipv6": CLOSED,
}
# The RFC 5118 messages whose printed Content-Length disagrees with their bodies, sent
# again with it corrected (the only change): they are answered like their neighbours.
CORRECTED = {
    "4.6-ipv6-in-sdp": (404, 401),
    "4.8-mult-ip-in-sdp": (404, 401),
    "4.9-ipv4-mapped-ipv6": (404, 401),
}


def section_order(name):
    return [int(part) for part in name.split("-", 1)[0].split(".")]


def rfc4475_files():
    return [(name, (DATA / "rfc4475" / (name + ".dat")).read_bytes()) for name in RFC4475]


def rfc5118_files():
    files = [(name, (DATA / "rfc5118" / (name + ".dat")).read_bytes())
             for name in sorted(RFC5118, key=section_order)]
    for name in sorted(CORRECTED, key=section_order):
        data = dict(files)[name]
        files.append((name + "+length", corrected_length(data)))
    return files


def test_tables_cover_every_file():
    assert sorted(RFC4475) == sorted(p.stem for p in (DATA / "rfc4475").glob("*.dat"))
    assert sorted(RFC5118) == sorted(p.stem for p in (DATA / "rfc5118").glob("*.dat"))
    for name in RFC4475_STREAM:
        assert name in RFC4475
    for table in (RFC5118_STREAM, CORRECTED):
        for name in table:
            assert name in RFC5118


# -- changing a message only where needed --------------------------------------------------

DEVICES = {"INVITE": "intercom"}  # every other method goes to the porch light
URI_START = re.compile(rb" (sips?):", re.IGNORECASE)


def to_device(data):
    """`data` with the user part of its SIP Request-URI replaced by a demo device's name
    (added when it has none); None for a response or another scheme."""
    end = data.find(b"\r\n")
    line = data[:end]
    found = URI_START.search(line)
    if line.upper().startswith(b"SIP/") or found is None:
        return None
    colon = found.end() - 1
    stop = colon
    while stop < len(line) and line[stop : stop + 1] not in (b" ", b">", b"?"):
        stop += 1
    at = line.rfind(b"@", colon, stop)
    method = line.split(b" ", 1)[0].decode("latin-1")
    device = DEVICES.get(method, "porch").encode()
    rest = line[at:] if at >= 0 else b"@" + line[colon + 1 :]
    return line[: colon + 1] + device + rest + data[end:]


def corrected_length(data):
    head, _, body = data.partition(b"\r\n\r\n")
    head = re.sub(rb"(?im)^(Content-Length:[ \t]*)\d+", b"\\g<1>%d" % len(body), head)
    return head + b"\r\n\r\n" + body


def transaction_keys(data):
    """The keys under which the agent keeps this request's server transaction (RFC 3261
    17.2.3) and watches for merged copies of it (8.2.2.2); empty if it cannot be read."""
    try:
        request = parse_message(data)
        via = request.top_via()
        keys = []
        branch = via.branch
        if isinstance(request, Request) and branch and len(branch) > 7:
            keys.append((branch, via.sent_by().lower(),
                         "INVITE" if request.method == "ACK" else request.method))
            if request.to.tag is None:
                keys.append((request.call_id, request.from_.tag, request.get("cseq")))
        return keys
    except ParseError:
        return []


def renew(data, count):
    """`data` as a new request: ".rN" after its top Via's branch and its Call-ID."""
    suffix = b".r%d" % count
    data = re.sub(rb"(;[ \t]*branch[ \t]*=[ \t]*[^;, \t\r\n]+)", b"\\g<1>" + suffix, data,
                  count=1, flags=re.IGNORECASE)
    return re.sub(rb"(?im)^((?:call-id|i)[ \t]*:[ \t]*[^\r\n]*?)([ \t]*\r\n)",
                  b"\\g<1>" + suffix + b"\\g<2>", data, count=1)


class Sender:
    """Sends each message once to one agent, renewed where an earlier one took its keys."""

    def __init__(self):
        self.seen = set()
        self.renewed = 0

    def prepare(self, data):
        keys = transaction_keys(data)
        while any(key in self.seen for key in keys):
            self.renewed += 1
            data = renew(data, self.renewed)
            keys = transaction_keys(data)
        self.seen.update(keys)
        return data


def answer_port(data):
    """Where a UDP answer to `data` goes: its top Via's sent-by port (RFC 3261 18.2.2), or
    None when it asks for rport or has no Via to read (the source port, then)."""
    try:
        via = parse_message(data).top_via()
    except ParseError:
        return None
    if via.rport is not None:
        return None
    return via.port if via.port is not None else 5060


def identity(message):
    """(Call-ID, CSeq) as written, to match answers with requests."""
    return (message.get("call-id"), " ".join((message.get("cseq") or "").split()))


def request_identity(data):
    try:
        return identity(parse_message(data))
    except ParseError:
        return None


def ack_for(data, response):
    """The ACK of a non-2xx final answer to the INVITE `data` (RFC 3261 17.1.1.3)."""
    try:
        request = parse_message(data)
        if not isinstance(request, Request) or request.method != "INVITE":
            return None
        fields = [["Via", request.get_list("via")[0]], ["Max-Forwards", "70"],
                  ["From", request.get("from")], ["To", response.get("to")],
                  ["Call-ID", request.call_id or ""],
                  ["CSeq", "%d ACK" % request.cseq.number], ["Content-Length", "0"]]
        return Request("ACK", request.uri_text, fields).to_bytes()
    except (ParseError, IndexError, TypeError):
        return None


# -- the agent's side: probing it, reading its answers -------------------------------------


def bare(host):
    return host.strip("[]")


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def options_probe(agent, transport, number):
    """OPTIONS sip:porch@AGENT over `transport` from a socket of its own: the status of
    the answer, or None when none came within REPLY_TIMEOUT."""
    host = bare(agent.host)
    call_id = "torture-probe-%d" % number
    sock = socket.socket(family(host), socket.SOCK_DGRAM if transport == "udp"
                         else socket.SOCK_STREAM)
    with sock:
        sock.settimeout(REPLY_TIMEOUT)
        if transport == "udp":
            sock.bind((host, 0))
        else:
            sock.connect((host, agent.port))
        local = sock.getsockname()
        sent_by = "%s:%d" % (("[%s]" % local[0]) if ":" in local[0] else local[0], local[1])
        request = (
            "OPTIONS sip:porch@%s SIP/2.0\r\n"
            "Via: SIP/2.0/%s %s;branch=z9hG4bK-probe-%d;rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:probe@%s>;tag=probe%d\r\n"
            "To: <sip:porch@%s>\r\n"
            "Call-ID: %s\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
            % (agent.address, transport.upper(), sent_by, number, sent_by, number,
               agent.address, call_id)
        ).encode()
        parser = StreamParser()
        try:
            if transport == "udp":
                sock.sendto(request, (host, agent.port))
                while True:
                    answer = parse_message(sock.recv(65535))
                    if answer.call_id == call_id:
                        return answer.status
            sock.sendall(request)
            while True:
                chunk = sock.recv(65535)
                if not chunk:
                    return None
                for item in parser.feed(chunk):
                    if isinstance(item, bytes):
                        return parse_message(item, True).status
        except (TimeoutError, ConnectionError):
            return None


class UdpPeer:
    """The sockets a message is sent from and answered on: a random 127.0.0.0/8 address
    (IPv4) or ::1, at 5060 and at the port its Via names."""

    def __init__(self, host, port):
        self.socks = []
        if family(host) == socket.AF_INET:
            host = "127.%d.%d.%d" % (random.randrange(1, 255), random.randrange(256),
                                     random.randrange(1, 255))
        for number in sorted({5060, port or 5060}):
            sock = socket.socket(family(host), socket.SOCK_DGRAM)
            # Beside a SIP server of the machine's own on the wildcard address (which sets
            # it too): the more specific address gets the datagrams.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, number))
            except OSError as error:
                sock.close()
                self.close()
                pytest.fail("cannot bind UDP %s port %d, where the agent answers this "
                            "message: %s" % (host, number, error), pytrace=False)
            sock.setblocking(False)
            self.socks.append(sock)

    def send(self, data, host, port):
        self.socks[0].sendto(data, (host, port))

    def read(self):
        out = []
        for sock in self.socks:
            while True:
                try:
                    out.append(sock.recv(65535))
                except BlockingIOError:
                    break
        return out

    def close(self):
        for sock in self.socks:
            sock.close()


def finals(answers):
    return [answer for answer in answers if answer.status >= 200]


def send_udp(agent, data, number):
    """Send one datagram; (final statuses of its answers, the probe's status)."""
    host = bare(agent.host)
    wanted = request_identity(data)
    peer = UdpPeer(host, answer_port(data))
    try:
        peer.send(data, host, agent.port)
        # The agent answers in the order datagrams come: once the probe is answered, any
        # answer to the message has been sent.
        probe = options_probe(agent, "udp", number)
        answers = []
        deadline = time.monotonic() + QUIET
        while time.monotonic() < deadline:
            for raw in peer.read():
                answer = parse_message(raw)
                if wanted is None or identity(answer) == wanted:
                    answers.append(answer)
            if finals(answers):
                break
            time.sleep(0.01)
        for answer in finals(answers):
            if answer.status >= 300:
                ack = ack_for(data, answer)
                if ack is not None:
                    peer.send(ack, host, agent.port)
    finally:
        peer.close()
    return [answer.status for answer in finals(answers)], probe


def send_tcp(agent, data, number, expected):
    """Send one message on a new connection; (final statuses, OPEN or CLOSED, probe)."""
    host = bare(agent.host)
    conn = socket.create_connection((host, agent.port), timeout=REPLY_TIMEOUT)
    with conn:
        conn.sendall(data)
        probe = options_probe(agent, "tcp", number)
        parser = StreamParser()
        statuses = []
        state = OPEN
        deadline = time.monotonic() + REPLY_TIMEOUT
        while time.monotonic() < deadline:
            # Until the answers the table expects are in, then until it has been quiet.
            waiting = len(statuses) < expected
            conn.settimeout(max(0.01, deadline - time.monotonic()) if waiting else QUIET)
            try:
                chunk = conn.recv(65535)
            except TimeoutError:
                break
            except ConnectionError:
                chunk = b""
            if not chunk:
                state = CLOSED
                break
            for item in parser.feed(chunk):
                if isinstance(item, bytes):
                    answer = parse_message(item, True)
                    if answer.status >= 200:
                        statuses.append(answer.status)
                        if answer.status >= 300:
                            ack = ack_for(data, answer)
                            if ack is not None:
                                conn.sendall(ack)
    return statuses, state, probe


# -- the passes ----------------------------------------------------------------------------

VARIANTS = ("as-written", "to-devices")


def run_pass(agent, transport, variant, files, table, stream_table):
    """Send every file; return the mismatches, one line each."""
    sender = Sender()
    problems = []
    for number, (name, data) in enumerate(files):
        base = name.split("+")[0]
        expected_udp = table[base] if not name.endswith("+length") else CORRECTED[base]
        expected_udp = expected_udp[VARIANTS.index(variant)]
        if variant == "to-devices":
            data = to_device(data)
            if data is None:
                continue
        data = sender.prepare(data)
        if transport == "udp":
            statuses, probe = send_udp(agent, data, number)
            got = statuses[0] if len(statuses) == 1 else DROPPED if not statuses else statuses
            expected = expected_udp
        else:
            expected = stream_table.get(name, OPEN)
            if isinstance(expected, str):
                expected = (() if expected_udp == DROPPED else (expected_udp,), expected)
            statuses, state, probe = send_tcp(agent, data, number, len(expected[0]))
            got = (tuple(statuses), state)
        if got != expected:
            problems.append("%s (%s, %s): expected %r, got %r"
                            % (name, transport, variant, expected, got))
        if probe != 200:
            problems.append("%s (%s, %s): OPTIONS to the porch afterwards got %r, not 200"
                            % (name, transport, variant, probe))
        if not agent.running():
            problems.append("%s (%s, %s): the agent died" % (name, transport, variant))
            break
    return problems


def check_pass(agent, problems):
    log = agent.log()
    if "Traceback" in log:
        problems.append("the agent logged a traceback")
    if problems:
        pytest.fail("\n".join(problems) + "\n" + agent.output(), pytrace=False)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rfc4475_messages(agent, transport, variant):
    problems = run_pass(agent, transport, variant, rfc4475_files(), RFC4475, RFC4475_STREAM)
    check_pass(agent, problems)


# -- IPv6: RFC 5118 on [::1] ---------------------------------------------------------------


def ipv6_loopback():
    """None when UDP and TCP sockets can be bound on ::1, else why not."""
    if not socket.has_ipv6:
        return "this Python has no IPv6"
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        try:
            with socket.socket(socket.AF_INET6, kind) as sock:
                sock.bind(("::1", 0))
        except OSError as error:
            return "cannot bind ::1: %s" % error
    return None


@pytest.fixture
def agent6():
    """The demo home listening on [::1] (UDP and TCP)."""
    problem = ipv6_loopback()
    if problem is not None:
        peer_unavailable("IPv6 loopback (::1)", problem + "; enable IPv6 on lo "
                         "(sysctl net.ipv6.conf.lo.disable_ipv6=0)")
    workdir = tempfile.mkdtemp(prefix="sipapp6-")
    try:
        for _ in range(3):
            running = _start_agent(workdir, host="[::1]")
            if running.running():
                break
            if "cannot listen" not in running.log():
                break
        if not running.running():
            pytest.fail("`appliance run` on [::1] exited %s before serving\n%s"
                        % (running.process.returncode, running.output()), pytrace=False)
        yield running
        _stop(running)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rfc5118_messages_over_ipv6(agent6, transport, variant):
    problems = run_pass(agent6, transport, variant, rfc5118_files(), RFC5118, RFC5118_STREAM)
    check_pass(agent6, problems)


def test_device_uri_is_the_only_change():
    data = (DATA / "rfc4475" / "semiuri.dat").read_bytes()
    changed = to_device(data)
    assert changed.split(b"\r\n", 1)[0] == b"OPTIONS sip:porch@example.com SIP/2.0"
    assert changed.split(b"\r\n", 1)[1] == data.split(b"\r\n", 1)[1]
    first = (DATA / "rfc5118" / "4.2-ipv6-bad.dat").read_bytes()
    assert to_device(first).startswith(b"REGISTER sip:porch@2001:db8::10 SIP/2.0\r\n")
    assert to_device((DATA / "rfc4475" / "bcast.dat").read_bytes()) is None
