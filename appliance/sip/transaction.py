"""The four transaction state machines of RFC 3261 section 17 and their timers A-K, with
the Accepted states of RFC 6026 for INVITE (timers L and M).

A 2xx to INVITE moves both INVITE machines to Accepted, where they stay 64*T1: the server
sends the 2xx again when its TU asks (the TU retransmits until the ACK, which is a
transaction of its own) and absorbs retransmitted INVITEs; the client passes each 2xx on
(more forks, or a retransmission its ACK was lost for), so the TU can ACK every one.

Transitions are data (`TRANSITIONS`, one table per machine, states named as in the RFC's
figures 5-8); the methods only perform the actions that go with a transition. A
transaction never touches a socket or a clock: it is given `now` in milliseconds and asks
its owner (the `Endpoint`) to transmit bytes, arm a timer or report an event.

A timer is not cancelled when its state is left: each one is bound to the states it acts
in, and one that fires in any other state is ignored, which keeps the timer queue a plain
heap. Only when the transaction ends are its pending timers disarmed (the owner's
`_forget`), so that the heap does not keep it, and its messages, until they are due.
"""

from .errors import InvalidState
from .events import ResponseReceived, TransactionTimedOut, TransportFailed
from .message import Request

CALLING = "Calling"
TRYING = "Trying"
PROCEEDING = "Proceeding"
ACCEPTED = "Accepted"
COMPLETED = "Completed"
CONFIRMED = "Confirmed"
TERMINATED = "Terminated"

INVITE_CLIENT = "INVITE client"
NON_INVITE_CLIENT = "non-INVITE client"
INVITE_SERVER = "INVITE server"
NON_INVITE_SERVER = "non-INVITE server"

# (machine) -> state -> input -> next state. Inputs: "1xx", "2xx", "300-699" for responses
# received (client) or sent (server), "ACK", "timer X", "transport error".
TRANSITIONS = {
    INVITE_CLIENT: {
        CALLING: {
            "1xx": PROCEEDING, "2xx": ACCEPTED, "300-699": COMPLETED,
            "timer B": TERMINATED, "transport error": TERMINATED,
        },
        PROCEEDING: {"1xx": PROCEEDING, "2xx": ACCEPTED, "300-699": COMPLETED},
        ACCEPTED: {"2xx": ACCEPTED, "timer M": TERMINATED},
        COMPLETED: {"300-699": COMPLETED, "timer D": TERMINATED, "transport error": TERMINATED},
    },
    NON_INVITE_CLIENT: {
        TRYING: {
            "1xx": PROCEEDING, "2xx": COMPLETED, "300-699": COMPLETED,
            "timer F": TERMINATED, "transport error": TERMINATED,
        },
        PROCEEDING: {
            "1xx": PROCEEDING, "2xx": COMPLETED, "300-699": COMPLETED,
            "timer F": TERMINATED, "transport error": TERMINATED,
        },
        COMPLETED: {"timer K": TERMINATED},
    },
    INVITE_SERVER: {
        PROCEEDING: {
            "1xx": PROCEEDING, "2xx": ACCEPTED, "300-699": COMPLETED,
            "transport error": TERMINATED,
        },
        ACCEPTED: {"2xx": ACCEPTED, "timer L": TERMINATED},
        COMPLETED: {"ACK": CONFIRMED, "timer H": TERMINATED, "transport error": TERMINATED},
        CONFIRMED: {"timer I": TERMINATED},
    },
    NON_INVITE_SERVER: {
        TRYING: {"1xx": PROCEEDING, "2xx": COMPLETED, "300-699": COMPLETED,
                 "transport error": TERMINATED},
        PROCEEDING: {"1xx": PROCEEDING, "2xx": COMPLETED, "300-699": COMPLETED,
                     "transport error": TERMINATED},
        COMPLETED: {"timer J": TERMINATED},
    },
}

# A TU that has not answered an INVITE within this long gets a 100 Trying sent for it
# (RFC 3261 section 17.2.1).
TRYING_DELAY = 200


