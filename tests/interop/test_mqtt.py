"""The MQTT bridge against a real Mosquitto: what Home Assistant discovers, states and
events as they happen, commands from `/set`, the last will, TLS with a client certificate,
and nothing lost or reordered while the broker (or the agent too) is away."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from .conftest import (
    ROOT,
    _agent_env,
    _start_agent,
    make_certificates,
    running_home,
    start_kamailio,
    start_mosquitto,
    wait_for,
)
from .test_subscribe import sim

INSTANCE = "5f0c7a8e-1b2d-4e3f-9a0b-1c2d3e4f5a6b"
NODE = "sip_appliance_5f0c7a8e1b2d"  # homeassistant.node_id(INSTANCE)
BASE = "sip-appliance"

HOME = """
[agent]
name = "frontdoor-pi"
domain = "home.arpa"
simulate = true
state_dir = "{state}"
{proxy}
[mqtt]
host = "127.0.0.1"
port = {port}
{mqtt}
[[users]]
name = "alice"
password = "alice-pw"
devices = ["frontdoor", "porch", "strike", "garage", "doorbell"]

[[devices]]
name = "frontdoor"
type = "door"
pin = 17

[[devices]]
name = "porch"
type = "light"
pin = 22
dimmable = true

[[devices]]
name = "strike"
type = "relay"
pin = 23
pulse = 2

[[devices]]
name = "garage"
type = "relay"
pin = 24
mqtt_control = false

[[devices]]
name = "doorbell"
type = "doorbell"
pin = 27

