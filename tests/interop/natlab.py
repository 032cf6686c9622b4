"""A home behind a NAT router, built from network namespaces for the interop tests.

    lan    192.168.77.2  --  192.168.77.1  router  203.0.113.1  --  203.0.113.2  wan
    (the appliance)           (nftables masquerade, short UDP      (home proxy, STUN server,
                               conntrack timeout)                   callers)

The WAN host has no route into the LAN: it reaches the appliance only through a mapping the
appliance itself opened in the router, as on the Internet. All addresses are the lab's own
(a private range and TEST-NET-3), inside namespaces made here and removed on exit.
"""

import os
import shutil
import subprocess

LAN_ADDRESS = "192.168.77.2"
ROUTER_LAN = "192.168.77.1"
ROUTER_WAN = "203.0.113.1"  # the NAT's public address
WAN_ADDRESS = "203.0.113.2"


class LabUnavailable(Exception):
    """A lab's namespaces, veth, bridge or nftables cannot be used here (not root, no
    `ip`/`nft`)."""


def _run(*argv):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if result.returncode != 0:
        raise LabUnavailable("%s: %s" % (" ".join(argv), result.stderr.strip()))
    return result.stdout


class NatLab:
    def __init__(self, udp_timeout=20):
        for tool in ("ip", "nft"):
            if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
                raise LabUnavailable("`%s` is not installed (apt-get install iproute2 nftables)"
                                     % tool)
        suffix = str(os.getpid() % 100000)
        self.lan = "sa-lan" + suffix
        self.router = "sa-rt" + suffix
        self.wan = "sa-wan" + suffix
        self.udp_timeout = udp_timeout

    def prefix(self, namespace):
        """The argv prefix that runs a command on one of the lab's hosts."""
        return ["ip", "netns", "exec", namespace]

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _build(self):
        lan, router, wan = self.lan, self.router, self.wan
        for namespace in (lan, router, wan):
            _run("ip", "netns", "add", namespace)
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run("ip", "link", "add", "l" + lan, "type", "veth", "peer", "name", "r" + lan)
        _run("ip", "link", "set", "l" + lan, "netns", lan)
        _run("ip", "link", "set", "r" + lan, "netns", router)
        _run("ip", "link", "add", "w" + wan, "type", "veth", "peer", "name", "r" + wan)
        _run("ip", "link", "set", "w" + wan, "netns", wan)
        _run("ip", "link", "set", "r" + wan, "netns", router)
        for namespace, device, address in (
            (lan, "l" + lan, LAN_ADDRESS + "/24"), (router, "r" + lan, ROUTER_LAN + "/24"),
            (router, "r" + wan, ROUTER_WAN + "/24"), (wan, "w" + wan, WAN_ADDRESS + "/24"),
        ):
            _run("ip", "-n", namespace, "addr", "add", address, "dev", device)
            _run("ip", "-n", namespace, "link", "set", device, "up")
        _run("ip", "-n", lan, "route", "add", "default", "via", ROUTER_LAN)
        on_router = self.prefix(router)
        _run(*on_router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _run(*on_router, "nft", "add", "table", "ip", "nat")
        _run(*on_router, "nft",
             "add chain ip nat post { type nat hook postrouting priority 100 ; }")
        _run(*on_router, "nft", "add", "rule", "ip", "nat", "post", "oifname", "r" + wan,
             "masquerade")
        _run(*on_router, "sysctl", "-qw",
             "net.netfilter.nf_conntrack_udp_timeout=%d" % self.udp_timeout)
        _run(*on_router, "sysctl", "-qw",
             "net.netfilter.nf_conntrack_udp_timeout_stream=%d" % self.udp_timeout)

    def renumber(self, namespace, old, new):
        """Give a lab host's interface the address `new` in place of `old` (same /24), as a
        new DHCP lease or a new line address would."""
        device = {self.lan: "l" + self.lan, self.router: "r" + self.wan}[namespace]
        # Deleting the primary address keeps the new (secondary) one and the routes.
        _run(*self.prefix(namespace), "sysctl", "-qw",
             "net.ipv4.conf.%s.promote_secondaries=1" % device)
        _run("ip", "-n", namespace, "addr", "add", new + "/24", "dev", device)
        _run("ip", "-n", namespace, "addr", "del", old + "/24", "dev", device)

    def add_address(self, namespace, address):
        """One more address (same /24) on a lab host's interface."""
        device = {self.lan: "l" + self.lan, self.wan: "w" + self.wan}[namespace]
        _run("ip", "-n", namespace, "addr", "add", address + "/24", "dev", device)

    def use_dns(self, namespace, server):
        """Make `server` the DNS server of programs run on a lab host (`ip netns exec`
        mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf)."""
        directory = os.path.join("/etc/netns", namespace)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "resolv.conf"), "w") as conf:
            conf.write("nameserver %s\n" % server)

    def __exit__(self, *exc):
        for namespace in (self.lan, self.router, self.wan):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)
            shutil.rmtree(os.path.join("/etc/netns", namespace), ignore_errors=True)
