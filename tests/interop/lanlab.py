"""A home LAN built from network namespaces for the interop tests: N hosts on one Ethernet
segment (a Linux bridge), where link-local multicast (mDNS on 224.0.0.251 and ff02::fb,
port 5353) reaches every host as on a real LAN.

    h1  10.77.0.1/24 + fe80::/64  eth0 --+
    h2  10.77.0.2/24 + fe80::/64  eth0 --+-- br0 (own namespace, mcast_snooping 0)
    ...                                  |

Every host is a namespace (`hosts`, in order) whose only link is `eth0`, a veth whose peer
is a port of the bridge `br0`; the bridge lives in a namespace of its own, so the root
namespace's networking is never touched (the veth pairs are created straight in the lab's
namespaces). Names carry the process id, so parallel sessions do not collide, and a lab
removes only the namespaces it made.
"""

import itertools
import os
import shutil
import subprocess

from .natlab import LabUnavailable, _run  # one way to run and fail, for both labs

SUBNET = "10.77.0.0/24"
INTERFACE = "eth0"  # each host's LAN interface (the same name in every host's namespace)
BRIDGE = "br0"
MDNS_GROUP = "224.0.0.251"
MDNS_GROUP6 = "ff02::fb"
MDNS_PORT = 5353

_labs = itertools.count()  # more than one lab at a time in a process gets other names


class LanLab:
    """`with LanLab(hosts=2) as lab:` -- `lab.hosts` (namespace names), `lab.addresses`
    (their IPv4 addresses, same order), `lab.interface` ("eth0" in every host),
    `lab.prefix(namespace)` (argv prefix that runs a command there), `lab.link_local(ns)`
    (the host's fe80:: address on its LAN interface)."""

    interface = INTERFACE

    def __init__(self, hosts=2):
        if not 1 <= hosts <= 250:
            raise ValueError("a lab has 1 to 250 hosts, not %r" % hosts)
        if shutil.which("ip") is None and not os.path.exists("/usr/sbin/ip"):
            raise LabUnavailable("`ip` is not installed (apt-get install iproute2)")
        if os.geteuid() != 0:
            raise LabUnavailable("network namespaces need root")
        suffix = str(os.getpid())
        sequence = next(_labs)
        if sequence:
            suffix += "-%d" % sequence
        self.bridge_namespace = "sa-br-" + suffix
        self.hosts = ["sa-h%d-%s" % (n, suffix) for n in range(1, hosts + 1)]
        self.addresses = ["10.77.0.%d" % n for n in range(1, hosts + 1)]
        self._made = []  # the namespaces this lab created: the only ones it deletes

    def prefix(self, namespace):
        """The argv prefix that runs a command on one of the lab's hosts."""
        return ["ip", "netns", "exec", namespace]

    def address(self, namespace):
        """A host's IPv4 address."""
        return self.addresses[self.hosts.index(namespace)]

    def link_local(self, namespace):
        """A host's IPv6 link-local address on its LAN interface (without the %scope)."""
        out = _run("ip", "-n", namespace, "-6", "-o", "addr", "show", "dev", INTERFACE,
                   "scope", "link")
        for line in out.splitlines():
            words = line.split()
            if "inet6" in words:
                return words[words.index("inet6") + 1].split("/")[0]
        raise LabUnavailable("%s has no link-local address on %s" % (namespace, INTERFACE))

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _add_namespace(self, namespace):
        _run("ip", "netns", "add", namespace)  # fails if the name is taken: never adopt it
        self._made.append(namespace)
        on = self.prefix(namespace)
        # No duplicate address detection: link-local addresses are usable at once (DAD
        # applies unless both `all` and the device say 0; `default` covers devices to come).
        for scope in ("all", "default"):
            _run(*on, "sysctl", "-qw", "net.ipv6.conf.%s.accept_dad=0" % scope)
        _run("ip", "-n", namespace, "link", "set", "lo", "up")

    def _build(self):
        bridge_ns = self.bridge_namespace
        self._add_namespace(bridge_ns)
        # The bridge only switches frames: no addresses of its own, no IPv6 chatter.
        _run(*self.prefix(bridge_ns), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        _run(*self.prefix(bridge_ns), "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        # mcast_snooping 0: flood multicast to every port, whatever IGMP/MLD was (not) seen.
        _run("ip", "-n", bridge_ns, "link", "add", BRIDGE, "type", "bridge",
             "mcast_snooping", "0", "stp_state", "0", "forward_delay", "0")
        _run("ip", "-n", bridge_ns, "link", "set", BRIDGE, "up")
        for n, (host, address) in enumerate(zip(self.hosts, self.addresses, strict=True), start=1):
            self._add_namespace(host)
            port = "p%d" % n
            # Made in place: the pair never exists in the root namespace.
            _run("ip", "-n", bridge_ns, "link", "add", port, "type", "veth",
                 "peer", "name", INTERFACE, "netns", host)
            _run("ip", "-n", bridge_ns, "link", "set", port, "master", BRIDGE)
            _run("ip", "-n", bridge_ns, "link", "set", port, "up")
            _run(*self.prefix(host), "sysctl", "-qw",
                 "net.ipv6.conf.%s.accept_dad=0" % INTERFACE)
            _run("ip", "-n", host, "link", "set", INTERFACE, "multicast", "on")
            _run("ip", "-n", host, "addr", "add", address + "/24", "dev", INTERFACE)
            _run("ip", "-n", host, "link", "set", INTERFACE, "up")
            # Multicast sent without a chosen interface goes out on the LAN, and so does
            # anything else (a home LAN's default route; there is no router behind it).
            _run("ip", "-n", host, "route", "add", "224.0.0.0/4", "dev", INTERFACE)
            _run("ip", "-n", host, "route", "add", "default", "dev", INTERFACE)
        for host in self.hosts:
            self.link_local(host)  # there now (no DAD): raises if not

    def __exit__(self, *exc):
        # Deleting a namespace destroys its links: the veth pairs and the bridge go too.
        while self._made:
            namespace = self._made.pop()
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)
