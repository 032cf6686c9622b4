"""The LAN lab itself: multicast crosses its bridge (IPv4 224.0.0.251 and IPv6 ff02::fb on
port 5353), and so does mDNS -- a service python-zeroconf registers on one host is browsed
and resolved on the other, and its goodbye on a clean stop removes it there."""

import json
import signal
import subprocess
import sys
import time

import pytest

from .conftest import peer_unavailable, wait_for
from .lanlab import INTERFACE, MDNS_GROUP, MDNS_GROUP6, MDNS_PORT, LabUnavailable, LanLab

SERVICE_TYPE = "_sip._udp.local."
BROWSE_SECONDS = 3

# Run in a lab host: `receiver.py 4|6 GROUP PORT TOKEN` joins GROUP on the LAN interface,
# says "ready", then prints the first datagram that carries TOKEN as JSON (exit 1 if none).
RECEIVER = """\
import json, socket, sys
family, group, port, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
if family == "4":
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))
    mreq = socket.inet_aton(group) + socket.inet_aton("0.0.0.0")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
else:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::", port))
    index = socket.if_nametoindex("%(interface)s")
    mreq = socket.inet_pton(socket.AF_INET6, group) + index.to_bytes(4, sys.byteorder)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
sock.settimeout(5)
print("ready", flush=True)
try:
    while True:
        data, source = sock.recvfrom(2048)
        if token in data:
            print(json.dumps({"from": source[0], "data": data.decode()}), flush=True)
            break
except socket.timeout:
    sys.exit(1)
""" % {"interface": INTERFACE}

# `sender.py 4|6 GROUP PORT TOKEN`: TOKEN to GROUP ten times. IPv4 picks no interface (the
# route to 224.0.0.0/4 does); IPv6 names the LAN interface as the scope of ff02::fb.
SENDER = """\
import socket, sys, time
family, group, port, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
if family == "4":
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    destination = (group, port)
else:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    destination = (group, port, 0, socket.if_nametoindex("%(interface)s"))
for _ in range(10):
    sock.sendto(token, destination)
    time.sleep(0.1)
""" % {"interface": INTERFACE}

# `register.py IP_VERSION ADDRESS`: registers porch._sip._udp.local. (ADDRESS, port 5060),
# says "registered", and on SIGTERM unregisters (goodbye packets) and exits 0.
REGISTER = """\
import signal, socket, sys
from zeroconf import IPVersion, ServiceInfo, Zeroconf

ip_version, address = IPVersion[sys.argv[1]], sys.argv[2]
# Blocked before zeroconf starts its threads, so that every thread leaves them to sigwait.
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
zc = Zeroconf(ip_version=ip_version)
info = ServiceInfo(
    "_sip._udp.local.",
    "porch._sip._udp.local.",
    addresses=[socket.inet_aton(address)],
    port=5060,
    properties={"uri": "sip:porch@h1.local:5060"},
    server="h1.local.",
)
zc.register_service(info)
print("registered", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
zc.unregister_service(info)  # sends the goodbyes (TTL 0) and waits for them to go
zc.close()
print("unregistered", flush=True)
"""

# `browse.py IP_VERSION SECONDS`: browses _sip._udp.local. for SECONDS, printing a JSON line
# per change, resolved (address, port, TXT) for the services that appear.
BROWSE = """\
import json, sys, time
from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

ip_version, seconds = IPVersion[sys.argv[1]], float(sys.argv[2])

def changed(zeroconf, service_type, name, state_change):
    event = {"event": state_change.name, "name": name}
    if state_change is not ServiceStateChange.Removed:
        info = zeroconf.get_service_info(service_type, name, timeout=3000)
        if info is not None:
            event.update(
                addresses=info.parsed_addresses(), port=info.port, server=info.server,
                txt={k.decode(): (v or b"").decode() for k, v in info.properties.items()})
    print(json.dumps(event), flush=True)

zc = Zeroconf(ip_version=ip_version)
browser = ServiceBrowser(zc, "_sip._udp.local.", handlers=[changed])
time.sleep(seconds)
browser.cancel()
zc.close()
print(json.dumps({"event": "done"}), flush=True)
"""


@pytest.fixture
def lab():
    try:
        with LanLab(hosts=2) as built:
            yield built
    except LabUnavailable as why:
        peer_unavailable("a LAN lab (root, `ip netns`, a bridge)", str(why))


def script(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          timeout=20).stdout


