"""A SIP phone for the call tests, on loopback UDP: it calls (INVITE with digest, ACK, BYE,
CANCEL, re-INVITE, INFO), answers calls (180, 200, ACK), and sends and reads RTP. Written
on the core's message, dialog and digest code, not on the agent's call code under test."""

import asyncio
import itertools
import socket
import struct

from appliance.media.dtmf import event_payloads
from appliance.sip import sdp
from appliance.sip.dialog import Dialog
from appliance.sip.digest import DigestClient
from appliance.sip.message import Request, make_request, make_response, parse_message

WAIT = 3.0
_numbers = itertools.count(1)


class Phone:
    def __init__(self, user="demo", password="demo"):
        self.loop = asyncio.get_running_loop()
        self.sip = _socket()
        self.rtp = _socket()
        self.port = self.sip.getsockname()[1]
        self.rtp_port = self.rtp.getsockname()[1]
        self.user = user
        self.digest = DigestClient(lambda realm: (user, password), lambda n: "cd" * (n // 2))
        self.requests = asyncio.Queue()  # requests to us: (Request, source)
        self.responses = asyncio.Queue()
        self.provisionals = []  # every 1xx received, also the ones `final` passed over
        self.dialog = None
        self.invite = None
        self.peer = None  # the agent's (host, port)
        self.remote_rtp = None  # where the agent wants our RTP
        self._reader = self.loop.create_task(self._read())
        self._seq = 0

    async def _read(self):
        while True:
            data, source = await self.loop.sock_recvfrom(self.sip, 65535)
            message = parse_message(data)
            if hasattr(message, "method"):
                await self.requests.put((message, source))
            else:
                if message.status < 200:
                    self.provisionals.append(message)
                await self.responses.put(message)

    def close(self):
        self._reader.cancel()
        self.sip.close()
        self.rtp.close()

    # -- calling ---------------------------------------------------------------------------

    async def call(self, uri, agent_port, body=None, fields=(), answer_challenge=True):
        """INVITE `uri` at the agent; returns the final response (ACKed when a 2xx)."""
        self.peer = ("127.0.0.1", agent_port)
        if body is None:
            body = sdp.offer("127.0.0.1", self.rtp_port, "77")
        call_id = "call-%d" % next(_numbers)
        for cseq in (1, 2):
            request = make_request(
                "INVITE", uri, "sip:%s@127.0.0.1:%d" % (self.user, self.port), "caller",
                call_id, cseq, fields=[self._via(), ("Contact", "<sip:%s@127.0.0.1:%d>" % (
                    self.user, self.port)), *fields] + (
                    [("Content-Type", "application/sdp")] if body else []),
                body=body.encode() if isinstance(body, str) else body)
            self.digest.authorize(request)
            self.invite = request
            await self._send(request)
            response = await self.final("INVITE")
            if response.status >= 300:
                await self._ack_failure(request, response)
            if response.status in (401, 407) and answer_challenge \
                    and self.digest.challenged(response):
                continue
            break
        if 200 <= response.status < 300:
            self.dialog = Dialog.as_uac(request, response)
            self.remote_rtp = _media_of(response.body)
            if body:
                await self.ack()
        return response

    async def _ack_failure(self, invite, response):
        """The ACK of a non-2xx final response (RFC 3261 17.1.1.3): the INVITE's branch."""
        fields = [["Via", invite.get_list("via")[0]]]
        for name in ("From", "Call-ID", "Max-Forwards"):
            fields.append([name, invite.get(name)])
        fields.append(["To", response.get("to")])
        fields.append(["CSeq", "%d ACK" % invite.cseq.number])
        fields.append(["Content-Length", "0"])
        await self._send(Request("ACK", invite.uri_text, fields))

    async def ack(self, body=b""):
        ack = self.dialog.create_request("ACK", body=body)
        if body:
            ack.add("Content-Type", "application/sdp")
        ack.add_first("Via", self._via()[1])
        await self._send(ack)

    async def in_dialog(self, method, body=b"", fields=()):
        request = self.dialog.create_request(method, fields=fields, body=body)
        request.add_first("Via", self._via()[1])
        await self._send(request)
        return await self.final(method)

    async def cancel(self):
        invite = self.invite
        fields = [["Via", invite.get_list("via")[0]]]
        for name in ("From", "To", "Call-ID", "Max-Forwards"):
            fields.append([name, invite.get(name)])
        fields.append(["CSeq", "%d CANCEL" % invite.cseq.number])
        fields.append(["Content-Length", "0"])
        await self._send(Request("CANCEL", invite.uri_text, fields))

    async def final(self, method, timeout=WAIT):
        """The next final response to a `method` request (others are passed over)."""
        while True:
            response = await asyncio.wait_for(self.responses.get(), timeout)
            if response.status >= 200 and response.cseq.method == method:
                return response

    async def provisional(self, timeout=WAIT):
        response = await asyncio.wait_for(self.responses.get(), timeout)
        return response

    # -- being called ------------------------------------------------------------------------

    async def request(self, timeout=WAIT):
        return await asyncio.wait_for(self.requests.get(), timeout)

    async def respond(self, request, source, status, body=b"", tag="callee"):
        fields = [("Contact", "<sip:%s@127.0.0.1:%d>" % (self.user, self.port))]
        if body:
            fields.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=tag, fields=fields,
                                 body=body.encode() if isinstance(body, str) else body)
        await self.loop.sock_sendto(self.sip, response.to_bytes(), source)

    # -- media -----------------------------------------------------------------------------

    def rtp_received(self):
        """RTP packets that arrived since the last call."""
        count = 0
        while True:
            try:
                self.rtp.recvfrom(2048)
            except BlockingIOError:
                return count
            count += 1

    async def send_rtp(self, count, payload_type=0, interval=0.02):
        for _ in range(count):
            await self.loop.sock_sendto(self.rtp, self._rtp(payload_type, b"\xff" * 160, 160),
                                        self.remote_rtp)
            await asyncio.sleep(interval)

    async def send_digits(self, digits, event_type=101):
        for digit in digits:
            self._seq += 1
            timestamp = 1000 + 800 * self._seq
            for payload, marker in event_payloads(digit):
                packet = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | event_type,
                                     self._next(), timestamp, 0x1234) + payload
                await self.loop.sock_sendto(self.rtp, packet, self.remote_rtp)
                await asyncio.sleep(0.005)

    def _rtp(self, payload_type, payload, samples):
        self._timestamp = getattr(self, "_timestamp", 0) + samples
        return struct.pack("!BBHII", 0x80, payload_type, self._next(), self._timestamp,
                           0x1234) + payload

    def _next(self):
        self._sequence = (getattr(self, "_sequence", 0) + 1) % 65536
        return self._sequence

    # -- inside --------------------------------------------------------------------------

    def _via(self):
        return ("Via", "SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%d;rport"
                % (self.port, next(_numbers)))

    async def _send(self, request):
        await self.loop.sock_sendto(self.sip, request.to_bytes(), self.peer)


def _socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _media_of(body):
    if not body:
        return None
    session = sdp.parse(body)
    audio = next((m for m in session.media if m.kind == "audio" and m.port), None)
    return (session.address_of(audio), audio.port) if audio is not None else None
