"""The real PyAudio/PortAudio path without sound hardware, through ALSA's `file` and `null`
PCM plugins.

`Alsa(directory)` writes an ALSA configuration of the test's own, `asound.conf`, with two
devices, each a `file` plugin over a `null` slave for each direction:

    default    plays into default.raw,  captures from default-in.raw  (1 kHz tone)
    intercom   plays into intercom.raw, captures from intercom-in.raw (500 Hz tone)

and `Alsa.run(...)` opens an audio port in a child Python (`python -m
tests.agent.audio_alsa REQUEST`) with ALSA_CONFIG_PATH set to that file and HOME to the
directory: ALSA then reads this file alone (not alsa.conf, /etc/asound.conf nor
~/.asoundrc), so PortAudio, which reads the configuration once as it starts, sees just
these two devices, whatever sound cards or sound servers the machine has. The files are
raw 16-bit little-endian mono PCM at the rate the port opened the device.

The `null` plugin keeps no time: PortAudio calls back as fast as it can (tens of
thousands of 20 ms frames a second). So the child writes a frame only once the one
before has been played (`frames_played`), and the played file holds the frames with
stretches of silence between them. Capture runs just as fast; once the input file is
used up, the null plugin's buffer keeps handing back its last contents, which for a file
of whole periods of a tone is still the tone.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .audio_signal import tone, tone_frames

ROOT = Path(__file__).resolve().parents[2]
UNAVAILABLE = 3  # the child's exit status when PyAudio (or PortAudio under it) is missing
CHILD_TIMEOUT = 60.0  # seconds for a whole child run
WAIT = 10.0  # seconds the child waits for a frame to be played or captured
CAPTURE_TONES = {"default": 1000, "intercom": 500}  # Hz in each device's input file

DEVICE = """\
pcm.%(id)s {
    type asym
    playback.pcm {
        type file
        slave.pcm { type null }
        file "%(played)s"
        format "raw"
    }
    capture.pcm {
        type file
        slave.pcm { type null }
        file "/dev/null"
        infile "%(captured)s"
        format "raw"
    }
    hint { show on description "%(description)s" }
}
"""


class Unavailable(Exception):
    """PyAudio cannot be imported in the child."""


class Alsa:
    def __init__(self, directory, capture_rate=8000):
        """`capture_rate`: the rate of the tones in the input files, which must be the
        rate the port opens the device at."""
        self.directory = Path(directory)
        self.config = self.directory / "asound.conf"
        parts = []
        for device, freq in CAPTURE_TONES.items():
            captured = self.directory / ("%s-in.raw" % device)
            captured.write_bytes(tone(freq, capture_rate, capture_rate).tobytes())  # 1 s
            parts.append(
                DEVICE
                % {
                    "id": "!default" if device == "default" else device,
                    "played": self.played_path(device),
                    "captured": captured,
                    "description": "sip-appliance test %s" % device,
                }
            )
        self.config.write_text("".join(parts))

    def played_path(self, device):
        return self.directory / ("%s.raw" % device)

    def played(self, device):
        """What the device played, from its file (empty when nothing was)."""
        path = self.played_path(device)
        return path.read_bytes() if path.exists() else b""

    def run(self, **request):
        """Runs `child(request)` under this configuration; returns what it printed."""
        env = dict(os.environ, ALSA_CONFIG_PATH=str(self.config), HOME=str(self.directory))
        done = subprocess.run(
            [sys.executable, "-m", "tests.agent.audio_alsa", json.dumps(request)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
        )
        if done.returncode == UNAVAILABLE:
            raise Unavailable(done.stderr.strip())
        assert done.returncode == 0, "audio child failed:\n%s" % done.stderr
        return json.loads(done.stdout)


def wait_for(predicate):
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError("gave up after %.0f s" % WAIT)
        time.sleep(0.0005)  # also lets PortAudio's thread have the GIL


def child(request):
    """In the child: opens the port and does what `request` asks.

    {"op": "open", "spec": S}: open_audio(S); the AudioError's message, and list_devices().
    {"op": "run", "spec": S, "device_rate": R or None, "play": HZ, "frames": N}: plays N
    frames of a HZ tone, then reads until N frames of sound came; the port's name, its
    stats and the frames captured (hex)."""
    from appliance.media.audio import AudioError, PyAudioPort, list_devices, open_audio

    if request["op"] == "open":
        try:
            open_audio(request["spec"]).close()
            error = None
        except AudioError as e:
            error = str(e)
        return {"error": error, "devices": list_devices()}

    with PyAudioPort(request["spec"], device_rate=request["device_rate"]) as port:
        for i, frame in enumerate(tone_frames(request["play"], 8000, 160, request["frames"])):
            port.write_frame(frame)
            wait_for(lambda i=i: port.stats["frames_played"] > i)
        captured = []

        def sound_captured():
            frame = port.read_frame()
            if any(frame):
                captured.append(frame.hex())
            return len(captured) == request["frames"]

        wait_for(sound_captured)
        return {"name": port.name, "stats": port.stats, "captured": captured}


def main(argv):
    try:
        import pyaudio  # noqa: F401
    except ImportError as error:
        print("PyAudio cannot be imported: %s" % error, file=sys.stderr)
        return UNAVAILABLE
    print(json.dumps(child(json.loads(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
