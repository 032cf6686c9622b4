"""Audio ports: where a call's frames come from and where the peer's go, 20 ms at a time.

A frame is 16-bit signed little-endian mono PCM: 160 samples, 320 bytes at 8 kHz. The call
asks for one frame per packet (`read_frame`) and hands over what it decoded
(`write_frame`); neither ever blocks. `open_audio(spec)` picks the port from the `audio`
setting:

- `"null"`: silence on every read, so the call still sends RTP at the packet rate; what
  is played is discarded.
- a path ending in `.wav`: the file's frames, looping (mono 16-bit; another rate is
  converted when the file is opened); what is played is discarded.
- `"default"` or a device name: a PortAudio device through PyAudio, picked by a
  case-insensitive part of its name ("USB Audio"). PyAudio is imported only here, so the
  agent runs without it when no device is asked for.

PortAudio calls the port back on a thread of its own, once per 20 ms in each direction.
That thread and the caller share only two bounded deques (append and popleft are atomic
in CPython) and counters that each have one writer: no lock, nothing that blocks, no call
into the event loop. The caller's 20 ms timer is the one place the two sides meet.

Rates: a device is opened at 8000 Hz when it takes it, else at its default rate or at
48000, 44100 or 16000 Hz (many USB sound cards only do 44.1 or 48 kHz), whichever it
takes first and holds a whole number of samples per 20 ms. The callback then converts
each block: down by the mean of each output sample's share of the input (a box filter:
a weak low-pass, so a little of what lies above 4 kHz folds into the voice band), up by
linear interpolation. Crude next to a polyphase filter, but cheap enough for pure Python
in the callback, and speech on an intercom survives it well.

Samples cross PortAudio as paInt16, which is native-endian: the frames are little-endian
on every board we support (ARM and x86 Linux).
"""

import array
import collections
import logging
import wave

from ..errors import ApplianceError

log = logging.getLogger(__name__)

RATE = 8000  # samples per second of a frame (G.711)
FRAME_SAMPLES = 160  # samples per frame: 20 ms at 8 kHz
CAPTURE_FRAMES = 4  # captured frames kept for the caller: at most 80 ms of delay; the oldest drops
PLAYBACK_FRAMES = 10  # frames queued for the device (200 ms); the oldest drops when full
DEVICE_RATES = (48000, 44100, 16000)  # tried after 8000 Hz and the device's default rate

STATS = (
    "frames_captured",  # frames read_frame returned from the source
    "frames_played",  # frames the device played (null and WAV ports: discarded)
    "capture_underruns",  # read_frame found nothing captured yet and returned silence
    "capture_overruns",  # captured frames dropped: the caller read too slowly, or the
    # device overflowed
    "playback_underruns",  # the device wanted a frame and got silence (or was late)
    "playback_overruns",  # queued frames dropped: written faster than played
)

CHOICES = (
    'Set audio = "null" for silence, or to a WAV file path (audio = "/path/greeting.wav") '
    "to play a file."
)
INSTALL_HINT = (
    "pip install 'sip-appliance[audio]' (it builds against PortAudio: on Raspberry Pi OS "
    "first sudo apt install portaudio19-dev), or sudo apt install python3-pyaudio"
)


class AudioError(ApplianceError):
    """An audio port cannot be opened: no such device, no PyAudio, an unusable WAV file."""


def open_audio(spec, rate=RATE, frame_samples=FRAME_SAMPLES):
    """The port for the `audio` setting `spec`: "null", "default", a path ending in .wav,
    or a part of a PortAudio device's name."""
    if not spec.strip():
        raise AudioError(
            'audio is empty: set it to "default", a device name, "null" or a WAV file path'
        )
    if spec.casefold() == "null":
        return NullPort(rate, frame_samples)
    if spec.casefold().endswith(".wav"):
        return WavPort(spec, rate, frame_samples)
    return PyAudioPort(spec, rate, frame_samples)


def list_devices():
    """The PortAudio devices, as "NAME (HOST API): N in, M out"."""
    pyaudio = _import_pyaudio("a device")
    pa = pyaudio.PyAudio()
    try:
        return [_describe(pa, device) for device in _devices(pa)]
    finally:
        pa.terminate()