[[devices]]
name = "camera"
type = "camera"
source = "test"
"""


def home(broker, state, proxy="", mqtt="", drop=()):
    """The config text; `state` is the agent's state directory, made with INSTANCE as
    its instance id so that the discovery topics are known; `drop` leaves devices out."""
    os.makedirs(state, exist_ok=True)
    Path(state, "instance-id").write_text(INSTANCE + "\n")
    text = HOME.format(state=state, port=broker.port, proxy=proxy, mqtt=mqtt)
    for name in drop:
        text = text.replace(', "%s"' % name, "")  # from alice's devices
        start = text.index('[[devices]]\nname = "%s"' % name)
        end = text.find("[[devices]]", start + 1)
        text = text[:start] + (text[end:] if end >= 0 else "")
    return text


class Subscriber:
    """A paho client on its own thread that keeps every message it receives as
    (topic, payload text, retain flag)."""

    def __init__(self, broker, topics=("#",), client_id=None, persistent=False, tls=None,
                 username=None, password=None):
        self.messages = []
        self._lock = threading.Lock()
        self.topics = topics
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or "test-%s" % uuid.uuid4().hex[:8],
                                  clean_session=not persistent)
        if tls is not None:
            self.client.tls_set(ca_certs=str(tls.ca), certfile=str(tls.client_cert),
                                keyfile=str(tls.client_key))
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert wait_for(lambda: self.client.is_connected(), 5.0), "the test client cannot connect"

    def _connected(self, client, userdata, flags, reason, properties):
        client.subscribe([(topic, 1) for topic in self.topics])

    def _message(self, client, userdata, message):
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), message.retain))

    def of(self, topic, live=False):
        """The payloads received on `topic` (only those forwarded live, with `live`)."""
        with self._lock:
            return [payload for name, payload, retain in self.messages
                    if name == topic and not (live and retain)]

    def last(self, topic):
        payloads = self.of(topic)
        return payloads[-1] if payloads else None

    def json(self, topic):
        payload = self.last(topic)
        return json.loads(payload) if payload else None

    def publish(self, topic, payload, retain=False):
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5.0)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def config_topic(component, object_id):
    return "homeassistant/%s/%s/%s/config" % (component, NODE, object_id)


@pytest.fixture
def broker(tmp_path):
    with start_mosquitto(tmp_path / "mosquitto") as mosquitto:
        yield mosquitto


@pytest.fixture
def watching(broker):
    subscriber = Subscriber(broker)
    yield subscriber
    subscriber.close()


def test_home_assistant_discovers_every_device(tmp_path, broker, watching):
    users = {"frontdoor-pi": "pi-s3cret"}
    with start_kamailio(tmp_path / "kamailio", users) as kamailio:
        proxy = '[proxy]\nregistrar = "%s"\npassword = "pi-s3cret"\n' % kamailio.uri
        with running_home(home(broker, str(tmp_path / "state"), proxy=proxy)) as agent:
            expected = {
                config_topic("binary_sensor", "frontdoor"), config_topic("light", "porch"),
                config_topic("switch", "strike"), config_topic("button", "strike_pulse"),
                config_topic("binary_sensor", "garage"), config_topic("event", "doorbell"),
                config_topic("binary_sensor", "camera"), config_topic("sensor", "registration"),
            }
            assert wait_for(lambda: all(watching.last(t) for t in expected)), agent.output()
            configs = {topic: json.loads(watching.last(topic)) for topic in expected}
            assert wait_for(lambda: (watching.json(BASE + "/registration") or {}).get(
                "state") == "registered"), agent.output()
    door = configs[config_topic("binary_sensor", "frontdoor")]
    assert (door["device_class"], door["state_topic"], door["payload_on"],
            door["payload_off"]) == ("door", BASE + "/frontdoor", "open", "closed")
    light = configs[config_topic("light", "porch")]
    assert (light["schema"], light["brightness"], light["brightness_scale"],
            light["supported_color_modes"], light["command_topic"]) == (
        "json", True, 100, ["brightness"], BASE + "/porch/set")
    switch = configs[config_topic("switch", "strike")]
    assert (switch["command_topic"], switch["payload_on"], switch["state_on"]) == (
        BASE + "/strike/set", "ON", "ON")
    assert configs[config_topic("button", "strike_pulse")]["payload_press"] == "pulse"
    assert "command_topic" not in configs[config_topic("binary_sensor", "garage")]
    bell = configs[config_topic("event", "doorbell")]
    assert (bell["device_class"], bell["event_types"], bell["state_topic"]) == (
        "doorbell", ["ring"], BASE + "/doorbell/event")
    camera = configs[config_topic("binary_sensor", "camera")]
    assert (camera["device_class"], camera["state_topic"], camera["payload_on"],
            camera["payload_off"]) == ("running", BASE + "/camera", "streaming", "idle")
    assert watching.json(BASE + "/camera")["state"] == "idle"
    sensor = configs[config_topic("sensor", "registration")]
    assert sensor["state_topic"] == BASE + "/registration"
    # One Home Assistant device for the agent; an entity id per entity, all stable.
    assert {config["device"]["identifiers"][0] for config in configs.values()} == {NODE}
    assert {config["device"]["name"] for config in configs.values()} == {"frontdoor-pi"}
    assert len({config["unique_id"] for config in configs.values()}) == len(configs)
    assert {config["availability_topic"] for config in configs.values()} == {
        BASE + "/availability"}
    assert watching.of(BASE + "/availability")[:1] == ["online"]
    events = [json.loads(event)["event_type"] for event in watching.of(BASE + "/frontdoor/event")]
    assert events == ["registered", "unregistered"]  # the second at the agent's stop


def test_states_events_and_commands(tmp_path, broker, watching):
    with running_home(home(broker, str(tmp_path / "state"))) as agent:
        assert wait_for(lambda: watching.json(BASE + "/frontdoor")), agent.output()
        sim(agent, "frontdoor", "open")
        assert wait_for(lambda: watching.json(BASE + "/frontdoor")["state"] == "open")
        assert watching.json(BASE + "/frontdoor")["seq"] == 1
        sim(agent, "doorbell", "press")
        assert wait_for(lambda: watching.json(BASE + "/doorbell/event"))
        assert watching.json(BASE + "/doorbell/event")["event_type"] == "ring"

        watching.publish(BASE + "/porch/set", "on")
        assert wait_for(lambda: agent.status()["devices"]["porch"]["state"] == "on")
        watching.publish(BASE + "/porch/set", '{"state": "ON", "brightness": 40}')
        assert wait_for(lambda: (watching.json(BASE + "/porch") or {}).get("brightness") == 40)
        assert watching.json(BASE + "/porch")["state"] == "ON"
        assert agent.status()["devices"]["porch"]["brightness"] == 40

        watching.publish(BASE + "/garage/set", "on")  # mqtt_control = false
        assert wait_for(lambda: watching.json(BASE + "/garage/event"))
        refused = watching.json(BASE + "/garage/event")
        assert refused["event_type"] == "command_refused"
        assert "mqtt_control = false" in refused["reason"]
        watching.publish(BASE + "/porch/set", "open sesame")
        assert wait_for(lambda: watching.json(BASE + "/porch/event"))
        assert agent.status()["devices"]["garage"]["state"] == "off"
        assert agent.status()["devices"]["porch"]["brightness"] == 40

        late = Subscriber(broker, topics=(BASE + "/porch",))  # retained: the state now
        try:
            assert wait_for(lambda: late.of(BASE + "/porch"))
            assert json.loads(late.last(BASE + "/porch"))["brightness"] == 40
        finally:
            late.close()
        assert agent.status()["mqtt"]["connected"] is True
    assert watching.last(BASE + "/availability") == "offline"  # said at the clean stop


def test_the_last_will_says_offline_when_the_agent_is_killed(tmp_path, broker, watching):
    workdir = tmp_path / "agent"
    workdir.mkdir()
    config = workdir / "home.toml"
    config.write_text(home(broker, str(tmp_path / "state")))
    agent = _start_agent(str(workdir), ["-c", str(config)])
    try:
        assert wait_for(lambda: watching.last(BASE + "/availability") == "online"), \
            agent.output()
        agent.process.kill()
        agent.process.wait(5)
        assert wait_for(lambda: watching.last(BASE + "/availability") == "offline")
    finally:
        if agent.process.poll() is None:
            agent.process.kill()


def door_states(subscriber):
    """The door's changes the subscriber received live (not its state at connection)."""
    return [(state["seq"], state["state"]) for state in
            map(json.loads, subscriber.of(BASE + "/frontdoor", live=True)) if state["seq"]]


