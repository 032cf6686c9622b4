"""Calls with a stock softphone: baresip (Debian's baresip-core) calls the intercom, and
answers the doorbell's call, with a tone each way that must arrive at the other side with
its frequency intact and under 1% of its frames lost on loopback.

The intercom's audio goes through the real PyAudio/PortAudio path on ALSA's `file` and
`null` plugins (tests/agent/audio_alsa.py): the agent runs with ALSA_CONFIG_PATH set to the
test's asound.conf, sends the tone in a device's input file and writes what it receives
into the device's played file (raw PCM, silent periods between the frames, as the null
plugin keeps no clock). baresip sends a WAV file (`aufile`) and dumps what it decodes to a
WAV file (`sndfile`'s `-dec.wav`, one frame per packet with its jitter buffer off).

Each side sends its own frequency, 1 kHz from one and 500 Hz from the other, the two
swapped between the tests, so that each side's 1 kHz is heard once, and a side that heard
its own tone (an echo, a loop in the wrong place) could not pass.

Loss: the agent's `appliance status` counts RTP lost and late while the call is up;
baresip's `rtcpsummary` prints, when the call closes, what it received and lost by the
sequence numbers as of the agent's last RTCP sender report, which comes 2.5 to 7.5 s
after the media starts: the calls last past that.
"""

import re
import subprocess
import sys
import time

from ..agent.audio_alsa import Alsa
from .conftest import ROOT, _agent_env, peer_unavailable, running_home, start_baresip, wait_for
from .peers import free_port
from .tones import frames_with_sound, measure, read_wav, tone_pcm, write_wav

FIRST_REPORT = 7.7  # s after the answer by which the agent's first RTCP SR has come
TOLERANCE = 0.02  # the dominant frequency within 2% of the one sent
MAX_LOSS = 0.01  # of the frames sent
MIN_FRAMES = 300  # frames the agent received by the end of the call's 7.7 s at least
MIN_REPORTED = 100  # frames baresip received by the agent's last sender report at least

ALSA_TONES = {"default": 1000, "intercom": 500}  # Hz in each test device's input

BARESIP_MODULES = ("aubridge", "aufile", "sndfile", "rtcpsummary")


def need_pyaudio():
    try:
        import pyaudio  # noqa: F401
    except ImportError as error:
        peer_unavailable("PyAudio (%s)" % error,
                         "pip install '.[audio]' (Debian: apt-get install portaudio19-dev)")


def sound_devices(tmp_path):
    """The test's ALSA devices: "default" (1 kHz in) and "intercom" (500 Hz in)."""
    need_pyaudio()
    directory = tmp_path / "alsa"
    directory.mkdir()
    return Alsa(directory)


def baresip_settings(tmp_path, freq):
    """baresip's audio: a `freq` Hz tone out of a WAV file (longer than any call here),
    what it decodes dumped to WAV files in tmp_path/dumps, its jitter buffer off (every
    packet decoded as it comes: a frame in the dump each), the player a bridge to nothing."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    wav = write_wav(tmp_path / ("tone-%d.wav" % freq), tone_pcm(freq, 30))
    settings = {"audio_source": "aufile,%s" % wav, "audio_player": "aubridge,nil",
                "audio_alert": "aubridge,nil", "snd_path": str(dumps),
                "jitter_buffer_delay": "0-0"}
    return settings, dumps


def sim_press(agent, device):
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "sim", device, "press", "--control",
         agent.control], capture_output=True, text=True, timeout=10, env=_agent_env(),
        cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def answered_call(agent):
    calls = agent.status()["calls"]
    if calls and calls[0]["state"] == "answered" and calls[0].get("media", {}).get("received"):
        return calls[0]
    return None


def hold_call(agent, baresip, seconds):
    """Keeps the answered call up until `seconds` after its answer; the agent's last view
    of its media then."""
    call = wait_for(lambda: answered_call(agent), timeout=10)
    assert call, "no answered call with media:\n%s\n%s" % (agent.output(), baresip.shown())
    answered = time.monotonic()
    while time.monotonic() < answered + seconds:
        time.sleep(0.2)
    calls = agent.status()["calls"]
    assert len(calls) == 1, "the call is not up %.1f s after its answer:\n%s\n%s" % (
        seconds, agent.output(), baresip.shown())
    return calls[0]


def summary(baresip):
    """baresip's rtcpsummary line, as {"PR": "412", "PL": "0,0", ...}."""
    line = re.search(r"EX=BareSip;(.*)", baresip.shown())
    assert line, "no RTCP summary from baresip:\n" + baresip.shown()
    fields = dict(item.split("=", 1) for item in line.group(1).split(";") if "=" in item)
    assert "ERROR" not in fields, "baresip got no RTCP sender report:\n" + baresip.shown()
    return fields


