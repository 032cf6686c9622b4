"""Every device URI as a notifier (RFC 6665): who watches what, and a NOTIFY for each change.

A SUBSCRIBE for `presence` or `appliance` (see packages.py) from a user allowed the device
gets 200, and at once a NOTIFY with the state now; then a NOTIFY for every change, in
order, at most one outstanding per subscription (a burst ends with its final state). A
SUBSCRIBE in the dialog refreshes it (and gets the state again); Expires: 0 ends it with a
last NOTIFY "terminated"; a subscription that lapses ends with "terminated;reason=timeout";
a subscriber that answers a NOTIFY with an error, or not at all, is dropped.

Answers: 489 with Allow-Events for another package, 423 with Min-Expires below
`min_expires` seconds (the grant is capped at MAX_EXPIRES), 406 when the subscriber accepts
none of the package's types, 503 with Retry-After past `max_per_device` or `max_total`
subscriptions, 481
for a dialog we do not know (the core's), 401 from `access` for anyone not allowed.

NOTIFYs go back the way the SUBSCRIBE came: over its route set when it has one (a proxy),
else straight to the address it came from, which works behind the subscriber's NAT.
"""

import asyncio
import logging

from . import packages
from .net.resolver import ResolveError, resolve
from .redact import printable
from .sip.errors import ParseError, SipError
from .sip.events import ResponseReceived, TransactionTimedOut, TransportFailed
from .sip.headers import parse_address
from .sip.subscription import (
    TERMINATED,
    IntervalTooBrief,
    Subscription,
    event_of,
    grant_expires,
)

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 600  # seconds, when a SUBSCRIBE has no Expires (RFC 3856 says 3600)
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
MAX_PER_DEVICE = 100
MAX_TOTAL = 256
RETRY_AFTER = 60  # seconds, with 503


