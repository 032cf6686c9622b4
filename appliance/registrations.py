"""Every device registered through the home proxy ([proxy] in the config).

Each device is its own address of record (`sip:NAME@DOMAIN`) with its own core
`Registration` state machine; this module sends what they ask for through the agent's
`SipStack`, feeds their responses back, keeps one timer for all of them, unregisters on a
clean stop, and logs one line per change of state (never a password).

Around them it keeps the flow to the registrar working:
- the registrar (or the outbound proxy) is located with RFC 3263; a REGISTER that times
  out, cannot be sent or meets 503 is sent on to the next server at once;
- with `[proxy] outbound` (the default) the Contacts carry the agent's stored instance id
  and a reg-id (RFC 5626), so a restarted agent replaces its bindings;
- keep-alives run on the flow (see sip/keepalive.py: STUN when the registrar speaks
  outbound over UDP, CRLF otherwise); a flow that fails them, or a TCP connection the
  registrar closes, is recovered by registering again;
- the Contacts carry the public address learned by STUN when there is one, else the
  address the machine sends from toward the registrar, which is checked every few
  seconds: when it changes (a new DHCP lease, another network), the devices register
  again at once.
"""

import asyncio
import logging
import random

from .net.resolver import ResolveError, locate
from .net.stack import format_address
from .redact import printable, printable_message
from .sip.digest import same_credentials
from .sip.errors import ParseError
from .sip.events import ResponseReceived, TransactionTimedOut, TransportFailed
from .sip.keepalive import FAILED, KeepAlive
from .sip.registration import BACKOFF, REGISTERED, Registration, backoff_limit
from .sip.uri import parse_uri

log = logging.getLogger(__name__)

UNREGISTER_WAIT = 2.0  # seconds a clean stop waits for the registrar to confirm
ADDRESS_CHECK = 5.0  # seconds between looks at the local address toward the registrar
FLOW_STABLE = 60000  # ms a flow must last before its failure counts as the first again


