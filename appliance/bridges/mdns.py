"""mDNS (python-zeroconf, its asyncio API): every device announced on the LAN, and devices
found by name.

Each device is a service instance of `_sip._udp.local.` and `_sip._tcp.local.` (one per
transport the agent listens on), named after the device (`frontdoor`; "frontdoor-2" if
another agent on the LAN has one: its URI keeps the name), on the agent's host
`NAME.local.` and port, with TXT records: `uri` (sip:frontdoor@NAME.local:5060), `type`,
`methods`, `events` (the event packages it serves), `agent` and `version`. A reload
updates them; a stop withdraws them (goodbye packets); new addresses (Wi-Fi up after the
agent, a new lease) are announced again. Where mDNS cannot start (no multicast-capable
interface), the agent logs one warning and runs without it.

`browse()` and `find()` are the client side, for `appliance discover` and for client
commands given a bare device name.
"""

import asyncio
import ipaddress
import logging

from .. import __version__
from ..errors import ApplianceError

log = logging.getLogger(__name__)

TYPES = {"udp": "_sip._udp.local.", "tcp": "_sip._tcp.local."}
ADDRESS_CHECK = 15.0  # seconds between looks at the machine's addresses
# Interfaces not on the home's LAN: loopback, container and VM bridges, their veths.
VIRTUAL = ("lo", "docker", "br-", "veth", "virbr", "vmnet", "cni", "flannel")


def _zeroconf():
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    return IPVersion, AsyncZeroconf, AsyncServiceInfo, AsyncServiceBrowser


def _ip_version(name):
    IPVersion = _zeroconf()[0]
    return {"v4": IPVersion.V4Only, "v6": IPVersion.V6Only, "all": IPVersion.All}[name]


class Mdns:
    def __init__(self, config, agent_name, bound, methods_of, events_of):
        """`config` is [mdns]; `bound` the agent's (transport, host, port) listeners;
        `methods_of(spec)` and `events_of(spec)` what a device serves."""
        self.config = config
        self.host = _label(agent_name)  # NAME of NAME.local.
        self.bound = list(bound)
        self.methods_of = methods_of
        self.events_of = events_of
        self.zeroconf = None
        self.infos = {}  # (device name, transport) -> registered ServiceInfo
        self.error = None
        self.specs = []
        self.addresses = []  # what was announced on
        self._task = None
        self._watch = None
        self._loop = None
        self._lock = asyncio.Lock()

    @property
    def server(self):
        return self.host + ".local."

    async def start(self, specs):
        _, AsyncZeroconf, _, _ = _zeroconf()
        interfaces = list(self.config.interfaces) or None
        self.specs = list(specs)
        self._loop = asyncio.get_running_loop()
        try:
            kwargs = {"ip_version": _ip_version(self.config.ip_version)}
            if interfaces:
                kwargs["interfaces"] = interfaces
            self.zeroconf = AsyncZeroconf(**kwargs)
        except (OSError, ValueError, RuntimeError) as error:
            self.error = str(error)
            log.warning("mDNS cannot start (%s); the devices are not announced on the LAN",
                        error)
            return
        self.addresses = self._addresses()
        # Announcing probes the LAN first (RFC 6762: about 1.75 s): in the background.
        self._task = self._loop.create_task(self.update(specs))
        self._watch = self._loop.call_later(ADDRESS_CHECK, self._check_addresses)

    def _check_addresses(self):
        """The machine's addresses, every ADDRESS_CHECK s: a Pi whose Wi-Fi came up after
        the agent (or got a new lease) is announced again, on what it has now."""
        self._watch = self._loop.call_later(ADDRESS_CHECK, self._check_addresses)
        addresses = self._addresses()
        if addresses != self.addresses and not self.config.interfaces:
            log.info("mDNS: the addresses are now %s; announcing again",
                     ", ".join(addresses) or "none")
            self._loop.create_task(self._restart())

    async def _restart(self):
        specs = self.specs
        await self.close()
        await self.start(specs)

    async def update(self, specs):
        """Announce the devices of `specs`; withdraw those announced that are not."""
        self.specs = list(specs)
        if self.zeroconf is None:
            return
        async with self._lock:  # one at a time: a reload waits for the probes under way
            await self._update(specs)

    async def _update(self, specs):
        wanted = {}
        for spec in specs:
            for transport, _, port in self.bound:
                if transport in TYPES:
                    wanted[(spec.name, transport)] = self._info(spec, transport, port)
        calls = []
        for key in [k for k in self.infos if k not in wanted]:
            calls.append(self._call("unregister", key, self.infos.pop(key)))
        for key, info in wanted.items():
            old = self.infos.get(key)
            if old is None:
                calls.append(self._call("register", key, info))
            elif old.properties != info.properties or old.port != info.port:
                info.name = old.name  # keep a name changed to avoid a conflict
                calls.append(self._call("update", key, info))
        await asyncio.gather(*calls)  # the probes run side by side

    async def close(self):
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.zeroconf is None:
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.infos = {}
        try:
            await self.zeroconf.async_unregister_all_services()  # goodbye packets
        except Exception as error:  # the network went first: nothing to say goodbye on
            log.debug("mDNS goodbye: %s", error)
        await self.zeroconf.async_close()
        self.zeroconf = None

    def status(self):
        return {"host": self.server.rstrip("."), "announced": sorted(
            "%s (%s)" % (info.name.split(".")[0], transport)
            for (_, transport), info in self.infos.items()), "error": self.error}

    # -- inside ------------------------------------------------------------------------------

    def _info(self, spec, transport, port):
        _, _, AsyncServiceInfo, _ = _zeroconf()
        uri = "sip:%s@%s.local:%d%s" % (spec.name, self.host, port,
                                        "" if transport == "udp" else ";transport=tcp")
        properties = {"uri": uri, "type": spec.type, "methods": ",".join(self.methods_of(spec)),
                      "events": ",".join(self.events_of(spec)), "agent": self.host,
                      "version": __version__}
        return AsyncServiceInfo(TYPES[transport], "%s.%s" % (spec.name, TYPES[transport]),
                                port=port, properties=properties, server=self.server,
                                parsed_addresses=self._addresses())

    def _addresses(self):
        """What to announce: the listen addresses, else those of the LAN interfaces (not
        loopback, link-local, nor a container or VM bridge, which a phone cannot reach)."""
        if self.config.interfaces:
            return list(self.config.interfaces)
        hosts = {host for _, host, _ in self.bound}
        if hosts - {"0.0.0.0", "::", ""}:
            return sorted(hosts - {"0.0.0.0", "::", ""})
        import ifaddr  # zeroconf's own dependency

        v4 = self.config.ip_version in ("v4", "all")
        v6 = self.config.ip_version in ("v6", "all")
        addresses = []
        for adapter in ifaddr.get_adapters():
            if adapter.nice_name.startswith(VIRTUAL):
                continue
            for ip in adapter.ips:
                address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                if (v4 if isinstance(ip.ip, str) else v6) and _usable(address):
                    addresses.append(address)
        return addresses

    async def _call(self, what, key, info):
        """Register, update or unregister `info`; `infos` holds it once it is announced."""
        zeroconf = self.zeroconf
        try:
            if what == "register":
                waiting = await zeroconf.async_register_service(info, allow_name_change=True)
            elif what == "update":
                waiting = await zeroconf.async_update_service(info)
            else:
                waiting = await zeroconf.async_unregister_service(info)
            await waiting
        except Exception as error:  # one device not announced is no reason to stop
            log.warning("mDNS: cannot %s %s: %s", what, info.name, error)
            return
        if what != "unregister":
            self.infos[key] = info


