"""Video calls to the camera and the video intercom, decoded by a real ffmpeg/ffprobe.

The agent runs the demo-like home below on loopback with ffmpeg's test picture as the
camera; the caller is tests/agent/phone.py with a video offer. What a user would notice:
the answer is a valid H.264 answer, a real decoder reading an SDP for the stream decodes
the pictures at the configured size, a keyframe comes when the phone asks (RTCP PLI, FIR,
SIP INFO), the encoder process is gone after BYE, a phone that stops sending RTCP is hung
up, a crashed encoder is started again and one that keeps crashing ends the camera's call
without taking the agent down, and a camera that is not there gets a clear 503."""

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import struct
import tempfile
import time
from pathlib import Path

import pytest

from appliance.config import load
from appliance.media import rtcp
from appliance.sip import sdp

from ..agent.phone import Phone
from ..agent.support import TEST_ENV, agent_from, run, wait_until
from .conftest import _start_agent, peer_unavailable

HOME = """
[agent]
name = "video-home"
simulate = {simulate}
listen = ["udp:127.0.0.1:0"]
control = "{{control}}"

[mdns]
enabled = false

[[users]]
name = "alice"
password = "alice-pw"
devices = ["camera", "intercom"]

[[devices]]
name = "camera"
type = "camera"
source = "{source}"
width = 320
height = 240
framerate = 15
keyframe_interval = 30
rtp_timeout = {rtp_timeout}

[[devices]]
name = "intercom"
type = "intercom"
audio = "null"
video = true
rtp_timeout = {rtp_timeout}
"""

PAYLOAD_TYPE = 97
WAIT = 10.0
FORGED = b"a picture not from the camera"


@pytest.fixture(autouse=True)
def ffmpeg():
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            peer_unavailable("%s (Debian `ffmpeg`)" % tool, "apt-get install ffmpeg")


def home(tmp_path, rtp_timeout=30, source="test", simulate="true"):
    return agent_from(tmp_path, HOME.format(rtp_timeout=rtp_timeout, source=source,
                                            simulate=simulate))


def agent_port(agent):
    return agent.stack.bound[0][2]


def video_offer(phone, port, audio=True, direction="recvonly"):
    """The phone's offer: its audio (or none), then H.264 mode 1 at `port`, with PLI."""
    text = sdp.offer("127.0.0.1", phone.rtp_port, "77") if audio else (
        "v=0\r\no=- 77 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n")
    return text + ("m=video %d RTP/AVP %d\r\na=rtpmap:%d H264/90000\r\n"
                   "a=fmtp:%d profile-level-id=42e01f;packetization-mode=1\r\n"
                   "a=rtcp-fb:%d nack pli\r\na=rtcp-fb:%d ccm fir\r\na=%s\r\n") % (
        port, PAYLOAD_TYPE, PAYLOAD_TYPE, PAYLOAD_TYPE, PAYLOAD_TYPE, PAYLOAD_TYPE, direction)


async def call(agent, alice, receiver, device="camera", **offer):
    """Alice's video call to `device`, the video to `receiver`: the final response."""
    port = agent_port(agent)
    return await alice.call("sip:%s@127.0.0.1:%d" % (device, port), port,
                            body=video_offer(alice, receiver.port, **offer))


@contextlib.asynccontextmanager
async def streaming(tmp_path, device="camera", audio=True, **home_options):
    """A home, Alice, and her video call to `device`, answered 200: (agent, alice, the
    receiver of the video, the 200)."""
    async with home(tmp_path, **home_options) as agent, phone() as alice:
        receiver = Receiver()
        try:
            response = await call(agent, alice, receiver, device, audio=audio)
            assert response.status == 200
            yield agent, alice, receiver, response
        finally:
            receiver.close()


def even_port():
    """A free even port whose odd neighbour is free too (RTP and RTCP)."""
    while True:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        if port % 2 == 0 and port < 65534:
            pair = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
            try:
                pair[0].bind(("127.0.0.1", port))
                pair[1].bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
            finally:
                for sock in pair:
                    sock.close()


