"""The checks a UAS makes before its user sees a request (RFC 3261 section 8.2).

`check_request(request, capabilities)` (syntax and version, method 8.2.1, Request-URI
8.2.2.1) and then `check_extensions` (Require 8.2.2.3, content 8.2.3) each return None for
a request to pass on, or the answer it deserves as (status, reason or None, extra header
fields). Merged requests (8.2.2.2) come between the two and need the transaction table:
`Endpoint` checks those.
"""

from .errors import ParseError
from .uri import is_digits

# Methods this UA recognises: a request for one of these that the UA does not serve gets
# 405; any other method 501 (RFC 3261 sections 8.2.1 and 21.5.2). Both carry Allow.
KNOWN_METHODS = (
    "ACK", "BYE", "CANCEL", "DO", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
    "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE",
)

# Headers that a request carries exactly once (RFC 3261 section 8.1.1; RFC 4475 3.3.8).
_SINGLE = ("call-id", "from", "to", "cseq")
_AT_MOST_ONCE = ("max-forwards", "content-length", "content-type")


def _syntax_problem(request):
    """The first syntax fault that makes the request unusable, as a reason phrase."""
    index = request._lookup()
    for key in _SINGLE:
        values = index.get(key)
        if not values:
            return "Missing " + _display_name(key)
        if len(values) > 1:
            return "Multiple " + _display_name(key) + " headers"
    for key in _AT_MOST_ONCE:
        values = index.get(key)
        if values is not None and len(values) > 1:
            return "Multiple " + _display_name(key) + " headers"
    if not index["call-id"][0]:
        return "Empty Call-ID"
    try:
        cseq = request.cseq
        request.from_  # noqa: B018 - parsing is the check
        request.to  # noqa: B018
    except ParseError as error:
        return error.reason
    if cseq.method != request.method:
        return "CSeq method does not match the request method"
    max_forwards = index.get("max-forwards")
    if max_forwards is not None:
        value = max_forwards[0].strip()
        if not is_digits(value) or int(value) > 255:
            return "Malformed Max-Forwards"
    return None


def _display_name(key):
    return {"call-id": "Call-ID", "cseq": "CSeq"}.get(
        key, "-".join(part[:1].upper() + part[1:] for part in key.split("-"))
    )


def check_request(request, capabilities):
    major_minor = request.version[4:]
    if major_minor != "2.0":
        return (505, None, ())
    problem = _syntax_problem(request)
    if problem is not None:
        return (400, problem, ())
    method = request.method
    if method not in capabilities.allow and method != "ACK" and method != "CANCEL":
        return (405 if method in KNOWN_METHODS else 501, None, ())
    try:
        uri = request.uri
    except ParseError as error:
        if error.status == 416:
            return (416, None, ())
        return (400, "Malformed Request-URI", ())
    if uri.scheme == "tel":
        return (416, None, ())
    if uri.headers:
        return (400, "Headers not allowed in the Request-URI", ())
    return None


def check_extensions(request, capabilities):
    """Require (8.2.2.3) and content (8.2.3), after the merged-request check (8.2.2.2)."""
    method = request.method
    if method != "ACK" and method != "CANCEL":
        try:
            required = request.get_list("require")
        except ParseError as error:
            return (400, error.reason, ())
        unsupported = [tag for tag in required if tag.lower() not in capabilities.supported]
        if unsupported:
            return (420, None, (("Unsupported", ", ".join(unsupported)),))
    if request.body:
        content_type = request.content_type
        if content_type is None:
            return (400, "Missing Content-Type", ())
        if content_type not in capabilities.accept:
            return (415, None, ())
        encoding = request.get("content-encoding")
        if encoding is not None and encoding.strip().lower() != "identity":
            return (415, None, ())
    return None
