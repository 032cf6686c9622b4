"""The core's exceptions.

Two channels, as in h11: `SipError` subclasses raised at the caller for misuse, and
`ParseError` for bad input from the network, which the endpoint turns into a 400-class
response or a dropped-and-traced message; it never escapes `Endpoint.receive`.
"""


class SipError(Exception):
    """Root of the core's exceptions."""


class ParseError(SipError):
    """Bad input from the peer.

    `status` is the response it deserves (400 unless the fault has its own code, like 505 or
    416) and `reason` a phrase naming the fault, sent as the response's reason phrase.
    """

    def __init__(self, reason, status=400, message=None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.message = message

    def __str__(self):
        return self.reason


class InvalidState(SipError):
    """The caller asked for something the current state does not allow."""
