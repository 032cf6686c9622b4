"""The agent's public address, learned with STUN ([nat] stun, RFC 8489).

A Binding request goes from the SIP UDP socket to the STUN server every `[nat] keepalive`
seconds (with jitter); the XOR-MAPPED-ADDRESS of the answer is the address and port the
home router shows the world for that socket. A change of that mapping (the router
restarted, the line got a new address) asks the registrations to register again at once.
"""

import asyncio
import logging
import os
import random

from .net.resolver import ResolveError, resolve
from .sip.errors import ParseError
from .sip.stun import BINDING_SUCCESS, binding_request, parse_message, xor_mapped_address
from .sip.uri import parse_uri

log = logging.getLogger(__name__)

RETRY = 30.0  # seconds between Binding requests while none is answered
RTO = 0.5  # seconds before a one-off Binding request is sent again, doubling (RFC 8489)


class NatProbe:
    def __init__(self, stack, server, interval, on_change):
        """`server` is "host:port"; `on_change(public)` is called with the (host, port)
        first learned, and again whenever it changes."""
        self.stack = stack
        self.server = server
        self.interval = interval or RETRY
        self.on_change = on_change
        self.public = None  # (host, port) once learned
        self.error = None
        self.destination = None
        self._pending = {}  # transaction id -> sent time (loop seconds)
        self._timer = None
        self._retry = None
        self._loop = None

    async def start(self, loop):
        self._loop = loop
        try:
            _, host, port = await resolve(parse_uri("sip:" + self.server))
        except ResolveError as error:
            self.error = str(error)
            log.warning("STUN server: %s; trying again in %.0f s", error, RETRY)
            self._timer = loop.call_later(RETRY, self._retry_start)
            return
        self.destination = (host, port)
        self._probe()

    def _retry_start(self):
        # Keep a reference: the loop holds tasks only weakly.
        self._retry = self._loop.create_task(self.start(self._loop))

    def close(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._retry is not None:
            self._retry.cancel()
        self.destination = None

    def _probe(self):
        if self._pending and self.error is None:
            # The last request went unanswered for a whole interval (UDP may lose one;
            # this says so once, and the next answer clears it).
            self.error = "no answer from the STUN server %s" % self.server
            log.warning("%s; the public address is %s; asking again every %.0f s",
                        self.error, "%s:%d" % self.public if self.public else "unknown",
                        self.interval)
        transaction_id = os.urandom(12)
        self._pending = {transaction_id: self._loop.time()}  # only the latest counts
        request = binding_request(transaction_id, software="sip-appliance")
        self.stack.send_raw(request.to_bytes(), "udp", *self.destination)
        delay = self.interval * (0.8 + 0.2 * random.random())
        self._timer = self._loop.call_later(delay, self._probe)

    def probe_now(self):
        """Ask again at once (the local address changed: the mapping may have too)."""
        if self.destination is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._probe()

    async def wait_public(self, timeout):
        """Wait up to `timeout` seconds for the first answer (the Contacts want it)."""
        deadline = self._loop.time() + timeout
        while self.public is None and self.destination is not None \
                and self._loop.time() < deadline:
            await asyncio.sleep(0.02)

    def handle(self, message):
        """A STUN message that arrived on the SIP socket."""
        if message.transaction_id not in self._pending \
                or message.message_type != BINDING_SUCCESS:
            return
        del self._pending[message.transaction_id]
        mapped = xor_mapped_address(message)
        if mapped is None:
            self.error = "STUN answer without a mapped address"
            return
        if self.error is not None:
            log.info("the STUN server %s answers again", self.server)
        self.error = None
        if mapped != self.public:
            before = self.public
            self.public = mapped
            if before is None:
                log.info("public address of the SIP socket: %s:%d", *mapped)
            else:
                log.warning("public address changed from %s:%d to %s:%d; registering again",
                            before[0], before[1], mapped[0], mapped[1])
            self.on_change(mapped)

    def status(self):
        return {
            "stun": self.server,
            "public": "%s:%d" % self.public if self.public else None,
            "error": self.error,
        }


async def public_address_of(sock, server, timeout=3.0):
    """The public (host, port) the router shows for the UDP socket `sock` (an RTP socket
    before its transport takes it over), asked of the STUN server `server` ("host:port")
    from that socket; None when no answer comes within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    _, host, port = await resolve(parse_uri("sip:" + server))
    transaction_id = os.urandom(12)
    request = binding_request(transaction_id, software="sip-appliance").to_bytes()
    sock.setblocking(False)
    deadline = loop.time() + timeout
    wait = RTO
    while loop.time() < deadline:
        await loop.sock_sendto(sock, request, (host, port))
        resend = min(loop.time() + wait, deadline)
        wait *= 2
        while loop.time() < resend:
            try:
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048),
                                                 resend - loop.time())
            except TimeoutError:
                break
            try:
                message = parse_message(data)
            except ParseError:
                continue
            if message.transaction_id == transaction_id \
                    and message.message_type == BINDING_SUCCESS:
                return xor_mapped_address(message)
    return None
