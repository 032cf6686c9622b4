"""Devices behind a real NAT (network namespaces, nftables masquerade) register through a
Kamailio on the WAN side, which records the NAT's public address, and a caller on the WAN
reaches them through it."""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import (
    ROOT,
    _agent_env,
    _start_agent,
    _stop,
    peer_unavailable,
    sipp_server,
    start_coturn,
    start_kamailio,
)
from .dnsmasq import Dnsmasq
from .natlab import LAN_ADDRESS, ROUTER_WAN, WAN_ADDRESS, LabUnavailable, NatLab
from .peers import PeerMissing
from .test_registration import registrations, wait_for, write_config

NEW_LAN_ADDRESS = "192.168.77.3"
NEW_ROUTER_WAN = "203.0.113.5"


@pytest.fixture
def lab():
    try:
        with NatLab(udp_timeout=20) as built:
            yield built
    except LabUnavailable as why:
        peer_unavailable("a NAT lab (root, `ip netns`, nftables)", str(why))


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="sipnat-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_devices_behind_a_nat_register_with_its_public_address_and_are_reached(lab, workdir):
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret")
        agent = _start_agent(workdir, ["-c", str(config)], host=LAN_ADDRESS,
                             prefix=lab.prefix(lab.lan))
        try:
            assert wait_for(lambda: len(registrations(agent)) == 2 and all(
                r["registered"] for r in registrations(agent).values())), agent.output()
            # 1. The registrar holds the NAT's public address for each device.
            location = kamailio.location()
            aors = [line.split(":", 1)[1].strip() for line in location.splitlines()
                    if line.strip().startswith("AoR:")]
            received = [line.split(":", 1)[1].strip() for line in location.splitlines()
                        if line.strip().startswith("Received:")]
            assert sorted(aors) == ["frontdoor", "porch"], location
            assert len(received) == 2, location
            assert all(r.startswith("sip:%s:" % ROUTER_WAN) for r in received), location

            # A caller on the WAN reaches the door through the proxy and the NAT mapping.
            result = subprocess.run(
                [*lab.prefix(lab.wan), sys.executable, "-m", "appliance.cli", "options",
                 "sip:frontdoor@home.arpa", "--proxy", kamailio.uri,
                 "--from", "sip:alice@home.arpa", "--user", "alice", "--password", "alice-pw",
                 "--timeout", "5"],
                capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT,
            )
            assert result.stdout.startswith("SIP/2.0 200 OK"), (
                result.stdout + result.stderr + agent.output() + kamailio.log())
            assert "from udp:%s:" % WAN_ADDRESS in agent.log()  # it came from outside
        finally:
            _stop(agent)
        time.sleep(0.2)


IDLE = 3 * 20 + 5  # seconds: longer than three of the router's UDP conntrack timeouts


def call_from_wan(lab, kamailio, device):
    return subprocess.run(
        [*lab.prefix(lab.wan), sys.executable, "-m", "appliance.cli", "options",
         "sip:%s@home.arpa" % device, "--proxy", kamailio.uri, "--from", "sip:alice@home.arpa",
         "--user", "alice", "--password", "alice-pw", "--timeout", "8"],
        capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT,
    )


def test_keepalives_keep_a_device_reachable_after_a_long_idle_and_without_them_it_is_not(
        lab, workdir):
    # Two appliances in the same home: the front door's sends keep-alives, the porch's does
    # not. After an idle spell longer than three NAT timeouts, only the door is reachable:
    # the keep-alives are what keep it so.
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio:
        agents = {}
        try:
            for device, keepalive in (("frontdoor", 8), ("porch", 0)):
                home = Path(workdir, device)
                home.mkdir()
                config = home / "home.toml"
                write_config(config, kamailio.uri, "pi-s3cret", devices=(device,),
                             keepalive=keepalive)
                agents[device] = _start_agent(str(home), ["-c", str(config)],
                                              host=LAN_ADDRESS, prefix=lab.prefix(lab.lan))
            for device, agent in agents.items():
                assert wait_for(lambda a=agent, d=device: registrations(a).get(d, {}).get(
                    "registered")), agent.output()
            for device in agents:  # both reachable to begin with
                assert call_from_wan(lab, kamailio, device).stdout.startswith("SIP/2.0 200")
            time.sleep(IDLE)
            porch_log_before = len(agents["porch"].log())
            door = call_from_wan(lab, kamailio, "frontdoor")
            porch = call_from_wan(lab, kamailio, "porch")
            assert door.stdout.startswith("SIP/2.0 200 OK"), (
                door.stdout + door.stderr + agents["frontdoor"].output())
            assert not porch.stdout.startswith("SIP/2.0 200"), porch.stdout
            assert porch.returncode != 0
            # The call never reached the porch's appliance: its NAT mapping was gone.
            assert "OPTIONS" not in agents["porch"].log()[porch_log_before:]
        finally:
            for agent in agents.values():
                _stop(agent)


