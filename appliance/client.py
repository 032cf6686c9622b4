"""One-shot SIP client requests for the command line (`appliance options URI`, ...)."""

import asyncio
import socket

from .agent import USER_AGENT
from .errors import ApplianceError
from .net.stack import SipStack
from .sip.errors import ParseError
from .sip.events import ResponseReceived, TransactionTimedOut, TransportFailed
from .sip.message import make_request
from .sip.uri import parse_uri


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


async def resolve(uri):
    """(transport, address, port) to send to for a SIP URI.

    Uses the URI's transport parameter and port, else UDP and 5060 (sips: TLS and 5061).
    RFC 3263 NAPTR/SRV selection arrives with proxy support.
    """
    transport = (uri.param("transport") or ("tls" if uri.secure else "udp")).lower()
    port = uri.port or (5061 if transport == "tls" else 5060)
    host = uri.param("maddr") or uri.host
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise ClientError("cannot resolve %s: %s" % (host, error.strerror)) from None
    address = infos[0][4][0]
    return transport, address, port


async def send_once(method, uri_text, from_uri=None, proxy=None, timeout=5.0, listen=(),
                    fields=(), body=b""):
    """Send one request outside a dialog and wait for its final response."""
    target = _target(uri_text, "URI")
    next_hop = _target(proxy, "proxy") if proxy else target
    transport, address, port = await resolve(next_hop)
    if transport not in ("udp", "tcp"):
        raise ClientError(
            "%s needs %s, which this version does not have; use a sip: URI over udp or tcp"
            % (next_hop, transport.upper())
        )
    family_any = "::" if ":" in address else "0.0.0.0"
    if listen:
        specs = [(s.transport, s.host, s.port) for s in listen]
        if transport not in [spec[0] for spec in specs]:
            raise ClientError("%s goes over %s, but --listen has no %s: listener"
                              % (next_hop, transport, transport))
    else:
        specs = [("udp", family_any, 0), ("tcp", family_any, 0)]
    done = asyncio.get_running_loop().create_future()

    def on_event(event):
        if done.done():
            return
        if isinstance(event, ResponseReceived) and event.response.status >= 200:
            done.set_result(Result(event.response))
        elif isinstance(event, TransactionTimedOut):
            done.set_result(Result(error="no response from %s (timed out)" % uri_text))
        elif isinstance(event, TransportFailed):
            done.set_result(Result(error="cannot reach %s over %s" % (uri_text, transport)))

    # To a peer on this machine, say so in Via and From rather than naming the LAN address.
    advertise = {"127.0.0.1": "127.0.0.1", "::1": "[::1]"}.get(address)
    stack = SipStack(specs, on_event, advertise=advertise)
    await stack.start()
    try:
        endpoint = stack.endpoint
        local_host = endpoint.local.get(transport, endpoint.local["udp"])[0]
        request = make_request(
            method, target, from_uri or "sip:appliance@%s" % local_host, endpoint.new_tag(),
            endpoint.new_call_id(), routes=["%s;lr" % next_hop] if proxy else (),
            fields=[("User-Agent", USER_AGENT), *fields], body=body,
        )
        stack.send_request(request, (transport, address, port))
        try:
            return await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return Result(error="no final response from %s within %gs" % (uri_text, timeout))
    finally:
        await stack.close()


async def options(uri_text, **kwargs):
    return await send_once(
        "OPTIONS", uri_text, fields=[("Accept", "application/sdp")], **kwargs
    )