class Notifier:
    def __init__(self, stack, devices, access, respond, contact_for, uri_for,
                 min_expires=MIN_EXPIRES, max_per_device=MAX_PER_DEVICE, max_total=MAX_TOTAL):
        """`devices` maps names to devices; `access.authorize(event, name)` returns the
        user allowed to watch device `name`, or None once it has answered the request;
        `respond(event, status, reason, fields, to_tag=None)` answers a request (and logs
        it); `contact_for(name, transport)` is our Contact URI for a device; `uri_for(name)`
        the device's address of record."""
        self.stack = stack
        self.respond = respond
        self.min_expires = min_expires
        self.max_per_device = max_per_device
        self.max_total = max_total
        self.devices = devices
        self.access = access
        self.contact_for = contact_for
        self.uri_for = uri_for
        self.subscriptions = {}  # dialog id -> Subscription
        self._watchers = {}  # Subscription -> (device name, user, destination or None)
        self._pending = {}  # NOTIFY client transaction -> Subscription
        self._sent_seq = {}  # Subscription -> the device's seq its last NOTIFY showed
        self._closing = False
        self._tasks = set()
        self._timer = None
        self._loop = None

    def start(self, loop):
        self._loop = loop

    # -- SUBSCRIBE -----------------------------------------------------------------------

    def subscribe(self, event, name):
        """A SUBSCRIBE (RequestReceived) to device `name`."""
        request = event.request
        package, event_id = event_of(request)
        if package not in packages.PACKAGES:
            self._respond(event, 489, fields=(("Allow-Events", ", ".join(packages.PACKAGES)),))
            return
        user = None
        # A refresh comes in the dialog, whose random tags prove who sent it; the NOTIFYs'
        # destination never follows a refresh, so it cannot redirect the state elsewhere.
        if event.dialog is None:
            user = self.access.authorize(event, name)
            if user is None:
                return
        content_type = packages.CONTENT_TYPES[package]
        if not _accepts(request, content_type):
            self._respond(event, 406, fields=(("Accept", content_type),))
            return
        try:
            granted = grant_expires(request, DEFAULT_EXPIRES, self.min_expires, MAX_EXPIRES)
        except IntervalTooBrief as brief:
            self._respond(event, 423, fields=(("Min-Expires", brief.minimum),))
            return
        except ParseError as error:
            self._respond(event, 400, error.reason)
            return
        if event.dialog is not None:
            self._refresh(event, package, granted)
        else:
            self._create(event, name, user, package, event_id, granted)

    def _create(self, event, name, user, package, event_id, granted):
        watching = sum(1 for watcher in self._watchers.values() if watcher[0] == name)
        if self._closing:
            self._respond(event, 503, "Shutting Down", fields=(("Retry-After", RETRY_AFTER),))
            return
        if watching >= self.max_per_device or len(self._watchers) >= self.max_total:
            log.warning("refused a subscription of %s to %s: %d to it, %d in all already",
                        user, name, watching, len(self._watchers))
            self._respond(event, 503, "Too Many Subscriptions",
                          fields=(("Retry-After", RETRY_AFTER),))
            return
        now = self.stack.now()
        transport = event.source[0]
        tag = self.stack.endpoint.new_tag()
        contact = self.contact_for(name, transport)
        try:  # the subscriber's Contact (the NOTIFYs' target) and routes, read first
            subscription = Subscription(event.request, tag, contact, package, granted, now,
                                        event_id)
        except ParseError as error:
            self._respond(event, 400, "Malformed " + error.reason)
            return
        if subscription.dialog.remote_target is None:
            self._respond(event, 400, "Missing Contact")
            return
        self.respond(event, 200, None, (("Expires", granted), ("Contact", "<%s>" % contact)),
                     to_tag=tag)
        self.stack.endpoint.add_dialog(subscription.dialog)
        self.subscriptions[subscription.id] = subscription
        destination = None
        if not subscription.dialog.route_set:
            destination = event.source  # straight back: also through the subscriber's NAT
        self._watchers[subscription] = (name, user, destination)
        log.info("%s subscribed to %s (%s) for %d s", user, name, package, granted)
        if destination is None:
            self._spawn(self._locate_then_notify(subscription, granted == 0))
        else:
            self._first_notify(subscription, granted == 0)
        self._arm()

    def _refresh(self, event, package, granted):
        subscription = self.subscriptions.get(event.dialog.id)
        if subscription is None or subscription.event != package or subscription.ending \
                or subscription.event_id != event_of(event.request)[1]:
            self._respond(event, 481)
            return
        now = self.stack.now()
        self.respond(event, 200, None, (("Expires", granted),))
        subscription.refresh(granted, now)
        name, _, destination = self._watchers[subscription]
        if destination is None:
            return  # still finding where NOTIFYs go: the first one brings the state
        content_type, body = self._body(subscription)
        if granted == 0:
            log.info("%s unsubscribed from %s (%s)", self._watchers[subscription][1], name,
                     package)
            self._send(subscription, subscription.terminate(body, content_type, now))
        else:
            self._send(subscription, subscription.notify(body, content_type, now))
        self._arm()

    def _first_notify(self, subscription, fetch):
        now = self.stack.now()
        content_type, body = self._body(subscription)
        if fetch:  # Expires: 0: the state once, and done (RFC 6665 section 4.4.3)
            self._send(subscription, subscription.terminate(body, content_type, now,
                                                            "timeout"))
        else:
            self._send(subscription, subscription.notify(body, content_type, now))

    async def _locate_then_notify(self, subscription, fetch):
        dialog = subscription.dialog
        try:
            hop = parse_address(dialog.route_set[0]).uri if dialog.route_set \
                else dialog.remote_target
            destination = await resolve(hop, transports=tuple(self.stack.endpoint.local))
        except (ResolveError, ParseError) as error:
            if subscription in self._watchers:
                log.warning("cannot send NOTIFYs for %s: %s",
                            self._watchers[subscription][0], error)
                self._remove(subscription)
            return
        if subscription not in self._watchers:
            return  # ended meanwhile (its device left the config)
        name, user, _ = self._watchers[subscription]
        self._watchers[subscription] = (name, user, destination)
        self._first_notify(subscription, fetch)

    # -- changes ---------------------------------------------------------------------------

    def device_changed(self, name, status):
        """Device `name` changed to `status` (its status() at the event): a NOTIFY to each
        of its watchers."""
        now = self.stack.now()
        for subscription, watcher in list(self._watchers.items()):
            if watcher[0] == name and watcher[2] is not None \
                    and status.get("seq", 0) > self._sent_seq.get(subscription, -1):
                content_type, body = self._body(subscription, status)
                self._send(subscription, subscription.notify(body, content_type, now))

    def reconsider(self, gone, allowed):
        """After a config reload: end each subscription to a device of `gone` (name ->
        its last status) with "terminated;reason=noresource" (RFC 6665: do not subscribe
        again), and each whose watcher `allowed(user, name)` no longer lets watch its
        device with "reason=rejected"."""
        now = self.stack.now()
        for subscription, (name, user, destination) in list(self._watchers.items()):
            if subscription.ending:
                continue
            if name in gone:
                reason = "noresource"
            elif not allowed(user, name):
                reason = "rejected"
            else:
                continue
            log.info("ending the subscription of %s to %s (%s): %s", user, name,
                     subscription.event, reason)
            if destination is None:
                self._remove(subscription)  # nowhere to send a NOTIFY yet
                continue
            content_type, body = self._body(subscription, gone.get(name))
            self._send(subscription, subscription.terminate(body, content_type, now, reason))
        self._arm()

    # -- NOTIFY transactions ----------------------------------------------------------------

    def handle(self, event):
        """A client transaction event; True when it was a NOTIFY of ours."""
        subscription = self._pending.pop(getattr(event, "transaction", None), None)
        if subscription is None:
            return False
        now = self.stack.now()
        if isinstance(event, ResponseReceived):
            if event.response.status < 200:
                self._pending[event.transaction] = subscription
                return True
            request = subscription.notify_answered(event.response, now)
        elif isinstance(event, (TransactionTimedOut, TransportFailed)):
            request = subscription.notify_failed(now)
        else:
            return False
        self._send(subscription, request)
        if subscription.state == TERMINATED:
            self._remove(subscription)
        return True

    # -- status and end --------------------------------------------------------------------

    def status(self):
        now = self.stack.now()
        return [{"device": name, "user": user, "event": subscription.event,
                 "subscriber": str(subscription.subscriber), "state": subscription.state,
                 "expires_in": subscription.remaining(now),
                 "notifications": subscription.notifications}
                for subscription, (name, user, _) in self._watchers.items()]

    async def close(self, wait=1.0):
        """End every subscription with a last NOTIFY (terminated;reason=deactivated: the
        subscriber may subscribe again) and wait briefly for the answers."""
        self._closing = True
        if self._loop is None:
            return  # never started
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()
        now = self.stack.now()
        for subscription in list(self._watchers):
            if self._watchers[subscription][2] is not None and not subscription.ending:
                content_type, body = self._body(subscription)
                self._send(subscription, subscription.terminate(body, content_type, now,
                                                                "deactivated"))
        deadline = self._loop.time() + wait if self._loop else 0
        while self._pending and self._loop.time() < deadline:
            await asyncio.sleep(0.02)

    # -- inside ------------------------------------------------------------------------------

    def _body(self, subscription, status=None):
        name = self._watchers[subscription][0]
        if status is None:
            status = self.devices[name].status()
        self._sent_seq[subscription] = status.get("seq", 0)
        return packages.body(subscription.event, self.uri_for(name), name, status)

    def _send(self, subscription, request):
        if request is None:
            return
        destination = self._watchers[subscription][2]
        try:
            transaction = self.stack.send_request(request, destination)
        except SipError as error:  # a route over a transport we do not listen on
            log.warning("cannot send NOTIFYs for %s: %s", self._watchers[subscription][0],
                        error)
            subscription.notify_failed(self.stack.now())
            self._remove(subscription)
            return
        if transaction is not None:
            self._pending[transaction] = subscription

    def _remove(self, subscription):
        watcher = self._watchers.pop(subscription, None)
        self._sent_seq.pop(subscription, None)
        self.subscriptions.pop(subscription.id, None)
        self.stack.endpoint.remove_dialog(subscription.dialog)
        if watcher is not None:
            log.info("subscription of %s to %s (%s) ended: %s", watcher[1], watcher[0],
                     subscription.event, printable(subscription.reason or "ended"))

    def _respond(self, event, status, reason=None, fields=()):
        self.respond(event, status, reason, fields)

    def _spawn(self, coroutine):
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _arm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadlines = [s.get_timer() for s, watcher in self._watchers.items()
                     if watcher[2] is not None]
        deadlines = [d for d in deadlines if d is not None]
        if deadlines and self._loop is not None:
            self._timer = self._loop.call_at(min(deadlines) / 1000.0, self._on_timer)

    def _on_timer(self):
        self._timer = None
        now = self.stack.now()
        for subscription in list(self._watchers):
            if subscription.expired(now) and self._watchers[subscription][2] is not None:
                content_type, body = self._body(subscription)
                self._send(subscription, subscription.terminate(body, content_type, now,
                                                                "timeout"))
        self._arm()


def _accepts(request, content_type):
    """Whether the SUBSCRIBE's Accept (none: the package's default) takes `content_type`."""
    try:
        accepted = request.get_list("accept")
    except ParseError:
        return True
    if not request.has("accept"):
        return True
    kind = content_type.split("/")[0]
    for value in accepted:
        media = value.split(";")[0].strip().lower()
        if media in (content_type, "*/*", kind + "/*"):
            return True
    return False
