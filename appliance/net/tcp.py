"""TCP and TLS for SIP: one listener per address, connections reused per peer and closed
when idle.

Each connection frames messages with the core's `StreamParser`; a peer that sends bytes
that cannot be framed is disconnected, the rest carry on.

TLS (RFC 3261 section 26.2) is the same connections with ssl contexts (see tls.py): a
connection is accepted or opened as TCP, counted against MAX_CONNECTIONS at once, and
then upgraded with `loop.start_tls`. Only a finished handshake makes it a connection that
messages go in and out of; a peer that has not finished its handshake within
HANDSHAKE_TIMEOUT, that speaks something other than TLS, or whose certificate does not
verify, is logged and dropped.
"""

import asyncio
import logging
import socket

from ..sip.errors import ParseError
from ..sip.message import StreamParser
from .tls import handshake_failure

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0  # seconds without traffic before a connection is closed
MAX_MESSAGE = 65536
MAX_CONNECTIONS = 256  # a home appliance's worth; more are refused, so memory stays bounded
MAX_UNSENT = 1 << 20  # bytes queued for a peer that does not read before it is cut off
CONNECT_TIMEOUT = 10.0  # seconds for an outgoing connection to be accepted
HANDSHAKE_TIMEOUT = 10.0  # seconds for a TLS handshake, either side
SHUTDOWN_TIMEOUT = 5.0  # seconds a closing TLS connection waits for the peer's close_notify


class TcpConnection(asyncio.Protocol):
    def __init__(self, owner, server_name=None):
        """`server_name`: for an outgoing TLS connection, the name the server's certificate
        must carry (None: a connection that was accepted)."""
        self.owner = owner
        self.transport = None
        self.peer = None
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
        if owner.count() >= MAX_CONNECTIONS:
            log.warning("refusing a %s connection from %s:%d: %d connections open",
                        owner.label, self.peer[0], self.peer[1], MAX_CONNECTIONS)
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
        server_side = self.server_name is None
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
        early, self._early = b"".join(self._early), []
        if early:
            self.data_received(early)
        return True

    def _handshake_failed(self, reason):
        if self.transport is not None:
            self.transport.abort()
        if self.server_name is None:
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

    def data_received(self, data):
        if self.handshake is not None and not self.secured:
            # The TLS layer hands over what followed the handshake before start_tls
            # returns: keep it until the connection is ours to answer on.
            self._early.append(data)
            return
        self.touch()
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
        if self.peer is not None and owner.connections.get(self.peer) is self:
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
    prove (see resolver.server_name), and `handshake_timeout` in seconds."""

    def __init__(self, stack, transport="tcp", tls=None, server_name=None,
                 handshake_timeout=HANDSHAKE_TIMEOUT):
        self.stack = stack
        self.handshake_timeout = handshake_timeout
        self.transport = transport
        self.label = transport.upper()
        self.tls = tls
        self.server_name = server_name
        self.connections = {}
        self.handshaking = set()  # TLS connections counted, but not yet carrying messages
        self.kept = set()  # (host, port) of flows kept open while idle (to the registrar)
        self.servers = []
        self._sweeper = None
        self._pending = {}

    def count(self):
        return len(self.connections) + len(self.handshaking)

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
        connection = self.connections.get(key)
        if connection is not None:
            connection.send(datagram.data)
            return
        if datagram.alternative is not None:
            # The connection a request came on is gone: open one to the Via's sent-by.
            key = (datagram.alternative[0].strip("[]"), datagram.alternative[1])
            connection = self.connections.get(key)
            if connection is not None:
                connection.send(datagram.data)
                return
        queue = self._pending.get(key)
        if queue is not None:
            queue.append(datagram.data)
            return
        self._pending[key] = [datagram.data]
        asyncio.get_running_loop().create_task(self._connect(key, datagram))

    async def _connect(self, key, datagram):
        loop = asyncio.get_running_loop()
        name = self.server_name(*key) if self.tls is not None else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: TcpConnection(self, name), key[0], key[1]),
                CONNECT_TIMEOUT,
            )
        except (TimeoutError, OSError) as error:
            log.info("%s connection to %s:%d failed: %s", self.label, key[0], key[1], error)
            connection = None
        if connection is not None and connection.handshake is not None \
                and not await connection.handshake:
            connection = None  # logged by the connection: which server and why
        if connection is None or connection.peer is None:
            self._pending.pop(key, None)
            self.stack.send_failed(self.transport, datagram.host, datagram.port)
            return
        self._sweep_later()
        for data in self._pending.pop(key, []):
            connection.send(data)

    def drop(self, key):
        """Abort the connection to `key` (host, port) now, if there is one (True); what is
        sent to that peer next goes on a new connection."""
        connection = self.connections.pop(key, None)
        if connection is None:
            return False
        connection.transport.abort()
        return True

    def _sweep_later(self):
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_TIMEOUT / 2, self._sweep)

    def _sweep(self):
        loop = asyncio.get_running_loop()
        now = loop.time()
        for key, connection in list(self.connections.items()):
            if now - connection.last_used > IDLE_TIMEOUT and key not in self.kept:
                connection.transport.close()
        self._sweeper = loop.call_later(IDLE_TIMEOUT / 2, self._sweep)

    async def close(self):
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self.handshaking):
            connection.handshake.cancel()
        for connection in list(self.connections.values()):
            connection.transport.close()
        for server in self.servers:
            server.close()
            await server.wait_closed()
