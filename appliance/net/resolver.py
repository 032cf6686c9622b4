"""Where a SIP URI's requests go: the (transport, address, port) targets to try, best first.

`locate(uri)` follows RFC 3263. A numeric host needs no DNS; a host with a port needs only
its addresses; a transport parameter alone asks for that transport's SRV records; a bare
domain asks for NAPTR records first (which transports the domain offers, in its order of
preference), then for SRV records, then for addresses, and takes the first step that
gives any. SRV records are tried by priority, and within a priority in a weighted random
order (RFC 2782). A server's addresses come from the SRV answer when it carries them, else
from A and AAAA queries, else from the system (getaddrinfo), which also knows /etc/hosts
and mDNS names. `resolve(uri)` is the first target, for callers that try only one.

DNS goes through dnspython's asyncio resolver, set up from /etc/resolv.conf and set up
again when that file changes (DHCP rewrites it). A system with no DNS server configured
uses getaddrinfo alone.

A TLS target's server must prove the host of the URI that led to it (RFC 5922 section
4.1), not the address it resolved to: `locate()` notes that host for each TLS target it
returns, and `server_name(address, port)` gives it to the connection that opens.
"""

import asyncio
import bisect
import collections
import ipaddress
import itertools
import os
import random
import socket

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from ..errors import ApplianceError

TRANSPORTS = ("udp", "tcp")
FAMILIES = (socket.AF_INET, socket.AF_INET6)
LIFETIME = 5.0  # seconds one DNS query may take, retries included
RESOLV_CONF = "/etc/resolv.conf"

_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
# RFC 3263 section 4.1: the SRV names and NAPTR services of each transport, in the order
# a sip: URI tries them when the domain has no NAPTR records.
_SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
_NAPTR_SERVICES = {b"SIP+D2U": "udp", b"SIP+D2T": "tcp", b"SIPS+D2T": "tls"}
_RDTYPES = {socket.AF_INET: dns.rdatatype.A, socket.AF_INET6: dns.rdatatype.AAAA}

# One place to send to: "udp", "tcp" or "tls"; an IP address (IPv6 without brackets); a port.
Target = collections.namedtuple("Target", "transport host port")

# (address, port) of a TLS target -> the host its certificate must name, most recent last.
_server_names = collections.OrderedDict()
SERVER_NAMES = 256  # kept at most: the oldest is forgotten first


class ResolveError(ApplianceError):
    """A SIP URI leads to no target this agent can send to."""


async def resolve(uri, transports=TRANSPORTS, families=FAMILIES, resolver=None):
    """The first of `locate(uri)`'s targets, as a plain (transport, address, port) tuple."""
    targets = await locate(uri, transports, families, resolver)
    return tuple(targets[0])


async def locate(
    uri, transports=TRANSPORTS, families=FAMILIES, resolver=None, random=random.random
):
    """The targets for requests to `uri`, in the order to try them (RFC 3263 section 4.3).

    `transports` are those the caller can send over ("udp", "tcp", "tls"), `families` the
    address families it can send from, in its order of preference. `resolver` is a
    dns.asyncresolver.Resolver (by default the system's); `random()`, in [0, 1), draws
    among SRV records of one priority. Raises ResolveError when no target fits.
    """
    name = uri.param("maddr") or uri.host  # as written, for messages
    host = name.strip("[]")
    transport = _transport_param(uri, name, transports)
    default = transport or ("tls" if uri.secure else "udp")
    if resolver is None:
        resolver = _system_resolver()  # still None when the system has no DNS server
    lookup = _Lookup(resolver, families, random)

    if _is_address(host):
        if _family(host) not in families:
            version = "IPv6" if _family(host) == socket.AF_INET6 else "IPv4"
            raise ResolveError("cannot reach %s: %s is not available" % (name, version))
        return _noted([Target(default, host, uri.port or _PORTS[default])], host)
    if uri.port is not None:
        looked_for = "address"
        targets = await lookup.targets(default, host, uri.port)
    elif transport is not None:
        looked_for = "SRV or address"
        targets = await lookup.srv(
            transport, _SRV_PREFIXES[transport] + host
        ) or await lookup.targets(transport, host, _PORTS[transport])
    else:
        looked_for = "NAPTR, SRV or address"
        # A sip: URI may go over TLS too, where the domain offers it; a sips: URI only so.
        usable = ["tls"] if uri.secure else [t for t in _SRV_PREFIXES if t in transports]
        targets = (
            await lookup.naptr(host, usable)
            or await lookup.srv_each(usable, host)
            or await lookup.targets(default, host, _PORTS[default])
        )
    if not targets:
        raise ResolveError("cannot resolve %s: %s" % (name, lookup.reason(looked_for)))
    return _noted(list(dict.fromkeys(targets)), host)


