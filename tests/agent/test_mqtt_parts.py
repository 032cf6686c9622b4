"""The MQTT bridge's parts that need no broker: the outbox (order, bound, the file that
outlives a restart), the state payloads Home Assistant reads, and the reconnect backoff.
The bridge itself is tested against a real Mosquitto in tests/interop/test_mqtt.py."""

import json
import logging
import os

import pytest

from appliance.bridges.mqtt import retry_delay, state_payload
from appliance.bridges.outbox import Message, Outbox
from appliance.devices.build import pin_factory_for
from appliance.devices.outputs import Light, Relay


def state(n, topic="base/frontdoor"):
    return Message(topic, json.dumps({"seq": n}), retain=True)


def event(n, topic="base/doorbell/event"):
    return Message(topic, json.dumps({"seq": n}))


def payloads(outbox):
    return [(message.topic, json.loads(message.payload)["seq"]) for message in outbox]


def test_messages_leave_in_the_order_they_were_made():
    outbox = Outbox(10)
    messages = [state(1), event(2), state(3)]
    for message in messages:
        outbox.add(message)
    outbox.done(messages[1])  # acknowledged out of order: still removed
    assert payloads(outbox) == [("base/frontdoor", 1), ("base/frontdoor", 3)]
    outbox.done(messages[0])
    outbox.done(messages[2])
    assert len(outbox) == 0


def test_past_the_bound_a_superseded_state_goes_before_any_event():
    outbox = Outbox(4)
    for message in (event(1), state(2), event(3), state(4)):
        outbox.add(message)
    outbox.add(event(5))  # one too many: state 2 is superseded by state 4
    assert payloads(outbox) == [("base/doorbell/event", 1), ("base/doorbell/event", 3),
                                ("base/frontdoor", 4), ("base/doorbell/event", 5)]
    outbox.add(event(6))  # nothing superseded now: the oldest goes
    assert payloads(outbox)[0] == ("base/doorbell/event", 3)
    assert outbox.dropped == 2


def test_while_the_broker_is_away_the_file_holds_every_message(tmp_path):
    path = str(tmp_path / "state" / "outbox.jsonl")
    outbox = Outbox(10, path)
    sent = state(1)
    outbox.add(sent)  # connected: memory only
    outbox.written()
    assert not os.path.exists(path)
    outbox.save()  # the connection went: the file holds what was in flight too
    outbox.add(event(2), durable=True)
    outbox.add(state(3), durable=True)
    outbox.written()
    again = Outbox(10, path)
    assert again.load() == 3
    assert payloads(again) == payloads(outbox)
    for message in list(outbox):
        outbox.done(message)
    outbox.written()
    assert open(path).read() == ""  # all delivered: nothing to send twice after a restart


def test_a_damaged_line_is_skipped_and_the_rest_kept(tmp_path, caplog):
    path = tmp_path / "outbox.jsonl"
    good = json.dumps({"topic": "base/porch", "payload": "{}", "retain": True})
    path.write_text(good + "\n{not json\n" + good + '\n{"topic": "base/porch", "pay')
    outbox = Outbox(10, str(path))
    assert outbox.load() == 2
    assert "outbox.jsonl:2: not a kept MQTT message; skipped" in caplog.text
    outbox.add(state(3), durable=True)  # not glued onto the torn last line
    outbox.written()
    again = Outbox(10, str(path))
    assert again.load() == 3


def test_an_unwritable_state_dir_keeps_messages_in_memory_with_one_warning(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    outbox = Outbox(10, str(blocker / "outbox.jsonl"))  # a directory that cannot exist
    caplog.set_level(logging.WARNING)
    outbox.add(state(1), durable=True)
    outbox.written()
    outbox.add(state(2), durable=True)
    outbox.written()
    assert len(outbox) == 2
    assert caplog.text.count("kept in memory only") == 1


def test_a_long_outage_keeps_the_file_near_the_bound(tmp_path):
    path = str(tmp_path / "outbox.jsonl")
    outbox = Outbox(5, path)
    for n in range(100):
        outbox.add(event(n), durable=True)
    outbox.written()
    lines = open(path).read().splitlines()
    assert len(lines) <= 10
    again = Outbox(5, path)
    again.load()
    assert [seq for _, seq in payloads(again)] == [95, 96, 97, 98, 99]


def test_a_bound_over_the_file_keeps_the_newest(tmp_path):
    path = str(tmp_path / "outbox.jsonl")
    outbox = Outbox(10, path)
    for n in range(6):
        outbox.add(event(n), durable=True)
    outbox.written()
    smaller = Outbox(3, path)
    smaller.load()
    assert [seq for _, seq in payloads(smaller)] == [3, 4, 5]


@pytest.fixture
def pins():
    return pin_factory_for(True)


def test_state_payloads_speak_home_assistants_light_schema(pins):
    light = Light("porch", 22, pins, dimmable=True, initial="on", brightness=40)
    assert state_payload(light, light.status()) == {
        "state": "ON", "brightness": 40, "color_mode": "brightness", "changed": None,
        "seq": 0}
    plain = Light("hall", 23, pins)
    assert state_payload(plain, plain.status()) == {
        "state": "OFF", "color_mode": "onoff", "changed": None, "seq": 0}
    relay = Relay("strike", 24, pins)
    assert state_payload(relay, relay.status())["state"] == "OFF"
    for device in (light, plain, relay):
        device.close()


def test_reconnects_back_off_with_jitter_up_to_a_minute():
    assert [retry_delay(n, lambda: 0.0) for n in range(1, 9)] == [
        0.5, 1, 2, 4, 8, 16, 30, 30]
    assert [retry_delay(n, lambda: 0.999999) for n in (1, 7, 100)] == pytest.approx(
        [1, 60, 60], rel=1e-5)
