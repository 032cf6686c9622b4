"""Dialogs (RFC 3261 section 12) made from real messages: state from either side, CSeq
ordering, target refresh, and the requests built within a dialog (loose and strict
routing)."""

import unittest

from appliance.sip.dialog import TARGET_REFRESH, Dialog, dialog_id_for_request
from appliance.sip.message import Request, make_response, parse_message

from .helpers import ALICE_URI, BOB_URI, invite, make_request

ALICE_CONTACT = "sip:alice@192.0.2.10:5061;transport=udp"
BOB_CONTACT = "sip:bob@192.0.2.20:5062"
PROXIES = ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>", "<sip:p3.example.com;lr>"]


def alice_invite(cseq=10, record_route=True):
    """alice's INVITE as bob receives it: after three proxies, each one Record-Routing
    (the first two in one header line, the third in its own)."""
    fields = []
    if record_route:
        fields.append(("Record-Route", PROXIES[0] + ", " + PROXIES[1]))
        fields.append(("Record-Route", PROXIES[2]))
    fields.append(("Contact", "<%s>" % ALICE_CONTACT))
    return invite(cseq=cseq, fields=fields)


def bob_ok(request):
    """bob's 200 to alice's INVITE, as alice receives it (make_response copies the
    Record-Route back)."""
    fields = [("Contact", "<%s>" % BOB_CONTACT)]
    return parse_message(make_response(request, 200, to_tag="bob-tag", fields=fields).to_bytes())


def uas_dialog(**kw):
    request = alice_invite(**kw)
    return Dialog.as_uas(request, "bob-tag", local_contact=BOB_CONTACT)


def uac_dialog(**kw):
    request = alice_invite(**kw)
    return Dialog.as_uac(request, bob_ok(request), local_contact=ALICE_CONTACT)


def in_dialog(method, cseq, contact=None, **kw):
    """A request alice sends within the dialog, as bob receives it."""
    fields = [("Contact", "<%s>" % contact)] if contact is not None else []
    return make_request(method, cseq=cseq, to_tag="bob-tag", fields=fields,
                        branch="z9hG4bK-in-%d" % cseq, **kw)


class AsUasTest(unittest.TestCase):
    def test_state_from_the_request(self):
        dialog = uas_dialog()
        self.assertEqual(dialog.id, ("call-1", "bob-tag", "alice-tag"))
        self.assertEqual(dialog.call_id, "call-1")
        self.assertEqual(dialog.local_tag, "bob-tag")
        self.assertEqual(dialog.remote_tag, "alice-tag")
        self.assertEqual(str(dialog.local_uri), BOB_URI)
        self.assertEqual(str(dialog.remote_uri), ALICE_URI)
        self.assertEqual(str(dialog.remote_target), ALICE_CONTACT)
        self.assertEqual(dialog.remote_seq, 10)
        self.assertIsNone(dialog.local_seq)
        self.assertFalse(dialog.secure)
        self.assertEqual(dialog.local_contact, BOB_CONTACT)

    def test_route_set_is_record_route_in_order(self):
        self.assertEqual(uas_dialog().route_set, PROXIES)

    def test_no_record_route_no_route_set(self):
        self.assertEqual(uas_dialog(record_route=False).route_set, [])

    def test_no_contact_no_target(self):
        request = invite()
        dialog = Dialog.as_uas(request, "t")
        self.assertIsNone(dialog.remote_target)

    def test_matches_requests_from_the_peer(self):
        dialog = uas_dialog()
        self.assertEqual(dialog_id_for_request(in_dialog("BYE", 11)), dialog.id)
        other = make_request("BYE", to_tag="other-tag")
        self.assertTrue(dialog_id_for_request(other) != dialog.id)


class AsUacTest(unittest.TestCase):
    def test_state_from_request_and_response(self):
        dialog = uac_dialog()
        self.assertEqual(dialog.id, ("call-1", "alice-tag", "bob-tag"))
        self.assertEqual(str(dialog.local_uri), ALICE_URI)
        self.assertEqual(str(dialog.remote_uri), BOB_URI)
        self.assertEqual(str(dialog.remote_target), BOB_CONTACT)
        self.assertEqual(dialog.local_seq, 10)
        self.assertIsNone(dialog.remote_seq)

    def test_route_set_is_record_route_reversed(self):
        dialog = uac_dialog()
        self.assertEqual(dialog.route_set, [PROXIES[2], PROXIES[1], PROXIES[0]])

    def test_from_a_provisional_with_tag(self):
        request = alice_invite()
        ringing = make_response(request, 180, to_tag="early",
                                fields=[("Contact", "<%s>" % BOB_CONTACT)])
        dialog = Dialog.as_uac(request, ringing)
        self.assertEqual(dialog.id, ("call-1", "alice-tag", "early"))

    def test_both_sides_agree(self):
        uac = uac_dialog()
        uas = uas_dialog()
        # What alice sends, bob finds his dialog with, and back.
        self.assertEqual(dialog_id_for_request(uac.create_request("BYE")), uas.id)
        self.assertEqual(dialog_id_for_request(uas.create_request("BYE")), uac.id)


