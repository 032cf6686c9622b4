"""appliance/sip/stun.py: the STUN codec of RFC 8489 (RFC 5389), checked against the test
vectors of RFC 5769."""

import binascii
import struct
import sys
import unittest

from appliance.sip.errors import ParseError
from appliance.sip.stun import (
    BINDING_ERROR,
    BINDING_INDICATION,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    CLASS_ERROR,
    CLASS_INDICATION,
    CLASS_REQUEST,
    CLASS_SUCCESS,
    ERROR_CODE,
    FINGERPRINT,
    MAGIC_COOKIE,
    MAPPED_ADDRESS,
    MESSAGE_INTEGRITY,
    SOFTWARE,
    UNKNOWN_ATTRIBUTES,
    XOR_MAPPED_ADDRESS,
    Message,
    binding_request,
    encode_error_code,
    encode_mapped_address,
    encode_unknown_attributes,
    encode_xor_mapped_address,
    error_code,
    format_ipv6,
    is_stun,
    parse_ipv4,
    parse_ipv6,
    parse_message,
    software,
    unknown_attributes,
    unknown_required,
    xor_mapped_address,
)

from .helpers import error_of


def unhex(text):
    return binascii.unhexlify("".join(text.split()))




# RFC 5769 ("Test Vectors for STUN"), copied byte for byte. All three share this transaction
# id; MESSAGE-INTEGRITY (short-term password "VOkJxbRl1RmTxUk/WvJxBt") is not checked here.
RFC5769_TRANSACTION_ID = unhex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")

# RFC 5769 section 2.1, "Sample Request": SOFTWARE "STUN test client", PRIORITY,
# ICE-CONTROLLED, USERNAME "evtj:h6vY" (padded with spaces), MESSAGE-INTEGRITY, FINGERPRINT.
RFC5769_REQUEST = unhex(
    """
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86
    fa 87 df ae 80 22 00 10 53 54 55 4e 20 74 65 73
    74 20 63 6c 69 65 6e 74 00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36 00 06 00 09
    65 76 74 6a 3a 68 36 76 59 20 20 20 00 08 00 14
    9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49
    c1 b5 71 a2 80 28 00 04 e5 7a 3b cf
    """
)

# RFC 5769 section 2.2, "Sample IPv4 Response": SOFTWARE "test vector" (padded with a space),
# XOR-MAPPED-ADDRESS 192.0.2.1 port 32853, MESSAGE-INTEGRITY, FINGERPRINT.
RFC5769_IPV4_RESPONSE = unhex(
    """
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86
    fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63
    74 6f 72 20 00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9
    2a f9 ba 53 f0 6b e7 d7 80 28 00 04 c0 7d 4c 96
    """
)

# RFC 5769 section 2.3, "Sample IPv6 Response": as 2.2 with XOR-MAPPED-ADDRESS
# 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
RFC5769_IPV6_RESPONSE = unhex(
    """
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86
    fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63
    74 6f 72 20 00 20 00 14 00 02 a1 47 01 13 a9 fa
    a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9 00 08 00 14
    a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75
    bf e3 ed 41 80 28 00 04 c8 fb 0b 4c
    """
)

VECTORS = (RFC5769_REQUEST, RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE)

TRANSACTION_ID = b"0123456789ab"
COOKIE = b"\x21\x12\xa4\x42"
PRIORITY = 0x0024
ICE_CONTROLLED = 0x8029
USERNAME = 0x0006

