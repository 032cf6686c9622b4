"""The firmware's SIP side: every device a SIP URI, on the shared core (appliance/sip/).

Sans-I/O like the core, so that the same code runs on a board, on the WebAssembly
MicroPython in the tests, and on a PC (firmware/run_host.py):

    agent = Agent(settings, devices, send, token, random, resolve)
    agent.start(local_host, now)        # REGISTERs, keep-alives
    agent.receive(data, (host, port), now)    # each datagram from the socket
    agent.tick(now)                     # often: timers, debounced doors, pulses
    agent.stop(now)                     # unregister

`send(data, host, port)` puts a datagram on the socket; `token(n)` gives n random hex
digits; `random()` a float in [0, 1); `resolve(host, port)` an IPv4 (host, port) (raises
OSError). Times are milliseconds from a clock that never wraps (board.Clock).

What it serves, as the Pi agent does: OPTIONS, SUBSCRIBE to the `appliance` and
`presence` packages of every device (a NOTIFY at once and on every change), MESSAGE and
DO to lights and relays in the command language (`status` also reports the board's free
memory and uptime), all digest-authenticated against `users`. With a `proxy`, each
device registers its address of record there; with `nat`, STUN learns the public address
for the Contact and keep-alives hold the router's mapping open.

Memory stays bounded: at most MAX_SUBSCRIPTIONS watchers, MAX_TRANSACTIONS requests in
progress (further requests are dropped; UDP senders send again), MAX_NONCES nonces and
MAX_SOURCES sources with failed passwords remembered.
"""

import gc

from appliance import __version__, commands, packages
from appliance.sip.auth import MISSING, DigestServer
from appliance.sip.digest import same_credentials
from appliance.sip.endpoint import Capabilities, Endpoint
from appliance.sip.errors import ParseError, SipError
from appliance.sip.events import (
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportFailed,
)
from appliance.sip.headers import parse_address
from appliance.sip.keepalive import FAILED, KeepAlive
from appliance.sip.registration import Registration
from appliance.sip.stun import is_stun
from appliance.sip.stun import parse_message as parse_stun
from appliance.sip.subscription import (
    TERMINATED,
    IntervalTooBrief,
    Subscription,
    event_of,
    grant_expires,
)

USER_AGENT = "sip-appliance-firmware/%s" % __version__
OUTPUT_ALLOW = ("OPTIONS", "ACK", "CANCEL", "SUBSCRIBE", "MESSAGE", "DO")
SENSOR_ALLOW = ("OPTIONS", "ACK", "CANCEL", "SUBSCRIBE")
ACCEPT = commands.CONTENT_TYPES
MAX_SUBSCRIPTIONS = 8
MAX_TRANSACTIONS = 48  # each answered one stays 32 s (Timer J) to absorb retransmissions
MAX_NONCES = 16
MAX_SOURCES = 8
MAX_FAILURES = 5  # wrong passwords from one source within FAILURE_WINDOW: then 503
FAILURE_WINDOW = 60000
DEFAULT_EXPIRES = 600
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
LOOKUP_RETRY = 30000  # ms between lookups of a registrar or STUN server not found


