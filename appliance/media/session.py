"""One call's media: RTP and RTCP on a port pair (RFC 3550), G.711 both ways, DTMF events
(RFC 4733), between the network and an audio port (audio.py).

Every ptime (20 ms) one tick, scheduled against the session's start so that it does not
drift: a frame is read from the audio port, encoded and sent (when the call's direction
lets us send), and the frame the jitter buffer has due is decoded and played. Packets are
sent from the port we listen on (symmetric RTP), and the peer's address is learnt from
the first packet of the negotiated kind that comes in, so media passes a NAT on the
caller's side; with `stun` the SDP carries the router's public mapping of the RTP socket.
RTCP sender or receiver reports go out every 5 s (randomized, RFC 3550 6.2), and a BYE at
the end. When nothing arrives for `rtp_timeout` seconds while we should be receiving,
`on_timeout(seconds)` is called once.

SRTP (RFC 3711, keyed by SDES: srtp.py): when the peer's offer asks for it and pylibsrtp is
there, the answer carries our key, and every RTP and RTCP packet out (audio, DTMF events,
reports, the BYE) is protected, every one in unprotected; what fails authentication is
dropped and counted (`srtp_failed`), plain RTP included. A re-INVITE keeps the keys or
takes new ones as its offer says; our key changes with the suite, never over two packet
indexes.
"""

import collections
import ipaddress
import logging
import random
import socket
import time

from ..errors import ApplianceError
from ..nat import public_address_of
from ..sip import sdp
from . import g711, rtcp, srtp
from .audio import NullPort, open_audio
from .dtmf import DtmfReceiver, event_payloads
from .jitter import JitterBuffer
from .rtp import RtpSender, RtpStats, is_rtcp, parse_rtp

log = logging.getLogger(__name__)

PORTS = (16384, 32766)  # the even RTP ports picked from; RTCP is the next one up
PORT_TRIES = 64
STUN_WAIT = 1.0  # seconds the SDP waits for the public mapping of the RTP socket
READ_BATCH = 64  # datagrams read per wake-up
LATCH_AFTER = 3  # packets in a row from an address the SDP did not name, to latch to it
RTCP_INTERVAL = 5.0
CLOCK = 8000


class MediaError(ApplianceError):
    """The media of a call cannot start (no free port, no audio device)."""


