"""Audio ports: null silence, WAV sources and recordings, and PyAudio devices, the last
through the real PortAudio on ALSA's file and null plugins (audio_alsa.py), where a tone
played must arrive in the device's file and a tone in its input must come out of
read_frame. In CI (`CI=true`) a missing PyAudio fails those tests; elsewhere they skip
with the way to install it."""

import array
import os
import sys
import wave

import pytest

from appliance.errors import ApplianceError
from appliance.media import audio
from appliance.media.audio import (
    AudioError,
    NullPort,
    Resampler,
    WavRecorder,
    list_devices,
    open_audio,
    read_wav,
)

from .audio_alsa import Alsa, Unavailable
from .audio_signal import samples, share_at, sounds, tone, tone_frames

FRAME = 320  # bytes: 20 ms of 16-bit mono at 8 kHz
CHOICES = (
    'Set audio = "null" for silence, or to a WAV file path (audio = "/path/greeting.wav") '
    "to play a file."
)


def write_wav(path, pcm, rate=8000, channels=1, width=2):
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return str(path)


# null


def test_null_gives_a_frame_of_silence_per_read_and_discards_what_is_played():
    with open_audio("NULL") as port:
        frames = [port.read_frame() for _ in range(3)]
        port.write_frame(tone(1000, 8000, 160).tobytes())
        assert frames == [bytes(FRAME)] * 3
        assert port.name == "null"
        assert port.stats == {
            "frames_captured": 3,
            "frames_played": 1,
            "capture_underruns": 0,
            "capture_overruns": 0,
            "playback_underruns": 0,
            "playback_overruns": 0,
        }


def test_a_frame_is_20_ms_at_the_rate_asked_for():
    assert open_audio("null", rate=16000, frame_samples=320).read_frame() == bytes(640)


def test_write_frame_takes_packets_of_any_length_and_plays_whole_frames():
    port = NullPort()
    port.write_frame(bytes(160))  # 10 ms: half a frame
    assert port.stats["frames_played"] == 0
    port.write_frame(bytes(160))
    assert port.stats["frames_played"] == 1
    port.write_frame(bytes(480))  # 30 ms: one frame and a half
    assert port.stats["frames_played"] == 2
    port.write_frame(bytes(160))
    assert port.stats["frames_played"] == 3
    with pytest.raises(ValueError) as raised:
        port.write_frame(bytes(3))
    assert str(raised.value) == "PCM of 3 bytes is not a whole number of samples"


def test_an_empty_setting_is_refused():
    with pytest.raises(AudioError) as raised:
        open_audio(" ")
    assert str(raised.value) == (
        'audio is empty: set it to "default", a device name, "null" or a WAV file path'
    )
    assert isinstance(raised.value, ApplianceError)


# WAV


def test_a_wav_source_loops_and_discards_what_is_played(tmp_path):
    pcm = array.array("h", range(400)).tobytes()  # two and a half frames
    path = write_wav(tmp_path / "greeting.wav", pcm)
    with open_audio(path) as port:
        frames = [port.read_frame() for _ in range(6)]
        port.write_frame(bytes(FRAME))
        assert port.name == path
        assert b"".join(frames) == (pcm * 3)[: 6 * FRAME]
        assert port.stats["frames_captured"] == 6
        assert port.stats["frames_played"] == 1


def test_a_wav_source_shorter_than_a_frame_fills_the_frame_by_looping(tmp_path):
    pcm = array.array("h", range(1, 61)).tobytes()
    port = open_audio(write_wav(tmp_path / "beep.wav", pcm))
    assert port.read_frame() + port.read_frame() == (pcm * 6)[: 2 * FRAME]


@pytest.mark.parametrize("file_rate", [4000, 11025, 16000, 44100, 48000])
def test_a_wav_source_at_another_rate_keeps_its_pitch(tmp_path, file_rate):
    path = write_wav(tmp_path / "tone.wav", tone(1000, file_rate, file_rate).tobytes(), file_rate)
    assert len(read_wav(path)) == 8000 * 2  # still one second
    port = open_audio(path)
    for _ in range(50):
        frame = port.read_frame()
        assert len(frame) == FRAME
        assert share_at(samples(frame), 1000, 8000) > 0.9


