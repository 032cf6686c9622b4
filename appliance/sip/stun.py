"""STUN messages: the codec of RFC 8489 (which obsoletes RFC 5389), as much as a client needs
to learn its public address with a Binding request and to keep a UDP flow alive
(RFC 5626 section 4.4.2).

`parse_message(data)` takes the bytes of one datagram; `message.to_bytes()` writes a message
(`bytes(message)` too, on CPython: MicroPython does not call `__bytes__`). The transaction id
is the caller's 12 random bytes: nothing here draws random numbers, opens a socket or reads
a clock. Bad bytes from the peer raise ParseError; misuse by the caller raises ValueError.

MESSAGE-INTEGRITY is carried as an opaque attribute: no credentials are checked here.
"""

import binascii
import struct

from .errors import ParseError

MAGIC_COOKIE = 0x2112A442
_COOKIE = b"\x21\x12\xa4\x42"
HEADER_SIZE = 20
_FINGERPRINT_XOR = 0x5354554E  # "STUN" (RFC 8489 section 14.7)

# Message types: the Binding method (0x001) in each class (RFC 8489 sections 5 and 18.2).
BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

# Classes, as `Message.message_class` reads them from the type's C1 and C0 bits.
CLASS_REQUEST = 0
CLASS_INDICATION = 1
CLASS_SUCCESS = 2
CLASS_ERROR = 3

# Attribute types (RFC 8489 sections 14 and 18.3).
MAPPED_ADDRESS = 0x0001
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
MESSAGE_INTEGRITY_SHA256 = 0x001C
XOR_MAPPED_ADDRESS = 0x0020
SOFTWARE = 0x8022
FINGERPRINT = 0x8028

# The comprehension-required attributes (types below 0x8000) this module understands.
KNOWN_REQUIRED = (
    MAPPED_ADDRESS,
    MESSAGE_INTEGRITY,
    ERROR_CODE,
    UNKNOWN_ATTRIBUTES,
    MESSAGE_INTEGRITY_SHA256,
    XOR_MAPPED_ADDRESS,
)

FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02

# SOFTWARE and the ERROR-CODE reason: fewer than 128 characters, at most 763 bytes of UTF-8
# (RFC 8489 sections 14.8 and 14.14).
_MAX_TEXT_CHARS = 127
_MAX_TEXT_BYTES = 763


