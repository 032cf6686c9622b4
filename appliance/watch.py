"""`appliance subscribe URI`: watch a device, as an RFC 6665 subscriber.

`Watch(uri, event="appliance").run()` sends a SUBSCRIBE from an ephemeral port (as
`client.send_once` does; over TLS to a sips: or transport=tls URI, the server verified
against `ca`, else the system's CAs), answers digest challenges, makes the dialog of the
2xx, answers each NOTIFY in it with 200 and prints one line per NOTIFY, refreshes the
subscription in the dialog before it lapses, and, once `stop()` is called (Ctrl-C),
unsubscribes (Expires: 0) and waits briefly for the last NOTIFY. Over TCP and TLS the
NOTIFYs come on the connection the SUBSCRIBE went on: CRLF pings keep it open, and its
loss ends the watch. It returns the exit status: 0 after `stop()` (or a fetch,
`expires=0`), 1 when the SUBSCRIBE fails or the notifier ends the subscription (or the
connection it came on).

Status and errors go to stderr; stdout carries only the NOTIFY lines, so that `--json`
output can be piped. No password or Authorization header is ever printed.
"""

import asyncio
import ipaddress
import json
import sys
import time
import xml.etree.ElementTree as ElementTree
from datetime import datetime

from .agent import USER_AGENT
from .client import MAX_CHALLENGES, ClientError, Result, _target, listeners
from .net.resolver import ResolveError, resolve
from .net.stack import SipStack
from .net.tls import TlsContexts
from .packages import APPLIANCE, CONTENT_TYPES, PRESENCE
from .sip.dialog import Dialog, dialog_id_for_request
from .sip.digest import DigestClient
from .sip.endpoint import Capabilities
from .sip.errors import ParseError, SipError
from .sip.events import RequestReceived, ResponseReceived, TransactionTimedOut, TransportFailed
from .sip.headers import is_token, parse_address
from .sip.message import make_request
from .sip.subscription import event_of
from .sip.uri import is_digits, parse_uri

