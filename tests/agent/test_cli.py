"""The `appliance` command, run for real as `python -m appliance.cli ...` subprocesses."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from .support import Reply, clean_env, free_port, options_request, short_dir
from .test_tls import pki  # noqa: F401 (the certificates of the TLS tests, a fixture)

START_WAIT = 15.0  # seconds for `appliance run` to print its banner
STOP_WAIT = 10.0  # seconds for it to stop after a signal
CLIENT_WAIT = 20.0  # seconds for a one-shot client command
DEMO_DEVICES = ("frontdoor", "porch", "strike", "doorbell", "intercom", "camera")

ENV, ROOT = clean_env()


def appliance(*args, timeout=CLIENT_WAIT):
    """Run one `appliance` command to completion; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class AgentProcess:
    """`appliance run ...` in the background, its output collected line by line."""

    def __init__(self, *args, env=None):
        """`env`: variables to add to the agent's environment."""
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "run", *args],
            cwd=ROOT,
            env=dict(ENV, **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out = []
        self.err = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream, lines):
        for line in stream:
            with self._lock:
                lines.append(line)

    def stdout(self):
        with self._lock:
            return "".join(self.out)

    def stderr(self):
        with self._lock:
            return "".join(self.err)

    def wait_for(self, where, pattern, timeout):
        """The first match of `pattern` in stdout or stderr (`where`), within `timeout`."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.stdout() if where == "stdout" else self.stderr()
            match = re.search(pattern, text)
            if match:
                return match
            if self.process.poll() is not None:
                for reader in self._readers:
                    reader.join(1.0)
                text = self.stdout() if where == "stdout" else self.stderr()
                match = re.search(pattern, text)
                if match:
                    return match
                break
            time.sleep(0.02)
        pytest.fail(
            "no %r in %s of `appliance run %s` (exit %s)\nstdout:\n%s\nstderr:\n%s"
            % (
                pattern,
                where,
                " ".join(self.args),
                self.process.poll(),
                self.stdout(),
                self.stderr(),
            )
        )

    def wait_banner(self):
        match = self.wait_for("stdout", r"control socket .*\n", START_WAIT)
        self.port = int(re.search(r"listening on udp:127\.0\.0\.1:(\d+)", self.stdout()).group(1))
        return match

    def stop(self, signum=signal.SIGTERM, timeout=STOP_WAIT):
        """Send `signum`; the exit code, or None if it did not exit within `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(2.0)
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        for reader in self._readers:
            reader.join(2.0)
        self.process.stdout.close()
        self.process.stderr.close()


def _demo_args(control):
    return ("--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0", "--control", control)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One demo agent shared by the read-mostly tests of this module."""
    control = os.path.join(short_dir(tmp_path_factory.mktemp("demo")), "control.sock")
    agent = AgentProcess(*_demo_args(control))
    try:
        agent.wait_banner()
        agent.control = control
        yield agent
    finally:
        agent.stop()
        agent.kill()


def _write(path, text):
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return str(path)


# -- run: the banner -----------------------------------------------------------------------


def test_run_prints_each_demo_uri_and_the_demo_credentials(demo):
    banner = demo.stdout()
    for name in DEMO_DEVICES:
        assert "sip:%s@127.0.0.1:%d" % (name, demo.port) in banner, name
    assert "user demo, password demo" in banner
    assert "listening on udp:127.0.0.1:%d" % demo.port in banner
    assert "listening on tcp:127.0.0.1:%d" % demo.port in banner
    assert demo.control in banner


# -- options ---------------------------------------------------------------------------------


def test_options_to_a_device_prints_200_and_exits_0(demo):
    result = appliance("options", "sip:porch@127.0.0.1:%d" % demo.port)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "SIP/2.0 200 OK"
    assert any(line.startswith("Allow: ") and "OPTIONS" in line for line in lines)


def test_options_over_tcp_prints_200(demo):
    result = appliance("options", "sip:porch@127.0.0.1:%d;transport=tcp" % demo.port)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "SIP/2.0 200 OK"


def test_options_to_an_unknown_user_prints_404_and_exits_1(demo):
    result = appliance("options", "sip:garage@127.0.0.1:%d" % demo.port)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "SIP/2.0 404 Not Found"


def test_options_where_nothing_listens_times_out(tmp_path):
    port = free_port()
    uri = "sip:porch@127.0.0.1:%d" % port
    started = time.monotonic()
    result = appliance("options", uri, "--timeout", "1")
    assert result.returncode != 0
    assert time.monotonic() - started < CLIENT_WAIT
    assert "no final response from %s within 1s" % uri in result.stderr
    assert "SIP/2.0" not in result.stdout


def test_options_with_a_bad_uri_says_so(tmp_path):
    result = appliance("options", "porch-at-home", "--timeout", "1")
    assert result.returncode != 0
    assert "not a SIP URI, and no device of that name is announced" in result.stderr
    assert "Traceback" not in result.stderr


def test_options_to_a_target_it_cannot_reach_says_why(tmp_path):
    for args, message in (
        # Nothing listens there: over TLS, as the URI asks.
        (("sips:porch@127.0.0.1:25061",), "cannot reach sips:porch@127.0.0.1:25061 over tls"),
        (("sip:porch@127.0.0.1:25060;transport=tls",),
         "cannot reach sip:porch@127.0.0.1:25060;transport=tls over tls"),
        (("sip:porch@127.0.0.1:25060;transport=tcp", "--listen", "udp:127.0.0.1:0"),
         "--listen has no tcp: listener"),
    ):
        result = appliance("options", *args, "--timeout", "1")
        assert result.returncode != 0, args
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# -- status and sim --------------------------------------------------------------------------


def test_status_prints_the_devices(demo):
    result = appliance("status", "--control", demo.control)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "devices:" in text
    for name in DEMO_DEVICES:
        assert re.search(r"^\s+%s\s" % name, text, re.MULTILINE), name
    assert "sip:porch@127.0.0.1:%d" % demo.port in text
    assert "registrations: none" in text
    assert "MQTT: not configured" in text


def test_status_json_is_one_object_with_the_documented_keys(demo):
    result = appliance("status", "--control", demo.control, "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    for key in ("devices", "registrations", "nat", "subscriptions", "calls", "mqtt"):
        assert key in status, key
    assert set(status["devices"]) == set(DEMO_DEVICES)
    for device in status["devices"].values():
        assert "type" in device and "state" in device
    assert status["devices"]["porch"]["type"] == "light"
    assert "brightness" in status["devices"]["porch"]


def test_sim_frontdoor_open_shows_in_status(demo):
    result = appliance("sim", "frontdoor", "open", "--control", demo.control)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "frontdoor: open"
    status = json.loads(appliance("status", "--control", demo.control, "--json").stdout)
    assert status["devices"]["frontdoor"]["state"] == "open"
    result = appliance("sim", "frontdoor", "closed", "--control", demo.control)
    assert result.stdout.strip() == "frontdoor: closed"
    # The change reached the agent's log through gpiozero's callback.
    demo.wait_for("stderr", r"frontdoor \(door\): open", 5.0)


def test_sim_with_a_bad_state_exits_1_with_the_reason(demo):
    result = appliance("sim", "frontdoor", "ajar", "--control", demo.control)
    assert result.returncode == 1
    assert "a door is 'open' or 'closed', not 'ajar'" in result.stderr


def test_status_without_an_agent_says_how_to_fix_it(tmp_path):
    control = os.path.join(short_dir(tmp_path), "nobody.sock")
    result = appliance("status", "--control", control)
    assert result.returncode != 0
    assert control in result.stderr and "--control" in result.stderr
    assert "Traceback" not in result.stderr


# -- stopping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_agent_cleanly(tmp_path, signum):
    control = os.path.join(short_dir(tmp_path), "control.sock")
    agent = AgentProcess(*_demo_args(control))
    try:
        agent.wait_banner()
        assert os.path.exists(control)
        assert agent.stop(signum) == 0, agent.stderr()
        assert not os.path.exists(control)
        assert "Traceback" not in agent.stderr()
    finally:
        agent.kill()


# -- check ------------------------------------------------------------------------------------

VALID = """\
[agent]
name = "test-pi"
listen = ["udp:127.0.0.1:5070", "tcp:127.0.0.1:5070"]
simulate = true

[[users]]
name = "alice"
password = "pw"
devices = ["frontdoor", "porch"]

[[devices]]
name = "frontdoor"
type = "door"
pin = 17

[[devices]]
name = "porch"
type = "light"
pin = {pin}
"""


def test_check_accepts_a_valid_file(tmp_path):
    path = _write(tmp_path / "ok.toml", VALID.format(pin=22))
    result = appliance("check", "-c", path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_names_the_key_the_problem_and_the_fix(tmp_path):
    path = _write(tmp_path / "bad.toml", VALID.format(pin=40))
    result = appliance("check", "-c", path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    problem = [line for line in result.stderr.splitlines() if "devices[1].pin" in line]
    assert problem, result.stderr
    assert "40" in problem[0]  # the problem: the value given
    assert "0 to 27" in problem[0]  # the fix: the range of BCM pins
    assert path in result.stderr


def test_check_says_when_a_camera_is_not_there(tmp_path):
    missing = tmp_path / "video7"
    path = _write(tmp_path / "camera.toml",
                  '[[devices]]\nname = "camera"\ntype = "camera"\nsource = "/dev/%s"\n'
                  % missing.name)
    result = appliance("check", "-c", path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "devices[0].source: /dev/video7: no such camera" in result.stderr
    assert 'source = "test"' in result.stderr  # the fix for a home without one
    path = _write(tmp_path / "test.toml",
                  '[[devices]]\nname = "camera"\ntype = "camera"\nsource = "test"\n')
    result = appliance("check", "-c", path)
    assert result.returncode == 0, result.stderr


def _with_tls(tmp_path, name, **files):
    """VALID with a tls: listener and a [tls] section naming `files` (key -> path)."""
    text = VALID.format(pin=22).replace('"tcp:127.0.0.1:5070"]',
                                        '"tcp:127.0.0.1:5070", "tls:127.0.0.1:5071"]')
    text += "\n[tls]\n" + "".join('%s = "%s"\n' % item for item in files.items())
    path = _write(tmp_path / name, text)
    os.chmod(path, 0o600)  # it holds a password: no warning about who may read it
    return path


def test_check_loads_the_tls_certificate_key_and_ca(tmp_path, pki):  # noqa: F811 (fixture)
    path = _with_tls(tmp_path, "tls.toml", certificate=pki.server_cert, key=pki.server_key,
                     ca=pki.ca)
    result = appliance("check", "-c", path)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert "OK" in result.stdout

    # A key of another certificate and a CA file of no certificate: both said, each with
    # its key, what is wrong and the fix; `run` would have stopped on them.
    path = _with_tls(tmp_path, "bad-tls.toml", certificate=pki.server_cert,
                     key=pki.other_key, ca=pki.server_key)
    result = appliance("check", "-c", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "%s: tls.key: %s is not the private key of the certificate %s; name the key the "
        "certificate was made for" % (path, pki.other_key, pki.server_cert),
        "%s: tls.ca: cannot load %s: no certificate or crl found; name a file of PEM "
        "certificates" % (path, pki.server_key),
    ]

    path = _with_tls(tmp_path, "swapped.toml", certificate=pki.server_key,
                     key=pki.server_cert)
    result = appliance("check", "-c", path)
    assert result.returncode == 2
    assert result.stderr == (
        "%s: tls.certificate: %s is not a PEM certificate; name the server's certificate "
        "(-----BEGIN CERTIFICATE-----)\n" % (path, pki.server_key))

    path = _with_tls(tmp_path, "encrypted.toml", certificate=pki.server_cert,
                     key=pki.encrypted_key)
    result = appliance("check", "-c", path)
    assert result.returncode == 2
    assert "tls.key: %s is encrypted (has a password)" % pki.encrypted_key in result.stderr


# -- run with a config file ---------------------------------------------------------------------


def _config_file(tmp_path, control, listen, password="pw"):
    text = """\
[agent]
name = "test-pi"
listen = [{listen}]
control = "{control}"
simulate = true

[[users]]
name = "alice"
password = "{password}"
devices = ["porch"]

[[devices]]
name = "porch"
type = "light"
pin = 22
""".format(listen=", ".join('"%s"' % spec for spec in listen), control=control, password=password)
    return _write(tmp_path / "agent.toml", text)


@pytest.mark.parametrize("taken", ["udp", "tcp"])
def test_run_on_a_taken_port_names_the_address_and_suggests_listen(tmp_path, taken):
    port = free_port()
    if taken == "udp":
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", port))
    else:
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
    control = os.path.join(short_dir(tmp_path), "control.sock")
    path = _config_file(tmp_path, control, ["udp:127.0.0.1:%d" % port, "tcp:127.0.0.1:%d" % port])
    try:
        result = appliance("run", "-c", path, timeout=STOP_WAIT + START_WAIT)
    finally:
        holder.close()
    assert result.returncode != 0
    assert "%s:127.0.0.1:%d" % (taken, port) in result.stderr
    assert "--listen" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(control)


def test_the_log_masks_credentials_and_names_method_peer_status_and_call_id(tmp_path):
    password = "s3cret-xyz"
    digest = "deadbeefcafef00d0123456789abcdef"
    control = os.path.join(short_dir(tmp_path), "control.sock")
    path = _config_file(tmp_path, control, ["udp:127.0.0.1:0"], password=password)
    agent = AgentProcess("-c", path, "-v")
    try:
        agent.wait_banner()
        uri = "sip:porch@127.0.0.1:%d" % agent.port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(5.0)
            source = peer.getsockname()[1]
            authorization = (
                'Authorization: Digest username="alice", realm="127.0.0.1", '
                'nonce="abc123", uri="%s", response="%s", algorithm=MD5\r\n' % (uri, digest)
            )
            proxy_authorization = (
                'Proxy-Authorization: Digest username="alice", realm="proxy", '
                'nonce="def456", uri="%s", response="%s"\r\n' % (uri, digest[::-1])
            )
            request = options_request(
                uri,
                "UDP 127.0.0.1:%d;rport" % source,
                "log-1@test",
                "z9hG4bK-log-1",
                extra=authorization + proxy_authorization,
            )
            peer.sendto(request, ("127.0.0.1", agent.port))
            reply = Reply(peer.recvfrom(65535)[0])
        assert reply.status == 200
        agent.wait_for(
            "stderr",
            re.escape(
                "INFO appliance.agent: OPTIONS %s from udp:127.0.0.1:%d -> 200 OK "
                "(Call-ID log-1@test)" % (uri, source)
            ),
            5.0,
        )
        # -v logs the message itself, with the credentials masked.
        agent.wait_for("stderr", r"Authorization: \*+", 5.0)
        assert agent.stop() == 0
    finally:
        agent.kill()
    output = agent.stdout() + agent.stderr()
    assert "Call-ID: log-1@test" in output  # the request was logged in full ...
    assert password not in output  # ... but not the password,
    assert digest not in output and digest[::-1] not in output  # nor any digest response
    assert "nonce=" not in output and 'username="alice"' not in output


def test_sigterm_with_a_control_client_connected_still_stops_cleanly(tmp_path):
    control = os.path.join(short_dir(tmp_path), "control.sock")
    agent = AgentProcess(*_demo_args(control))
    try:
        agent.wait_banner()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as monitor:
            monitor.settimeout(5.0)
            monitor.connect(control)  # e.g. a monitoring script that keeps its connection
            monitor.sendall(b'{"command": "status"}\n')
            assert monitor.recv(65536).startswith(b'{"ok": true')
            assert agent.stop(signal.SIGTERM) == 0, agent.stderr()
        assert not os.path.exists(control)
        assert "Traceback" not in agent.stderr() and "Exception" not in agent.stderr()
    finally:
        agent.kill()


def test_run_without_gpio_says_to_simulate(tmp_path):
    control = os.path.join(short_dir(tmp_path), "control.sock")
    with open(_config_file(tmp_path, control, ["udp:127.0.0.1:0"]), encoding="utf-8") as file:
        text = file.read()
    path = _write(tmp_path / "agent.toml", text.replace("simulate = true", "simulate = false"))
    env = dict(ENV, GPIOZERO_PIN_FACTORY="no-such-factory")  # no GPIO, even on a Pi
    result = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "run", "-c", path],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_WAIT,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "GPIO" in result.stderr and "--simulate" in result.stderr
    assert not os.path.exists(control)
    # ... and --simulate, as suggested, runs the same file on MockFactory pins.
    agent = AgentProcess("-c", path, "--simulate")
    try:
        agent.wait_banner()
        assert "sip:porch@127.0.0.1:%d" % agent.port in agent.stdout()
        assert agent.stop() == 0, agent.stderr()
    finally:
        agent.kill()


def test_a_second_agent_on_the_same_control_socket_is_refused(demo):
    result = appliance("run", *_demo_args(demo.control), timeout=START_WAIT + STOP_WAIT)
    assert result.returncode != 0
    assert "another agent is running with control socket %s" % demo.control in result.stderr
    assert "--control" in result.stderr and "Traceback" not in result.stderr
    # The first agent still answers on it.
    status = appliance("status", "--control", demo.control, "--json")
    assert status.returncode == 0 and "devices" in json.loads(status.stdout)


# -- call ---------------------------------------------------------------------------------------


def test_call_the_intercom_and_open_the_door_with_the_code(demo):
    result = appliance("call", "sip:intercom@127.0.0.1:%d" % demo.port, "--user", "demo",
                       "--password", "demo", "--audio", "null", "--dtmf", "1234#",
                       "--duration", "1.5")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "answered by sip:intercom@127.0.0.1:%d (PCMU, telephone-event)" \
        % demo.port
    assert lines[2] == "sending DTMF 1234#"
    assert lines[3].startswith("ended: hung up after 1.5 s (RTP sent ")
    demo.wait_for("stderr", r"the door code from demo is right: opening strike", 5.0)
    demo.wait_for("stderr", r"strike \(relay\): on", 5.0)


def test_call_from_a_chosen_address_as_a_chosen_uri(demo):
    result = appliance("call", "sip:intercom@127.0.0.1:%d" % demo.port, "--user", "demo",
                       "--password", "demo", "--audio", "null", "--duration", "0.5",
                       "--listen", "udp:127.0.0.2:0", "--from", "sip:visitor@example.org")
    assert result.returncode == 0, result.stdout + result.stderr
    demo.wait_for("stderr", r"INVITE sip:intercom@127\.0\.0\.1:%d from udp:127\.0\.0\.2:\d+ "
                  % demo.port, 5.0)
    demo.wait_for("stderr", r"call \w+ with sip:visitor@example\.org answered", 5.0)


def test_call_with_a_wrong_password_is_refused(demo):
    result = appliance("call", "sip:intercom@127.0.0.1:%d" % demo.port, "--user", "demo",
                       "--password", "nope", "--audio", "null")
    assert result.returncode == 1
    assert "ended: 401 Unauthorized" in result.stdout


@pytest.mark.parametrize("command", ["run", "check", "status", "sim", "options", "do",
                                     "message", "subscribe", "discover", "call"])
def test_every_command_has_help(command):
    result = appliance(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: appliance %s" % command)
    assert "--help" in result.stdout


def test_the_command_list_names_every_command():
    listed = appliance("--help").stdout
    for command in ("run", "check", "status", "sim", "options", "do", "message", "subscribe",
                    "discover", "call"):
        assert re.search(r"^    %s\b" % command, listed, re.M), listed


def test_gpiozero_tries_lgpio_first_and_the_error_says_what_to_install(tmp_path):
    """The pin library is gpiozero's choice: lgpio first (the one that drives a Pi 5),
    then the others. Off a Pi, none works: each is named, lgpio first, in one line."""
    control = os.path.join(short_dir(tmp_path), "control.sock")
    with open(_config_file(tmp_path, control, ["udp:127.0.0.1:0"]), encoding="utf-8") as file:
        text = file.read()
    path = _write(tmp_path / "agent.toml", text.replace("simulate = true", "simulate = false"))
    env = {k: v for k, v in ENV.items() if k != "GPIOZERO_PIN_FACTORY"}
    if os.path.exists("/proc/device-tree/model"):  # a Raspberry Pi: lgpio is the choice
        chosen = subprocess.run(
            [sys.executable, "-c", "from gpiozero import Device; Device.ensure_pin_factory();"
             " print(type(Device.pin_factory).__name__)"],
            env=env, capture_output=True, text=True, timeout=START_WAIT, check=False)
        assert chosen.stdout.strip() == "LGPIOFactory", chosen.stdout + chosen.stderr
        return
    result = subprocess.run([sys.executable, "-m", "appliance.cli", "run", "-c", path],
                            cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=START_WAIT, check=False)
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    tried = re.findall(r"\b(lgpio|rpigpio|pigpio|native): ", error)
    assert tried[:2] == ["lgpio", "rpigpio"], error
    assert "install python3-lgpio" in error
    assert "PinFactoryFallback" not in result.stderr  # said in plain lines, not warnings


def test_check_warns_of_passwords_others_can_read(tmp_path):
    secret = tmp_path / "bob.secret"
    secret.write_text("bob-pw\n")
    text = ('[proxy]\nregistrar = "sip:pbx.example.net"\npassword = "pi-s3cret"\n'
            '[[users]]\nname = "alice"\npassword = "alice-pw"\ndevices = ["porch"]\n'
            '[[users]]\nname = "bob"\npassword_file = "bob.secret"\ndevices = ["porch"]\n'
            '[[devices]]\nname = "porch"\ntype = "light"\npin = 22\n')
    path = _write(tmp_path / "home.toml", text)
    os.chmod(path, 0o644)
    os.chmod(secret, 0o644)
    result = appliance("check", "-c", path)
    assert result.returncode == 0, result.stderr  # warnings: it runs as it is
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: %s: holds proxy.password, users[0].password and every user of this "
        "machine can read it (mode 0644); chmod o-r %s, or move the passwords to "
        "password_file entries" % (path, path),
        "warning: users[1].password_file: every user of this machine can read %s "
        "(mode 0644); chmod o-r %s" % (secret, secret),
    ]
    assert "pi-s3cret" not in result.stderr + result.stdout
    assert "alice-pw" not in result.stderr + result.stdout
    os.chmod(path, 0o640)  # the service's group may read them; nobody else
    os.chmod(secret, 0o600)
    result = appliance("check", "-c", path)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
