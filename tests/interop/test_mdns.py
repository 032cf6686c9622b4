"""mDNS between two agents on a LAN of network namespaces joined by a bridge (real
multicast, tests/interop/lanlab.py): each announces its devices, `appliance discover` on the
other host lists them, `appliance do porch on` by name alone switches the other agent's
light, and a stopped agent's devices are gone from the next browse (goodbye packets)."""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import ROOT, _agent_env, _start_agent, _stop, peer_unavailable, wait_for
from .lanlab import LabUnavailable, LanLab

MDNS_ON = {"SIP_APPLIANCE_MDNS_ENABLED": "true"}

HOME = """
[agent]
name = "%(name)s"
simulate = true
state_dir = "state"

[[users]]
name = "alice"
password = "alice-pw"
devices = [%(names)s]
%(devices)s
"""

PORCH = '\n[[devices]]\nname = "porch"\ntype = "light"\npin = 22\n'
FRONTDOOR = '\n[[devices]]\nname = "frontdoor"\ntype = "door"\npin = 17\n'
GATE = '\n[[devices]]\nname = "gate"\ntype = "relay"\npin = 23\n'


@pytest.fixture
def lab():
    try:
        with LanLab(hosts=2) as built:
            yield built
    except LabUnavailable as why:
        peer_unavailable("a LAN lab (root, `ip netns`)", str(why))


def start(lab, host, workdir, name, devices):
    names = ", ".join('"%s"' % line.split('"')[1] for line in devices)
    config = Path(workdir, "home.toml")
    config.write_text(HOME % {"name": name, "names": names, "devices": "".join(devices)})
    return _start_agent(workdir, ["-c", str(config)], host=lab.address(host),
                        prefix=lab.prefix(host), env=MDNS_ON)


def appliance(lab, host, *args):
    return subprocess.run([*lab.prefix(host), sys.executable, "-m", "appliance.cli", *args],
                          capture_output=True, text=True, timeout=60, env=_agent_env(),
                          cwd=ROOT)


def discovered(lab, host):
    result = appliance(lab, host, "discover", "--json", "--timeout", "3")
    return {(entry["agent"], entry["name"], entry["transport"]): entry
            for entry in map(json.loads, result.stdout.splitlines())}


def test_two_agents_find_each_others_devices_and_control_them_by_name(lab):
    first, second = lab.hosts
    workdirs = [tempfile.mkdtemp(prefix="sipmdns-") for _ in range(2)]
    porch_pi = gate_pi = None
    try:
        porch_pi = start(lab, first, workdirs[0], "porch-pi", [PORCH, FRONTDOOR])
        gate_pi = start(lab, second, workdirs[1], "gate-pi", [GATE])

        seen = wait_for(lambda: ("porch-pi", "porch", "udp") in discovered(lab, second), 20)
        assert seen, porch_pi.output()
        found = discovered(lab, second)
        porch = found[("porch-pi", "porch", "udp")]
        assert porch["uri"] == "sip:porch@porch-pi.local:%d" % porch_pi.port
        assert (porch["type"], porch["addresses"], porch["port"]) == (
            "light", [lab.address(first)], porch_pi.port)
        assert porch["methods"] == "OPTIONS,ACK,CANCEL,SUBSCRIBE,MESSAGE,DO"
        assert porch["events"] == "presence,appliance"
        assert ("porch-pi", "frontdoor", "tcp") in found  # both transports announced
        assert wait_for(lambda: ("gate-pi", "gate", "udp") in discovered(lab, first), 20)

        # A bare device name, found over mDNS, from the other host.
        result = appliance(lab, second, "do", "porch", "on", "--user", "alice",
                           "--password", "alice-pw")
        assert result.returncode == 0, result.stdout + result.stderr + porch_pi.output()
        assert porch_pi.status()["devices"]["porch"]["state"] == "on"
        # ... and its URI as announced: NAME.local, resolved over mDNS too.
        result = appliance(lab, second, "options", porch["uri"])
        assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + result.stderr

        # A reload announces a new device.
        config = Path(workdirs[1], "home.toml")
        config.write_text(config.read_text().replace('"gate"]', '"gate", "garage"]')
                          + GATE.replace("gate", "garage").replace("23", "24"))
        gate_pi.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: ("gate-pi", "garage", "udp") in discovered(lab, first), 20), \
            gate_pi.output()

        _stop(porch_pi)  # goodbye packets: gone from the next browse
        porch_pi = None
        assert wait_for(lambda: not any(agent == "porch-pi" for agent, _, _ in
                                        discovered(lab, second)), 15)
        assert ("gate-pi", "gate", "udp") in discovered(lab, first)
    finally:
        for agent in (porch_pi, gate_pi):
            if agent is not None:
                _stop(agent)
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
