"""The firmware (firmware/, MicroPython) run on a PC with firmware/run_host.py, against real
peers: it registers every device to Kamailio, SIPp watches its door, `appliance do` and
`appliance message` drive its light straight and through Kamailio.

run_host.py runs the board's code on CPython with simulated pins and a real UDP socket:
stdin lines (`frontdoor open`, `status`) move the door and ask for the state, output pins
print `pin 2 -> 0.40` on stdout, the firmware's log goes to stderr. Like the `agent`
fixture, a clean stop on SIGTERM (exit status 0, no traceback) is part of the contract.
"""

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, STOP_TIMEOUT, _agent_env, start_coturn, start_kamailio, wait_for
from .natlab import LAN_ADDRESS, ROUTER_WAN, WAN_ADDRESS
from .peers import HOST
from .test_nat import lab  # noqa: F401 - the NAT lab fixture
from .test_subscribe import finish, start_sipp

RUN_HOST = ROOT / "firmware" / "run_host.py"
SERVING_TIMEOUT = 15.0  # seconds for run_host.py to print "serving ..."
BOARD_USER, BOARD_PASSWORD = "porch-board", "board-pw"  # the board's account at Kamailio
USER, PASSWORD = "alice", "secret"  # a user of the firmware (and of the home proxy)
DEVICES = ("frontdoor", "porch", "strike")
REALM = "home.arpa"  # what tests/interop/kamailio/kamailio.cfg.in serves (alias, realm)


def board_config(registrar=None):
    """The board's config.json; devices register at `registrar` when given."""
    config = {
        "agent": {
            "name": "porch-board",
            "port": 5060,
            "domain": REALM,
            # SIPp answers only the first challenge, and only MD5.
            "digest_algorithms": ["MD5"],
        },
        "users": [{"name": USER, "password": PASSWORD, "devices": ["porch", "frontdoor"]}],
        "devices": [
            {"name": "frontdoor", "type": "door", "pin": 4},
            {"name": "porch", "type": "light", "pin": 2, "dimmable": True},
            {"name": "strike", "type": "relay", "pin": 5, "pulse": 1},
        ],
    }
    if registrar is not None:
        config["proxy"] = {
            "registrar": registrar,
            "username": BOARD_USER,
            "password": BOARD_PASSWORD,
            "expires": 600,
        }
    return config


class Firmware:
    """A run_host.py process: where it listens, what it printed, a line to its stdin."""

    def __init__(self, process, stdout_path, stderr_path):
        self.process = process
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.host = HOST
        self.port = None  # from the "serving" line

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def printed(self):
        """What it printed on stdout so far: pin changes and answers to stdin."""
        return self.stdout_path.read_text(errors="replace")

    def log(self):
        return self.stderr_path.read_text(errors="replace")

    def output(self):
        return "--- run_host stdout ---\n%s--- run_host stderr ---\n%s" % (
            self.printed(),
            self.log(),
        )

    def pins(self):
        return [line for line in self.printed().splitlines() if line.startswith("pin ")]

    def command(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def status(self):
        """The devices' state, as run_host prints it for `status` on stdin."""
        before = len(self._states())
        self.command("status")
        assert wait_for(lambda: len(self._states()) > before), self.output()
        return self._states()[-1]

    def _states(self):
        return [json.loads(line) for line in self.printed().splitlines() if line.startswith("{")]


def _serving(firmware):
    for line in firmware.log().splitlines():
        if line.startswith("serving "):
            return line
    return None


@contextlib.contextmanager
def running_firmware(workdir, config, host=HOST, prefix=()):
    """run_host.py with `config` on a free port of `host` (port 0: the system's pick, no
    race), run under `prefix` (a network namespace), for the length of a `with`; stopped
    with SIGTERM, which must end it cleanly."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    stdout_path, stderr_path = workdir / "run_host.stdout", workdir / "run_host.stderr"
    command = [
        *prefix,
        sys.executable,
        str(RUN_HOST),
        "--config",
        str(config_path),
        "--listen",
        "%s:0" % host,
    ]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_agent_env(),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            text=True,
        )
    firmware = Firmware(process, stdout_path, stderr_path)
    firmware.host = host
    try:
        deadline = time.monotonic() + SERVING_TIMEOUT
        while _serving(firmware) is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        line = _serving(firmware)
        if line is None:
            pytest.fail(
                'run_host.py printed no "serving" line within %.0f s (exit status '
                "%s)\n%s" % (SERVING_TIMEOUT, process.poll(), firmware.output()),
                pytrace=False,
            )
        # "serving sip:frontdoor@home.arpa, ... on 127.0.0.1:PORT"
        serving_host, _, port = line.rpartition(" on ")[2].rpartition(":")
        assert serving_host == host, line
        firmware.port = int(port)
        yield firmware
    except BaseException:
        process.kill()  # the test failed: no clean-stop check, no leftover
        process.wait(5)
        process.stdin.close()
        raise
    _stop(firmware)


def _stop(firmware):
    process = firmware.process
    if process.poll() is not None:
        pytest.fail(
            "run_host.py died during the test (exit status %s)\n%s"
            % (process.returncode, firmware.output()),
            pytrace=False,
        )
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        process.stdin.close()
        pytest.fail(
            "run_host.py did not stop within %.0f s of SIGTERM\n%s"
            % (STOP_TIMEOUT, firmware.output()),
            pytrace=False,
        )
    process.stdin.close()
    if status != 0:
        pytest.fail(
            "run_host.py exited %d on SIGTERM, not 0\n%s" % (status, firmware.output()),
            pytrace=False,
        )
    if "Traceback (most recent call last)" in firmware.log():
        pytest.fail("run_host.py logged a traceback\n%s" % firmware.output(), pytrace=False)


def appliance(*args, prefix=()):
    """The project's client, as a user runs it (under `prefix`: in a namespace)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "appliance.cli", *args, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_agent_env(),
        cwd=ROOT,
    )