class AudioPort:
    """What a call captures from and plays to, one frame at a time; never blocks."""

    def __init__(self, name, rate, frame_samples):
        self.name = name
        self.rate = rate
        self.frame_samples = frame_samples
        self.frame_bytes = 2 * frame_samples
        self.silence = bytes(self.frame_bytes)
        self._counts = dict.fromkeys(STATS, 0)
        self._partial = b""  # the start of a frame, until write_frame has the rest

    @property
    def stats(self):
        return dict(self._counts)

    def read_frame(self):
        """The next frame captured: frame_bytes of PCM, silence when there is none yet."""
        raise NotImplementedError

    def write_frame(self, pcm):
        """Queue `pcm` for playback. Any whole number of samples will do (a peer may send
        10 or 30 ms a packet): it is played in frames, the rest waits for the next call."""
        if len(pcm) % 2:
            raise ValueError("PCM of %d bytes is not a whole number of samples" % len(pcm))
        data = self._partial + bytes(pcm)
        whole = len(data) - len(data) % self.frame_bytes
        for start in range(0, whole, self.frame_bytes):
            self._play(data[start : start + self.frame_bytes])
        self._partial = data[whole:]

    def _play(self, frame):
        self._counts["frames_played"] += 1  # discarded

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.name)


class NullPort(AudioPort):
    """Silence on every read, at whatever rate the caller reads; plays nothing."""

    def __init__(self, rate=RATE, frame_samples=FRAME_SAMPLES):
        super().__init__("null", rate, frame_samples)

    def read_frame(self):
        self._counts["frames_captured"] += 1
        return self.silence


class WavPort(AudioPort):
    """A WAV file as the source, looping; what is played is discarded. The whole file is
    read (and converted to `rate` if need be) when the port opens: a greeting is small,
    and reading a frame must not wait for the disk."""

    def __init__(self, path, rate=RATE, frame_samples=FRAME_SAMPLES):
        super().__init__(path, rate, frame_samples)
        self._data = read_wav(path, rate)
        self._position = 0

    def read_frame(self):
        frame = b""
        while len(frame) < self.frame_bytes:  # more than once only where the file loops
            end = min(len(self._data), self._position + self.frame_bytes - len(frame))
            frame += self._data[self._position : end]
            self._position = end % len(self._data)
        self._counts["frames_captured"] += 1
        return frame