TRANSPORTS = ("udp", "tcp", "tls")  # TLS needs no listener: the NOTIFYs come on the connection
REFRESH_AT = 0.8  # refresh when this share of the granted interval has passed
# Seconds between RFC 5626 CRLF pings on a TCP or TLS flow: the NOTIFYs come back on that
# connection, which a notifier (this agent: after 60 s) closes when it carries nothing.
KEEPALIVE = 25.0
UNSUBSCRIBE_WAIT = 2.0  # seconds for the answer and the last NOTIFY after stop()
# The bodies a NOTIFY may carry (the core answers 415 to others): the two packages of
# the agent, and plain text for other packages.
ACCEPT = (CONTENT_TYPES[APPLIANCE], CONTENT_TYPES[PRESENCE], "text/plain")
PIDF = "{urn:ietf:params:xml:ns:pidf}"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class Watch:
    """One subscription to `uri_text` for package `event`; `out(line)` and `err(line)`
    print (stdout and stderr by default)."""

    def __init__(self, uri_text, event=APPLIANCE, expires=600, from_uri=None, proxy=None,
                 timeout=5.0, listen=(), username=None, password=None, json_lines=False,
                 out=None, err=None, ca=None, keepalive=KEEPALIVE):
        if not is_token(event):
            raise ClientError("--event %r is not an event package name" % event)
        self.uri_text = uri_text
        self.target = _target(uri_text, "URI")
        self.proxy = _target(proxy, "proxy") if proxy else None
        self.event = event.lower()
        self.expires = expires
        self.from_uri = from_uri
        self.timeout = timeout
        self.listen = listen
        self.ca = ca
        self.keepalive = keepalive
        self.json_lines = json_lines
        self.out = out or _print_out
        self.err = err or _print_err
        self.credentials = (username, password) if username is not None \
            and password is not None else None
        self.stack = None
        self.destination = None  # (transport, address, port) the SUBSCRIBE went to
        self.digest = None
        self.contact = None
        self.dialog = None
        self.refresh_at = None  # ms, loop clock; None: no refresh due
        self._pending = None  # the SUBSCRIBE outside a dialog awaiting its final response
        self._from_notify = False  # the dialog was made from a NOTIFY (route set to take)
        self._alive = False  # the notifier holds the subscription, as far as we know
        self._answers = {}  # client transaction -> Future of its Result
        self._loop = None
        self._stopped = None  # Futures: stop() was called; the notifier ended it (reason)
        self._ended = None
        self._changed = None
        self.stopping = False

    def stop(self):
        """End the watch: unsubscribe and return 0 (call it from a signal handler)."""
        self.stopping = True
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    # -- the run ---------------------------------------------------------------------------

    async def run(self):
        loop = self._loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        self._ended = loop.create_future()
        if self.stopping:
            self._stopped.set_result(None)
        next_hop = self.proxy or self.target
        transport, address, port = await resolve(next_hop, transports=TRANSPORTS)
        destination = self.destination = (transport, address, port)
        specs, advertise = listeners(self.listen, next_hop, transport, address)
        capabilities = Capabilities(allow=("NOTIFY",), accept=ACCEPT,
                                    allow_events=(self.event,))
        self.stack = SipStack(specs, self._on_event, capabilities, user_agent=USER_AGENT,
                              advertise=advertise, tls=TlsContexts(ca=self.ca))
        endpoint = self.stack.endpoint
        endpoint.dialog_for = self._dialog_from_notify
        await self.stack.start()
        if self.credentials is not None:
            self.digest = DigestClient(lambda realm: self.credentials, endpoint.token)
        local_host, local_port = endpoint.local.get(transport, endpoint.local["udp"])
        self.contact = "sip:appliance@%s:%d%s" % (
            local_host, local_port, "" if transport == "udp" else ";transport=" + transport)
        try:
            status = await self._subscribe(destination, local_host)
            if status is None:
                pinging = None if transport == "udp" else loop.create_task(self._ping())
                try:
                    status = await self._hold()
                finally:
                    if pinging is not None:
                        pinging.cancel()
            if self._alive and self.dialog is not None:
                await self._unsubscribe()
            return status
        finally:
            await self.stack.close()

    async def _subscribe(self, destination, local_host):
        """The SUBSCRIBE outside a dialog: None once the subscription stands, else the
        exit status."""
        endpoint = self.stack.endpoint
        sender = self.from_uri or "sip:appliance@%s" % local_host
        tag = endpoint.new_tag()
        call_id = endpoint.new_call_id()
        routes = ["%s;lr" % self.proxy] if self.proxy else ()
        cseq = [0]

        def build(expires):
            cseq[0] += 1
            request = make_request("SUBSCRIBE", self.target, sender, tag, call_id, cseq[0],
                                   routes=routes, fields=[("Contact", "<%s>" % self.contact),
                                                          *self._fields(expires)])
            self._pending = request
            return request

        result = await self._transact(build, destination, self.expires, initial=True)
        request, self._pending = self._pending, None
        if result is None:
            return 0  # stopped before any answer
        response = result.response
        if response is None:
            self.err(result.error)
            return 1
        if response.status >= 300:
            self._alive = False
            self.err("SUBSCRIBE failed: %s%s" % (_status(response), self._hint(response)))
            return 1
        if self.dialog is None and not response.to.tag:
            self._alive = False
            self.err("SUBSCRIBE failed: %s without a To tag (no dialog to watch in)"
                     % _status(response))
            return 1
        self._alive = not self._ended.done()
        if self.dialog is None:
            self.dialog = Dialog.as_uac(request, response, self.contact)
            if self.dialog.remote_target is None:  # a 2xx without Contact: where we sent
                self.dialog.remote_target = request.uri
            endpoint.add_dialog(self.dialog)
        self._granted(response, request, extend=True)
        return None

    async def _hold(self):
        """Keep the subscription until the notifier ends it (1) or stop() is called (0),
        refreshing it when due."""
        while True:
            if self._stopped.done():
                return 0
            if self._ended.done():
                if self.expires == 0:
                    return 0  # a fetch: one NOTIFY, terminated, is all there is
                self.err("subscription ended: %s" % self._ended.result())
                return 1
            delay = None
            if self.refresh_at is not None:
                delay = (self.refresh_at - self.stack.now()) / 1000.0
                if delay <= 0:
                    failure = await self._refresh()
                    if failure is not None:
                        self.err("subscription ended: %s" % failure)
                        return 1
                    continue
            self._changed = self._loop.create_future()
            await asyncio.wait((self._stopped, self._ended, self._changed), timeout=delay,
                               return_when=asyncio.FIRST_COMPLETED)

    async def _ping(self):
        """Keep the stream flow the NOTIFYs come on open; end the watch once it is gone."""
        transport, address, port = self.destination
        while True:
            await asyncio.sleep(self.keepalive)
            if not self.stack.send_keepalive(b"\r\n\r\n", transport, address, port):
                if not self._ended.done():
                    self._ended.set_result("the connection to %s:%d closed; no NOTIFY "
                                           "can reach us" % (address, port))
                return

    async def _refresh(self):
        """A SUBSCRIBE in the dialog; None when it was accepted, else why not."""
        self.refresh_at = None
        result = await self._in_dialog(self.expires, self.timeout)
        response = result.response
        if response is None:
            return "refresh failed: %s" % result.error
        if response.status >= 300:
            if response.status in (404, 405, 408, 410, 416, 480, 481, 482, 483, 484, 485,
                                   489, 501, 604):
                self._alive = False  # RFC 6665 section 4.1.2.2: the dialog is gone
            return "refresh failed: %s" % _status(response)
        self.dialog.refresh_target(response)
        self._granted(response, None, extend=True)
        return None

    async def _unsubscribe(self):
        """Expires: 0 in the dialog, then wait (briefly) for the last NOTIFY."""
        deadline = self._loop.time() + UNSUBSCRIBE_WAIT
        result = await self._in_dialog(0, min(self.timeout, UNSUBSCRIBE_WAIT))
        if result.response is None or result.response.status >= 300 or self._ended.done():
            return
        await asyncio.wait((self._ended,), timeout=max(deadline - self._loop.time(), 0))

    async def _in_dialog(self, expires, timeout):
        dialog = self.dialog

        def build(expires):
            return dialog.create_request("SUBSCRIBE", self._fields(expires))

        # The next hop of a request in the dialog (Dialog.next_hop, before building one):
        # the first route, loose or strict, else the remote target.
        hop = parse_address(dialog.route_set[0]).uri if dialog.route_set \
            else dialog.remote_target
        if not dialog.route_set and _names_address(hop, self.destination):
            # The notifier's own address, where the SUBSCRIBE went: the same flow. Over
            # TLS that is the connection verified for the name we asked for; a new one
            # would have to verify the bare address, which certificates seldom name.
            return await self._transact(build, self.destination, expires, timeout=timeout)
        try:
            destination = await resolve(hop, transports=TRANSPORTS)
        except ResolveError as error:
            return Result(error=str(error))
        return await self._transact(build, destination, expires, timeout=timeout)

    def _fields(self, expires):
        fields = [("User-Agent", USER_AGENT), ("Event", self.event), ("Expires", expires)]
        if self.event in CONTENT_TYPES:
            fields.append(("Accept", CONTENT_TYPES[self.event]))
        return fields

    async def _transact(self, build, destination, expires, timeout=None, initial=False):
        """Send the SUBSCRIBE `build(expires)` makes and wait for its final response;
        again (a new CSeq) for a digest challenge it can answer, or with the Min-Expires
        of a 423. A Result; None when stop() came first (only while `initial`)."""
        loop = self._loop
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        result = None
        for _ in range(MAX_CHALLENGES + 2):
            if initial and self._stopped.done():
                return None
            request = build(expires)
            if self.digest is not None:
                self.digest.authorize(request)
            answer = loop.create_future()
            try:
                transaction = self.stack.send_request(request, destination)
            except SipError as error:  # e.g. a transport we do not listen on
                raise ClientError("cannot send SUBSCRIBE: %s" % error) from None
            self._answers[transaction] = answer
            waiters = (answer, self._stopped) if initial else (answer,)
            try:
                await asyncio.wait(waiters, timeout=max(deadline - loop.time(), 0.001),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._answers.pop(transaction, None)
            if not answer.done():
                if initial and self._stopped.done():
                    return None
                return Result(error="no final response from %s within %gs"
                              % (self.uri_text, timeout or self.timeout))
            result = answer.result()
            response = result.response
            if response is None:
                return result
            if response.status in (401, 407) and self.digest is not None \
                    and self.digest.challenged(response):
                continue
            minimum = (response.get("min-expires") or "").strip()
            if response.status == 423 and is_digits(minimum, 10) and int(minimum) > expires:
                expires = int(minimum)
                if self.expires:
                    self.expires = expires  # and for the refreshes
                continue
            return result
        return result

    def _granted(self, response, request, extend):
        """The 2xx's Expires (else what was asked) sets when to refresh."""
        text = (response.get("expires") or "").strip()
        if is_digits(text, 10):
            seconds = int(text)
        else:
            asked = request.get("expires") if request is not None else None
            seconds = int(asked) if asked and is_digits(asked.strip(), 10) else self.expires
        self._refresh_in(seconds, extend)

    def _refresh_in(self, seconds, extend):
        if seconds <= 0:
            return  # ending: a NOTIFY (terminated) follows
        refresh_at = self.stack.now() + int(seconds * 1000 * REFRESH_AT)
        if extend or self.refresh_at is None or refresh_at < self.refresh_at:
            self.refresh_at = refresh_at
            if self._changed is not None and not self._changed.done():
                self._changed.set_result(None)

    def _hint(self, response):
        if response.status in (401, 407):
            if self.credentials is None:
                return " (the device asks for a user name and password: pass --user and " \
                       "--password-file)"
            return " (check --user and the password)"
        if response.status == 489:
            offered = response.get("allow-events")
            if offered:
                return " (the device offers: %s)" % _safe(offered)
        return ""

    # -- the core's events -----------------------------------------------------------------

    def _on_event(self, event):
        if isinstance(event, RequestReceived):
            if event.transaction is not None:
                self._notify(event)
            return
        if not isinstance(event, (ResponseReceived, TransactionTimedOut, TransportFailed)):
            return  # the core answered or dropped it itself
        answer = self._answers.get(event.transaction)
        if answer is None or answer.done():
            return
        if isinstance(event, ResponseReceived):
            if event.response.status >= 200:
                answer.set_result(Result(event.response))
        elif isinstance(event, TransactionTimedOut):
            answer.set_result(Result(error="no response from %s (timed out)" % self.uri_text))
        else:
            transport = event.transaction.destination[0]
            answer.set_result(Result(error="cannot reach %s over %s"
                                     % (self.uri_text, transport)))

    def _dialog_from_notify(self, notify):
        """The dialog of a NOTIFY that came before the 2xx to our SUBSCRIBE (RFC 6665
        section 4.1.2.4), for the endpoint's `dialog_for`; None for any other request."""
        request = self._pending
        if request is None or self.dialog is not None or notify.method != "NOTIFY":
            return None
        call_id, local_tag, remote_tag = dialog_id_for_request(notify)
        if call_id != request.call_id or local_tag != request.from_.tag or not remote_tag:
            return None
        # Remote target and remote CSeq come from the NOTIFY as the endpoint takes it in
        # (NOTIFY refreshes the target); its Record-Route is taken in `_notify`.
        self.dialog = Dialog(call_id, local_tag, remote_tag, request.from_.uri,
                             request.to.uri, request.uri, [], request.cseq.number, None,
                             False, self.contact)
        self._from_notify = True
        self._alive = True
        return self.dialog

    def _notify(self, event):
        request = event.request
        respond = self.stack.respond
        if request.method != "NOTIFY" or event.dialog is None \
                or event.dialog is not self.dialog:
            respond(event.transaction, 481)
            return
        if self._from_notify:
            self._from_notify = False
            self.dialog.route_set = request.get_list("record-route")  # as a UAS (12.1.1)
        package, _ = event_of(request)
        if package != self.event:
            respond(event.transaction, 489, fields=(("Allow-Events", self.event),))
            return
        state = request.get("subscription-state")
        if state is None:
            respond(event.transaction, 400, "Missing Subscription-State")
            return
        respond(event.transaction, 200)
        value, params = _subscription_state(state)
        if not self._stopped.done():
            line = self._line(request, value)
            if line is not None:
                self.out(line)
        if value == "terminated":
            self._alive = False
            self.stack.endpoint.remove_dialog(self.dialog)
            if not self._ended.done():
                self._ended.set_result(_safe(params.get("reason") or "terminated"))
        elif is_digits(params.get("expires", ""), 10):
            self._refresh_in(int(params["expires"]), extend=False)

    # -- lines -----------------------------------------------------------------------------

    def _line(self, request, state):
        """The line to print for a NOTIFY, or None."""
        arrived = time.strftime(TIME_FORMAT)
        body = request.body
        if not body:
            if state == "terminated":
                return None
            return json.dumps({"subscription": state}) if self.json_lines \
                else "%s  subscription %s" % (arrived, _safe(state))
        content_type = request.content_type
        try:
            if content_type == CONTENT_TYPES[APPLIANCE]:
                return self._appliance_line(body, arrived)
            if content_type == CONTENT_TYPES[PRESENCE]:
                return self._presence_line(body, arrived)
        except (ValueError, ElementTree.ParseError, AttributeError, TypeError) as error:
            if self.json_lines:
                return json.dumps({"unreadable": content_type, "error": str(error)[:80]})
            return "%s  unreadable %s body: %s" % (arrived, content_type,
                                                   _safe(str(error)[:80]))
        text = body.decode("utf-8", "replace")
        if self.json_lines:
            return json.dumps({"content_type": content_type, "body": text})
        return "%s  %s" % (arrived, _safe(" ".join(text.split())))

    def _appliance_line(self, body, arrived):
        status = json.loads(body)
        if not isinstance(status, dict):
            raise ValueError("not a JSON object")
        if self.json_lines:
            return json.dumps(status, separators=(",", ":"))
        line = "%s  %s  %s" % (_local_time(status.get("changed")) or arrived,
                               _safe(str(status.get("device"))), _safe(str(status.get("state"))))
        if status.get("brightness") is not None:
            line += "  brightness %s%%" % _safe(str(status["brightness"]))
        if status.get("seq") is not None:
            line += "  seq %s" % _safe(str(status["seq"]))
        return line

    def _presence_line(self, body, arrived):
        if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
            raise ValueError("a document type declaration is not taken")
        root = ElementTree.fromstring(body)
        entity = root.get("entity") or ""
        tuple_ = root.find(PIDF + "tuple")
        if tuple_ is None:
            raise ValueError("no tuple")
        basic = tuple_.findtext(PIDF + "status/" + PIDF + "basic") or "?"
        note = tuple_.findtext(PIDF + "note") or root.findtext(PIDF + "note") or ""
        timestamp = tuple_.findtext(PIDF + "timestamp")
        name = tuple_.get("id") or entity
        try:
            name = parse_uri(entity).user or name
        except ParseError:
            pass
        if self.json_lines:
            return json.dumps({"entity": entity, "basic": basic.strip(), "note": note.strip(),
                               "timestamp": timestamp})
        return "%s  %s  %s%s" % (_local_time(timestamp) or arrived, _safe(name),
                                 _safe(basic.strip()),
                                 " (%s)" % _safe(note.strip()) if note.strip() else "")


def _names_address(uri, destination):
    """Whether `uri` names `destination` (transport, address, port) itself: that address
    as its host, that port and that transport."""
    transport, address, port = destination
    host = (uri.param("maddr") or uri.host).strip("[]")
    try:
        if ipaddress.ip_address(host) != ipaddress.ip_address(address):
            return False
    except ValueError:  # a name: where it leads is for the resolver to say
        return False
    wanted = (uri.param("transport") or ("tls" if uri.secure else "udp")).lower()
    if uri.secure and wanted == "tcp":
        wanted = "tls"  # sips: over TCP is TLS (RFC 3263 section 4.1)
    return wanted == transport and (uri.port or (5061 if wanted == "tls" else 5060)) == port


def _subscription_state(value):
    """`active;expires=599` -> ("active", {"expires": "599"}): the state lower-cased."""
    parts = value.split(";")
    params = {}
    for part in parts[1:]:
        name, _, param = part.partition("=")
        params[name.strip().lower()] = param.strip().strip('"')
    return parts[0].strip().lower(), params


def _status(response):
    return "%d %s" % (response.status, _safe(response.reason))


def _local_time(text):
    """An ISO 8601 time as local date and time, or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, TypeError, AttributeError):
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime(TIME_FORMAT)


def _safe(text):
    """Text from the network for the terminal: C0 and C1 controls (a terminal's escape
    sequences) shown as escapes."""
    return "".join(ch if " " <= ch < "\x7f" or ch > "\x9f" else "\\x%02x" % ord(ch)
                   for ch in text)


def _print_out(line):
    print(line, flush=True)


def _print_err(line):
    print(line, file=sys.stderr, flush=True)
