"""The SIP endpoint: transport-independent message handling, the transaction layer and the
UAS checks of RFC 3261 section 8.2, as a sans-I/O state machine.

    endpoint.receive(data, "udp", ("192.0.2.7", 5060), now)
    for datagram in endpoint.datagrams_to_send(): ...send it...
    while (event := endpoint.next_event()) is not None: ...act...
    endpoint.get_timer()   # the next deadline (ms) or None; then endpoint.handle_timer(now)

Addresses are (transport, host, port) with transport "udp", "tcp" or "tls". For a stream
transport, (host, port) is the peer's end of the connection the bytes came on, so a
response sent to it goes back over that connection (RFC 3261 section 18.2.2).
"""

import heapq

from .dialog import dialog_id_for_request
from .errors import InvalidState, ParseError, SipError
from .events import (
    MessageDropped,
    RequestCancelled,
    RequestReceived,
    RequestRejected,
    SourceLimited,
)
from .headers import split_list
from .limits import Limits, RateLimiter
from .message import Request, Response, make_response, parse_message
from .transaction import (
    ACCEPTED,
    CALLING,
    PROCEEDING,
    ClientTransaction,
    ServerTransaction,
    TimerValues,
)
from .uas import check_extensions, check_request
from .uri import is_digits

MAGIC_COOKIE = "z9hG4bK"
RELIABLE = ("tcp", "tls", "ws", "wss")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
# RFC 3261 section 18.1.1: a request within 200 bytes of the path MTU goes over TCP.
UDP_SIZE_LIMIT = 1300


class Datagram:
    """Bytes to send. `alternative` is where to send a response if the connection at
    (host, port) is gone: the Via's received address and sent-by port."""

    __slots__ = ("data", "transport", "host", "port", "alternative")

    def __init__(self, data, transport, host, port, alternative=None):
        self.data = data
        self.transport = transport
        self.host = host
        self.port = port
        self.alternative = alternative

    def __repr__(self):
        return "<Datagram %s:%s:%s %d bytes>" % (
            self.transport, self.host, self.port, len(self.data),
        )


class Capabilities:
    """What this UAS implements, for the checks of RFC 3261 section 8.2 and OPTIONS.

    `allow`: methods served (a method outside it gets 405 when `uas.KNOWN_METHODS` has it,
    501 otherwise, both with Allow); `accept`: body media types; `supported`: option tags;
    `allow_events`: event packages.
    """

    __slots__ = ("allow", "accept", "supported", "allow_events")

    def __init__(self, allow=("OPTIONS",), accept=("application/sdp",), supported=(),
                 allow_events=()):
        self.allow = tuple(allow)
        self.accept = tuple(accept)
        self.supported = tuple(supported)
        self.allow_events = tuple(allow_events)