class TimerValues:
    """T1, T2 and T4 of RFC 3261 (milliseconds); the other timers derive from them."""

    __slots__ = ("t1", "t2", "t4")

    def __init__(self, t1=500, t2=4000, t4=5000):
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4


def status_class(status):
    if status < 200:
        return "1xx"
    if status < 300:
        return "2xx"
    return "300-699"


class Transaction:
    __slots__ = ("owner", "machine", "state", "request", "method", "key", "reliable",
                 "interval", "timers")

    def __init__(self, owner, machine, state, request, key, reliable):
        self.owner = owner
        self.machine = machine
        self.state = state
        self.request = request
        self.method = request.method
        self.key = key
        self.reliable = reliable
        self.interval = 0
        self.timers = []  # the owner's entries for our pending timers (see `_arm`)

    def _move(self, event):
        """Apply a transition; False (and no change) when `event` does not apply now."""
        target = TRANSITIONS[self.machine].get(self.state, {}).get(event)
        if target is None:
            return False
        self.state = target
        if target == TERMINATED:
            self.owner._forget(self)
        return True

    def _arm(self, name, delay, now):
        self.timers.append(self.owner._schedule(now + delay, self, name))

    def __repr__(self):
        return "<%s transaction %s %s>" % (self.machine, self.key[0], self.state)


class ClientTransaction(Transaction):
    """Sends a request and retransmits it until a response arrives or timer B/F fires."""

    __slots__ = ("data", "destination", "response")

    def __init__(self, owner, request, key, destination, reliable):
        invite = request.method == "INVITE"
        super().__init__(
            owner,
            INVITE_CLIENT if invite else NON_INVITE_CLIENT,
            CALLING if invite else TRYING,
            request,
            key,
            reliable,
        )
        self.destination = destination
        self.data = request.to_bytes()
        self.response = None

    def start(self, now):
        timers = self.owner.timers
        self._send()
        if not self.reliable:
            self.interval = timers.t1
            self._arm("A" if self.machine == INVITE_CLIENT else "E", timers.t1, now)
        self._arm("B" if self.machine == INVITE_CLIENT else "F", 64 * timers.t1, now)

    def _send(self):
        transport, host, port = self.destination
        self.owner._transmit(self.data, transport, host, port)

    def receive_response(self, response, now):
        klass = status_class(response.status)
        absorbed = self.state == COMPLETED
        accepted = self.state == ACCEPTED
        if not self._move(klass):
            return
        if self.machine == INVITE_CLIENT and klass == "2xx" and not accepted:
            self._arm("M", 64 * self.owner.timers.t1, now)
        if self.machine == INVITE_CLIENT and klass == "300-699":
            self.owner._transmit(self._ack(response).to_bytes(), *self.destination)
            if absorbed:
                return  # a retransmitted final response: ACK it again, tell nobody
            self._arm_completed("D", 32000, now)
        elif self.machine == NON_INVITE_CLIENT and klass != "1xx":
            self._arm_completed("K", self.owner.timers.t4, now)
        if klass != "1xx":
            self.response = response
        self.owner._emit(ResponseReceived(response, self))

    def _arm_completed(self, name, delay, now):
        if self.reliable:
            self._move("timer " + name)
        else:
            self._arm(name, delay, now)

    def _ack(self, response):
        """The ACK for a non-2xx final response (RFC 3261 section 17.1.1.3)."""
        request = self.request
        fields = [["Via", request.get_list("via")[0]]]
        for name, value in request.fields:
            lname = name.lower()
            if lname in ("from", "f", "call-id", "i", "route", "max-forwards"):
                fields.append([name, value])
        fields.append(["To", response.get("to")])
        fields.append(["CSeq", "%d ACK" % request.cseq.number])
        fields.append(["Content-Length", "0"])
        return Request("ACK", request.uri_text, fields)

    def on_timer(self, name, now):
        state = self.state
        t2 = self.owner.timers.t2
        if name == "A" and state == CALLING:
            self._send()
            self.interval *= 2
            self._arm("A", self.interval, now)
        elif name == "E" and (state == TRYING or state == PROCEEDING):
            self._send()
            self.interval = t2 if state == PROCEEDING else min(2 * self.interval, t2)
            self._arm("E", self.interval, now)
        elif name in ("B", "F"):
            if self._move("timer " + name):
                self.owner._emit(TransactionTimedOut(self))
        elif name in ("D", "K", "M"):
            self._move("timer " + name)

    def transport_error(self):
        if self._move("transport error"):
            self.owner._emit(TransportFailed(self))


