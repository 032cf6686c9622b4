"""A REGISTER client for one address of record (RFC 3261 section 10.2, RFC 5626 sections
4.2 and 4.5), as a sans-I/O state machine.

    registration = Registration(aor, registrar, contact, token, random, credentials=...)
    request = registration.start(now)          # send it (Endpoint.send_request)
    request = registration.response(response, now)     # a final response to it...
    request = registration.timed_out(now)              # ...or TransactionTimedOut
    request = registration.transport_failed(now)       # ...or TransportFailed
    request = registration.failover(now)       # ...or try it at the next server instead
    registration.get_timer()                   # the next deadline (ms) or None
    request = registration.handle_timer(now)   # a refresh or a retry, when due
    request = registration.stop(now)           # unregister (Expires: 0)

Every call that takes input returns the REGISTER to send now, or None. At most one REGISTER
is outstanding (RFC 3261 section 10.2): `outstanding` is it, so that the caller can tell
which transaction's events to feed back. Every REGISTER has the same Call-ID and From tag
and the next CSeq (section 10.2.4). Times are integer milliseconds.

States: "unregistered" (before start, after stop), "registering" (a REGISTER outstanding:
the first one, a refresh or a retry; a binding granted before stays until `expires_at`),
"registered" (a refresh is due at `next_refresh`), "backoff" (the last attempt failed; the
retry is due at `next_refresh`), "unregistering" (the Expires: 0 REGISTER outstanding).
There is no terminal failure state: as RFC 5626 section 4.5 says, a UA keeps retrying, ever
more slowly; `last_error` and `failures` say why and how often.

Rules:
- The time granted is the `expires` parameter of the Contact in the 2xx whose URI equals
  ours (RFC 3261 section 19.1.4), else the Expires header, else what we asked. A 2xx
  without our Contact (or granting 0) is a failure.
- Refresh: at half the granted time when it is 120 s or less, otherwise 60 s before expiry
  but never later than 90% of it (`refresh_delay`).
- 401/407 are answered through a DigestClient, which keeps the challenge, so refreshes
  carry credentials at once. At most MAX_CHALLENGES challenges are answered per attempt,
  and the same nonce refused again means a wrong password: "authentication failed",
  then the backoff schedule, never a loop.
- 423 with a larger Min-Expires: retried at once with it, and it is kept for refreshes.
- Anything else (other final responses, time-outs, transport failures, a malformed 2xx)
  is a failure: wait min(1800 s, base * 2 ** failures), taken uniformly between 50% and
  100% of that, base 30 s or 90 s when `some_flows_ok` (RFC 5626 section 4.5; `failures`
  counts this one, so the upper bounds run 60, 120, 240 ... s, as in the RFC's example).
  A Retry-After longer than that is honoured. A 2xx resets `failures`.
"""

from .digest import DigestClient
from .errors import InvalidState, ParseError, SipError
from .headers import parse_address
from .message import make_request
from .uri import is_digits, parse_uri

UNREGISTERED = "unregistered"
REGISTERING = "registering"
REGISTERED = "registered"
BACKOFF = "backoff"
UNREGISTERING = "unregistering"

MAX_WAIT = 1800000  # RFC 5626 section 4.5 max-time, ms
BASE_WAIT = 30000  # base-time when no flow is up
BASE_WAIT_SOME_FLOWS_OK = 90000  # base-time while another flow of this instance is up
# Challenges answered per attempt: a 407 from a proxy then a 401 from the registrar, or a
# stale nonce, need two; a registrar sending a fresh nonce to a wrong password gets no more.
MAX_CHALLENGES = 2