class Endpoint:
    """One SIP endpoint: any number of local transports, transactions and dialogs.

    `local` maps a transport name to the (host, port) put in Via for requests sent over
    it. `token` returns a fresh random string of hex digits of the length asked for (it
    provides branches, tags and Call-IDs: pass a strong source). `timers` holds T1, T2, T4.
    `limits` (limits.py) bounds the request rate per source address and the transaction
    tables; `limited` and `refused` count the requests dropped and answered 503 for them.
    """

    def __init__(self, local, token, capabilities=None, timers=None, user_agent=None,
                 limits=None):
        self.local = dict(local)
        self.token = token
        self.capabilities = capabilities if capabilities is not None else Capabilities()
        self.timers = timers if timers is not None else TimerValues()
        self.user_agent = user_agent
        self.limits = None
        self._limiter = None
        self.set_limits(limits if limits is not None else Limits())
        self.limited = 0
        self.refused = 0
        self._per_source = {}  # source address -> its server transactions
        self._asked = {}  # address -> our client transactions sent there
        self.server_transactions = {}
        self.client_transactions = {}
        self.dialogs = {}
        # Called with a request for a dialog not (yet) known; may return a new Dialog for
        # it (a subscriber's first NOTIFY overtaking the 2xx, RFC 6665 4.1.2.4), else None.
        self.dialog_for = None
        # (Call-ID, From tag, CSeq) of requests outside a dialog still in a transaction:
        # a second copy by another path is a merged request (section 8.2.2.2).
        self._merge_keys = {}
        self._timers = []
        self._timer_seq = 0
        self._events = []
        self._event_pos = 0
        self._out = []

    def set_limits(self, limits):
        """Enforce `limits` from now on (a source's allowance starts afresh when the rate
        or burst changes)."""
        old = self.limits
        self.limits = limits
        if old is not None and (old.rate, old.burst, old.max_sources) \
                == (limits.rate, limits.burst, limits.max_sources):
            return
        self._limiter = None
        if limits.rate:
            self._limiter = RateLimiter(limits.rate, limits.burst, limits.max_sources)

    # -- identifiers -------------------------------------------------------------------

    def new_branch(self):
        return MAGIC_COOKIE + self.token(16)

    def new_tag(self):
        return self.token(12)

    def new_call_id(self):
        return self.token(24)

    # -- the outside world in ----------------------------------------------------------

    def receive(self, data, transport, source, now):
        """Take the bytes of one message (a datagram, or one framed from a stream).

        Input from the network never raises: what cannot be answered becomes a
        MessageDropped event."""
        peer = (transport, source[0], source[1])
        if not data.strip(b"\r\n"):
            return  # a CRLF keep-alive datagram: nothing to answer
        if self._limiter is not None and (not data.startswith(b"SIP/2.0 ")
                                          or source[0] not in self._asked):
            # Requests and garbage count, and responses but from where requests of ours
            # went (a registrar answering a burst of REGISTERs is never held back).
            allowed = self._limiter.allow(source[0], now)
            if allowed <= 0:
                self.limited += 1
                if allowed < 0:
                    self._emit(SourceLimited(peer))
                return
        try:
            message = parse_message(data, transport in RELIABLE)
        except ParseError as error:
            if isinstance(error.message, Request):
                self._reject_malformed(error.message, error, peer)
            else:
                self._emit(MessageDropped(error.reason, peer, data))
            return
        if isinstance(message, Response):
            self._receive_response(message, peer, now)
        else:
            self._receive_request(message, peer, now)

    def _receive_request(self, request, peer, now):
        try:
            via = request.top_via()
            self._stamp_via(request, via, peer)
            key = self._server_key(request, via)
        except ParseError as error:
            self._reject_malformed(request, error, peer)
            return
        transaction = self.server_transactions.get(key)
        if transaction is not None:
            transaction.receive_retransmission(request, now)
            return
        method = request.method
        if method == "ACK":
            self._receive_ack(request, peer)
            return
        if method == "CANCEL":
            # A CANCEL matches the INVITE transaction with its branch (section 9.2).
            invite = self.server_transactions.get(key[:-1] + ("INVITE",))
        limits = self.limits
        held = self._per_source.get(peer[1], 0)
        if held >= limits.max_per_source \
                or len(self.server_transactions) >= limits.max_transactions:
            self.refused += 1
            self._answer_statelessly(request, 503, None, peer,
                                     [("Retry-After", str(limits.retry_after))])
            return
        transaction = ServerTransaction(
            self, request, key, peer, self._response_destination(via, peer),
            peer[0] in RELIABLE,
        )
        self.server_transactions[key] = transaction
        _count(self._per_source, peer[1], 1)
        transaction.start(now)
        problem = check_request(request, self.capabilities)
        if problem is None:
            problem = self._check_merged(request, transaction)
        if problem is None:
            problem = check_extensions(request, self.capabilities)
        if problem is not None:
            self._reject(transaction, problem[0], problem[1], problem[2], now)
            return
        if method == "CANCEL":
            self._receive_cancel(transaction, invite, now)
            return
        dialog = None
        if request.to.tag is not None:
            dialog = self.dialogs.get(dialog_id_for_request(request))
            if dialog is None and self.dialog_for is not None:
                dialog = self.dialog_for(request)
                if dialog is not None:
                    self.add_dialog(dialog)
            if dialog is None:
                self._reject(transaction, 481, None, (), now)
                return
            try:
                in_order = dialog.receive_request(request)
            except ParseError as error:  # a target refresh with a Contact it cannot read
                self._reject(transaction, 400, error.reason, (), now)
                return
            if not in_order:
                self._reject(transaction, 500, "CSeq Out of Order", (), now)
                return
        self._emit(RequestReceived(request, transaction, peer, dialog))

    def _receive_ack(self, request, peer):
        """An ACK that matched no transaction acknowledges a 2xx: it belongs to a dialog.
        It cannot be answered, so one whose CSeq or Request-URI cannot be read is dropped:
        the user reads them (the CSeq number says which 2xx it acknowledges)."""
        try:
            dialog = self.dialogs.get(dialog_id_for_request(request))
            request.cseq  # noqa: B018 - parsed now, as for every request handed over
            request.uri  # noqa: B018
        except ParseError as error:
            self._emit(MessageDropped(error.reason, peer, None))
            return
        if dialog is None:
            self._emit(MessageDropped("ACK outside any dialog", peer, None))
            return
        self._emit(RequestReceived(request, None, peer, dialog))

    def _receive_cancel(self, transaction, invite, now):
        if invite is None:
            self._reject(transaction, 481, None, (), now)
            return
        # A CANCEL that matches a transaction gets 200 whatever that one's state, with the
        # To tag of the INVITE's responses (RFC 3261 section 9.2); it only has an effect
        # while no final response was sent.
        tag = invite.to_tag or self.new_tag()
        self.respond(transaction, 200, now=now, to_tag=tag)
        if invite.state != PROCEEDING:
            return
        self.respond(invite, 487, now=now, to_tag=tag)
        self._emit(RequestCancelled(invite.request, invite))

    def _receive_response(self, response, peer, now):
        try:
            key = (response.top_via().branch, response.cseq.method)
            response.to  # noqa: B018 - parsed now: one without a readable To cannot be ACKed
        except ParseError as error:
            self._emit(MessageDropped(error.reason, peer, None))
            return
        transaction = self.client_transactions.get(key)
        if transaction is None:
            # A stray response, or a 2xx to INVITE retransmitted after its transaction
            # left Accepted (64*T1 after the first: its ACKs went long ago).
            self._emit(MessageDropped("response matches no transaction", peer, None))
            return
        transaction.receive_response(response, now)

    def _stamp_via(self, request, via, peer):
        """Add received and fill rport on the top Via (section 18.2.1, RFC 3581)."""
        host, port = peer[1], peer[2]
        rport = via.rport
        bare = via.host[1:-1] if via.host.startswith("[") else via.host
        if bare == host and rport is None:
            return
        via.set_param("received", host)
        if rport is not None:
            via.set_param("rport", str(port))
        for field in request.fields:
            name = field[0].lower()
            if name == "via" or name == "v":
                value = field[1]
                if "," in value:
                    # Replace the first value only; a quoted parameter may hold a comma.
                    field[1] = ", ".join([str(via)] + split_list(value)[1:])
                else:
                    field[1] = str(via)
                break
        request._changed()

    def _server_key(self, request, via):
        """Transaction key for a request (section 17.2.3, with the RFC 2543 fallback)."""
        method = "INVITE" if request.method == "ACK" else request.method
        branch = via.branch
        if branch is not None and len(branch) > 7 and branch.startswith(MAGIC_COOKIE):
            return (branch, via.sent_by().lower(), method)
        cseq = request.cseq
        return ("2543", request.call_id, request.from_.tag, cseq.number, request.uri_text,
                str(via), method)

    def _check_merged(self, request, transaction):
        """A request outside a dialog arriving again by another path (section 8.2.2.2):
        same From tag, Call-ID and CSeq as a live transaction, but not matching it."""
        if request.method == "CANCEL" or request.to.tag is not None:
            return None
        merge_key = (request.call_id, request.from_.tag, request.get("cseq"))
        if merge_key in self._merge_keys:
            return (482, None, ())
        self._merge_keys[merge_key] = transaction
        transaction.merge_key = merge_key
        return None

    def _response_destination(self, via, peer):
        """Where responses go (section 18.2.2, RFC 3581): the connection for a stream;
        received/rport (else sent-by port) for a datagram; maddr when present."""
        transport, host, port = peer
        sent_port = via.port if via.port is not None else DEFAULT_PORTS.get(transport, 5060)
        if transport in RELIABLE:
            return (transport, host, port, (host, sent_port))
        maddr = via.param("maddr")
        if maddr and _is_multicast(maddr):
            # Only a multicast group is honoured: a unicast maddr would let any sender aim
            # our responses at a third party (and a name would need a DNS lookup).
            return (transport, maddr, sent_port, None)
        return (transport, host, port if via.rport is not None else sent_port, None)

    def limited_sources(self, now):
        """The addresses whose requests are being dropped for their rate now."""
        return self._limiter.limited(now) if self._limiter is not None else []

    def add_dialog(self, dialog):
        self.dialogs[dialog.id] = dialog

    def remove_dialog(self, dialog):
        self.dialogs.pop(dialog.id, None)

    # -- answering -------------------------------------------------------------------

    def respond(self, transaction, status, reason=None, fields=(), body=b"", to_tag=None,
                now=0, stateless=False):
        """Answer the request of a server transaction; returns the Response sent.

        A final response to a request without a To tag gets `to_tag`, or a new tag.
        `stateless`: send a final response once and end the transaction, as a stateless
        UAS does (RFC 3261 section 8.2.7): for answers that change nothing and cost
        nothing to give again, such as a challenge, so that a flood of requests that are
        never authenticated leaves no transactions behind. A retransmitted request is then
        a new one. Not for a 2xx to INVITE.
        """
        if transaction.request is None:
            # A non-INVITE server transaction lets its request go with its final response.
            raise InvalidState("cannot send %d: %r has sent its final response"
                               % (status, transaction))
        if status > 100:
            # Every response after 100 carries one tag, the first one chosen.
            to_tag = transaction.to_tag or to_tag or self.new_tag()
            transaction.to_tag = to_tag
        else:
            to_tag = None
        if self.user_agent and status > 100:
            fields = list(fields) + [("Server", self.user_agent)]
        response = make_response(transaction.request, status, reason, to_tag, fields, body)
        if stateless and status >= 200:
            transaction.answer_statelessly(response)
        else:
            self.send_response(transaction, response, now)
        return response

    def send_response(self, transaction, response, now):
        transaction.send_response(response, now)

    def resend_2xx(self, transaction):
        """Send the 2xx of an INVITE server transaction again (RFC 6026: the TU
        retransmits it until the ACK comes); False once the transaction has ended."""
        if transaction.state != ACCEPTED:
            return False
        transaction._send()
        return True

    def _reject(self, transaction, status, reason, fields, now):
        fields = list(fields)
        capabilities = self.capabilities
        if status in (405, 501):
            fields.append(("Allow", ", ".join(capabilities.allow)))
        elif status == 415:
            fields.append(("Accept", ", ".join(capabilities.accept)))
            fields.append(("Accept-Encoding", "identity"))
        request = transaction.request
        # Stateless (RFC 3261 section 8.2.7): a rejection changes nothing and is made again
        # for a retransmission, and one the sender cannot ACK (no Call-ID) is not resent
        # until timer H, toward an address that may not even have sent it.
        response = self.respond(transaction, status, reason, fields, now=now, stateless=True)
        self._emit(RequestRejected(request, response, transaction.source))

    def _reject_malformed(self, request, error, peer):
        """Answer a request that failed parsing, statelessly: no transaction is kept for
        input this broken. Without any Via there is no response to build, and an ACK is
        never answered (RFC 3261 section 17.1.1.3): drop those."""
        if request.method == "ACK" or not request.has("via"):
            self._emit(MessageDropped(error.reason, peer, None))
            return
        self._answer_statelessly(request, error.status, error.reason, peer)

    def _answer_statelessly(self, request, status, reason, peer, fields=()):
        """Answer without a transaction (and so without retransmissions)."""
        try:
            destination = self._response_destination(request.top_via(), peer)
        except ParseError:
            destination = peer + (None,)  # back where it came from
        response = make_response(request, status, reason, self.new_tag(), fields)
        self._transmit(response.to_bytes(), *destination)
        self._emit(RequestRejected(request, response, peer))

    def _trying(self, request):
        return make_response(request, 100)

    # -- requests out ------------------------------------------------------------------

    def send_request(self, request, destination, now, allow_upgrade=True):
        """Send a request in a new client transaction; returns the transaction.

        The top Via is written here (transport, sent-by, a new branch, rport), so the
        caller leaves Via out. A request over 1300 bytes that would go over UDP goes over
        TCP instead when `allow_upgrade` (section 18.1.1).
        """
        transport, host, port = destination
        if transport not in self.local:
            raise SipError("no local %s transport to send %s over" % (transport, request.method))
        branch = self.new_branch()
        if not request.has("content-length"):
            request.add("Content-Length", len(request.body))
        self._write_via(request, transport, branch)
        if transport == "udp" and allow_upgrade and "tcp" in self.local \
                and len(request.to_bytes()) > UDP_SIZE_LIMIT:
            transport = "tcp"
            self._write_via(request, transport, branch)
        if request.method == "ACK":
            # An ACK for a 2xx is sent without a transaction (section 17.1.1.3).
            self._transmit(request.to_bytes(), transport, host, port)
            return None
        key = (branch, request.method)
        transaction = ClientTransaction(
            self, request, key, (transport, host, port), transport in RELIABLE,
        )
        self._add_client(key, transaction)
        transaction.start(now)
        return transaction

    def send_cancel(self, invite, destination, now):
        """CANCEL the INVITE of client transaction `invite` (section 9.1): the same
        Request-URI, Call-ID, From, To, Route and top Via (its branch), CSeq number with
        method CANCEL, sent where the INVITE went in a transaction of its own. Returns
        that transaction; None once the INVITE has a final response (nothing to cancel)."""
        if invite.state not in (CALLING, PROCEEDING):
            return None
        request = invite.request
        fields = [["Via", request.get_list("via")[0]]]
        for name, value in request.fields:
            if name.lower() in ("from", "f", "to", "t", "call-id", "i", "route",
                                "max-forwards"):
                fields.append([name, value])
        fields.append(["CSeq", "%d CANCEL" % request.cseq.number])
        fields.append(["Content-Length", "0"])
        cancel = Request("CANCEL", request.uri_text, fields)
        key = (invite.key[0], "CANCEL")
        transaction = ClientTransaction(self, cancel, key, destination,
                                        destination[0] in RELIABLE)
        self._add_client(key, transaction)
        transaction.start(now)
        return transaction

    def _add_client(self, key, transaction):
        self.client_transactions[key] = transaction
        address = transaction.destination[1].strip("[]")
        _count(self._asked, address, 1)

    def _write_via(self, request, transport, branch):
        local_host, local_port = self.local[transport]
        request.remove("via")
        request.add_first("Via", "SIP/2.0/%s %s:%d;branch=%s;rport" % (
            transport.upper(), local_host, local_port, branch,
        ))

    def connection_closed(self, transport, host, port, now):
        """A stream connection to (host, port) closed. Client transactions that sent over it
        fail (no response can come back on it); server transactions carry on, as their
        responses may still reach the Via's sent-by over a new connection (18.2.2)."""
        for transaction in list(self.client_transactions.values()):
            if transaction.destination == (transport, host, port):
                transaction.transport_error()

    def transport_error(self, transport, host, port, now):
        """The net layer could not deliver to (transport, host, port)."""
        for transaction in list(self.client_transactions.values()):
            if transaction.destination == (transport, host, port):
                transaction.transport_error()
        for transaction in list(self.server_transactions.values()):
            destination = transaction.destination
            if destination[0] == transport and destination[1] == host \
                    and destination[2] == port:
                transaction.transport_error()

    # -- the outside world out ---------------------------------------------------------

    def datagrams_to_send(self):
        out = self._out
        self._out = []
        return out

    def next_event(self):
        events = self._events
        pos = self._event_pos
        if pos >= len(events):
            if events:
                self._events = []
                self._event_pos = 0
            return None
        self._event_pos = pos + 1
        return events[pos]

    def get_timer(self):
        """The earliest deadline (ms) at which `handle_timer` must be called, or None."""
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now):
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            transaction = entry[2]
            if transaction is None:
                continue  # its transaction ended before the timer was due
            transaction.timers.remove(entry)
            transaction.on_timer(entry[3], now)

    # -- used by transactions ----------------------------------------------------------

    def _transmit(self, data, transport, host, port, alternative=None):
        self._out.append(Datagram(data, transport, host, port, alternative))

    def _schedule(self, deadline, transaction, name):
        """A timer for `transaction`; returns its entry, which `_forget` disarms (the heap
        keeps the entry until it is due, but no longer the ended transaction with its
        messages)."""
        self._timer_seq += 1
        entry = [deadline, self._timer_seq, transaction, name]
        heapq.heappush(self._timers, entry)
        return entry

    def _emit(self, event):
        self._events.append(event)

    def _forget(self, transaction):
        for entry in transaction.timers:
            entry[2] = None
        transaction.timers = []
        if isinstance(transaction, ServerTransaction):
            if self.server_transactions.get(transaction.key) is transaction:
                del self.server_transactions[transaction.key]
                _count(self._per_source, transaction.source[1], -1)
            merge_key = transaction.merge_key
            if merge_key is not None and self._merge_keys.get(merge_key) is transaction:
                del self._merge_keys[merge_key]
        elif self.client_transactions.get(transaction.key) is transaction:
            del self.client_transactions[transaction.key]
            _count(self._asked, transaction.destination[1].strip("[]"), -1)


def _count(table, address, change):
    """Add `change` to `address`'s count in `table`, which holds no zero counts."""
    count = table.get(address, 0) + change
    if count > 0:
        table[address] = count
    else:
        table.pop(address, None)


def _is_multicast(host):
    """True for an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast address literal."""
    if ":" in host:
        return host.strip("[]").lower().startswith("ff")
    first, dot, _ = host.partition(".")
    return bool(dot) and is_digits(first, 3) and 224 <= int(first) <= 239 \
        and host.count(".") == 3