class Registrations:
    def __init__(self, stack, proxy, devices, domain=None, keepalive=0, instance_id=None,
                 on_address_change=None, on_change=None):
        """`proxy` is the [proxy] config; `devices` the [[devices]] configs; `domain` the
        host part of the addresses of record (default: the registrar's host); `keepalive`
        the seconds between keep-alives on the flow to the registrar (0: none);
        `instance_id` the agent's RFC 5626 instance UUID (None: no outbound);
        `on_address_change()` is called when the local address changes;
        `on_change(name, status)` when device `name`'s registration changes state (its
        status() entry)."""
        self.stack = stack
        self.proxy = proxy
        self.devices = list(devices)
        self.domain = domain or parse_uri(proxy.registrar).host
        self.keepalive_interval = keepalive
        self.instance_id = instance_id
        self.on_address_change = on_address_change
        self.on_change = on_change
        self.route = ()
        if proxy.outbound_proxy:
            route = proxy.outbound_proxy
            if parse_uri(route).param("lr") is None:
                route += ";lr"
            if instance_id is not None:
                route += ";ob"  # RFC 5626 section 4.2.1: keep this flow for us
            self.route = (route,)
        self.targets = []  # where REGISTERs may go, in RFC 3263 order
        self.current = 0  # the index of the one they go to now
        self.destination = None  # that target: (transport, host, port)
        self.public = None  # (host, port) learned with STUN for the UDP socket
        self.local_host = None  # the address sent from toward the destination
        self.keepalive = None  # the core KeepAlive of the flow to the destination
        self.error = None  # why the registrar cannot be reached yet
        self._resolve_failures = 0
        self.registrations = {}  # device name -> Registration
        self._names = {}  # Registration -> device name (also once it is leaving)
        self._pending = {}  # client transaction -> (Registration, index of its target)
        self._tries = {}  # Registration -> servers tried in its current attempt
        self._flow_failures = 0  # consecutive: flows that failed soon after they came up
        self._flow_since = None  # when the flow last came up (ms)
        self._timer = None
        self._address_timer = None
        self._recovery_timer = None
        self._tasks = set()  # start() retries and new lookups (the loop holds tasks weakly)
        self._loop = None

    async def start(self):
        """Locate the registrar and send every device's first REGISTER. A registrar that
        does not resolve is logged once per attempt and tried again on the RFC 5626
        backoff schedule; the agent runs on meanwhile."""
        self._loop = asyncio.get_running_loop()
        try:
            self.targets = await self._locate()
        except ResolveError as error:
            self._resolve_failures += 1
            delay = backoff_limit(self._resolve_failures) / 1000.0 * (0.5 + random.random() / 2)
            self.error = str(error)
            log.warning("%s; registering the devices in %.0f s", error, delay)
            self._timer = self._loop.call_later(delay, self._spawn, self.start)
            return
        self.error = None
        self._use(0)
        now = self.stack.now()
        for device in self.devices:
            self._add(device, now)
        self._arm()
        self._address_timer = self._loop.call_later(ADDRESS_CHECK, self._check_address)

    def update(self, devices):
        """The [[devices]] of a reloaded config: a new device registers, a removed one
        unregisters, one with new credentials registers again with them; the others'
        bindings are left as they are."""
        before = {device.name: device for device in self.devices}
        self.devices = list(devices)
        if self.destination is None:
            return  # not started, or the registrar not found yet: start() reads them
        now = self.stack.now()
        after = {device.name: device for device in self.devices}
        for name in before:
            if name not in after:
                registration = self.registrations.pop(name, None)
                if registration is not None:
                    # Its response still reaches it through _pending.
                    self._send(registration, registration.stop(now))
        for name, device in after.items():
            registration = self.registrations.get(name)
            if registration is None:
                self._add(device, now)
            elif self._credentials(device) != self._credentials(before[name]):
                log.info("%s: new credentials; registering again", registration.aor)
                self._send(registration, registration.credentials_changed(
                    same_credentials(*self._credentials(device)), now))
        self._arm()

    def _credentials(self, device):
        return (device.username or self.proxy.username,
                (device.password or self.proxy.password).reveal())

    def _add(self, device, now):
        registration = Registration(
            "sip:%s@%s" % (device.name, self.domain),
            self.proxy.registrar,
            self.contact(device.name),
            self.stack.endpoint.token,
            random.random,
            expires=self.proxy.expires,
            credentials=same_credentials(*self._credentials(device)),
            instance_id=self.instance_id,
            route=self.route,
        )
        self.registrations[device.name] = registration
        self._names[registration] = device.name
        self._send(registration, registration.start(now))

    async def stop(self):
        """Unregister every binding (Expires: 0) and wait briefly for the answers."""
        for timer in (self._timer, self._address_timer, self._recovery_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._address_timer = self._recovery_timer = None
        for task in self._tasks:
            task.cancel()
        if self.keepalive is not None:
            self.keepalive.stop()
        now = self.stack.now()
        for registration in self.registrations.values():
            self._send(registration, registration.stop(now))
        deadline = self._loop.time() + UNREGISTER_WAIT if self._loop else 0
        while self._pending and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.destination is not None:
            self.stack.keep_flow(*self.destination, keep=False)  # idle now: it may close

    # -- events from the stack -----------------------------------------------------------

    def handle(self, event):
        """Take a client transaction event if it belongs to a registration."""
        transaction = getattr(event, "transaction", None)
        entry = self._pending.get(transaction)
        if entry is None:
            return False
        registration, index = entry
        now = self.stack.now()
        before = registration.state, registration.last_error
        ours = transaction.request is registration.outstanding
        request = None
        if isinstance(event, ResponseReceived):
            response = event.response
            if response.status < 200:
                return True
            del self._pending[transaction]
            if response.status == 503 and ours:
                request = self._failover(registration, index, "%d %s" % (
                    response.status, printable(response.reason)), now)
            if request is None:
                self._tries.pop(registration, None)
                try:
                    request = registration.response(response, now)
                except ParseError as error:
                    log.warning("registrar answered %s with a malformed response: %s",
                                registration.aor, error.reason)
                if response.status < 300 and index == self.current:
                    self._flow_up(now)
        elif isinstance(event, (TransactionTimedOut, TransportFailed)):
            del self._pending[transaction]
            timed_out = isinstance(event, TransactionTimedOut)
            if ours:
                request = self._failover(registration, index,
                                         "no response" if timed_out else "unreachable", now)
            if request is None:
                self._tries.pop(registration, None)
                request = registration.timed_out(now) if timed_out \
                    else registration.transport_failed(now)
        else:
            return False
        self._send(registration, request)
        self._report(registration, before, now)
        self._arm()
        return True

    def stun_response(self, message):
        """A STUN message on the SIP socket: True when it answers our keep-alive."""
        keepalive = self.keepalive
        if keepalive is None or not keepalive.stun_response(message, self.stack.now()):
            return False
        if keepalive.state == FAILED:
            self._flow_failed(keepalive.error)
        self._arm()
        return True

    def pong(self, transport, host, port):
        if self.keepalive is not None and self._is_flow(transport, host, port):
            self.keepalive.pong(self.stack.now())
            self._arm()

    def connection_closed(self, transport, host, port):
        """The registrar's side closed a stream connection: when it was the flow, the
        devices registered on it register again on a new one."""
        keepalive = self.keepalive
        if not self._is_flow(transport, host, port) or not self._registered() \
                or (keepalive is not None and keepalive.state == FAILED):
            return
        self._flow_failed("the registrar closed the connection")

    def set_public(self, public):
        """STUN learned (or re-learned) the public address of the UDP socket."""
        self.public = public
        self._update_contacts()

    def register_again(self):
        """Register every registered device at once (its flow or address changed)."""
        self._recovery_timer = None
        if self._loop is None or not self.registrations:
            return
        now = self.stack.now()
        for registration in self.registrations.values():
            if registration.state == REGISTERED:
                self._send(registration, registration.contact_changed(registration.contact, now))
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

    def flow_status(self):
        """The flow to the registrar and its keep-alives, for `appliance status`."""
        if self.destination is None:
            return None
        status = {"flow": format_address(self.destination), "keepalive": None}
        if self.keepalive is not None:
            status["keepalive"] = self.keepalive.status(self.stack.now())
        return status

    # -- servers and addresses -------------------------------------------------------------

    async def _locate(self):
        target = parse_uri(self.proxy.outbound_proxy or self.proxy.registrar)
        return await locate(target, transports=tuple(self.stack.endpoint.local),
                            families=self.stack.families())

    async def _locate_again(self):
        """After every server failed: look the servers up again (DNS may have moved on)."""
        try:
            targets = await self._locate()
        except ResolveError as error:
            log.warning("%s; keeping the servers found before", error)
            return
        if targets != self.targets:
            log.info("registrar servers now: %s", ", ".join(format_address(t) for t in targets))
            self.targets = targets
            self._use(0)

    def _use(self, index):
        """Send to targets[index] from now on: a new flow."""
        if self.destination is not None:
            self.stack.keep_flow(*self.destination, keep=False)
        self.current = index
        self.destination = destination = self.targets[index]
        self.stack.keep_flow(*destination)
        host = self.stack.local_host_toward(destination[0], destination[1])
        if host is not None:
            self.local_host = host
            self.stack.set_local_host(host)
        if self.keepalive is not None:
            self.keepalive.stop()
            self.keepalive = None  # started again by the first 2xx on the new flow
        self._flow_since = None
        self._update_contacts(send=False)

    def _failover(self, registration, index, reason, now):
        """The REGISTER sent to targets[index] failed there: send it on to the next
        server (RFC 3263 section 4.3) and return it, or None once this attempt has tried
        as many servers as there are (then the backoff, and the first server again)."""
        tried = self._tries.get(registration, 0) + 1
        if tried >= len(self.targets):
            self._tries.pop(registration, None)
            if index == self.current and len(self.targets) > 1:
                self._use(0)
                self._spawn(self._locate_again)
            return None
        self._tries[registration] = tried
        if index == self.current:
            following = (index + 1) % len(self.targets)
            log.warning("registrar %s: %s; trying %s", format_address(self.targets[index]), reason,
                        format_address(self.targets[following]))
            self._use(following)
        return registration.failover(now)

    def contact(self, name):
        """Device `name`'s Contact for the flow to the registrar."""
        transport = self.destination[0]
        local = self.stack.endpoint.local
        if transport == "udp" and self.public is not None:
            host, port = self.public
        else:
            port = (local.get(transport) or local["udp"])[1]
            host = self.local_host or (local.get(transport) or local["udp"])[0]
        host = host.strip("[]")
        if ":" in host:
            host = "[%s]" % host
        suffix = "" if transport == "udp" else ";transport=" + transport
        return "sip:%s@%s:%d%s" % (name, host, port, suffix)

    def _update_contacts(self, send=True):
        """Give each registration the Contact for today's addresses; a changed one is
        registered at once when `send` (else with its next REGISTER)."""
        if self.destination is None or not self.registrations:
            return
        now = self.stack.now()
        for name, registration in self.registrations.items():
            contact = self.contact(name)
            if contact == registration.contact:
                continue
            if send:
                self._send(registration, registration.contact_changed(contact, now))
            else:
                registration.set_contact(contact)
        self._arm()

    def _check_address(self):
        self._address_timer = self._loop.call_later(ADDRESS_CHECK, self._check_address)
        transport, host, port = self.destination
        local = self.stack.local_host_toward(transport, host)
        if local is None or local == self.local_host:
            return  # no route just now, or nothing new
        log.warning("local address changed from %s to %s; registering again",
                    self.local_host, local)
        self.local_host = local
        self.stack.set_local_host(local)
        if transport != "udp":
            # The connection is bound to the old address: it cannot carry anything now.
            if self.keepalive is not None:
                self.keepalive.fail("the local address changed")
            self.stack.close_flow(transport, host, port)
        if self.on_address_change is not None:
            self.on_address_change()
        if transport != "udp" or self.public is None:
            self._update_contacts()

    # -- the flow ------------------------------------------------------------------------

    def _registered(self):
        return [r for r in self.registrations.values() if r.state == REGISTERED]

    def _is_flow(self, transport, host, port):
        destination = self.destination
        return destination is not None and destination[0] == transport \
            and destination[1] == host.strip("[]") and destination[2] == port

    def _flow_up(self, now):
        """A 2xx came over the flow: start keep-alives on it (again, after a failure),
        waiting for answers when the registrar speaks outbound."""
        if self._flow_since is None:
            self._flow_since = now
        registered = self._registered()
        if not self.keepalive_interval or not registered:
            return
        transport = self.destination[0]
        answered = any(r.outbound for r in registered)
        stun = transport == "udp" and answered
        interval = self.keepalive_interval
        timers = [r.flow_timer for r in registered if r.flow_timer]
        if timers:
            interval = min(interval, min(timers))  # RFC 5626 section 4.4: Flow-Timer
        keepalive = self.keepalive
        if keepalive is not None and keepalive.state != FAILED and keepalive.stun == stun \
                and keepalive.answered == answered and keepalive.interval == interval * 1000:
            return
        self.keepalive = KeepAlive(interval * 1000, transport, random.random,
                                   self.stack.endpoint.token, stun=stun, answered=answered)
        self.keepalive.start(now)

    def _flow_failed(self, reason):
        """The flow to the registrar is gone: close it and register again on a new one.
        A flow that fails again soon after it came up waits the RFC 5626 backoff first,
        so a registrar that drops every flow is not hammered."""
        now = self.stack.now()
        if self._flow_since is not None and now - self._flow_since >= FLOW_STABLE:
            self._flow_failures = 0
        self._flow_failures += 1
        self._flow_since = None
        if self.keepalive is not None:
            self.keepalive.fail(reason)
        self.stack.close_flow(*self.destination)
        delay = 0.0
        if self._flow_failures > 1:
            limit = backoff_limit(self._flow_failures - 1) / 1000.0
            delay = limit / 2 + random.random() * limit / 2
        log.warning("flow to the registrar %s failed: %s; registering again%s",
                    format_address(self.destination), reason,
                    " in %.0f s" % delay if delay else "")
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
        if delay:
            self._recovery_timer = self._loop.call_later(delay, self.register_again)
        else:
            self.register_again()

    # -- sending and time ----------------------------------------------------------------

    def _spawn(self, coroutine_function):
        task = self._loop.create_task(coroutine_function())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, registration, request):
        if request is None:
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sending to %s:\n%s", format_address(self.destination),
                      printable_message(request))
        transaction = self.stack.send_request(request, self.destination)
        if transaction is not None:
            self._pending[transaction] = (registration, self.current)

    def _report(self, registration, before, now):
        after = registration.state, registration.last_error
        if after == before:
            return
        status = registration.status(now)
        if registration.is_registered(now) and registration.last_error is None:
            log.info("%s registered at %s for %s s%s", registration.aor,
                     format_address(self.destination), status["granted"],
                     " (outbound)" if registration.outbound else "")
        elif registration.last_error is not None and registration.state == BACKOFF:
            log.warning("%s not registered: %s; next attempt in %s s", registration.aor,
                        printable(registration.last_error), status["next_register_in"])
        name = self._names.get(registration)
        if self.on_change is not None and name is not None:
            self.on_change(name, dict(status, device=name))

    def _arm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadlines = [r.get_timer() for r in self.registrations.values()]
        if self.keepalive is not None:
            deadlines.append(self.keepalive.get_timer())
        deadlines = [d for d in deadlines if d is not None]
        if deadlines:
            self._timer = self._loop.call_at(min(deadlines) / 1000.0, self._on_timer)

    def _on_timer(self):
        self._timer = None
        now = self.stack.now()
        for registration in self.registrations.values():
            before = registration.state, registration.last_error
            self._send(registration, registration.handle_timer(now))
            self._report(registration, before, now)
        keepalive = self.keepalive
        if keepalive is not None and keepalive.state != FAILED:
            if not self._registered():
                keepalive.stop()  # nothing stands on the flow: started by the next 2xx
                self.keepalive = None
            else:
                data = keepalive.handle_timer(now)
                if data is not None and not self.stack.send_keepalive(data, *self.destination):
                    self._flow_failed("the connection to the registrar is gone")
                elif keepalive.state == FAILED:
                    self._flow_failed(keepalive.error)
        self._arm()
