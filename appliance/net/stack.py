"""The asyncio side of the SIP core: sockets in, sockets out, one timer.

`SipStack` owns a core `Endpoint`, the UDP, TCP and TLS listeners of its listen specs and
the outgoing TCP and TLS connections. Bytes that arrive go to the endpoint with the loop's
clock in milliseconds; what the endpoint wants sent is sent; its events go to one handler;
its next deadline re-arms a single timer. No SIP logic lives here (STYLE.md: adapters stay
thin).
"""

import asyncio
import errno
import logging
import os
import socket

from ..errors import ApplianceError
from ..sip.endpoint import Capabilities, Datagram, Endpoint
from ..sip.stun import is_stun
from ..sip.transaction import TimerValues
from .resolver import server_name
from .tcp import HANDSHAKE_TIMEOUT, TcpConnections
from .tls import TlsContexts
from .udp import UdpListener

log = logging.getLogger(__name__)

_WILDCARDS = ("0.0.0.0", "", "::")

# Port 0 for UDP and TCP on one host gives both the port the kernel picked for the first;
# when the second has it in use, all listeners pick again, at most this many times.
SHARED_PORT_ATTEMPTS = 10


class RandomTokens:
    """Random hex strings from the OS's strong source (RFC 3261 section 19.3 wants tags
    and Call-IDs cryptographically random), read a few kilobytes at a time rather than
    one system call per tag."""

    def __init__(self, chunk=4096):
        self.chunk = chunk
        self._digits = ""
        self._pos = 0

    def __call__(self, length):
        pos = self._pos
        if pos + length > len(self._digits):
            self._digits = os.urandom(max(self.chunk, length)).hex()
            pos = 0
        self._pos = pos + length
        return self._digits[pos : pos + length]