def test_stun_learns_the_public_address_of_the_sip_socket(lab, workdir):
    users = {"frontdoor-pi": "pi-s3cret"}
    with start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio, \
            start_coturn(Path(workdir, "coturn"), host=WAN_ADDRESS,
                         prefix=lab.prefix(lab.wan)) as coturn:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret", keepalive=5, stun=coturn.address)
        agent = _start_agent(workdir, ["-c", str(config)], host=LAN_ADDRESS,
                             prefix=lab.prefix(lab.lan))
        try:
            assert wait_for(lambda: (agent.status()["nat"] or {}).get("public")), (
                agent.output() + coturn.log())
            nat = agent.status()["nat"]
            host, _, port = nat["public"].rpartition(":")
            assert host == ROUTER_WAN  # the router's address, not the LAN's
            assert nat["stun"] == coturn.address and nat["error"] is None
            # The same mapping the registrar saw for the SIP socket.
            assert wait_for(lambda: "Received: sip:%s:%s" % (ROUTER_WAN, port)
                            in kamailio.location()), kamailio.location()
            assert "public address of the SIP socket: %s" % nat["public"] in agent.log()
        finally:
            _stop(agent)


def location_addresses(kamailio, aor):
    """The contact addresses Kamailio holds for `aor`."""
    location = kamailio.location()
    block = location.partition("AoR: %s\n" % aor)[2].partition("AoR: ")[0]
    return [line.split(":", 1)[1].strip() for line in block.splitlines()
            if line.strip().startswith("Address:")]


def test_a_new_local_address_registers_again_at_once(lab, workdir):
    # The appliance's LAN address changes (a new DHCP lease): the Contact the registrar
    # holds must follow, long before the next refresh.
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret", devices=("frontdoor",), keepalive=10)
        agent = _start_agent(workdir, ["-c", str(config)], host="0.0.0.0",
                             prefix=lab.prefix(lab.lan))
        try:
            assert wait_for(lambda: registrations(agent).get("frontdoor", {}).get(
                "registered")), agent.output()
            assert location_addresses(kamailio, "frontdoor") == [
                "sip:frontdoor@%s:%d" % (LAN_ADDRESS, agent.port)]
            lab.renumber(lab.lan, LAN_ADDRESS, NEW_LAN_ADDRESS)
            new_contact = "sip:frontdoor@%s:%d" % (NEW_LAN_ADDRESS, agent.port)
            # Outbound (same instance id and reg-id): the new binding replaces the old one.
            assert wait_for(lambda: location_addresses(kamailio, "frontdoor") == [new_contact],
                            timeout=15), agent.output() + kamailio.location()
            assert "local address changed from %s to %s" % (LAN_ADDRESS, NEW_LAN_ADDRESS) \
                in agent.log()
            assert registrations(agent)["frontdoor"]["contact"] == new_contact
            result = call_from_wan(lab, kamailio, "frontdoor")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()
        finally:
            _stop(agent)