@pytest.mark.parametrize("family", ["4", "6"])
def test_multicast_from_one_host_reaches_the_other(lab, tmp_path, family):
    group = MDNS_GROUP if family == "4" else MDNS_GROUP6
    token = "lanlab-%s-%d" % (family, time.monotonic_ns())
    h1, h2 = lab.hosts
    receiver = subprocess.Popen(
        [*lab.prefix(h2), sys.executable, script(tmp_path, "receiver.py", RECEIVER),
         family, group, str(MDNS_PORT), token],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline() == "ready\n", receiver.stderr.read()
        sent = subprocess.run(
            [*lab.prefix(h1), sys.executable, script(tmp_path, "sender.py", SENDER),
             family, group, str(MDNS_PORT), token],
            capture_output=True, text=True, timeout=20)
        assert sent.returncode == 0, sent.stderr
        out, err = receiver.communicate(timeout=10)
    finally:
        receiver.kill()
        receiver.wait(5)
    assert receiver.returncode == 0, "no datagram crossed: " + err
    got = json.loads(out)
    assert got["data"] == token
    expected = lab.address(h1) if family == "4" else lab.link_local(h1)
    assert got["from"].split("%")[0] == expected


def events(path):
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.startswith("{")]


def browse(lab, tmp_path, host, ip_version, seconds=BROWSE_SECONDS):
    result = subprocess.run(
        [*lab.prefix(host), sys.executable, script(tmp_path, "browse.py", BROWSE),
         ip_version, str(seconds)],
        capture_output=True, text=True, timeout=seconds + 30)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("ip_version", ["V4Only", "V6Only", "All"])
def test_a_service_registered_on_one_host_is_browsed_on_the_other_and_goes_with_a_goodbye(
        lab, tmp_path, ip_version):
    h1, h2 = lab.hosts
    registrar = subprocess.Popen(
        [*lab.prefix(h1), sys.executable, script(tmp_path, "register.py", REGISTER),
         ip_version, lab.address(h1)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch_log = tmp_path / "watch.log"
    watcher = None
    try:
        assert registrar.stdout.readline() == "registered\n", registrar.stderr.read()

        # 1. A browse of 3 s on the other host finds porch, resolved.
        found = [e for e in browse(lab, tmp_path, h2, ip_version) if e["event"] == "Added"]
        assert [e["name"] for e in found] == ["porch._sip._udp.local."], found
        assert found[0]["port"] == 5060, found
        assert found[0]["addresses"] == [lab.address(h1)], found
        assert found[0]["server"] == "h1.local.", found
        assert found[0]["txt"] == {"uri": "sip:porch@h1.local:5060"}, found

        # 2. A browser still watching sees it removed when the registrar stops cleanly: the
        # goodbye (TTL 0) does it, long before the records' own TTLs (75 s and more) expire.
        with open(watch_log, "w") as out:
            watcher = subprocess.Popen(
                [*lab.prefix(h2), sys.executable, script(tmp_path, "watch.py", BROWSE),
                 ip_version, "30"],
                stdout=out, stderr=subprocess.STDOUT)
        assert wait_for(lambda: any(e["event"] == "Added" for e in events(watch_log))), (
            watch_log.read_text())
        registrar.send_signal(signal.SIGTERM)
        out, err = registrar.communicate(timeout=10)
        assert registrar.returncode == 0 and out == "unregistered\n", err
        assert wait_for(lambda: any(e["event"] == "Removed" for e in events(watch_log)),
                        timeout=5), watch_log.read_text()
        removed = [e for e in events(watch_log) if e["event"] == "Removed"]
        assert [e["name"] for e in removed] == ["porch._sip._udp.local."]
    finally:
        for process in (registrar, watcher):
            if process is not None:
                process.kill()
                process.wait(5)

    # 3. A new browse no longer finds it.
    assert [e for e in browse(lab, tmp_path, h2, ip_version) if e["event"] == "Added"] == []


def test_the_lab_is_removed_on_exit_even_after_a_failure():
    try:
        with pytest.raises(RuntimeError), LanLab(hosts=3) as built:
            made = [*built.hosts, built.bridge_namespace]
            assert all(name in namespaces() for name in made)
            raise RuntimeError("a test failed")
    except LabUnavailable as why:
        peer_unavailable("a LAN lab (root, `ip netns`, a bridge)", str(why))
    assert not any(name in namespaces() for name in made)


def test_a_lab_whose_names_are_taken_fails_and_leaves_the_other_alone(lab):
    second = LanLab(hosts=2)
    second.hosts = list(lab.hosts)  # as a lab of another session with the same names
    with pytest.raises(LabUnavailable), second:
        pass
    listed = namespaces()
    assert all(name in listed for name in [*lab.hosts, lab.bridge_namespace])
    assert second.bridge_namespace not in listed
