"""One-shot SIP client requests for the command line (`appliance options URI`, ...)."""

import asyncio

from .agent import USER_AGENT
from .errors import ApplianceError
from .net.resolver import resolve
from .net.stack import SipStack
from .net.tls import TlsContexts
from .sip.digest import DigestClient
from .sip.errors import ParseError
from .sip.events import ResponseReceived, TransactionTimedOut, TransportFailed
from .sip.message import make_request
from .sip.uri import parse_uri

MAX_CHALLENGES = 2  # answers to fresh challenges (a stale nonce included) per request


class ClientError(ApplianceError):
    """A client command could not start (bad URI, name that does not resolve)."""


class Result:
    """The final response, or why there is none."""

    def __init__(self, response=None, error=None):
        self.response = response
        self.error = error


def _target(uri_text, what):
    try:
        uri = parse_uri(uri_text)
    except ParseError as error:
        raise ClientError(
            "%s %r is not a SIP URI: %s" % (what, uri_text, error.reason)
        ) from None
    if uri.scheme == "tel":
        raise ClientError("%s %r: a tel: URI needs a --proxy to route it" % (what, uri_text))
    return uri


def listeners(listen, next_hop, transport, address):
    """(listen specs, the host to advertise or None) of a client command: its --listen
    specs (which must include the transport toward `next_hop`, but for TLS, which needs no
    listener), else UDP and TCP on any address of the family of `address`, on ports the
    kernel picks; then, to a peer on this machine, Via and Contact say so rather than
    naming the LAN address."""
    if listen:
        specs = [(spec.transport, spec.host, spec.port) for spec in listen]
        if transport != "tls" and transport not in [spec[0] for spec in specs]:
            raise ClientError("%s goes over %s, but --listen has no %s: listener"
                              % (next_hop, transport, transport))
        return specs, None  # the listeners' own addresses
    family_any = "::" if ":" in address else "0.0.0.0"
    return ([("udp", family_any, 0), ("tcp", family_any, 0)],
            {"127.0.0.1": "127.0.0.1", "::1": "[::1]"}.get(address))


async def send_once(method, uri_text, from_uri=None, proxy=None, timeout=5.0, listen=(),
                    fields=(), body=b"", username=None, password=None, ca=None):
    """Send one request outside a dialog and wait for its final response.

    With `username` and `password`, a 401 or 407 is answered with digest credentials: the
    request goes again with the next CSeq (RFC 3261 section 22.2), once per new challenge.
    Over TLS (a sips: URI or proxy, transport=tls) the server's certificate must chain to
    a CA of the file `ca` (None: the system's CAs) and name the URI's host; no tls:
    listener is needed (a client has no certificate to offer).
    """
    target = _target(uri_text, "URI")
    next_hop = _target(proxy, "proxy") if proxy else target
    transport, address, port = await resolve(next_hop, transports=("udp", "tcp", "tls"))
    specs, advertise = listeners(listen, next_hop, transport, address)
    outcomes = asyncio.Queue()

    def on_event(event):
        if isinstance(event, ResponseReceived) and event.response.status >= 200:
            outcomes.put_nowait(Result(event.response))
        elif isinstance(event, TransactionTimedOut):
            outcomes.put_nowait(Result(error="no response from %s (timed out)" % uri_text))
        elif isinstance(event, TransportFailed):
            outcomes.put_nowait(Result(error="cannot reach %s over %s" % (uri_text, transport)))

    stack = SipStack(specs, on_event, advertise=advertise, tls=TlsContexts(ca=ca))
    await stack.start()
    endpoint = stack.endpoint
    digest = None
    if username is not None and password is not None:
        digest = DigestClient(lambda realm: (username, password), endpoint.token)
    local_host = endpoint.local.get(transport, endpoint.local["udp"])[0]
    sender = from_uri or "sip:appliance@%s" % local_host
    tag = endpoint.new_tag()
    call_id = endpoint.new_call_id()
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        for cseq in range(1, MAX_CHALLENGES + 2):
            request = make_request(
                method, target, sender, tag, call_id, cseq,
                routes=["%s;lr" % next_hop] if proxy else (),
                fields=[("User-Agent", USER_AGENT), *fields], body=body,
            )
            if digest is not None:
                digest.authorize(request)
            stack.send_request(request, (transport, address, port))
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                result = await asyncio.wait_for(outcomes.get(), max(remaining, 0.001))
            except TimeoutError:
                return Result(error="no final response from %s within %gs"
                              % (uri_text, timeout))
            response = result.response
            if response is None or response.status not in (401, 407) or digest is None \
                    or not digest.challenged(response):
                return result
        return result
    finally:
        await stack.close()


async def options(uri_text, **kwargs):
    return await send_once(
        "OPTIONS", uri_text, fields=[("Accept", "application/sdp")], **kwargs
    )
