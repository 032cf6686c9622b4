"""The ssl contexts of SIP over TLS (RFC 3261 section 26.2), and why a handshake failed.

A stack serves `tls:` listeners with the [tls] certificate and key, and opens TLS to
`sips:` and `;transport=tls` targets verifying the server against [tls] ca (else the
system's CAs) and the host of the URI that led there (RFC 5922 section 4.1). Both sides
insist on TLS 1.2 or newer. The client side needs no certificate; when the agent has one,
it is offered to servers that ask for it (mutual TLS).

Contexts are made once per stack: the server's when a tls: listener binds, the client's
when a CA file is named (so a bad one stops the start with a clear error) or else at the
first outgoing TLS connection (loading the system's CAs costs a few milliseconds that
an agent without TLS targets need not pay).
"""

import ssl

from ..errors import ApplianceError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(ApplianceError):
    """A certificate, key or CA file cannot be used."""


class TlsContexts:
    """`certificate` and `key`: PEM files for the server side (None: no tls: listener can
    serve); `ca`: a PEM file of the CAs servers must chain to (None: the system's)."""

    def __init__(self, certificate=None, key=None, ca=None):
        self.certificate = certificate
        self.key = key
        self.ca = ca
        self._server = None
        self._client = None

    @classmethod
    def from_config(cls, config):
        """From a [tls] section (appliance.config.TlsConfig), or None for no section."""
        if config is None:
            return cls()
        return cls(config.certificate, config.key, config.ca)

    def server(self):
        """The context for accepting TLS: raises TlsError when it cannot be made."""
        if self._server is None:
            if not (self.certificate and self.key):
                raise TlsError("a tls: listener needs a certificate and key; "
                               "set [tls] certificate and key")
            # Secure defaults (no compression, server's cipher order); asks for no client
            # certificate, so no CA store to load.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = MINIMUM_VERSION
            self._load_chain(context)
            self._server = context
        return self._server

    def client(self):
        """The context for opening TLS: the server's certificate must chain to `ca` (else
        a system CA) and name the host; raises TlsError when the CA file is unusable."""
        if self._client is None:
            try:  # verifies the chain and the name; the system's CAs unless `ca`
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
            except (OSError, ValueError) as error:
                raise TlsError("tls.ca: cannot load %s: %s; name a file of PEM "
                               "certificates" % (self.ca, _reason(error))) from None
            context.minimum_version = MINIMUM_VERSION
            if self.certificate and self.key:
                self._load_chain(context)  # offered only to a server that asks
            self._client = context
        return self._client

    def _load_chain(self, context):
        try:
            # A key with a password would have OpenSSL ask for it on the terminal.
            context.load_cert_chain(self.certificate, self.key, password=_no_password)
        except _Encrypted:
            raise TlsError("tls.key: %s is encrypted (has a password); name an unencrypted "
                           "private key (openssl pkey -in %s -out NEW.pem)"
                           % (self.key, self.key)) from None
        except OSError as error:
            raise TlsError(self._chain_problem(error)) from None

    def _chain_problem(self, error):
        """Which of the certificate and key cannot be used, and why, as "key: problem;
        fix" (OpenSSL says only "PEM lib" for either file not being PEM)."""
        for key, path in (("certificate", self.certificate), ("key", self.key)):
            try:
                with open(path, "rb") as file:
                    text = file.read()
            except OSError as problem:
                return "tls.%s: cannot read %s: %s; name a readable PEM file" \
                    % (key, path, problem.strerror or problem)
            if key == "certificate" and b"-----BEGIN CERTIFICATE-----" not in text:
                return "tls.certificate: %s is not a PEM certificate; name the server's " \
                    "certificate (-----BEGIN CERTIFICATE-----)" % path
            if key == "key" and b"PRIVATE KEY-----" not in text:
                return "tls.key: %s is not a PEM private key; name the certificate's " \
                    "private key (-----BEGIN PRIVATE KEY-----)" % path
        if isinstance(error, ssl.SSLError) and error.reason == "KEY_VALUES_MISMATCH":
            return "tls.key: %s is not the private key of the certificate %s; name the " \
                "key the certificate was made for" % (self.key, self.certificate)
        reason = _reason(error) if not isinstance(error, ssl.SSLError) or error.reason \
            else "not PEM"
        return "tls.certificate, tls.key: cannot load %s with %s: %s; name a PEM " \
            "certificate and its unencrypted private key" % (self.certificate, self.key,
                                                             reason)


class _Encrypted(Exception):
    """The key file asks for a password."""


def _no_password():
    raise _Encrypted


def config_problems(config):
    """What keeps the [tls] files of `config` (an appliance.config.Config) from loading,
    as "key: problem; fix" lines: the certificate with its key, as a tls: listener loads
    them, and the CA file, as the client side does."""
    tls = config.tls
    if tls is None:
        return []
    problems = []
    if tls.certificate and tls.key:
        try:
            TlsContexts(tls.certificate, tls.key).server()
        except TlsError as error:
            problems.append(str(error))
    if tls.ca:
        try:
            TlsContexts(ca=tls.ca).client()
        except TlsError as error:
            problems.append(str(error))
    return problems


def handshake_failure(error, timeout):
    """Why a TLS handshake failed, in words, from the exception it raised; `timeout` is the
    seconds it was allowed (asyncio aborts a late one with ConnectionAbortedError)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return "certificate verify failed: %s" % (error.verify_message or error.reason)
    if isinstance(error, ssl.SSLError):
        return _reason(error)
    if isinstance(error, ConnectionAbortedError | TimeoutError):
        return "no handshake within %g s" % timeout
    if isinstance(error, ConnectionError):
        return "the peer closed the connection during the handshake"
    return str(error) or type(error).__name__


def _reason(error):
    """An OpenSSL error's reason ("WRONG_VERSION_NUMBER") as words; else the error's text."""
    reason = getattr(error, "reason", None)
    if isinstance(error, ssl.SSLError) and reason:
        return reason.lower().replace("_", " ")
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
