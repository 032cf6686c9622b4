"""One call's SIP side: an INVITE we answer or one we send, its dialog, and its end.

`IncomingCall` answers an INVITE: 180, then 200 sent again (T1 doubling to T2) until the
ACK comes, or BYE after 64*T1 without one (RFC 3261 section 13.3.1.4; RFC 6026 keeps the
transaction for it). `OutgoingCall` sends one: it answers a 401/407 with the credentials it
was given, ACKs every 2xx (a second fork's is ACKed and hung up), CANCELs only once a
provisional response came (section 9.1), and hangs up a 2xx that arrives after its CANCEL.

In the dialog both take BYE, re-INVITE (hold and resume: the offer goes to the owner,
whose answer goes back), INFO (DTMF, for the owner) and OPTIONS. What the SDP says and
what media flows is the owner's (calls.py): a call tells it through `listener`:

    listener.call_answered(call)         the call is up: 2xx (outgoing) or ACK (incoming)
    listener.call_ended(call)            it is over; `call.reason` says why
    listener.call_sdp(call, session)     an answer arrived (in a 2xx, or in an ACK)
    listener.call_offer(call, session)   a re-INVITE's offer (None: offerless): return the
                                         answer or offer body, or None to refuse (488)
    listener.call_info(call, request)    an INFO in the dialog (answered 200 already)
"""

import logging

from .redact import printable
from .sip import sdp
from .sip.dialog import Dialog
from .sip.digest import DigestClient
from .sip.errors import ParseError, SipError
from .sip.events import ResponseReceived, TransactionTimedOut
from .sip.message import Request, make_request
from .sip.transaction import ACCEPTED, TERMINATED

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
SDP = "application/sdp"
MAX_CHALLENGES = 2

# States
CALLING = "calling"  # outgoing, no provisional response yet
RINGING = "ringing"  # incoming before the answer, or outgoing with a provisional response
CONNECTING = "connecting"  # incoming: 200 sent, waiting for the ACK
ANSWERED = "answered"
ENDED = "ended"