def test_a_new_public_address_is_noticed_by_stun_and_registered(lab, workdir):
    # The home router gets a new address on its line: STUN shows the new mapping, and the
    # devices register again from it at once.
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio, \
            start_coturn(Path(workdir, "coturn"), host=WAN_ADDRESS,
                         prefix=lab.prefix(lab.wan)) as coturn:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret", devices=("frontdoor",), keepalive=3,
                     stun=coturn.address)
        agent = _start_agent(workdir, ["-c", str(config)], host=LAN_ADDRESS,
                             prefix=lab.prefix(lab.lan))
        try:
            assert wait_for(lambda: registrations(agent).get("frontdoor", {}).get(
                "registered")), agent.output()
            # The Contact carries the STUN-learned public address.
            public = agent.status()["nat"]["public"]
            assert public.startswith(ROUTER_WAN + ":")
            assert location_addresses(kamailio, "frontdoor") == ["sip:frontdoor@%s" % public]
            lab.renumber(lab.router, ROUTER_WAN, NEW_ROUTER_WAN)
            assert wait_for(lambda: location_addresses(kamailio, "frontdoor")[0].startswith(
                "sip:frontdoor@%s:" % NEW_ROUTER_WAN), timeout=20), (
                agent.output() + kamailio.location())
            assert agent.status()["nat"]["public"].startswith(NEW_ROUTER_WAN + ":")
            assert "public address changed from %s to %s:" % (public, NEW_ROUTER_WAN) \
                in agent.log()
            result = call_from_wan(lab, kamailio, "frontdoor")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout + agent.output()
        finally:
            _stop(agent)


SIPP_ADDRESS = "203.0.113.3"  # a second address of the WAN host


def test_registrar_located_by_naptr_and_srv_with_failover_past_a_503(lab, workdir,
                                                                      sipp_binary):
    # Only the domain is configured. DNS (dnsmasq on the WAN) says: UDP (NAPTR), then two
    # servers (SRV): the preferred one is out of service (SIPp answering 503), the other
    # is Kamailio. The devices end up registered at Kamailio, without a backoff.
    try:
        dns_server = Dnsmasq(
            Path(workdir, "dnsmasq"),
            hosts={"sipp.home.test": [SIPP_ADDRESS], "pbx.home.test": [WAN_ADDRESS]},
            srv=[("_sip._udp.home.test", "sipp.home.test", 5060, 10, 0),
                 ("_sip._udp.home.test", "pbx.home.test", 5060, 20, 0)],
            naptr=[("home.test", 10, 10, "s", "SIP+D2U", "_sip._udp.home.test")],
            host=WAN_ADDRESS, port=53, prefix=lab.prefix(lab.wan))
    except PeerMissing as missing:
        peer_unavailable("dnsmasq", str(missing).rpartition("; ")[2])
    lab.add_address(lab.wan, SIPP_ADDRESS)
    lab.use_dns(lab.lan, WAN_ADDRESS)
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with sipp_server(sipp_binary, "register_503.xml", SIPP_ADDRESS, 5060,
                     prefix=lab.prefix(lab.wan)), dns_server, \
            start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                           prefix=lab.prefix(lab.wan)) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, "sip:home.test", "pi-s3cret")
        agent = _start_agent(workdir, ["-c", str(config)], host=LAN_ADDRESS,
                             prefix=lab.prefix(lab.lan))
        try:
            assert wait_for(lambda: len(registrations(agent)) == 2 and all(
                r["registered"] for r in registrations(agent).values())), (
                agent.output() + dns_server.log())
            assert "registrar udp:%s:5060: 503 Service Unavailable; trying udp:%s:5060" % (
                SIPP_ADDRESS, WAN_ADDRESS) in agent.log()
            assert all(r["failures"] == 0 for r in registrations(agent).values())
            assert agent.status()["nat"]["flow"] == "udp:%s:5060" % WAN_ADDRESS
            assert ("NAPTR", "home.test") in dns_server.queries()
            result = call_from_wan(lab, kamailio, "frontdoor")
            assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout
        finally:
            _stop(agent)


MAP_RTP_SOCKET = """
import asyncio, socket, sys
from appliance.nat import public_address_of
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 0))
print(sock.getsockname()[1], asyncio.run(public_address_of(sock, sys.argv[1])))
"""


