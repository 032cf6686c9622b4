"""The notifier's side of one subscription (RFC 6665), as a sans-I/O state machine.

    granted = grant_expires(request, default, minimum, maximum)   # or raise IntervalTooBrief
    subscription = Subscription(request, local_tag, local_contact, event, granted, now)
    endpoint.add_dialog(subscription.dialog)
    request = subscription.notify(body, content_type, now)    # send it, or None: queued
    request = subscription.notify_answered(response, now)     # a final response to it...
    request = subscription.notify_failed(now)                  # ...or a time-out/failure
    subscription.refresh(granted, now)                         # SUBSCRIBE in the dialog
    request = subscription.terminate(body, content_type, now, "timeout")   # at get_timer()

Every call that may produce a NOTIFY returns the one to send now, or None. At most one
NOTIFY is outstanding per subscription (RFC 6665 section 4.2.2): a change that comes while
one is out waits, and a newer change replaces a waiting one, so a burst ends with the
latest state and every state goes out in order.

States: "active" until the subscription ends; "terminating" once the last NOTIFY (state
terminated) is out; "terminated" when it is answered or failed, or the subscriber is gone.
The caller removes the dialog from the endpoint then. A NOTIFY answered with anything but
2xx (481: the subscriber forgot it, 408, others) or timing out ends the subscription at
once (section 4.2.2). Times are integer milliseconds.
"""

from .dialog import Dialog
from .errors import ParseError
from .uri import is_digits

ACTIVE = "active"
TERMINATING = "terminating"
TERMINATED = "terminated"


class IntervalTooBrief(Exception):
    """A SUBSCRIBE asked for less than the minimum: answer 423 with Min-Expires."""

    def __init__(self, minimum):
        super().__init__(minimum)
        self.minimum = minimum


def grant_expires(request, default, minimum, maximum):
    """The seconds to grant a SUBSCRIBE (section 4.2.1.1): its Expires (else `default`),
    capped at `maximum`; 0 stays 0 (a fetch, or an unsubscribe). Raises IntervalTooBrief
    below `minimum`, ParseError for an Expires that is not a number."""
    text = request.get("expires")
    if text is None:
        asked = default
    else:
        text = text.strip()
        if not is_digits(text, 10):
            raise ParseError("Malformed Expires")
        asked = int(text)
    if asked == 0:
        return 0
    if asked < minimum:
        raise IntervalTooBrief(minimum)
    return min(asked, maximum)


def event_of(request):
    """(package, id) of a SUBSCRIBE's or NOTIFY's Event header (package lower-cased,
    template suffixes kept), or (None, None) without one."""
    value = request.get("event")
    if value is None:
        return None, None
    parts = value.split(";")
    package = parts[0].strip().lower()
    event_id = None
    for part in parts[1:]:
        name, _, param = part.partition("=")
        if name.strip().lower() == "id":
            event_id = param.strip()
    return package, event_id


class Subscription:
    """One subscription, made by answering `request` (a SUBSCRIBE outside a dialog) with a
    2xx carrying To tag `local_tag`; `granted` seconds; `local_contact` our Contact URI."""

    def __init__(self, request, local_tag, local_contact, event, granted, now, event_id=None):
        self.dialog = Dialog.as_uas(request, local_tag, local_contact)
        self.event = event
        self.event_id = event_id
        self.subscriber = request.from_.uri
        self.state = ACTIVE
        self.expires_at = now + granted * 1000
        self.outstanding = None  # the NOTIFY in flight
        self.notifications = 0  # NOTIFYs sent
        self.reason = None  # why it ended
        self._waiting = None  # (body, content_type) of the next NOTIFY
        self._final = None  # the terminating NOTIFY's reason, once asked for

    @property
    def id(self):
        return self.dialog.id

    # -- from the subscriber ---------------------------------------------------------

    def refresh(self, granted, now):
        """A SUBSCRIBE within the dialog was accepted with `granted` seconds (0: the
        subscriber ends it). Send the current state next (section 4.2.1.2): the caller
        calls `notify` or, for 0, `terminate`."""
        if granted == 0:
            self.expires_at = now
        else:
            self.expires_at = now + granted * 1000

    # -- NOTIFYs -----------------------------------------------------------------------

    def notify(self, body, content_type, now):
        """Tell the subscriber the resource's state: the NOTIFY to send now, or None when
        one is outstanding (this one then goes when it is answered)."""
        if self.ending:
            return None
        self._waiting = (body, content_type)
        if self.outstanding is not None:
            return None
        return self._next(now)

    def terminate(self, body, content_type, now, reason=None):
        """End the subscription with a last NOTIFY (Subscription-State: terminated, with
        `reason` such as "timeout" or "noresource"); None when one is outstanding (it
        follows) or the subscription is ending already."""
        if self.ending:
            return None
        self._final = reason or ""
        self._waiting = (body, content_type)
        if self.outstanding is not None:
            return None
        return self._next(now)

    def notify_answered(self, response, now):
        """A final response to the outstanding NOTIFY; returns the next one, or None."""
        if self.outstanding is None or response.status < 200:
            return None
        self.outstanding = None
        if response.status >= 300:
            self._end("%d %s" % (response.status, response.reason))
            return None
        if self.state == TERMINATING:
            self._end(self.reason)
            return None
        if self._waiting is not None:
            return self._next(now)
        return None

    def notify_failed(self, now):
        """The outstanding NOTIFY timed out or could not be sent: the subscriber is gone."""
        if self.outstanding is None:
            return None
        self.outstanding = None
        self._end("no answer to NOTIFY")
        return None

    # -- time --------------------------------------------------------------------------

    @property
    def ending(self):
        """True once the last NOTIFY is asked for (it may wait for an outstanding one)."""
        return self._final is not None or self.state != ACTIVE

    def get_timer(self):
        return None if self.ending else self.expires_at

    def remaining(self, now):
        """Seconds until the subscription lapses (0 when it has)."""
        return max(0, (self.expires_at - now) // 1000)

    def expired(self, now):
        return not self.ending and now >= self.expires_at

    # -- inside --------------------------------------------------------------------------

    def _next(self, now):
        body, content_type = self._waiting
        self._waiting = None
        if self._final is not None:
            state = "terminated"
            if self._final:
                state += ";reason=" + self._final
            self.state = TERMINATING
            self.reason = self._final or "ended"
        else:
            state = "active;expires=%d" % self.remaining(now)
        event = self.event if self.event_id is None else "%s;id=%s" % (self.event,
                                                                       self.event_id)
        fields = [("Event", event), ("Subscription-State", state)]
        if body:
            fields.append(("Content-Type", content_type))
        request = self.dialog.create_request("NOTIFY", fields, body)
        self.outstanding = request
        self.notifications += 1
        return request

    def _end(self, reason):
        self.state = TERMINATED
        if self.reason is None:
            self.reason = reason
        self._waiting = None