def options_via(kamailio, uri):
    """OPTIONS to `uri` through the home proxy, sent by a user of the realm."""
    return appliance(
        "options",
        uri,
        "--proxy",
        kamailio.uri,
        "--from",
        "sip:%s@%s" % (USER, REALM),
        "--user",
        USER,
        "--password",
        PASSWORD,
    )


@pytest.fixture
def kamailio(tmp_path):
    users = {BOARD_USER: BOARD_PASSWORD, USER: PASSWORD}
    with start_kamailio(tmp_path / "kamailio", users, realm=REALM) as running:
        yield running


@pytest.fixture
def firmware(tmp_path):
    """The firmware without a registrar: reached at its own address."""
    with running_firmware(tmp_path / "firmware", board_config()) as running:
        yield running


def test_every_device_registers_with_digest_and_unregisters_on_sigterm(kamailio, tmp_path):
    with running_firmware(tmp_path / "firmware", board_config(kamailio.uri)) as firmware:
        for name in DEVICES:
            assert wait_for(
                lambda name=name: "sip:%s@%s: registered" % (name, REALM) in firmware.log()
            ), firmware.output() + kamailio.log()
        location = kamailio.location()
        for name in DEVICES:
            # The binding is the firmware's Contact: its device at its own address.
            assert "AoR: %s\n" % name in location, location
            assert "Address: sip:%s@%s\n" % (name, firmware.address) in location, location
            # Challenged, then answered: the first REGISTER and the one with credentials.
            assert kamailio.registers("sip:%s@%s" % (name, REALM)) == 2, kamailio.log()
        # The proxy now finds the door at the firmware.
        result = options_via(kamailio, "sip:frontdoor@%s" % REALM)
        assert result.stdout.startswith("SIP/2.0 200 OK"), (
            result.stdout + result.stderr + firmware.output()
        )
        assert (
            "OPTIONS sip:frontdoor@%s from %s:%d -> 200 OK"
            % (firmware.address, kamailio.host, kamailio.port)
            in firmware.log()
        ), firmware.log()
    # Stopped with SIGTERM (exit 0 checked on the way out): every device unregistered.
    log = firmware.log()
    for name in DEVICES:
        assert "sip:%s@%s: unregistered" % (name, REALM) in log, log
    location = kamailio.location()
    assert "AoR: " not in location, location
    result = options_via(kamailio, "sip:frontdoor@%s" % REALM)
    assert result.stdout.startswith("SIP/2.0 404"), result.stdout + kamailio.log()
    assert BOARD_PASSWORD not in log and PASSWORD not in log  # no secret in the log


def test_a_sipp_watcher_gets_the_door_notifies(sipp_binary, firmware, tmp_path):
    process, result = start_sipp(
        sipp_binary, firmware, tmp_path, "firmware_subscribe_door.xml", "frontdoor", timeout=30
    )
    try:
        # Its first NOTIFY ("closed") is out: now the door opens.
        assert wait_for(
            lambda: "subscribed to frontdoor (appliance) for 120 s" in firmware.log()
        ), firmware.output()
        firmware.command("frontdoor open")
    finally:
        finish(process, result, timeout=45)
    assert result.returncode == 0, result.report(firmware)
    assert firmware.status()["frontdoor"]["state"] == "open"
    # Its unsubscribe (Expires: 0) ended the subscription there too.
    assert wait_for(lambda: "frontdoor: subscription of sip:alice@%s:" % HOST in firmware.log()), (
        firmware.log()
    )


