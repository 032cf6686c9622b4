"""The intercom's and the cameras' calls: who may call in, when they answer, the doorbell
calling the household, and the PIN that opens the door.

Incoming: an INVITE to an intercom is challenged like a control request (only `[[users]]`
sharing the device get through); past `max_calls` it gets 486; an offer with nothing we
speak gets 488. It rings (180) and answers after `answer_after` seconds, at once with
`Answer-Mode: Auto` (RFC 5373); an INVITE without an offer gets ours in the 200 and its
answer from the ACK. A call longer than `max_call_time`, or without RTP for `rtp_timeout`
seconds, is hung up.

Outgoing: a doorbell press with `call` targets rings them, all at once (`ring =
"parallel"`) or one after another (`"sequential"`, `ring_time` each); the first to answer
gets the visitor, the others a CANCEL; when nobody answers, the doorbell's `notify` targets
get "Missed visitor at 10:32". A press while the doorbell rings or a call is up is logged
and changes nothing. Calls go through the home proxy when there is one.

Video: a camera's calls carry its H.264 (sendonly), and so do an intercom's with `video =
true`, beside the audio, when the caller offers video; the doorbell's calls offer it too.
A camera runs one encoder for all its calls (media/camera.py). A keyframe request in SIP
INFO (picture_fast_update) reaches the camera like an RTCP PLI. When the encoder gives up,
a camera's call is hung up and an intercom's goes on without video.

DTMF (RFC 4733 in the RTP, or SIP INFO) is collected in an answered call with an allowed
user or a target the doorbell rang: the intercom's `dtmf_code` and `#` pulse its `strike`
relay; three wrong codes end the call. Every attempt is logged and published as an event.

Media (RTP, the audio device) is media/session.py's; SIP mechanics are call.py's.
"""

import asyncio
import datetime
import logging

from . import commands
from .call import ANSWERED, ENDED, RINGING, IncomingCall, OutgoingCall
from .media import camera as cameras
from .media import dtmf, srtp
from .media.audio import AudioError, open_audio
from .media.session import MediaError, MediaSession
from .media.video import VideoStream
from .net.resolver import ResolveError, resolve
from .redact import printable
from .sip import sdp
from .sip.digest import same_credentials
from .sip.errors import ParseError
from .sip.uri import parse_uri

log = logging.getLogger(__name__)

DESCRIBE_WAIT = 5.0  # seconds a call waits for a camera's encoder to describe its stream
DOORBELL_DESCRIBE_WAIT = 1.5  # ... and a doorbell press, once, before it rings anyone
PICTURE_FAST_UPDATE = "picture_fast_update"  # in application/media_control+xml (INFO)
WRONG_CODES = 3  # wrong door codes in a row (in any calls) that lock the intercom ...
LOCKOUT = 60.0  # ... for this long, doubling with each further one


