"""Dialogs (RFC 3261 section 12): the state two user agents share between requests.

A dialog is made from the request and response that establish it, from either side
(`Dialog.as_uas`, `Dialog.as_uac`); it builds the requests sent within it and checks the
ones that arrive. The endpoint keeps dialogs by `dialog.id` and answers 481 to a request
whose dialog it does not know.
"""

from .headers import parse_address
from .message import Request

# Methods whose Contact replaces the remote target (RFC 3261 12.2.2, RFC 6665, RFC 3311).
TARGET_REFRESH = ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER")


def dialog_id_for_request(request):
    """The id, from this side, of the dialog a received request belongs to."""
    return (request.call_id, request.to.tag, request.from_.tag)


def _contact_uri(message):
    contacts = message.get_list("contact")
    return parse_address(contacts[0]).uri if contacts else None


class Dialog:
    __slots__ = (
        "call_id", "local_tag", "remote_tag", "local_uri", "remote_uri", "remote_target",
        "route_set", "local_seq", "remote_seq", "secure", "local_contact",
    )

    def __init__(self, call_id, local_tag, remote_tag, local_uri, remote_uri,
                 remote_target, route_set, local_seq, remote_seq, secure=False,
                 local_contact=None):
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set  # list of route header values (name-addr text)
        self.local_seq = local_seq  # None while empty
        self.remote_seq = remote_seq
        self.secure = secure
        self.local_contact = local_contact

    @property
    def id(self):
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request, local_tag, local_contact=None, secure=False):
        """The dialog a UAS creates by answering `request` with a 2xx or 101-199 with a
        To tag `local_tag` (section 12.1.1)."""
        return cls(
            request.call_id,
            local_tag,
            request.from_.tag,
            request.to.uri,
            request.from_.uri,
            _contact_uri(request),
            request.get_list("record-route"),
            None,
            request.cseq.number,
            secure,
            local_contact,
        )

    @classmethod
    def as_uac(cls, request, response, local_contact=None, secure=False):
        """The dialog a UAC creates from its request and a 2xx or 101-199 with a To tag
        (section 12.1.2): the route set is the response's Record-Route, reversed."""
        routes = response.get_list("record-route")
        routes.reverse()
        return cls(
            request.call_id,
            request.from_.tag,
            response.to.tag,
            request.from_.uri,
            request.to.uri,
            _contact_uri(response),
            routes,
            request.cseq.number,
            None,
            secure,
            local_contact,
        )

    def receive_request(self, request):
        """Check and take a request within the dialog (section 12.2.2).

        Returns False when its CSeq is lower than the last one seen (answer 500).
        """
        number = request.cseq.number
        method = request.method
        if method != "ACK" and method != "CANCEL":
            if self.remote_seq is not None and number < self.remote_seq:
                return False
            self.remote_seq = number
        if method in TARGET_REFRESH:
            target = _contact_uri(request)
            if target is not None:
                self.remote_target = target
        return True

    def refresh_target(self, response):
        """A 2xx to a target-refresh request updates the remote target."""
        target = _contact_uri(response)
        if target is not None:
            self.remote_target = target

    def create_request(self, method, fields=(), body=b""):
        """A request within the dialog (section 12.2.1.1): Request-URI and Route from the
        route set and remote target, From/To with tags, the next CSeq."""
        if method != "ACK" and method != "CANCEL":
            self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        routes = list(self.route_set)
        request_uri = self.remote_target
        if routes:
            first = parse_address(routes[0])
            if not first.uri.has_param("lr"):
                # Strict routing: the first route becomes the Request-URI and the remote
                # target joins the end of the Route set.
                request_uri = first.uri.copy()
                request_uri.params = [
                    (n, v) for n, v in request_uri.params if n.lower() not in ("method",)
                ]
                routes = routes[1:] + ["<%s>" % self.remote_target]
        out = [["Route", route] for route in routes]
        out.append(["Max-Forwards", "70"])
        out.append(["From", "<%s>;tag=%s" % (self.local_uri, self.local_tag)])
        to = "<%s>" % self.remote_uri
        if self.remote_tag:
            to += ";tag=" + self.remote_tag
        out.append(["To", to])
        out.append(["Call-ID", self.call_id])
        out.append(["CSeq", "%d %s" % (self.local_seq or 1, method)])
        if self.local_contact is not None:
            out.append(["Contact", "<%s>" % self.local_contact])
        for name, value in fields:
            out.append([name, str(value)])
        out.append(["Content-Length", str(len(body))])
        return Request(method, request_uri, out, body)

    def next_hop(self, request):
        """The URI a request built by `create_request` is sent to: its first Route, or
        else its Request-URI (RFC 3261 section 8.1.2)."""
        if self.route_set and not parse_address(self.route_set[0]).uri.has_param("lr"):
            return request.uri  # a strict router: it is the Request-URI (section 8.1.2)
        routes = request.get_list("route")
        if routes:
            return parse_address(routes[0]).uri
        return request.uri