class CSeqOrderingTest(unittest.TestCase):
    def test_higher_and_equal_accepted(self):
        dialog = uas_dialog()
        self.assertTrue(dialog.receive_request(in_dialog("INFO", 11)))
        self.assertEqual(dialog.remote_seq, 11)
        self.assertTrue(dialog.receive_request(in_dialog("INFO", 20)))
        self.assertEqual(dialog.remote_seq, 20)
        # Not lower (RFC 3261 12.2.2 refuses only lower ones).
        self.assertTrue(dialog.receive_request(in_dialog("INFO", 20)))

    def test_lower_refused_and_remote_seq_kept(self):
        dialog = uas_dialog()
        self.assertTrue(dialog.receive_request(in_dialog("INFO", 12)))
        self.assertFalse(dialog.receive_request(in_dialog("BYE", 11)))
        self.assertEqual(dialog.remote_seq, 12)
        self.assertFalse(dialog.receive_request(in_dialog("BYE", 9)))

    def test_ack_and_cancel_do_not_move_it(self):
        dialog = uas_dialog()
        self.assertTrue(dialog.receive_request(in_dialog("ACK", 10)))
        self.assertEqual(dialog.remote_seq, 10)
        self.assertTrue(dialog.receive_request(in_dialog("ACK", 3)))
        self.assertTrue(dialog.receive_request(in_dialog("CANCEL", 2)))
        self.assertTrue(dialog.receive_request(in_dialog("ACK", 99)))
        self.assertEqual(dialog.remote_seq, 10)

    def test_empty_remote_seq_takes_the_first(self):
        dialog = uac_dialog()
        self.assertIsNone(dialog.remote_seq)
        self.assertTrue(dialog.receive_request(in_dialog("BYE", 1)))
        self.assertEqual(dialog.remote_seq, 1)


class TargetRefreshTest(unittest.TestCase):
    def test_reinvite_replaces_remote_target(self):
        dialog = uas_dialog()
        self.assertTrue(dialog.receive_request(in_dialog("INVITE", 11, "sip:alice@198.51.100.1")))
        self.assertEqual(str(dialog.remote_target), "sip:alice@198.51.100.1")

    def test_every_target_refresh_method(self):
        for method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            self.assertIn(method, TARGET_REFRESH)
            dialog = uas_dialog()
            dialog.receive_request(in_dialog(method, 11, "sip:new@198.51.100.2"))
            self.assertEqual(str(dialog.remote_target), "sip:new@198.51.100.2")

    def test_other_methods_do_not_refresh(self):
        for method in ("INFO", "MESSAGE", "BYE", "OPTIONS"):
            dialog = uas_dialog()
            dialog.receive_request(in_dialog(method, 11, "sip:new@198.51.100.2"))
            self.assertEqual(str(dialog.remote_target), ALICE_CONTACT)

    def test_refresh_without_contact_keeps_target(self):
        dialog = uas_dialog()
        dialog.receive_request(in_dialog("INVITE", 11))
        self.assertEqual(str(dialog.remote_target), ALICE_CONTACT)

    def test_refused_request_does_not_refresh(self):
        dialog = uas_dialog()
        self.assertFalse(dialog.receive_request(in_dialog("INVITE", 5, "sip:x@198.51.100.3")))
        self.assertEqual(str(dialog.remote_target), ALICE_CONTACT)

    def test_refresh_from_2xx(self):
        dialog = uac_dialog()
        reinvite = dialog.create_request("INVITE")
        ok = make_response(reinvite, 200, fields=[("Contact", "<sip:bob@203.0.113.5>")])
        dialog.refresh_target(ok)
        self.assertEqual(str(dialog.remote_target), "sip:bob@203.0.113.5")
        dialog.refresh_target(make_response(reinvite, 200))
        self.assertEqual(str(dialog.remote_target), "sip:bob@203.0.113.5")


