"""Alerts: a short text MESSAGE (RFC 3428) to each `notify` target of a door or doorbell,
for every event ("Front door opened at 10:32:05").

Each target has its own queue: its alerts go one at a time, in the order of the events, so
"opened" never arrives after "closed". A MESSAGE goes through the home proxy when there is
one ([proxy]: to the server the registrations located, over their preloaded route, From the
device's address of record, answering the proxy's 401/407 with the device's credentials, at
most twice per attempt); without one, the target is located itself (RFC 3263).

A broker or proxy outage delays events; it does not lose them. An alert that meets no
answer, a transport failure, 408, 480, 429, a 5xx, a challenge it cannot answer, or (from
the home proxy, for a person whose phone is not registered just now) 404, stays at the head
of its queue and is sent again after a backoff (5 s doubling up to 5 min, each wait drawn
between half and the whole; a longer Retry-After is honoured), while later alerts queue
behind it (at most `max_queue` per target: past that the oldest waiting one is dropped).
Any other final answer (403, 415, 3xx, 6xx, a 404 from the target itself...) says the alert
can never be delivered: it is dropped and the next one goes. The log has one WARNING when a
target starts failing (one more if alerts start being dropped, for either reason), DEBUG
lines for the failures after it, and one INFO when it takes alerts again; an INFO line per
delivered alert with its Call-ID; never a password or an Authorization header. A stop
waits briefly for MESSAGEs on their way and logs how many alerts were left undelivered.

The text names the device after its config name, predictably: `-` and `_` become spaces, a
last word ending in "door" has it split off ("frontdoor" -> "front door"), and the first
letter is a capital ("Front door"). The time is the event's, in local time.
"""

import asyncio
import collections
import logging
import random
from datetime import datetime

from .net.resolver import ResolveError, resolve
from .net.stack import format_address
from .redact import printable, printable_message
from .sip.digest import DigestClient, same_credentials
from .sip.events import ResponseReceived, TransactionTimedOut, TransportFailed
from .sip.message import make_request
from .sip.uri import parse_uri

log = logging.getLogger(__name__)

BACKOFF = (5.0, 300.0)  # seconds: the wait after a streak's first failure, and the most
MAX_QUEUE = 50  # alerts kept per target
MAX_CHALLENGES = 2  # 401/407 answered per attempt
CLOSE_WAIT = 1.0  # seconds a stop waits for MESSAGEs already sent
CONTENT_TYPE = "text/plain;charset=UTF-8"
MAX_TARGETS = 64  # notify targets and reply recipients at once
_RETRIED = (408, 429, 480)  # with 5xx, 401 and 407: worth sending again later
_VERBS = {"open": "opened", "closed": "closed", "press": "rang"}


def state_text(name, status):
    """"Porch is on, brightness 40": a light's or relay's state for a person."""
    text = "%s is %s" % (device_label(name), status["state"])
    if status.get("brightness") is not None and status["state"] == "on":
        text += ", brightness %d" % status["brightness"]
    return text


def device_label(name):
    """A person's name for a device: "frontdoor" -> "Front door", "garage_door" ->
    "Garage door", "porch-light" -> "Porch light", "doorbell" -> "Doorbell"."""
    words = name.replace("_", " ").replace("-", " ").split() or [name]
    last = words[-1]
    if len(last) > 4 and last.lower().endswith("door"):
        words[-1:] = [last[:-4], last[-4:]]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def alert_text(name, event, status):
    """The text of an alert: "Front door opened at 10:32:05" (the event's local time)."""
    when = None
    changed = status.get("changed") if status else None
    if changed:
        try:
            when = datetime.fromisoformat(changed).astimezone()
        except ValueError:
            when = None
    if when is None:
        when = datetime.now().astimezone()
    verb = _VERBS.get(event, event)
    return "%s %s at %s" % (device_label(name), verb, when.strftime("%H:%M:%S"))


class Alert:
    """One MESSAGE to send. An attempt answering a challenge keeps the Call-ID and From
    tag, with the next CSeq (RFC 3261 section 22.2); an attempt after a failure is a new
    request, with a new Call-ID and tag."""

    __slots__ = ("device", "text", "from_uri", "call_id", "tag", "cseq", "challenges")

    def __init__(self, device, text, from_uri, call_id, tag):
        self.device = device
        self.text = text
        self.from_uri = from_uri
        self.call_id = call_id
        self.tag = tag
        self.cseq = 0
        self.challenges = 0  # 401/407 answered in this attempt