class Calls:
    def __init__(self, agent):
        """`agent`: the Agent whose stack, access, devices, config, alerts, registrations
        and MQTT bridge the calls use (read when needed: a reload may replace them)."""
        self.agent = agent
        self.stack = agent.stack
        self.calls = {}  # id -> Call, until it ends
        self._ended = {}  # id -> (Call, loop time to forget it): late answers still reach it
        self._dialogs = {}  # dialog id -> Call
        self._lockouts = {}  # intercom name -> (wrong codes in a row, locked until)
        self._timers = {}  # call id -> [timer handles]
        self._pins = {}  # call id -> dtmf.PinCollector
        self._rings = {}  # doorbell name -> the task ringing the household
        self._tasks = set()
        self.cameras = {}  # camera name -> Camera (media/camera.py)
        self._loop = None
        self._closing = False
        self.history = []  # the last calls, for status

    def start(self, loop):
        self._loop = loop
        for spec in self.agent.config.devices:
            if spec.type == "intercom":
                self._spawn(self._check_audio(spec))
        for problem in cameras.config_problems(self.agent.config):
            log.error("%s; the camera's calls are refused until that is fixed", problem)

    async def _check_audio(self, spec):
        """Open the intercom's audio once at start, so that a missing sound card is in the
        log now, with the devices there are, rather than at the first visitor."""
        try:
            port = await asyncio.to_thread(open_audio, spec.audio)
        except AudioError as error:
            log.error("intercom %s, audio = %r: %s; its calls are refused until that is "
                      "fixed", spec.name, spec.audio, error)
            return
        await asyncio.to_thread(port.close)
        log.info("%s: audio %s", spec.name, port.name)

    # -- routing from the agent ----------------------------------------------------------------

    def owns(self, dialog):
        return dialog is not None and dialog.id in self._dialogs

    def request(self, event):
        """A request in a call's dialog (ACK, BYE, re-INVITE, INFO, OPTIONS)."""
        call = self._dialogs.get(event.dialog.id)
        if call is not None:
            call.in_dialog(event)

    def cancelled(self, event):
        for call in list(self.calls.values()):
            if isinstance(call, IncomingCall) and call.transaction is event.transaction:
                call.cancelled()
                return True
        return False

    def handle(self, event):
        """A client transaction event: True when it belongs to a call (one that ended
        within 64*T1 too: the answer to its BYE or CANCEL, a fork's late 2xx)."""
        now = self._loop.time() if self._loop is not None else 0.0
        for call_id, (_, forget_at) in list(self._ended.items()):
            if now >= forget_at:
                del self._ended[call_id]
        for call in list(self.calls.values()) + [c for c, _ in self._ended.values()]:
            if call.response(event):
                return True
        return False

    # -- incoming --------------------------------------------------------------------------

    def invite(self, event, name):
        """A new INVITE to intercom or camera `name`."""
        agent = self.agent
        spec = agent.spec(name)
        request = event.request
        user = agent.access.authorize(event, name)
        if user is None:
            return  # answered: 401/403/503
        if self._closing:
            agent.respond(event, 503, "Shutting Down")
            return
        if spec.type == "camera":
            active = [c for c in self.calls.values() if c.state != ENDED and c.device == name]
        else:  # the doorbell's calls use this intercom's audio too: they count
            active = [c for c in self.calls.values() if c.state != ENDED
                      and (c.device == name or c.direction == "out")]
        if len(active) >= spec.max_calls:
            log.info("call from %s to %s refused: busy (%d call(s))", user, name, len(active))
            agent.respond(event, 486)
            return
        offer = None
        if request.body:
            try:
                offer = sdp.parse(request.body)
            except ParseError as error:
                agent.respond(event, 400, "Malformed SDP: " + error.reason)
                return
            if not _answerable(offer, spec, self._video_available(spec)):
                speaks = "H.264 (packetization-mode=1) over RTP/AVP" \
                    if spec.type == "camera" else "PCMU or PCMA over RTP/AVP" + (
                        " or SRTP (SDES)" if srtp.available() else "")
                problem = srtp.problem(offer) if spec.type != "camera" else None
                if problem is not None:
                    log.warning("call %s to %s refused (488): %s", request.call_id, name,
                                problem)
                agent.respond(event, 488, fields=(
                    ("Warning", '304 %s "%s only"' % (agent.host_part(), speaks)),))
                return
        contact = agent.contact_for(name, event.source[0])
        call = IncomingCall(self.stack, self._loop, self, name, contact, event, user)
        call.offer = offer
        call.auto = _auto_answer(request)
        self._add(call)
        log.info("call %s from %s (%s) to %s", call.id, printable(call.peer), user, name)
        self._event(name, "call_started", call, user=user)
        self._spawn(self._answer_incoming(call, spec))

    async def _answer_incoming(self, call, spec):
        if spec.type == "camera":
            problem = self._camera(spec.name).unavailable()
            if problem is not None:
                log.error("call %s: camera %s: %s", call.id, spec.name, problem)
                call.reject(503, "Camera Unavailable", fields=(("Retry-After", 30),))
                return
        try:
            await self._open_media(call, spec, call.destination[1])
        except MediaError as error:
            log.error("call %s: %s", call.id, error)
            call.reject(500, "Media Unavailable")
            return
        if call.state != RINGING:
            call.media.close()  # cancelled meanwhile
            return
        if spec.type == "camera" and call.media.video.description is None:
            reason = self.cameras[spec.name].failure or "the encoder did not start"
            log.error("call %s: camera %s: %s", call.id, spec.name, reason)
            call.reject(503, "Camera Unavailable", fields=(("Retry-After", 30),))
            return
        delay = 0.0 if call.auto else getattr(spec, "answer_after", 0.0)  # cameras: at once
        if delay > 0:
            call.ring()
        self._timer(call, delay, self._answer, call)

    def _answer(self, call):
        if call.state != RINGING or call.media.closed:
            return
        media = call.media
        version = call.sdp_version + 1
        if call.offer is not None:
            text = media.answer(call.offer, call.id, version)
            if text is None:
                call.reject(488)
                return
        else:
            text = media.offer(call.id, version, secure=call.secure)
        call.answer(text)

    # -- outgoing: the doorbell --------------------------------------------------------------

    def doorbell(self, name):
        """Doorbell `name` was pressed: ring its `call` targets. False when it has none
        (its presses then alert its `notify` targets one by one, as before)."""
        spec = self.agent.spec(name)
        if spec is None or not getattr(spec, "call", ()) or self._closing:
            return False
        if name in self._rings:
            log.info("%s pressed while it rings the household: nothing more to do", name)
            return True
        intercom = self._intercom()
        busy = [c for c in self.calls.values() if c.state != ENDED and c.reason is None
                and (intercom is None or c.device in (name, intercom.name))]
        if busy:
            log.info("%s pressed during a call: the call goes on", name)
            return True
        task = self._spawn(self._ring_household(name, spec))
        self._rings[name] = task
        task.add_done_callback(lambda _: self._rings.pop(name, None))
        return True

    async def _ring_household(self, name, spec):
        targets = list(dict.fromkeys(spec.call))
        intercom = self._intercom()
        if intercom is not None and self._video_available(intercom):
            # Once per press, briefly: a camera that does not start leaves the video out.
            await self._camera(intercom.camera or self._only_camera()).describe(
                DOORBELL_DESCRIBE_WAIT)
        log.info("%s: ringing %s (%s)", name, ", ".join(targets), spec.ring)
        if spec.ring == "sequential":
            answered = None
            for target in targets:
                answered = await self._ring([target], name, spec.ring_time)
                if answered is not None or self._closing:
                    break
        else:
            answered = await self._ring(targets, name, spec.ring_time)
        if answered is None and not self._closing:
            text = "Missed visitor at %s" % datetime.datetime.now().strftime("%H:%M")
            log.info("%s: nobody answered; %s", name, text)
            self.agent.alerts.message(name, text)
            self._publish(name, "missed_visitor", targets=targets)

    async def _ring(self, targets, name, ring_time):
        """Ring `targets` at once; the call that answered first, or None."""
        legs = []
        for target in targets:
            leg = await self._dial(name, target)
            if leg is not None:
                legs.append(leg)
        if not legs:
            return None
        winner = None
        deadline = self._loop.time() + ring_time
        while self._loop.time() < deadline and not self._closing:
            winner = next((leg for leg in legs if leg.state == ANSWERED), None)
            if winner is not None or all(leg.state == ENDED for leg in legs):
                break
            await asyncio.sleep(0.05)
        for leg in legs:
            if leg is not winner and leg.state != ENDED:
                leg.cancel("answered elsewhere" if winner is not None else "no answer")
        return winner

    async def _dial(self, name, target):
        """An INVITE from device `name` to `target`: an OutgoingCall, or None."""
        agent = self.agent
        intercom = self._intercom()
        registrations = agent.registrations
        proxy = agent.config.proxy
        if registrations is not None and registrations.destination is not None:
            destination = registrations.destination
            route = registrations.route
            from_uri = "sip:%s@%s" % (name, registrations.domain)
        else:
            try:
                destination = tuple(await resolve(parse_uri(target),
                                                  transports=tuple(self.stack.endpoint.local)))
            except (ResolveError, ParseError) as error:
                log.warning("%s: cannot call %s: %s", name, target, error)
                return None
            route = ()
            from_uri = agent.device_uri(name)
        credentials = None
        if proxy is not None:
            device = agent.spec(name)
            credentials = same_credentials(device.username or proxy.username,
                                           (device.password or proxy.password).reveal())
        contact = agent.contact_for(name, destination[0])
        call = OutgoingCall(self.stack, self._loop, self, name, contact, target, from_uri,
                            destination, route, credentials)
        call.allowed = True  # a target the doorbell rang may open the door
        try:
            await self._open_media(call, intercom, destination[1], describe=False)
        except MediaError as error:
            log.error("%s: cannot call %s: %s", name, target, error)
            return None
        call.offer = call.media.offer(call.id, 1, secure=call.secure)
        self._add(call)
        self._event(name, "call_started", call)
        call.start()
        return call

    # -- what a call tells us --------------------------------------------------------------

    def call_answered(self, call):
        log.info("call %s with %s answered", call.id, printable(call.peer))
        self._event(call.device, "call_answered", call)
        spec = self._intercom() if call.direction == "out" else self.agent.spec(call.device)
        limit = spec.max_call_time if spec is not None else 600.0
        self._timer(call, limit, call.hang_up, "longer than %g s" % limit)

    def call_ended(self, call):
        log.info("call %s with %s ended: %s", call.id, printable(call.peer), call.reason)
        for handle in self._timers.pop(call.id, ()):
            handle.cancel()
        self._pins.pop(call.id, None)
        self.calls.pop(call.id, None)
        t1 = self.stack.endpoint.timers.t1 / 1000.0
        self._ended[call.id] = (call, self._loop.time() + 64 * t1)
        if call.dialog is not None:
            self._dialogs.pop(call.dialog.id, None)
        if call.media is not None:
            call.media.close()
        duration = round(call.ended_at - call.answered_at, 1) if call.answered_at else 0
        self._event(call.device, "call_ended", call, reason=call.reason, duration=duration)
        self.history.append(dict(call.status(), duration=duration))
        del self.history[:-20]

    def call_sdp(self, call, session):
        if call.media is not None:
            call.media.accept(session)
        if call.dialog is not None:
            self._dialogs[call.dialog.id] = call

    def call_offer(self, call, offer):
        return reoffer(call, offer)

    def call_info(self, call, request):
        kind = (request.get("content-type") or "").split(";")[0].strip().lower()
        if kind == "application/media_control+xml":
            video = call.media.video if call.media is not None else None
            if video is not None and PICTURE_FAST_UPDATE.encode() in (request.body or b""):
                video.keyframe()
            return
        digit = dtmf.parse_info(request.get("content-type"), request.body)
        if digit is not None:
            self._digit(call, digit)

    def _digit(self, call, digit):
        intercom = self._intercom() if call.direction == "out" else self.agent.spec(call.device)
        if call.state != ANSWERED or intercom is None or intercom.type != "intercom" \
                or not intercom.dtmf_code \
                or not getattr(call, "allowed", True):
            return
        code, pins = self._pins.get(call.id, (None, None))
        if code != intercom.dtmf_code:  # a new call, or a reload changed the code
            pins = dtmf.PinCollector(intercom.dtmf_code, attempts=10 ** 6)  # locks: below
            self._pins[call.id] = (intercom.dtmf_code, pins)
        before = pins.failures
        result = pins.feed(digit)
        if result is None or (result == "refused" and pins.failures == before):
            return  # digits still coming, or a lone # (it guesses nothing)
        who = getattr(call, "user", None) or call.peer
        wrong, locked_until = self._lockouts.get(intercom.name, (0, 0.0))
        now = self._loop.time()
        if now < locked_until:
            result = "locked"  # not even checked: guessing waits out the lockout
        if result == "accepted":
            self._lockouts.pop(intercom.name, None)
            log.info("call %s: the door code from %s is right: opening %s", call.id, who,
                     intercom.strike)
            self._open(intercom.strike)
            self._publish(call.device, "dtmf_accepted", call=call.id, by=who)
            return
        if result != "locked":
            wrong += 1
            if wrong >= WRONG_CODES:
                # Across calls: three wrong codes lock the intercom for a while, longer
                # each time, whoever calls.
                lock = LOCKOUT * 2 ** min(wrong - WRONG_CODES, 6)
                locked_until = now + lock
                log.warning("intercom %s: %d wrong door codes in a row; none is taken for "
                            "%.0f s", intercom.name, wrong, lock)
                result = "locked"
            self._lockouts[intercom.name] = (wrong, locked_until)
        log.warning("call %s: a wrong door code from %s (%d in a row)%s", call.id, who,
                    wrong, "" if result != "locked" else "; hanging up")
        self._publish(call.device, "dtmf_refused", call=call.id, by=who, failures=wrong)
        if result == "locked":
            call.hang_up("three wrong door codes")

    def media_dtmf(self, call, digit):
        self._digit(call, digit)

    def media_timeout(self, call, seconds):
        call.hang_up("no RTP for %g s" % seconds)

    def video_timeout(self, call, seconds):
        """No RTCP about the video: a call without audio ends; with audio, the audio's
        RTP timeout tells whether the peer is there."""
        if call.media is not None and call.media.negotiated is None:
            call.hang_up("no RTCP for %g s" % seconds)

    def video_failed(self, call, reason):
        """The camera's encoder gave up: a camera's call ends, an intercom's goes on."""
        if call.media is not None and call.media.audio_spec is None:
            call.hang_up("the camera stopped: %s" % reason)
        else:
            log.warning("call %s: the video stopped (%s); the audio goes on", call.id, reason)

    def reconsider(self, config):
        """After a reload to `config`: hang up the calls in of users no longer allowed the
        intercom or camera they called, and those to a device no longer of its type; a
        camera whose settings changed stops (the device is free for the new encoder),
        its calls going on without video, or ending when video was all they had."""
        specs = {spec.name: spec for spec in config.devices}
        for name, camera in list(self.cameras.items()):
            if specs.get(name) == camera.spec:
                continue
            del self.cameras[name]
            for viewer in list(camera.viewers):
                camera.unwatch(viewer)
                viewer.video_failed("the camera's settings changed")
            self._spawn(camera.close())
        for call in list(self.calls.values()):
            if not isinstance(call, IncomingCall):
                continue
            spec = specs.get(call.device)
            kind = "camera" if call.media is not None and call.media.audio_spec is None \
                else "intercom"
            if spec is None or spec.type != kind:
                call.hang_up("the %s left the config" % kind)
            elif not self.agent.access.allowed(call.user, call.device):
                call.hang_up("%s may no longer use %s" % (call.user, call.device))

    # -- status and end --------------------------------------------------------------------

    def device_status(self, name):
        """What the status of device `name` adds from its calls: a camera's encoder (pids,
        restarts, why it last failed)."""
        camera = self.cameras.get(name)
        return {"encoder": camera.status()} if camera is not None else {}

    def status(self):
        out = []
        for call in self.calls.values():
            entry = call.status()
            if call.media is not None:
                entry["media"] = call.media.status()
            out.append(entry)
        return out

    async def close(self, wait=1.0):
        """Hang up every call and wait briefly for the BYEs to be answered."""
        self._closing = True
        for task in list(self._rings.values()):
            task.cancel()
        ending = list(self.calls.values())
        for call in ending:
            call.hang_up("the intercom is stopping")
        deadline = self._loop.time() + wait if self._loop else 0
        while self._loop is not None and self._loop.time() < deadline and any(
                call.busy for call in ending):
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        for camera in list(self.cameras.values()):
            await camera.close()

    # -- inside ----------------------------------------------------------------------------

    async def _open_media(self, call, spec, peer_host, describe=True):
        """The call's MediaSession, open: audio for an intercom (`spec`, None for a
        doorbell without one), video for a camera, both for an intercom with video; with
        `describe`, waiting for a camera's encoder to say what its stream is, when that is
        not known yet (without, the video is left out until it is)."""
        nat = self.agent.config.nat
        stun = nat.stun if nat is not None else None
        camera = None
        if spec is not None and spec.type == "camera":
            camera = self._camera(spec.name)
        elif spec is not None and spec.video and _wants_video(call):
            camera = self._camera(spec.camera or self._only_camera())
            problem = camera.unavailable()
            if problem is not None:
                log.warning("call %s: no video: camera %s: %s", call.id, camera.name, problem)
                camera = None
        video = None
        if camera is not None:
            video = VideoStream(
                self._loop, camera, stun=stun, peer_host=peer_host,
                on_failed=lambda reason: self.video_failed(call, reason),
                on_timeout=lambda seconds: self.video_timeout(call, seconds),
                rtp_timeout=spec.rtp_timeout)
        media = MediaSession(
            self._loop, None if spec is not None and spec.type == "camera"
            else spec.audio if spec is not None else "null",
            on_dtmf=lambda digit: self.media_dtmf(call, digit),
            on_timeout=lambda seconds: self.media_timeout(call, seconds),
            rtp_timeout=spec.rtp_timeout if spec is not None else 30.0,
            stun=stun, peer_host=peer_host, video=video)
        call.media = media
        if camera is not None and describe:
            await camera.describe(DESCRIBE_WAIT)
        await media.open(self.stack.local_host_toward("udp", peer_host)
                         or self.stack.endpoint.local["udp"][0])

    def _camera(self, name):
        """The Camera of device `name` (made at its first call)."""
        camera = self.cameras.get(name)
        if camera is None:
            camera = cameras.Camera(self._loop, self.agent.spec(name),
                                    self.agent.config.agent.simulate)
            self.cameras[name] = camera
        device = self.agent.devices.get(name)  # rebuilt by a reload, maybe
        camera.on_viewers = device.watched if device is not None else None
        return camera

    def _video_available(self, spec):
        """Whether calls to device `spec` may have video now: a camera's, or an intercom's
        with video = true whose camera can start."""
        if spec.type == "camera":
            return True
        return bool(getattr(spec, "video", False)) and self._camera(
            spec.camera or self._only_camera()).unavailable() is None

    def _only_camera(self):
        return next(d.name for d in self.agent.config.devices if d.type == "camera")

    def _open(self, strike):
        device = self.agent.devices.get(strike)
        if device is None:
            log.error("the strike %r is not a device now; the door stays shut", strike)
            return
        device.apply(commands.Command("pulse"))

    def _intercom(self):
        """The intercom whose audio, code and strike the doorbell's calls use."""
        return next((d for d in self.agent.config.devices if d.type == "intercom"), None)

    def _add(self, call):
        self.calls[call.id] = call
        if call.dialog is not None:
            self._dialogs[call.dialog.id] = call

    def _timer(self, call, delay, function, *args):
        handle = self._loop.call_later(delay, function, *args)
        self._timers.setdefault(call.id, []).append(handle)

    def _spawn(self, coroutine):
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _event(self, device, kind, call, **fields):
        self._publish(device, kind, call=call.id, peer=call.peer,
                      direction=call.direction, **fields)

    def _publish(self, device, kind, **fields):
        mqtt = self.agent.mqtt
        if mqtt is not None:
            mqtt.event(device, kind, **fields)