class SipStack:
    """Moves bytes between sockets and a core Endpoint.

    `handler(event)` is called on the loop for every core event. `listen` is a sequence of
    (transport, host, port); port 0 picks a free port (see `bound`). `tls` is the [tls]
    config (certificate, key, ca) or a tls.TlsContexts; None: no certificate (no tls:
    listener), servers verified against the system's CAs. `limits` are the endpoint's (see
    sip/limits.py). Outgoing TLS needs no tls:
    listener: without one, Via names the TCP listener (see `_borrow_tls`). A TLS peer
    that has not finished its handshake after `handshake_timeout` seconds is dropped.
    """

    def __init__(self, listen, handler, capabilities=None, timers=None, user_agent=None,
                 advertise=None, tls=None, handshake_timeout=HANDSHAKE_TIMEOUT, limits=None):
        self.listen = list(listen)
        self.handler = handler
        self.advertise = advertise
        self.endpoint = Endpoint(
            {}, RandomTokens(), capabilities or Capabilities(), timers or TimerValues(),
            user_agent, limits,
        )
        self.bound = []  # (transport, host, port) actually listening
        self._udp = []
        self.tls = tls if isinstance(tls, TlsContexts) else TlsContexts.from_config(tls)
        self._tcp = TcpConnections(self)
        self._tls = TcpConnections(self, "tls", self.tls, server_name, handshake_timeout)
        self._streams = {"tcp": self._tcp, "tls": self._tls}
        self._tls_borrowed = None  # the transport whose address Via gives for TLS, if any
        self._timer = None
        self._timer_deadline = None
        self._loop = None
        self._flushing = False
        self.stun_handler = None  # called with (data, source) for STUN on UDP
        self.pong_handler = None  # called with (transport, host, port) for a CRLF pong
        self.closed_handler = None  # called with (transport, host, port) when one closes

    def now(self):
        return int(self._loop.time() * 1000)

    async def start(self):
        """Bind every listen spec; UDP and TCP of one spec with port 0 share one port."""
        self._loop = asyncio.get_running_loop()
        if self.tls.ca:
            self.tls.client()  # a CA file that cannot be loaded stops the start here
        for attempt in range(SHARED_PORT_ATTEMPTS):
            if await self._bind(last=attempt == SHARED_PORT_ATTEMPTS - 1):
                self._borrow_tls()
                return
            await self._unbind()

    async def _bind(self, last):
        """Bind the listen specs; False when a port picked for one transport is in use
        for the other (an outgoing TCP connection may hold it), so all must pick again."""
        chosen = {}
        for transport, host, port in self.listen:
            # TLS is TCP too: it cannot share the TCP listener's port.
            shared = port == 0 and host in chosen and transport != "tls"
            if shared:
                port = chosen[host]
            try:
                if transport == "udp":
                    listener = await UdpListener.open(self, host, port)
                    self._udp.append(listener)
                    port = listener.port
                elif transport in self._streams:
                    port = await self._streams[transport].listen(host, port)
                else:
                    raise ApplianceError(
                        "listening on %s:%s:%d: this version serves udp, tcp and tls only"
                        % (transport, host, port)
                    )
            except OSError as error:
                if shared and not last and error.errno == errno.EADDRINUSE:
                    return False
                raise
            if transport != "tls":
                chosen.setdefault(host, port)
            self.bound.append((transport, host, port))
            local_host = self.advertise or _advertised_host(host)
            self.endpoint.local.setdefault(transport, (local_host, port))
            log.debug("listening on %s:%s:%d", transport, host, port)
        return True

    async def _unbind(self):
        for listener in self._udp:
            listener.close()
        self._udp = []
        for streams in self._streams.values():
            for server in streams.servers:
                server.close()
                await server.wait_closed()
            streams.servers = []
        self.bound = []
        self.endpoint.local = {}
        self._tls_borrowed = None

    def _borrow_tls(self):
        """Without a tls: listener, requests still go out over TLS (a client needs no
        certificate): their Via gives the TCP listener's address (else the UDP one's). A
        peer replies on the connection the request went on; should that close, its
        attempt to reach the Via's port fails, as it would for any address it cannot
        reach."""
        local = self.endpoint.local
        if "tls" in local:
            return
        for transport in ("tcp", "udp"):
            if transport in local:
                local["tls"] = local[transport]
                self._tls_borrowed = transport
                return

    async def close(self):
        if self._timer is not None:
            self._timer.cancel()
        for listener in self._udp:
            listener.close()
        for streams in self._streams.values():
            await streams.close()

    # -- in ------------------------------------------------------------------------------

    def receive(self, data, transport, source):
        if data[:1] in (b"\x00", b"\x01") and self.stun_handler is not None \
                and is_stun(data):
            self.stun_handler(data, source)  # STUN shares the SIP socket (RFC 5626 4.4.2)
            return
        try:
            self.endpoint.receive(data, transport, source, self.now())
        except Exception:
            # The core answers or drops bad input itself; reaching here is a bug in it.
            # One message is lost, the agent carries on.
            log.exception("internal error on a message from %s:%s", source[0], source[1])
        self.flush()

    def connection_lost(self, transport, host, port):
        """A stream connection closed (the core decides what that means for its
        transactions)."""
        self.endpoint.connection_closed(transport, host, port, self.now())
        self.flush()
        if self.closed_handler is not None:
            self.closed_handler(transport, host, port)

    def pong_received(self, transport, host, port):
        if self.pong_handler is not None:
            self.pong_handler(transport, host, port)

    def send_failed(self, transport, host, port):
        """Bytes for (transport, host, port) could not be delivered."""
        self.endpoint.transport_error(transport, host, port, self.now())
        self.flush()

    # -- out -----------------------------------------------------------------------------

    def send_request(self, request, destination):
        transaction = self.endpoint.send_request(request, destination, self.now())
        self.flush()
        return transaction

    def respond(self, transaction, status, reason=None, fields=(), body=b"", to_tag=None,
                stateless=False):
        response = self.endpoint.respond(
            transaction, status, reason, fields, body, to_tag, self.now(), stateless
        )
        self.flush()
        return response

    def send_cancel(self, invite):
        """CANCEL the INVITE of client transaction `invite`; its transaction, or None when
        there is nothing left to cancel."""
        transaction = self.endpoint.send_cancel(invite, invite.destination, self.now())
        self.flush()
        return transaction

    def resend_2xx(self, transaction):
        """Send an INVITE's 2xx again (the TU's retransmission until the ACK); False once
        its transaction has ended."""
        sent = self.endpoint.resend_2xx(transaction)
        self.flush()
        return sent

    def send_keepalive(self, data, transport, host, port):
        """Keep-alive bytes (RFC 5626 section 4.4) on the flow to a peer. On a stream the
        flow is the open connection, never a new one: False when there is none. A stream
        ping awaits its pong (see `pong_handler`)."""
        if transport == "udp":
            self.send_raw(data, transport, host, port)
            return True
        streams = self._streams.get(transport)
        connection = streams and streams.connections.get((host.strip("[]"), port))
        if connection is None:
            return False
        connection.parser.pong_expected = True
        connection.send(data)
        return True

    def keep_flow(self, transport, host, port, keep=True):
        """Keep the stream connection to a peer open while idle (the flow to the registrar,
        on which requests for the devices come in)."""
        streams = self._streams.get(transport)
        if streams is not None:
            key = (host.strip("[]"), port)
            if keep:
                streams.kept.add(key)
            else:
                streams.kept.discard(key)

    def close_flow(self, transport, host, port):
        """Close the stream connection to a peer (a flow that failed): what was sent on it
        fails now, and what is sent to that peer next goes on a new connection."""
        streams = self._streams.get(transport)
        if streams is not None and streams.drop((host.strip("[]"), port)):
            self.endpoint.connection_closed(transport, host, port, self.now())
            self.flush()

    def families(self):
        """The address families this stack can send from, as its listeners show."""
        families = set()
        for _, host, _ in self.bound:
            if host in ("", "::") or ":" in host:
                families.add(socket.AF_INET6)
            if host in ("", "0.0.0.0") or ":" not in host:
                families.add(socket.AF_INET)
        return tuple(sorted(families))

    def local_host_toward(self, transport, host):
        """The address requests over `transport` to `host` come from (bare, IPv6 without
        brackets): the listener's own, or for a wildcard listener the one the routing
        table picks (no packet is sent); None when there is no route."""
        if self.advertise:
            return self.advertise.strip("[]")
        if transport == "tls" and self._tls_borrowed:
            transport = self._tls_borrowed
        for bound_transport, bound_host, _ in self.bound:
            if bound_transport == transport and bound_host not in _WILDCARDS:
                return bound_host.strip("[]")
        return _route_source(host)

    def set_local_host(self, host):
        """Advertise `host` in Via for the listeners bound to a wildcard address: the
        machine's address changed."""
        if self.advertise:
            return
        host = host.strip("[]")
        for transport, bound_host, port in self.bound:
            if bound_host in _WILDCARDS and (":" in host) == (bound_host == "::"):
                self.endpoint.local[transport] = (host if ":" not in host else "[%s]" % host,
                                                  port)
        if self._tls_borrowed:
            self.endpoint.local["tls"] = self.endpoint.local[self._tls_borrowed]

    def send_raw(self, data, transport, host, port):
        """Bytes that are not SIP (keep-alives, STUN) from the SIP socket."""
        self._send(Datagram(data, transport, host, port))

    def flush(self):
        """Send what the endpoint queued, hand out its events, re-arm the timer."""
        if self._flushing:
            return  # a handler called back in; the outer loop picks the rest up
        self._flushing = True
        endpoint = self.endpoint
        try:
            while True:
                datagrams = endpoint.datagrams_to_send()
                for datagram in datagrams:
                    self._send(datagram)
                event = endpoint.next_event()
                if event is None and not datagrams:
                    break
                if event is not None:
                    try:
                        self.handler(event)
                    except Exception:
                        log.exception("event handler failed on %s", type(event).__name__)
        finally:
            self._flushing = False
        self._arm_timer()

    def _send(self, datagram):
        if datagram.transport == "udp":
            listener = self._udp_for(datagram.host)
            if listener is None:
                log.warning("no UDP socket for %s", datagram.host)
                return
            listener.send(datagram.data, datagram.host, datagram.port)
        elif datagram.transport in self._streams:
            self._streams[datagram.transport].send(datagram)
        else:
            log.warning("cannot send over %s", datagram.transport)

    def _udp_for(self, host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for listener in self._udp:
            if listener.family == family:
                return listener
        return self._udp[0] if self._udp else None

    def _arm_timer(self):
        deadline = self.endpoint.get_timer()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline / 1000.0, self._on_timer)

    def _on_timer(self):
        self._timer = None
        self._timer_deadline = None
        self.endpoint.handle_timer(self.now())
        self.flush()


def _advertised_host(host):
    """The address to put in Via and Contact for a listener on `host`."""
    if host in ("0.0.0.0", ""):
        return _primary_address(socket.AF_INET) or "127.0.0.1"
    if host == "::":
        return "[%s]" % (_primary_address(socket.AF_INET6) or "::1")
    if ":" in host and not host.startswith("["):
        return "[%s]" % host
    return host


def _primary_address(family):
    """The address of the interface the default route uses (no packet is sent)."""
    return _route_source("192.0.2.1" if family == socket.AF_INET else "2001:db8::1")


def _route_source(host):
    """The source address the routing table picks toward `host`, or None."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((host, 9))
            return sock.getsockname()[0]
    except OSError:
        return None


def format_address(address):
    """(transport, host, port) as one would write it: "udp:[2001:db8::1]:5060"."""
    transport, host, port = address[0], address[1], address[2]
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "%s:%s:%d" % (transport, host, port)
