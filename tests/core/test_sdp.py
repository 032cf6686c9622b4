"""appliance/sip/sdp.py: SDP and offer/answer for G.711 calls, on offers as phones send
them."""

import unittest

from appliance.sip.errors import ParseError
from appliance.sip.sdp import (
    INACTIVE,
    PCMA,
    PCMU,
    RECVONLY,
    SENDONLY,
    SENDRECV,
    accepted,
    answer,
    offer,
    parse,
)

# As baresip sends it: opus first, G.711 after, telephone-event on 101.
BARESIP = (
    "v=0\r\n"
    "o=- 1187236372 3052512375 IN IP4 192.0.2.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.20\r\n"
    "t=0 0\r\n"
    "m=audio 10340 RTP/AVP 96 9 0 8 101\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 stereo=1;sprop-stereo=1\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)


def lines(text):
    return text.split("\r\n")


class TestAnswer(unittest.TestCase):
    def test_the_offerers_first_shared_codec_and_its_event_type(self):
        text, agreed = answer(parse(BARESIP), "198.51.100.7", 40000, "42")
        self.assertEqual((agreed.codec, agreed.payload_type, agreed.event_type),
                         (PCMU, 0, 101))
        self.assertEqual((agreed.address, agreed.port, agreed.direction),
                         ("192.0.2.20", 10340, SENDRECV))
        self.assertIn("m=audio 40000 RTP/AVP 0 101", lines(text))
        self.assertIn("c=IN IP4 198.51.100.7", lines(text))
        self.assertIn("a=rtpmap:101 telephone-event/8000", lines(text))
        again = parse(text)  # what we send parses, as the caller will read it
        self.assertEqual(again.media[0].rtpmap()[0], ("PCMU", 8000))

    def test_pcma_first_is_taken_first_and_a_dynamic_event_type_kept(self):
        sdp = BARESIP.replace("RTP/AVP 96 9 0 8 101", "RTP/AVP 8 0 96") \
            .replace("101 telephone-event", "96 telephone-event")
        _, agreed = answer(parse(sdp), "198.51.100.7", 40000, "42")
        self.assertEqual((agreed.codec, agreed.payload_type, agreed.event_type),
                         (PCMA, 8, 96))

    def test_a_static_type_needs_no_rtpmap(self):
        sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n" \
              "m=audio 5004 RTP/AVP 0\r\n"
        _, agreed = answer(parse(sdp), "198.51.100.7", 40000, "42")
        self.assertEqual((agreed.codec, agreed.event_type, agreed.ptime), (PCMU, None, 20))

    def test_nothing_we_speak_is_no_answer(self):
        sdp = BARESIP.replace("RTP/AVP 96 9 0 8 101", "RTP/AVP 96 9 101")
        self.assertIsNone(answer(parse(sdp), "198.51.100.7", 40000, "42"))

    def test_srtp_only_is_no_answer(self):
        sdp = BARESIP.replace("RTP/AVP", "RTP/SAVP")
        self.assertIsNone(answer(parse(sdp), "198.51.100.7", 40000, "42"))

    def test_directions_are_mirrored(self):
        for offered, expected in ((SENDONLY, RECVONLY), (RECVONLY, SENDONLY),
                                  (INACTIVE, INACTIVE), (SENDRECV, SENDRECV)):
            sdp = BARESIP.replace("a=sendrecv", "a=" + offered)
            text, agreed = answer(parse(sdp), "198.51.100.7", 40000, "42")
            self.assertEqual(agreed.direction, expected)
            self.assertIn("a=" + expected, lines(text))
        self.assertFalse(answer(parse(BARESIP.replace("a=sendrecv", "a=sendonly")),
                                "198.51.100.7", 40000, "42")[1].sending)

    def test_old_style_hold_with_a_zero_address(self):
        sdp = BARESIP.replace("c=IN IP4 192.0.2.20", "c=IN IP4 0.0.0.0")
        _, agreed = answer(parse(sdp), "198.51.100.7", 40000, "42")
        self.assertEqual(agreed.direction, RECVONLY)

    def test_a_session_level_direction_applies_to_the_stream(self):
        sdp = BARESIP.replace("a=sendrecv\r\n", "").replace("t=0 0\r\n",
                                                            "t=0 0\r\na=sendonly\r\n")
        self.assertEqual(answer(parse(sdp), "198.51.100.7", 40000, "42")[1].direction,
                         RECVONLY)

    def test_video_is_refused_with_port_zero_in_its_place(self):
        sdp = BARESIP.replace("m=audio", "m=video 10342 RTP/AVP 97\r\n"
                              "a=rtpmap:97 H264/90000\r\nm=audio")
        text, agreed = answer(parse(sdp), "198.51.100.7", 40000, "42")
        media = [line for line in lines(text) if line.startswith("m=")]
        self.assertEqual(media, ["m=video 0 RTP/AVP 97", "m=audio 40000 RTP/AVP 0 101"])
        self.assertEqual(agreed.index, 1)

    def test_a_stream_address_overrides_the_sessions(self):
        sdp = BARESIP.replace("a=ptime:20", "c=IN IP4 203.0.113.5\r\na=ptime:20")
        self.assertEqual(answer(parse(sdp), "198.51.100.7", 40000, "42")[1].address,
                         "203.0.113.5")

    def test_ipv6(self):
        sdp = BARESIP.replace("IN IP4 192.0.2.20", "IN IP6 2001:db8::20")
        text, agreed = answer(parse(sdp), "2001:db8::7", 40000, "42")
        self.assertEqual(agreed.address, "2001:db8::20")
        self.assertIn("c=IN IP6 2001:db8::7", lines(text))


class TestOfferAndAccepted(unittest.TestCase):
    def test_our_offer_and_the_answer_to_it(self):
        ours = parse(offer("198.51.100.7", 40000, "77"))
        self.assertEqual(ours.media[0].formats, ["0", "8", "101"])
        self.assertEqual(ours.media[0].rtpmap()[101], ("telephone-event", 8000))
        text, _ = answer(ours, "192.0.2.20", 10340, "5")
        agreed = accepted(parse(text))
        self.assertEqual((agreed.codec, agreed.event_type, agreed.address, agreed.port,
                          agreed.direction), (PCMU, 101, "192.0.2.20", 10340, SENDRECV))

    def test_an_answer_that_refuses_the_stream(self):
        refused = offer("192.0.2.20", 0, "5")
        self.assertIsNone(accepted(parse(refused)))

    def test_an_answer_naming_a_codec_we_did_not_offer(self):
        sdp = BARESIP.replace("RTP/AVP 96 9 0 8 101", "RTP/AVP 9")
        self.assertIsNone(accepted(parse(sdp)))


class TestMalformed(unittest.TestCase):
    def test_what_is_not_sdp(self):
        for text in ("hello", "o=- 1 1 IN IP4 1.2.3.4\r\n", "v=1\r\no=- 1 1 IN IP4 h\r\n",
                     "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n",
                     "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 99999 RTP/AVP 0\r\n",
                     "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n", b"v=0\r\no=\xff\r\n"):
            with self.assertRaises(ParseError):
                parse(text)

    def test_a_bad_rtpmap_makes_the_stream_unusable_not_a_crash(self):
        sdp = BARESIP.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:zero PCMU/8000")
        self.assertIsNone(answer(parse(sdp), "198.51.100.7", 40000, "42"))

    def test_bare_lf_lines_are_read(self):
        _, agreed = answer(parse(BARESIP.replace("\r\n", "\n")), "198.51.100.7", 4000, "1")
        self.assertEqual(agreed.codec, PCMU)


if __name__ == "__main__":
    unittest.main()