def check_agent_heard(alsa, device, media, freq):
    """What the intercom received and played into `device`'s file: `freq` Hz, < 1% lost."""
    played = frames_with_sound(alsa.played(device))
    heard = measure(played, 8000, freq)
    frames = heard["samples"] // 160
    report = "intercom heard %s, %d frames played; RTP %s" % (heard, frames, media)
    assert abs(heard["dominant"] - freq) <= TOLERANCE * freq, report
    assert heard["clean"] >= 1 - MAX_LOSS, report
    # `lost`: frames never played, the `late` ones (received after their turn) included.
    lost = media["lost"]
    expected = media["received"] + lost - media["late"]
    assert media["received"] >= MIN_FRAMES, report
    assert lost / expected < MAX_LOSS, report
    # What came on time was played, but for the few frames the jitter buffer holds, and
    # those it drops to shrink its delay (the clockless null device leaves the agent's
    # loop a burst of packets to read now and then: its delay starts long).
    assert frames >= 0.9 * media["received"], report
    alsa.played_path(device).unlink()  # tens of MB of mostly silence: kept only on failure
    return heard


def check_baresip_heard(dumps, stats, media, freq):
    """What baresip received and decoded: `freq` Hz, < 1% of the agent's frames lost."""
    [dump] = dumps.glob("*-dec.wav")
    pcm, rate = read_wav(dump)
    heard = measure(frames_with_sound(pcm.tobytes(), rate // 50), rate, freq)
    received = int(stats["PR"])
    lost = int(stats["PL"].split(",")[0]) + int(stats["PD"].split(",")[0])
    report = "baresip heard %s at %d Hz (%d frames in all); RTCP summary %s; agent %s" % (
        heard, rate, len(pcm) // (rate // 50), stats, media)
    assert abs(heard["dominant"] - freq) <= TOLERANCE * freq, report
    assert heard["clean"] >= 1 - MAX_LOSS, report
    assert received >= MIN_REPORTED, report
    assert lost / (received + lost) < MAX_LOSS, report
    # The dump, a frame per packet, went on after that report: it holds at least what the
    # agent had sent when the test last asked it, less 1%.
    assert len(pcm) // (rate // 50) >= (1 - MAX_LOSS) * media["sent"], report
    return heard


HOME_CALLED = """
[agent]
name = "gate-pi"
simulate = true
digest_algorithms = ["MD5"]      # baresip 1.0 answers only MD5

[[users]]
name = "alice"
password = "alice-pw"
devices = ["gate"]

[[devices]]
name = "gate"
type = "intercom"
audio = "intercom"               # the ALSA device of that name: 500 Hz in
rtp_timeout = 5
max_call_time = 30
"""
ACCOUNT = "<sip:alice@127.0.0.1>;auth_pass=alice-pw;regint=0"


def call_the_intercom(tmp_path, account=ACCOUNT, modules=BARESIP_MODULES):
    """baresip (`account`, `modules`) calls the intercom with a 1 kHz tone, which answers
    with 500 Hz; the call is held past the agent's first RTCP report and hung up. The
    agent's last view of the call, baresip's RTCP summary, the agent's log and what
    baresip printed; what each side heard is checked."""
    alsa = sound_devices(tmp_path)
    settings, dumps = baresip_settings(tmp_path, 1000)
    env = {"ALSA_CONFIG_PATH": str(alsa.config)}
    with running_home(HOME_CALLED, "sipcall-", env=env) as agent, start_baresip(
            tmp_path / "baresip", account, modules=modules, settings=settings) as baresip:
        assert wait_for(lambda: "baresip is ready" in baresip.shown()), baresip.shown()
        baresip.command("/dial sip:gate@%s" % agent.address)
        call = hold_call(agent, baresip, FIRST_REPORT)
        assert (call["device"], call["direction"], call["peer"]) == (
            "gate", "in", "sip:alice@127.0.0.1"), call
        media = call["media"]
        assert (media["codec"], media["direction"], media["audio"]) == (
            "PCMU", "sendrecv", "intercom (ALSA)"), media
        baresip.command("/hangup")
        assert wait_for(lambda: "ended: the other side hung up" in agent.log()), (
            agent.log() + baresip.shown())
        assert wait_for(lambda: "EX=BareSip" in baresip.shown()), baresip.shown()
        assert agent.status()["calls"] == []
        stats = summary(baresip)
        log = agent.log()
        shown = baresip.shown()
    assert "call %s with sip:alice@127.0.0.1 ended: the other side hung up" % call["id"] in (
        log), log
    print("intercom heard", check_agent_heard(alsa, "intercom", media, 1000), media)
    print("baresip heard", check_baresip_heard(dumps, stats, media, ALSA_TONES["intercom"]),
          stats)
    return call, log, shown


def test_baresip_calls_the_intercom_and_each_hears_the_others_tone(tmp_path):
    call, _, _ = call_the_intercom(tmp_path)
    assert "srtp" not in call["media"], call


def test_baresip_calls_over_srtp_and_each_hears_the_others_tone(tmp_path):
    """baresip with `mediaenc=srtp-mand` offers RTP/SAVP with an SDES key (RFC 4568); the
    intercom answers with its own. Each side hearing the other's tone, with under 1% lost,
    means each decrypts what the other encrypts (RTCP too: baresip's summary is of the
    agent's SRTCP reports), and nothing plain was taken: baresip drops what does not
    authenticate, and the agent counts what it dropped."""
    call, log, shown = call_the_intercom(
        tmp_path, ACCOUNT + ";mediaenc=srtp-mand", BARESIP_MODULES + ("srtp",))
    media = call["media"]
    assert (media.get("srtp"), media.get("srtp_failed")) == (
        "AES_CM_128_HMAC_SHA1_80", 0), (media, shown)
    assert "the audio is SRTP (AES_CM_128_HMAC_SHA1_80)" in log, log
    assert re.search(r"srtp: audio: SRTP is Enabled \(cryptosuite=AES_CM_128_HMAC_SHA1_80\)",
                     shown), shown
    assert "failed to decrypt" not in shown, shown


HOME_DOORBELL = """
[agent]
name = "gate-pi"
simulate = true

[[devices]]
name = "bell"
type = "doorbell"
pin = 27
call = ["sip:alice@127.0.0.1:%(port)d"]
ring_time = 10

[[devices]]
name = "gate"
type = "intercom"
audio = "default"                # the test's ALSA default device: 1 kHz in
max_call_time = %(max_call_time)s
"""


def test_the_doorbell_calls_baresip_which_answers_and_each_hears_the_others_tone(tmp_path):
    alsa = sound_devices(tmp_path)
    settings, dumps = baresip_settings(tmp_path, 500)
    port = free_port()
    env = {"ALSA_CONFIG_PATH": str(alsa.config)}
    limit = 10.0  # s: past FIRST_REPORT and the status asked then; the agent hangs up
    home = HOME_DOORBELL % {"port": port, "max_call_time": limit}
    with running_home(home, "sipbell-", env=env) as agent, start_baresip(
            tmp_path / "baresip", "<sip:alice@127.0.0.1:%d>;regint=0;answermode=auto" % port,
            listen="127.0.0.1:%d" % port, modules=BARESIP_MODULES,
            settings=settings) as baresip:
        assert wait_for(lambda: "baresip is ready" in baresip.shown()), baresip.shown()
        sim_press(agent, "bell")
        call = hold_call(agent, baresip, FIRST_REPORT)
        assert (call["device"], call["direction"]) == ("bell", "out"), call
        assert call["peer"].startswith("sip:alice@127.0.0.1:%d" % port), call
        media = call["media"]
        assert (media["codec"], media["direction"], media["audio"]) == (
            "PCMU", "sendrecv", "default (ALSA)"), media
        assert wait_for(lambda: "ended: longer than %g s" % limit in agent.log(), timeout=5), (
            agent.log() + baresip.shown())
        assert wait_for(lambda: "EX=BareSip" in baresip.shown()), baresip.shown()
        assert agent.status()["calls"] == []
        stats = summary(baresip)
        log = agent.log()
    print("intercom heard", check_agent_heard(alsa, "default", media, 500), media)
    print("baresip heard", check_baresip_heard(dumps, stats, media, ALSA_TONES["default"]),
          stats)
    assert "bell: ringing sip:alice@127.0.0.1:%d (parallel)" % port in log, log
    assert "nobody answered" not in log, log


HOME_SHORT = """
[agent]
name = "gate-pi"
simulate = true
digest_algorithms = ["MD5"]

[[users]]
name = "alice"
password = "alice-pw"
devices = ["gate"]

[[devices]]
name = "gate"
type = "intercom"
audio = "null"
"""


def test_status_tells_how_the_call_baresip_hung_up_ended(tmp_path):
    # `appliance status --json` keeps the last calls that ended (recent_calls), with why.
    with running_home(HOME_SHORT, "sipend-") as agent, start_baresip(
            tmp_path / "baresip", "<sip:alice@127.0.0.1>;auth_pass=alice-pw;regint=0",
            modules=("aubridge",)) as baresip:
        assert wait_for(lambda: "baresip is ready" in baresip.shown()), baresip.shown()
        baresip.command("/dial sip:gate@%s" % agent.address)
        call = wait_for(lambda: answered_call(agent), timeout=10)
        assert call, agent.output() + baresip.shown()
        baresip.command("/hangup")
        assert wait_for(lambda: "ended: the other side hung up" in agent.log()), agent.log()
        status = agent.status()
    assert status["calls"] == []
    ended = [entry for entry in status["recent_calls"] if entry["id"] == call["id"]]
    assert [(entry["reason"], entry["direction"]) for entry in ended] == [
        ("the other side hung up", "in")], status["recent_calls"]


def test_baresips_best_effort_srtp_gets_srtp_too(tmp_path):
    """baresip's `mediaenc=srtp` offers RTP/AVP with a=crypto (SRTP if the other side
    takes it, plain if not): the intercom takes it."""
    with running_home(HOME_SHORT, "sipsrtp-") as agent, start_baresip(
            tmp_path / "baresip", ACCOUNT + ";mediaenc=srtp",
            modules=("aubridge", "srtp")) as baresip:
        assert wait_for(lambda: "baresip is ready" in baresip.shown()), baresip.shown()
        baresip.command("/dial sip:gate@%s" % agent.address)
        call = wait_for(lambda: answered_call(agent), timeout=10)
        assert call, agent.output() + baresip.shown()
        assert (call["media"].get("srtp"), call["media"].get("srtp_failed")) == (
            "AES_CM_128_HMAC_SHA1_80", 0), call
        assert wait_for(lambda: "SRTP is Enabled" in baresip.shown()), baresip.shown()
        baresip.command("/hangup")
        assert wait_for(lambda: "ended: the other side hung up" in agent.log()), agent.log()
    assert "Using media encryption 'srtp'" in baresip.shown(), baresip.shown()


HOME_PROXY = """
[agent]
name = "frontdoor-pi"
domain = "home.arpa"
simulate = true
state_dir = "state"

[proxy]
registrar = "%(registrar)s"
username = "frontdoor-pi"
password = "pi-s3cret"

[[devices]]
name = "strike"
type = "relay"
pin = 23
pulse = 1

[[devices]]
name = "intercom"
type = "intercom"
audio = "null"
dtmf_code = "1234"
strike = "strike"
max_call_time = 4

[[devices]]
name = "bell"
type = "doorbell"
pin = 27
call = ["sip:alice@home.arpa"]
ring_time = 10
"""


def test_the_doorbell_calls_through_the_home_proxy(tmp_path):
    """Kamailio challenges the doorbell's INVITE (407) and finds alice where her baresip
    registered; she answers, and the call runs through the proxy (it record-routes)."""
    from .conftest import start_kamailio

    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(tmp_path / "kamailio", users) as kamailio:
        account = ('<sip:alice@home.arpa>;auth_pass=alice-pw;regint=60;answermode=auto;'
                   'outbound="sip:127.0.0.1:%d"' % kamailio.port)
        with start_baresip(tmp_path / "baresip", account) as baresip, \
                running_home(HOME_PROXY % {"registrar": kamailio.uri}, "sipbell-") as agent:
            assert wait_for(lambda: "registered successfully" in baresip.shown(), 10), \
                baresip.shown() + kamailio.log()
            assert wait_for(lambda: all(r["registered"] for r in
                                        agent.status()["registrations"])), agent.output()
            sim_press(agent, "bell")
            calls = wait_for(lambda: [c for c in agent.status()["calls"]
                                      if c["state"] == "answered"], timeout=10)
            assert calls, agent.output() + baresip.shown() + kamailio.log()
            assert (calls[0]["device"], calls[0]["peer"]) == ("bell", "sip:alice@home.arpa")
            assert wait_for(lambda: "ended: longer than 4 s" in agent.log(), timeout=8), \
                agent.output()
            # The BYE reached baresip through the proxy's record-route.
            assert wait_for(lambda: "sip:bell@home.arpa: session closed" in baresip.shown(),
                            5), baresip.shown()
