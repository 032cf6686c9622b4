"""Credentials never reach a log line: URI passwords and Authorization headers masked."""

from appliance.redact import mask_uri_passwords, printable_message
from appliance.sip.message import parse_message


def test_uri_password_masked_everywhere_in_a_line():
    line = 'INVITE sip:alice:hunter2@home.arpa SIP/2.0 <sips:bob:pw;x@h;transport=tcp>;tag=1'
    assert mask_uri_passwords(line) == (
        "INVITE sip:alice:********@home.arpa SIP/2.0 <sips:bob:********@h;transport=tcp>;tag=1"
    )


def test_uris_without_password_unchanged():
    for text in ("sip:porch@127.0.0.1:5060", "sip:pbx.example.net:5060;lr",
                 "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1", "tel:+15551234",
                 '"Sip: colon" <sip:u@h>'):
        assert mask_uri_passwords(text) == text


def test_message_masks_authorization_headers_and_uri_passwords():
    raw = (
        b"OPTIONS sip:porch:topsecret@h SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n"
        b"From: <sip:alice@h>;tag=1\r\nTo: <sip:porch@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        b'Authorization: Digest username="alice", response="0123456789abcdef"\r\n'
        b'proxy-authorization: Digest response="fedcba9876543210"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    text = printable_message(parse_message(raw))
    assert "topsecret" not in text
    assert "0123456789abcdef" not in text and "fedcba9876543210" not in text
    assert "Authorization: ********" in text
    assert "Call-ID: c1" in text


def test_password_with_a_comma_is_masked():
    # A comma is legal in the password part of a URI (RFC 3261 section 25.1).
    assert mask_uri_passwords("OPTIONS sip:porch:se,cret@127.0.0.1") == (
        "OPTIONS sip:porch:********@127.0.0.1"
    )


def test_printable_escapes_line_breaks_so_no_log_line_can_be_forged():
    from appliance.redact import printable

    assert printable("abc-123@host") == "abc-123@host"
    assert printable("x)\n2026-01-01 WARNING forged\r") == "x)\\x0a2026-01-01 WARNING forged\\x0d"
