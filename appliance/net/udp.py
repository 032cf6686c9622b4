"""A UDP listener: datagrams in to the stack, datagrams out from the same socket."""

import asyncio
import socket


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, stack):
        self.stack = stack
        self.transport = None
        self.family = socket.AF_INET
        self.port = 0

    @classmethod
    async def open(cls, stack, host, port):
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            sock.close()
            raise
        _, listener = await loop.create_datagram_endpoint(lambda: cls(stack), sock=sock)
        listener.family = family
        listener.port = sock.getsockname()[1]
        return listener

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.stack.receive(data, "udp", (addr[0], addr[1]))

    def error_received(self, exc):
        # ICMP errors for earlier sends surface here; the transaction timers cope.
        pass

    def send(self, data, host, port):
        if self.transport is not None:
            self.transport.sendto(data, (host.strip("[]"), port))

    def close(self):
        if self.transport is not None:
            self.transport.close()