class Message:
    """A STUN message: a type, a transaction id and attributes, in order.

    `attributes` is a list of (type, value bytes) pairs without FINGERPRINT, which
    `to_bytes()` computes and `parse_message` checks; `fingerprint` says whether a parsed
    message carried a valid one. Duplicates are kept; `get` returns the first, the only one
    a receiver needs to process (RFC 8489 section 14).
    """

    __slots__ = ("message_type", "transaction_id", "attributes", "fingerprint")

    def __init__(self, message_type, transaction_id, attributes=None):
        if not 0 <= message_type <= 0x3FFF:
            raise ValueError("STUN message type out of range: 0x%x" % message_type)
        if len(transaction_id) != 12:
            raise ValueError("STUN transaction id must be 12 bytes, not %d" % len(transaction_id))
        self.message_type = message_type
        self.transaction_id = bytes(transaction_id)
        self.attributes = attributes if attributes is not None else []
        self.fingerprint = False

    @property
    def method(self):
        """The method, from the type's bits M11..M0 (RFC 8489 section 5)."""
        t = self.message_type
        return ((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F)

    @property
    def message_class(self):
        """CLASS_REQUEST, CLASS_INDICATION, CLASS_SUCCESS or CLASS_ERROR."""
        t = self.message_type
        return ((t & 0x0100) >> 7) | ((t & 0x0010) >> 4)

    def get(self, attribute_type, default=None):
        """The value of the first attribute of a type, as bytes."""
        for kind, value in self.attributes:
            if kind == attribute_type:
                return value
        return default

    def add(self, attribute_type, value):
        if not 0 <= attribute_type <= 0xFFFF:
            raise ValueError("STUN attribute type out of range: 0x%x" % attribute_type)
        if attribute_type == FINGERPRINT:
            raise ValueError("FINGERPRINT is written by to_bytes(fingerprint=True)")
        if len(value) > 0xFFFF:
            raise ValueError(
                "STUN attribute 0x%04x too long: %d bytes" % (attribute_type, len(value))
            )
        self.attributes.append((attribute_type, bytes(value)))

    def to_bytes(self, fingerprint=True):
        """The message on the wire, attributes padded to 4 bytes with zeros (RFC 8489
        section 14), with FINGERPRINT last when `fingerprint` is true (section 14.7)."""
        parts = []
        length = 0
        for kind, value in self.attributes:
            if kind == FINGERPRINT:
                raise ValueError("FINGERPRINT is written by to_bytes(fingerprint=True)")
            size = len(value)
            padding = -size % 4
            parts.append(struct.pack(">HH", kind, size))
            parts.append(value)
            if padding:
                parts.append(b"\x00" * padding)
            length += 4 + size + padding
        if fingerprint:
            length += 8
        if length > 0xFFFF:
            raise ValueError("STUN message too long: %d bytes of attributes" % length)
        data = (
            struct.pack(">HH", self.message_type, length)
            + _COOKIE
            + self.transaction_id
            + b"".join(parts)
        )
        if fingerprint:
            data += struct.pack(">HHI", FINGERPRINT, 4, _fingerprint(data))
        return data

    def __bytes__(self):
        return self.to_bytes()

    def __repr__(self):
        return "<stun.Message 0x%04x %s %d attributes>" % (
            self.message_type,
            binascii.hexlify(self.transaction_id).decode(),
            len(self.attributes),
        )


def _fingerprint(data):
    """CRC-32 of the message before FINGERPRINT, XOR 0x5354554E (RFC 8489 section 14.7)."""
    return (binascii.crc32(data) & 0xFFFFFFFF) ^ _FINGERPRINT_XOR


def is_stun(data):
    """Whether a datagram looks like STUN: the first two bits zero and the magic cookie in
    place (RFC 8489 sections 5 and 6), which tells it from SIP (text) and RTP (first byte
    128-191) arriving on the same socket (RFC 7983 section 7)."""
    return len(data) >= HEADER_SIZE and data[0] & 0xC0 == 0 and bytes(data[4:8]) == _COOKIE


def parse_message(data):
    """Parse the bytes of one STUN message (one UDP datagram) (RFC 8489 sections 5, 6, 14).

    Raises ParseError for a short or malformed header, a length that is not a multiple of 4
    or disagrees with the datagram, an attribute overrunning the message, a FINGERPRINT that
    is misplaced or does not match. Attributes after MESSAGE-INTEGRITY other than
    MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are dropped, as section 14.5 has receivers
    ignore them.
    """
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise ParseError("STUN message shorter than its header")
    message_type, length = struct.unpack_from(">HH", data, 0)
    if message_type & 0xC000:
        raise ParseError("Not a STUN message: first two bits not zero")
    if data[4:8] != _COOKIE:
        raise ParseError("Not a STUN message: bad magic cookie")
    if length % 4:
        raise ParseError("STUN message length %d not a multiple of 4" % length)
    if HEADER_SIZE + length != len(data):
        raise ParseError(
            "STUN message length %d does not match %d bytes" % (length, len(data) - HEADER_SIZE)
        )
    message = Message(message_type, data[8:20])
    attributes = message.attributes
    integrity = False
    position = HEADER_SIZE
    end = len(data)
    while position < end:
        if message.fingerprint:
            raise ParseError("STUN attribute after FINGERPRINT")
        if end - position < 4:  # unreachable while lengths are multiples of 4: a guard
            raise ParseError("STUN attribute header overruns the message")
        kind, size = struct.unpack_from(">HH", data, position)
        start = position + 4
        if start + size + (-size % 4) > end:
            raise ParseError("STUN attribute 0x%04x overruns the message" % kind)
        if kind == FINGERPRINT:
            if size != 4:
                raise ParseError("STUN FINGERPRINT of %d bytes" % size)
            (expected,) = struct.unpack_from(">I", data, start)
            if _fingerprint(data[:position]) != expected:
                raise ParseError("STUN FINGERPRINT does not match")
            message.fingerprint = True
        elif not integrity or kind == MESSAGE_INTEGRITY_SHA256:
            attributes.append((kind, data[start : start + size]))
            if kind == MESSAGE_INTEGRITY or kind == MESSAGE_INTEGRITY_SHA256:
                integrity = True
        position = start + size + (-size % 4)
    return message


def binding_request(transaction_id, software=None):
    """A Binding request (RFC 8489 section 3.1), also the STUN keep-alive of RFC 5626
    section 4.4.2; `software` names this agent in a SOFTWARE attribute (section 14.14)."""
    message = Message(BINDING_REQUEST, transaction_id)
    if software is not None:
        message.add(SOFTWARE, _encode_text(software, "SOFTWARE"))
    return message


def software(message):
    """The SOFTWARE attribute as text, or None (RFC 8489 section 14.14)."""
    value = message.get(SOFTWARE)
    if value is None:
        return None
    return _decode_text(value, "SOFTWARE")


# -- addresses (RFC 8489 sections 14.1 and 14.2) -------------------------------------------


def xor_mapped_address(message):
    """The reflexive transport address from a Binding success response as (host, port):
    XOR-MAPPED-ADDRESS, else the MAPPED-ADDRESS that RFC 3489 servers send (RFC 8489
    section 14.1), else None. IPv6 hosts are in RFC 5952 text form."""
    value = message.get(XOR_MAPPED_ADDRESS)
    if value is not None:
        return _decode_address(value, _COOKIE + message.transaction_id)
    value = message.get(MAPPED_ADDRESS)
    if value is not None:
        return _decode_address(value, None)
    return None


def encode_xor_mapped_address(host, port, transaction_id):
    """The value of an XOR-MAPPED-ADDRESS attribute for (host, port) (RFC 8489 section
    14.2): the port XOR the cookie's top 16 bits, the address XOR the cookie (IPv4) or the
    cookie and the transaction id (IPv6)."""
    if len(transaction_id) != 12:
        raise ValueError("STUN transaction id must be 12 bytes, not %d" % len(transaction_id))
    return _encode_address(host, port, _COOKIE + bytes(transaction_id))


def encode_mapped_address(host, port):
    """The value of a MAPPED-ADDRESS attribute for (host, port) (RFC 8489 section 14.1)."""
    return _encode_address(host, port, None)


def _xor(data, key):
    out = bytearray(data)
    for i in range(len(out)):
        out[i] ^= key[i]
    return bytes(out)


def _encode_address(host, port, key):
    if not 0 <= port <= 0xFFFF:
        raise ValueError("port out of range: %r" % (port,))
    if ":" in host:
        family = FAMILY_IPV6
        address = parse_ipv6(host)
    else:
        family = FAMILY_IPV4
        address = parse_ipv4(host)
    if key is not None:
        port ^= MAGIC_COOKIE >> 16
        address = _xor(address, key)
    return struct.pack(">BBH", 0, family, port) + address


def _decode_address(value, key):
    if len(value) < 4:
        raise ParseError("STUN address attribute of %d bytes" % len(value))
    family = value[1]
    (port,) = struct.unpack_from(">H", value, 2)
    address = value[4:]
    if family == FAMILY_IPV4:
        size = 4
    elif family == FAMILY_IPV6:
        size = 16
    else:
        raise ParseError("STUN address family 0x%02x unknown" % family)
    if len(address) != size:
        raise ParseError("STUN address attribute of %d bytes" % len(value))
    if key is not None:
        port ^= MAGIC_COOKIE >> 16
        address = _xor(address, key)
    if family == FAMILY_IPV4:
        return format_ipv4(address), port
    return format_ipv6(address), port


def format_ipv4(address):
    """Dotted-quad text of 4 address bytes."""
    return "%d.%d.%d.%d" % (address[0], address[1], address[2], address[3])


def parse_ipv4(text):
    """The 4 bytes of a dotted-quad address; ValueError unless it is exactly one."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %r" % (text,))
    out = bytearray(4)
    for i in range(4):
        part = parts[i]
        if not part or len(part) > 3 or not part.isdigit() or (len(part) > 1 and part[0] == "0"):
            raise ValueError("not an IPv4 address: %r" % (text,))
        number = int(part)
        if number > 255:
            raise ValueError("not an IPv4 address: %r" % (text,))
        out[i] = number
    return bytes(out)


def format_ipv6(address):
    """RFC 5952 section 4 text of 16 address bytes: lower-case hex groups without leading
    zeros, the longest run of two or more zero groups (the first, on a tie) as "::"."""
    groups = struct.unpack(">8H", address)
    best_start = best_length = 0
    start = None
    for i in range(9):
        if i < 8 and groups[i] == 0:
            if start is None:
                start = i
        elif start is not None:
            if i - start > best_length:
                best_start, best_length = start, i - start
            start = None
    texts = ["%x" % g for g in groups]
    if best_length < 2:
        return ":".join(texts)
    head = ":".join(texts[:best_start])
    tail = ":".join(texts[best_start + best_length :])
    return head + "::" + tail


def parse_ipv6(text):
    """The 16 bytes of an IPv6 address in RFC 4291 section 2.2 text form (hex groups, one
    "::" at most, an optional dotted-quad tail); ValueError for anything else, including
    brackets and zone ids."""
    if text.count("::") > 1:
        raise ValueError("not an IPv6 address: %r" % (text,))
    if "::" in text:
        head_text, tail_text = text.split("::")
        head = _ipv6_groups(head_text, text, False) if head_text else []
        tail = _ipv6_groups(tail_text, text, True) if tail_text else []
        missing = 8 - len(head) - len(tail)
        if missing < 1:
            raise ValueError("not an IPv6 address: %r" % (text,))
        groups = head + [0] * missing + tail
    else:
        groups = _ipv6_groups(text, text, True)
        if len(groups) != 8:
            raise ValueError("not an IPv6 address: %r" % (text,))
    return struct.pack(">8H", *groups)


def _ipv6_groups(part, text, last):
    """The 16-bit groups of `part` of the address `text`; a dotted quad may end the last."""
    groups = []
    pieces = part.split(":")
    for i in range(len(pieces)):
        piece = pieces[i]
        if last and i == len(pieces) - 1 and "." in piece:
            quad = parse_ipv4(piece)
            groups.append((quad[0] << 8) | quad[1])
            groups.append((quad[2] << 8) | quad[3])
            continue
        if not 1 <= len(piece) <= 4:
            raise ValueError("not an IPv6 address: %r" % (text,))
        for c in piece:
            if c not in "0123456789abcdefABCDEF":
                raise ValueError("not an IPv6 address: %r" % (text,))
        groups.append(int(piece, 16))
    return groups


# -- errors (RFC 8489 sections 14.8 and 14.9) -----------------------------------------------


def error_code(message):
    """(code, reason) from ERROR-CODE, or None without one. The code is class * 100 +
    number, class 3 to 6 and number 0 to 99 (RFC 8489 section 14.8)."""
    value = message.get(ERROR_CODE)
    if value is None:
        return None
    if len(value) < 4:
        raise ParseError("STUN ERROR-CODE of %d bytes" % len(value))
    error_class = value[2] & 0x07
    number = value[3]
    if not 3 <= error_class <= 6 or number > 99:
        raise ParseError("STUN ERROR-CODE class %d number %d" % (error_class, number))
    return error_class * 100 + number, _decode_text(value[4:], "ERROR-CODE reason")


def encode_error_code(code, reason):
    """The value of an ERROR-CODE attribute (RFC 8489 section 14.8)."""
    if not 300 <= code <= 699:
        raise ValueError("STUN error code out of range: %r" % (code,))
    return struct.pack(">HBB", 0, code // 100, code % 100) + _encode_text(reason, "reason")


def unknown_attributes(message):
    """The attribute types listed in UNKNOWN-ATTRIBUTES (of a 420 response), or an empty
    list (RFC 8489 section 14.9)."""
    value = message.get(UNKNOWN_ATTRIBUTES)
    if value is None:
        return []
    if len(value) % 2:
        raise ParseError("STUN UNKNOWN-ATTRIBUTES of %d bytes" % len(value))
    return list(struct.unpack(">%dH" % (len(value) // 2), value))


def encode_unknown_attributes(types):
    """The value of an UNKNOWN-ATTRIBUTES attribute (RFC 8489 section 14.9)."""
    return struct.pack(">%dH" % len(types), *types)


def unknown_required(message, known=KNOWN_REQUIRED):
    """The comprehension-required attribute types (below 0x8000) in a message that are not
    in `known`, each once in order of appearance: a response carrying any is a failed
    transaction, a request gets a 420 listing them (RFC 8489 sections 6.3.1 and 7.3.3)."""
    out = []
    for kind, _value in message.attributes:
        if kind < 0x8000 and kind not in known and kind not in out:
            out.append(kind)
    return out


def _encode_text(text, what):
    if len(text) > _MAX_TEXT_CHARS:
        raise ValueError("STUN %s longer than %d characters" % (what, _MAX_TEXT_CHARS))
    data = text.encode("utf-8")
    if len(data) > _MAX_TEXT_BYTES:
        raise ValueError("STUN %s longer than %d bytes" % (what, _MAX_TEXT_BYTES))
    return data


def _decode_text(value, what):
    try:
        return value.decode("utf-8")
    except UnicodeError:
        raise ParseError("STUN %s not UTF-8" % what)
