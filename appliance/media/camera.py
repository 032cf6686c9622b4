"""A camera: one encoder process per camera, its H.264 fanned out to every call watching.

The encoder is an existing program, never Python. ffmpeg encodes its test picture (`source
= "test"`) and V4L2 devices (`"/dev/video0"`), with libx264 or the Pi's hardware encoder
(`encoder = "h264_v4l2m2m"`); for the Pi camera (`"rpicam"`) rpicam-vid encodes in
hardware and ffmpeg only packetizes. Either way ffmpeg sends RTP (RFC 6184, packetization
mode 1, packets of at most 1200 bytes) to a loopback socket of ours, and each call's
VideoStream (video.py) sends the packets on with its own SSRC, sequence numbers and
timestamps. Timestamps are kept on one 90 kHz timeline across encoder restarts.

The encoder starts with the first viewer and stops with the last. It sends a keyframe every
`keyframe_interval` seconds, with the parameter sets in-band before each, and its first
picture after a start is one: a keyframe request (RTCP PLI or FIR, SIP INFO) restarts it,
unless it is starting already or its next keyframe is due sooner than a restart takes.
An encoder that exits on its own, or sends nothing for STALL seconds (a camera that
hangs), is started again after 1 s, then 2 s; at the third failure in a row with no
picture between, every viewer is told (`video_failed`) and the camera rests until the next
call asks for it.

A viewer is any object with `video_packet(timestamp, marker, payload, keyframe)` and
`video_failed(reason)`.
"""

import asyncio
import collections
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

from ..sip import sdp
from . import h264
from .rtp import parse_rtp
from .session import MediaError, bind_pair

log = logging.getLogger(__name__)

PAYLOAD_TYPE = 96  # what the encoder writes; each call rewrites it to its own
PACKET_SIZE = 1200  # bytes of RTP: under the MTU of a VPN or PPPoE link too
MAX_FAILURES = 3
BACKOFF = (1.0, 2.0)  # seconds before the first and the second start again
STALL = 10.0  # seconds without a packet (from its start too) that count as a failure
STOP_WAIT = 2.0  # seconds an encoder has to exit after SIGTERM before SIGKILL
RESTART_GUESS = 0.5  # seconds a restart takes to a keyframe, until one is measured
MIN_RESTART = 1.0  # seconds between restarts for keyframe requests
PROBE_LINGER = 3.0  # seconds the encoder runs on after describe(), for the call that asked
REPLAY_AGE = 0.5  # a new viewer gets the pictures since a keyframe this recent, at once
REPLAY_PACKETS = 256
READ_BATCH = 64
CLOCK = sdp.VIDEO_CLOCK


class CameraError(Exception):
    """The camera's encoder cannot run (no ffmpeg, no device)."""


def problems(spec, simulate=False, probe=False):
    """What stops camera `spec` (a CameraDevice) from streaming on this machine, as
    sentences that end in the fix; [] when nothing does. With `probe`, the Pi camera is
    looked for too (`rpicam-vid --list-cameras`: a second or so; not while it streams)."""
    out = []
    source = "test" if simulate else spec.source
    if shutil.which("ffmpeg") is None:
        out.append("ffmpeg is not installed; install it (apt install ffmpeg)")
    if source == "rpicam":
        if _rpicam() is None:
            out.append("rpicam-vid is not installed; install it (apt install rpicam-apps) "
                       "or use a V4L2 source such as \"/dev/video0\"")
        elif probe and not _pi_camera_found():
            out.append("no Pi camera found (rpicam-vid --list-cameras lists none); check its "
                       "ribbon cable and camera_auto_detect=1 in /boot/firmware/config.txt")
    elif source != "test":
        try:
            mode = os.stat(source).st_mode
        except OSError:
            out.append("%s: no such camera; connect one (ls /dev/video* lists them) or set "
                       "source = \"test\" for a test picture" % source)
        else:
            if not stat.S_ISCHR(mode):
                out.append("%s is not a video device; name one such as /dev/video0" % source)
            elif not os.access(source, os.R_OK | os.W_OK):
                out.append("%s is not readable by this user; add it to the video group "
                           "(usermod -aG video USER)" % source)
    return out