def test_the_public_address_of_an_rtp_socket(lab, workdir):
    # The intercom asks, from each RTP socket, where the router maps it, for its SDP.
    with start_coturn(Path(workdir, "coturn"), host=WAN_ADDRESS,
                      prefix=lab.prefix(lab.wan)) as coturn:
        result = subprocess.run(
            [*lab.prefix(lab.lan), sys.executable, "-c", MAP_RTP_SOCKET, coturn.address],
            capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT)
        _, _, mapped = result.stdout.strip().partition(" ")
        assert mapped.startswith("('%s', " % ROUTER_WAN), result.stdout + result.stderr
        # A silent server: None once the time is up, not an exception or a hang.
        silent = subprocess.run(
            [*lab.prefix(lab.lan), sys.executable, "-c", MAP_RTP_SOCKET,
             "%s:3479" % WAN_ADDRESS],
            capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT)
        assert silent.stdout.strip().endswith(" None"), silent.stdout + silent.stderr


def test_behind_the_nat_a_restarted_registrar_gets_the_devices_back_and_a_wrong_password_is_not_hammered(  # noqa: E501
        lab, workdir):
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    door_home, porch_home = Path(workdir, "door"), Path(workdir, "porch")
    door_home.mkdir()
    porch_home.mkdir()
    kamailio_at = {"host": WAN_ADDRESS, "port": 5060, "prefix": lab.prefix(lab.wan)}
    door = porch = None
    try:
        with start_kamailio(Path(workdir, "kamailio-1"), users, **kamailio_at) as first:
            write_config(door_home / "home.toml", first.uri, "pi-s3cret",
                         devices=("frontdoor",), keepalive=3)
            door = _start_agent(str(door_home), ["-c", str(door_home / "home.toml")],
                                host=LAN_ADDRESS, prefix=lab.prefix(lab.lan))
            assert wait_for(lambda: registrations(door).get("frontdoor", {}).get(
                "registered")), door.output()
        # The registrar is down: the door's keep-alives (STUN, as Kamailio speaks outbound)
        # go unanswered, so its flow fails and it registers again at once...
        assert wait_for(lambda: "flow to the registrar udp:%s:5060 failed" % WAN_ADDRESS
                        in door.log(), timeout=20), door.output()
        # ... and when the registrar is back, with an empty location table, that REGISTER
        # (retransmitted meanwhile) or the retry after the backoff gets the door in again,
        # long before its refresh (600 s away).
        with start_kamailio(Path(workdir, "kamailio-2"), users, **kamailio_at) as second:
            assert wait_for(lambda: "AoR: frontdoor" in second.location(), timeout=75), (
                door.output() + second.log())
            assert call_from_wan(lab, second, "frontdoor").stdout.startswith("SIP/2.0 200")
            # Another appliance with a wrong password: reported, and not retried in a loop.
            write_config(porch_home / "home.toml", second.uri, "wrong", devices=("porch",))
            porch = _start_agent(str(porch_home), ["-c", str(porch_home / "home.toml")],
                                 host=LAN_ADDRESS, prefix=lab.prefix(lab.lan))
            assert wait_for(lambda: registrations(porch).get("porch", {}).get(
                "last_error")), porch.output()
            time.sleep(3.0)
            status = registrations(porch)["porch"]
            assert (status["last_error"], status["failures"]) == ("authentication failed", 1)
            assert second.registers("sip:porch@home.arpa") == 2, second.log()
            assert porch.log().count("not registered: authentication failed") == 1
    finally:
        for agent in (door, porch):
            if agent is not None:
                _stop(agent)


INTERCOM_HOME = """
[agent]
name = "frontdoor-pi"
domain = "home.arpa"
simulate = true
state_dir = "state"

[proxy]
registrar = "%(registrar)s"
username = "frontdoor-pi"
password = "pi-s3cret"

[nat]
stun = "%(stun)s"
keepalive = 5

[[users]]
name = "alice"
password = "alice-pw"
devices = ["intercom"]

[[devices]]
name = "intercom"
type = "intercom"
audio = "null"
"""


