"""The notifier's side of a subscription (RFC 6665): expiry negotiation, NOTIFY order and
coalescing, termination."""

import unittest

from appliance.sip.errors import ParseError
from appliance.sip.message import make_response
from appliance.sip.subscription import (
    ACTIVE,
    TERMINATED,
    TERMINATING,
    IntervalTooBrief,
    Subscription,
    event_of,
    grant_expires,
)
from tests.core.helpers import ALICE_URI, BOB_URI, make_request

SECOND = 1000
CONTACT = "sip:frontdoor@127.0.0.1:5062"


def subscribe(expires=None, event="presence", **kw):
    fields = [("Event", event), ("Contact", "<%s>" % ALICE_URI)]
    if expires is not None:
        fields.append(("Expires", expires))
    return make_request("SUBSCRIBE", fields=fields, **kw)


def new_subscription(granted=600, now=0, event="presence", event_id=None):
    return Subscription(subscribe(), "door-tag", CONTACT, event, granted, now, event_id)


def answered(notify, status=200):
    return make_response(notify, status)


class TestGrant(unittest.TestCase):
    def test_default_cap_and_minimum(self):
        self.assertEqual(grant_expires(subscribe(), 600, 60, 3600), 600)
        self.assertEqual(grant_expires(subscribe(expires=120), 600, 60, 3600), 120)
        self.assertEqual(grant_expires(subscribe(expires=86400), 600, 60, 3600), 3600)
        self.assertEqual(grant_expires(subscribe(expires=0), 600, 60, 3600), 0)
        with self.assertRaises(IntervalTooBrief) as raised:
            grant_expires(subscribe(expires=10), 600, 60, 3600)
        self.assertEqual(raised.exception.minimum, 60)

    def test_malformed_expires(self):
        with self.assertRaises(ParseError):
            grant_expires(subscribe(expires="soon"), 600, 60, 3600)

    def test_event_header(self):
        self.assertEqual(event_of(subscribe(event="Presence")), ("presence", None))
        self.assertEqual(event_of(subscribe(event="appliance;id=7")), ("appliance", "7"))
        self.assertEqual(event_of(make_request("SUBSCRIBE")), (None, None))


class TestNotify(unittest.TestCase):
    def test_dialog_and_first_notify(self):
        subscription = new_subscription(granted=600)
        notify = subscription.notify(b"<presence/>", "application/pidf+xml", 10 * SECOND)
        self.assertEqual(notify.method, "NOTIFY")
        self.assertEqual(str(notify.uri), ALICE_URI)  # the subscriber's Contact
        self.assertEqual(notify.get("event"), "presence")
        self.assertEqual(notify.get("subscription-state"), "active;expires=590")
        self.assertEqual(notify.get("content-type"), "application/pidf+xml")
        self.assertEqual(notify.to.tag, "alice-tag")
        self.assertEqual(notify.from_.tag, "door-tag")
        self.assertEqual(notify.get("contact"), "<%s>" % CONTACT)
        self.assertEqual(notify.call_id, "call-1")
        self.assertEqual(str(notify.to.uri), ALICE_URI)
        self.assertEqual(str(notify.from_.uri), BOB_URI)
        self.assertEqual(notify.body, b"<presence/>")

    def test_event_id_is_echoed(self):
        subscription = new_subscription(event="appliance", event_id="7")
        notify = subscription.notify(b"{}", "application/json", 0)
        self.assertEqual(notify.get("event"), "appliance;id=7")

    def test_one_outstanding_then_the_latest_state(self):
        subscription = new_subscription()
        first = subscription.notify(b"open", "text/plain", 0)
        self.assertIsNone(subscription.notify(b"closed", "text/plain", 10))
        self.assertIsNone(subscription.notify(b"open again", "text/plain", 20))
        second = subscription.notify_answered(answered(first), 30)
        self.assertEqual(second.body, b"open again")  # the burst coalesced to its end
        self.assertTrue(second.cseq.number > first.cseq.number)
        self.assertIsNone(subscription.notify_answered(answered(second), 40))
        self.assertEqual(subscription.notifications, 2)

    def test_provisional_answer_changes_nothing(self):
        subscription = new_subscription()
        first = subscription.notify(b"open", "text/plain", 0)
        self.assertIsNone(subscription.notify_answered(answered(first, 100), 10))
        self.assertIs(subscription.outstanding, first)

    def test_481_408_and_time_out_end_it(self):
        for status in (481, 408, 500):
            subscription = new_subscription()
            first = subscription.notify(b"open", "text/plain", 0)
            subscription.notify(b"closed", "text/plain", 0)
            self.assertIsNone(subscription.notify_answered(answered(first, status), 10))
            self.assertEqual(subscription.state, TERMINATED)
            self.assertTrue(subscription.reason.startswith(str(status)))
            self.assertIsNone(subscription.notify(b"x", "text/plain", 20))
        subscription = new_subscription()
        subscription.notify(b"open", "text/plain", 0)
        subscription.notify_failed(32 * SECOND)
        self.assertEqual((subscription.state, subscription.reason),
                         (TERMINATED, "no answer to NOTIFY"))


class TestEnd(unittest.TestCase):
    def test_expiry_sends_terminated_with_reason_timeout(self):
        subscription = new_subscription(granted=60, now=0)
        self.assertEqual(subscription.get_timer(), 60 * SECOND)
        self.assertFalse(subscription.expired(59 * SECOND))
        self.assertTrue(subscription.expired(60 * SECOND))
        last = subscription.terminate(b"closed", "text/plain", 60 * SECOND, "timeout")
        self.assertEqual(last.get("subscription-state"), "terminated;reason=timeout")
        self.assertEqual((subscription.state, subscription.get_timer()), (TERMINATING, None))
        subscription.notify_answered(answered(last), 60 * SECOND)
        self.assertEqual((subscription.state, subscription.reason), (TERMINATED, "timeout"))

    def test_unsubscribe_refresh_with_zero(self):
        subscription = new_subscription(granted=600)
        first = subscription.notify(b"open", "text/plain", 0)
        subscription.notify_answered(answered(first), 0)
        subscription.refresh(0, 5 * SECOND)
        self.assertTrue(subscription.expired(5 * SECOND))
        last = subscription.terminate(b"open", "text/plain", 5 * SECOND)
        self.assertEqual(last.get("subscription-state"), "terminated")

    def test_terminate_waits_for_the_outstanding_notify(self):
        subscription = new_subscription(granted=60)
        first = subscription.notify(b"open", "text/plain", 0)
        self.assertIsNone(subscription.terminate(b"closed", "text/plain", 0, "timeout"))
        self.assertEqual(subscription.state, ACTIVE)
        # Ending: no timer to come back for, no second end, no other NOTIFY meanwhile.
        self.assertTrue(subscription.ending)
        self.assertIsNone(subscription.get_timer())
        self.assertFalse(subscription.expired(61 * SECOND))
        self.assertIsNone(subscription.terminate(b"x", "text/plain", 0))
        self.assertIsNone(subscription.notify(b"x", "text/plain", 0))
        last = subscription.notify_answered(answered(first), 10)
        self.assertEqual(last.get("subscription-state"), "terminated;reason=timeout")
        self.assertEqual(last.body, b"closed")

    def test_refresh_extends(self):
        subscription = new_subscription(granted=60, now=0)
        subscription.refresh(600, 30 * SECOND)
        self.assertEqual(subscription.get_timer(), 630 * SECOND)
        notify = subscription.notify(b"open", "text/plain", 30 * SECOND)
        self.assertEqual(notify.get("subscription-state"), "active;expires=600")


if __name__ == "__main__":
    unittest.main()