class Call:
    """What both directions share: the dialog, requests in it, and the end."""

    direction = None

    def __init__(self, stack, loop, listener, device, contact):
        self.stack = stack
        self.loop = loop
        self.listener = listener
        self.device = device  # the name of our device in the call
        self.contact = contact  # our Contact URI
        self.id = stack.endpoint.token(8)
        self.dialog = None
        self.destination = None  # where requests in the dialog go: (transport, host, port)
        self.state = None
        self.reason = None  # why it ended
        self.peer = None  # the other side, as a URI
        self.started = loop.time()
        self.answered_at = None
        self.ended_at = None
        self.sdp_version = 0  # o= version of what we send, one more each time
        self.media = None  # the owner's MediaSession (it keeps what offer/answer agreed)
        self.allowed = True  # whether its DTMF may open the door
        self._pending_2xx = None  # (transaction, CSeq) of a 2xx waiting for its ACK
        self._bye_after_ack = None  # a hang-up asked while our 2xx waits for its ACK
        self._resend = None
        self._transactions = set()  # ours in progress (BYE, CANCEL, INVITE)

    # -- asked of us ------------------------------------------------------------------------

    def hang_up(self, reason="hung up"):
        """End the call: BYE once answered; what goes before is the subclasses'."""
        if self.state == ENDED:
            return
        if self._pending_2xx is not None:
            # No BYE before the ACK of our 2xx (RFC 3261 section 15): it follows the ACK,
            # or the give-up on it.
            self._bye_after_ack = reason
            return
        if self.dialog is not None and self.state in (ANSWERED, CONNECTING):
            try:
                self._send_in_dialog("BYE")
            except SipError as error:
                log.warning("call %s: cannot send BYE: %s", self.id, error)
        self._end(reason)

    def owns(self, transaction):
        return transaction in self._transactions

    @property
    def secure(self):
        """Whether its SIP goes over TLS: then an offer of ours keys SRTP (SDES keys are
        sent in the SDP, so only over an encrypted channel: RFC 4568 section 8.3)."""
        return self.destination is not None and self.destination[0] == "tls"

    @property
    def busy(self):
        """Whether SIP of ours is still under way (a BYE or CANCEL waiting for its answer;
        an INVITE that has its 2xx only waits for forks)."""
        return any(t.state not in (ACCEPTED, TERMINATED) for t in self._transactions)

    def response(self, event):
        """A client transaction event: True when it is one of ours (a BYE's, a CANCEL's)."""
        transaction = getattr(event, "transaction", None)
        if transaction not in self._transactions:
            return False
        if not isinstance(event, ResponseReceived) or event.response.status >= 200:
            self._transactions.discard(transaction)
        return True

    # -- in the dialog ---------------------------------------------------------------------

    def in_dialog(self, event):
        """A request in our dialog (ACK too: event.transaction is None then)."""
        request = event.request
        method = request.method
        if method == "ACK":
            self._ack(request)
            return
        transaction = event.transaction
        if self.state == ENDED:
            self.stack.respond(transaction, 481)
            return
        if method == "BYE":
            self.stack.respond(transaction, 200)
            self._bye_received()
        elif method == "INVITE":
            self._reinvite(event)
        elif method == "INFO":
            self.stack.respond(transaction, 200)
            self.listener.call_info(self, request)
        elif method == "OPTIONS":
            self.stack.respond(transaction, 200, fields=(("Allow", ALLOW),))
        else:
            self.stack.respond(transaction, 405, fields=(("Allow", ALLOW),))

    def _bye_received(self):
        self._end("the other side hung up")

    def _reinvite(self, event):
        request = event.request
        if self.state not in (ANSWERED, CONNECTING):
            # Before our final response to the first INVITE (RFC 3261 section 14.2).
            self.stack.respond(event.transaction, 500, fields=(("Retry-After", 2),))
            return
        if self._pending_2xx is not None:
            # Our last 2xx still waits for its ACK: its offer/answer is not done (3261 14.2).
            self.stack.respond(event.transaction, 491, fields=(("Retry-After", 1),))
            return
        offer = None
        if request.body:
            try:
                offer = sdp.parse(request.body)
            except ParseError as error:
                self.stack.respond(event.transaction, 400, "Malformed SDP: " + error.reason)
                return
        body = self.listener.call_offer(self, offer)
        if body is None:
            self.stack.respond(event.transaction, 488, fields=(("Accept", SDP),))
            return
        self._send_2xx(event.transaction, request.cseq.number, body, offerless=offer is None)

    def _ack(self, request):
        pending = self._pending_2xx
        if pending is None or request.cseq.number != pending[1]:
            return  # a retransmitted ACK
        self._pending_2xx = None
        self._cancel_resend()
        if self._bye_after_ack is not None:
            if self.state == CONNECTING:
                self.state = ANSWERED
            self.hang_up(self._bye_after_ack)
            return
        offerless = pending[2]
        if offerless:
            answer = _usable_answer(request.body)
            if answer is None:
                log.warning("call %s: the ACK carries no usable answer; hanging up", self.id)
                self.hang_up("no usable SDP answer in the ACK")
                return
            self.listener.call_sdp(self, answer)
        if self.state == CONNECTING:
            self._answered()

    # -- inside --------------------------------------------------------------------------

    def _send_2xx(self, transaction, cseq, body, offerless=False):
        """200 with `body` (SDP), sent again until the ACK with CSeq `cseq` comes."""
        self.sdp_version += 1
        self.stack.respond(transaction, 200, fields=(
            ("Contact", "<%s>" % self.contact), ("Allow", ALLOW),
            ("Content-Type", SDP)), body=body.encode() if isinstance(body, str) else body,
            to_tag=self.dialog.local_tag)
        self._pending_2xx = (transaction, cseq, offerless)
        t1 = self.stack.endpoint.timers.t1 / 1000.0
        self._schedule_resend(t1, self.loop.time() + 64 * t1)

    def _schedule_resend(self, interval, give_up):
        self._resend = self.loop.call_later(interval, self._resend_2xx, interval, give_up)

    def _resend_2xx(self, interval, give_up):
        self._resend = None
        pending = self._pending_2xx
        if pending is None:
            return
        if self.loop.time() >= give_up or not self.stack.resend_2xx(pending[0]):
            self._pending_2xx = None
            if self._bye_after_ack is None:
                log.warning("call %s: no ACK for our 200; hanging up", self.id)
            if self.state == CONNECTING:
                self.state = ANSWERED  # confirmed without its ACK: end it with a BYE
            self.hang_up(self._bye_after_ack or "no ACK")
            return
        t2 = self.stack.endpoint.timers.t2 / 1000.0
        self._schedule_resend(min(2 * interval, t2), give_up)

    def _cancel_resend(self):
        if self._resend is not None:
            self._resend.cancel()
            self._resend = None

    def _send_in_dialog(self, method, fields=(), body=b""):
        request = self.dialog.create_request(method, fields, body)
        transaction = self.stack.send_request(request, self.destination)
        if transaction is not None:
            self._transactions.add(transaction)
        return transaction

    def _answered(self):
        self.state = ANSWERED
        self.answered_at = self.loop.time()
        self.listener.call_answered(self)

    def _end(self, reason):
        if self.state == ENDED:
            return
        self.state = ENDED
        self.reason = reason
        self.ended_at = self.loop.time()
        self._cancel_resend()
        self._pending_2xx = None
        if self.dialog is not None:
            self.stack.endpoint.remove_dialog(self.dialog)
        self.listener.call_ended(self)

    def status(self):
        now = self.loop.time()
        return {"id": self.id, "device": self.device, "direction": self.direction,
                "peer": self.peer, "state": self.state,
                "duration": round(now - self.answered_at) if self.answered_at
                and self.state == ANSWERED else 0,
                "reason": self.reason}