def config_problems(config, probe=False):
    """problems() of every camera of `config`, each led by its key: "devices[5].source: "."""
    return ["devices[%d].source: %s" % (index, problem)
            for index, spec in enumerate(config.devices) if spec.type == "camera"
            for problem in problems(spec, config.agent.simulate, probe)]


def _pi_camera_found():
    try:
        listed = subprocess.run([_rpicam(), "--list-cameras"], capture_output=True, text=True,
                                timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "No cameras available" not in listed.stdout + \
        listed.stderr


def _rpicam():
    return shutil.which("rpicam-vid") or shutil.which("libcamera-vid")


def commands(spec, port, simulate=False, local_port=None):
    """The argv of each process of the pipeline, the first feeding the next through a pipe
    when there are two, the last sending RTP to 127.0.0.1:`port`, from `local_port` (and
    its unused RTCP from the next port) when given."""
    fps = spec.framerate
    gop = max(1, round(fps * spec.keyframe_interval))
    size = "%dx%d" % (spec.width, spec.height)
    ffmpeg = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    out = ["-an", "-f", "rtp", "-payload_type", str(PAYLOAD_TYPE), "-rtpflags", "skip_rtcp",
           "rtp://127.0.0.1:%d?pkt_size=%d" % (port, PACKET_SIZE)
           + ("" if local_port is None else "&localrtpport=%d&localrtcpport=%d"
              % (local_port, local_port + 1))]
    source = "test" if simulate else spec.source
    if source == "rpicam":
        camera = [_rpicam() or "rpicam-vid", "--nopreview", "--timeout", "0",
                  "--codec", "h264", "--profile", "baseline", "--inline", "--flush",
                  "--width", str(spec.width), "--height", str(spec.height),
                  "--framerate", str(fps), "--bitrate", str(spec.bitrate * 1000),
                  "--intra", str(gop), "--output", "-"]
        packetizer = ffmpeg + ["-fflags", "nobuffer", "-probesize", "32", "-f", "h264",
                               "-framerate", str(fps), "-i", "pipe:0", "-c:v", "copy"] + out
        return [camera, packetizer]
    if source == "test":
        grab = ["-re", "-f", "lavfi", "-i", "testsrc2=size=%s:rate=%s" % (size, fps)]
    else:
        grab = ["-f", "v4l2", "-framerate", str(fps), "-video_size", size, "-i", source]
    rate = ["-b:v", "%dk" % spec.bitrate, "-maxrate", "%dk" % spec.bitrate,
            "-bufsize", "%dk" % max(1, spec.bitrate // 2)]
    if spec.encoder == "h264_v4l2m2m":
        # It puts the parameter sets in extradata only: dump_extra puts them before each
        # keyframe too, where a viewer that joins later finds them.
        encode = ["-c:v", "h264_v4l2m2m", "-pix_fmt", "yuv420p", "-g", str(gop),
                  "-bsf:v", "dump_extra"] + rate
    else:
        encode = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                  "-profile:v", "baseline", "-pix_fmt", "yuv420p",
                  "-x264-params", "keyint=%d:min-keyint=%d:scenecut=0" % (gop, gop)] + rate
    return [ffmpeg + grab + encode + out]


class Camera:
    def __init__(self, loop, spec, simulate=False):
        self.loop = loop
        self.spec = spec
        self.name = spec.name
        self.simulate = simulate
        self.viewers = []
        self.description = None  # sdp.Video once the encoder has sent its parameter sets
        self.failure = None  # why the encoder last gave up, while it rests
        self.restarts = 0
        self.packets = 0
        self.frames = 0
        self.on_viewers = None  # called with the number of viewers when it changes
        self._sps = None
        self._pps = None
        self._described = asyncio.Event()
        self._socket = None
        self._source = None  # the encoder's (host, port), chosen per start
        self._processes = []
        self._supervisor = None
        self._stopping = None  # the supervisor of the last run while it stops its encoder
        self._restart_wanted = False
        self._started_at = None  # loop time the encoder was (re)started
        self._first_keyframe = False  # seen since the last start
        self._last_keyframe = None
        self._last_restart = -MIN_RESTART
        self._restart_time = RESTART_GUESS
        self._offset = None  # added to the encoder's timestamps; reset at each start
        self._last_out = None  # (timestamp, loop time) of the last packet out
        self._stderr = collections.deque(maxlen=8)
        self._since_keyframe = []  # the packets since the last keyframe, for a new viewer
        self._ended_picture = True  # the last packet ended a picture (marker)
        self._linger = None
        self._last_packet = None  # loop time of the last packet from the encoder

    # -- viewers ----------------------------------------------------------------------------

    def watch(self, viewer):
        """Add `viewer`: the encoder starts if it is the first (it begins with a keyframe);
        a later viewer needs a keyframe of its own: a recent one again, or a new one."""
        if viewer in self.viewers:
            return
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.viewers.append(viewer)
        if self._supervisor is None:
            self.failure = None
            if self.description is None:
                self._described = asyncio.Event()
            self._supervisor = self.loop.create_task(self._supervise(self._stopping))
        elif self._since_keyframe and \
                self.loop.time() - self._last_keyframe <= REPLAY_AGE:
            for packet in list(self._since_keyframe):
                viewer.video_packet(*packet)
        else:
            self.keyframe()
        self._viewers_changed()

    def unwatch(self, viewer):
        if viewer not in self.viewers:
            return
        self.viewers.remove(viewer)
        self._viewers_changed()
        if self.viewers or self._supervisor is None:
            return
        if isinstance(viewer, _Probe):
            self._linger = self.loop.call_later(PROBE_LINGER, self._stop_unwatched)
        else:
            self._stop_unwatched()

    def _stop_unwatched(self):
        self._linger = None
        if not self.viewers and self._supervisor is not None:
            self._supervisor.cancel()
            self._stopping, self._supervisor = self._supervisor, None

    def _viewers_changed(self):
        if self.on_viewers is not None:
            self.on_viewers(self.watching)

    @property
    def watching(self):
        """The viewers that are calls."""
        return len([v for v in self.viewers if not isinstance(v, _Probe)])

    def unavailable(self):
        """Why the encoder cannot start now (no ffmpeg, no such device), or None."""
        found = problems(self.spec, self.simulate)
        if found:
            self.failure = found[0]
            return found[0]
        return None

    async def describe(self, wait=5.0):
        """The sdp.Video of this camera's stream, running the encoder until its parameter
        sets come when they are not known yet; None when it cannot start within `wait`."""
        if self.description is not None:
            return self.description
        token = _Probe()
        self.watch(token)
        try:
            await asyncio.wait_for(self._described.wait(), wait)
        except TimeoutError:
            pass
        finally:
            self.unwatch(token)
        return self.description

    def keyframe(self):
        """A viewer asks for a keyframe: restart the encoder unless one is coming soon."""
        now = self.loop.time()
        if not self._processes or not self._first_keyframe:
            return  # starting: its first picture is a keyframe
        if now - self._last_restart < MIN_RESTART:
            return
        if self._last_keyframe is not None and \
                self._last_keyframe + self.spec.keyframe_interval - now <= self._restart_time:
            return  # the periodic one comes sooner
        log.debug("camera %s: restarting the encoder for a keyframe", self.name)
        self._last_restart = now
        self._restart_wanted = True
        self._terminate()

    async def close(self):
        """Stop the encoder whoever watches (the agent is stopping)."""
        self.viewers.clear()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()  # once: it stops its encoder in its finally
        for task in (supervisor, self._stopping):
            if task is not None:
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    pass

    # -- the encoder ---------------------------------------------------------------------------

    async def _supervise(self, previous):
        if previous is not None:
            try:  # the last run's encoder may hold the device until it has stopped
                await asyncio.shield(previous)
            except asyncio.CancelledError:
                if not previous.done():
                    raise
            except Exception:  # the last run's own fault: it logged it
                pass
        failures = 0
        sock = None
        try:
            sock = self._open_socket()
            while self.viewers:
                try:
                    await self._spawn()
                except (OSError, CameraError) as error:
                    self._give_up(str(error))
                    return
                code = await self._wait_exit()
                restart, self._restart_wanted = self._restart_wanted, False
                if restart:
                    self.restarts += 1
                    continue
                failures = 0 if self._first_keyframe else failures + 1
                reason = ("it sent nothing for %g s" % STALL if code == "stalled" else
                          "the encoder exited (%s)" % _exit_text(code)) + (
                    ": " + " / ".join(self._stderr) if self._stderr else "")
                if failures >= MAX_FAILURES:
                    self._give_up(reason)
                    return
                delay = BACKOFF[min(max(failures, 1), len(BACKOFF)) - 1]
                log.warning("camera %s: %s; starting it again in %g s", self.name, reason, delay)
                self.restarts += 1
                await asyncio.sleep(delay)
        except Exception as error:  # a fault of ours: the viewers hear of it, the agent goes on
            log.exception("camera %s: the encoder's supervision failed", self.name)
            self._give_up("the camera failed (%s)" % error)
        finally:
            await self._stop_processes()
            self._close_socket(sock)
            if self._supervisor is asyncio.current_task():
                self._supervisor = None

    def _give_up(self, reason):
        log.error("camera %s: %s; its video stops until the next call", self.name, reason)
        self.failure = reason
        self._described.set()  # describe() waits no longer
        viewers = list(self.viewers)
        self.viewers.clear()
        self._viewers_changed()
        for viewer in viewers:
            viewer.video_failed(reason)

    async def _spawn(self):
        # The encoder sends from a port chosen here, and only what comes from it is taken:
        # another program on the machine cannot slip pictures of its own into the calls.
        local_port = _free_pair()
        argvs = commands(self.spec, self._socket.getsockname()[1], self.simulate, local_port)
        self._stderr.clear()
        self._since_keyframe = []
        self._ended_picture = True
        self._source = ("127.0.0.1", local_port)
        self._offset = None
        self._first_keyframe = False
        self._started_at = self.loop.time()
        processes = []
        read_end = read_next = None  # the pipe from the process before, for this one's stdin
        try:
            for index, argv in enumerate(argvs):
                read_next = write_end = None
                if index < len(argvs) - 1:
                    read_next, write_end = os.pipe()
                try:
                    process = await asyncio.create_subprocess_exec(
                        *_tied(argv),
                        stdin=asyncio.subprocess.DEVNULL if read_end is None else read_end,
                        stdout=asyncio.subprocess.DEVNULL if write_end is None else write_end,
                        stderr=asyncio.subprocess.PIPE, start_new_session=True)
                except FileNotFoundError:
                    raise CameraError("%s is not installed" % argv[0]) from None
                finally:
                    for end in (read_end, write_end):  # the children have their copies
                        if end is not None:
                            os.close(end)
                    read_end = None
                processes.append(process)
                process.reader = self.loop.create_task(self._read_stderr(process))
                read_end, read_next = read_next, None
        except BaseException:
            for end in (read_end, read_next):
                if end is not None:
                    os.close(end)
            await self._stop(processes)
            raise
        self._processes = processes
        log.info("camera %s: encoder started (pid %s)", self.name,
                 ", ".join(str(p.pid) for p in processes))

    async def _read_stderr(self, process):
        """Its stderr, to the end: the last lines are kept for the log when it fails."""
        pending = b""
        while True:
            chunk = await process.stderr.read(4096)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()[-1024:] if chunk else b""
            for line in lines + ([pending] if not chunk else []):
                text = line.decode("utf-8", "replace").strip()[:300]
                if text:
                    self._stderr.append(text)
                    log.debug("camera %s encoder: %s", self.name, text)
            if not chunk:
                return

    async def _wait_exit(self):
        """Until a process of the pipeline exits (its exit code) or the encoder has sent
        nothing for STALL seconds ("stalled"); the pipeline is stopped either way."""
        self._last_packet = self.loop.time()
        waits = [asyncio.ensure_future(p.wait()) for p in self._processes]
        try:
            while True:
                done, _ = await asyncio.wait(waits, timeout=1.0,
                                             return_when=asyncio.FIRST_COMPLETED)
                if done:
                    code = next(iter(done)).result()
                    break
                if self.loop.time() - self._last_packet > STALL:
                    code = "stalled"
                    break
        finally:
            for wait in waits:
                wait.cancel()
        await self._stop_processes()
        return code

    def _terminate(self, processes=None):
        for process in self._processes if processes is None else processes:
            if process.returncode is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    async def _stop_processes(self):
        processes, self._processes = self._processes, []
        if processes:  # to the end even when cancelled meanwhile: no encoder left behind
            await asyncio.shield(self._stop(processes))

    async def _stop(self, processes):
        """SIGTERM, and SIGKILL to what is left after STOP_WAIT."""
        self._terminate(processes)
        deadline = time.monotonic() + STOP_WAIT
        for process in processes:
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()),
                                       max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await process.wait()
            try:  # its stderr to the end: then the pipe and the transport close
                await asyncio.wait_for(process.reader, STOP_WAIT)
            except TimeoutError:
                pass

    @property
    def pids(self):
        return [p.pid for p in self._processes if p.returncode is None]

    # -- its packets ---------------------------------------------------------------------------

    def _open_socket(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self._socket = sock
        self.loop.add_reader(sock, self._receive)
        return sock

    def _close_socket(self, sock):
        if sock is None:
            return
        self.loop.remove_reader(sock)
        sock.close()
        if self._socket is sock:
            self._socket = None

    def _receive(self):
        for _ in range(READ_BATCH):
            try:
                data, source = self._socket.recvfrom(2048)
            except OSError:
                return
            if source != self._source:
                continue  # not our encoder
            try:
                packet = parse_rtp(data)
            except ValueError:
                continue
            self._packet(packet)

    def _packet(self, packet):
        now = self.loop.time()
        self._last_packet = now
        payload = packet.payload
        units = h264.nal_units(payload)
        keyframe = False
        for kind, unit in units:
            if kind == h264.SPS:
                self._sps = unit
                keyframe = True
            elif kind == h264.PPS:
                self._pps = unit
            elif kind == h264.IDR:
                keyframe = True
        if keyframe:
            if not self._first_keyframe:
                self._first_keyframe = True
                self._restart_time = now - self._started_at
            self._last_keyframe = now
            if self._sps is not None and self._pps is not None and self.description is None:
                self.description = sdp.Video(h264.profile_level_id(self._sps),
                                             h264.sprop_parameter_sets(self._sps, self._pps))
                self._described.set()
        if self._offset is None:
            # The first packet since a start: carry the timeline on from the last one out.
            if self._last_out is None:
                base = int.from_bytes(os.urandom(4), "big")
            else:
                last, at = self._last_out
                base = last + int((now - at) * CLOCK)
            self._offset = base - packet.timestamp
        timestamp = (packet.timestamp + self._offset) & 0xFFFFFFFF
        self._last_out = (timestamp, now)
        self.packets += 1
        if keyframe and self._ended_picture:
            self._since_keyframe = []
        if len(self._since_keyframe) < REPLAY_PACKETS:
            self._since_keyframe.append((timestamp, packet.marker, payload, keyframe))
        self._ended_picture = packet.marker
        if packet.marker:
            self.frames += 1
        for viewer in list(self.viewers):
            viewer.video_packet(timestamp, packet.marker, payload, keyframe)

    def status(self):
        return {"source": "test" if self.simulate else self.spec.source,
                "encoder": "running" if self._processes else "failed" if self.failure
                else "stopped",
                "pids": self.pids, "viewers": self.watching,
                "restarts": self.restarts, "frames": self.frames,
                "profile_level_id": self.description.profile_level_id
                if self.description else None, "failure": self.failure}


def _tied(argv):
    """`argv`, run so that it ends with the agent, even one killed outright with no chance
    to stop it (outside systemd, which would end it with the unit): util-linux's setpriv
    sets its parent-death signal (SIGTERM) and runs it in its place, where setpriv is
    installed."""
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(argv[0])
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else list(argv)


def _free_pair():
    """An even port on 127.0.0.1 that is free with its odd neighbour (the encoder's RTP and
    RTCP sockets): bound as a call's are, and let go for the encoder to take. Should another
    program take one meanwhile, the encoder fails to start and is started again."""
    try:
        pair = bind_pair("127.0.0.1")
    except MediaError as error:
        raise CameraError(str(error)) from None
    port = pair[0].getsockname()[1]
    for sock in pair:
        sock.close()
    return port


class _Probe:
    """A viewer that only waits for the parameter sets (describe())."""

    def video_packet(self, timestamp, marker, payload, keyframe):
        pass

    def video_failed(self, reason):
        pass


def _exit_text(code):
    if code is not None and code < 0:
        try:
            return "signal " + signal.Signals(-code).name
        except ValueError:
            return "signal %d" % -code
    return "code %s" % code