def reoffer(call, offer):
    """The SDP for a re-INVITE to `call`: the answer to its `offer` (media follows: hold,
    resume, a new address), or our offer when it has none; None to refuse it (488)."""
    media = call.media
    if media is None:
        return None
    version = call.sdp_version + 1
    if offer is None:
        return media.offer(call.id, version, secure=call.secure)
    text = media.answer(offer, call.id, version)
    if text is not None:
        video = media.video.negotiated if media.video is not None else None
        agreed = ([media.negotiated.direction] if media.negotiated else []) + (
            ["video " + video.direction] if video else [])
        log.info("call %s: media now %s", call.id, ", ".join(agreed) or "refused")
    return text


def _answerable(offer, spec, video_available):
    """Whether `offer` has a stream that device `spec` can take (a camera's video, an
    intercom's audio, SRTP too when pylibsrtp is there, or its video when it has some)."""
    video = (9, sdp.Video("42e01f")) if video_available else None
    port = None if spec.type == "camera" else 9
    key = srtp.PROBE_KEY if srtp.available() else None
    return sdp.answer(offer, "0.0.0.0", port, "0", video=video, srtp_key=key) is not None


def _wants_video(call):
    """Whether an intercom's call should carry video: the doorbell's calls offer it, an
    INVITE without an offer gets it in ours, and one with an offer when it has video."""
    if call.direction == "out" or call.offer is None:
        return True
    return any(m.kind == "video" and m.port != 0 for m in call.offer.media)


def _auto_answer(request):
    """RFC 5373: Answer-Mode (or Priv-Answer-Mode) Auto asks for an answer at once."""
    for name in ("answer-mode", "priv-answer-mode"):
        value = request.get(name)
        if value and value.split(";")[0].strip().lower() == "auto":
            return True
    return False
