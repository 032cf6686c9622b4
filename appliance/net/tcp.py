"""TCP and TLS for SIP: one listener per address, connections reused per peer and closed
when idle.

Each connection frames messages with the core's `StreamParser`; a peer that sends bytes
that cannot be framed is disconnected, the rest carry on.

Connections are bounded: MAX_CONNECTIONS per transport in all, of which MAX_ACCEPTED may be
accepted ones (the rest stay free for connections we open, to the registrar or a target),
and MAX_PER_SOURCE accepted from one peer address, so that one host cannot take every
slot. A refused
connection is aborted at once and logged at most once per REFUSAL_LOG_INTERVAL per
source, with how many were refused since, so a flood does not flood the log too.

TLS (RFC 3261 section 26.2) is the same connections with ssl contexts (see tls.py): a
connection is accepted or opened as TCP, counted against MAX_CONNECTIONS at once, and
then upgraded with `loop.start_tls`. Only a finished handshake makes it a connection that
messages go in and out of; a peer that has not finished its handshake within
HANDSHAKE_TIMEOUT, that speaks something other than TLS, or whose certificate does not
verify, is logged and dropped.

A connection we open over TLS is verified for one server name (resolver.server_name: the
host of the URI that led to the address), and is reused only for messages to that name:
a request to another name served at the same address and port opens a connection of its
own, verified for that name. Accepted connections are reused for whatever goes to the
peer's address, as over TCP (responses go back on them).
"""

import asyncio
import collections
import logging
import socket

from ..sip.errors import ParseError
from ..sip.message import StreamParser
from .tls import handshake_failure

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0  # seconds without traffic before a connection is closed
MAX_MESSAGE = 65536
MAX_CONNECTIONS = 256  # a home appliance's worth; more are refused, so memory stays bounded
# Of those, the ones accepted: the rest are kept for connections we open (to the registrar,
# an alert's target, a call), which peers filling the table must not lock out.
MAX_ACCEPTED = MAX_CONNECTIONS - 16
MAX_PER_SOURCE = 32  # accepted from one peer address (ours to others are not counted)
REFUSAL_LOG_INTERVAL = 10.0  # seconds: at most one log line per source about refusals
MAX_UNSENT = 1 << 20  # bytes queued for a peer that does not read before it is cut off
CONNECT_TIMEOUT = 10.0  # seconds for an outgoing connection to be accepted
HANDSHAKE_TIMEOUT = 10.0  # seconds for a TLS handshake, either side
SHUTDOWN_TIMEOUT = 5.0  # seconds a closing TLS connection waits for the peer's close_notify