def test_nothing_is_lost_or_reordered_while_the_broker_is_down(tmp_path, broker):
    watching = Subscriber(broker, topics=(BASE + "/frontdoor",), client_id="watcher",
                          persistent=True)
    try:
        with running_home(home(broker, str(tmp_path / "state"))) as agent:
            assert wait_for(lambda: agent.status()["mqtt"]["connected"]), agent.output()
            broker.stop()
            started = time.monotonic()
            for _ in range(5):
                sim(agent, "frontdoor", "open")
                sim(agent, "frontdoor", "closed")
            assert wait_for(lambda: agent.status()["mqtt"]["queued"] == 10)
            assert agent.status()["mqtt"]["connected"] is False
            time.sleep(max(0.0, 10.0 - (time.monotonic() - started)))
            broker.start()
            expected = [(seq, "open" if seq % 2 else "closed") for seq in range(1, 11)]
            assert wait_for(lambda: len(door_states(watching)) >= 10, 20.0), agent.output()
            assert door_states(watching) == expected
            assert agent.status()["mqtt"]["queued"] == 0
    finally:
        watching.close()


def test_events_kept_on_disk_survive_a_restart_of_the_agent(tmp_path, broker):
    state = str(tmp_path / "state")
    watching = Subscriber(broker, topics=(BASE + "/frontdoor",), client_id="watcher",
                          persistent=True)
    try:
        with running_home(home(broker, state)) as agent:
            assert wait_for(lambda: agent.status()["mqtt"]["connected"]), agent.output()
            broker.stop()
            sim(agent, "frontdoor", "open")
            sim(agent, "frontdoor", "closed")
            assert wait_for(lambda: agent.status()["mqtt"]["queued"] == 2)
        # stopped (cleanly) with the broker still away, and started again
        kept = Path(state, "mqtt-outbox.jsonl").read_text().splitlines()
        assert len(kept) == 2
        with running_home(home(broker, state)) as agent:
            assert "2 message(s) kept from before" in agent.log()
            broker.start()
            assert wait_for(lambda: door_states(watching) == [(1, "open"), (2, "closed")],
                            20.0), agent.output()
            assert wait_for(lambda: Path(state, "mqtt-outbox.jsonl").read_text() == "")
    finally:
        watching.close()


def test_discovery_follows_home_assistant_and_the_config(tmp_path, broker, watching):
    state = str(tmp_path / "state")
    stale = config_topic("switch", "old_relay")
    watching.publish(stale, '{"name": "Old relay"}', retain=True)  # from an earlier config
    watching.publish(BASE + "/old_relay", '{"state": "OFF"}', retain=True)
    with running_home(home(broker, state)) as agent:
        porch = config_topic("light", "porch")
        assert wait_for(lambda: watching.last(stale) == ""), agent.output()
        assert watching.last(BASE + "/old_relay") == ""

        before = len(watching.of(porch))
        watching.publish("homeassistant/status", "online")  # Home Assistant restarted
        assert wait_for(lambda: len(watching.of(porch)) > before)

        config = Path(agent.control).parent / "home.toml"
        config.write_text(home(broker, state, drop=("garage",)))
        agent.process.send_signal(signal.SIGHUP)
        garage = config_topic("binary_sensor", "garage")
        assert wait_for(lambda: watching.last(garage) == ""), agent.output()
        assert wait_for(lambda: watching.last(BASE + "/garage") == "")


