"""One call's video: the camera's H.264 sent to the peer over RTP, with RTCP beside it.

The packets come from the camera (camera.py), which runs one encoder for every call that
watches it; here each gets this stream's payload type, SSRC, sequence numbers and
timestamp offset, from the first keyframe on. They leave from the port in our SDP
(symmetric RTP), to the address the peer's SDP gave, or to where its RTP or RTCP comes from
(its NAT's mapping) once some does; with `stun` the SDP carries the router's public mapping
of our socket.

RTCP: a sender report every ~5 s and a BYE at the end. A PLI (RFC 4585) or FIR (RFC 5104)
about our SSRC, or `keyframe()` (SIP INFO picture_fast_update), asks the camera for a
keyframe. A camera only sends, so the peer's RTCP is what shows it is still there: after
`rtp_timeout` seconds without RTCP or RTP from it, `on_timeout(seconds)` is called once.
When the camera's encoder gives up, `on_failed(reason)` is called and nothing more is sent.

`VideoReceiver` is the other end, for `appliance call --video FILE`: it takes a camera's
stream and writes it to FILE as an H.264 byte stream (ffplay plays it), sends receiver
reports, and asks for a keyframe with a PLI when the stream starts without one or loses
packets.
"""

import logging
import random
import time

from ..sip import sdp
from . import h264, rtcp
from .rtp import RtpSender, RtpStats, is_rtcp, parse_rtp
from .session import PORTS, PortPair

log = logging.getLogger(__name__)

RTCP_INTERVAL = 5.0
READ_BATCH = 64
CHECK_EVERY = 1.0  # seconds between checks for the peer's silence