def bind_pair(host, ports=PORTS):
    """Two UDP sockets on `host`, for RTP on a free even port in `ports` and RTCP on the
    next one up; MediaError when none is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(PORT_TRIES):
        port = random.randrange(ports[0], ports[1], 2)
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp_sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port))
            rtcp_sock.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp_sock.close()
            continue
        return rtp, rtcp_sock
    raise MediaError("no free RTP port pair in %d-%d on %s" % (ports[0], ports[1] + 1, host))


async def open_pair(host, ports=PORTS, stun=None):
    """bind_pair(), non-blocking, with the public mapping of the RTP socket when `stun`
    (host:port) is set: (rtp, rtcp, (address, port) for the SDP)."""
    rtp, rtcp_sock = bind_pair(host, ports)
    public = (host, rtp.getsockname()[1])
    if stun:
        try:
            mapped = await public_address_of(rtp, stun, STUN_WAIT)
        except BaseException:
            rtp.close()
            rtcp_sock.close()
            raise
        if mapped is not None:
            public = mapped
        else:
            log.warning("no STUN answer for the RTP socket: the SDP carries %s:%d", *public)
    rtp.setblocking(False)
    rtcp_sock.setblocking(False)
    return rtp, rtcp_sock, public


class PortPair:
    """A stream's RTP and RTCP sockets: bound by open_ports() with the address the SDP
    gives, read by the subclass's _receive_rtp and _receive_rtcp, closed by
    close_ports()."""

    closed = False
    _rtp = None
    _rtcp = None

    async def open_ports(self, host):
        rtp, rtcp_sock, public = await open_pair(host, self.ports, self.stun)
        if self.closed:  # the call ended meanwhile
            rtp.close()
            rtcp_sock.close()
            return
        self._rtp, self._rtcp = rtp, rtcp_sock
        self.local = (host, rtp.getsockname()[1])
        self.address, self.port = public
        self.loop.add_reader(rtp, self._receive_rtp)
        self.loop.add_reader(rtcp_sock, self._receive_rtcp)

    def close_ports(self):
        for sock in (self._rtp, self._rtcp):
            if sock is not None:
                self.loop.remove_reader(sock)
                sock.close()


class MediaSession(PortPair):
    def __init__(self, loop, audio, on_dtmf=None, on_timeout=None, rtp_timeout=30.0,
                 stun=None, ports=PORTS, peer_host=None, video=None):
        """`audio` is the audio spec ("null", "default", a device name, a WAV path), or None
        for a call without audio (a camera's); `peer_host` the address the call's SIP came
        from, which RTP may come from too; `video` the call's VideoStream (video.py), whose
        m= line this session's offers and answers carry beside the audio's."""
        self.loop = loop
        self.video = video
        self.peer_host = peer_host
        self.audio_spec = audio
        self.on_dtmf = on_dtmf
        self.on_timeout = on_timeout
        self.rtp_timeout = rtp_timeout
        self.stun = stun
        self.ports = ports
        self.address = None  # ours, as the SDP says it
        self.port = None
        self.local = None  # (host, port) bound
        self.remote = None  # where RTP goes
        self.negotiated = None
        self.audio = None
        self.sender = None
        self.stats = RtpStats()
        self.jitter = None
        self.dtmf = DtmfReceiver()
        self._events = collections.deque()  # telephone-event packets to send, in order
        self._event_start = 0
        self._latched = None  # the (host, port) RTP is taken from, once known
        self._candidate = (None, 0)  # ((source, ssrc), packets in a row) before latching
        self._tick = None
        self._ticks = 0
        self._epoch = None
        self._report = None
        self._last_rtp = None  # loop time of the last RTP in
        self._timed_out = False
        self._last_sent = 0.0  # loop time of the last RTP out
        self.srtp = None  # srtp.Protection while the audio is SRTP
        self.srtp_failed = 0  # SRTP and SRTCP packets in that failed authentication
        self._srtp_key = None  # our key (base64) for the next SRTP answer
        self._offered_crypto = None  # (suite, our key) of our last offer, when SRTP
        self._layout = None  # the m= lines of the last offer and answer (sdp.layout_of)
        self.call_id = None  # for the log: the session id of our SDP (the Call-ID)
        self.closed = False

    # -- setting up --------------------------------------------------------------------------

    async def open(self, host):
        """Bind the port pair on `host` (the address toward the peer) and learn its public
        mapping when `stun` is set; the video stream's too, when the call has one."""
        if self.audio_spec is not None:
            await self.open_ports(host)
        if self.video is not None and not self.closed:
            await self.video.open(host)
            if self.address is None:
                self.address = self.video.address

    def _open_audio(self):
        """Open the audio port in a worker thread (PortAudio takes a good part of a second
        on a Pi), with silence meanwhile: only once media starts, so a doorbell ringing
        three phones does not hold the sound card three times."""
        self.audio = NullPort()
        if self.audio_spec == "null":
            return

        def opened(future):
            error = future.exception()
            if error is not None:
                log.error("audio %r: %s; the call goes on without sound", self.audio_spec,
                          error)
                return
            if self.closed:
                self.loop.run_in_executor(None, future.result().close)
            else:
                self.audio = future.result()

        self.loop.run_in_executor(None, open_audio, self.audio_spec).add_done_callback(
            lambda future: self.loop.call_soon_threadsafe(opened, future))

    # -- offer and answer (RFC 3264) over this session's address ------------------------

    def offer(self, session_id, version, secure=False):
        """Our SDP offer for this session: SRTP with the keys in use when the audio is SRTP
        already (a re-INVITE without an offer); else, when the SIP is `secure` (TLS), SRTP
        (RTP/SAVP, AES_CM_128_HMAC_SHA1_80) with a new key, which a peer must take or
        refuse; else plain RTP."""
        self.call_id = session_id
        if self.srtp is not None:
            self._offered_crypto = (self.srtp.suite, self.srtp.local_key)
        elif secure and self.port is not None and srtp.available():
            if self._srtp_key is None:
                self._srtp_key = srtp.new_key()  # kept for our answers in this session
            self._offered_crypto = (sdp.AES_CM_128_HMAC_SHA1_80, self._srtp_key)
        else:
            if secure and self.port is not None:
                log.warning("call %s: offering plain RTP over TLS: %s", session_id,
                            srtp.INSTALL_HINT)
            self._offered_crypto = None
        return sdp.offer(self.address, self.port, session_id, version,
                         video=self._video_offer(), crypto=self._offered_crypto,
                         layout=self._layout)

    def answer(self, offered, session_id, version):
        """Answer the Session `offered` and start media as agreed: the SDP text, or None
        when nothing in it can be taken (the caller answers 488)."""
        self.call_id = session_id
        key = None
        if srtp.available() and self.port is not None:
            if self._srtp_key is None:
                self._srtp_key = srtp.new_key()
            key = self._srtp_key
        made = sdp.answer(offered, self.address, self.port, session_id, version,
                          video=self._video_offer(), srtp_key=key)
        if made is not None and made[1] is not None and made[1].crypto is not None \
                and self.srtp is not None and made[1].suite != self.srtp.suite:
            # Another suite: our session starts again, with a key of its own.
            self._srtp_key = srtp.new_key()
            made = sdp.answer(offered, self.address, self.port, session_id, version,
                              video=self._video_offer(), srtp_key=self._srtp_key)
        agreed = made[1] if made is not None else None
        problem = srtp.problem(offered)
        if problem is not None and self.port is not None \
                and (agreed is None or agreed.crypto is None):
            log.warning("call %s: %s; its audio %s", session_id, problem,
                        "is refused" if agreed is None else "goes in the clear")
        if made is None:
            return None
        text, negotiated, video = made
        self._layout = sdp.layout_of(offered, negotiated, video)
        if negotiated is not None:
            self.start(negotiated)
        if self.video is not None:
            self.video.start(video)
        return text

    def accept(self, answered):
        """Start media as the Session `answered` (the answer to our offer) agreed; the
        audio's Negotiated, or None when it refused our audio."""
        negotiated = sdp.accepted(answered, crypto=self._offered_crypto)
        video = sdp.accepted(answered, "video") if self.video is not None else None
        self._layout = sdp.layout_of(answered, negotiated, video)
        if negotiated is not None:
            self.start(negotiated)
        if self.video is not None:
            self.video.start(video)
        return negotiated

    def _video_offer(self):
        """(port, sdp.Video, direction) of the call's video, or None without one."""
        video = self.video
        if video is None or video.port is None or video.description is None:
            return None
        return video.port, video.description, video.direction

    def start(self, negotiated):
        """Send and receive as `negotiated` (an offer/answer's outcome) says; again with a
        re-INVITE's, which may hold (sendonly, inactive) or move the stream."""
        if self.closed:
            return
        first = self.negotiated is None
        moved = first or (negotiated.address, negotiated.port) != (
            self.negotiated.address, self.negotiated.port)
        resumed = negotiated.receiving and (first or not self.negotiated.receiving)
        self.negotiated = negotiated
        if moved:
            self.remote = (negotiated.address, negotiated.port)
            self._latched = None
        if resumed:  # the RTP timeout counts from when receiving starts again
            self._last_rtp = self.loop.time()
            self._timed_out = False
        self._secure(negotiated)
        if self.audio is None:
            self._open_audio()
        if self.sender is None or self.sender.payload_type != negotiated.payload_type:
            self.sender = RtpSender(negotiated.payload_type)
        self._encode = g711.ENCODERS[negotiated.codec]
        self._decode = g711.DECODERS[negotiated.codec]
        self._samples = CLOCK * negotiated.ptime // 1000
        if self.jitter is None:
            self.jitter = JitterBuffer(ptime=negotiated.ptime)
        if first:
            self._epoch = self.loop.time()
            self._tick = self.loop.call_at(self._epoch, self._on_tick)
            self._report = self.loop.call_later(RTCP_INTERVAL * (0.5 + random.random()),
                                                self._send_report)

    def _secure(self, negotiated):
        """SRTP as `negotiated` says: started, kept, re-keyed, or stopped."""
        crypto = negotiated.crypto
        if crypto is None:
            if self.srtp is not None:
                log.info("call %s: the audio is plain RTP now", self.call_id)
                self.srtp = None
                self._srtp_key = None  # retired with its session
            return
        if self.srtp is None:
            self.srtp = srtp.Protection(crypto.suite, negotiated.local_key, crypto.key)
            log.info("call %s: the audio is SRTP (%s)", self.call_id, crypto.suite)
            return
        changed = self.srtp.rekey(crypto.suite, negotiated.local_key, crypto.key)
        if changed:
            log.info("call %s: SRTP re-keyed (%s, %s)", self.call_id, crypto.suite,
                     " and ".join(changed))

    def send_digits(self, digits):
        """Send `digits` as RFC 4733 telephone-events (100 ms each, 60 ms apart), in place
        of the audio while they last; False when the peer takes no events."""
        if self.negotiated is None or self.negotiated.event_type is None:
            return False
        for digit in digits:
            self._events.append(None)  # an event starts: it takes the timestamp then
            self._events.extend(event_payloads(digit, ptime=self.negotiated.ptime))
            self._events.extend(["gap"] * 3)
        return True

    def close(self):
        if self.closed:
            return
        self.closed = True
        for timer in (self._tick, self._report):
            if timer is not None:
                timer.cancel()
        if self.sender is not None and self.remote is not None:
            self._send_rtcp(rtcp.build_bye(self.sender.ssrc, "hung up"))
        self.close_ports()
        if self.audio is not None:
            audio, self.audio = self.audio, None
            # Stopping a PortAudio stream waits for its thread: not on the loop.
            self.loop.run_in_executor(None, audio.close)
        if self.video is not None:
            self.video.close()

    # -- the 20 ms tick ----------------------------------------------------------------------

    def _on_tick(self):
        negotiated = self.negotiated
        ptime = negotiated.ptime / 1000.0
        self._ticks += 1
        now = self.loop.time()
        # The next tick is due a whole number of ptimes after the start: no drift.
        due = self._epoch + self._ticks * ptime
        if due < now - ptime:  # the loop stalled: skip ahead, do not burst
            skipped = int((now - due) / ptime)
            self._ticks += skipped
            self.sender.skip(skipped * self._samples)
            due = self._epoch + self._ticks * ptime
        self._tick = self.loop.call_at(due, self._on_tick)
        frame = self.audio.read_frame()
        while self._events and self._events[0] is None:
            self._events.popleft()
            self._event_start = self.sender.timestamp
        if self._events and self._events[0] != "gap" and negotiated.sending \
                and self.remote is not None:
            payload, marker = self._events.popleft()
            packet = self.sender.event_packet(negotiated.event_type, payload, marker,
                                              self._event_start)
            self.sender.skip(self._samples)
            self._send_rtp(packet)
        elif negotiated.sending and self.remote is not None:
            if self._events:
                self._events.popleft()  # a gap between digits: audio again
            packet = self.sender.packet(self._encode(frame), self._samples)
            self._last_sent = now
            self._send_rtp(packet)
        else:
            self.sender.skip(self._samples)
        payload = self.jitter.get(int(now * 1000))
        if payload is not None:
            self.audio.write_frame(self._decode(payload))
        if negotiated.receiving and not self._timed_out \
                and now - self._last_rtp > self.rtp_timeout:
            self._timed_out = True
            log.warning("no RTP from %s:%d for %g s", self.remote[0], self.remote[1],
                        self.rtp_timeout)
            if self.on_timeout is not None:
                self.on_timeout(self.rtp_timeout)

    def _send_rtp(self, packet):
        if self.srtp is not None:
            packet = self.srtp.protect(packet)
            if packet is None:
                return
        try:
            self._rtp.sendto(packet, self.remote)
        except OSError:
            pass  # unreachable for now: RTP is loss-tolerant, the timeout decides

    # -- receiving -----------------------------------------------------------------------

    def _receive_rtp(self):
        for _ in range(READ_BATCH):  # then the loop's other work, even under a flood
            try:
                data, source = self._rtp.recvfrom(2048)
            except OSError:  # BlockingIOError: all read
                return
            if not data or data[0] < 2 or is_rtcp(data):
                continue  # a late STUN answer, or RTCP muxed where it should not be
            negotiated = self.negotiated
            if negotiated is None or not negotiated.receiving:
                continue  # not yet, or on hold with us not listening
            if self.srtp is not None:
                data = self.srtp.unprotect(data)
                if data is None:  # forged, replayed, or plain RTP where SRTP was agreed
                    self.srtp_failed += 1
                    continue
            source = (source[0], source[1])
            try:
                packet = parse_rtp(data)
            except ValueError:
                continue
            kind = packet.payload_type
            if kind != negotiated.payload_type and kind != negotiated.event_type:
                continue
            if not self._from_peer(source, packet.ssrc):
                continue
            if self._latched is None:
                # Symmetric RTP: answer where it comes from (the caller's NAT mapping).
                self._latched = source
                if self.remote != source:
                    log.info("RTP from %s:%d: sending there", source[0], source[1])
                    self.remote = source
            now = self.loop.time()
            self._last_rtp = now
            self._timed_out = False
            if packet.ssrc != self.stats.ssrc and self.stats.ssrc is not None:
                self.jitter.reset()  # a new source (the peer restarted its stream)
            self.stats.update(packet, int(now * CLOCK))
            if kind == negotiated.event_type:
                digit = self.dtmf.feed(packet.timestamp, packet.payload)
                if digit is not None and self.on_dtmf is not None:
                    self.on_dtmf(digit)
            else:
                self.jitter.put(packet.sequence, packet.timestamp, packet.payload,
                                int(now * 1000), packet.marker)

    def _from_peer(self, source, ssrc):
        """Whether RTP from `source` belongs to the call: once latched, that address only;
        before, an address the SDP or the SIP named (the caller's public address behind
        its NAT), so that a stranger who sends first takes neither the stream nor the
        door code. Only when the SDP names a private address while the SIP came from a
        public one (a peer behind a NAT, through a proxy outside) may another address take
        it, after LATCH_AFTER packets in a row of one source."""
        if self._latched is not None:
            return source == self._latched
        host = source[0]
        if host in (self.negotiated.address, self.peer_host) \
                or (self.remote is not None and host == self.remote[0]):
            return True
        if not _private(self.negotiated.address) or self.peer_host is None \
                or _private(self.peer_host):
            return False
        candidate = (source, ssrc)
        count = self._candidate[1] + 1 if self._candidate[0] == candidate else 1
        self._candidate = (candidate, count)
        return count >= LATCH_AFTER

    def _receive_rtcp(self):
        for _ in range(READ_BATCH):
            try:
                data, source = self._rtcp.recvfrom(2048)
            except OSError:
                return
            if self.negotiated is None or self._latched is None \
                    or source[0] != self._latched[0]:
                continue
            if self.srtp is not None:
                data = self.srtp.unprotect_rtcp(data)
                if data is None:
                    self.srtp_failed += 1
                    continue
            try:
                packets = rtcp.parse_rtcp(data)
            except ValueError:
                continue
            for packet in packets:
                if packet.kind == "SR" and packet.ssrc == self.stats.ssrc:
                    self.stats.sender_report(packet.ntp_middle,
                                             int(self.loop.time() * CLOCK))

    # -- RTCP ----------------------------------------------------------------------------------

    def _send_report(self):
        self._report = self.loop.call_later(RTCP_INTERVAL * (0.5 + random.random()),
                                            self._send_report)
        if self.sender is None or self.remote is None:
            return
        blocks = []
        report = self.stats.report(int(self.loop.time() * CLOCK))
        if report is not None:
            blocks.append(rtcp.ReportBlock(**report))
        cname = "sip-appliance@%s" % self.local[0]
        if self.sender.packets:
            elapsed = int((self.loop.time() - self._last_sent) * 1000)
            packet = rtcp.build_sr(self.sender.ssrc, rtcp.ntp_from_unix(time.time()),
                                   self.sender.timestamp_after(elapsed), self.sender.packets,
                                   self.sender.octets, blocks, cname)
        else:
            packet = rtcp.build_rr(self.sender.ssrc, blocks, cname)
        self._send_rtcp(packet)

    def _send_rtcp(self, packet):
        if self.srtp is not None:
            packet = self.srtp.protect_rtcp(packet)
            if packet is None:
                return
        host, port = self.remote
        try:
            self._rtcp.sendto(packet, (host, port + 1))
        except OSError:
            pass

    def status(self):
        negotiated = self.negotiated
        out = {"local": "%s:%d" % (self.address, self.port) if self.port else None,
               "remote": "%s:%d" % self.remote if self.remote else None,
               "audio": getattr(self.audio, "name", self.audio_spec)}
        if negotiated is not None:
            out.update(codec=negotiated.codec, direction=negotiated.direction)
        if self.srtp is not None:
            out.update(srtp=self.srtp.suite, srtp_failed=self.srtp_failed)
        if self.sender is not None:
            out["sent"] = self.sender.packets
        out["received"] = self.stats.received
        if self.jitter is not None:
            out.update(buffer_ms=self.jitter.delay_ms, late=self.jitter.late,
                       lost=self.jitter.lost)
        if self.video is not None:
            out["video"] = self.video.status()
        return out


def _private(host):
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_unspecified
