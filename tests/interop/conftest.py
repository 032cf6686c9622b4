"""Fixtures for the interop tier: a real `appliance run` on loopback, and real peers.

`agent` starts the demo home as a user would (`appliance run --listen ... --control ...`),
on a free port of 127.0.0.1, waits for its banner and stops it with SIGTERM afterwards: a
clean stop (exit status 0 within 10 s, control socket removed, no traceback in the log) is
part of the contract, so a test whose agent does not stop cleanly errors in teardown.

`sipp_binary` is the SIPp program (Debian package `sip-tester`). In CI (`CI=true`) a
missing peer fails the test; elsewhere it skips with the install hint (DESIGN.md).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .peers import (
    HOST,
    Baresip,
    Certificates,
    Coturn,
    Kamailio,
    Mosquitto,
    PeerMissing,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
BANNER_TIMEOUT = 15.0  # seconds for `appliance run` to print its banner
STOP_TIMEOUT = 10.0  # seconds for a clean exit after SIGTERM
STATUS_TIMEOUT = 10.0
SIPP_INSTALL_HINT = "apt-get install sip-tester"


def peer_unavailable(what, hint):
    """A missing peer: fail in CI, skip (with the way to install it) elsewhere."""
    message = "%s is not installed; %s" % (what, hint)
    if os.environ.get("CI") == "true":
        pytest.fail("interop peer missing in CI: " + message, pytrace=False)
    pytest.skip(message)  # only outside CI: with CI=true the line above fails


@pytest.fixture(scope="session")
def sipp_binary():
    path = shutil.which("sipp")
    if path is None:
        peer_unavailable("SIPp (`sipp`)", SIPP_INSTALL_HINT)
    return path


def start_kamailio(workdir, users, **kwargs):
    """A Kamailio home proxy to use in `with` (`tls=Certificates` adds a TLS listener): a
    failure in CI when it, or its tls module, is not installed."""
    try:
        return Kamailio(workdir, users, **kwargs)
    except PeerMissing as missing:
        what, _, hint = str(missing).partition(" is not installed; ")
        peer_unavailable(what, hint)


def start_coturn(workdir, **kwargs):
    """A coturn STUN server to use in `with`: a failure in CI when it is not installed."""
    try:
        return Coturn(workdir, **kwargs)
    except PeerMissing as missing:
        peer_unavailable("coturn (`turnserver`)", str(missing).rpartition("; ")[2])


def start_mosquitto(workdir, **kwargs):
    """A Mosquitto broker to use in `with`: a failure in CI when it is not installed."""
    try:
        return Mosquitto(workdir, **kwargs)
    except PeerMissing as missing:
        peer_unavailable("Mosquitto (`mosquitto`)", str(missing).rpartition("; ")[2])


def make_certificates(workdir):
    """A test CA with server and client certificates (openssl)."""
    try:
        return Certificates(workdir)
    except PeerMissing as missing:
        peer_unavailable("openssl", str(missing).rpartition("; ")[2])


@contextlib.contextmanager
def sipp_server(sipp_binary, scenario, host, port, prefix=(), messages=None):
    """SIPp playing a server from tests/interop/scenarios/ on host:port (on a lab's host
    with `prefix`) for the length of a `with`; `messages` logs what it received."""
    trace = ["-trace_msg", "-message_file", str(messages)] if messages else []
    process = subprocess.Popen(
        [*prefix, sipp_binary, "-sf", str(ROOT / "tests" / "interop" / "scenarios" / scenario),
         "-i", host, "-p", str(port), "-nostdin", *trace],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.kill()
        process.wait(5)


def start_baresip(workdir, account, contact="", **kwargs):
    """baresip to use in `with`: a failure in CI when it is not installed."""
    try:
        return Baresip(workdir, account, contact, **kwargs)
    except PeerMissing as missing:
        peer_unavailable("baresip", str(missing).rpartition("; ")[2])


def _agent_env(extra=None):
    """The agent's environment: ours, with `extra` ({name: value}) on top."""
    # mDNS off unless a test turns it on: agents of parallel tests would announce alike.
    env = dict(os.environ, SIP_APPLIANCE_MDNS_ENABLED="false")
    env.update(extra or {})
    # The checkout under test, whether or not `pip install -e .` was run.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("JOURNAL_STREAM", "INVOCATION_ID", "SIP_APPLIANCE_AGENT_CONTROL"):
        env.pop(name, None)
    return env