class VideoStream(PortPair):
    direction = sdp.SENDONLY  # what our offers say of it

    def __init__(self, loop, camera, on_timeout=None, on_failed=None, rtp_timeout=30.0,
                 stun=None, ports=PORTS, peer_host=None):
        self.loop = loop
        self.camera = camera
        self.on_timeout = on_timeout
        self.on_failed = on_failed
        self.rtp_timeout = rtp_timeout
        self.stun = stun
        self.ports = ports
        self.peer_host = peer_host
        self.address = None  # ours, as the SDP says it
        self.port = None
        self.local = None
        self.remote = None  # where RTP goes; RTCP goes to the next port up, or rtcp_remote
        self.rtcp_remote = None
        self.negotiated = None
        self.sender = None
        self.keyframes_asked = 0
        self.rtcp_received = 0
        self.failure = None
        self.closed = False
        self._watching = False
        self._waiting_keyframe = True
        self._offset = random.getrandbits(32)
        self._last_heard = None
        self._timed_out = False
        self._last_fir = None  # (sender SSRC, sequence number) of the last FIR acted on
        self._report = None
        self._check = None
        self._last_sent = 0.0

    @property
    def description(self):
        """The camera's sdp.Video (its profile-level-id and parameter sets)."""
        return self.camera.description

    async def open(self, host):
        await self.open_ports(host)

    def start(self, negotiated):
        """Send as `negotiated` (a sdp.VideoNegotiated, or None when the peer refused our
        video) says; again with a re-INVITE's, which may pause it (inactive) or move it."""
        if self.closed or self.failure is not None:
            return
        previous = self.negotiated
        self.negotiated = negotiated
        if negotiated is None or not negotiated.sending:
            self._unwatch()
            return
        if previous is None or (previous.address, previous.port) != (negotiated.address,
                                                                       negotiated.port):
            self.remote = (negotiated.address, negotiated.port)
            self.rtcp_remote = None
        if self.sender is None or self.sender.payload_type != negotiated.payload_type:
            self.sender = RtpSender(negotiated.payload_type, clock_rate=sdp.VIDEO_CLOCK)
        if self._last_heard is None or previous is None or not previous.sending:
            self._last_heard = self.loop.time()
            self._timed_out = False
        if self._report is None:
            self._report = self.loop.call_later(RTCP_INTERVAL * (0.5 + random.random()),
                                                self._send_report)
            self._check = self.loop.call_later(CHECK_EVERY, self._check_peer)
        if not self._watching:
            self._watching = True
            self._waiting_keyframe = True
            # Once the answer that starts it is on its way: a camera already running sends
            # the pictures since its last keyframe at once.
            self.loop.call_soon(self._watch)

    def keyframe(self):
        """The peer asks for a keyframe (SIP INFO picture_fast_update)."""
        if self._watching:
            self.keyframes_asked += 1
            self.camera.keyframe()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._unwatch()
        for timer in (self._report, self._check):
            if timer is not None:
                timer.cancel()
        if self.sender is not None and self.remote is not None and self._rtcp is not None:
            self._send_rtcp(rtcp.build_bye(self.sender.ssrc, "hung up"))
        self.close_ports()

    def _watch(self):
        if self._watching and not self.closed:
            self.camera.watch(self)

    def _unwatch(self):
        if self._watching:
            self._watching = False
            self.camera.unwatch(self)

    # -- from the camera -----------------------------------------------------------------------

    def video_packet(self, timestamp, marker, payload, keyframe):
        if self._waiting_keyframe:
            if not keyframe:
                return  # a decoder can begin at a keyframe only
            self._waiting_keyframe = False
        packet = self.sender.packet_at(payload, (timestamp + self._offset) & 0xFFFFFFFF, marker)
        self._last_sent = self.loop.time()
        try:
            self._rtp.sendto(packet, self.remote)
        except OSError:
            pass  # unreachable for now: the RTCP timeout decides

    def video_failed(self, reason):
        self._watching = False
        self.failure = reason
        if self.sender is not None and self.remote is not None:
            self._send_rtcp(rtcp.build_bye(self.sender.ssrc, "camera stopped"))
        if self.on_failed is not None:
            self.on_failed(reason)

    # -- from the peer -------------------------------------------------------------------------

    def _allowed(self, host):
        negotiated = self.negotiated
        return negotiated is not None and host in (negotiated.address, self.peer_host)

    def _receive_rtp(self):
        """RTP or keep-alives from the peer: it is there, and its NAT mapping is where our
        RTP goes (symmetric RTP)."""
        for _ in range(READ_BATCH):
            try:
                data, source = self._rtp.recvfrom(2048)
            except OSError:
                return
            if not data or is_rtcp(data) or not self._allowed(source[0]):
                continue
            self._heard()
            source = (source[0], source[1])
            if self.remote != source:
                log.info("video RTP from %s:%d: sending there", source[0], source[1])
                self.remote = source

    def _receive_rtcp(self):
        for _ in range(READ_BATCH):
            try:
                data, source = self._rtcp.recvfrom(2048)
            except OSError:
                return
            if not self._allowed(source[0]):
                continue
            try:
                packets = rtcp.parse_rtcp(data)
            except ValueError:
                continue
            self.rtcp_received += 1
            self.rtcp_remote = (source[0], source[1])
            self._heard()
            ssrc = self.sender.ssrc if self.sender is not None else None
            for packet in packets:
                if packet.kind == "PLI" and packet.asks_for(ssrc):
                    self.keyframe()
                elif packet.kind == "FIR" and packet.asks_for(ssrc):
                    sequence = next(seq for target, seq in packet.entries if target == ssrc)
                    if self._last_fir != (packet.ssrc, sequence):  # not a repeat
                        self._last_fir = (packet.ssrc, sequence)
                        self.keyframe()

    def _heard(self):
        self._last_heard = self.loop.time()
        self._timed_out = False

    def _check_peer(self):
        self._check = self.loop.call_later(CHECK_EVERY, self._check_peer)
        if not self._watching or self._timed_out or self._last_heard is None:
            return
        if self.loop.time() - self._last_heard > self.rtp_timeout:
            self._timed_out = True
            log.warning("no RTCP for the video from %s for %g s",
                        self.remote[0] if self.remote else "?", self.rtp_timeout)
            if self.on_timeout is not None:
                self.on_timeout(self.rtp_timeout)

    # -- RTCP out ------------------------------------------------------------------------------

    def _send_report(self):
        self._report = self.loop.call_later(RTCP_INTERVAL * (0.5 + random.random()),
                                            self._send_report)
        if self.sender is None or self.remote is None or not self._watching:
            return
        cname = "sip-appliance@%s" % self.local[0]
        if self.sender.packets:
            elapsed = int((self.loop.time() - self._last_sent) * 1000)
            packet = rtcp.build_sr(self.sender.ssrc, rtcp.ntp_from_unix(time.time()),
                                   self.sender.timestamp_after(elapsed), self.sender.packets,
                                   self.sender.octets, (), cname)
        else:
            packet = rtcp.build_rr(self.sender.ssrc, (), cname)
        self._send_rtcp(packet)

    def _send_rtcp(self, packet):
        target = self.rtcp_remote or (self.remote[0], self.remote[1] + 1)
        try:
            self._rtcp.sendto(packet, target)
        except OSError:
            pass

    def status(self):
        negotiated = self.negotiated
        out = {"local": "%s:%d" % (self.address, self.port) if self.port else None,
               "remote": "%s:%d" % self.remote if self.remote else None,
               "codec": "H264", "camera": self.camera.name,
               "direction": negotiated.direction if negotiated else None,
               "sent": self.sender.packets if self.sender else 0,
               "keyframes_asked": self.keyframes_asked, "rtcp_received": self.rtcp_received}
        if self.failure:
            out["failure"] = self.failure
        return out



