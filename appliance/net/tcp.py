"""TCP for SIP: one listener per address, connections reused per peer and closed when idle.

Each connection frames messages with the core's `StreamParser`; a peer that sends bytes
that cannot be framed is disconnected, the rest carry on.
"""

import asyncio
import logging
import socket

from ..sip.errors import ParseError
from ..sip.message import StreamParser

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0  # seconds without traffic before a connection is closed
MAX_MESSAGE = 65536
MAX_CONNECTIONS = 256  # a home appliance's worth; more are refused, so memory stays bounded
MAX_UNSENT = 1 << 20  # bytes queued for a peer that does not read before it is cut off


class TcpConnection(asyncio.Protocol):
    def __init__(self, owner):
        self.owner = owner
        self.transport = None
        self.peer = None
        self.parser = StreamParser(MAX_MESSAGE)
        self.last_used = 0.0

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        if len(self.owner.connections) >= MAX_CONNECTIONS:
            log.warning("refusing a TCP connection from %s:%d: %d connections open",
                        self.peer[0], self.peer[1], MAX_CONNECTIONS)
            transport.abort()
            self.peer = None
            return
        self.touch()
        self.owner.connections[self.peer] = self

    # A peer that sends but does not read fills our send buffer: stop reading from it
    # until it catches up (asyncio flow control), and cut it off past MAX_UNSENT.
    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def touch(self):
        self.last_used = asyncio.get_running_loop().time()

    def data_received(self, data):
        self.touch()
        try:
            items = self.parser.feed(data)
        except ParseError as error:
            log.info("closing TCP connection from %s:%d: %s", self.peer[0], self.peer[1],
                     error.reason)
            self.transport.close()
            return
        for item in items:
            if item == StreamParser.PING:
                self.send(b"\r\n")  # RFC 5626 pong
            elif item == StreamParser.PONG:
                self.owner.stack.pong_received("tcp", self.peer[0], self.peer[1])
            else:
                self.owner.stack.receive(item, "tcp", self.peer)

    def connection_lost(self, exc):
        if self.peer is not None and self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]
            self.owner.stack.connection_lost("tcp", self.peer[0], self.peer[1])

    def send(self, data):
        self.touch()
        if self.transport.get_write_buffer_size() > MAX_UNSENT:
            log.info("closing TCP connection to %s:%d: it does not read what we send",
                     self.peer[0], self.peer[1])
            self.transport.abort()
            return
        self.transport.write(data)


class TcpConnections:
    def __init__(self, stack):
        self.stack = stack
        self.connections = {}
        self.kept = set()  # (host, port) of flows kept open while idle (to the registrar)
        self.servers = []
        self._sweeper = None
        self._pending = {}

    async def listen(self, host, port):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: TcpConnection(self), host.strip("[]"), port, reuse_address=True,
        )
        self.servers.append(server)
        if self._sweeper is None:
            self._sweeper = loop.call_later(IDLE_TIMEOUT / 2, self._sweep)
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
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: TcpConnection(self), key[0], key[1]), 10.0
            )
        except (TimeoutError, OSError) as error:
            self._pending.pop(key, None)
            log.info("TCP connection to %s:%d failed: %s", key[0], key[1], error)
            self.stack.send_failed("tcp", datagram.host, datagram.port)
            return
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
        for connection in list(self.connections.values()):
            connection.transport.close()
        for server in self.servers:
            server.close()
            await server.wait_closed()