def test_a_call_from_the_wan_reaches_the_intercom_behind_the_nat_with_audio_both_ways(
        lab, workdir):
    """The SDP carries the router's public mapping of the RTP port (STUN from that very
    socket): the caller on the WAN, which takes RTP only from the address the SDP names,
    hears the intercom, and the intercom hears the caller."""
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio, \
            start_coturn(Path(workdir, "coturn"), host=WAN_ADDRESS,
                         prefix=lab.prefix(lab.wan)) as coturn:
        config = Path(workdir, "home.toml")
        config.write_text(INTERCOM_HOME % {"registrar": kamailio.uri, "stun": coturn.address})
        agent = _start_agent(workdir, ["-c", str(config)], host=LAN_ADDRESS,
                             prefix=lab.prefix(lab.lan))
        try:
            assert wait_for(lambda: registrations(agent).get("intercom", {}).get(
                "registered")), agent.output()
            result = subprocess.run(
                [*lab.prefix(lab.wan), sys.executable, "-m", "appliance.cli", "call",
                 "sip:intercom@home.arpa", "--proxy", kamailio.uri, "--user", "alice",
                 "--password", "alice-pw", "--audio", "null", "--duration", "2"],
                capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT)
            output = result.stdout + result.stderr + agent.output()
            assert result.returncode == 0, output
            ended = [line for line in result.stdout.splitlines() if line.startswith("ended")]
            received = int(ended[0].split("received ")[1].split(",")[0])
            assert received >= 75, output  # of about 100 in 2 s: through the NAT
            assert wait_for(lambda: [c["reason"] for c in agent.status()["recent_calls"]]
                            == ["the other side hung up"]), output
            assert "RTP from %s:" % WAN_ADDRESS in agent.log() or \
                "public address" in agent.log(), output
        finally:
            _stop(agent)


CAMERA_HOME = INTERCOM_HOME.replace('devices = ["intercom"]', 'devices = ["camera"]') + """
[[devices]]
name = "camera"
type = "camera"
source = "test"
width = 320
height = 240
"""


def test_a_camera_behind_the_nat_is_watched_from_the_wan(lab, workdir):
    """The camera's SDP carries the router's public mapping of its video port (STUN from
    that socket): `appliance call --video` on the WAN, which takes video only from the
    address the SDP names, gets pictures a real decoder reads at the configured size."""
    if shutil.which("ffprobe") is None:
        peer_unavailable("ffprobe (Debian `ffmpeg`)", "apt-get install ffmpeg")
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users, host=WAN_ADDRESS, port=5060,
                        prefix=lab.prefix(lab.wan)) as kamailio, \
            start_coturn(Path(workdir, "coturn"), host=WAN_ADDRESS,
                         prefix=lab.prefix(lab.wan)) as coturn:
        config = Path(workdir, "home.toml")
        config.write_text(CAMERA_HOME % {"registrar": kamailio.uri, "stun": coturn.address})
        agent = _start_agent(workdir, ["-c", str(config)], host=LAN_ADDRESS,
                             prefix=lab.prefix(lab.lan))
        try:
            assert wait_for(lambda: registrations(agent).get("camera", {}).get(
                "registered")), agent.output()
            stream = Path(workdir, "camera.h264")
            result = subprocess.run(
                [*lab.prefix(lab.wan), sys.executable, "-m", "appliance.cli", "call",
                 "sip:camera@home.arpa", "--proxy", kamailio.uri, "--user", "alice",
                 "--password", "alice-pw", "--audio", "null", "--video", str(stream),
                 "--duration", "4"],
                capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT)
            output = result.stdout + result.stderr + agent.output()
            assert result.returncode == 0, output
            assert "H.264 video" in result.stdout, output
            decoded = subprocess.run(
                ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                 "stream=width,height,nb_read_frames", "-of", "csv=p=0", str(stream)],
                capture_output=True, text=True, timeout=30)
            width, height, frames = decoded.stdout.strip().split(",")[:3]
            assert (width, height) == ("320", "240"), decoded.stderr + output
            assert int(frames) >= 30, decoded.stderr + output  # of about 60 in 4 s
        finally:
            _stop(agent)