PLI_EVERY = 1.0  # seconds between keyframe requests while the picture is broken
WATCHED = sdp.Video("42e01f")  # what we can decode: constrained baseline up to level 3.1


class VideoReceiver(PortPair):
    """A camera's stream, received and written to `out` (a binary file) as Annex B."""

    direction = sdp.RECVONLY
    description = WATCHED

    def __init__(self, loop, out, stun=None, ports=PORTS):
        self.loop = loop
        self.out = out
        self.stun = stun
        self.ports = ports
        self.address = None
        self.port = None
        self.local = None
        self.remote = None
        self.negotiated = None
        self.stats = RtpStats(sdp.VIDEO_CLOCK)
        self.ssrc = random.getrandbits(32)
        self.packets = 0
        self.frames = 0
        self.keyframes = 0
        self.plis = 0
        self.closed = False
        self._broken = True  # until a keyframe: what comes before it cannot be decoded
        self._last_pli = None
        self._expected = None  # the next sequence number
        self._keyframe_at = None  # the timestamp of the last keyframe
        self._report = None

    async def open(self, host):
        await self.open_ports(host)

    def start(self, negotiated):
        if self.closed or negotiated is None:
            return
        self.negotiated = negotiated
        self.remote = (negotiated.address, negotiated.port)
        if self._report is None:
            self._report = self.loop.call_later(RTCP_INTERVAL * (0.5 + random.random()),
                                                self._send_report)

    def _receive_rtp(self):
        for _ in range(READ_BATCH):
            try:
                data, source = self._rtp.recvfrom(2048)
            except OSError:
                return
            # Media may come before the answer does (RFC 3264 section 5.1): on our payload
            # type from anywhere until then, from the answer's address after.
            negotiated = self.negotiated
            if negotiated is not None and source[0] != negotiated.address:
                continue
            try:
                packet = parse_rtp(data)
            except ValueError:
                continue
            expected = negotiated.payload_type if negotiated else sdp.VIDEO_TYPE
            if packet.payload_type != expected:
                continue
            self.packets += 1
            self.stats.update(packet, int(self.loop.time() * sdp.VIDEO_CLOCK))
            if self._expected is not None and packet.sequence != self._expected:
                self._broken = True  # lost (or reordered): ask for a fresh picture
            self._expected = (packet.sequence + 1) & 0xFFFF
            if h264.starts_keyframe(packet.payload):
                if packet.timestamp != self._keyframe_at:  # its first packet
                    self._keyframe_at = packet.timestamp
                    self.keyframes += 1
                self._broken = False
            elif self._broken:
                self._ask_keyframe(packet.ssrc)
            if not self.keyframes:
                continue  # nothing decodes before the first keyframe
            if packet.marker:
                self.frames += 1
            self.out.write(h264.annex_b(packet.payload))

    def _receive_rtcp(self):
        """The camera's sender reports: read, so that they do not pile up, and let be."""
        for _ in range(READ_BATCH):
            try:
                self._rtcp.recvfrom(2048)
            except OSError:
                return

    def _ask_keyframe(self, ssrc):
        now = self.loop.time()
        if self.remote is None:
            return  # the answer tells where
        if self._last_pli is not None and now - self._last_pli < PLI_EVERY:
            return
        self._last_pli = now
        self.plis += 1
        self._send_rtcp(rtcp.build_rr(self.ssrc) + rtcp.build_pli(self.ssrc, ssrc))

    def _send_report(self):
        self._report = self.loop.call_later(RTCP_INTERVAL * (0.5 + random.random()),
                                            self._send_report)
        report = self.stats.report(int(self.loop.time() * sdp.VIDEO_CLOCK))
        blocks = [rtcp.ReportBlock(**report)] if report is not None else []
        self._send_rtcp(rtcp.build_rr(self.ssrc, blocks, "sip-appliance@%s" % self.local[0]))

    def _send_rtcp(self, packet):
        if self.remote is None or self._rtcp is None:
            return
        try:
            self._rtcp.sendto(packet, (self.remote[0], self.remote[1] + 1))
        except OSError:
            pass

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self._report is not None:
            self._report.cancel()
        self._send_rtcp(rtcp.build_bye(self.ssrc, "hung up"))
        self.close_ports()

    def status(self):
        return {"codec": "H264", "received": self.packets, "frames": self.frames,
                "keyframes": self.keyframes, "plis": self.plis,
                "lost": self.stats.lost_since_start if self.packets else 0}