class TcpConnection(asyncio.Protocol):
    def __init__(self, owner, server_name=None, outgoing=False):
        """`outgoing`: a connection we open (else one a listener accepted); `server_name`:
        for an outgoing TLS connection, the name the server's certificate must carry."""
        self.owner = owner
        self.outgoing = outgoing
        self.transport = None
        self.peer = None
        self.source = None  # the peer address counted against MAX_PER_SOURCE, if it is
        self.parser = StreamParser(MAX_MESSAGE)
        self.last_used = 0.0
        self.server_name = server_name
        self.handshake = None  # TLS: the task upgrading the connection; True once it did
        self.secured = False  # TLS: start_tls has handed over the TLS transport
        self.closed = False
        self._early = []  # TLS: what came with the end of the handshake, before that

    def connection_made(self, transport):
        owner = self.owner
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        if not owner.admit(self):
            transport.abort()
            self.peer = None
            return
        self.touch()
        if owner.tls is None:
            owner.connections[self.peer] = self
        else:
            # Nothing is read until start_tls takes the connection over: its first bytes
            # are the handshake's, not SIP.
            transport.pause_reading()
            owner.handshaking.add(self)
            self.handshake = asyncio.get_running_loop().create_task(self._secure())

    async def _secure(self):
        """Upgrade to TLS; True when it worked, else the connection is closed (and logged)."""
        owner = self.owner
        server_side = not self.outgoing
        try:
            context = owner.tls.server() if server_side else owner.tls.client()
            transport = await asyncio.get_running_loop().start_tls(
                self.transport, self, context, server_side=server_side,
                server_hostname=self.server_name,
                ssl_handshake_timeout=owner.handshake_timeout,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError; TlsError isn't
            self._handshake_failed(handshake_failure(error, owner.handshake_timeout))
            return False
        except Exception as error:  # TlsError: the context could not be made
            self._handshake_failed(str(error))
            return False
        finally:
            owner.handshaking.discard(self)
        if transport is None or self.closed:
            return False  # closed by the peer as soon as the handshake was done
        self.transport = transport
        self.secured = True
        self.touch()
        owner.connections[self.peer] = self
        if self.outgoing:
            owner.verified[self.flow()] = self
        early, self._early = b"".join(self._early), []
        if early:
            self.data_received(early)
        return True

    def _handshake_failed(self, reason):
        if self.transport is not None:
            self.transport.abort()
        if not self.outgoing:
            log.info("TLS handshake with %s:%d failed: %s", self.peer[0], self.peer[1], reason)
        else:
            log.warning("TLS connection to %s (%s:%d) failed: %s", self.server_name,
                        self.peer[0], self.peer[1], reason)

    # A peer that sends but does not read fills our send buffer: stop reading from it
    # until it catches up (asyncio flow control), and cut it off past MAX_UNSENT.
    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def touch(self):
        self.last_used = asyncio.get_running_loop().time()

    def flow(self):
        """(host, port, server name) of an outgoing TLS connection."""
        return (self.peer[0], self.peer[1], self.server_name)

    def data_received(self, data):
        if self.handshake is not None and not self.secured:
            # The TLS layer hands over what followed the handshake before start_tls
            # returns: keep it until the connection is ours to answer on.
            self._early.append(data)
            return
        self.touch()
        owner = self.owner
        if self.outgoing and owner.connections.get(self.peer) is not self:
            # Of our connections to one server (one per name), the one it spoke on last is
            # where the responses to what it sent go.
            owner.connections[self.peer] = self
        try:
            items = self.parser.feed(data)
        except ParseError as error:
            log.info("closing %s connection from %s:%d: %s", self.owner.label, self.peer[0],
                     self.peer[1], error.reason)
            self.transport.close()
            return
        stack, transport = self.owner.stack, self.owner.transport
        for item in items:
            if item == StreamParser.PING:
                self.send(b"\r\n")  # RFC 5626 pong
            elif item == StreamParser.PONG:
                stack.pong_received(transport, self.peer[0], self.peer[1])
            else:
                stack.receive(item, transport, self.peer)
        if self.parser.error is not None:
            # What came before the fault is answered (the answers go out before the close).
            log.info("closing %s connection from %s:%d: %s", self.owner.label, self.peer[0],
                     self.peer[1], self.parser.error.reason)
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        owner = self.owner
        owner.handshaking.discard(self)
        if self.source is not None:
            owner.release(self.source)
            self.source = None
        if self.peer is None:
            return
        if self.outgoing and owner.verified.get(self.flow()) is self:
            del owner.verified[self.flow()]
        # The core knows flows by address and port: it hears of the one messages to that
        # address go on (another name's connection there closing is for this layer alone).
        if owner.connections.get(self.peer) is self:
            del owner.connections[self.peer]
            owner.stack.connection_lost(owner.transport, self.peer[0], self.peer[1])

    def send(self, data):
        self.touch()
        if self.transport.get_write_buffer_size() > MAX_UNSENT:
            log.info("closing %s connection to %s:%d: it does not read what we send",
                     self.owner.label, self.peer[0], self.peer[1])
            self.transport.abort()
            return
        self.transport.write(data)


class TcpConnections:
    """The connections of one stream transport: "tcp", or "tls" with `tls` (a
    tls.TlsContexts), `server_name(address, port)`, the name a server we connect to must
    prove (see resolver.server_name), and `handshake_timeout` in seconds.

    `connections` maps each peer (host, port) to the connection messages to it go on: one
    the peer opened, else ours to it (over TLS, ours for the name last sent to there).
    `verified` holds every outgoing TLS connection by (host, port, server name)."""

    def __init__(self, stack, transport="tcp", tls=None, server_name=None,
                 handshake_timeout=HANDSHAKE_TIMEOUT):
        self.stack = stack
        self.handshake_timeout = handshake_timeout
        self.transport = transport
        self.label = transport.upper()
        self.tls = tls
        self.server_name = server_name
        self.connections = {}
        self.verified = {}  # TLS: (host, port, server name) -> our connection verified so
        self.handshaking = set()  # TLS connections counted, but not yet carrying messages
        self.sources = collections.Counter()  # peer address -> accepted connections open
        self.kept = set()  # (host, port) of flows kept open while idle (to the registrar)
        self.servers = []
        self._refusals = {}  # source (None: the total) -> [time of its last line, refused since]
        self._sweeper = None
        self._pending = {}

    def count(self):
        return len(self._all()) + len(self.handshaking)

    def _all(self):
        """Every connection carrying messages, once each."""
        return list({id(c): c for c in (*self.connections.values(), *self.verified.values())}
                    .values())

    def admit(self, connection):
        """Count a connection just made against the limits: False (and logged) when it is
        one too many."""
        host = connection.peer[0]
        limit = MAX_CONNECTIONS if connection.outgoing else MAX_ACCEPTED
        if self.count() >= limit:
            self._refused(None, connection, "%d connections open" % limit)
            return False
        if connection.outgoing:
            return True
        if self.sources[host] >= MAX_PER_SOURCE:
            self._refused(host, connection, "%d connections from %s open"
                          % (MAX_PER_SOURCE, host))
            return False
        self.sources[host] += 1
        connection.source = host
        return True

    def release(self, host):
        """An accepted connection from `host` closed."""
        self.sources[host] -= 1
        if self.sources[host] <= 0:
            del self.sources[host]

    def _refused(self, key, connection, why):
        """Log the refusal of `connection` under `key` (its source, or None for the total):
        the first of a burst, then nothing for REFUSAL_LOG_INTERVAL; the next line (or the
        sweep, once the burst is over) says how many went unlogged."""
        now = asyncio.get_running_loop().time()
        entry = self._refusals.get(key)
        if entry is not None and now - entry[0] < REFUSAL_LOG_INTERVAL:
            entry[1] += 1
            return
        unlogged = entry[1] if entry is not None else 0
        log.warning("refusing a %s connection %s %s:%d: %s%s; further refusals are "
                    "logged at most every %g s", self.label,
                    "to" if connection.outgoing else "from", connection.peer[0],
                    connection.peer[1], why,
                    " (and %d more since the last line)" % unlogged if unlogged else "",
                    REFUSAL_LOG_INTERVAL)
        self._refusals[key] = [now, 0]

    def _report_refusals(self, now):
        """The end of bursts of refusals: how many went unlogged, and forget them."""
        for key, (logged, unlogged) in list(self._refusals.items()):
            if now - logged < REFUSAL_LOG_INTERVAL:
                continue
            del self._refusals[key]
            if unlogged:
                log.warning("refused %d more %s connections %s in the %g s after the "
                            "last line", unlogged, self.label,
                            "in all" if key is None else "from %s" % key,
                            REFUSAL_LOG_INTERVAL)

    async def listen(self, host, port):
        if self.tls is not None:
            self.tls.server()  # a certificate that cannot be loaded stops the start here
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: TcpConnection(self), host.strip("[]"), port, reuse_address=True,
        )
        self.servers.append(server)
        self._sweep_later()
        return server.sockets[0].getsockname()[1]

    def send(self, datagram):
        key = (datagram.host.strip("[]"), datagram.port)
        if datagram.alternative is None:
            connection = self._connection_to(key)
        else:  # a response: on the connection the request came on, whatever it was for
            connection = self.connections.get(key)
        if connection is None and datagram.alternative is not None:
            # The connection a request came on is gone: open one to the Via's sent-by.
            key = (datagram.alternative[0].strip("[]"), datagram.alternative[1])
            connection = self._connection_to(key)
        if connection is not None:
            connection.send(datagram.data)
            return
        flow = key if self.tls is None else (*key, self.server_name(*key))
        queue = self._pending.get(flow)
        if queue is not None:
            queue.append(datagram.data)
            return
        self._pending[flow] = [datagram.data]
        asyncio.get_running_loop().create_task(self._connect(flow, datagram))

    def _connection_to(self, key):
        """The open connection for messages to `key` (host, port), or None. Over TLS, one
        of ours only when it was verified for the name the server there must prove now."""
        connection = self.connections.get(key)
        if self.tls is None or (connection is not None and not connection.outgoing):
            return connection
        name = self.server_name(*key)
        if connection is None or connection.server_name != name:
            connection = self.verified.get((*key, name))
            if connection is not None:
                self.connections[key] = connection  # the peer's flow, for now
        return connection

    async def _connect(self, flow, datagram):
        loop = asyncio.get_running_loop()
        host, port = flow[0], flow[1]
        name = flow[2] if self.tls is not None else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: TcpConnection(self, name, outgoing=True),
                                       host, port),
                CONNECT_TIMEOUT,
            )
        except (TimeoutError, OSError) as error:
            log.info("%s connection to %s:%d failed: %s", self.label, host, port, error)
            connection = None
        if connection is not None and connection.handshake is not None \
                and not await connection.handshake:
            connection = None  # logged by the connection: which server and why
        if connection is None or connection.peer is None:
            self._pending.pop(flow, None)
            self.stack.send_failed(self.transport, datagram.host, datagram.port)
            return
        self._sweep_later()
        for data in self._pending.pop(flow, []):
            connection.send(data)

    def drop(self, key):
        """Abort the connection to `key` (host, port) now, if there is one (True); what is
        sent to that peer next goes on a new connection."""
        connection = self.connections.pop(key, None)
        if connection is None:
            return False
        if connection.outgoing and self.verified.get(connection.flow()) is connection:
            del self.verified[connection.flow()]
        connection.transport.abort()
        return True

    def _sweep_later(self):
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_TIMEOUT / 2, self._sweep)

    def _sweep(self):
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in self._all():
            if now - connection.last_used > IDLE_TIMEOUT and connection.peer not in self.kept:
                connection.transport.close()
        self._report_refusals(now)
        self._sweeper = loop.call_later(IDLE_TIMEOUT / 2, self._sweep)

    async def close(self):
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self.handshaking):
            connection.handshake.cancel()
        for connection in self._all():
            connection.transport.close()
        for server in self.servers:
            server.close()
            await server.wait_closed()
