"""The firmware's event loop: one non-blocking UDP socket polled by an asyncio task.

MicroPython's asyncio has no datagram endpoints, so `serve` reads the socket until it
is empty, lets the agent act on what is due, feeds the watchdog and sleeps POLL_MS, over
and over. Wi-Fi is checked once a second (board.Wifi joins again, with backoff, when the
link drops; a new address is registered at once). The same code runs on CPython for
firmware/run_host.py.
"""

import gc
import socket
import sys

try:
    import asyncio
except ImportError:  # MicroPython before 1.21
    import uasyncio as asyncio

from agent import Agent
from board import Clock, Watchdog, build_devices

POLL_MS = 20
WIFI_CHECK_MS = 1000
GC_EVERY_MS = 2000
MAX_DATAGRAM = 2048  # a bigger one is cut short, fails to parse and is dropped
STOP_WAIT_MS = 2000  # for the answers to the unREGISTERs at stop

if hasattr(asyncio, "sleep_ms"):
    sleep_ms = asyncio.sleep_ms
else:
    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


def token(n):
    """n random hex digits from the board's hardware random source."""
    import binascii
    import os

    return binascii.hexlify(os.urandom((n + 1) // 2)).decode()[:n]


def random():
    import os

    return int.from_bytes(os.urandom(4), "big") / 4294967296


def resolve(host, port):
    """An IPv4 (host, port) for a name or an address literal (raises OSError). A literal
    needs no lookup: a name blocks the loop while DNS answers."""
    parts = host.split(".")
    if len(parts) == 4 and all(part.isdigit() and int(part) < 256 for part in parts):
        return (host, port)
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][-1]
    if not isinstance(address, tuple):  # a port that returns a raw sockaddr
        raise OSError("no IPv4 address for %s" % host)
    return (address[0], address[1])


def _bound_port(sock, asked):
    try:
        return sock.getsockname()[1]
    except AttributeError:  # MicroPython sockets have no getsockname: the port asked
        return asked


class Runner:
    """Ties the agent to a socket, a clock, the devices, Wi-Fi and the watchdog.

    `wifi` is a board.Wifi, or None where the host is on a network already (run_host);
    `listen` the address to bind (default all, settings' agent.port); `advertise` the
    address to put in Via and Contact when there is no Wi-Fi object to ask."""

    def __init__(self, settings, wifi=None, listen=None, advertise=None, clock=None,
                 log=print):
        self.settings = settings
        self.wifi = wifi
        self.log = log
        self.clock = clock or Clock()
        self.listen = listen or ("0.0.0.0", settings["agent"]["port"])
        self.advertise = advertise
        self.devices = build_devices(settings["devices"])
        self.sock = None
        self.agent = None
        self.running = False

    def open(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(socket.getaddrinfo(self.listen[0], self.listen[1])[0][-1])
        sock.setblocking(False)
        self.sock = sock
        settings = self.settings
        # The port bound (--listen on a PC, 0 for a free one): Via and Contact carry it.
        settings["agent"]["port"] = _bound_port(sock, self.listen[1])
        self.agent = Agent(settings, self.devices, self._send, token, random, resolve,
                           log=self.log)

    def _send(self, data, host, port):
        self.sock.sendto(data, (host, port))

    async def serve(self):
        """Run until stop(); the first thing is to wait for Wi-Fi."""
        if self.sock is None:
            self.open()
        watchdog = Watchdog(self.settings["agent"]["watchdog"])
        agent = self.agent
        clock = self.clock
        self.running = True
        address = None
        next_wifi = next_gc = 0
        while self.running:
            now = clock.now()
            watchdog.feed()
            if now >= next_wifi:
                next_wifi = now + WIFI_CHECK_MS
                found = self.advertise if self.wifi is None else self._wifi(now)
                if found is not None and found != address:
                    watchdog.feed()  # start() may wait on DNS lookups
                    if agent.started is None:
                        self._guarded(agent.start, found, now)
                        self.log("serving %s on %s:%d" % (", ".join(
                            agent.uri(name) for name in self.devices), found, agent.port))
                    else:
                        self._guarded(agent.address_changed, found, clock.now())
                address = found
            if agent.started is not None:
                self._drain(agent, now)
                self._guarded(agent.tick, clock.now())
            if now >= next_gc:
                next_gc = now + GC_EVERY_MS
                gc.collect()
            await sleep_ms(POLL_MS)
        await self._stopping()

    def _wifi(self, now):
        try:
            return self.wifi.check(now)
        except OSError as error:  # the Wi-Fi driver refused, e.g. a join still under way
            self.log("wifi: %s" % error)
            return None

    def _drain(self, agent, now):
        sock = self.sock
        while True:
            try:
                data, source = sock.recvfrom(MAX_DATAGRAM)
            except OSError:
                return  # EAGAIN: nothing more waiting
            if not isinstance(source, tuple):
                continue  # a port that gives a raw sockaddr: not supported
            self._guarded(agent.receive, data, (source[0], source[1]), now)

    def _guarded(self, function, *args):
        """A fault in the agent is logged and the loop goes on: one bad datagram or a bug
        must not leave the door unwatched (the watchdog covers a hang, not this)."""
        try:
            function(*args)
        except Exception as error:  # anything: log it and serve on
            self.log("error: %s: %s" % (type(error).__name__, error))
            if hasattr(sys, "print_exception"):
                sys.print_exception(error)
            else:  # CPython
                import traceback

                traceback.print_exc()

    def stop(self):
        self.running = False

    async def _stopping(self):
        agent = self.agent
        if agent.started is None:
            return
        agent.stop(self.clock.now())
        end = self.clock.now() + STOP_WAIT_MS
        while self.clock.now() < end and any(r.outstanding is not None
                                             for r in agent.registrations.values()):
            self._drain(agent, self.clock.now())
            self._guarded(agent.tick, self.clock.now())
            await sleep_ms(POLL_MS)
        for device in self.devices.values():
            device.close()
        self.sock.close()