class CreateRequestTest(unittest.TestCase):
    def test_loose_routing(self):
        dialog = uac_dialog()
        request = dialog.create_request("BYE")
        self.assertIsInstance(request, Request)
        self.assertEqual(request.method, "BYE")
        # Request-URI = remote target; Route = the route set, in order (12.2.1.1).
        self.assertEqual(request.uri_text, BOB_CONTACT)
        self.assertEqual(request.get_all("route"), [PROXIES[2], PROXIES[1], PROXIES[0]])
        self.assertEqual(str(dialog.next_hop(request)), "sip:p3.example.com;lr")

    def test_headers(self):
        dialog = uac_dialog()
        request = dialog.create_request("INFO", fields=[("Content-Type", "text/plain")],
                                        body=b"hi")
        self.assertEqual(request.get("from"), "<%s>;tag=alice-tag" % ALICE_URI)
        self.assertEqual(request.get("to"), "<%s>;tag=bob-tag" % BOB_URI)
        self.assertEqual(request.call_id, "call-1")
        self.assertEqual(request.get("cseq"), "11 INFO")
        self.assertEqual(request.get("max-forwards"), "70")
        self.assertEqual(request.get("contact"), "<%s>" % ALICE_CONTACT)
        self.assertEqual(request.get("content-type"), "text/plain")
        self.assertEqual(request.get("content-length"), "2")
        self.assertEqual(request.body, b"hi")
        self.assertFalse(request.has("via"))  # the endpoint writes Via

    def test_round_trip(self):
        request = uac_dialog().create_request("BYE")
        again = parse_message(request.to_bytes())
        self.assertEqual(again.to_bytes(), request.to_bytes())
        self.assertEqual(again.cseq.number, 11)

    def test_cseq_increments(self):
        dialog = uac_dialog()
        numbers = [dialog.create_request(m).cseq.number for m in ("INFO", "INVITE", "BYE")]
        self.assertEqual(numbers, [11, 12, 13])
        self.assertEqual(dialog.local_seq, 13)

    def test_ack_and_cancel_reuse_the_cseq(self):
        dialog = uac_dialog()
        self.assertEqual(dialog.create_request("ACK").get("cseq"), "10 ACK")
        reinvite = dialog.create_request("INVITE")
        self.assertEqual(reinvite.cseq.number, 11)
        self.assertEqual(dialog.create_request("ACK").get("cseq"), "11 ACK")
        self.assertEqual(dialog.create_request("CANCEL").get("cseq"), "11 CANCEL")
        self.assertEqual(dialog.local_seq, 11)

    def test_uas_starts_its_own_cseq(self):
        dialog = uas_dialog()
        request = dialog.create_request("BYE")
        self.assertEqual(request.get("cseq"), "1 BYE")
        self.assertEqual(request.get("from"), "<%s>;tag=bob-tag" % BOB_URI)
        self.assertEqual(request.get("to"), "<%s>;tag=alice-tag" % ALICE_URI)
        self.assertEqual(request.uri_text, ALICE_CONTACT)
        self.assertEqual(request.get_all("route"), PROXIES)
        self.assertEqual(dialog.create_request("BYE").cseq.number, 2)

    def test_no_route_set(self):
        dialog = uac_dialog(record_route=False)
        request = dialog.create_request("BYE")
        self.assertFalse(request.has("route"))
        self.assertEqual(request.uri_text, BOB_CONTACT)
        self.assertEqual(str(dialog.next_hop(request)), BOB_CONTACT)

    def strict_dialog(self, first):
        dialog = uas_dialog()
        dialog.route_set = [first, "<sip:p2.example.com;lr>"]
        return dialog

    def test_strict_routing(self):
        dialog = self.strict_dialog("<sip:strict.example.com;transport=tcp>")
        request = dialog.create_request("BYE")
        # R-URI = first route; Route = the rest, then the remote target (12.2.1.1).
        self.assertEqual(request.uri_text, "sip:strict.example.com;transport=tcp")
        self.assertEqual(request.get_all("route"),
                         ["<sip:p2.example.com;lr>", "<%s>" % ALICE_CONTACT])
        # The request goes to the strict router, the Request-URI (8.1.2).
        self.assertEqual(str(dialog.next_hop(request)), "sip:strict.example.com;transport=tcp")
        # The dialog's own route set is left alone.
        self.assertEqual(dialog.route_set[0], "<sip:strict.example.com;transport=tcp>")

    def test_strict_routing_strips_parameters_not_allowed_in_request_uri(self):
        dialog = self.strict_dialog("<sip:strict.example.com;method=INVITE;maddr=192.0.2.1>")
        request = dialog.create_request("BYE")
        self.assertEqual(request.uri_text, "sip:strict.example.com;maddr=192.0.2.1")

    def test_strict_router_alone(self):
        dialog = uas_dialog()
        dialog.route_set = ["<sip:strict.example.com>"]
        request = dialog.create_request("BYE")
        self.assertEqual(request.uri_text, "sip:strict.example.com")
        self.assertEqual(request.get_all("route"), ["<%s>" % ALICE_CONTACT])

    def test_lr_with_a_value_is_loose(self):
        dialog = uas_dialog()
        dialog.route_set = ["<sip:p1.example.com;lr=on>"]
        request = dialog.create_request("BYE")
        self.assertEqual(request.uri_text, ALICE_CONTACT)
        self.assertEqual(request.get_all("route"), ["<sip:p1.example.com;lr=on>"])

    def test_without_remote_tag(self):
        dialog = Dialog("c", "l", None, uas_dialog().local_uri, uas_dialog().remote_uri,
                        uas_dialog().remote_target, [], None, None)
        self.assertEqual(dialog.create_request("BYE").get("to"), "<%s>" % ALICE_URI)


if __name__ == "__main__":
    unittest.main()
