"""DTMF: RFC 4733 telephone-events sent and received (each digit once), SIP INFO bodies, and
a PIN entered at the door."""

import pytest

from appliance.media.dtmf import (
    EVENTS,
    DtmfReceiver,
    PinCollector,
    event_payloads,
    parse_event,
    parse_info,
)
from appliance.media.rtp import RtpSender, parse_rtp


def test_parse_event_reads_the_fields():
    assert parse_event(b"\x0b\x8a\x03\x20") == (11, True, 10, 800)
    assert parse_event(b"\x05\x3f\x00\xa0extra") == (5, False, 63, 160)
    with pytest.raises(ValueError) as info:
        parse_event(b"\x05\x0a\x00")
    assert str(info.value) == "telephone-event payload too short"


def test_event_codes():
    assert EVENTS.index("*") == 10 and EVENTS.index("#") == 11 and EVENTS.index("D") == 15


def test_a_digit_is_a_start_growing_updates_and_three_end_packets():
    payloads = event_payloads("5")
    events = [parse_event(payload) for payload, _ in payloads]
    assert [marker for _, marker in payloads] == [True] + [False] * 6
    assert [duration for _, _, _, duration in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [end for _, end, _, _ in events] == [False] * 4 + [True] * 3
    assert {event for event, _, _, _ in events} == {5}
    assert payloads[-1] == payloads[-2] == payloads[-3]


def test_a_digit_one_ptime_long_is_end_packets_only():
    payloads = event_payloads("#", duration_ms=20)
    assert payloads == [(b"\x0b\x8a\x00\xa0", True), (b"\x0b\x8a\x00\xa0", False),
                        (b"\x0b\x8a\x00\xa0", False)]


def test_a_duration_between_ptimes_ends_exactly():
    events = [parse_event(p) for p, _ in event_payloads("a", duration_ms=50)]
    assert [(e[0], e[3]) for e in events] == [(12, 160), (12, 320), (12, 400), (12, 400),
                                              (12, 400)]


def test_not_a_digit_or_an_impossible_duration():
    for digit in ("x", "12", ""):
        with pytest.raises(ValueError) as info:
            event_payloads(digit)
        assert str(info.value) == "not a DTMF digit: %r" % digit
    for duration_ms in (0, 10, 9000):
        with pytest.raises(ValueError):
            event_payloads("1", duration_ms=duration_ms)


def test_each_digit_is_received_once():
    receiver = DtmfReceiver()
    heard = []
    for timestamp, digit in ((1000, "1"), (3000, "1"), (5000, "#")):
        for payload, _ in event_payloads(digit):
            heard.append(receiver.feed(timestamp, payload))
    assert [d for d in heard if d is not None] == ["1", "1", "#"]
    assert heard[0] == "1"  # reported at the first packet, not at the end


def test_a_repeat_arriving_after_the_next_digit_is_not_a_new_digit():
    receiver = DtmfReceiver()
    first, second = event_payloads("4"), event_payloads("2")
    assert receiver.feed(1000, first[0][0]) == "4"
    assert receiver.feed(2000, second[0][0]) == "2"
    assert receiver.feed(1000, first[-1][0]) is None


def test_another_digit_at_the_same_timestamp_is_new():
    receiver = DtmfReceiver()
    assert receiver.feed(1000, event_payloads("1")[0][0]) == "1"
    assert receiver.feed(1000, event_payloads("2")[0][0]) == "2"
    assert receiver.feed(1000, event_payloads("1")[-1][0]) is None


def test_a_digit_whose_start_was_lost_is_still_heard():
    receiver = DtmfReceiver()
    payloads = event_payloads("9")
    assert [receiver.feed(160, p) for p, _ in payloads[-3:]] == ["9", None, None]


def test_tones_other_than_digits_and_garbage_are_ignored():
    receiver = DtmfReceiver()
    assert receiver.feed(100, b"\x10\x8a\x03\x20") is None  # 16: not DTMF
    assert receiver.feed(200, b"\x05") is None
    assert receiver.feed(200, b"\x05\x0a\x00\xa0") == "5"


def test_digits_sent_over_rtp_come_out_the_other_end():
    sender = RtpSender(0, ssrc=7)
    receiver = DtmfReceiver()
    heard = []
    for digit in "1234#":
        start = sender.timestamp
        for payload, marker in event_payloads(digit):
            packet = parse_rtp(sender.event_packet(101, payload, marker, start))
            assert packet.payload_type == 101
            digit_heard = receiver.feed(packet.timestamp, packet.payload)
            if digit_heard:
                heard.append(digit_heard)
        sender.skip(800)
        sender.packet(b"\xff" * 160, 160)
    assert "".join(heard) == "1234#"


@pytest.mark.parametrize(
    "content_type, body, digit",
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", "Signal= #\r\nDuration= 250", "#"),
        ("Application/DTMF-Relay; charset=utf-8", b"signal=*\nduration=100", "*"),
        ("application/dtmf-relay", "SIGNAL=a", "A"),
        ("application/dtmf-relay", "Signal=11\r\nDuration=160", "#"),
        ("application/dtmf-relay", "Duration=160\r\nSignal=0", "0"),
        ("application/dtmf-relay", "Duration=160", None),
        ("application/dtmf-relay", "Signal=X", None),
        ("application/dtmf-relay", "Signal=16", None),
        ("application/dtmf", "5", "5"),
        ("application/dtmf", b"#\r\n", "#"),
        ("application/dtmf", "55", None),
        ("text/plain", "Signal=5", None),
        ("application/sdp", "5", None),
        (None, "Signal=5", None),
    ],
)
def test_digits_in_sip_info_bodies(content_type, body, digit):
    assert parse_info(content_type, body) == digit


