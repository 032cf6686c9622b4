"""The hash functions of HTTP digest authentication (RFC 7616): MD5, SHA-256, SHA-512/256.

`hex_digest(algorithm, data)` uses `hashlib` where it has the function and falls back to
the pure-Python MD5 (RFC 1321) and SHA-512/256 (FIPS 180-4) below, which MicroPython
builds need: their `hashlib` often has SHA-256 alone, and no `hexdigest()`.
"""

import binascii
import struct

try:
    import hashlib
except ImportError:  # a MicroPython build without it
    hashlib = None  # type: ignore[assignment]

MD5 = "MD5"
SHA256 = "SHA-256"
SHA512_256 = "SHA-512-256"

_HASHLIB_NAMES = {MD5: "md5", SHA256: "sha256", SHA512_256: "sha512_256"}
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def hex_digest(algorithm, data):
    """Lower-case hex digest of `data` (bytes or str) with a digest algorithm name."""
    if isinstance(data, str):
        data = data.encode()
    name = _HASHLIB_NAMES[algorithm]
    digest = _hashlib_digest(name, data)
    if digest is None:
        digest = md5(data) if algorithm == MD5 else sha512_256(data) \
            if algorithm == SHA512_256 else None
        if digest is None:
            raise ValueError("no %s on this interpreter" % algorithm)
    return binascii.hexlify(digest).decode()


def _hashlib_digest(name, data):
    if hashlib is None:
        return None
    constructor = getattr(hashlib, name, None)
    if constructor is not None:
        return constructor(data).digest()
    new = getattr(hashlib, "new", None)
    if new is not None:
        try:
            return new(name, data).digest()
        except ValueError:
            return None
    return None


# -- MD5, RFC 1321 -------------------------------------------------------------------------

_MD5_T = (
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
    0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
    0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
    0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
    0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
)
_MD5_SHIFTS = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 \
    + (6, 10, 15, 21) * 4


def md5(data):
    """The MD5 digest (16 bytes) of `data`."""
    length = len(data)
    data = bytes(data) + b"\x80" + b"\x00" * ((55 - length) % 64) \
        + struct.pack("<Q", (length * 8) & _MASK64)
    a0, b0, c0, d0 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for offset in range(0, len(data), 64):
        words = struct.unpack("<16I", data[offset : offset + 64])
        a, b, c, d = a0, b0, c0, d0
        for i in range(64):
            if i < 16:
                f = (b & c) | (~b & d)
                g = i
            elif i < 32:
                f = (d & b) | (~d & c)
                g = (5 * i + 1) % 16
            elif i < 48:
                f = b ^ c ^ d
                g = (3 * i + 5) % 16
            else:
                f = c ^ (b | (~d & _MASK32))
                g = (7 * i) % 16
            f = (f + a + _MD5_T[i] + words[g]) & _MASK32
            shift = _MD5_SHIFTS[i]
            a, d, c = d, c, b
            b = (b + ((f << shift) | (f >> (32 - shift)))) & _MASK32
        a0 = (a0 + a) & _MASK32
        b0 = (b0 + b) & _MASK32
        c0 = (c0 + c) & _MASK32
        d0 = (d0 + d) & _MASK32
    return struct.pack("<4I", a0, b0, c0, d0)


# -- SHA-512/256, FIPS 180-4 ----------------------------------------------------------------


def _primes(count):
    found = []
    candidate = 2
    while len(found) < count:
        if all(candidate % p for p in found if p * p <= candidate):
            found.append(candidate)
        candidate += 1
    return found


def _iroot(value, degree):
    """The integer `degree`-th root of a positive integer (Newton's method)."""
    root = 1
    while root ** degree <= value:  # (MicroPython's int has no bit_length)
        root <<= 1
    while True:
        better = ((degree - 1) * root + value // root ** (degree - 1)) // degree
        if better >= root:
            return root
        root = better


# The constants are the fractional parts of roots of primes (FIPS 180-4 section 4.2.3 and
# 5.3.5): computed here with integers, not typed in.
_PRIMES = _primes(80)
_SHA512_K = [_iroot(p << 192, 3) & _MASK64 for p in _PRIMES]
_SHA512_IV = [_iroot(p << 128, 2) & _MASK64 for p in _PRIMES[:8]]


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _MASK64


def _sha512(data, state):
    length = len(data)
    data = bytes(data) + b"\x80" + b"\x00" * ((111 - length) % 128) \
        + struct.pack(">QQ", 0, (length * 8) & _MASK64)
    state = list(state)
    for offset in range(0, len(data), 128):
        w = list(struct.unpack(">16Q", data[offset : offset + 128]))
        for i in range(16, 80):
            s0 = _rotr(w[i - 15], 1) ^ _rotr(w[i - 15], 8) ^ (w[i - 15] >> 7)
            s1 = _rotr(w[i - 2], 19) ^ _rotr(w[i - 2], 61) ^ (w[i - 2] >> 6)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & _MASK64)
        a, b, c, d, e, f, g, h = state
        for i in range(80):
            s1 = _rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)
            choice = (e & f) ^ (~e & _MASK64 & g)
            t1 = (h + s1 + choice + _SHA512_K[i] + w[i]) & _MASK64
            s0 = _rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)
            majority = (a & b) ^ (a & c) ^ (b & c)
            t2 = (s0 + majority) & _MASK64
            h, g, f, e, d, c, b, a = g, f, e, (d + t1) & _MASK64, c, b, a, (t1 + t2) & _MASK64
        state = [(x + y) & _MASK64 for x, y in zip(state, (a, b, c, d, e, f, g, h))]
    return state


# SHA-512/t's initial value: SHA-512 of "SHA-512/256" from an IV XORed with a5a5...
# (FIPS 180-4 section 5.3.6).
_SHA512_256_IV = _sha512(b"SHA-512/256", [x ^ 0xA5A5A5A5A5A5A5A5 for x in _SHA512_IV])


def sha512_256(data):
    """The SHA-512/256 digest (32 bytes) of `data`."""
    return struct.pack(">8Q", *_sha512(data, _SHA512_256_IV))[:32]