def server_name(address, port):
    """The host a TLS server at `address`:`port` must name in its certificate: that of the
    URI last located there, else the address itself (a Via's sent-by, a URI with an IP)."""
    return _server_names.get((address.strip("[]"), port), address.strip("[]"))


def _noted(targets, host):
    """`targets`, with `host` noted as the name each TLS one must prove (server_name)."""
    for target in targets:
        if target.transport == "tls":
            key = (target.host, target.port)
            _server_names.pop(key, None)
            _server_names[key] = host.rstrip(".")
            if len(_server_names) > SERVER_NAMES:
                _server_names.popitem(last=False)
    return targets


def _transport_param(uri, name, transports):
    """The transport the URI's transport parameter asks for, or None when it has none.
    Raises ResolveError when the caller cannot send over what the URI needs."""
    value = uri.param("transport")
    if uri.secure and "tls" not in transports:
        raise ResolveError("cannot reach %s: a sips: URI needs TLS, which is not available" % name)
    if not value:
        return None
    transport = value.lower()
    if uri.secure and transport == "tcp":
        transport = "tls"  # sips: over TCP means TLS over TCP (RFC 3263 section 4.1)
    if uri.secure and transport != "tls":
        raise ResolveError("cannot reach %s: a sips: URI cannot go over %s" % (name, value))
    if transport not in transports:
        raise ResolveError(
            "cannot reach %s: transport=%s needs %s, which is not available"
            % (name, value, transport.upper())
        )
    return transport


def _is_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class _Lookup:
    """The DNS queries of one `locate()`, and what went wrong with them, for its error."""

    def __init__(self, resolver, families, random):
        self.resolver = resolver  # None: no DNS configured, getaddrinfo only
        self.families = families
        self.random = random
        self.dns_failure = None  # why a query got no answer (timeout, server failure)
        self.system_failure = None  # why getaddrinfo found nothing

    def reason(self, looked_for):
        if self.dns_failure:
            return self.dns_failure
        if self.resolver is None and self.system_failure:
            return self.system_failure
        return "no %s records" % looked_for

    async def naptr(self, host, transports):
        """Targets of the domain's NAPTR records for `transports`, by order and preference."""
        answer = await self._query(host, dns.rdatatype.NAPTR)
        records = []
        for record in answer:
            transport = _NAPTR_SERVICES.get(record.service.upper())
            if (
                record.flags.lower() == b"s"
                and transport in transports
                and record.replacement != dns.name.root
            ):
                records.append((record.order, record.preference, transport, record.replacement))
        records.sort(key=lambda item: item[:2])  # sort is stable: ties keep the DNS order
        found = await asyncio.gather(
            *(self.srv(transport, str(name)) for _, _, transport, name in records)
        )
        return [target for targets in found for target in targets]

    async def srv_each(self, transports, host):
        """Targets of the SRV records for each of `transports` of `host`, in that order."""
        found = await asyncio.gather(
            *(self.srv(transport, _SRV_PREFIXES[transport] + host) for transport in transports)
        )
        return [target for targets in found for target in targets]

    async def srv(self, transport, name):
        """Targets of the SRV records at `name` (such as _sip._udp.example.net)."""
        answer = await self._query(name, dns.rdatatype.SRV)
        records = [record for record in answer if record.target != dns.name.root]
        # The answer may carry the servers' addresses: no need to ask for them again.
        carried = {}
        if answer.response is not None:
            for rrset in answer.response.additional:
                carried[rrset.name.to_text(omit_final_dot=True).lower(), rrset.rdtype] = rrset
        ordered = _srv_order(records, self.random)
        found = await asyncio.gather(
            *(
                self.addresses(record.target.to_text(omit_final_dot=True), carried)
                for record in ordered
            )
        )
        return [
            Target(transport, address, record.port)
            for record, addresses in zip(ordered, found, strict=True)
            for address in addresses
        ]

    async def targets(self, transport, host, port):
        return [Target(transport, address, port) for address in await self.addresses(host)]

    async def addresses(self, host, carried=None):
        """`host`'s addresses of our families, in their order: from DNS, else the system;
        a `.local` name from multicast DNS (RFC 6762), which few systems resolve."""
        if host.lower().rstrip(".").endswith(".local"):
            found = await _mdns_addresses(host, self.families)
            if found:
                return found
        found = []
        for family in self.families:
            rdtype = _RDTYPES[family]
            records = carried.get((host.lower(), rdtype)) if carried else None
            if records is None:
                records = await self._query(host, rdtype)
            found += [record.address for record in records]
        return found or await self._system_addresses(host)

    async def _query(self, name, rdtype):
        """The answer to one DNS query: empty when there is none, for whatever reason."""
        if self.resolver is None:
            return _NO_ANSWER
        try:
            return await self.resolver.resolve(
                name, rdtype, lifetime=LIFETIME, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            pass
        except dns.exception.Timeout:
            self.dns_failure = "no answer from DNS within %g s" % LIFETIME
        except dns.resolver.NoNameservers:
            self.dns_failure = "the DNS servers failed to answer"
        except dns.exception.DNSException as error:
            self.dns_failure = "DNS lookup failed: %s" % error
        return _NO_ANSWER

    async def _system_addresses(self, host):
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), LIFETIME
            )
        except socket.gaierror as error:
            self.system_failure = error.strerror
            return []
        except UnicodeError:  # a label too long for IDNA
            self.system_failure = "not a valid host name"
            return []
        except TimeoutError:
            self.system_failure = "no answer from the system resolver within %g s" % LIFETIME
            return []
        return [info[4][0] for family in self.families for info in infos if info[0] == family]