def test_appliance_do_and_message_drive_the_light(firmware):
    porch = "sip:porch@%s" % firmware.address
    credentials = ("--user", USER, "--password", PASSWORD)

    result = appliance("do", porch, "dim 40", *credentials)
    assert result.returncode == 0, result.stdout + result.stderr + firmware.output()
    assert result.stdout.splitlines() == ["SIP/2.0 200 OK", "porch: on, brightness 40"]
    assert wait_for(lambda: "pin 2 -> 0.40" in firmware.pins()), firmware.output()

    # No credentials: refused with the challenge, and the light stays as it is.
    result = appliance("do", porch, "on")
    assert result.returncode != 0
    assert result.stdout.startswith("SIP/2.0 401 Unauthorized"), result.stdout + result.stderr
    porch_state = firmware.status()["porch"]
    assert (porch_state["state"], porch_state["brightness"]) == ("on", 40)
    assert firmware.pins() == ["pin 2 -> 0.40"], firmware.output()

    result = appliance("message", porch, "off", *credentials)
    assert result.returncode == 0, result.stdout + result.stderr + firmware.output()
    assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout
    assert wait_for(lambda: firmware.pins() == ["pin 2 -> 0.40", "pin 2 -> 0.00"]), (
        firmware.output()
    )
    assert firmware.status()["porch"]["state"] == "off"


def test_a_do_through_kamailio_reaches_the_registered_light(kamailio, tmp_path):
    # alice authenticates twice, in the one realm: to the home proxy (407) and to the
    # light (401).
    with running_firmware(tmp_path / "firmware", board_config(kamailio.uri)) as firmware:
        assert wait_for(lambda: "sip:porch@%s: registered" % REALM in firmware.log()), (
            firmware.output() + kamailio.log()
        )
        result = appliance(
            "do",
            "sip:porch@%s" % REALM,
            "on",
            "--proxy",
            kamailio.uri,
            "--user",
            USER,
            "--password",
            PASSWORD,
        )
        assert result.returncode == 0, (
            result.stdout + result.stderr + firmware.output() + kamailio.log()
        )
        assert result.stdout.splitlines() == ["SIP/2.0 200 OK", "porch: on, brightness 100"]
        assert wait_for(lambda: "pin 2 -> 1.00" in firmware.pins()), firmware.output()
        # It came by way of the proxy, to the Contact the light registered.
        assert (
            "DO sip:porch@%s from %s:%d -> 200 OK"
            % (firmware.address, kamailio.host, kamailio.port)
            in firmware.log()
        ), firmware.log()
        assert "porch: on by alice -> on" in firmware.log()


def test_behind_a_nat_stun_gives_the_contact_and_a_do_from_the_wan_gets_in(lab, tmp_path):  # noqa: F811
    """The board on a home LAN behind a real NAT (network namespaces, nftables), the home
    proxy and a STUN server on the WAN: STUN tells the board its public address, its
    REGISTERs carry it, and a DO from the WAN through the proxy reaches the light."""
    users = {BOARD_USER: BOARD_PASSWORD, USER: PASSWORD}
    with start_kamailio(tmp_path / "kamailio", users, realm=REALM, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio, \
            start_coturn(tmp_path / "coturn", host=WAN_ADDRESS,
                         prefix=lab.prefix(lab.wan)) as coturn:
        config = board_config(kamailio.uri)
        config["nat"] = {"stun": coturn.address, "keepalive": 5}
        with running_firmware(tmp_path / "firmware", config, host=LAN_ADDRESS,
                              prefix=lab.prefix(lab.lan)) as firmware:
            assert wait_for(lambda: "nat: public address %s:" % ROUTER_WAN in firmware.log()), (
                firmware.output() + coturn.log())
            public = firmware.log().partition("nat: public address ")[2].split()[0]
            assert wait_for(lambda: "Address: sip:porch@%s\n" % public in kamailio.location()
                            ), kamailio.location() + firmware.output()
            result = appliance("do", "sip:porch@%s" % REALM, "on", "--proxy", kamailio.uri,
                               "--user", USER, "--password", PASSWORD,
                               prefix=lab.prefix(lab.wan))
            assert result.returncode == 0, (
                result.stdout + result.stderr + firmware.output() + kamailio.log())
            assert wait_for(lambda: "pin 2 -> 1.00" in firmware.pins()), firmware.output()
            assert "from %s:5060 -> 200 OK" % WAN_ADDRESS in firmware.log(), firmware.log()
