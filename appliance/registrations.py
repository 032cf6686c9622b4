"""Every device registered through the home proxy ([proxy] in the config).

Each device is its own address of record (`sip:NAME@DOMAIN`) with its own core
`Registration` state machine; this module sends what they ask for through the agent's
`SipStack`, feeds their responses back, keeps one timer for all of them, unregisters on a
clean stop, and logs one line per change of state (never a password).
"""

import asyncio
import logging
import random

from .net.resolver import ResolveError, resolve
from .sip.errors import ParseError
from .sip.events import ResponseReceived, TransactionTimedOut, TransportFailed
from .sip.registration import Registration, backoff_limit
from .sip.uri import parse_uri

log = logging.getLogger(__name__)

UNREGISTER_WAIT = 2.0  # seconds a clean stop waits for the registrar to confirm


class Registrations:
    def __init__(self, stack, proxy, devices, domain=None, keepalive=0):
        """`proxy` is the [proxy] config; `devices` the [[devices]] configs; `domain` the
        host part of the addresses of record (default: the registrar's host); `keepalive`
        the seconds between keep-alives on the flow to the registrar (0: none)."""
        self.stack = stack
        self.keepalive = keepalive
        self._keepalive_timer = None
        self.proxy = proxy
        self.devices = list(devices)
        self.domain = domain or parse_uri(proxy.registrar).host
        self.destination = None
        self.error = None  # why the registrar cannot be reached yet
        self._resolve_failures = 0
        self.registrations = {}  # device name -> Registration
        self._pending = {}  # client transaction -> Registration
        self._timer = None
        self._retry = None
        self._loop = None

    async def start(self):
        """Resolve the registrar and send every device's first REGISTER. A registrar that
        does not resolve is logged once per attempt and tried again on the RFC 5626
        backoff schedule; the agent runs on meanwhile."""
        self._loop = asyncio.get_running_loop()
        registrar = parse_uri(self.proxy.registrar)
        try:
            self.destination = await resolve(registrar)
        except ResolveError as error:
            self._resolve_failures += 1
            delay = backoff_limit(self._resolve_failures) / 1000.0 * (0.5 + random.random() / 2)
            self.error = str(error)
            log.warning("%s; registering the devices in %.0f s", error, delay)
            self._timer = self._loop.call_later(delay, self._retry_start)
            return
        self.error = None
        transport = self.destination[0]
        host, port = self.stack.endpoint.local.get(transport, self.stack.endpoint.local["udp"])
        suffix = "" if transport == "udp" else ";transport=" + transport
        now = self.stack.now()
        for device in self.devices:
            username = device.username or self.proxy.username
            password = (device.password or self.proxy.password).reveal()
            registration = Registration(
                "sip:%s@%s" % (device.name, self.domain),
                self.proxy.registrar,
                "sip:%s@%s:%d%s" % (device.name, host, port, suffix),
                self.stack.endpoint.token,
                random.random,
                expires=self.proxy.expires,
                credentials=_credentials(username, password),
            )
            self.registrations[device.name] = registration
            self._send(registration, registration.start(now))
        self._arm()
        if self.keepalive:
            self._schedule_keepalive()

    async def stop(self):
        """Unregister every binding (Expires: 0) and wait briefly for the answers."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        now = self.stack.now()
        for registration in self.registrations.values():
            request = registration.stop(now)
            if request is not None:
                self._send(registration, request)
        deadline = self._loop.time() + UNREGISTER_WAIT if self._loop else 0
        while self._pending and self._loop.time() < deadline:
            await asyncio.sleep(0.05)

    def handle(self, event):
        """Take a client transaction event if it belongs to a registration."""
        transaction = getattr(event, "transaction", None)
        registration = self._pending.get(transaction)
        if registration is None:
            return False
        now = self.stack.now()
        before = registration.state, registration.last_error
        if isinstance(event, ResponseReceived):
            if event.response.status < 200:
                return True
            del self._pending[transaction]
            try:
                request = registration.response(event.response, now)
            except ParseError as error:
                log.warning("registrar answered %s with a malformed response: %s",
                            registration.aor, error.reason)
                request = None
        elif isinstance(event, (TransactionTimedOut, TransportFailed)):
            del self._pending[transaction]
            request = registration.timed_out(now) if isinstance(event, TransactionTimedOut) \
                else registration.transport_failed(now)
        else:
            return False
        if request is not None:
            self._send(registration, request)
        self._report(registration, before, now)
        self._arm()
        return True

    def _retry_start(self):
        # Keep a reference: the loop holds tasks only weakly.
        self._retry = self._loop.create_task(self.start())

    def register_again(self):
        """Register every device at once (the public address changed)."""
        if self._loop is None or not self.registrations:
            return
        now = self.stack.now()
        for registration in self.registrations.values():
            request = registration.contact_changed(registration.contact, now)
            if request is not None:
                self._send(registration, request)
        self._arm()

    def status(self):
        now = self.stack.now()
        if not self.registrations and self.error is not None:
            return [{"device": device.name, "aor": "sip:%s@%s" % (device.name, self.domain),
                     "state": "unregistered", "registered": False, "expires_in": None,
                     "next_register_in": None, "last_error": self.error,
                     "failures": self._resolve_failures} for device in self.devices]
        return [dict(registration.status(now), device=name)
                for name, registration in self.registrations.items()]

    # -- inside ----------------------------------------------------------------------

    def _schedule_keepalive(self):
        # 80-100% of the interval: jitter keeps many appliances from pinging in step.
        delay = self.keepalive * (0.8 + 0.2 * random.random())
        self._keepalive_timer = self._loop.call_later(delay, self._send_keepalive)

    def _send_keepalive(self):
        """Keep the NAT's mapping to the registrar open while anything is registered."""
        now = self.stack.now()
        if any(r.is_registered(now) for r in self.registrations.values()):
            self.stack.send_keepalive(*self.destination)
        self._schedule_keepalive()

    def _send(self, registration, request):
        transaction = self.stack.send_request(request, self.destination)
        if transaction is not None:
            self._pending[transaction] = registration

    def _report(self, registration, before, now):
        after = registration.state, registration.last_error
        if after == before:
            return
        status = registration.status(now)
        if registration.is_registered(now) and registration.last_error is None:
            log.info("%s registered at %s for %s s", registration.aor,
                     self.proxy.registrar, status["granted"])
        elif registration.last_error is not None:
            log.warning("%s not registered: %s; next attempt in %s s", registration.aor,
                        registration.last_error, status["next_register_in"])

    def _arm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadlines = [r.get_timer() for r in self.registrations.values()]
        deadlines = [d for d in deadlines if d is not None]
        if deadlines:
            self._timer = self._loop.call_at(min(deadlines) / 1000.0, self._on_timer)

    def _on_timer(self):
        self._timer = None
        now = self.stack.now()
        for registration in self.registrations.values():
            before = registration.state, registration.last_error
            request = registration.handle_timer(now)
            if request is not None:
                self._send(registration, request)
            self._report(registration, before, now)
        self._arm()


def _credentials(username, password):
    """The credentials callable of a Registration: the same user for every realm the
    registrar names (a home proxy has one)."""

    def credentials(realm):
        return (username, password)

    return credentials