# -- the client side ---------------------------------------------------------------------


async def browse(timeout=3.0, ip_version="v4"):
    """The devices announced on the LAN within `timeout` seconds: dicts with name, agent,
    type, uri, host, addresses, port, transport."""
    _, AsyncZeroconf, AsyncServiceInfo, AsyncServiceBrowser = _zeroconf()
    zeroconf = _client(AsyncZeroconf, ip_version)
    names = set()

    def changed(zeroconf, service_type, name, state_change):
        names.add((service_type, name))

    browser = AsyncServiceBrowser(zeroconf.zeroconf, list(TYPES.values()),
                                  handlers=[changed])
    try:
        await asyncio.sleep(timeout)
        found = []
        for service_type, name in sorted(names):
            info = AsyncServiceInfo(service_type, name)
            if await info.async_request(zeroconf.zeroconf, 1500):
                found.append(_entry(info))
        return found
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()


async def find(name, timeout=3.0, ip_version="v4"):
    """The SIP URI of device `name` on the LAN (its UDP instance first), or None."""
    _, AsyncZeroconf, AsyncServiceInfo, _ = _zeroconf()
    zeroconf = _client(AsyncZeroconf, ip_version)
    try:
        for transport in ("udp", "tcp"):
            info = AsyncServiceInfo(TYPES[transport], "%s.%s" % (name, TYPES[transport]))
            if await info.async_request(zeroconf.zeroconf, int(timeout * 1000)):
                entry = _entry(info)
                if entry["addresses"]:
                    return "sip:%s@%s:%d%s" % (name, _literal(entry["addresses"][0]),
                                               entry["port"], "" if transport == "udp"
                                               else ";transport=tcp")
        return None
    finally:
        await zeroconf.async_close()


def _client(AsyncZeroconf, ip_version):
    try:
        return AsyncZeroconf(ip_version=_ip_version(ip_version))
    except (OSError, ValueError, RuntimeError) as error:
        raise ApplianceError("cannot use mDNS here (%s): no multicast-capable network "
                             "interface?" % error) from None


def _entry(info):
    properties = {key.decode(): (value or b"").decode() for key, value in
                  (info.properties or {}).items()}
    uri = properties.get("uri") or ""
    # The device's name from its URI: the instance may be "porch-2" after a clash.
    name = uri[4:].split("@")[0] if uri.startswith("sip:") and "@" in uri \
        else info.name.split(".")[0]
    return {"name": name, "agent": properties.get("agent"),
            "type": properties.get("type"), "uri": uri or None,
            "methods": properties.get("methods"), "events": properties.get("events"),
            "host": (info.server or "").rstrip("."), "addresses": info.parsed_addresses(),
            "port": info.port,
            "transport": "tcp" if info.type.startswith("_sip._tcp") else "udp"}


def _usable(address):
    parsed = ipaddress.ip_address(address)
    return not (parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified)


def _literal(address):
    return "[%s]" % address if ":" in address else address


def _label(name):
    """A DNS label from the agent's name: letters, digits and hyphens."""
    label = "".join(c if c.isalnum() or c == "-" else "-" for c in name.lower()).strip("-")
    return label or "sip-appliance"