class _Target:
    """A notify URI: its queue (the head is the alert being sent or waiting to be sent
    again), where it was found, and its current failure streak."""

    def __init__(self, uri):
        self.uri = uri
        self.queue = collections.deque()
        self.destination = None  # (transport, host, port) when located without a proxy
        self.sending = None  # the client transaction of the head alert, while it runs
        self.locating = None  # the task looking the target up
        self.timer = None  # the wait before the head alert is sent again
        self.retry_at = None  # when, in loop time
        self.failures = 0  # of this streak
        self.warned = set()  # "kept", "dropped", "overflow": warned about in this streak
        self.dropped = 0  # alerts lost in this streak
        self.last_error = None
        self.delivered = 0  # since the start
        self.lost = 0  # since the start: dropped, or still queued at the stop


class Alerts:
    def __init__(self, stack, devices, uri_for, proxy=None, registrations=None,
                 backoff=BACKOFF, max_queue=MAX_QUEUE, random=random.random):
        """`devices` are the [[devices]] configs (those with `notify` matter);
        `uri_for(name)` a device's address of record, its From without a proxy; `proxy`
        the [proxy] config, whose (or the device's own) credentials answer challenges;
        `registrations` the agent's Registrations: MESSAGEs then go to the server they
        located, From the address of record the device registers."""
        self.stack = stack
        self.uri_for = uri_for
        self.backoff = backoff
        self.max_queue = max_queue
        self.random = random
        self.targets = {}  # notify URI -> _Target
        self._pending = {}  # client transaction -> (_Target, Alert)
        self._digests = {}  # device name -> (credentials, DigestClient), with a proxy
        self._loop = None
        self._closing = False
        self.update(devices, proxy, registrations)

    def update(self, devices, proxy=None, registrations=None):
        """Take the devices, proxy and registrations of a (reloaded) config. Alerts
        already queued are kept, also for a target no device names any more."""
        self.registrations = registrations
        self.notify = {}  # device name -> its targets
        digests, self._digests = self._digests, {}
        for device in devices:
            uris = tuple(getattr(device, "notify", ()) or ())
            if not uris and not getattr(device, "reply", False):
                continue
            if uris:
                self.notify[device.name] = [self.targets.setdefault(uri, _Target(uri))
                                            for uri in dict.fromkeys(uris)]
            if proxy is not None:
                credentials = (device.username or proxy.username,
                               (device.password or proxy.password).reveal())
                kept = digests.get(device.name)
                # (credentials, DigestClient): a kept client keeps its cached challenge.
                self._digests[device.name] = kept if kept and kept[0] == credentials \
                    else (credentials, DigestClient(same_credentials(*credentials),
                                                    self.stack.endpoint.token))
        named = {target for targets in self.notify.values() for target in targets}
        for uri, target in list(self.targets.items()):
            if target not in named and not target.queue and target.sending is None \
                    and target.locating is None:
                del self.targets[uri]

    def start(self, loop):
        self._loop = loop

    # -- events --------------------------------------------------------------------------

    def device_changed(self, name, event, status):
        """Device `name` reported `event` ("open", "closed", "press"); `status` is its
        status() at the event. Queues an alert for each of its targets."""
        self.message(name, alert_text(name, event, status))

    def message(self, name, text):
        """A MESSAGE with `text` from device `name` to each of its `notify` targets
        ("Missed visitor at 10:32"), queued and retried like an alert."""
        targets = self.notify.get(name)
        if not targets or self._loop is None or self._closing:
            return
        endpoint = self.stack.endpoint
        for target in targets:
            self._enqueue(target, Alert(name, text, self._from_uri(name),
                                        endpoint.new_call_id(), endpoint.new_tag()))
            self._pump(target)

    def reply(self, name, uri, status):
        """A MESSAGE to `uri` (who just sent device `name` a command) with its state now,
        e.g. "Porch is on, brightness 40"; queued and retried like an alert."""
        if self._loop is None or self._closing:
            return
        target = self.targets.get(uri)
        if target is None:
            if len(self.targets) >= MAX_TARGETS:
                log.warning("no reply to %s: already %d targets", uri, len(self.targets))
                return
            target = self.targets[uri] = _Target(uri)
        endpoint = self.stack.endpoint
        self._enqueue(target, Alert(name, state_text(name, status), self._from_uri(name),
                                    endpoint.new_call_id(), endpoint.new_tag()))
        self._pump(target)

    def handle(self, event):
        """A client transaction event; True when it belongs to one of our MESSAGEs."""
        transaction = getattr(event, "transaction", None)
        entry = self._pending.pop(transaction, None)
        if entry is None:
            return False
        target, alert = entry
        target.sending = None
        if isinstance(event, ResponseReceived):
            response = event.response
            if response.status < 200:
                self._pending[transaction] = entry
                target.sending = transaction
                return True
            self._answered(target, alert, response)
        elif isinstance(event, TransactionTimedOut):
            self._failed(target, alert, "no response", True)
        elif isinstance(event, TransportFailed):
            self._failed(target, alert, "cannot reach %s" % format_address(transaction.destination),
                         True)
        else:
            return False
        return True

    # -- status and end ------------------------------------------------------------------

    def status(self):
        """Each target as `appliance status` shows it."""
        now = self._loop.time() if self._loop is not None else 0.0
        return [{"target": target.uri, "queued": len(target.queue),
                 "failing": target.failures > 0, "failures": target.failures,
                 "last_error": target.last_error,
                 "retry_in": None if target.retry_at is None
                 else max(0, round(target.retry_at - now)),
                 "delivered": target.delivered, "dropped": target.lost}
                for target in self.targets.values()]

    async def close(self, wait=CLOSE_WAIT):
        """Send nothing more; wait briefly for MESSAGEs already sent; log what is left."""
        if self._loop is None or self._closing:
            return
        self._closing = True
        for target in self.targets.values():
            if target.timer is not None:
                target.timer.cancel()
                target.timer = target.retry_at = None
            if target.locating is not None:
                target.locating.cancel()
        deadline = self._loop.time() + wait
        while self._pending and self._loop.time() < deadline:
            await asyncio.sleep(0.02)
        for target in self.targets.values():
            if target.queue:
                target.lost += len(target.queue)
                log.warning("%d alert(s) to %s not delivered: stopping", len(target.queue),
                            target.uri)

    # -- sending -------------------------------------------------------------------------

    def _digest(self, name):
        entry = self._digests.get(name)
        return entry[1] if entry is not None else None

    def _from_uri(self, name):
        if self.registrations is not None:
            return "sip:%s@%s" % (name, self.registrations.domain)
        return self.uri_for(name)

    def _enqueue(self, target, alert):
        queue = target.queue
        queue.append(alert)
        if len(queue) > self.max_queue:
            # The head may be on its way: then the oldest of those behind it goes.
            busy = target.sending is not None or target.locating is not None
            dropped = queue[1] if busy else queue[0]
            queue.remove(dropped)
            target.dropped += 1
            target.lost += 1
            self._log(target, "overflow", "alerts to %s: %d waiting; dropping the oldest "
                      "(%s) and, until it takes alerts again, the oldest of each new one",
                      target.uri, len(queue), dropped.text)

    def _pump(self, target):
        """Send the head alert of `target` unless one is on its way or waits its turn."""
        if self._closing or not target.queue or target.sending is not None \
                or target.timer is not None or target.locating is not None:
            return
        alert = target.queue[0]
        routes = ()
        if self.registrations is not None:
            destination = self.registrations.destination
            if destination is None:
                error = self.registrations.error or "not located yet"
                self._failed(target, alert, "no home proxy: %s" % error, True)
                return
            routes = self.registrations.route
        else:
            destination = target.destination
            if destination is None:
                target.locating = self._loop.create_task(self._locate(target))
                return
        self._send(target, alert, destination, routes)

    async def _locate(self, target):
        try:
            destination = await resolve(parse_uri(target.uri),
                                        transports=tuple(self.stack.endpoint.local),
                                        families=self.stack.families())
        except ResolveError as error:
            destination, reason = None, str(error)
        finally:
            target.locating = None  # also when cancelled by close()
        if destination is None:
            if target.queue:
                self._failed(target, target.queue[0], reason, True)
            return
        target.destination = destination
        self._pump(target)

    def _send(self, target, alert, destination, routes):
        alert.cseq += 1
        fields = [("Content-Type", CONTENT_TYPE)]
        if self.stack.endpoint.user_agent:
            fields.append(("User-Agent", self.stack.endpoint.user_agent))
        request = make_request("MESSAGE", target.uri, alert.from_uri, alert.tag,
                               alert.call_id, alert.cseq, routes=routes, fields=fields,
                               body=alert.text.encode("utf-8"))
        digest = self._digest(alert.device)
        if digest is not None:
            digest.authorize(request)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sending to %s:\n%s", format_address(destination), printable_message(request))
        transaction = self.stack.send_request(request, destination)
        if transaction is not None:
            target.sending = transaction
            self._pending[transaction] = (target, alert)

    # -- outcomes ------------------------------------------------------------------------

    def _answered(self, target, alert, response):
        status = response.status
        reason = "%d %s" % (status, printable(response.reason))
        if status < 300:
            self._delivered(target, alert, reason)
        elif status in (401, 407):
            digest = self._digest(alert.device)
            if digest is not None and alert.challenges < MAX_CHALLENGES \
                    and digest.challenged(response):
                alert.challenges += 1
                self._pump(target)  # again at once, with credentials and the next CSeq
            else:
                self._failed(target, alert, reason + (
                    " (no credentials to answer it)" if digest is None
                    else " (our credentials were refused)"), True)
        else:
            # Through the home proxy, 404 is what it says of a phone that is offline just
            # now (no binding): the alert waits for it like any other outage.
            retry = status in _RETRIED or 500 <= status < 600 \
                or (status == 404 and self.registrations is not None)
            self._failed(target, alert, reason, retry, _retry_after(response))

    def _delivered(self, target, alert, reason):
        _remove(target.queue, alert)
        target.delivered += 1
        log.info("MESSAGE to %s (%s: %s) -> %s (Call-ID %s)", target.uri, alert.device,
                 alert.text, reason, alert.call_id)
        if target.failures:
            log.info("alerts to %s delivered again after %d failure(s)%s", target.uri,
                     target.failures,
                     "; %d alert(s) dropped meanwhile" % target.dropped if target.dropped
                     else "")
        target.failures = target.dropped = 0
        target.warned = set()
        target.last_error = None
        self._pump(target)

    def _failed(self, target, alert, error, retry, retry_after=None):
        """The head alert's attempt failed: wait and send it again (`retry`), or drop it
        and go on with the next."""
        target.failures += 1
        target.last_error = error
        alert.challenges = 0
        if retry:
            target.destination = None  # look it up again: DNS may know better by then
        else:
            _remove(target.queue, alert)
            target.dropped += 1
            target.lost += 1
            self._log(target, "dropped", "alerts to %s failing: %s; dropped %r, which "
                      "cannot be delivered (Call-ID %s)", target.uri, error, alert.text,
                      alert.call_id)
            self._pump(target)
            return
        if self._closing:
            return  # close() says what is left
        first, most = self.backoff
        limit = min(most, first * 2 ** min(target.failures - 1, 30))
        delay = limit / 2 + self.random() * limit / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, most))
        self._log(target, "kept", "alerts to %s failing: %s; retrying in %.0f s, alerts kept "
                  "(Call-ID %s)", target.uri, error, delay, alert.call_id)
        target.retry_at = self._loop.time() + delay
        target.timer = self._loop.call_later(delay, self._retry, target)

    def _retry(self, target):
        target.timer = target.retry_at = None
        if target.queue:
            alert = target.queue[0]
            alert.call_id = self.stack.endpoint.new_call_id()
            alert.tag = self.stack.endpoint.new_tag()
            alert.cseq = 0
        self._pump(target)

    def _log(self, target, kind, message, *args):
        """WARNING the first time in a streak for each kind of trouble, DEBUG after."""
        if kind in target.warned:
            log.debug(message, *args)
        else:
            target.warned.add(kind)
            log.warning(message, *args)



def _remove(queue, alert):
    """Take `alert` off its queue (the head, unless the queue overflowed meanwhile)."""
    if alert in queue:
        queue.remove(alert)


def _retry_after(response):
    """Retry-After in seconds (RFC 3261 section 20.33), or None."""
    value = response.get("retry-after")
    if not value:
        return None
    seconds = value.split(";")[0].split("(")[0].strip()
    return int(seconds) if seconds.isdigit() else None