@contextlib.asynccontextmanager
async def phone():
    device = Phone("alice", "alice-pw")
    try:
        yield device
    finally:
        device.close()


class Receiver:
    """The phone's video port pair: RTP in (which NAL units came), RTCP out (PLI, FIR)."""

    def __init__(self):
        self.port = even_port()
        self.rtp = _bound(self.port)
        self.rtcp = _bound(self.port + 1)
        self.ssrc = None
        self.payload_types = set()
        self.keyframes = 0  # packets starting a keyframe (SPS or the start of an IDR)
        self.packets = 0
        self.source = None
        self.forged = 0  # packets carrying FORGED: another program's, passed on

    def read(self):
        while True:
            try:
                data, source = self.rtp.recvfrom(2048)
            except BlockingIOError:
                return
            self.packets += 1
            self.forged += FORGED in data
            self.source = source
            self.payload_types.add(data[1] & 0x7F)
            self.ssrc = struct.unpack_from("!I", data, 8)[0]
            if _starts_keyframe(data[12:]):
                self.keyframes += 1

    async def keyframe_after(self, ask):
        """Read on; call `ask()`; True when a keyframe then starts within WAIT."""
        self.read()
        before = self.keyframes
        ask()
        return await wait_until(lambda: self.read() or self.keyframes > before, WAIT)

    def close(self):
        self.rtp.close()
        self.rtcp.close()