def test_a_wav_file_that_is_not_mono_16_bit_is_refused_with_the_way_to_convert_it(tmp_path):
    stereo = write_wav(tmp_path / "stereo.wav", bytes(640), channels=2)
    with pytest.raises(AudioError) as raised:
        open_audio(stereo)
    assert str(raised.value) == (
        "cannot play %s: it is stereo 16-bit; a WAV source must be mono 16-bit PCM "
        "(sox %s -c 1 -b 16 OUT.wav converts it)" % (stereo, stereo)
    )
    eight_bit = write_wav(tmp_path / "8bit.wav", bytes(160), width=1)
    with pytest.raises(AudioError) as raised:
        open_audio(eight_bit)
    assert str(raised.value) == (
        "cannot play %s: it is mono 8-bit; a WAV source must be mono 16-bit PCM "
        "(sox %s -c 1 -b 16 OUT.wav converts it)" % (eight_bit, eight_bit)
    )


def test_a_file_that_is_no_wav_or_is_missing_or_empty_is_refused(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not a wave")
    with pytest.raises(AudioError) as raised:
        open_audio(str(text))
    assert str(raised.value) == (
        "cannot play %s: file does not start with RIFF id "
        "(a WAV source must be mono 16-bit PCM)" % text
    )
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(AudioError) as raised:
        open_audio(missing)
    assert str(raised.value) == (
        "cannot play %s: [Errno 2] No such file or directory: '%s' "
        "(a WAV source must be mono 16-bit PCM)" % (missing, missing)
    )
    empty = write_wav(tmp_path / "empty.wav", b"")
    with pytest.raises(AudioError) as raised:
        open_audio(empty)
    assert str(raised.value) == "cannot play %s: it holds no audio" % empty


def test_a_wav_recorder_keeps_what_is_played(tmp_path):
    frames = tone_frames(1000, 8000, 160, 3)
    path = str(tmp_path / "heard.wav")
    with WavRecorder(path) as recorder:
        for frame in frames:
            recorder.write_frame(frame)
    with wave.open(path, "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.readframes(wav.getnframes()) == b"".join(frames)
    nowhere = str(tmp_path / "nowhere" / "heard.wav")
    with pytest.raises(AudioError) as raised:
        WavRecorder(nowhere)
    assert str(raised.value) == (
        "cannot record to %s: [Errno 2] No such file or directory: '%s'" % (nowhere, nowhere)
    )


# Conversions


def test_fewer_samples_are_the_means_of_their_share():
    block = array.array("h", [6, 6, 0, 0, 3, 3, -1, -3, 5, 5, 5, 5])
    assert list(Resampler()(block, 6)) == [6, 0, 3, -2, 5, 5]
    assert list(Resampler()(block, 4)) == [4, 2, 0, 5]


def test_more_samples_are_interpolated_and_blocks_join_without_a_step():
    resampler = Resampler()
    first = resampler(array.array("h", [0, 600, 1200]), 6)
    second = resampler(array.array("h", [1800, 2400, 3000]), 6)
    # one input sample late: the first block starts from the silence before it
    assert list(first) + list(second) == [
        0, 0, 0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700,
    ]  # fmt: skip


# PyAudio missing, rates a device takes (no PortAudio needed)


def test_without_pyaudio_a_device_names_the_way_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # import pyaudio now fails
    with pytest.raises(AudioError) as raised:
        open_audio("USB Audio")
    assert str(raised.value) == (
        'audio = "USB Audio" needs PyAudio, which cannot be imported (import of pyaudio '
        "halted; None in sys.modules): pip install 'sip-appliance[audio]' (it builds "
        "against PortAudio: on Raspberry Pi OS first sudo apt install portaudio19-dev), or "
        "sudo apt install python3-pyaudio. " + CHOICES
    )
    with pytest.raises(AudioError) as raised:
        list_devices()
    assert str(raised.value).startswith("a device needs PyAudio, which cannot be imported")
    assert open_audio("null").read_frame() == bytes(FRAME)  # null needs no PyAudio


class FussyPortAudio:
    """Stands in for PyAudio where a device takes only some rates."""

    paInt16 = 8

    def __init__(self, rates):
        self.rates = rates
        self.asked = []

    def is_format_supported(self, rate, **options):
        self.asked.append(rate)
        if rate not in self.rates:
            raise ValueError("Invalid sample rate", -9997)
        return True

    def get_host_api_info_by_index(self, index):
        return {"name": "ALSA"}


DEVICE = {"index": 3, "name": "USB Audio", "hostApi": 0, "defaultSampleRate": 44100.0}


def test_a_device_without_8000_hz_is_opened_at_its_default_rate():
    pa = FussyPortAudio({44100, 48000})
    assert audio._device_rate(pa, pa, DEVICE, True, 8000, 160) == 44100
    assert pa.asked == [8000, 44100]


def test_a_device_that_takes_no_usable_rate_is_refused():
    pa = FussyPortAudio({22050})
    with pytest.raises(AudioError) as raised:
        audio._device_rate(pa, pa, dict(DEVICE, defaultSampleRate=11025.0), False, 8000, 160)
    # 11025 Hz holds no whole number of samples in 20 ms: not tried
    assert str(raised.value) == (
        "USB Audio (ALSA) takes none of 8000, 48000, 44100, 16000 Hz for playback of mono "
        "16-bit PCM. " + CHOICES
    )


# Through PortAudio and ALSA


def run_alsa(alsa, **request):
    try:
        return alsa.run(**request)
    except Unavailable as missing:
        message = "%s; pip install '.[audio]' (Debian: apt-get install portaudio19-dev)" % missing
        if os.environ.get("CI") == "true":
            pytest.fail("PyAudio missing in CI: " + message, pytrace=False)
        pytest.skip(message)  # only outside CI: with CI=true the line above fails


@pytest.fixture(scope="module")
def default_device(tmp_path_factory):
    """25 frames of a 1 kHz tone played to the default device and 25 captured from it."""
    alsa = Alsa(tmp_path_factory.mktemp("alsa"))
    return alsa, run_alsa(alsa, op="run", spec="default", device_rate=None, play=1000, frames=25)


def test_a_tone_played_arrives_at_the_device_intact(default_device):
    alsa, result = default_device
    assert result["name"] == "default (ALSA)"
    assert result["stats"]["frames_played"] == 25
    played = array.array("h")
    for sound in sounds(samples(alsa.played("default"))):
        played.extend(sound)
    assert share_at(played, 1000, 8000) > 0.99
    assert played.tobytes() == b"".join(tone_frames(1000, 8000, 160, 25))


def test_a_tone_at_the_device_input_is_what_read_frame_returns(default_device):
    _, result = default_device
    assert result["stats"]["frames_captured"] == 25
    for frame in result["captured"]:
        pcm = bytes.fromhex(frame)
        assert len(pcm) == FRAME
        assert share_at(samples(pcm), 1000, 8000) > 0.9


def test_a_device_is_picked_by_part_of_its_name(tmp_path):
    alsa = Alsa(tmp_path)
    result = run_alsa(alsa, op="run", spec="INTER", device_rate=None, play=1000, frames=5)
    assert result["name"] == "intercom (ALSA)"
    assert sounds(samples(alsa.played("default"))) == []
    assert len(sounds(samples(alsa.played("intercom")))) >= 1
    for frame in result["captured"]:  # intercom's input holds a 500 Hz tone
        assert share_at(samples(bytes.fromhex(frame)), 500, 8000) > 0.9


def test_a_missing_device_is_refused_naming_the_devices_and_the_other_choices(tmp_path):
    result = run_alsa(Alsa(tmp_path), op="open", spec="USB Audio")
    assert sorted(device.partition(":")[0] for device in result["devices"]) == [
        "default (ALSA)",
        "intercom (ALSA)",
    ]
    assert result["error"] == (
        'no audio device matches "USB Audio"; devices found: %s. %s'
        % ("; ".join(result["devices"]), CHOICES)
    )


def test_a_device_at_48000_hz_is_converted_both_ways(tmp_path):
    alsa = Alsa(tmp_path, capture_rate=48000)
    result = run_alsa(alsa, op="run", spec="default", device_rate=48000, play=1000, frames=25)
    played = sounds(samples(alsa.played("default")))
    # each frame 960 samples (6 x 160) at 48 kHz, and still 1 kHz; a frame
    # played unconverted would be 160 samples of 6 kHz
    assert 25 * 960 <= sum(len(sound) for sound in played) <= 25 * 970
    for sound in played:
        assert share_at(sound, 1000, 48000) > 0.95
    for frame in result["captured"]:
        pcm = bytes.fromhex(frame)
        assert len(pcm) == FRAME
        assert share_at(samples(pcm), 1000, 8000) > 0.95
