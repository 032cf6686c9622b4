"""`appliance call URI`: a call from the command line, made with the intercom's own call
and media code (call.py, media/session.py): INVITE with our offer (digest when challenged),
audio from and to an audio port (the default device, `null`, or a WAV file to send), with
`video` a camera's H.264 written to a file (media/video.py's VideoReceiver), DTMF digits to
send once answered, and a BYE at Ctrl-C or after `duration` seconds. A sips: or
transport=tls URI is called over TLS, the server verified against `ca` (else the system's
CAs): the call's SIP, both ways, goes on that connection (no tls: listener, no certificate
of our own); the audio is plain RTP, as our offer does not ask for SRTP."""

import asyncio
import signal

from .agent import USER_AGENT
from .call import ALLOW, ENDED, OutgoingCall
from .calls import reoffer
from .client import ClientError, _target, listeners
from .media.session import MediaError, MediaSession
from .media.video import VideoReceiver
from .net.resolver import resolve
from .net.stack import SipStack
from .net.tls import TlsContexts
from .sip.digest import same_credentials
from .sip.endpoint import Capabilities
from .sip.events import RequestReceived


class _Printer:
    """The listener of the call: prints what happens, one line each."""

    def __init__(self, call_done, digits, out):
        self.call_done = call_done
        self.digits = digits
        self.out = out

    def call_answered(self, call):
        negotiated = call.media.negotiated
        video = call.media.video
        self.out("answered by %s (%s%s%s)" % (
            call.peer, negotiated.codec if negotiated else "no audio",
            ", telephone-event" if negotiated and negotiated.event_type else "",
            "" if video is None else ", H.264 video" if video.negotiated is not None
            and video.negotiated.receiving else ", no video"))
        if self.digits:
            if call.media.send_digits(self.digits):
                self.out("sending DTMF %s" % self.digits)
            else:
                self.out("the other side takes no DTMF events; not sent")

    def call_ended(self, call):
        media = call.media
        if media is not None:
            status = media.status()
            self.out("ended: %s (RTP sent %s, received %s, lost %s)" % (
                call.reason, status.get("sent", 0), status.get("received", 0),
                status.get("lost", 0)))
            video = status.get("video")
            if video is not None:
                self.out("video: %d packets, %d pictures (%d keyframes), lost %d" % (
                    video["received"], video["frames"], video["keyframes"], video["lost"]))
            media.close()
        else:
            self.out("ended: %s" % call.reason)
        self.call_done.set()

    def call_sdp(self, call, session):
        call.media.accept(session)

    def call_offer(self, call, offer):
        text = reoffer(call, offer)
        if text is not None:
            agreed = call.media.negotiated or call.media.video.negotiated
            self.out("media now %s" % (agreed.direction if agreed else "refused"))
        return text

    def call_info(self, call, request):
        pass


async def place_call(uri_text, audio="default", username=None, password=None, proxy=None,
                     duration=None, digits="", timeout=30.0, video=None, out=print, ca=None,
                     from_uri=None, listen=()):
    """Call `uri_text` until either side hangs up (or `duration` seconds after the
    answer), writing its video to the file `video` when given; returns 0 when the call
    was answered, 1 otherwise. `from_uri` and `listen` as for client.send_once."""
    target = _target(uri_text, "URI")
    next_hop = _target(proxy, "proxy") if proxy else target
    transport, address, port = await resolve(next_hop, transports=("udp", "tcp", "tls"))
    loop = asyncio.get_running_loop()
    call_done = asyncio.Event()
    holder = []

    def on_event(event):
        if not holder:
            return
        call = holder[0]
        if isinstance(event, RequestReceived):
            if event.dialog is not None and event.dialog is call.dialog:
                call.in_dialog(event)
            elif event.transaction is not None:
                stack.respond(event.transaction, 481)
        else:
            call.response(event)

    specs, advertise = listeners(listen, next_hop, transport, address)
    stack = SipStack(specs, on_event,
                     Capabilities(allow=tuple(m.strip() for m in ALLOW.split(",")),
                                  accept=("application/sdp",)),
                     user_agent=USER_AGENT, advertise=advertise, tls=TlsContexts(ca=ca))
    await stack.start()
    media = None
    video_file = open(video, "wb") if video else None  # closed in the finally below
    try:
        endpoint = stack.endpoint
        local_host = stack.local_host_toward(transport, address) or \
            endpoint.local[transport][0].strip("[]")
        if advertise:
            local_host = address
        media = MediaSession(loop, audio, video=VideoReceiver(loop, video_file)
                             if video_file is not None else None)
        try:
            await media.open(local_host)
        except MediaError as error:
            raise ClientError(str(error)) from None
        local_port = endpoint.local[transport][1]
        shown = "[%s]" % local_host if ":" in local_host else local_host
        contact = "sip:appliance@%s:%d%s" % (shown, local_port,
                                             "" if transport == "udp"
                                             else ";transport=" + transport)
        credentials = same_credentials(username, password) if username and password else None
        listener = _Printer(call_done, digits, out)
        if from_uri is None:
            from_uri = "sip:%s@%s" % (username, target.host) if username \
                else "sip:appliance@%s" % shown
        call = OutgoingCall(stack, loop, listener, "appliance", contact, str(target),
                            from_uri, (transport, address, port),
                            ("%s;lr" % next_hop,) if proxy else (), credentials)
        call.media = media
        call.offer = media.offer(call.id, 1, secure=call.secure)
        holder.append(call)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, call.hang_up, "hung up here")
        out("calling %s" % uri_text)
        call.start()
        answered_by = loop.time() + timeout
        while not call_done.is_set():
            if call.state != ENDED and call.answered_at is None and loop.time() > answered_by:
                call.hang_up("no answer within %g s" % timeout)
            if duration is not None and call.answered_at is not None \
                    and loop.time() - call.answered_at >= duration:
                call.hang_up("hung up after %g s" % duration)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the BYE's 200, if it hung up here
        return 0 if call.answered_at is not None else 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if media is not None:
            media.close()
        if video_file is not None:
            video_file.close()
        await stack.close()
