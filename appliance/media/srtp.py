"""SRTP and SRTCP (RFC 3711) for a call's audio, keyed by SDES (RFC 4568): libsrtp, through
pylibsrtp (the `srtp` extra), behind one small class.

The SDP core (sip/sdp.py) agrees the suite and the two keys; this module makes ours (30
random bytes: the 16-byte master key and 14-byte salt both AES_CM_128 suites take) and
holds a `Protection`: one libsrtp session for what we send, keyed with ours, and one for
what the peer sends, keyed with its, each kept as long as its suite and key stay (so that
a re-INVITE that changes nothing, or only the peer's key, does not restart our packet
index). Without pylibsrtp, `available()` is False and callers leave SRTP out of their
answers: an offer that needs it is refused, and `problem()` says what to install.
"""

import base64
import binascii
import os

try:
    import pylibsrtp
except ImportError:  # the `srtp` extra is not installed
    pylibsrtp = None  # type: ignore[assignment]

from ..sip import sdp

KEY_BYTES = 30  # master key (16) and salt (14) of AES_CM_128_HMAC_SHA1_80 and _32
PROBE_KEY = "A" * sdp.KEY_CHARACTERS  # a well-formed key for answers never sent
INSTALL_HINT = "pip install 'sip-appliance[srtp]' (pylibsrtp)"
_PROFILES = {  # suite -> the pylibsrtp.Policy attribute of its profile
    sdp.AES_CM_128_HMAC_SHA1_80: "SRTP_PROFILE_AES128_CM_SHA1_80",
    sdp.AES_CM_128_HMAC_SHA1_32: "SRTP_PROFILE_AES128_CM_SHA1_32",
}


def available():
    """Whether SRTP can be offered and answered here (pylibsrtp imports)."""
    return pylibsrtp is not None


def new_key():
    """A fresh master key and salt for our a=crypto line, base64."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def wants_srtp(offered):
    """Whether the Session `offered` asks for SRTP on an audio stream: RTP/SAVP(F), or
    a=crypto lines beside RTP/AVP."""
    return any(media.kind == "audio" and media.port != 0 and (
        media.proto in sdp.SECURE or media.attribute("crypto") is not None)
        for media in offered.media)


def problem(offered):
    """Why the SRTP that the Session `offered` asks for cannot be given, for the log:
    pylibsrtp is missing, or an RTP/SAVP(F) audio stream has no a=crypto line we take;
    None when there is no such problem."""
    if not wants_srtp(offered):
        return None
    if not available():
        return "the caller offers SRTP, which needs pylibsrtp: %s" % INSTALL_HINT
    for media in offered.media:
        if media.kind == "audio" and media.port != 0 and media.proto in sdp.SECURE \
                and not any(crypto.usable() for crypto in media.crypto()):
            return ("the caller offers SRTP with no a=crypto line we take (we take %s, "
                    "one inline key without MKI); it offers %s" % (
                        " or ".join(sdp.SUITES),
                        ", ".join(c.suite for c in media.crypto()) or "none"))
    return None


class Protection:
    """One stream's SRTP in both directions: `protect()` and `protect_rtcp()` what we send
    with `local_key`, `unprotect()` and `unprotect_rtcp()` what comes with `remote_key`;
    each returns None for a packet libsrtp refuses (what comes: a failed authentication
    or replay check)."""

    def __init__(self, suite, local_key, remote_key):
        if pylibsrtp is None:
            raise RuntimeError("SRTP needs pylibsrtp: " + INSTALL_HINT)
        self.suite = None
        self.local_key = None
        self.remote_key = None
        self._out = None
        self._in = None
        self.rekey(suite, local_key, remote_key)

    def rekey(self, suite, local_key, remote_key):
        """Take a new offer/answer's keys; a direction whose suite and key stay keeps its
        session (and its packet index and replay window). What changed, as a tuple of
        "local" and "remote"."""
        changed = []
        if suite != self.suite or local_key != self.local_key:
            self._out = _session(suite, local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
            changed.append("local")
        if suite != self.suite or remote_key != self.remote_key:
            self._in = _session(suite, remote_key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
            changed.append("remote")
        self.suite, self.local_key, self.remote_key = suite, local_key, remote_key
        return tuple(changed)

    def protect(self, packet):
        return _process(self._out.protect, packet)

    def protect_rtcp(self, packet):
        return _process(self._out.protect_rtcp, packet)

    def unprotect(self, packet):
        return _process(self._in.unprotect, packet)

    def unprotect_rtcp(self, packet):
        return _process(self._in.unprotect_rtcp, packet)


def _process(method, packet):
    """libsrtp's work on `packet`, or None when it refuses it (authentication, replay,
    a key used up; ValueError: longer than pylibsrtp's buffer)."""
    try:
        return method(packet)
    except (pylibsrtp.Error, ValueError):
        return None


def _session(suite, key, ssrc_type):
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        raise ValueError("an SRTP key that is not base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError("an SRTP key of %d bytes, not %d" % (len(raw), KEY_BYTES))
    profile = getattr(pylibsrtp.Policy, _PROFILES[suite])
    return pylibsrtp.Session(pylibsrtp.Policy(key=raw, ssrc_type=ssrc_type,
                                              srtp_profile=profile))