class RunningAgent:
    """An `appliance run` process: where it listens and what it said so far."""

    def __init__(self, process, host, port, control, stdout_path, stderr_path):
        self.process = process
        self.host = host
        self.port = port
        self.control = control
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def banner(self):
        return self.stdout_path.read_text(errors="replace")

    def log(self):
        """The agent's stderr so far: one INFO line per transaction."""
        return self.stderr_path.read_text(errors="replace")

    def output(self):
        return "--- stdout ---\n%s--- stderr ---\n%s" % (self.banner(), self.log())

    def running(self):
        return self.process.poll() is None

    def status(self):
        """`appliance status --json`, as a dict."""
        proc = subprocess.run(
            [sys.executable, "-m", "appliance.cli", "status", "--json", "--control", self.control],
            cwd=ROOT,
            env=_agent_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=STATUS_TIMEOUT,
        )
        if proc.returncode != 0:
            pytest.fail(
                "`appliance status --json` exited %d:\n%s%s\n%s"
                % (proc.returncode, proc.stdout, proc.stderr, self.output()),
                pytrace=False,
            )
        return json.loads(proc.stdout)


def _start_agent(workdir, extra=(), host=HOST, prefix=(), env=None):
    """`prefix` runs it on another host of a lab (["ip", "netns", "exec", NAME]); `env`
    ({name: value}) adds to its environment."""
    port = free_port()
    control = os.path.join(workdir, "control.sock")
    stdout_path = Path(workdir, "agent.stdout")
    stderr_path = Path(workdir, "agent.stderr")
    # fmt: off
    command = [
        *prefix, sys.executable, "-m", "appliance.cli", "run",
        "--listen", "udp:%s:%d" % (host, port),
        "--listen", "tcp:%s:%d" % (host, port),
        "--control", control,
        *extra,
    ]
    # fmt: on
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=_agent_env(env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=err,
        )
    agent = RunningAgent(process, host, port, control, stdout_path, stderr_path)
    deadline = time.monotonic() + BANNER_TIMEOUT
    while time.monotonic() < deadline:
        if "control socket" in agent.banner():
            return agent
        if process.poll() is not None:
            return agent  # exited: the caller decides whether to try another port
        time.sleep(0.05)
    process.kill()
    process.wait(5)
    pytest.fail(
        "`%s` printed no banner within %.0f s\n%s"
        % (" ".join(command[1:]), BANNER_TIMEOUT, agent.output()),
        pytrace=False,
    )


def wait_for(predicate, timeout=10.0):
    """The predicate's first true value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@contextlib.contextmanager
def running_home(config_text, prefix="siphome-", env=None):
    """`appliance run` with the config `config_text`, in a temporary directory; `env`
    ({name: value}) adds to its environment (ALSA_CONFIG_PATH for a test's sound devices)."""
    workdir = tempfile.mkdtemp(prefix=prefix)  # short: the control socket lives here
    try:
        config = Path(workdir, "home.toml")
        config.write_text(config_text)
        running = _start_agent(workdir, ["-c", str(config)], env=env)
        try:
            yield running
        except BaseException:
            running.process.kill()  # the test failed: no clean-stop check, no leftover
            running.process.wait(5)
            raise
        _stop(running)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def agent():
    # The control socket's path must stay under 108 bytes: keep it short, out of tmp_path.
    workdir = tempfile.mkdtemp(prefix="sipapp-")
    try:
        for _ in range(3):
            running = _start_agent(workdir)
            if running.running():
                break
            if "cannot listen" not in running.log():
                break  # not a port race: report it below
        if not running.running():
            pytest.fail(
                "`appliance run` exited %s before serving\n%s"
                % (running.process.returncode, running.output()),
                pytrace=False,
            )
        yield running
        _stop(running)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(running):
    process = running.process
    if process.poll() is not None:
        pytest.fail(
            "the agent died during the test (exit status %s)\n%s"
            % (process.returncode, running.output()),
            pytrace=False,
        )
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        status = None
    if status is None:
        process.kill()
        process.wait(5)
        pytest.fail(
            "the agent did not stop within %.0f s of SIGTERM\n%s"
            % (STOP_TIMEOUT, running.output()),
            pytrace=False,
        )
    if status != 0:
        pytest.fail(
            "the agent exited %d on SIGTERM, not 0\n%s" % (status, running.output()), pytrace=False
        )
    if "Traceback (most recent call last)" in running.log():
        pytest.fail("the agent logged a traceback\n%s" % running.output(), pytrace=False)
    if os.path.exists(running.control):
        pytest.fail(
            "the agent left its control socket %s behind\n%s" % (running.control, running.output()),
            pytrace=False,
        )
