"""Where a SIP URI's requests go: (transport, address, port).

Today: the URI's transport parameter and port, else UDP and 5060 (sips: TLS and 5061), and
the host through the system resolver. RFC 3263's NAPTR and SRV selection belongs here too.
"""

import asyncio
import socket

from ..errors import ApplianceError


class ResolveError(ApplianceError):
    """A SIP URI's host does not resolve."""


async def resolve(uri):
    transport = (uri.param("transport") or ("tls" if uri.secure else "udp")).lower()
    port = uri.port or (5061 if transport == "tls" else 5060)
    host = uri.param("maddr") or uri.host
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise ResolveError("cannot resolve %s: %s" % (host, error.strerror)) from None
    return transport, infos[0][4][0], port