class Agent:
    def __init__(self, settings, devices, send, token, random, resolve, mem_free=None,
                 log=print):
        self.settings = settings
        self.devices = devices
        self.send = send
        self.token = token
        self.random = random
        self.resolve = resolve
        self.mem_free = mem_free or _mem_free
        self.log = log
        agent = settings["agent"]
        self.port = agent["port"]
        self.users = {user["name"]: user for user in settings["users"]}
        self.endpoint = Endpoint(
            {"udp": ("0.0.0.0", self.port)}, token,
            Capabilities(allow=OUTPUT_ALLOW, accept=ACCEPT, allow_events=packages.PACKAGES),
            user_agent=USER_AGENT)
        self.auth = DigestServer(agent["domain"] or agent["name"], token,
                                 agent["digest_algorithms"], max_nonces=MAX_NONCES)
        self.local_host = None
        self.public = None  # (host, port) the STUN server sees
        self.registrar = None  # (host, port)
        self.registrations = {}  # device name -> Registration
        self.keepalive = None  # CRLF keep-alives to the registrar
        self.stun = None  # STUN Binding requests to [nat] stun, for the public address
        self.stun_server = None
        self.subscriptions = {}  # dialog id -> (Subscription, device name, (host, port))
        self.started = None
        self.stopping = False
        self.counters = {"requests": 0, "dropped": 0, "notifies": 0}
        self._pending = {}  # client transaction -> (kind, object)
        self._failures = {}  # source host -> (count, since)
        self._lookup_again = None  # when to look the registrar up again (ms)
        self._stun_lookup_again = None  # and the STUN server

    # -- start and stop -----------------------------------------------------------------

    def start(self, local_host, now):
        """Begin serving from `local_host` (the board's address): resolve the registrar
        and the STUN server, send the REGISTERs and arm the keep-alives."""
        self.started = now
        self.local_host = local_host
        self.endpoint.local["udp"] = (local_host, self.port)
        self._start_stun(now)
        self._start_registrations(now)

    def _start_stun(self, now):
        nat = self.settings["nat"]
        if nat is None or not nat["stun"]:
            return
        host, _, port = nat["stun"].rpartition(":")
        self.stun_server = self._lookup(host, int(port), "nat.stun")
        if self.stun_server is None:
            self._stun_lookup_again = now + LOOKUP_RETRY
            return
        self._stun_lookup_again = None
        self.stun = KeepAlive(nat["keepalive"] * 1000, "udp", self.random, self.token,
                              stun=True)
        self.stun.start(now - nat["keepalive"] * 1000)  # the first one at once

    def _start_registrations(self, now):
        proxy = self.settings["proxy"]
        if proxy is None:
            return
        registrar = parse_address("<%s>" % proxy["registrar"]).uri
        self.registrar = self._lookup(registrar.host, registrar.port or 5060,
                                      "proxy.registrar")
        if self.registrar is None:
            self._lookup_again = now + LOOKUP_RETRY
            return
        self._lookup_again = None
        nat = self.settings["nat"]
        if nat is not None:
            self.keepalive = KeepAlive(nat["keepalive"] * 1000, "udp", self.random)
            self.keepalive.start(now)
        domain = self.settings["agent"]["domain"] or registrar.host
        for name in self.devices:
            entry = self._entry(name)
            credentials = same_credentials(entry["username"] or proxy["username"],
                                           entry["password"] or proxy["password"] or "")
            registration = Registration("sip:%s@%s" % (name, domain), proxy["registrar"],
                                        self.contact(name), self.token, self.random,
                                        expires=proxy["expires"], credentials=credentials)
            self.registrations[name] = registration
            self._register(registration, registration.start(now), now)
        self._flush(now)

    def stop(self, now):
        """Unregister (Expires: 0) and end every subscription; the caller keeps calling
        receive() and tick() for a moment so the answers come in; new subscriptions and
        commands get 503 meanwhile."""
        self.stopping = True
        for subscription, name, _ in list(self.subscriptions.values()):
            content_type, body = self._body(subscription, name)
            self._send_notify(subscription, subscription.terminate(body, content_type, now,
                                                                   "noresource"), now)
        for registration in self.registrations.values():
            self._register(registration, registration.stop(now), now)
        self._flush(now)

    def address_changed(self, local_host, now):
        """Wi-Fi came back with (maybe) another address: register the new Contact."""
        self.local_host = local_host
        self.endpoint.local["udp"] = (local_host, self.port)
        if self.stun is not None:
            self.stun.start(now - self.stun.interval)  # ask for the public address again
        self._contacts_changed(now, again=True)

    def contact(self, name):
        host, port = self.public or (self.local_host, self.port)
        return "sip:%s@%s:%d" % (name, host, port)

    def uri(self, name):
        """Device `name`'s address of record."""
        registration = self.registrations.get(name)
        if registration is not None:
            return registration.aor
        domain = self.settings["agent"]["domain"]
        if domain:
            return "sip:%s@%s" % (name, domain)
        if self.port == 5060:
            return "sip:%s@%s" % (name, self.local_host)
        return "sip:%s@%s:%d" % (name, self.local_host, self.port)

    # -- the network in --------------------------------------------------------------------

    def receive(self, data, source, now):
        if is_stun(data):
            self._stun_answer(data, source, now)
            return
        if len(self.endpoint.server_transactions) >= MAX_TRANSACTIONS \
                and not data.startswith(b"SIP/"):
            self.counters["dropped"] += 1
            return
        self.endpoint.receive(data, "udp", source, now)
        self._flush(now)

    def _stun_answer(self, data, source, now):
        if self.stun is None or source != self.stun_server:
            return
        try:
            message = parse_stun(data)
            if not self.stun.stun_response(message, now):
                return
        except ParseError:
            return
        mapped = self.stun.mapped
        if self.stun.state == FAILED:
            self.log("nat: %s" % self.stun.error)
            # A moved mapping is learned again at once; a refusal waits an interval.
            self.stun.start(now - self.stun.interval if mapped != self.public else now)
        if mapped is not None and ":" in mapped[0]:
            return  # an IPv6 mapping: the board's Contacts are IPv4
        if mapped is not None and mapped != self.public:
            self.log("nat: public address %s:%d" % mapped)
            self.public = mapped
            self._contacts_changed(now)

    # -- time ------------------------------------------------------------------------------

    def tick(self, now):
        """Everything that is due: the core's timers, refreshes and keep-alives, devices
        that changed, subscriptions that lapsed."""
        self.endpoint.handle_timer(now)
        if self._stun_lookup_again is not None and now >= self._stun_lookup_again:
            self._start_stun(now)
        if self._lookup_again is not None and now >= self._lookup_again:
            self._start_registrations(now)
        for registration in self.registrations.values():
            self._register(registration, registration.handle_timer(now), now)
        if self.keepalive is not None and self.registrar is not None:
            data = self.keepalive.handle_timer(now)
            if data is not None:
                self._send(data, self.registrar, now)
        if self.stun is not None:
            data = self.stun.handle_timer(now)
            if data is not None:
                self._send(data, self.stun_server, now)
            elif self.stun.state == FAILED:  # unanswered: keep asking, every interval
                self.stun.start(now)
        for name, device in self.devices.items():
            if device.poll(now):
                self.changed(name, now)
        for subscription, name, _ in list(self.subscriptions.values()):
            if subscription.expired(now):
                content_type, body = self._body(subscription, name)
                self._send_notify(subscription, subscription.terminate(
                    body, content_type, now, "timeout"), now)
        self._flush(now)

    def changed(self, name, now):
        """Device `name` changed: a NOTIFY to each of its watchers."""
        device = self.devices[name]
        self.log("%s: %s" % (name, device.state))
        for subscription, watched, _ in list(self.subscriptions.values()):
            if watched == name:
                content_type, body = self._body(subscription, name)
                self._send_notify(subscription, subscription.notify(body, content_type, now),
                                  now)

    # -- requests --------------------------------------------------------------------------

    def _request(self, event, now):
        request = event.request
        self.counters["requests"] += 1
        if event.transaction is None:
            return  # an ACK in a dialog
        name = request.uri.user
        device = self.devices.get(name) if name is not None else None
        method = request.method
        if device is None:
            self._respond(event, 404, now)
        elif method == "OPTIONS":
            self._options(event, now)
        elif self.stopping and (method != "SUBSCRIBE" or event.dialog is None):
            self._respond(event, 503, now, "Shutting Down", (("Retry-After", 60),))
        elif method == "SUBSCRIBE":
            self._subscribe(event, name, now)
        elif method in ("MESSAGE", "DO") and device.type != "door":
            self._control(event, name, device, now)
        else:
            allow = SENSOR_ALLOW if device.type == "door" else OUTPUT_ALLOW
            self._respond(event, 405, now, fields=(("Allow", ", ".join(allow)),))

    def _options(self, event, now):
        fields = [("Allow", ", ".join(OUTPUT_ALLOW)), ("Accept", ", ".join(ACCEPT)),
                  ("Allow-Events", ", ".join(packages.PACKAGES)), ("Supported", "")]
        self._respond(event, 200, now, fields=fields)

    def board_status(self, now):
        """The board's health, for the `status` command of an authenticated user (not in
        OPTIONS, which anyone may send: uptime tells when the board restarted)."""
        uptime = (now - self.started) // 1000 if self.started is not None else 0
        return {"mem_free": self.mem_free(), "uptime": uptime,
                "registered": sum(1 for r in self.registrations.values()
                                  if r.is_registered(now)),
                "watchers": len(self.subscriptions)}

    def _control(self, event, name, device, now):
        request = event.request
        user = self._authorize(event, name, now)
        if user is None:
            return
        if not request.body:
            self._respond(event, 400, now, "Missing Body; " + commands.USAGE)
            return
        before = device.seq
        try:
            command = commands.parse(request.get("content-type"), request.body)
            status = device.apply(command, now)
        except commands.CommandError as error:
            self._respond(event, error.status, now, error.reason, error.fields)
            return
        except ValueError as error:
            text = str(error)
            self._respond(event, 400, now, text[:1].upper() + text[1:])
            return
        self.log("%s: %s by %s -> %s" % (name, command.action, user, status["state"]))
        if device.seq != before:
            self.changed(name, now)
        if request.method == "DO":
            status = dict(status)
            status["device"] = name
            if command.action == "status":
                status.update(self.board_status(now))
            self._respond(event, 200, now, fields=(("Content-Type", commands.JSON),),
                          body=packages.appliance(name, status))
        else:
            self._respond(event, 200, now)

    def _subscribe(self, event, name, now):
        request = event.request
        package, event_id = event_of(request)
        if package not in packages.PACKAGES:
            self._respond(event, 489, now,
                          fields=(("Allow-Events", ", ".join(packages.PACKAGES)),))
            return
        user = None
        if event.dialog is None:  # a refresh comes in the dialog, whose tags prove who
            user = self._authorize(event, name, now)
            if user is None:
                return
        content_type = packages.CONTENT_TYPES[package]
        accept = request.get("accept")
        if accept is not None and content_type not in accept.lower() \
                and "*/*" not in accept:
            self._respond(event, 406, now, fields=(("Accept", content_type),))
            return
        try:
            granted = grant_expires(request, DEFAULT_EXPIRES, MIN_EXPIRES, MAX_EXPIRES)
        except IntervalTooBrief as brief:
            self._respond(event, 423, now, fields=(("Min-Expires", brief.minimum),))
            return
        except ParseError as error:
            self._respond(event, 400, now, error.reason)
            return
        if event.dialog is not None:
            entry = self.subscriptions.get(event.dialog.id)
            if entry is None or entry[0].event != package or entry[0].ending:
                self._respond(event, 481, now)
                return
            subscription = entry[0]
            self._respond(event, 200, now, fields=(("Expires", granted),))
            subscription.refresh(granted, now)
            content_type, body = self._body(subscription, name)
            if granted == 0:
                request = subscription.terminate(body, content_type, now)
            else:
                request = subscription.notify(body, content_type, now)
            self._send_notify(subscription, request, now)
            return
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            self._respond(event, 503, now, "Too Many Subscriptions",
                          (("Retry-After", 60),))
            return
        tag = self.endpoint.new_tag()
        contact = self.contact(name)
        try:
            subscription = Subscription(request, tag, contact, package, granted, now,
                                        event_id)
            destination = self._destination(subscription, event.source)
        except Exception:  # a Contact or Route that cannot be read or looked up
            self._respond(event, 400, now, "Malformed Contact or Route")
            return
        self._respond(event, 200, now, fields=(("Expires", granted),
                                               ("Contact", "<%s>" % contact)), to_tag=tag)
        self.endpoint.add_dialog(subscription.dialog)
        self.subscriptions[subscription.id] = (subscription, name, destination)
        self.log("%s subscribed to %s (%s) for %d s" % (user, name, package, granted))
        content_type, body = self._body(subscription, name)
        if granted == 0:  # a fetch: the state once
            request = subscription.terminate(body, content_type, now, "timeout")
        else:
            request = subscription.notify(body, content_type, now)
        self._send_notify(subscription, request, now)

    def _destination(self, subscription, source):
        """Where NOTIFYs go: the first route of the dialog (a proxy that recorded the
        route), else straight back to the SUBSCRIBE's source (through the watcher's NAT)."""
        dialog = subscription.dialog
        if dialog.remote_target is None:
            raise SipError("no Contact")
        if not dialog.route_set:
            return (source[1], source[2])
        hop = parse_address(dialog.route_set[0]).uri
        return self.resolve(hop.host, hop.port or 5060)

    def _body(self, subscription, name):
        status = self.devices[name].status()
        return packages.body(subscription.event, self.uri(name), name, status)

    def _send_notify(self, subscription, request, now):
        if request is None:
            return
        entry = self.subscriptions.get(subscription.id)
        if entry is None:
            return
        self.counters["notifies"] += 1
        transaction = self.endpoint.send_request(request, ("udp",) + tuple(entry[2]), now)
        self._pending[transaction] = ("notify", subscription)

    def _notify_done(self, subscription, event, now):
        if isinstance(event, ResponseReceived):
            request = subscription.notify_answered(event.response, now)
        else:
            request = subscription.notify_failed(now)
        self._send_notify(subscription, request, now)
        if subscription.state == TERMINATED:
            self.endpoint.remove_dialog(subscription.dialog)
            entry = self.subscriptions.pop(subscription.id, None)
            if entry is not None:
                self.log("%s: subscription of %s ended (%s)" % (entry[1],
                                                               subscription.subscriber,
                                                               subscription.reason))

    # -- who may ---------------------------------------------------------------------------

    def _authorize(self, event, name, now):
        """The user allowed `name` who sent this request, or None once it is answered
        (401 with a challenge, 403, or 503 for a source that keeps failing)."""
        source = event.source[1]
        count, since = self._failures.get(source, (0, now))
        if now - since >= FAILURE_WINDOW:
            count, since = 0, now
        if count >= MAX_FAILURES:
            wait = max(1, (since + FAILURE_WINDOW - now + 999) // 1000)
            self._respond(event, 503, now, "Too Many Failed Attempts", (("Retry-After", wait),))
            return None
        result = self.auth.check(event.request, now, self._password, (self.uri(name),))
        if result.ok:
            self._failures.pop(source, None)
            user = self.users[result.username]
            if name in user["devices"]:
                return user["name"]
            self._respond(event, 403, now, "Not Allowed For This Device")
            return None
        if result.outcome != MISSING:
            self.log("%s to %s from %s refused: %s" % (event.request.method, name, source,
                                                      result.reason))
            self._failures.pop(source, None)
            if len(self._failures) >= MAX_SOURCES:  # one forgotten (any: MicroPython's
                self._failures.pop(next(iter(self._failures)))  # dicts keep no order)
            self._failures[source] = (count + 1, since)
        status, header, values = self.auth.rejection(result, now)
        self._respond(event, status, now, fields=[(header, value) for value in values])
        return None

    def _password(self, username):
        user = self.users.get(username)
        return user["password"] if user is not None else None

    # -- registrations ---------------------------------------------------------------------

    def _register(self, registration, request, now):
        if request is None:
            return
        transaction = self.endpoint.send_request(request, ("udp",) + tuple(self.registrar), now)
        self._pending[transaction] = ("register", registration)

    def _registered(self, registration, event, now):
        before = registration.state
        if isinstance(event, ResponseReceived):
            request = registration.response(event.response, now)
        elif isinstance(event, TransactionTimedOut):
            request = registration.timed_out(now)
        else:
            request = registration.transport_failed(now)
        if registration.state != before:
            self.log("%s: %s%s" % (registration.aor, registration.state,
                                   " (%s)" % registration.last_error
                                   if registration.last_error else ""))
        self._register(registration, request, now)

    def _contacts_changed(self, now, again=False):
        """Register each changed Contact at once; with `again` (the network came back),
        also each device not registered now, instead of waiting out its backoff."""
        for name, registration in self.registrations.items():
            contact = self.contact(name)
            if contact != registration.contact or (again
                                                   and not registration.is_registered(now)):
                self._register(registration, registration.contact_changed(contact, now), now)
        self._flush(now)

    # -- plumbing --------------------------------------------------------------------------

    def _respond(self, event, status, now, reason=None, fields=(), body=b"", to_tag=None):
        response = self.endpoint.respond(event.transaction, status, reason, fields, body,
                                         to_tag, now)
        request = event.request
        uri = request.uri  # logged without any password the Request-URI may carry
        where = uri.host if uri.port is None else "%s:%d" % (uri.host, uri.port)
        self.log("%s sip:%s%s from %s:%d -> %d %s" % (
            request.method, uri.user + "@" if uri.user else "", where, event.source[1],
            event.source[2], status, response.reason))

    def _flush(self, now):
        """Send what the core has to send and act on its events, until both run dry."""
        endpoint = self.endpoint
        while True:
            out = endpoint.datagrams_to_send()
            for datagram in out:
                self._send(datagram.data, (datagram.host, datagram.port), now,
                           datagram.transport)
            event = endpoint.next_event()
            if event is None:
                if not out:
                    return
                continue
            if isinstance(event, RequestReceived):
                self._request(event, now)
            elif isinstance(event, (ResponseReceived, TransactionTimedOut, TransportFailed)):
                if isinstance(event, ResponseReceived) and event.response.status < 200:
                    continue
                entry = self._pending.pop(event.transaction, None)
                if entry is None:
                    continue
                if entry[0] == "register":
                    self._registered(entry[1], event, now)
                else:
                    self._notify_done(entry[1], event, now)

    def _send(self, data, destination, now, transport="udp"):
        try:
            self.send(data, destination[0], destination[1])
        except OSError:
            self.endpoint.transport_error(transport, destination[0], destination[1], now)

    def _lookup(self, host, port, key):
        try:
            return self.resolve(host, port)
        except OSError as error:
            self.log("%s: cannot resolve %s (%s); check the name and the network"
                     % (key, host, error))
            return None

    def _entry(self, name):
        for entry in self.settings["devices"]:
            if entry["name"] == name:
                return entry
        return None


def _mem_free():
    try:
        return gc.mem_free()
    except AttributeError:  # CPython
        return None
