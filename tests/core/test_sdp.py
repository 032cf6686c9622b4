"""appliance/sip/sdp.py: SDP and offer/answer for G.711 calls and H.264 video, on offers
as phones send them."""

import unittest

from appliance.sip.errors import ParseError
from appliance.sip.sdp import (
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    INACTIVE,
    PCMA,
    PCMU,
    RECVONLY,
    SENDONLY,
    SENDRECV,
    Video,
    accepted,
    answer,
    layout_of,
    offer,
    parse,
    parse_crypto,
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

# A video phone's offer (Linphone-like): audio, then H.264 in mode 1 and mode 0, with
# feedback for every format.
VIDEO_PHONE = BARESIP + (
    "m=video 10342 RTP/AVP 97 98\r\n"
    "a=rtpmap:97 H264/90000\r\n"
    "a=fmtp:97 profile-level-id=42801F;packetization-mode=1\r\n"
    "a=rtpmap:98 H264/90000\r\n"
    "a=fmtp:98 profile-level-id=42801F\r\n"
    "a=rtcp-fb:* ccm fir\r\n"
    "a=rtcp-fb:97 nack pli\r\n"
    "a=rtcp-fb:97 goog-remb\r\n"
    "a=sendrecv\r\n"
)
CAMERA = Video("42c01e", "Z0LAHtkAoD2wEQAAAwABAAADAA8I8UKZIA==,aMuDyyA=")


def lines(text):
    return text.split("\r\n")


class TestAnswer(unittest.TestCase):
    def test_the_offerers_first_shared_codec_and_its_event_type(self):
        text, agreed, _ = answer(parse(BARESIP), "198.51.100.7", 40000, "42")
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
        _, agreed, _ = answer(parse(sdp), "198.51.100.7", 40000, "42")
        self.assertEqual((agreed.codec, agreed.payload_type, agreed.event_type),
                         (PCMA, 8, 96))

    def test_a_static_type_needs_no_rtpmap(self):
        sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n" \
              "m=audio 5004 RTP/AVP 0\r\n"
        _, agreed, _ = answer(parse(sdp), "198.51.100.7", 40000, "42")
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
            text, agreed, _ = answer(parse(sdp), "198.51.100.7", 40000, "42")
            self.assertEqual(agreed.direction, expected)
            self.assertIn("a=" + expected, lines(text))
        self.assertFalse(answer(parse(BARESIP.replace("a=sendrecv", "a=sendonly")),
                                "198.51.100.7", 40000, "42")[1].sending)

    def test_old_style_hold_with_a_zero_address(self):
        sdp = BARESIP.replace("c=IN IP4 192.0.2.20", "c=IN IP4 0.0.0.0")
        _, agreed, _ = answer(parse(sdp), "198.51.100.7", 40000, "42")
        self.assertEqual(agreed.direction, RECVONLY)

    def test_a_session_level_direction_applies_to_the_stream(self):
        sdp = BARESIP.replace("a=sendrecv\r\n", "").replace("t=0 0\r\n",
                                                            "t=0 0\r\na=sendonly\r\n")
        self.assertEqual(answer(parse(sdp), "198.51.100.7", 40000, "42")[1].direction,
                         RECVONLY)

    def test_video_is_refused_with_port_zero_in_its_place(self):
        sdp = BARESIP.replace("m=audio", "m=video 10342 RTP/AVP 97\r\n"
                              "a=rtpmap:97 H264/90000\r\nm=audio")
        text, agreed, _ = answer(parse(sdp), "198.51.100.7", 40000, "42")
        media = [line for line in lines(text) if line.startswith("m=")]
        self.assertEqual(media, ["m=video 0 RTP/AVP 97", "m=audio 40000 RTP/AVP 0 101"])
        self.assertEqual(agreed.index, 1)

    def test_a_stream_address_overrides_the_sessions(self):
        sdp = BARESIP.replace("a=ptime:20", "c=IN IP4 203.0.113.5\r\na=ptime:20")
        self.assertEqual(answer(parse(sdp), "198.51.100.7", 40000, "42")[1].address,
                         "203.0.113.5")

    def test_ipv6(self):
        sdp = BARESIP.replace("IN IP4 192.0.2.20", "IN IP6 2001:db8::20")
        text, agreed, _ = answer(parse(sdp), "2001:db8::7", 40000, "42")
        self.assertEqual(agreed.address, "2001:db8::20")
        self.assertIn("c=IN IP6 2001:db8::7", lines(text))


class TestOfferAndAccepted(unittest.TestCase):
    def test_our_offer_and_the_answer_to_it(self):
        ours = parse(offer("198.51.100.7", 40000, "77"))
        self.assertEqual(ours.media[0].formats, ["0", "8", "101"])
        self.assertEqual(ours.media[0].rtpmap()[101], ("telephone-event", 8000))
        text, _, _ = answer(ours, "192.0.2.20", 10340, "5")
        agreed = accepted(parse(text))
        self.assertEqual((agreed.codec, agreed.event_type, agreed.address, agreed.port,
                          agreed.direction), (PCMU, 101, "192.0.2.20", 10340, SENDRECV))

    def test_an_answer_that_refuses_the_stream(self):
        refused = offer("192.0.2.20", 0, "5")
        self.assertIsNone(accepted(parse(refused)))

    def test_an_answer_naming_a_codec_we_did_not_offer(self):
        sdp = BARESIP.replace("RTP/AVP 96 9 0 8 101", "RTP/AVP 9")
        self.assertIsNone(accepted(parse(sdp)))


def h264_offer(*profiles):
    """A video offer of H.264 in mode 1 with these profile-level-ids, payload 96 up."""
    text = ("v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n"
            "m=video 10342 RTP/AVP %s\r\n" % " ".join(str(96 + n) for n in range(len(profiles))))
    for n, profile in enumerate(profiles):
        text += ("a=rtpmap:%d H264/90000\r\na=fmtp:%d profile-level-id=%s;"
                 "packetization-mode=1\r\n" % (96 + n, 96 + n, profile))
    return parse(text + "a=recvonly\r\n")


class TestVideoProfiles(unittest.TestCase):
    """RFC 6184 sections 8.1 and 8.2.2: we send Constrained Baseline."""

    def picked(self, *profiles):
        made = answer(h264_offer(*profiles), "198.51.100.7", None, "42", video=(40002, CAMERA))
        return None if made is None else made[2].payload_type

    def test_constrained_baseline_is_taken_before_the_others(self):
        self.assertEqual(self.picked("640c1f", "4d001f", "42e01f"), 98)
        self.assertEqual(self.picked("64001f", "4de01f"), 97)  # Main with set0: CB too
        self.assertEqual(self.picked("4d401f", "64001f"), 96)  # Main (set1 alone)
        self.assertEqual(self.picked("42001f", "58c01e"), 97)  # Extended with set0 and set1

    def test_a_profile_whose_decoders_decode_it_will_do(self):
        self.assertEqual(self.picked("64001f"), 96)  # High
        self.assertEqual(self.picked("42801f"), 96)  # Baseline (as baresip offers it)

    def test_intra_only_profiles_are_refused(self):
        self.assertIsNone(self.picked("f4101f"))  # High 4:4:4 Intra
        self.assertIsNone(self.picked("2c001f"))  # CAVLC 4:4:4 Intra
        self.assertEqual(self.picked("f4101f", "64001f"), 97)


class TestReoffer(unittest.TestCase):
    """RFC 3264 section 8: a new offer in a session keeps the m= lines, in their order."""

    def kinds(self, text):
        return [(m.kind, m.port != 0) for m in parse(text).media]

    def test_a_camera_reoffers_the_refused_audio_before_its_video(self):
        offered = parse(VIDEO_PHONE)
        _, audio, video = answer(offered, "198.51.100.7", None, "42", video=(40002, CAMERA))
        layout = layout_of(offered, audio, video)
        again = offer("198.51.100.7", None, "42", 2, video=(40002, CAMERA), layout=layout)
        self.assertEqual(self.kinds(again), [("audio", False), ("video", True)])
        self.assertEqual(lines(again)[5], "m=audio 0 RTP/AVP 96 9 0 8 101")

    def test_the_phones_order_is_kept_video_first(self):
        video_first = VIDEO_PHONE[VIDEO_PHONE.index("m=video"):]
        offered = parse(BARESIP[:BARESIP.index("m=audio")] + video_first
                        + BARESIP[BARESIP.index("m=audio"):])
        _, audio, video = answer(offered, "198.51.100.7", 40000, "42", video=(40002, CAMERA))
        again = offer("198.51.100.7", 40000, "42", 2, video=(40002, CAMERA),
                      layout=layout_of(offered, audio, video))
        self.assertEqual(self.kinds(again), [("video", True), ("audio", True)])

    def test_a_stream_refused_by_the_answer_may_be_offered_again_in_its_line(self):
        ours = parse(offer("198.51.100.7", 40000, "42"))
        refused = parse(answer(ours, "192.0.2.20", 10340, "5")[0].replace(
            "m=audio 10340", "m=audio 0"))
        layout = layout_of(refused, accepted(refused), None)
        self.assertEqual(self.kinds(offer("198.51.100.7", 40000, "42", 2, layout=layout)),
                         [("audio", True)])

    def test_lines_no_stream_of_ours_takes_stay_refused_and_a_new_stream_goes_last(self):
        offered = parse(BARESIP + "m=text 4000 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n")
        _, audio, _ = answer(offered, "198.51.100.7", 40000, "42")
        again = offer("198.51.100.7", 40000, "42", 2, video=(40002, CAMERA),
                      layout=layout_of(offered, audio, None))
        self.assertEqual(self.kinds(again), [("audio", True), ("text", False),
                                             ("video", True)])


class TestVideo(unittest.TestCase):
    def test_a_video_call_gets_audio_and_our_h264_sendonly(self):
        text, audio, video = answer(parse(VIDEO_PHONE), "198.51.100.7", 40000, "42",
                                    video=(40002, CAMERA))
        self.assertEqual(audio.codec, PCMU)
        self.assertEqual((video.kind, video.codec, video.payload_type, video.address,
                          video.port, video.direction, video.index),
                         ("video", "H264", 97, "192.0.2.20", 10342, SENDONLY, 1))
        self.assertFalse(video.receiving)
        self.assertEqual(video.feedback, ("ccm fir", "nack pli"))
        got = lines(text)
        self.assertEqual([line for line in got if line.startswith("m=")],
                         ["m=audio 40000 RTP/AVP 0 101", "m=video 40002 RTP/AVP 97"])
        self.assertIn("a=rtpmap:97 H264/90000", got)
        self.assertIn("a=fmtp:97 packetization-mode=1;profile-level-id=42c01e;"
                      "sprop-parameter-sets=" + CAMERA.sprop, got)
        self.assertEqual([line for line in got if line][-1], "a=sendonly")

    def test_mode_0_only_is_refused_and_audio_goes_on(self):
        offer_text = VIDEO_PHONE.replace("RTP/AVP 97 98", "RTP/AVP 98")
        text, audio, video = answer(parse(offer_text), "198.51.100.7", 40000, "42",
                                    video=(40002, CAMERA))
        self.assertIsNone(video)
        self.assertIn("m=video 0 RTP/AVP 98", lines(text))
        self.assertEqual(audio.codec, PCMU)

    def test_without_a_camera_video_is_refused(self):
        text, _, video = answer(parse(VIDEO_PHONE), "198.51.100.7", 40000, "42")
        self.assertIsNone(video)
        self.assertIn("m=video 0 RTP/AVP 97 98", lines(text))

    def test_a_camera_alone_refuses_the_audio(self):
        text, audio, video = answer(parse(VIDEO_PHONE), "198.51.100.7", None, "42",
                                    video=(40002, CAMERA))
        self.assertIsNone(audio)
        self.assertEqual(video.port, 10342)
        self.assertEqual([line for line in lines(text) if line.startswith("m=")],
                         ["m=audio 0 RTP/AVP 96 9 0 8 101", "m=video 40002 RTP/AVP 97"])
        audio_only = BARESIP
        self.assertIsNone(answer(parse(audio_only), "198.51.100.7", None, "42",
                                 video=(40002, CAMERA)))

    def test_a_phone_that_only_sends_video_gets_inactive(self):
        for offered, expected in ((SENDONLY, INACTIVE), (RECVONLY, SENDONLY),
                                  (INACTIVE, INACTIVE)):
            offer_text = VIDEO_PHONE[:VIDEO_PHONE.index("m=video")] + VIDEO_PHONE[
                VIDEO_PHONE.index("m=video"):].replace("a=sendrecv", "a=" + offered)
            video = answer(parse(offer_text), "198.51.100.7", 40000, "42",
                           video=(40002, CAMERA))[2]
            self.assertEqual(video.direction, expected)

    def test_our_video_offer_and_the_answer_to_it(self):
        ours = parse(offer("198.51.100.7", 40000, "77", video=(40002, CAMERA)))
        video = ours.media[1]
        self.assertEqual((video.kind, video.formats, video.direction),
                         ("video", ["96"], SENDONLY))
        self.assertEqual(video.fmtp(96)["profile-level-id"], "42c01e")
        # The phone's answer: recvonly video at its port, with PLI.
        text = ("v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\n"
                "t=0 0\r\nm=audio 10340 RTP/AVP 0\r\na=sendrecv\r\n"
                "m=video 10342 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                "a=fmtp:96 packetization-mode=1\r\na=rtcp-fb:96 nack pli\r\n"
                "a=recvonly\r\n")
        agreed = accepted(parse(text), "video")
        self.assertEqual((agreed.payload_type, agreed.port, agreed.direction,
                          agreed.feedback), (96, 10342, SENDONLY, ("nack pli",)))
        self.assertEqual(accepted(parse(text)).codec, PCMU)
        self.assertIsNone(accepted(parse(text.replace("m=video 10342", "m=video 0")),
                                   "video"))

    def test_a_video_only_offer_of_ours(self):
        ours = parse(offer("198.51.100.7", None, "77", video=(40002, CAMERA)))
        self.assertEqual([m.kind for m in ours.media], ["video"])


# SDES keys (RFC 4568): the base64 of a 30-byte master key and salt.
THEIR_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
OUR_KEY = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB"

# As baresip sends it with `mediaenc=srtp-mand`, and a suite we do not take listed first.
SAVP = BARESIP.replace("RTP/AVP", "RTP/SAVP").replace(
    "a=sendrecv\r\n", "a=sendrecv\r\n"
    "a=crypto:1 AEAD_AES_256_GCM inline:" + THEIR_KEY + "AAAAAAAAAAAAAAAA\r\n"
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + THEIR_KEY + "\r\n"
    "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:" + THEIR_KEY + "\r\n")


def crypto_lines(text):
    return [line for line in lines(text) if line.startswith("a=crypto:")]


class TestSrtp(unittest.TestCase):
    def test_a_savp_offer_is_answered_with_our_key_and_its_tag_and_suite(self):
        text, agreed, _ = answer(parse(SAVP), "198.51.100.7", 40000, "42", srtp_key=OUR_KEY)
        self.assertIn("m=audio 40000 RTP/SAVP 0 101", lines(text))
        self.assertEqual(crypto_lines(text),
                         ["a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + OUR_KEY])
        self.assertEqual((agreed.suite, agreed.crypto.tag, agreed.crypto.key,
                          agreed.local_key),
                         (AES_CM_128_HMAC_SHA1_80, 2, THEIR_KEY, OUR_KEY))
        self.assertEqual(agreed.codec, PCMU)
        # Keys stay out of logs (no assertNotIn on MicroPython).
        self.assertFalse(OUR_KEY in repr(agreed) or THEIR_KEY in repr(agreed.crypto))

    def test_savpf_and_the_32_bit_tag(self):
        offered = SAVP.replace("RTP/SAVP", "RTP/SAVPF").replace(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + THEIR_KEY + "\r\n", "")
        text, agreed, _ = answer(parse(offered), "198.51.100.7", 40000, "42",
                                 srtp_key=OUR_KEY)
        self.assertIn("m=audio 40000 RTP/SAVPF 0 101", lines(text))
        self.assertEqual(crypto_lines(text),
                         ["a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:" + OUR_KEY])
        self.assertEqual(agreed.suite, AES_CM_128_HMAC_SHA1_32)

    def test_savp_without_a_suite_we_take_is_refused(self):
        only_gcm = SAVP.replace("a=crypto:2", "a=x-crypto:2").replace("a=crypto:3",
                                                                        "a=x-crypto:3")
        self.assertIsNone(answer(parse(only_gcm), "198.51.100.7", 40000, "42",
                                 srtp_key=OUR_KEY))
        # Nor without a key of ours (no pylibsrtp), whatever the suites.
        self.assertIsNone(answer(parse(SAVP), "198.51.100.7", 40000, "42"))
        # Beside a video stream that is taken, the audio gets port 0.
        with_video = only_gcm + VIDEO_PHONE[VIDEO_PHONE.index("m=video"):]
        text, audio, video = answer(parse(with_video), "198.51.100.7", 40000, "42",
                                    video=(40002, CAMERA), srtp_key=OUR_KEY)
        self.assertIsNone(audio)
        self.assertEqual(video.port, 10342)
        self.assertIn("m=audio 0 RTP/SAVP 96 9 0 8 101", lines(text))
        self.assertEqual(crypto_lines(text), [])

    def test_lines_we_cannot_key_are_passed_over(self):
        for line in ("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:%s|2^20|1:4" % THEIR_KEY,
                     "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:%s UNENCRYPTED_SRTP"
                     % THEIR_KEY,
                     "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:%s" % THEIR_KEY[:-4],
                     "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:%s" % THEIR_KEY.replace(
                         "A", "*"),
                     "a=crypto:2 AES_CM_128_HMAC_SHA1_80 sdes:%s" % THEIR_KEY,
                     "a=crypto:two AES_CM_128_HMAC_SHA1_80 inline:%s" % THEIR_KEY):
            offered = SAVP.replace("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + THEIR_KEY,
                                   line)
            _, agreed, _ = answer(parse(offered), "198.51.100.7", 40000, "42",
                                  srtp_key=OUR_KEY)
            self.assertEqual((agreed.crypto.tag, agreed.suite),
                             (3, AES_CM_128_HMAC_SHA1_32), line)
        # A lifetime, the window size hint and a zero key derivation rate are fine.
        offered = SAVP.replace("inline:%s\r\na=crypto:3" % THEIR_KEY,
                               "inline:%s|2^31 KDR=0 WSH=128\r\na=crypto:3" % THEIR_KEY)
        _, agreed, _ = answer(parse(offered), "198.51.100.7", 40000, "42", srtp_key=OUR_KEY)
        self.assertEqual(agreed.crypto.tag, 2)

    def test_rtp_avp_with_crypto_is_answered_with_crypto_when_we_can(self):
        best_effort = SAVP.replace("RTP/SAVP", "RTP/AVP")
        text, agreed, _ = answer(parse(best_effort), "198.51.100.7", 40000, "42",
                                 srtp_key=OUR_KEY)
        self.assertIn("m=audio 40000 RTP/AVP 0 101", lines(text))
        self.assertEqual(crypto_lines(text),
                         ["a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + OUR_KEY])
        self.assertEqual(agreed.suite, AES_CM_128_HMAC_SHA1_80)
        # Without a key of ours: in the clear, which that offer allows.
        text, agreed, _ = answer(parse(best_effort), "198.51.100.7", 40000, "42")
        self.assertIn("m=audio 40000 RTP/AVP 0 101", lines(text))
        self.assertEqual((crypto_lines(text), agreed.crypto, agreed.local_key),
                         ([], None, None))

    def test_a_plain_offer_gets_no_crypto(self):
        text, agreed, _ = answer(parse(BARESIP), "198.51.100.7", 40000, "42",
                                 srtp_key=OUR_KEY)
        self.assertEqual(crypto_lines(text), [])
        self.assertIn("m=audio 40000 RTP/AVP 0 101", lines(text))
        self.assertEqual((agreed.crypto, agreed.local_key, agreed.suite), (None, None, None))

    def test_video_stays_plain(self):
        secure_video = SAVP + VIDEO_PHONE[VIDEO_PHONE.index("m=video"):].replace(
            "RTP/AVP", "RTP/SAVP").replace("a=sendrecv\r\n", "a=sendrecv\r\n"
                                            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
                                            + THEIR_KEY + "\r\n")
        text, audio, video = answer(parse(secure_video), "198.51.100.7", 40000, "42",
                                    video=(40002, CAMERA), srtp_key=OUR_KEY)
        self.assertEqual(audio.suite, AES_CM_128_HMAC_SHA1_80)
        self.assertIsNone(video)
        self.assertIn("m=video 0 RTP/SAVP 97 98", lines(text))
        self.assertEqual(len(crypto_lines(text)), 1)

    def test_a_key_of_ours_that_is_not_one_is_misuse(self):
        with self.assertRaises(ValueError):
            answer(parse(SAVP), "198.51.100.7", 40000, "42", srtp_key="short")

    def test_our_srtp_offer_and_the_answer_to_it(self):
        ours = offer("198.51.100.7", 40000, "77", version=3,
                     crypto=(AES_CM_128_HMAC_SHA1_80, OUR_KEY))
        self.assertIn("m=audio 40000 RTP/SAVP 0 8 101", lines(ours))
        self.assertEqual(crypto_lines(ours),
                         ["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + OUR_KEY])
        text, _, _ = answer(parse(ours), "192.0.2.20", 10340, "5", srtp_key=THEIR_KEY)
        agreed = accepted(parse(text), crypto=(AES_CM_128_HMAC_SHA1_80, OUR_KEY))
        self.assertEqual((agreed.suite, agreed.crypto.key, agreed.local_key),
                         (AES_CM_128_HMAC_SHA1_80, THEIR_KEY, OUR_KEY))
        # An answer that leaves the crypto out refuses the SRTP we offered.
        plain = text.replace(crypto_lines(text)[0] + "\r\n", "")
        self.assertIsNone(accepted(parse(plain), crypto=(AES_CM_128_HMAC_SHA1_80, OUR_KEY)))
        self.assertIsNone(accepted(parse(text), crypto=(AES_CM_128_HMAC_SHA1_32, OUR_KEY)))

    def test_crypto_lines_round_trip(self):
        value = "7 AES_CM_128_HMAC_SHA1_32 inline:%s|2^20|1:4 WSH=64" % THEIR_KEY
        crypto = parse_crypto(value)
        self.assertEqual((crypto.tag, crypto.suite, crypto.key, crypto.lifetime, crypto.mki,
                          crypto.params),
                         (7, AES_CM_128_HMAC_SHA1_32, THEIR_KEY, "2^20", "1:4", ("WSH=64",)))
        self.assertEqual(str(crypto), value)
        self.assertFalse(crypto.usable())  # an MKI
        for bad in ("", "1 AES_CM_128_HMAC_SHA1_80", "x AES_CM_128_HMAC_SHA1_80 inline:k",
                    "1 AES_CM_128_HMAC_SHA1_80 inline:", "1 AES_CM_128_HMAC_SHA1_80 k",
                    "1 AES_CM_128_HMAC_SHA1_80 inline:a|b|c|d",
                    "1 AES_CM_128_HMAC_SHA1_80 inline:%s;inline:%s" % (THEIR_KEY, OUR_KEY)):
            with self.assertRaises(ParseError):
                parse_crypto(bad)


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
        _, agreed, _ = answer(parse(BARESIP.replace("\r\n", "\n")), "198.51.100.7", 4000, "1")
        self.assertEqual(agreed.codec, PCMU)


if __name__ == "__main__":
    unittest.main()
