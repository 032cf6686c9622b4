"""A UDP listener: datagrams in to the stack, datagrams out from the same socket.

The socket is read directly from the event loop's reader callback, draining every
datagram that is waiting before returning to the loop: under load one wake-up serves many
requests instead of one (asyncio's datagram transport reads one per wake-up).
"""

import asyncio
import collections
import logging
import socket

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65535
BATCH = 64  # datagrams read per wake-up at most, so that timers and TCP still get turns
SEND_QUEUE = 1024  # datagrams kept while the socket's send buffer is full


class UdpListener:
    def __init__(self, stack, sock, loop):
        self.stack = stack
        self.sock = sock
        self.loop = loop
        self.family = sock.family
        self.port = sock.getsockname()[1]
        self._pending = collections.deque()
        loop.add_reader(sock.fileno(), self._read)

    @classmethod
    async def open(cls, stack, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((host.strip("[]"), port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return cls(stack, sock, asyncio.get_running_loop())

    def _read(self):
        recvfrom = self.sock.recvfrom
        receive = self.stack.receive
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                # An ICMP error for an earlier send surfaces here; transaction timers cope.
                log.debug("UDP receive error: %s", error)
                continue
            receive(data, "udp", (addr[0], addr[1]))

    def send(self, data, host, port):
        address = (host.strip("[]"), port)
        if self._pending:
            self._queue(data, address)
            return
        try:
            self.sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            self._queue(data, address)
        except OSError as error:
            log.debug("UDP send to %s:%d failed: %s", address[0], port, error)

    def _queue(self, data, address):
        if len(self._pending) >= SEND_QUEUE:
            log.warning("UDP send buffer full: dropping a datagram to %s:%d", *address)
            return
        if not self._pending:
            self.loop.add_writer(self.sock.fileno(), self._write)
        self._pending.append((data, address))

    def _write(self):
        while self._pending:
            data, address = self._pending[0]
            try:
                self.sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.debug("UDP send to %s:%d failed: %s", address[0], address[1], error)
            self._pending.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def close(self):
        self.loop.remove_reader(self.sock.fileno())
        if self._pending:
            self.loop.remove_writer(self.sock.fileno())
        self.sock.close()