SIP_OPTIONS = (
    b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@biloxi.com>\r\n"
    b"From: <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def header(message_type, length, transaction_id=TRANSACTION_ID):
    return struct.pack(">HH", message_type, length) + COOKIE + transaction_id


def attribute(kind, value, padding=b"\x00"):
    return struct.pack(">HH", kind, len(value)) + value + padding * (-len(value) % 4)


def message_bytes(message_type, body, transaction_id=TRANSACTION_ID):
    return header(message_type, len(body), transaction_id) + body


class Lcg:
    """Deterministic bytes for the garbage tests, the same on every interpreter."""

    def __init__(self, seed):
        self.state = seed

    def next(self, bound):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % bound

    def bytes(self, count):
        return bytes([self.next(256) for _ in range(count)])


class TestRfc5769Vectors(unittest.TestCase):
    def test_sample_request(self):
        message = parse_message(RFC5769_REQUEST)
        self.assertEqual(message.message_type, BINDING_REQUEST)
        self.assertEqual(message.transaction_id, RFC5769_TRANSACTION_ID)
        self.assertIs(message.fingerprint, True)
        self.assertEqual(
            [kind for kind, _value in message.attributes],
            [SOFTWARE, PRIORITY, ICE_CONTROLLED, USERNAME, MESSAGE_INTEGRITY],
        )
        self.assertEqual(software(message), "STUN test client")
        self.assertEqual(message.get(PRIORITY), b"\x6e\x00\x01\xff")
        self.assertEqual(message.get(USERNAME), b"evtj:h6vY")  # padding is not the value
        self.assertEqual(len(message.get(MESSAGE_INTEGRITY)), 20)
        self.assertIsNone(xor_mapped_address(message))
        self.assertIsNone(error_code(message))
        # PRIORITY and USERNAME are comprehension-required and unknown to this module.
        self.assertEqual(unknown_required(message), [PRIORITY, USERNAME])

    def test_sample_ipv4_response(self):
        message = parse_message(RFC5769_IPV4_RESPONSE)
        self.assertEqual(message.message_type, BINDING_SUCCESS)
        self.assertEqual(message.transaction_id, RFC5769_TRANSACTION_ID)
        self.assertIs(message.fingerprint, True)
        self.assertEqual(xor_mapped_address(message), ("192.0.2.1", 32853))
        self.assertEqual(software(message), "test vector")
        self.assertEqual(len(message.get(MESSAGE_INTEGRITY)), 20)
        self.assertEqual(unknown_required(message), [])

    def test_sample_ipv6_response(self):
        message = parse_message(RFC5769_IPV6_RESPONSE)
        self.assertEqual(message.message_type, BINDING_SUCCESS)
        self.assertIs(message.fingerprint, True)
        self.assertEqual(
            xor_mapped_address(message), ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
        )
        self.assertEqual(software(message), "test vector")
        self.assertEqual(len(message.get(MESSAGE_INTEGRITY)), 20)

    def test_encoding_the_sample_addresses(self):
        self.assertEqual(
            encode_xor_mapped_address("192.0.2.1", 32853, RFC5769_TRANSACTION_ID),
            RFC5769_IPV4_RESPONSE[40:48],
        )
        self.assertEqual(
            encode_xor_mapped_address(
                "2001:db8:1234:5678:11:2233:4455:6677", 32853, RFC5769_TRANSACTION_ID
            ),
            RFC5769_IPV6_RESPONSE[40:60],
        )

    def test_reencoded_samples_parse_the_same(self):
        # Padding is written as zeros, not the samples' spaces: the bytes differ, the content not.
        for data in VECTORS:
            message = parse_message(data)
            again = parse_message(message.to_bytes())
            self.assertEqual(again.attributes, message.attributes)
            self.assertEqual(again.transaction_id, message.transaction_id)
            self.assertIs(again.fingerprint, True)

    def test_corrupted_samples_rejected(self):
        for data in VECTORS:
            for offset in (8, 19, 24, len(data) - 9, len(data) - 1):
                corrupted = bytearray(data)
                corrupted[offset] ^= 0x01
                error = error_of(parse_message, bytes(corrupted))
                self.assertEqual(error.reason, "STUN FINGERPRINT does not match")

    def test_no_bit_flip_passes_as_fingerprinted(self):
        # A flipped bit is caught, or (a length field now hiding FINGERPRINT inside another
        # attribute) leaves a message without one, which a demultiplexer discards.
        for data in (RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE):
            for bit in range(len(data) * 8):
                corrupted = bytearray(data)
                corrupted[bit // 8] ^= 0x80 >> (bit % 8)
                try:
                    message = parse_message(bytes(corrupted))
                except ParseError:
                    continue
                self.assertIs(message.fingerprint, False)


class TestBindingRequest(unittest.TestCase):
    def test_without_fingerprint(self):
        message = binding_request(TRANSACTION_ID)
        data = message.to_bytes(fingerprint=False)
        self.assertEqual(data, b"\x00\x01\x00\x00" + COOKIE + TRANSACTION_ID)
        parsed = parse_message(data)
        self.assertEqual(parsed.message_type, BINDING_REQUEST)
        self.assertEqual(parsed.transaction_id, TRANSACTION_ID)
        self.assertEqual(parsed.attributes, [])
        self.assertIs(parsed.fingerprint, False)
        self.assertEqual(parsed.to_bytes(fingerprint=False), data)

    def test_with_fingerprint(self):
        data = binding_request(TRANSACTION_ID).to_bytes()
        self.assertEqual(len(data), 28)
        self.assertEqual(data[:20], b"\x00\x01\x00\x08" + COOKIE + TRANSACTION_ID)
        self.assertEqual(data[20:24], b"\x80\x28\x00\x04")
        crc = (binascii.crc32(data[:20]) & 0xFFFFFFFF) ^ 0x5354554E
        self.assertEqual(data[24:], struct.pack(">I", crc))
        parsed = parse_message(data)
        self.assertIs(parsed.fingerprint, True)
        self.assertEqual(parsed.attributes, [])
        self.assertEqual(parsed.to_bytes(), data)

    def test_with_software(self):
        message = binding_request(TRANSACTION_ID, software="sip-appliance 0.1")
        data = message.to_bytes()
        self.assertEqual(
            data[20:44],
            b"\x80\x22\x00\x11sip-appliance 0.1\x00\x00\x00",
        )
        parsed = parse_message(data)
        self.assertEqual(software(parsed), "sip-appliance 0.1")
        self.assertEqual(parsed.to_bytes(), data)
        self.assertEqual(parsed.to_bytes(fingerprint=False), message.to_bytes(fingerprint=False))

    def test_software_in_utf8(self):
        message = binding_request(TRANSACTION_ID, software="t\u00e9l\u00e9phone")
        self.assertEqual(software(parse_message(message.to_bytes())), "t\u00e9l\u00e9phone")
        self.assertEqual(message.get(SOFTWARE), b"t\xc3\xa9l\xc3\xa9phone")

    def test_every_padding(self):
        for size in range(9):
            message = Message(BINDING_INDICATION, TRANSACTION_ID)
            message.add(0x8001, b"x" * size)
            data = message.to_bytes()
            self.assertEqual(len(data) % 4, 0)
            self.assertEqual(parse_message(data).attributes, [(0x8001, b"x" * size)])

    def test_is_stun(self):
        self.assertIs(is_stun(binding_request(TRANSACTION_ID).to_bytes()), True)
        self.assertIs(is_stun(binding_request(TRANSACTION_ID).to_bytes(fingerprint=False)), True)
        for data in VECTORS:
            self.assertIs(is_stun(data), True)
            self.assertIs(is_stun(bytearray(data)), True)

    def test_is_stun_false_for_other_protocols(self):
        self.assertIs(is_stun(SIP_OPTIONS), False)
        self.assertIs(is_stun(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), False)
        self.assertIs(is_stun(b"\r\n\r\n"), False)  # RFC 5626 CRLF keep-alive
        self.assertIs(is_stun(b""), False)
        rtp = b"\x80\x00\x00\x01" + COOKIE + b"\x00" * 12
        self.assertIs(is_stun(rtp), False)
        wrong_cookie = b"\x00\x01\x00\x00\x21\x12\xa4\x43" + TRANSACTION_ID
        self.assertIs(is_stun(wrong_cookie), False)
        self.assertIs(is_stun(binding_request(TRANSACTION_ID).to_bytes()[:19]), False)

    def test_type_fields(self):
        for message_type, message_class in (
            (BINDING_REQUEST, CLASS_REQUEST),
            (BINDING_INDICATION, CLASS_INDICATION),
            (BINDING_SUCCESS, CLASS_SUCCESS),
            (BINDING_ERROR, CLASS_ERROR),
        ):
            message = Message(message_type, TRANSACTION_ID)
            self.assertEqual(message.method, 0x001)
            self.assertEqual(message.message_class, message_class)
        allocate_error = Message(0x0113, TRANSACTION_ID)  # RFC 8656 Allocate error response
        self.assertEqual(allocate_error.method, 0x003)
        self.assertEqual(allocate_error.message_class, CLASS_ERROR)
        self.assertEqual(Message(0x3EEF, TRANSACTION_ID).method, 0xFFF)

    def test_misuse_raises_value_error(self):
        self.assertRaises(ValueError, binding_request, b"short")
        self.assertRaises(ValueError, binding_request, TRANSACTION_ID + b"x")
        self.assertRaises(ValueError, binding_request, TRANSACTION_ID, "x" * 128)
        self.assertRaises(ValueError, Message, 0x4001, TRANSACTION_ID)
        message = Message(BINDING_REQUEST, TRANSACTION_ID)
        self.assertRaises(ValueError, message.add, FINGERPRINT, b"\x00\x00\x00\x00")
        self.assertRaises(ValueError, message.add, 0x10000, b"")
        self.assertRaises(ValueError, message.add, 0x8001, b"x" * 0x10000)
        message.attributes.append((FINGERPRINT, b"\x00\x00\x00\x00"))
        self.assertRaises(ValueError, message.to_bytes)
        too_long = Message(BINDING_REQUEST, TRANSACTION_ID)
        too_long.add(0x8001, b"x" * 0xFFF8)
        self.assertEqual(len(too_long.to_bytes(fingerprint=False)), 20 + 0xFFFC)
        self.assertRaises(ValueError, too_long.to_bytes)

    def test_bytes_on_cpython(self):
        if sys.implementation.name != "cpython":
            raise unittest.SkipTest("bytes() calls __bytes__ only on CPython")
        message = binding_request(TRANSACTION_ID, software="x")
        self.assertEqual(bytes(message), message.to_bytes())

    def test_repr(self):
        self.assertEqual(
            repr(binding_request(b"\x00" * 11 + b"\x01")),
            "<stun.Message 0x0001 000000000000000000000001 0 attributes>",
        )


class TestParseErrors(unittest.TestCase):
    def test_every_prefix_rejected(self):
        request = binding_request(TRANSACTION_ID, software="sip-appliance").to_bytes()
        for data in VECTORS + (request,):
            for size in range(len(data)):
                self.assertRaises(ParseError, parse_message, data[:size])

    def test_header_errors(self):
        request = binding_request(TRANSACTION_ID).to_bytes(fingerprint=False)
        cases = (
            (b"", "STUN message shorter than its header"),
            (request[:19], "STUN message shorter than its header"),
            (b"\x40" + request[1:], "Not a STUN message: first two bits not zero"),
            (b"\x80" + request[1:], "Not a STUN message: first two bits not zero"),
            (request[:7] + b"\x43" + request[8:], "Not a STUN message: bad magic cookie"),
            (SIP_OPTIONS, "Not a STUN message: first two bits not zero"),
            (b"\x00" + SIP_OPTIONS, "Not a STUN message: bad magic cookie"),
            (header(BINDING_REQUEST, 2) + b"\x00\x00", "STUN message length 2 not a multiple of 4"),
            (header(BINDING_REQUEST, 4), "STUN message length 4 does not match 0 bytes"),
            (request + b"\x00" * 4, "STUN message length 0 does not match 4 bytes"),
        )
        for data, reason in cases:
            self.assertEqual(error_of(parse_message, data).reason, reason)

    def test_attribute_errors(self):
        cases = (
            (attribute(0x8001, b"x" * 5)[:8], "STUN attribute 0x8001 overruns the message"),
            (struct.pack(">HH", 0x8022, 0xFFFF), "STUN attribute 0x8022 overruns the message"),
            (attribute(FINGERPRINT, b"\x00" * 8), "STUN FINGERPRINT of 8 bytes"),
            (attribute(FINGERPRINT, b"\x00" * 4), "STUN FINGERPRINT does not match"),
        )
        for body, reason in cases:
            data = message_bytes(BINDING_REQUEST, body)
            self.assertEqual(error_of(parse_message, data).reason, reason)

    def test_attribute_after_fingerprint(self):
        start = header(BINDING_REQUEST, 12)
        crc = (binascii.crc32(start) & 0xFFFFFFFF) ^ 0x5354554E
        data = start + struct.pack(">HHI", FINGERPRINT, 4, crc) + attribute(0x8001, b"")
        error = error_of(parse_message, data)
        self.assertEqual(error.reason, "STUN attribute after FINGERPRINT")

    def test_fingerprint_of_another_message_rejected(self):
        one = binding_request(TRANSACTION_ID).to_bytes()
        other = binding_request(b"ba9876543210").to_bytes()
        error = error_of(parse_message, one[:20] + other[20:])
        self.assertEqual(error.reason, "STUN FINGERPRINT does not match")

    def test_attributes_after_message_integrity_ignored(self):
        body = (
            attribute(SOFTWARE, b"before")
            + attribute(MESSAGE_INTEGRITY, b"\x11" * 20)
            + attribute(XOR_MAPPED_ADDRESS, b"\x00" * 8)
            + attribute(0x001C, b"\x22" * 32)  # MESSAGE-INTEGRITY-SHA256 is kept
        )
        message = parse_message(message_bytes(BINDING_SUCCESS, body))
        self.assertEqual(
            [kind for kind, _value in message.attributes], [SOFTWARE, MESSAGE_INTEGRITY, 0x001C]
        )
        self.assertIsNone(xor_mapped_address(message))

    def test_duplicates_kept_first_read(self):
        body = attribute(SOFTWARE, b"one") + attribute(SOFTWARE, b"two")
        message = parse_message(message_bytes(BINDING_SUCCESS, body))
        self.assertEqual(software(message), "one")
        self.assertEqual(len(message.attributes), 2)

    def test_garbage_raises_only_parse_error(self):
        # Random attributes behind a valid header: parse_message and every reader either
        # succeed or raise ParseError, never anything else.
        lcg = Lcg(5769)
        kinds = (
            MAPPED_ADDRESS,
            XOR_MAPPED_ADDRESS,
            ERROR_CODE,
            UNKNOWN_ATTRIBUTES,
            SOFTWARE,
            FINGERPRINT,
            MESSAGE_INTEGRITY,
        )
        parsed = 0
        for _ in range(400):
            body = b""
            for _ in range(lcg.next(4)):
                kind = kinds[lcg.next(len(kinds))]
                value = lcg.bytes(lcg.next(24))
                if lcg.next(2) and len(value) >= 2:
                    value = b"\x00" + bytes([1 + lcg.next(2)]) + value[2:]  # a known family
                if lcg.next(8) == 0:
                    body += struct.pack(">HH", kind, lcg.next(0x30)) + value
                else:
                    body += attribute(kind, value)
            body += b"\x00" * (-len(body) % 4)
            data = message_bytes(BINDING_SUCCESS + lcg.next(2) * 0x10, body, lcg.bytes(12))
            try:
                message = parse_message(data)
            except ParseError:
                continue
            parsed += 1
            for reader in (xor_mapped_address, error_code, unknown_attributes, software):
                try:
                    reader(message)
                except ParseError:
                    pass
            unknown_required(message)
        self.assertTrue(parsed > 100)

    def test_random_bytes_raise_only_parse_error(self):
        lcg = Lcg(8489)
        for _ in range(300):
            data = lcg.bytes(lcg.next(64))
            if len(data) >= 8 and lcg.next(2):
                data = data[:4] + COOKIE + data[8:]
            try:
                parse_message(data)
            except ParseError:
                pass


class TestAddresses(unittest.TestCase):
    def success(self, *attributes):
        message = Message(BINDING_SUCCESS, TRANSACTION_ID)
        for kind, value in attributes:
            message.add(kind, value)
        return parse_message(message.to_bytes())

    def test_xor_mapped_round_trips(self):
        for host, port in (
            ("192.0.2.1", 5060),
            ("0.0.0.0", 0),
            ("255.255.255.255", 65535),
            ("2001:db8::1", 5060),
            ("::", 1),
            ("fe80::1:2:3:4", 65535),
            ("2001:db8:85a3::8a2e:370:7334", 33445),
        ):
            value = encode_xor_mapped_address(host, port, TRANSACTION_ID)
            self.assertEqual(len(value), 20 if ":" in host else 8)
            message = self.success((XOR_MAPPED_ADDRESS, value))
            self.assertEqual(xor_mapped_address(message), (host, port))

    def test_xor_encoding(self):
        value = encode_xor_mapped_address("192.0.2.1", 5060, TRANSACTION_ID)
        port = 5060 ^ (MAGIC_COOKIE >> 16)
        address = (0xC0000201 ^ MAGIC_COOKIE) & 0xFFFFFFFF
        self.assertEqual(value, struct.pack(">BBHI", 0, 1, port, address))

    def test_mapped_address_fallback(self):
        message = self.success((MAPPED_ADDRESS, encode_mapped_address("198.51.100.7", 3478)))
        self.assertEqual(xor_mapped_address(message), ("198.51.100.7", 3478))
        self.assertEqual(
            encode_mapped_address("198.51.100.7", 3478), b"\x00\x01\x0d\x96\xc6\x33\x64\x07"
        )
        message = self.success((MAPPED_ADDRESS, encode_mapped_address("2001:db8::7", 3478)))
        self.assertEqual(xor_mapped_address(message), ("2001:db8::7", 3478))

    def test_xor_mapped_preferred(self):
        message = self.success(
            (MAPPED_ADDRESS, encode_mapped_address("10.0.0.2", 5060)),
            (XOR_MAPPED_ADDRESS, encode_xor_mapped_address("203.0.113.9", 40000, TRANSACTION_ID)),
        )
        self.assertEqual(xor_mapped_address(message), ("203.0.113.9", 40000))

    def test_no_address(self):
        self.assertIsNone(xor_mapped_address(self.success()))

    def test_malformed_addresses(self):
        cases = (
            (b"\x00\x01\x00", "STUN address attribute of 3 bytes"),
            (b"\x00\x01\x00\x01\x00\x00\x00", "STUN address attribute of 7 bytes"),
            (b"\x00\x01\x00\x01" + b"\x00" * 16, "STUN address attribute of 20 bytes"),
            (b"\x00\x02\x00\x01" + b"\x00" * 4, "STUN address attribute of 8 bytes"),
            (b"\x00\x03\x00\x01" + b"\x00" * 4, "STUN address family 0x03 unknown"),
        )
        for value, reason in cases:
            for kind in (XOR_MAPPED_ADDRESS, MAPPED_ADDRESS):
                message = self.success((kind, value))
                self.assertEqual(error_of(xor_mapped_address, message).reason, reason)

    def test_ipv6_text_form(self):
        cases = (
            ("0000:0000:0000:0000:0000:0000:0000:0000", "::"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("1:0:0:0:0:0:0:0", "1::"),
            ("2001:0DB8:0:0:0:0:0:1", "2001:db8::1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # one zero group stays
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  # the longest run
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # the first of equal runs
            ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
            ("::1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"),
            ("::ffff:192.0.2.1", "::ffff:c000:201"),
            ("64:ff9b::198.51.100.7", "64:ff9b::c633:6407"),
        )
        for text, canonical in cases:
            self.assertEqual(format_ipv6(parse_ipv6(text)), canonical)
            self.assertEqual(parse_ipv6(canonical), parse_ipv6(text))

    def test_ipv6_against_ipaddress(self):
        try:
            import ipaddress
        except ImportError:
            ipaddress = None
        if ipaddress is None:
            raise unittest.SkipTest("no ipaddress module")
        for pattern in range(256):
            groups = [(i + 1) * 0x101 if pattern & (1 << i) else 0 for i in range(8)]
            packed = struct.pack(">8H", *groups)
            address = ipaddress.IPv6Address(packed)
            self.assertEqual(format_ipv6(packed), address.compressed)
            self.assertEqual(parse_ipv6(address.compressed), packed)
            self.assertEqual(parse_ipv6(address.exploded), packed)

    def test_bad_addresses_raise_value_error(self):
        for text in (
            "",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "::1:2:3:4:5:6:7:8",
            "1:2:3:4::5:6:7:8",
            "1::2::3",
            ":::",
            "1::2:",
            ":1::2",
            "12345::",
            "g::",
            "[::1]",
            "fe80::1%eth0",
            "1.2.3.4::",
            "::1.2.3",
            "::1.2.3.4:5",
        ):
            self.assertRaises(ValueError, parse_ipv6, text)
            self.assertRaises(ValueError, encode_xor_mapped_address, text, 1, TRANSACTION_ID)
        for text in (
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.2.3.4",
            "a.b.c.d",
            "1..2.3",
            " 1.2.3.4",
        ):
            self.assertRaises(ValueError, parse_ipv4, text)
            self.assertRaises(ValueError, encode_mapped_address, text, 1)
        self.assertEqual(parse_ipv4("0.10.100.255"), b"\x00\x0a\x64\xff")
        self.assertRaises(ValueError, encode_mapped_address, "192.0.2.1", 65536)
        self.assertRaises(ValueError, encode_mapped_address, "192.0.2.1", -1)
        self.assertRaises(ValueError, encode_xor_mapped_address, "192.0.2.1", 1, b"short")


class TestErrorCode(unittest.TestCase):
    def test_encoding(self):
        self.assertEqual(encode_error_code(401, "Unauthorized"), b"\x00\x00\x04\x01Unauthorized")
        self.assertEqual(encode_error_code(300, ""), b"\x00\x00\x03\x00")
        self.assertEqual(encode_unknown_attributes([0x0024, 0x0006]), b"\x00\x24\x00\x06")

    def test_420_round_trip(self):
        message = Message(BINDING_ERROR, TRANSACTION_ID)
        message.add(ERROR_CODE, encode_error_code(420, "Unknown Attribute"))
        message.add(UNKNOWN_ATTRIBUTES, encode_unknown_attributes([PRIORITY, USERNAME]))
        data = message.to_bytes()
        parsed = parse_message(data)
        self.assertEqual(parsed.message_class, CLASS_ERROR)
        self.assertEqual(error_code(parsed), (420, "Unknown Attribute"))
        self.assertEqual(unknown_attributes(parsed), [PRIORITY, USERNAME])
        self.assertEqual(parsed.to_bytes(), data)

    def test_every_class(self):
        for code in (300, 400, 438, 500, 599, 699):
            message = Message(BINDING_ERROR, TRANSACTION_ID)
            message.add(ERROR_CODE, encode_error_code(code, "x"))
            self.assertEqual(error_code(parse_message(message.to_bytes())), (code, "x"))

    def test_absent(self):
        message = parse_message(RFC5769_IPV4_RESPONSE)
        self.assertIsNone(error_code(message))
        self.assertEqual(unknown_attributes(message), [])
        self.assertIsNone(software(binding_request(TRANSACTION_ID)))

    def test_malformed(self):
        cases = (
            (ERROR_CODE, error_code, b"\x00\x00\x04", "STUN ERROR-CODE of 3 bytes"),
            (ERROR_CODE, error_code, b"\x00\x00\x04\x64", "STUN ERROR-CODE class 4 number 100"),
            (ERROR_CODE, error_code, b"\x00\x00\x07\x00", "STUN ERROR-CODE class 7 number 0"),
            (ERROR_CODE, error_code, b"\x00\x00\x02\x00", "STUN ERROR-CODE class 2 number 0"),
            (ERROR_CODE, error_code, b"\x00\x00\x04\x01\xff", "STUN ERROR-CODE reason not UTF-8"),
            (
                UNKNOWN_ATTRIBUTES,
                unknown_attributes,
                b"\x00\x24\x00",
                "STUN UNKNOWN-ATTRIBUTES of 3 bytes",
            ),
            (SOFTWARE, software, b"\xc3", "STUN SOFTWARE not UTF-8"),
        )
        for kind, reader, value, reason in cases:
            message = Message(BINDING_ERROR, TRANSACTION_ID)
            message.add(kind, value)
            message = parse_message(message.to_bytes())
            self.assertEqual(error_of(reader, message).reason, reason)

    def test_misuse(self):
        self.assertRaises(ValueError, encode_error_code, 299, "x")
        self.assertRaises(ValueError, encode_error_code, 700, "x")
        self.assertRaises(ValueError, encode_error_code, 400, "x" * 128)
        self.assertEqual(len(encode_error_code(400, "\u00e9" * 127)), 4 + 254)


if __name__ == "__main__":
    unittest.main()