def test_tls_with_a_client_certificate_and_a_password(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    users = {"pi": "mqtt-s3cret", "tester": "tester-pw"}
    with start_mosquitto(tmp_path / "mosquitto", users=users, tls=certs) as broker:
        watching = Subscriber(broker, topics=(BASE + "/#",), tls=certs, username="tester",
                              password="tester-pw")
        try:
            tls = ('tls = true\nca = "%s"\ncertificate = "%s"\nkey = "%s"\nusername = "pi"\n'
                   % (certs.ca, certs.client_cert, certs.client_key))
            state = str(tmp_path / "state")
            with running_home(home(broker, state, mqtt=tls + 'password = "mqtt-s3cret"')) \
                    as agent:
                assert wait_for(lambda: watching.json(BASE + "/frontdoor")), agent.output()
                sim(agent, "frontdoor", "open")
                assert wait_for(lambda: watching.json(BASE + "/frontdoor")["state"] == "open")
                status = agent.status()["mqtt"]
                assert (status["connected"], status["tls"]) == (True, True)
                output = agent.output()
            assert "mqtt-s3cret" not in output
            with running_home(home(broker, state, mqtt=tls + 'password = "wrong"')) as agent:
                assert wait_for(lambda: agent.status()["mqtt"]["last_error"]), agent.output()
                status = agent.status()["mqtt"]
                assert status["connected"] is False
                assert "check mqtt.username and mqtt.password" in status["last_error"]
        finally:
            watching.close()


def test_the_sip_side_works_on_while_the_broker_is_down(tmp_path, broker):
    broker.stop()
    with running_home(home(broker, str(tmp_path / "state"))) as agent:
        sim(agent, "frontdoor", "open")
        status = agent.status()
        assert status["devices"]["frontdoor"]["state"] == "open"
        assert status["mqtt"]["connected"] is False
        assert "Connection refused" in status["mqtt"]["last_error"]
        assert "trying again in" in agent.log()


def test_a_state_kept_from_before_a_restart_does_not_outlive_the_real_one(tmp_path, broker):
    state = str(tmp_path / "state")
    with running_home(home(broker, state)) as agent:
        assert wait_for(lambda: agent.status()["mqtt"]["connected"]), agent.output()
        broker.stop()
        sim(agent, "frontdoor", "open")
        assert wait_for(lambda: agent.status()["mqtt"]["queued"] == 1)
    broker.start()
    # Started again, its door reads closed: the kept "open" goes out, then the truth.
    with running_home(home(broker, state)) as agent:
        assert wait_for(lambda: agent.status()["mqtt"]["queued"] == 0), agent.output()
        late = Subscriber(broker, topics=(BASE + "/frontdoor",))
        try:
            assert wait_for(lambda: late.json(BASE + "/frontdoor"))
            assert late.json(BASE + "/frontdoor")["state"] == "closed"
        finally:
            late.close()


def test_no_password_reaches_the_log_the_status_or_mqtt(tmp_path, broker, watching):
    """Digest both ways (the devices registering through Kamailio, a user's DO, a wrong
    password), the log at debug: no password and no digest response is in the log, in
    `appliance status --json` or in any MQTT message."""
    users = {"frontdoor-pi": "pi-s3cret"}
    with start_kamailio(tmp_path / "kamailio", users) as kamailio:
        proxy = '[proxy]\nregistrar = "%s"\npassword = "pi-s3cret"\n' % kamailio.uri
        text = home(broker, str(tmp_path / "state"), proxy=proxy).replace(
            "simulate = true", 'simulate = true\nlog_level = "debug"')
        with running_home(text) as agent:
            assert wait_for(lambda: (watching.json(BASE + "/registration") or {}).get(
                "state") == "registered"), agent.output()
            porch = "sip:porch@%s:%d" % (agent.host, agent.port)
            for password, status in (("alice-pw", 0), ("wrong-pw", 1)):
                result = subprocess.run(
                    [sys.executable, "-m", "appliance.cli", "do", porch, "on", "--user",
                     "alice", "--password", password],
                    capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT)
                assert result.returncode == status, result.stdout + result.stderr
            assert wait_for(lambda: (watching.json(BASE + "/porch") or {}).get("state")
                            == "ON")
            shown = json.dumps(agent.status())
            log = agent.log()
    assert "Authorization" in log and "DO sip:porch" in log  # the debug lines are there
    published = "\n".join(payload for _, payload, _ in watching.messages)
    for secret in ("pi-s3cret", "alice-pw", "wrong-pw"):
        assert secret not in log, secret
        assert secret not in shown, secret
        assert secret not in published, secret
    assert 'response="' not in log  # digest responses, ours and the user's