def _bound(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def _starts_keyframe(payload):
    """RFC 6184: an SPS (7) or IDR (5) NAL unit, alone, first in a STAP-A (24), or as the
    start fragment of an FU-A (28)."""
    kind = payload[0] & 0x1F
    if kind == 24:
        kind = payload[3] & 0x1F
    elif kind == 28:
        if not payload[1] & 0x80:
            return False
        kind = payload[1] & 0x1F
    return kind in (5, 7)


def answer_video(response):
    answer = sdp.parse(response.body)
    return answer, next(m for m in answer.media if m.kind == "video")


def encoder_pids(agent):
    """The encoder's processes, as `appliance status --json` shows them."""
    return agent.status()["devices"]["camera"]["encoder"]["pids"]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


async def decode(sdp_path, packets):
    """ffprobe reading the stream that `sdp_path` describes: (width, height, frames decoded
    in `packets` packets). It is started before the INVITE: it binds the port."""
    return await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i", str(sdp_path),
        "-select_streams", "v:0", "-count_frames", "-read_intervals", "%%+#%d" % packets,
        "-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def port_taken(port):
    def taken():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True
        finally:
            sock.close()
    return await wait_until(taken, WAIT)


def test_a_real_decoder_decodes_the_camera_at_the_configured_size(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            port = even_port()
            described = tmp_path / "stream.sdp"
            described.write_text(
                "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=camera\r\nc=IN IP4 127.0.0.1\r\n"
                "t=0 0\r\nm=video %d RTP/AVP %d\r\na=rtpmap:%d H264/90000\r\n"
                "a=fmtp:%d packetization-mode=1\r\n" % (port, PAYLOAD_TYPE, PAYLOAD_TYPE,
                                                        PAYLOAD_TYPE))
            probe = await decode(described, 45)
            try:
                assert await port_taken(port)
                response = await alice.call("sip:camera@127.0.0.1:%d" % agent_port(agent),
                                            agent_port(agent), body=video_offer(alice, port))
                assert response.status == 200
                answer, video = answer_video(response)
                # The audio it cannot send is refused; the video is ours, sendonly, on the
                # payload type the phone offered, in mode 1, with the encoder's profile.
                assert [m.port for m in answer.media if m.kind == "audio"] == [0]
                assert video.port != 0 and video.formats == [str(PAYLOAD_TYPE)]
                assert video.direction == "sendonly"
                assert video.rtpmap()[PAYLOAD_TYPE] == ("H264", 90000)
                fmtp = video.fmtp(PAYLOAD_TYPE)
                assert fmtp["packetization-mode"] == "1"
                sps = base64.b64decode(fmtp["sprop-parameter-sets"].split(",")[0])
                assert sps[0] & 0x1F == 7
                assert fmtp["profile-level-id"] == sps[1:4].hex()
                out, err = await asyncio.wait_for(probe.communicate(), 30)
            finally:
                if probe.returncode is None:
                    probe.kill()
                    await probe.wait()
            width, height, frames = out.decode().strip().split(",")[:3]
            assert (int(width), int(height)) == (320, 240), err
            assert int(frames) >= 30, err
            pids = encoder_pids(agent)
            assert pids and all(alive(pid) for pid in pids)
            assert agent.status()["devices"]["camera"]["state"] == "streaming"
            assert (await alice.in_dialog("BYE")).status == 200
            assert await wait_until(lambda: not any(alive(pid) for pid in pids), WAIT)
            assert agent.status()["devices"]["camera"]["state"] == "idle"

    run(body(), deadline=90)


def test_another_program_cannot_slip_pictures_into_a_call(tmp_path):
    # A program on the same machine that finds the agent's loopback feed socket and sends
    # first, before the encoder is up, must not become the camera.
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            receiver = Receiver()
            forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            forger.bind(("127.0.0.1", 0))
            try:
                calling = asyncio.ensure_future(call(agent, alice, receiver))
                cameras = agent.calls.cameras
                assert await wait_until(lambda: "camera" in cameras
                                        and cameras["camera"]._socket is not None, WAIT)
                feed = cameras["camera"]._socket.getsockname()[1]
                for sequence in range(400):  # keyframes (IDR) of its own, the camera's type
                    forger.sendto(struct.pack("!BBHII", 0x80, 0x80 | PAYLOAD_TYPE, sequence,
                                              sequence * 3000, 0x0BAD) + b"\x65" + FORGED,
                                  ("127.0.0.1", feed))
                    await asyncio.sleep(0.005)
                    receiver.read()
                assert (await calling).status == 200
                assert await wait_until(lambda: receiver.read() or receiver.packets > 20, WAIT)
                assert receiver.forged == 0  # the camera's own pictures, and only those
                await alice.in_dialog("BYE")
            finally:
                forger.close()
                receiver.close()

    run(body(), deadline=60)


def test_a_keyframe_comes_on_request_by_pli_fir_and_info(tmp_path):
    async def body():
        async with streaming(tmp_path) as (agent, alice, receiver, response):
            _, video = answer_video(response)
            rtcp_to = ("127.0.0.1", video.port + 1)
            assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
            assert receiver.payload_types == {PAYLOAD_TYPE}
            await asyncio.sleep(1.5)  # past the restart guard; periodic: every 30 s

            def pli():
                receiver.rtcp.sendto(rtcp.build_pli(0x1234, receiver.ssrc), rtcp_to)

            assert await receiver.keyframe_after(pli)
            await asyncio.sleep(1.5)

            def fir():
                receiver.rtcp.sendto(rtcp.build_fir(0x1234, receiver.ssrc, 1), rtcp_to)

            assert await receiver.keyframe_after(fir)
            await asyncio.sleep(1.5)
            sent = []

            def info():
                body = ('<?xml version="1.0" encoding="utf-8" ?><media_control><vc_primitive>'
                        '<to_encoder><picture_fast_update/></to_encoder></vc_primitive>'
                        '</media_control>')
                sent.append(asyncio.ensure_future(alice.in_dialog(
                    "INFO", body.encode(),
                    fields=(("Content-Type", "application/media_control+xml"),))))

            assert await receiver.keyframe_after(info)
            assert (await sent[0]).status == 200
            status = agent.status()["calls"][0]["media"]["video"]
            assert status["keyframes_asked"] == 3 and status["rtcp_received"] >= 2
            assert (await alice.in_dialog("BYE")).status == 200

    run(body(), deadline=90)


def test_a_phone_that_sends_no_rtcp_is_hung_up(tmp_path):
    async def body():
        async with streaming(tmp_path, rtp_timeout=2) as (agent, alice, receiver, _):
            assert await wait_until(lambda: receiver.read() or receiver.packets, WAIT)
            pids = encoder_pids(agent)
            bye, source = await alice.request(timeout=WAIT)
            assert bye.method == "BYE"
            await alice.respond(bye, source, 200, tag=None)
            assert agent.calls.history[-1]["reason"] == "no RTCP for 2 s"
            assert await wait_until(lambda: not any(alive(pid) for pid in pids), WAIT)

    run(body(), deadline=60)


def test_a_crashed_encoder_is_restarted_and_one_that_keeps_crashing_ends_the_call(tmp_path):
    async def body():
        async with streaming(tmp_path) as (agent, alice, receiver, _):
            camera = agent.calls.cameras["camera"]
            assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
            # Killed once: started again, and the pictures go on from a keyframe.
            (first,) = camera.pids
            os.kill(first, signal.SIGKILL)
            assert await wait_until(lambda: camera.pids and camera.pids != [first], WAIT)
            before = receiver.keyframes
            assert await wait_until(lambda: receiver.read() or receiver.keyframes > before,
                                    WAIT)
            assert agent.status()["calls"][0]["state"] == "answered"
            # Killed again, then as soon as it starts, three times (no picture between):
            # it gives up, and the camera's call ends.
            killed = []
            for _ in range(4):
                assert await wait_until(lambda last=killed: camera.pids
                                        and camera.pids != last, WAIT, interval=0.002)
                killed = camera.pids
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
            bye, source = await alice.request(timeout=WAIT)
            assert bye.method == "BYE"
            await alice.respond(bye, source, 200, tag=None)
            assert agent.calls.history[-1]["reason"].startswith("the camera stopped")
            assert camera.status()["encoder"] == "failed"
            # The agent serves on: OPTIONS, and a new call starts the camera again.
            assert await wait_until(lambda: agent.status()["devices"]["camera"]["state"]
                                    == "idle", WAIT)
            again = await call(agent, alice, receiver)
            assert again.status == 200
            assert await wait_until(lambda: bool(camera.pids), WAIT)
            assert (await alice.in_dialog("BYE")).status == 200

    run(body(), deadline=90)


def test_without_the_camera_its_calls_get_503_and_the_intercom_answers_audio_only(tmp_path):
    async def body():
        missing = "/dev/video-absent"
        async with home(tmp_path, source=missing, simulate="false") as agent, \
                phone() as alice:
            receiver = Receiver()
            try:
                response = await call(agent, alice, receiver)
                assert (response.status, response.reason) == (503, "Camera Unavailable")
                assert response.get("retry-after") == "30"
                assert "no such camera" in agent.calls.cameras["camera"].failure
                response = await call(agent, alice, receiver, "intercom")
                assert response.status == 200
                answer, video = answer_video(response)
                assert video.port == 0
                assert [m.port != 0 for m in answer.media if m.kind == "audio"] == [True]
                assert (await alice.in_dialog("BYE")).status == 200
            finally:
                receiver.close()

    run(body(), deadline=90)


def test_a_video_intercom_call_carries_audio_and_video(tmp_path):
    async def body():
        async with streaming(tmp_path, "intercom") as (agent, alice, receiver, response):
            answer, video = answer_video(response)
            audio = sdp.accepted(answer)
            assert audio.codec == "PCMU" and audio.direction == "sendrecv"
            assert video.port != 0 and video.direction == "sendonly"
            assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
            audio_packets = []  # the intercom's audio: silence from null, 50 a second
            assert await wait_until(lambda: audio_packets.append(alice.rtp_received())
                                    or sum(audio_packets) > 10, WAIT)
            assert (await alice.in_dialog("BYE")).status == 200
            assert await wait_until(lambda: not agent.calls.cameras["camera"].pids, WAIT)

    run(body(), deadline=60)


DOORBELL = """
[[devices]]
name = "doorbell"
type = "doorbell"
pin = 27
call = ["sip:alice@127.0.0.1:%d"]
"""


def test_the_doorbell_shows_the_visitor_to_the_household(tmp_path):
    """With a video intercom, the doorbell's INVITE offers the camera's video (sendonly);
    a phone that answers it recvonly gets the pictures beside the audio."""
    async def body():
        async with phone() as alice:
            receiver = Receiver()
            text = HOME.format(rtp_timeout=30, source="test", simulate="true") \
                + DOORBELL % alice.port
            try:
                async with agent_from(tmp_path, text) as agent:
                    agent.simulate("doorbell", "press")
                    while True:
                        invite, source = await alice.request(timeout=WAIT)
                        if invite.method == "INVITE":
                            break
                    offer = sdp.parse(invite.body)
                    video = next(m for m in offer.media if m.kind == "video")
                    assert video.direction == "sendonly"
                    assert video.fmtp(int(video.formats[0]))["packetization-mode"] == "1"
                    answer, audio, _ = sdp.answer(offer, "127.0.0.1", alice.rtp_port, "9")
                    # Ours receives video: the camera's stream on the receiver's port.
                    answer = answer.replace("m=video 0 RTP/AVP %s" % video.formats[0],
                                            "m=video %d RTP/AVP %s\r\na=rtpmap:%s H264/90000"
                                            "\r\na=fmtp:%s packetization-mode=1\r\na=recvonly"
                                            % ((receiver.port,) + (video.formats[0],) * 3))
                    await alice.respond(invite, source, 200, body=answer)
                    assert await wait_until(lambda: receiver.read() or receiver.keyframes,
                                            WAIT)
                    assert audio.codec == "PCMU"
                    assert agent.status()["devices"]["camera"]["state"] == "streaming"
            finally:
                receiver.close()

    run(body(), deadline=60)


def test_hold_stops_the_encoder_and_resume_starts_it_again(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            receiver = Receiver()
            try:
                offer = video_offer(alice, receiver.port)
                response = await alice.call("sip:camera@127.0.0.1:%d" % agent_port(agent),
                                            agent_port(agent), body=offer)
                assert response.status == 200
                camera = agent.calls.cameras["camera"]
                assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
                hold = offer.replace("o=- 77 1", "o=- 77 2").replace("a=recvonly", "a=inactive")
                response = await alice.in_dialog("INVITE", hold.encode(), fields=(
                    ("Content-Type", "application/sdp"),))
                assert response.status == 200
                assert answer_video(response)[1].direction == "inactive"
                await alice.ack()
                assert await wait_until(lambda: not camera.pids, WAIT)
                assert agent.status()["devices"]["camera"]["state"] == "idle"
                resume = offer.replace("o=- 77 1", "o=- 77 3")
                response = await alice.in_dialog("INVITE", resume.encode(), fields=(
                    ("Content-Type", "application/sdp"),))
                assert response.status == 200
                assert answer_video(response)[1].direction == "sendonly"
                await alice.ack()
                before = receiver.keyframes
                assert await wait_until(lambda: receiver.read() or receiver.keyframes > before,
                                        WAIT)
                assert (await alice.in_dialog("BYE")).status == 200
            finally:
                receiver.close()

    run(body(), deadline=60)


def test_a_reinvite_without_an_offer_gets_the_calls_m_lines_in_their_order(tmp_path):
    # RFC 3264 section 8: the camera refused the phone's audio (port 0) and sends video;
    # its new offer keeps both lines, audio refused first, and the video carries on.
    async def body():
        async with streaming(tmp_path) as (_agent, alice, receiver, _response):
            assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
            response = await alice.in_dialog("INVITE")
            assert response.status == 200
            offered = sdp.parse(response.body)
            assert [(m.kind, m.port != 0) for m in offered.media] == [
                ("audio", False), ("video", True)]
            video = offered.media[1]
            number = int(video.formats[0])
            answer = ("v=0\r\no=- 77 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                      "t=0 0\r\nm=audio 0 %s %s\r\nm=video %d RTP/AVP %d\r\n"
                      "a=rtpmap:%d H264/90000\r\na=fmtp:%d packetization-mode=1\r\n"
                      "a=recvonly\r\n" % (offered.media[0].proto,
                                            " ".join(offered.media[0].formats), receiver.port,
                                            number, number, number))
            await alice.ack(answer.encode())
            before = receiver.packets
            assert await wait_until(lambda: receiver.read() or receiver.packets > before + 20,
                                    WAIT)
            assert (await alice.in_dialog("BYE")).status == 200

    run(body(), deadline=60)


def test_the_encoder_ends_with_an_agent_killed_outright(tmp_path):
    workdir = tempfile.mkdtemp(prefix="sipcam-")  # short: the control socket lives here
    config = Path(workdir, "home.toml")
    config.write_text(HOME.format(rtp_timeout=30, source="test", simulate="true").replace(
        "{control}", os.path.join(workdir, "unused.sock")))
    running = _start_agent(workdir, ["-c", str(config)])
    try:
        async def body():
            async with phone() as alice:
                receiver = Receiver()
                try:
                    response = await alice.call("sip:camera@127.0.0.1:%d" % running.port,
                                                running.port,
                                                body=video_offer(alice, receiver.port))
                    assert response.status == 200, running.output()
                    assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
                finally:
                    receiver.close()

        run(body(), deadline=60)
        pids = running.status()["devices"]["camera"]["encoder"]["pids"]
        assert pids and all(alive(pid) for pid in pids)
        running.process.kill()  # SIGKILL: no chance to stop its encoder
        running.process.wait(5)
        deadline = time.monotonic() + WAIT
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in pids)
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_video_only_call_to_the_intercom_without_rtcp_is_hung_up(tmp_path):
    async def body():
        async with streaming(tmp_path, "intercom", audio=False, rtp_timeout=2) as (
                agent, alice, receiver, _):
            assert await wait_until(lambda: receiver.read() or receiver.packets, WAIT)
            bye, source = await alice.request(timeout=WAIT)
            assert bye.method == "BYE"
            await alice.respond(bye, source, 200, tag=None)
            assert agent.calls.history[-1]["reason"] == "no RTCP for 2 s"

    run(body(), deadline=60)


def test_a_camera_that_hangs_is_started_again(tmp_path, monkeypatch):
    monkeypatch.setattr("appliance.media.camera.STALL", 2.0)

    async def body():
        async with streaming(tmp_path) as (agent, alice, receiver, _):
            camera = agent.calls.cameras["camera"]
            assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
            (hung,) = camera.pids
            os.kill(hung, signal.SIGSTOP)  # alive, silent: a camera that froze
            assert await wait_until(lambda: camera.pids and camera.pids != [hung], WAIT)
            assert not alive(hung)
            before = receiver.keyframes
            assert await wait_until(lambda: receiver.read() or receiver.keyframes > before,
                                    WAIT)
            assert agent.status()["calls"][0]["state"] == "answered"
            assert (await alice.in_dialog("BYE")).status == 200

    run(body(), deadline=60)


def test_new_camera_settings_free_the_device_for_the_next_call(tmp_path):
    async def body():
        async with streaming(tmp_path) as (agent, alice, receiver, response):
            old = agent.calls.cameras["camera"]
            assert await wait_until(lambda: receiver.read() or receiver.keyframes, WAIT)
            pids = old.pids
            path = tmp_path / "home.toml"  # where agent_from wrote it
            path.write_text(path.read_text().replace("width = 320", "width = 160"))
            await agent.reload(load(str(path), environ=TEST_ENV))
            # The old encoder stops; the camera's call, which had only video, ends.
            bye, source = await alice.request(timeout=WAIT)
            assert bye.method == "BYE"
            await alice.respond(bye, source, 200, tag=None)
            assert "settings changed" in agent.calls.history[-1]["reason"]
            assert await wait_until(lambda: not any(alive(pid) for pid in pids), WAIT)
            response = await call(agent, alice, receiver)
            assert response.status == 200
            assert agent.calls.cameras["camera"].spec.width == 160
            assert await wait_until(lambda: bool(agent.calls.cameras["camera"].pids), WAIT)
            assert (await alice.in_dialog("BYE")).status == 200

    run(body(), deadline=60)