def read_wav(path, rate=RATE):
    """The PCM of the mono 16-bit WAV file at `path`, converted to `rate`."""
    try:
        with wave.open(path, "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            file_rate = wav.getframerate()
            if channels != 1 or width != 2:
                layout = {1: "mono", 2: "stereo"}.get(channels, "%d-channel" % channels)
                raise AudioError(
                    "cannot play %s: it is %s %d-bit; a WAV source must be mono 16-bit PCM "
                    "(sox %s -c 1 -b 16 OUT.wav converts it)" % (path, layout, 8 * width, path)
                )
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise AudioError(
            "cannot play %s: %s (a WAV source must be mono 16-bit PCM)" % (path, error)
        ) from None
    data = data[: len(data) - len(data) % 2]
    if file_rate != rate and data:
        samples = array.array("h", data)
        count = round(len(samples) * rate / file_rate)
        resampler = Resampler()
        resampler.last = samples[0]
        data = resampler(samples, count).tobytes()
        log.info("%s: %d Hz converted to %d Hz", path, file_rate, rate)
    if not data:
        raise AudioError("cannot play %s: it holds no audio" % path)
    return data


class WavRecorder:
    """Writes frames to a mono 16-bit WAV file at `rate` (what the peer sends, in
    `appliance call`). Its length goes into the header on close."""

    def __init__(self, path, rate=RATE):
        self.path = path
        try:
            # Opened here, not by wave: a wave writer whose open fails complains again as
            # it is collected (CPython 3.11).
            self._file = open(path, "wb")
        except OSError as error:
            raise AudioError("cannot record to %s: %s" % (path, error)) from None
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)

    def write_frame(self, pcm):
        self._wav.writeframesraw(pcm)

    def close(self):
        self._wav.close()  # writes the lengths into the header
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Resampler:
    """Converts blocks of samples to blocks of `count` samples: each the mean of its share
    of the input when there are fewer (a box filter), linear interpolation when there are
    more. Interpolation starts each block from the last sample of the one before, so the
    blocks of a stream join without a step, one input sample late."""

    def __init__(self):
        self.last = 0
        self._tables = {}  # (input length, count) -> the input index and weight of each output

    def __call__(self, samples, count):
        n = len(samples)
        if count == n:
            out = samples
        elif count < n:
            out = array.array("h", bytes(2 * count))
            start = 0
            for i in range(count):
                end = (i + 1) * n // count
                out[i] = sum(samples[start:end]) // (end - start)
                start = end
        else:
            table = self._tables.get((n, count))
            if table is None:
                table = self._tables[n, count] = [
                    (j * n // count, j * n % count * 65536 // count) for j in range(count)
                ]
            joined = [self.last, *samples]
            out = array.array(
                "h",
                [(joined[i] * (65536 - w) + joined[i + 1] * w) >> 16 for i, w in table],
            )
        self.last = samples[-1]
        return out


class PyAudioPort(AudioPort):
    """A PortAudio device through PyAudio in callback mode: one input and one output
    stream, mono paInt16, one frame (20 ms) per callback. `spec` is "default" or a part of
    the device's name; for each direction the first device whose name matches (an exact
    match first) and has channels that way. A device with channels one way only leaves
    the other silent. `device_rate` opens it at that rate instead of the one found
    (tests use it to run the converting callbacks through PortAudio)."""

    def __init__(self, spec, rate=RATE, frame_samples=FRAME_SAMPLES, device_rate=None):
        super().__init__(spec, rate, frame_samples)
        pyaudio = _import_pyaudio('audio = "%s"' % spec)
        self._continue = pyaudio.paContinue
        self._input_overflow = pyaudio.paInputOverflow
        self._output_underflow = pyaudio.paOutputUnderflow
        self._captured = collections.deque(maxlen=CAPTURE_FRAMES)
        self._queued = collections.deque(maxlen=PLAYBACK_FRAMES)
        self._capture_resampler = self._playback_resampler = None
        self._streams = []
        self._pa = pyaudio.PyAudio()
        try:
            source, sink = _find_devices(self._pa, spec)
            labels = []
            for device, is_input in ((source, True), (sink, False)):
                if device is None:
                    log.warning(
                        "audio %s: no device for %s; it stays silent",
                        spec,
                        "capture" if is_input else "playback",
                    )
                    continue
                self._open(pyaudio, device, is_input, device_rate)
                label = _describe(self._pa, device, counts=False)
                if label not in labels:
                    labels.append(label)
            self.name = " / ".join(labels)
        except BaseException:
            self.close()
            raise

    def _open(self, pyaudio, device, is_input, device_rate):
        direction = "capture" if is_input else "playback"
        if device_rate is None:
            device_rate = _device_rate(
                self._pa, pyaudio, device, is_input, self.rate, self.frame_samples
            )
        resampler = Resampler() if device_rate != self.rate else None
        if is_input:
            self._capture_resampler = resampler
        else:
            self._playback_resampler = resampler
        try:
            stream = self._pa.open(
                rate=device_rate,
                channels=1,
                format=pyaudio.paInt16,
                input=is_input,
                output=not is_input,
                input_device_index=device["index"] if is_input else None,
                output_device_index=None if is_input else device["index"],
                frames_per_buffer=self.frame_samples * device_rate // self.rate,
                stream_callback=self._capture if is_input else self._playback,
            )
        except (OSError, ValueError) as error:
            raise AudioError(
                "cannot open %s for %s at %d Hz: %s"
                % (_describe(self._pa, device, counts=False), direction, device_rate, error)
            ) from None
        self._streams.append(stream)
        log.info(
            "audio %s: %s through %s at %d Hz",
            self.name,
            direction,
            _describe(self._pa, device, counts=False),
            device_rate,
        )

    def read_frame(self):
        try:
            frame = self._captured.popleft()
        except IndexError:
            self._counts["capture_underruns"] += 1
            return self.silence
        self._counts["frames_captured"] += 1
        return frame

    def _play(self, frame):
        if len(self._queued) == PLAYBACK_FRAMES:
            self._counts["playback_overruns"] += 1  # the append drops the oldest
        self._queued.append(frame)

    # PortAudio's thread from here on: keep it cheap. PortAudio hands over exactly
    # frames_per_buffer samples each time, so a callback moves exactly one frame.

    def _capture(self, in_data, frame_count, time_info, status):
        if status & self._input_overflow:
            self._counts["capture_overruns"] += 1
        if self._capture_resampler is not None:
            samples = array.array("h", in_data)
            in_data = self._capture_resampler(samples, self.frame_samples).tobytes()
        if len(self._captured) == CAPTURE_FRAMES:
            self._counts["capture_overruns"] += 1  # the append drops the oldest
        self._captured.append(in_data)
        return None, self._continue

    def _playback(self, in_data, frame_count, time_info, status):
        if status & self._output_underflow:
            self._counts["playback_underruns"] += 1
        try:
            frame = self._queued.popleft()
            self._counts["frames_played"] += 1
        except IndexError:
            frame = self.silence
            self._counts["playback_underruns"] += 1
        if self._playback_resampler is not None:
            samples = array.array("h", frame)
            frame = self._playback_resampler(samples, frame_count).tobytes()
        return frame, self._continue

    def close(self):
        """Stop the streams (what PortAudio holds is played out) and release the device."""
        streams, self._streams = self._streams, []
        for stream in streams:
            try:
                stream.stop_stream()
            except OSError:
                pass  # a device gone (unplugged) cannot stop; closing still frees it
            stream.close()
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None


def _import_pyaudio(what):
    try:
        import pyaudio
    except ImportError as error:  # not installed, or no libportaudio for it to load
        raise AudioError(
            "%s needs PyAudio, which cannot be imported (%s): %s. %s"
            % (what, error, INSTALL_HINT, CHOICES)
        ) from None
    return pyaudio


def _devices(pa):
    return [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]


def _describe(pa, device, counts=True):
    label = "%s (%s)" % (device["name"], pa.get_host_api_info_by_index(device["hostApi"])["name"])
    if counts:
        label += ": %d in, %d out" % (device["maxInputChannels"], device["maxOutputChannels"])
    return label


def _find_devices(pa, spec):
    """The devices to capture from and play to for `spec`; either may be None."""
    if spec.casefold() == "default":
        found = []
        for default in (pa.get_default_input_device_info, pa.get_default_output_device_info):
            try:
                found.append(default())
            except OSError:  # PortAudio has no default device that way
                found.append(None)
        source, sink = found
        missing = "no default audio device"
    else:
        wanted = spec.casefold()
        devices = _devices(pa)
        matches = [d for d in devices if d["name"].casefold() == wanted] or [
            d for d in devices if wanted in d["name"].casefold()
        ]
        source = next((d for d in matches if d["maxInputChannels"] > 0), None)
        sink = next((d for d in matches if d["maxOutputChannels"] > 0), None)
        missing = 'no audio device matches "%s"' % spec
    if source is None and sink is None:
        found = "; ".join(_describe(pa, device) for device in _devices(pa)) or "none"
        raise AudioError("%s; devices found: %s. %s" % (missing, found, CHOICES))
    return source, sink


def _device_rate(pa, pyaudio, device, is_input, rate, frame_samples):
    """The first rate `device` takes of `rate`, its default and DEVICE_RATES that holds a
    whole number of samples per frame."""
    prefix = "input" if is_input else "output"
    options = {
        prefix + "_device": device["index"],
        prefix + "_channels": 1,
        prefix + "_format": pyaudio.paInt16,
    }
    tried = []
    for candidate in (rate, int(device["defaultSampleRate"]), *DEVICE_RATES):
        if candidate in tried or candidate * frame_samples % rate:
            continue
        tried.append(candidate)
        try:
            if pa.is_format_supported(candidate, **options):
                return candidate
        except ValueError:  # PyAudio's way of saying no
            continue
    raise AudioError(
        "%s takes none of %s Hz for %s of mono 16-bit PCM. %s"
        % (
            _describe(pa, device, counts=False),
            ", ".join(str(r) for r in tried),
            "capture" if is_input else "playback",
            CHOICES,
        )
    )
