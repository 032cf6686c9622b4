"""SRTP calls to the intercom (appliance/media/srtp.py, session.py): a phone offers RTP/SAVP
with its SDES key, and the two sides talk SRTP and SRTCP over loopback. The phone's side is
pylibsrtp used directly here, not the agent's glue under test."""

import asyncio
import base64
import contextlib
import logging
import os
import socket
import struct

import pylibsrtp  # the `test` extra installs it: missing, these tests fail, never skip

from appliance.media import rtcp
from appliance.media import srtp as srtp_module
from appliance.media.dtmf import event_payloads
from appliance.media.session import MediaSession
from appliance.sip import sdp

from .support import run, wait_until
from .test_calls import home, phone, port, strike, uri

SUITE_80 = sdp.AES_CM_128_HMAC_SHA1_80
SUITE_32 = sdp.AES_CM_128_HMAC_SHA1_32
PROFILES = {SUITE_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
            SUITE_32: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32}
SSRC = 0x5EC12E7


def key():
    return base64.b64encode(os.urandom(30)).decode()


def session(suite, text, direction):
    return pylibsrtp.Session(pylibsrtp.Policy(
        key=base64.b64decode(text), ssrc_type=direction, srtp_profile=PROFILES[suite]))


class SecurePhone:
    """The media side of an SRTP phone: RTP and RTCP on an even port pair, our key for what
    we send, the agent's (from its answer) for what it sends."""

    def __init__(self, suite=SUITE_80):
        self.rtp, self.rtcp = _pair()
        self.rtp_port = self.rtp.getsockname()[1]
        self.suite = suite
        self.key = key()
        self.out = session(suite, self.key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self.inbound = None
        self.agent_key = None
        self.remote = None
        self.sequence = 0
        self.timestamp = 0

    def offer(self, version=1, suite=None, proto="RTP/SAVP"):
        text = sdp.offer("127.0.0.1", self.rtp_port, "77", version=version,
                         crypto=(suite or self.suite, self.key))
        return text.replace("RTP/SAVP", proto)

    def answered(self, body):
        """Take the agent's answer: its a=crypto must answer ours (tag 1, our suite)."""
        agreed = sdp.accepted(sdp.parse(body), crypto=(self.suite, self.key))
        assert agreed is not None and agreed.crypto is not None, body
        if agreed.crypto.key != self.agent_key:
            self.agent_key = agreed.crypto.key
            self.inbound = session(self.suite, self.agent_key,
                                   pylibsrtp.Policy.SSRC_ANY_INBOUND)
        self.remote = (agreed.address, agreed.port)
        return agreed

    def rekey(self, suite=None):
        self.suite = suite or self.suite
        self.key = key()
        self.out = session(self.suite, self.key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)

    def packet(self, payload_type=0, payload=b"\xff" * 160, marker=False, timestamp=None):
        self.sequence += 1
        if timestamp is None:
            self.timestamp += 160
        return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type,
                           self.sequence, self.timestamp if timestamp is None else timestamp,
                           SSRC) + payload

    async def send(self, count, protect=True, interval=0.02):
        for _ in range(count):
            packet = self.packet()
            self.rtp.sendto(self.out.protect(packet) if protect else packet, self.remote)
            await asyncio.sleep(interval)

    async def send_digits(self, digits, protect=True):
        for digit in digits:
            self.timestamp += 800
            for payload, marker in event_payloads(digit):
                packet = self.packet(101, payload, marker, self.timestamp)
                self.rtp.sendto(self.out.protect(packet) if protect else packet, self.remote)
                await asyncio.sleep(0.005)

    def received(self):
        """The agent's RTP since the last call: (raw, decrypted or None) each."""
        out = []
        while True:
            try:
                data, _ = self.rtp.recvfrom(2048)
            except BlockingIOError:
                return out
            try:
                out.append((data, self.inbound.unprotect(data)))
            except pylibsrtp.Error:
                out.append((data, None))

    def received_rtcp(self):
        out = []
        while True:
            try:
                data, _ = self.rtcp.recvfrom(2048)
            except BlockingIOError:
                return out
            out.append(self.inbound.unprotect_rtcp(data))

    def close(self):
        self.rtp.close()
        self.rtcp.close()