def enter(pin, keys):
    return [pin.feed(key) for key in keys]


def test_the_right_code_is_accepted():
    pin = PinCollector("4711")
    assert enter(pin, "4711#") == [None, None, None, None, "accepted"]
    assert pin.failures == 0


def test_three_wrong_codes_lock_it_for_good():
    pin = PinCollector("4711")
    assert enter(pin, "1234#")[-1] == "refused"
    assert enter(pin, "0000#")[-1] == "refused"
    assert pin.failures == 2
    assert enter(pin, "4710#")[-1] == "locked"
    assert enter(pin, "4711#") == ["locked"] * 5
    assert pin.failures == 3


def test_star_clears_the_entry():
    pin = PinCollector("4711")
    assert enter(pin, "99*4711#")[-1] == "accepted"
    assert enter(pin, "4711*#")[-1] == "refused"


def test_prefixes_and_extensions_of_the_code_are_refused():
    pin = PinCollector("4711", attempts=10)
    for entry in ("471", "47111", "04711"):
        assert enter(pin, entry + "#")[-1] == "refused"


def test_an_entry_longer_than_32_digits_is_refused():
    code = "1" * 32
    pin = PinCollector(code, attempts=10)
    assert enter(pin, code + "#")[-1] == "accepted"
    assert enter(pin, code + "1#")[-1] == "refused"
    assert enter(pin, "2" * 500 + "*" + code + "#")[-1] == "accepted"


def test_a_hash_alone_is_refused_without_counting():
    pin = PinCollector("4711", attempts=1)
    assert pin.feed("#") == "refused"
    assert pin.failures == 0
    assert enter(pin, "4711#")[-1] == "accepted"


def test_success_forgives_earlier_mistakes():
    pin = PinCollector("12")
    enter(pin, "0#0#")
    assert enter(pin, "12#")[-1] == "accepted"
    assert enter(pin, "0#0#")[-1] == "refused"


def test_codes_and_keys_are_checked():
    for code in ("", "12#", "1*2", "1" * 33):
        with pytest.raises(ValueError):
            PinCollector(code)
    assert enter(PinCollector("ab12"), "AB12#")[-1] == "accepted"
    with pytest.raises(ValueError):
        PinCollector("1").feed("x")