def refresh_delay(granted):
    """How long after a 2xx (ms) to refresh a binding granted for `granted` ms."""
    if granted <= 120000:
        return granted // 2
    return min(granted - 60000, granted * 9 // 10)


def backoff_limit(failures, some_flows_ok=False):
    """The upper bound (ms) of the wait after `failures` consecutive failures (>= 1):
    min(max-time, base-time * 2 ** failures), RFC 5626 section 4.5, whose example has three
    failures wait up to 240 s with the 30 s base."""
    base = BASE_WAIT_SOME_FLOWS_OK if some_flows_ok else BASE_WAIT
    return min(MAX_WAIT, base * 2 ** min(failures, 16))


def _seconds(text):
    """A delta-seconds value (Expires, Min-Expires, an expires parameter), or None."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if is_digits(text, 10) else None


class Registration:
    """The binding of `contact` to `aor` at `registrar` (the Request-URI, e.g.
    "sip:pbx.example.net"); all three are URI strings.

    `token(n)` returns n random hex digits (Call-ID, From tag and cnonce, unless `call_id`
    and `from_tag` are given); `random()` returns a float in [0, 1) for the backoff jitter.
    `credentials(realm)` returns (user, password) or None. `instance_id` (a UUID, or a
    "urn:uuid:..." URN) makes this an RFC 5626 outbound registration: the Contact gets
    `reg-id` (`reg_id`, default 1) and `+sip.instance`, and the REGISTER
    `Supported: outbound, path`. `route` is a preloaded route set (URI strings).
    """

    def __init__(self, aor, registrar, contact, token, random, expires=600, credentials=None,
                 instance_id=None, reg_id=None, route=(), call_id=None, from_tag=None,
                 some_flows_ok=False):
        if expires < 1:
            raise SipError("a registration needs an expires of 1 s or more")
        if reg_id is not None and instance_id is None:
            raise SipError("reg-id needs an instance-id (RFC 5626 section 4.2.1)")
        self.aor = aor
        self.registrar = registrar
        self.expires = expires
        self.random = random
        self.route = tuple(route or ())
        self.call_id = call_id if call_id is not None else token(24)
        self.from_tag = from_tag if from_tag is not None else token(12)
        self.instance_id = None
        if instance_id is not None:
            if not instance_id.lower().startswith("urn:"):
                instance_id = "urn:uuid:" + instance_id
            self.instance_id = instance_id
            reg_id = 1 if reg_id is None else reg_id
        self.reg_id = reg_id
        self.some_flows_ok = some_flows_ok  # set by the caller as its other flows come and go
        self._token = token
        self._digest = DigestClient(credentials, token) if credentials is not None else None
        self.set_contact(contact)
        self.cseq = 0
        self.state = UNREGISTERED
        self.outstanding = None  # the REGISTER in flight
        self.expires_at = None  # when the binding granted lapses (ms)
        self.next_refresh = None  # when the next REGISTER goes: refresh or retry (ms)
        self.granted = None  # seconds, from the last 2xx
        self.outbound = None  # the last 2xx had Require: outbound (RFC 5626 section 4.2.1)
        self.flow_timer = None  # seconds between keep-alives the registrar asks for
        self.last_error = None
        self.failures = 0  # consecutive
        self._asked = None  # the Expires of the outstanding REGISTER
        self._challenges = 0  # answered in this attempt
        self._stop_pending = False
        self._again_pending = False
        self._sent_contact_uri = None

    def set_contact(self, contact):
        """The Contact the next REGISTER carries (see `contact_changed` to send it now)."""
        self._contact_uri = parse_uri(contact)  # a bad URI is the caller's mistake: raises
        self.contact = contact

    # -- the caller's requests ---------------------------------------------------------

    def start(self, now):
        """Register; returns the first REGISTER."""
        if self.state != UNREGISTERED:
            raise InvalidState("registration of %s is %s" % (self.aor, self.state))
        return self._begin(now, self.expires)

    def stop(self, now):
        """Unregister: returns a REGISTER with Expires: 0, or None when there is no binding
        (or when a REGISTER is outstanding: the unregister follows its final response)."""
        if self.state == UNREGISTERED or self.state == UNREGISTERING:
            return None
        if self.outstanding is not None:
            self._stop_pending = True
            return None
        if self.is_registered(now):
            return self._begin(now, 0)
        self._clear()
        return None

    def contact_changed(self, contact, now):
        """The local address changed: register `contact` at once (or after the
        outstanding REGISTER ends). The old binding is left to expire; with outbound the
        registrar replaces it, as instance-id and reg-id are the same (RFC 5626 6)."""
        self.set_contact(contact)
        return self._again(now)

    def credentials_changed(self, credentials, now):
        """New credentials (a reloaded config): register with them at once, so that a
        wrong password shows now rather than at the next refresh."""
        self._digest = DigestClient(credentials, self._token) if credentials is not None \
            else None
        self.failures = 0
        return self._again(now)

    def _again(self, now):
        if self.state == UNREGISTERED or self.state == UNREGISTERING:
            return None
        if self.outstanding is not None:
            self._again_pending = True
            return None
        return self._begin(now, self.expires)

    # -- what comes back -------------------------------------------------------------

    def response(self, response, now):
        """A response to the outstanding REGISTER (others, and 1xx, are ignored)."""
        request = self.outstanding
        if request is None or response.status < 200 or not self._matches(response):
            return None
        self.outstanding = None
        status = response.status
        if self._asked == 0:
            if (status == 401 or status == 407) and self._answer(response):
                return self._send(now, 0)
            self._clear()
            if status >= 300:
                self.last_error = "%d %s" % (status, response.reason)
            else:
                self.failures = 0
                self.last_error = None
            return None
        retry = None
        if status < 300:
            self._accepted(response, now)
        elif status == 401 or status == 407:
            if self._answer(response):
                retry = self._asked
            else:
                self._fail(now, "authentication failed")
        elif status == 423:
            minimum = _seconds(response.get("min-expires"))
            if minimum is not None and minimum > self._asked:
                self.expires = retry = minimum
            else:
                self._fail(now, "%d %s without Min-Expires" % (status, response.reason))
        else:
            text = response.get("retry-after")
            if text is not None:
                text = text.partition(";")[0].partition("(")[0]
            after = _seconds(text)
            self._fail(now, "%d %s" % (status, response.reason),
                       after * 1000 if after is not None else 0)
        return self._continue(now, retry)

    def timed_out(self, now):
        """The outstanding REGISTER's transaction timed out."""
        return self._lost(now, "no response from the registrar")

    def transport_failed(self, now):
        """The outstanding REGISTER could not be sent."""
        return self._lost(now, "could not send to the registrar")

    def failover(self, now):
        """The outstanding REGISTER failed at this server (a time-out, a transport failure
        or a 503) and the caller has another to try (RFC 3263 section 4.3): returns it
        again as a new request for that server, without counting a failure."""
        if self.outstanding is None:
            return None
        self.outstanding = None
        self._again_pending = False  # it carries today's Contact
        return self._begin(now, self._asked)

    # -- time --------------------------------------------------------------------------

    def get_timer(self):
        """When `handle_timer` must be called next (ms), or None."""
        return self.next_refresh if self.outstanding is None else None

    def handle_timer(self, now):
        """Returns the refresh or retry REGISTER once it is due, else None."""
        due = self.next_refresh
        if self.outstanding is not None or due is None or now < due:
            return None
        return self._begin(now, self.expires)

    # -- status ------------------------------------------------------------------------

    def is_registered(self, now):
        """True while a binding granted by the registrar has not lapsed."""
        return self.expires_at is not None and now < self.expires_at

    def status(self, now):
        """A plain dict for `appliance status`; times in seconds from `now`."""
        return {
            "aor": self.aor,
            "contact": self.contact,
            "state": self.state,
            "registered": self.is_registered(now),
            "expires_in": _remaining(self.expires_at, now),
            "next_register_in": _remaining(self.get_timer(), now),
            "granted": self.granted,
            "outbound": self.outbound,
            "last_error": self.last_error,
            "failures": self.failures,
        }

    # -- inside ------------------------------------------------------------------------

    def _begin(self, now, expires):
        """A new attempt (start, refresh, retry, new contact, unregister)."""
        self._challenges = 0
        return self._send(now, expires)

    def _send(self, now, expires):
        self.cseq += 1
        fields = [("Contact", self._contact_value()), ("Expires", expires)]
        if self.instance_id is not None:
            fields.append(("Supported", "outbound, path"))
        request = make_request(
            "REGISTER", self.registrar, self.aor, self.from_tag, self.call_id, self.cseq,
            to_uri=self.aor, routes=self.route, fields=fields,
        )
        if self._digest is not None:
            self._digest.authorize(request)
        self.outstanding = request
        self._sent_contact_uri = self._contact_uri  # what its 2xx must list
        self._asked = expires
        self.state = UNREGISTERING if expires == 0 else REGISTERING
        self.next_refresh = None
        return request

    def _contact_value(self):
        value = "<%s>" % self.contact
        if self.instance_id is not None:
            value += ';reg-id=%d;+sip.instance="<%s>"' % (self.reg_id, self.instance_id)
        return value

    def _matches(self, response):
        try:
            cseq = response.cseq
        except ParseError:
            return False
        return response.call_id == self.call_id and cseq.number == self.cseq \
            and cseq.method == "REGISTER"

    def _answer(self, response):
        """True when a 401/407 is worth sending the REGISTER again for."""
        self._challenges += 1
        return self._digest is not None and self._challenges <= MAX_CHALLENGES \
            and self._digest.challenged(response)

    def _accepted(self, response, now):
        reason = "%d %s" % (response.status, response.reason)
        granted = self._granted(response)
        if granted is None:
            self._fail(now, reason + " without our Contact")
            return
        if granted == 0:
            self._fail(now, reason + " with expires=0")
            return
        self.state = REGISTERED
        self.failures = 0
        self.last_error = None
        self.granted = granted
        self.expires_at = now + granted * 1000
        self.next_refresh = now + refresh_delay(granted * 1000)
        try:
            tags = [tag.lower() for tag in response.get_list("require")]
        except ParseError:
            tags = []
        self.outbound = "outbound" in tags
        self.flow_timer = _seconds(response.get("flow-timer")) or None

    def _granted(self, response):
        """Seconds granted to our Contact, or None when the 2xx does not list it."""
        try:
            values = response.get_list("contact")
        except ParseError:
            return None
        for value in values:
            try:
                address = parse_address(value)
            except ParseError:
                continue
            if address.star or address.uri != self._sent_contact_uri:
                continue
            granted = _seconds(address.param("expires"))
            if granted is None:
                granted = _seconds(response.get("expires"))
            return granted if granted is not None else self._asked
        return None

    def _fail(self, now, error, at_least=0):
        self.failures += 1
        self.last_error = error
        self.state = BACKOFF
        limit = backoff_limit(self.failures, self.some_flows_ok)
        half = limit // 2
        wait = half + int(self.random() * (limit - half))
        self.next_refresh = now + max(wait, min(at_least, MAX_WAIT))

    def _lost(self, now, error):
        if self.outstanding is None:
            return None
        self.outstanding = None
        if self._asked == 0:
            self._clear()
            self.last_error = error
            return None
        self._fail(now, error)
        return self._continue(now, None)

    def _continue(self, now, retry):
        """After a final outcome: what the caller asked for meanwhile comes first, then
        the retry (`retry` is its Expires), else nothing until the timer."""
        if self._stop_pending:
            self._stop_pending = self._again_pending = False
            if self.is_registered(now):
                return self._begin(now, 0)
            self._clear()
            return None
        if retry is not None:
            self._again_pending = False  # the retry carries the new Contact already
            return self._send(now, retry)
        if self._again_pending:
            self._again_pending = False
            return self._begin(now, self.expires)
        return None

    def _clear(self):
        self.state = UNREGISTERED
        self.outstanding = None
        self.expires_at = None
        self.next_refresh = None
        self.granted = None


def _remaining(deadline, now):
    if deadline is None:
        return None
    return max(0, (deadline - now) // 1000)