async def _mdns_addresses(host, families):
    """`host` (NAME.local) asked of the LAN over mDNS, for LIFETIME seconds at most."""
    try:
        from zeroconf import AddressResolver, IPVersion
        from zeroconf.asyncio import AsyncZeroconf
    except ImportError:
        return []
    name = host.rstrip(".") + "."
    try:
        zeroconf = AsyncZeroconf(ip_version=IPVersion.All if socket.AF_INET6 in families
                                 else IPVersion.V4Only)
    except (OSError, ValueError, RuntimeError):
        return []  # no multicast here: the system may still know the name
    try:
        resolver = AddressResolver(name)
        if not await resolver.async_request(zeroconf.zeroconf, int(LIFETIME * 1000)):
            return []
        return [address for family in families for address in resolver.parsed_addresses()
                if _family(address) == family]
    finally:
        await zeroconf.async_close()


class _NoAnswer:
    """What a query that got nothing gives: iterates as no records, carries no message."""

    response = None

    def __iter__(self):
        return iter(())


_NO_ANSWER = _NoAnswer()


def _srv_order(records, random):
    """SRV records in the order to try them (RFC 2782): by priority, and within a priority
    by repeated draws, each record's chance in proportion to its weight (weight 0: only
    when the draw is 0)."""
    ordered = []
    for priority in sorted({record.priority for record in records}):
        # Lightest first, so that weight-0 records lead as RFC 2782 asks; the target and
        # port settle ties, so that the draws alone decide, whatever the DNS order.
        group = sorted(
            (record for record in records if record.priority == priority),
            key=lambda record: (record.weight, record.target, record.port),
        )
        while group:
            sums = list(itertools.accumulate(record.weight for record in group))
            draw = int(random() * (sums[-1] + 1))  # 0 to the sum of the weights
            ordered.append(group.pop(bisect.bisect_left(sums, draw)))  # first sum >= draw
    return ordered


_system_cache = (None, None)  # (/etc/resolv.conf's modification time, its Resolver or None)


def _system_resolver():
    """The Resolver of the system's configuration; None when there is no DNS server."""
    global _system_cache
    try:
        stamp = os.stat(RESOLV_CONF).st_mtime_ns
    except OSError:
        return None
    if _system_cache[0] != stamp:
        try:
            _system_cache = (stamp, dns.asyncresolver.Resolver(RESOLV_CONF))
        except dns.resolver.NoResolverConfiguration:
            _system_cache = (stamp, None)
    return _system_cache[1]