def _pair():
    """Two UDP sockets on 127.0.0.1: RTP on an even port, RTCP on the next."""
    for _ in range(100):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        number = rtp.getsockname()[1]
        if number % 2:
            rtp.close()
            continue
        rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp_sock.bind(("127.0.0.1", number + 1))
        except OSError:
            rtp.close()
            rtcp_sock.close()
            continue
        rtp.setblocking(False)
        rtcp_sock.setblocking(False)
        return rtp, rtcp_sock
    raise RuntimeError("no free port pair")


@contextlib.contextmanager
def secure_phone(suite=SUITE_80):
    media = SecurePhone(suite)
    try:
        yield media
    finally:
        media.close()


def media_status(agent):
    return agent.status()["calls"][0]["media"]


async def reinvite(alice, text):
    response = await alice.in_dialog("INVITE", body=text.encode(),
                                     fields=[("Content-Type", "application/sdp")])
    await alice.ack()
    return response


def test_an_srtp_call_talks_srtp_both_ways_and_its_digits_open_the_door(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            with secure_phone() as media:
                response = await alice.call(uri(agent), port(agent), body=media.offer())
                assert response.status == 200
                agreed = media.answered(response.body)
                assert (agreed.codec, agreed.event_type, agreed.suite) == ("PCMU", 101, SUITE_80)
                assert agreed.crypto.key != media.key  # the agent's own key
                assert b"m=audio %d RTP/SAVP 0 101" % agreed.port in response.body
                assert media_status(agent)["srtp"] == SUITE_80
                # What the agent sends decrypts with its key, and is not in the clear.
                await asyncio.sleep(0.4)
                packets = media.received()
                assert len(packets) >= 10
                for raw, plain in packets:
                    assert plain is not None and len(raw) == len(plain) + 10  # the 80-bit tag
                    assert plain[1] & 0x7F == 0 and plain[12:] == b"\xff" * 160  # silence
                    assert raw[12:172] != plain[12:]
                # What the phone sends is taken: audio, then the door code as events.
                await media.send(10)
                # (RTP statistics count a new source from its second packet: RFC 3550 A.1)
                assert await wait_until(lambda: media_status(agent)["received"] >= 9)
                await media.send_digits("1234#")
                assert await wait_until(lambda: strike(agent) == 1)
                assert media_status(agent)["srtp_failed"] == 0
                # The phone's SRTCP is taken; the agent's BYE comes protected.
                report = rtcp.build_rr(SSRC, cname="phone@127.0.0.1")
                media.rtcp.sendto(media.out.protect_rtcp(report),
                                  (media.remote[0], media.remote[1] + 1))
                await asyncio.sleep(0.1)
                assert media_status(agent)["srtp_failed"] == 0
                media.received_rtcp()
                assert (await alice.in_dialog("BYE")).status == 200
                await asyncio.sleep(0.1)
                kinds = [packet.kind for data in media.received_rtcp()
                         for packet in rtcp.parse_rtcp(data)]
                assert "BYE" in kinds, kinds

    run(body())


def test_forged_and_plain_packets_are_dropped_and_counted(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            with secure_phone() as media:
                response = await alice.call(uri(agent), port(agent), body=media.offer())
                media.answered(response.body)
                await media.send(5)
                assert await wait_until(lambda: media_status(agent)["received"] == 4)
                # A bad authentication tag.
                forged = bytearray(media.out.protect(media.packet()))
                forged[-1] ^= 0x01
                media.rtp.sendto(bytes(forged), media.remote)
                # Plain RTP, audio and the door code, from the phone's own address.
                await media.send(3, protect=False)
                await media.send_digits("1234#", protect=False)
                # A forged RTCP report.
                report = bytearray(media.out.protect_rtcp(rtcp.build_rr(SSRC)))
                report[-1] ^= 0x01
                media.rtcp.sendto(bytes(report), (media.remote[0], media.remote[1] + 1))
                assert await wait_until(lambda: media_status(agent)["srtp_failed"] >= 1 + 3 + 1)
                await asyncio.sleep(0.1)
                status = media_status(agent)
                events = 5 * len(event_payloads("1"))
                assert status["srtp_failed"] == 1 + 3 + events + 1, status
                assert status["received"] == 4  # none of them taken
                assert strike(agent) == 0
                # A replayed packet is refused too; the real stream goes on.
                packet = media.out.protect(media.packet())
                media.rtp.sendto(packet, media.remote)
                media.rtp.sendto(packet, media.remote)
                await media.send(2)
                assert await wait_until(lambda: media_status(agent)["received"] == 7)
                assert media_status(agent)["srtp_failed"] == status["srtp_failed"] + 1
            await alice.in_dialog("BYE")

    run(body())


def test_a_reinvite_rekeys_and_a_plain_one_ends_srtp(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            with secure_phone() as media:
                response = await alice.call(uri(agent), port(agent), body=media.offer())
                first = media.answered(response.body).crypto.key
                await media.send(3)
                # The phone takes a new key: the agent keeps its own, and follows.
                media.rekey()
                response = await reinvite(alice, media.offer(version=2))
                assert response.status == 200
                assert media.answered(response.body).crypto.key == first
                await media.send(3)
                assert await wait_until(lambda: media_status(agent)["received"] == 5)
                # Another suite: the agent's key changes too.
                media.rekey(SUITE_32)
                response = await reinvite(alice, media.offer(version=3))
                agreed = media.answered(response.body)
                assert (agreed.suite, agreed.crypto.tag) == (SUITE_32, 1)
                assert agreed.crypto.key != first
                assert media_status(agent)["srtp"] == SUITE_32
                await media.send(3)
                assert await wait_until(lambda: media_status(agent)["received"] == 8)
                await asyncio.sleep(0.1)
                media.received()
                await asyncio.sleep(0.2)
                packets = media.received()
                assert packets and all(plain is not None and len(raw) == len(plain) + 4
                                       for raw, plain in packets)  # the 32-bit tag
                assert media_status(agent)["srtp_failed"] == 0
                # A plain offer: plain RTP from then on.
                plain = sdp.offer("127.0.0.1", media.rtp_port, "77", version=4)
                response = await reinvite(alice, plain)
                assert b"a=crypto" not in response.body
                assert "srtp" not in media_status(agent)
                await media.send(3, protect=False)
                assert await wait_until(lambda: media_status(agent)["received"] == 11)
            await alice.in_dialog("BYE")

    run(body())


def test_a_reinvite_without_an_offer_gets_srtp_offered_with_the_keys_in_use(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            with secure_phone() as media:
                response = await alice.call(uri(agent), port(agent), body=media.offer())
                agent_key = media.answered(response.body).crypto.key
                await media.send(3)
                response = await alice.in_dialog("INVITE")
                assert response.status == 200
                offered = sdp.parse(response.body)
                assert offered.media[0].proto == "RTP/SAVP"
                [crypto] = offered.media[0].crypto()
                assert (crypto.tag, crypto.suite, crypto.key) == (1, SUITE_80, agent_key)
                # The phone answers in the ACK, with a new key of its own.
                media.rekey()
                text, _, _ = sdp.answer(offered, "127.0.0.1", media.rtp_port, "77",
                                        version=2, srtp_key=media.key)
                await alice.ack(text.encode())
                await asyncio.sleep(0.1)
                await media.send(3)
                assert await wait_until(lambda: media_status(agent)["received"] == 5)
                assert media_status(agent)["srtp"] == SUITE_80
                assert media_status(agent)["srtp_failed"] == 0
                media.received()
                await asyncio.sleep(0.2)
                packets = media.received()  # still with the agent's key, not restarted
                assert packets and all(plain is not None for _, plain in packets)
            await alice.in_dialog("BYE")

    run(body())


def test_rtp_avp_with_crypto_gets_srtp_and_a_savp_video_is_refused(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            with secure_phone() as media:
                offered = media.offer(proto="RTP/AVP") + (
                    "m=video 9000 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n"
                    "a=fmtp:96 packetization-mode=1\r\n"
                    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s\r\n" % key())
                response = await alice.call(uri(agent), port(agent), body=offered)
                assert response.status == 200
                assert b"RTP/AVP 0 101" in response.body
                assert b"m=video 0 RTP/SAVP 96" in response.body
                media.answered(response.body)
                await media.send(3)
                assert await wait_until(lambda: media_status(agent)["received"] == 2)
                assert media_status(agent)["srtp"] == SUITE_80
            await alice.in_dialog("BYE")

    run(body())


def test_without_pylibsrtp_srtp_is_refused_and_the_log_says_what_to_install(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(srtp_module, "pylibsrtp", None)  # as when the import failed
    caplog.set_level(logging.WARNING, logger="appliance")

    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            with secure_phone() as media:
                response = await alice.call(uri(agent), port(agent), body=media.offer())
                assert response.status == 488
                assert "RTP/AVP only" in response.get("warning")
                # An offer that allows the clear gets the clear.
                response = await alice.call(uri(agent), port(agent),
                                            body=media.offer(proto="RTP/AVP"))
                assert response.status == 200
                assert b"a=crypto" not in response.body
                assert "srtp" not in media_status(agent)
            await alice.in_dialog("BYE")

    run(body())
    messages = [record.getMessage() for record in caplog.records]
    hint = "pip install 'sip-appliance[srtp]'"
    assert any("refused (488)" in m and hint in m for m in messages), messages
    assert any("goes in the clear" in m and hint in m for m in messages), messages


def test_an_offer_over_tls_keys_srtp_and_one_over_plain_sip_does_not(monkeypatch, caplog):
    async def body():
        media = MediaSession(asyncio.get_running_loop(), "null")
        await media.open("127.0.0.1")
        try:
            plain = sdp.parse(media.offer("c1", 1)).media[0]
            assert (plain.proto, plain.crypto()) == ("RTP/AVP", [])
            secure = sdp.parse(media.offer("c1", 2, secure=True)).media[0]
            [crypto] = secure.crypto()
            assert (secure.proto, crypto.tag, crypto.suite) == ("RTP/SAVP", 1, SUITE_80)
            again = sdp.parse(media.offer("c1", 3, secure=True)).media[0]
            assert again.crypto()[0].key == crypto.key  # one key of ours per session
            # The phone answers with a key of its own: the audio is SRTP both ways.
            with secure_phone() as phone_media:
                text, _, _ = sdp.answer(sdp.parse(media.offer("c1", 4, secure=True)),
                                        "127.0.0.1", phone_media.rtp_port, "77",
                                        srtp_key=phone_media.key)
                assert media.accept(sdp.parse(text)).crypto.key == phone_media.key
                assert media.srtp is not None and media.srtp.suite == SUITE_80
            # Without pylibsrtp, a secure offer is plain, and the log says what to install.
            monkeypatch.setattr(srtp_module, "pylibsrtp", None)
            fresh = MediaSession(asyncio.get_running_loop(), "null")
            await fresh.open("127.0.0.1")
            try:
                assert sdp.parse(fresh.offer("c2", 1, secure=True)).media[0].proto == \
                    "RTP/AVP"
            finally:
                fresh.close()
        finally:
            media.close()

    caplog.set_level(logging.WARNING, logger="appliance")
    run(body())
    assert any("offering plain RTP over TLS" in r.getMessage()
               and "pip install 'sip-appliance[srtp]'" in r.getMessage()
               for r in caplog.records)
