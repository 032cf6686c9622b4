"""What the endpoint tells its user, named as facts (after aioquic's `quic/events.py`).

`Endpoint.next_event()` returns these one at a time.
"""


class Event:
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__)
        return "%s(%s)" % (type(self).__name__, fields)


class RequestReceived(Event):
    """A new request passed every check; answer it with `Endpoint.respond`.

    `dialog` is the dialog it belongs to, or None outside a dialog. For ACK to a 2xx
    (which has no transaction) `transaction` is None.
    """

    __slots__ = ("request", "transaction", "source", "dialog")

    def __init__(self, request, transaction, source, dialog=None):
        self.request = request
        self.transaction = transaction
        self.source = source
        self.dialog = dialog


class RequestRejected(Event):
    """The core answered a request itself (400, 405, 481, 505...) without passing it on."""

    __slots__ = ("request", "response", "source")

    def __init__(self, request, response, source):
        self.request = request
        self.response = response
        self.source = source


class RequestCancelled(Event):
    """A CANCEL matched a pending INVITE; the core has answered 487 to the INVITE."""

    __slots__ = ("request", "transaction")

    def __init__(self, request, transaction):
        self.request = request
        self.transaction = transaction


class ResponseReceived(Event):
    """A response to a request sent with `Endpoint.send_request`."""

    __slots__ = ("response", "transaction")

    def __init__(self, response, transaction):
        self.response = response
        self.transaction = transaction


class TransactionTimedOut(Event):
    """Timer B or F fired (no final response), or timer H (no ACK for a final response)."""

    __slots__ = ("transaction",)

    def __init__(self, transaction):
        self.transaction = transaction


class TransportFailed(Event):
    """A client transaction's request could not be delivered (treat as 503, RFC 3261 8.1.3.1)."""

    __slots__ = ("transaction",)

    def __init__(self, transaction):
        self.transaction = transaction


class MessageDropped(Event):
    """Input that could not be answered (no usable Via, a broken response, stray bytes).

    `data` holds the bytes when nothing of them could be parsed; it stays out of repr(),
    as it may carry credentials."""

    __slots__ = ("reason", "source", "data")

    def __init__(self, reason, source, data):
        self.reason = reason
        self.source = source
        self.data = data

    def __repr__(self):
        return "MessageDropped(reason=%r, source=%r)" % (self.reason, self.source)


class SourceLimited(Event):
    """Requests from `source`'s address came faster than the endpoint's rate limit: they
    are dropped unanswered until they slow down (reported once per such episode)."""

    __slots__ = ("source",)

    def __init__(self, source):
        self.source = source
