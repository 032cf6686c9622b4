"""dnsmasq as the DNS server of the resolver's tests (Debian package dnsmasq-base).

`Dnsmasq(workdir, hosts=..., srv=..., naptr=...)` serves those records on 127.0.0.1 and a
free port, and nothing else: it reads neither /etc/dnsmasq.conf, /etc/resolv.conf nor
/etc/hosts, forwards no query, answers NXDOMAIN for other names under .test and REFUSED
for names elsewhere. `resolver()` is a dnspython resolver that asks it; `queries()` is
what it was asked, from its query log. No pytest here, as in peers.py.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.message
import dns.query

from .peers import HOST, START_TIMEOUT, PeerMissing, _Peer, free_port

DNSMASQ_INSTALL_HINT = "apt-get install dnsmasq-base"
DOMAIN = "test"  # RFC 6761: reserved, so no name under it can lead to the Internet
PROBE = "ready." + DOMAIN  # asked until it answers, to know it serves


class Dnsmasq(_Peer):
    """A DNS server for names under .test.

    `hosts` maps a name to its addresses (A and AAAA records); `srv` lists (name, target,
    port, priority, weight), with target None for the "." record of a service that is not
    offered; `naptr` lists (name, order, preference, flags, service, replacement).
    """

    def __init__(self, workdir, hosts=None, srv=(), naptr=(), host=HOST, port=None, prefix=()):
        """`prefix` runs it on a lab's host (["ip", "netns", "exec", NAME]), listening on
        `host` and `port` there (a free port of 127.0.0.1 by default)."""
        self.binary = shutil.which("dnsmasq") or (
            "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None
        )
        if self.binary is None:
            raise PeerMissing("dnsmasq (`dnsmasq`) is not installed; " + DNSMASQ_INSTALL_HINT)
        self.workdir = Path(workdir)
        self.hosts = dict(hosts or {})
        self.srv = list(srv)
        self.naptr = list(naptr)
        self.host = host
        self.port = port
        self.prefix = list(prefix)
        self.process = None
        self.log_path = self.workdir / "dnsmasq.log"

    def _records(self):
        options = []
        for name, addresses in self.hosts.items():
            options.append("--host-record=%s,%s" % (name, ",".join(addresses)))
        for name, target, port, priority, weight in self.srv:
            if target is None:
                options.append("--srv-host=%s" % name)
            else:
                options.append("--srv-host=%s,%s,%d,%d,%d" % (name, target, port, priority, weight))
        for name, order, preference, flags, service, replacement in self.naptr:
            # The regexp field stays empty: SIP's NAPTR records name their SRV records.
            options.append(
                "--naptr-record=%s,%d,%d,%s,%s,,%s"
                % (name, order, preference, flags, service, replacement)
            )
        return options

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        # fmt: off
        command = [
            *self.prefix, self.binary, "--keep-in-foreground", "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", "--local=/%s/" % DOMAIN, "--listen-address=" + self.host,
            "--bind-interfaces", "--port=%d" % self.port, "--pid-file=", "--log-facility=-",
            "--log-queries", *self._records(),
        ]
        # fmt: on
        if os.geteuid() == 0:
            # As root it would switch to `nobody`, which need not exist; as anyone else it
            # keeps its user, and port self.port needs no privilege.
            command.append("--user=root")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError("dnsmasq did not start:\n" + self.log())
        return self

    def _answers(self):
        query = dns.message.make_query(PROBE, "A")
        try:
            if self.prefix:  # another namespace: no probe from here; a pause suffices
                time.sleep(0.3)
                return self.process.poll() is None
            dns.query.udp(query, HOST, timeout=0.05, port=self.port)
        except dns.exception.DNSException:
            return False  # no answer yet: the wait was the pause
        except OSError:
            time.sleep(0.05)
            return False
        return True

    def resolver(self):
        """A dnspython asyncio resolver that asks this server only."""
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [HOST]
        resolver.port = self.port
        return resolver

    def queries(self):
        """What it was asked so far, as (type, name) pairs: ("SRV", "_sip._udp.x.test");
        the start-up probe left out."""
        asked = []
        for line in self.log().splitlines():
            # dnsmasq[1234]: query[SRV] _sip._udp.x.test from 127.0.0.1
            words = line.split()
            if len(words) >= 3 and words[1].startswith("query[") and words[2] != PROBE:
                asked.append((words[1][len("query[") : -1], words[2]))
        return asked