class ServerTransaction(Transaction):
    """Absorbs retransmitted requests, retransmits its last response, and for INVITE
    retransmits a non-2xx final response until the ACK (timers G, H, I)."""

    __slots__ = ("source", "destination", "last_response", "to_tag", "merge_key")

    def __init__(self, owner, request, key, source, destination, reliable):
        invite = request.method == "INVITE"
        super().__init__(
            owner,
            INVITE_SERVER if invite else NON_INVITE_SERVER,
            PROCEEDING if invite else TRYING,
            request,
            key,
            reliable,
        )
        self.source = source
        self.destination = destination  # (transport, host, port, alternative or None)
        self.last_response = None
        self.to_tag = None
        self.merge_key = None  # set by the endpoint for requests outside a dialog

    def start(self, now):
        if self.machine == INVITE_SERVER:
            self._arm("100", TRYING_DELAY, now)

    def _send(self):
        transport, host, port, alternative = self.destination
        self.owner._transmit(self.last_response, transport, host, port, alternative)

    def receive_retransmission(self, request, now):
        """A request that matched this transaction again: resend, or take the ACK."""
        if request.method == "ACK":
            if self._move("ACK"):
                if self.reliable:
                    self._move("timer I")
                else:
                    self._arm("I", self.owner.timers.t4, now)
            return
        if self.last_response is not None and self.state in (PROCEEDING, COMPLETED):
            self._send()  # in Accepted the TU resends the 2xx on its own schedule

    def send_response(self, response, now):
        klass = status_class(response.status)
        state = self.state
        if TRANSITIONS[self.machine].get(state, {}).get(klass) is None:
            raise InvalidState(
                "cannot send %d in state %s of %s" % (response.status, state, self)
            )
        accepted = state == ACCEPTED
        self.last_response = response.to_bytes()
        self._send()
        self._move(klass)
        if klass == "1xx" or accepted:
            return
        timers = self.owner.timers
        if self.machine == NON_INVITE_SERVER:
            # Completed needs only the response bytes: let the parsed request go, so that
            # thousands of transactions waiting out timer J stay small.
            self.request = None
        if self.machine == INVITE_SERVER:
            if klass == "300-699":
                if not self.reliable:
                    self.interval = timers.t1
                    self._arm("G", timers.t1, now)
                self._arm("H", 64 * timers.t1, now)
            else:
                self._arm("L", 64 * timers.t1, now)
        elif self.reliable:
            self._move("timer J")
        else:
            self._arm("J", 64 * timers.t1, now)

    def answer_statelessly(self, response):
        """Send a final response once and end, keeping nothing (a stateless UAS, RFC 3261
        section 8.2.7): no retransmission, and a retransmitted request is a new one."""
        if response.status < 200 or (self.machine == INVITE_SERVER and response.status < 300):
            raise InvalidState("%d cannot be sent statelessly" % response.status)
        if self.state not in (TRYING, PROCEEDING):
            raise InvalidState("cannot send %d in state %s of %s"
                               % (response.status, self.state, self))
        self.last_response = response.to_bytes()
        self._send()
        self.request = None
        self.state = TERMINATED
        self.owner._forget(self)

    def on_timer(self, name, now):
        state = self.state
        if name == "100":
            if state == PROCEEDING and self.last_response is None:
                trying = self.owner._trying(self.request)
                self.last_response = trying.to_bytes()
                self._send()
        elif name == "G" and state == COMPLETED:
            self._send()
            self.interval = min(2 * self.interval, self.owner.timers.t2)
            self._arm("G", self.interval, now)
        elif name == "H":
            if self._move("timer H"):
                self.owner._emit(TransactionTimedOut(self))
        elif name in ("I", "J", "L"):
            self._move("timer " + name)

    def transport_error(self):
        self._move("transport error")