class IncomingCall(Call):
    """An INVITE to one of our devices, answered by us."""

    direction = "in"

    def __init__(self, stack, loop, listener, device, contact, event, user):
        super().__init__(stack, loop, listener, device, contact)
        self.request = event.request
        self.transaction = event.transaction
        self.user = user
        self.peer = str(self.request.from_.uri)
        # Requests in the dialog go back the way the INVITE came: through the proxy that
        # sent it, or to the caller's address as seen (behind its NAT too).
        self.destination = event.source
        self.dialog = Dialog.as_uas(self.request, stack.endpoint.new_tag(), contact)
        stack.endpoint.add_dialog(self.dialog)
        self.state = RINGING
        self.offerless = not self.request.body

    def ring(self):
        if self.state == RINGING:
            self.stack.respond(self.transaction, 180, fields=(("Contact", "<%s>" % self.contact),),
                               to_tag=self.dialog.local_tag)

    def answer(self, body, fields=()):
        """200 with our SDP (the answer, or the offer when the INVITE had none)."""
        if self.state != RINGING:
            return
        self.state = CONNECTING
        self._send_2xx(self.transaction, self.request.cseq.number, body,
                       offerless=self.offerless)

    def reject(self, status, reason=None, fields=()):
        if self.state != RINGING:
            return
        self.stack.respond(self.transaction, status, reason, fields,
                           to_tag=self.dialog.local_tag)
        self._end("%d %s" % (status, reason or "refused"))

    def cancelled(self):
        """The caller's CANCEL (the core answered 487 already)."""
        self._end("cancelled by the caller")

    def _bye_received(self):
        if self.state == RINGING:
            # A BYE in the early dialog: the INVITE ends too (RFC 3261 section 15.1.2).
            self.stack.respond(self.transaction, 487, to_tag=self.dialog.local_tag)
        super()._bye_received()

    def hang_up(self, reason="hung up"):
        if self.state == RINGING:
            self.reject(480, "Temporarily Unavailable")
            self.reason = reason
            return
        super().hang_up(reason)


