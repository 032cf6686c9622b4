"""The digest hashes, including the pure-Python fallbacks MicroPython builds use."""

import binascii
import unittest

from appliance.sip.hashes import MD5, SHA256, SHA512_256, hex_digest, md5, sha512_256


def hexed(digest):
    return binascii.hexlify(digest).decode()


class TestKnownAnswers(unittest.TestCase):
    # RFC 1321 appendix A.5 and FIPS 180-4's SHA-512/256 examples.
    def test_md5(self):
        self.assertEqual(hexed(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e")
        self.assertEqual(hexed(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72")
        self.assertEqual(hexed(md5(b"message digest")), "f96b697d7cb7938d525a2f31aaf161d0")
        self.assertEqual(
            hexed(md5(b"12345678901234567890123456789012345678901234567890123456789012345678"
                      b"901234567890")),
            "57edf4a22be3c955ac49da2e2107b67a",
        )

    def test_sha512_256(self):
        self.assertEqual(hexed(sha512_256(b"abc")),
                         "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23")
        self.assertEqual(
            hexed(sha512_256(b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                             b"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
            "3928e184fb8690f840da3988121d31be65cb9d3ef83ee6146feac861e19b563a",
        )

    def test_hex_digest_agrees_with_the_fallbacks_at_every_padding_edge(self):
        for length in (0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 300):
            data = bytes(range(256))[:length] if length <= 256 else b"x" * length
            self.assertEqual(hex_digest(MD5, data), hexed(md5(data)), length)
            self.assertEqual(hex_digest(SHA512_256, data), hexed(sha512_256(data)), length)

    def test_sha256_and_text_input(self):
        self.assertEqual(hex_digest(SHA256, "abc"),
                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