class OutgoingCall(Call):
    """An INVITE we send to `target` (a URI), with our SDP offer."""

    direction = "out"

    def __init__(self, stack, loop, listener, device, contact, target, from_uri,
                 destination, route=(), credentials=None, offer=b""):
        super().__init__(stack, loop, listener, device, contact)
        self.peer = target
        self.target = target
        self.from_uri = from_uri
        self.destination = destination  # the INVITE's, and the dialog's when it has routes
        self.route = tuple(route)
        self.offer = offer
        endpoint = stack.endpoint
        self.call_id = endpoint.new_call_id()
        self.from_tag = endpoint.new_tag()
        self.cseq = 0
        self.digest = DigestClient(credentials, endpoint.token) if credentials else None
        self.invite = None  # the INVITE's client transaction
        self.state = CALLING
        self._challenges = 0
        self._provisional = False  # a 1xx came: a CANCEL may go (RFC 3261 section 9.1)
        self._cancel_wanted = False
        self._acks = {}  # remote tag -> the ACK sent for its 2xx (sent again for a resend)

    def start(self):
        self.cseq += 1
        request = make_request(
            "INVITE", self.target, self.from_uri, self.from_tag, self.call_id, self.cseq,
            routes=self.route, fields=(("Contact", "<%s>" % self.contact), ("Allow", ALLOW),
                                       ("Content-Type", SDP)),
            body=self.offer.encode() if isinstance(self.offer, str) else self.offer)
        if self.digest is not None:
            self.digest.authorize(request)
        self.sdp_version += 1
        self.invite = self.stack.send_request(request, self.destination)
        self._transactions.add(self.invite)

    def cancel(self, reason="cancelled"):
        """Stop ringing the callee: CANCEL (once it has answered provisionally), or BYE
        when it answered meanwhile."""
        if self.state == ENDED:
            return
        if self.state in (ANSWERED, CONNECTING):
            self.hang_up(reason)
            return
        if self.reason is not None and self._cancel_wanted:
            self._end(reason)  # asked again (a second Ctrl-C): stop waiting
            return
        self.reason = reason
        self._cancel_wanted = True
        if self._provisional:
            self._send_cancel()
        # else sent with the first provisional response (RFC 3261 section 9.1). Either
        # way, a callee that never answers it is given up after 64*T1.
        self.loop.call_later(64 * self.stack.endpoint.timers.t1 / 1000.0, self._end,
                             reason)

    def hang_up(self, reason="hung up"):
        if self.state in (CALLING, RINGING):
            self.cancel(reason)
            return
        super().hang_up(reason)

    def response(self, event):
        """A client transaction event of ours: True when taken."""
        transaction = getattr(event, "transaction", None)
        if transaction is not self.invite or transaction not in self._transactions:
            return super().response(event)
        if isinstance(event, ResponseReceived):
            self._invite_response(event.response)
        else:
            self._transactions.discard(transaction)
            if self.state in (CALLING, RINGING):
                self._end("no answer from %s" % self.target if isinstance(
                    event, TransactionTimedOut) else "cannot reach %s" % self.target)
        return True

    def _invite_response(self, response):
        status = response.status
        if status < 200:
            first = not self._provisional
            self._provisional = True
            if status > 100 and self.state == CALLING:
                self.state = RINGING
            if first and self._cancel_wanted:
                self._send_cancel()
            return
        if status < 300:
            self._two_hundred(response)
            return
        self._transactions.discard(self.invite)
        if status in (401, 407) and self.digest is not None \
                and self._challenges < MAX_CHALLENGES and not self._cancel_wanted \
                and self.state != ENDED and self.digest.challenged(response):
            self._challenges += 1
            self.state = CALLING
            self._provisional = False
            self.start()
            return
        self._end(self.reason if status == 487 and self.reason
                  else "%d %s" % (status, printable(response.reason)))

    def _two_hundred(self, response):
        tag = response.to.tag
        if tag in self._acks:  # sent again: its ACK got lost
            self.stack.send_request(self._copy(self._acks[tag]), self.destination)
            return
        dialog = Dialog.as_uac(self.invite.request, response, self.contact)
        ack = dialog.create_request("ACK")
        self._acks[tag] = ack
        first = self.dialog is None and self.state != ENDED
        if first:
            self.dialog = dialog
            self.stack.endpoint.add_dialog(dialog)
        self.stack.send_request(self._copy(ack), self.destination)
        if not first or self._cancel_wanted or self.reason is not None:
            # Another fork answered too, or our CANCEL crossed the 200: hang it up.
            bye = dialog.create_request("BYE")
            transaction = self.stack.send_request(bye, self.destination)
            if transaction is not None:
                self._transactions.add(transaction)
            if first:
                self._end(self.reason or "cancelled")
            return
        answer = _usable_answer(response.body)
        if answer is None:
            self.state = ANSWERED
            self.hang_up("no usable SDP answer")
            return
        self.listener.call_sdp(self, answer)
        self._answered()

    def _send_cancel(self):
        transaction = self.stack.send_cancel(self.invite)
        if transaction is not None:
            self._transactions.add(transaction)

    @staticmethod
    def _copy(request):
        """A request the endpoint may write a Via into without changing ours."""
        return Request(request.method, request.uri_text, [list(f) for f in request.fields],
                       request.body)


def _usable_answer(body):
    """The SDP answer in `body` (an ACK's or a 2xx's) when it accepts our audio or our
    video, else None."""
    if not body:
        return None
    try:
        answer = sdp.parse(body)
    except ParseError:
        return None
    if sdp.accepted(answer) is None and sdp.accepted(answer, "video") is None:
        return None
    return answer
