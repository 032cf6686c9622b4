"""Calls to and from the intercom over real loopback UDP: who gets through, offer and
answer, ringing and answering, CANCEL, BYE, hold, busy, DTMF that opens the strike, and
the doorbell ringing the household. The phones are tests/agent/phone.py."""

import asyncio
import contextlib
import socket
import struct

from appliance.config import load
from appliance.sip import sdp
from appliance.sip.dialog import Dialog

from .phone import Phone
from .support import TEST_ENV, agent_from, run, wait_until

HOME = """
[agent]
name = "test-home"
simulate = true
listen = ["udp:127.0.0.1:0"]
control = "{control}"

[[users]]
name = "alice"
password = "alice-pw"
devices = ["intercom"]

[[users]]
name = "bob"
password = "bob-pw"
devices = []

[[devices]]
name = "strike"
type = "relay"
pin = 23
pulse = 0.5

[[devices]]
name = "intercom"
type = "intercom"
answer_after = %(answer_after)s
dtmf_code = "1234"
strike = "strike"
audio = "null"
rtp_timeout = %(rtp_timeout)s
max_call_time = %(max_call_time)s
"""


def home(tmp_path, answer_after=0, rtp_timeout=30, max_call_time=600, extra=""):
    return agent_from(tmp_path, HOME % {"answer_after": answer_after,
                                        "rtp_timeout": rtp_timeout,
                                        "max_call_time": max_call_time} + extra)


@contextlib.asynccontextmanager
async def phone(user="alice", password="alice-pw"):
    device = Phone(user, password)
    try:
        yield device
    finally:
        device.close()


def uri(agent):
    return "sip:intercom@127.0.0.1:%d" % agent.stack.bound[0][2]


def port(agent):
    return agent.stack.bound[0][2]


def strike(agent):
    return agent.devices["strike"].output.pin.state


def test_an_allowed_user_calls_in_and_audio_flows_both_ways(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            response = await alice.call(uri(agent), port(agent))
            assert response.status == 200
            answer = sdp.accepted(sdp.parse(response.body))
            assert (answer.codec, answer.event_type) == ("PCMU", 101)
            await asyncio.sleep(0.5)
            assert alice.rtp_received() >= 15  # 50 packets a second, silence from null
            await alice.send_rtp(10)
            assert await wait_until(
                lambda: agent.status()["calls"][0]["media"]["received"] >= 8)
            assert agent.status()["calls"][0]["state"] == "answered"
            assert (await alice.in_dialog("BYE")).status == 200
            assert agent.status()["calls"] == []
            assert agent.calls.history[-1]["reason"] == "the other side hung up"

    run(body())


def test_strangers_do_not_listen_in(tmp_path):
    async def body():
        async with home(tmp_path) as agent:
            async with phone("alice", "wrong") as mallory:
                assert (await mallory.call(uri(agent), port(agent))).status == 401
            async with phone("bob", "bob-pw") as bob:  # a user, not of the intercom
                assert (await bob.call(uri(agent), port(agent))).status == 403
            assert agent.calls.history == []

    run(body())


def test_nothing_in_common_is_488_and_a_second_call_is_486(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as first, phone() as second:
            opus = sdp.offer("127.0.0.1", 4000, "1").replace(
                "RTP/AVP 0 8 101", "RTP/AVP 96").replace("a=rtpmap:0 PCMU", "a=rtpmap:96 opus")
            assert (await first.call(uri(agent), port(agent), body=opus)).status == 488
            assert (await first.call(uri(agent), port(agent))).status == 200
            assert (await second.call(uri(agent), port(agent))).status == 486
            await first.in_dialog("BYE")

    run(body())


def test_ringing_then_cancel(tmp_path):
    async def body():
        async with home(tmp_path, answer_after=5) as agent, phone() as alice:
            calling = asyncio.ensure_future(alice.call(uri(agent), port(agent)))
            assert await wait_until(lambda: agent.status()["calls"] and
                                    agent.status()["calls"][0]["state"] == "ringing")
            await asyncio.sleep(0.2)
            await alice.cancel()
            assert (await calling).status == 487
            assert agent.status()["calls"] == []
            assert agent.calls.history[-1]["reason"] == "cancelled by the caller"

    run(body())


def test_answer_mode_auto_skips_the_ringing(tmp_path):
    async def body():
        async with home(tmp_path, answer_after=30) as agent, phone() as alice:
            response = await alice.call(uri(agent), port(agent),
                                        fields=[("Answer-Mode", "Auto")])
            assert response.status == 200
            await alice.in_dialog("BYE")

    run(body())


def test_an_invite_without_an_offer_gets_ours_and_the_answer_comes_in_the_ack(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            response = await alice.call(uri(agent), port(agent), body=b"")
            assert response.status == 200
            offered = sdp.parse(response.body)
            text, _, _ = sdp.answer(offered, "127.0.0.1", alice.rtp_port, "5")
            await alice.ack(text.encode())
            assert await wait_until(lambda: agent.status()["calls"][0]["state"] == "answered")
            await asyncio.sleep(0.3)
            assert alice.rtp_received() >= 8
            await alice.in_dialog("BYE")

    run(body())


def test_hold_and_resume_with_a_reinvite(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            hold = sdp.offer("127.0.0.1", alice.rtp_port, "77", version=2, direction="sendonly")
            response = await alice.in_dialog("INVITE", body=hold.encode(),
                                             fields=[("Content-Type", "application/sdp")])
            assert response.status == 200
            assert sdp.accepted(sdp.parse(response.body)).direction == "sendonly"  # ours: recvonly
            await alice.ack()
            await asyncio.sleep(0.1)
            alice.rtp_received()
            await asyncio.sleep(0.3)
            assert alice.rtp_received() == 0  # held: the intercom sends nothing
            resume = sdp.offer("127.0.0.1", alice.rtp_port, "77", version=3)
            await alice.in_dialog("INVITE", body=resume.encode(),
                                  fields=[("Content-Type", "application/sdp")])
            await alice.ack()
            await asyncio.sleep(0.3)
            assert alice.rtp_received() >= 8
            await alice.in_dialog("BYE")

    run(body())


def test_the_right_code_opens_the_door_and_three_wrong_ones_end_the_call(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            await alice.send_digits("1234#")
            assert await wait_until(lambda: strike(agent) == 1)
            assert await wait_until(lambda: strike(agent) == 0, timeout=2.0)  # its pulse
            for _ in range(3):
                await alice.send_digits("9999#")
            request, _ = await alice.request()
            assert request.method == "BYE"
            assert strike(agent) == 0
            assert agent.calls.history[-1]["reason"] == "three wrong door codes"

    run(body())


def test_sip_info_digits_open_the_door_too(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            for digit in "1234#":
                response = await alice.in_dialog(
                    "INFO", body=("Signal=%s\r\nDuration=160\r\n" % digit).encode(),
                    fields=[("Content-Type", "application/dtmf-relay")])
                assert response.status == 200
            assert await wait_until(lambda: strike(agent) == 1)
            await alice.in_dialog("BYE")

    run(body())


def test_a_call_without_rtp_or_past_its_time_is_hung_up(tmp_path):
    async def body():
        async with home(tmp_path, rtp_timeout=0.5) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            request, _ = await alice.request()
            assert request.method == "BYE"
            assert agent.calls.history[-1]["reason"] == "no RTP for 0.5 s"
        async with home(tmp_path, max_call_time=0.5) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            sending = asyncio.ensure_future(alice.send_rtp(100))
            request, _ = await alice.request()
            sending.cancel()
            assert request.method == "BYE"
            assert agent.calls.history[-1]["reason"] == "longer than 0.5 s"

    run(body())


# -- the doorbell calling the household ----------------------------------------------------

DOORBELL = """
[[devices]]
name = "doorbell"
type = "doorbell"
pin = 27
call = [%(targets)s]
ring = "%(ring)s"
ring_time = %(ring_time)s
notify = [%(notify)s]
"""


def bell(tmp_path, phones, ring="parallel", ring_time=5, notify=()):
    targets = ", ".join('"sip:%s@127.0.0.1:%d"' % (p.user, p.port) for p in phones)
    extra = DOORBELL % {"targets": targets, "ring": ring, "ring_time": ring_time,
                        "notify": ", ".join('"sip:%s@127.0.0.1:%d"' % (p.user, p.port)
                                            for p in notify)}
    return home(tmp_path, extra=extra)


async def invited(callee):
    """The next INVITE to `callee`, answered 180."""
    while True:
        request, source = await callee.request(timeout=5)
        if request.method == "INVITE":
            await callee.respond(request, source, 180)
            return request, source


async def answer(callee, request, source):
    text, _, _ = sdp.answer(sdp.parse(request.body), "127.0.0.1", callee.rtp_port, "9")
    await callee.respond(request, source, 200, body=text)


async def cancelled(callee, invite, source):
    """Take the CANCEL of `invite`: 200 to it, 487 to the INVITE."""
    request, _ = await callee.request(timeout=5)
    assert request.method == "CANCEL"
    await callee.respond(request, source, 200)
    await callee.respond(invite, source, 487)


def test_parallel_ringing_the_first_to_answer_gets_the_visitor(tmp_path):
    async def body():
        async with phone("alice") as alice, phone("bob") as bob:
            async with bell(tmp_path, [alice, bob]) as agent:
                agent.simulate("doorbell", "press")
                to_alice, alice_source = await invited(alice)
                to_bob, bob_source = await invited(bob)
                await answer(bob, to_bob, bob_source)
                ack, _ = await bob.request()
                assert ack.method == "ACK"
                await cancelled(alice, to_alice, alice_source)
                assert await wait_until(lambda: [
                    (c["peer"], c["state"]) for c in agent.status()["calls"]] == [
                    ("sip:bob@127.0.0.1:%d" % bob.port, "answered")])
                await asyncio.sleep(0.3)
                assert bob.rtp_received() >= 8  # the visitor's side (null audio: silence)
                agent.simulate("doorbell", "press")  # a press during the call: nothing new
                methods = []
                with contextlib.suppress(TimeoutError):
                    while True:
                        methods.append((await alice.request(timeout=0.5))[0].method)
                assert "INVITE" not in methods  # (the ACK of its 487 may come meanwhile)

    run(body())


def test_sequential_ringing_goes_on_to_the_next_after_ring_time(tmp_path):
    async def body():
        async with phone("alice") as alice, phone("bob") as bob:
            async with bell(tmp_path, [alice, bob], ring="sequential", ring_time=1) as agent:
                agent.simulate("doorbell", "press")
                to_alice, alice_source = await invited(alice)
                await cancelled(alice, to_alice, alice_source)  # after its second of ringing
                to_bob, bob_source = await invited(bob)
                await answer(bob, to_bob, bob_source)
                assert await wait_until(
                    lambda: [c["state"] for c in agent.status()["calls"]] == ["answered"])

    run(body())


def test_nobody_answering_sends_a_missed_visitor_message(tmp_path):
    async def body():
        async with phone("alice") as alice, phone("carol") as carol:
            async with bell(tmp_path, [alice], ring_time=1, notify=[carol]) as agent:
                agent.simulate("doorbell", "press")
                to_alice, alice_source = await invited(alice)
                await cancelled(alice, to_alice, alice_source)
                message, source = await carol.request(timeout=5)
                assert message.method == "MESSAGE"
                assert message.body.decode().startswith("Missed visitor at ")
                await carol.respond(message, source, 200)

    run(body())


# -- what the review found ---------------------------------------------------------------------


def test_a_stranger_cannot_take_the_stream_nor_key_the_code(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger.bind(("127.0.0.2", 0))  # another address than the call's
            try:
                for digit_packet in _digit_packets("1234#"):
                    stranger.sendto(digit_packet, alice.remote_rtp)
                    await asyncio.sleep(0.005)
                await alice.send_rtp(3)  # the caller's own stream
                await asyncio.sleep(0.3)
                assert strike(agent) == 0  # the stranger's code counted for nothing
                alice.rtp_received()
                await asyncio.sleep(0.2)
                assert alice.rtp_received() >= 5  # the intercom still talks to alice
                await alice.send_digits("1234#")
                assert await wait_until(lambda: strike(agent) == 1)
            finally:
                stranger.close()
            await alice.in_dialog("BYE")

    run(body())


def _digit_packets(digits):
    from appliance.media.dtmf import event_payloads

    out = []
    for number, digit in enumerate(digits):
        for sequence, (payload, marker) in enumerate(event_payloads(digit)):
            out.append(struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 101,
                                   100 * number + sequence, 5000 + 800 * number, 0xBAD)
                       + payload)
    return out


def test_wrong_codes_lock_the_intercom_across_calls(tmp_path):
    async def body():
        async with home(tmp_path) as agent:
            async with phone() as alice:
                await alice.call(uri(agent), port(agent))
                for _ in range(3):
                    await alice.send_digits("9999#")
                assert (await alice.request())[0].method == "BYE"
            async with phone() as alice:  # calls again at once, with the right code
                await alice.call(uri(agent), port(agent))
                await alice.send_digits("1234#")
                assert (await alice.request())[0].method == "BYE"
                assert strike(agent) == 0

    run(body())


def test_a_bye_while_it_rings_ends_the_invite_with_487(tmp_path):
    async def body():
        async with home(tmp_path, answer_after=5) as agent, phone() as alice:
            calling = asyncio.ensure_future(alice.call(uri(agent), port(agent)))
            # The call reads the responses (the challenge first): watch for its 180.
            for _ in range(100):
                ringing = [r for r in alice.provisionals if r.status == 180]
                if ringing:
                    break
                await asyncio.sleep(0.05)
            ringing = ringing[0]
            alice.dialog = Dialog.as_uac(alice.invite, ringing)
            bye = alice.dialog.create_request("BYE")
            bye.add_first("Via", alice._via()[1])
            await alice._send(bye)
            assert (await calling).status == 487
            assert agent.status()["calls"] == []

    run(body())


def test_a_user_removed_by_a_reload_is_hung_up(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            text = (tmp_path / "home.toml").read_text().replace(
                'devices = ["intercom"]', "devices = []")
            (tmp_path / "home.toml").write_text(text)
            await agent.reload(load(str(tmp_path / "home.toml"), environ=TEST_ENV))
            assert (await alice.request())[0].method == "BYE"
            assert agent.calls.history[-1]["reason"] == "alice may no longer use intercom"

    run(body())


def test_a_long_hold_then_resume_keeps_the_call(tmp_path):
    async def body():
        async with home(tmp_path, rtp_timeout=0.5) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            inactive = sdp.offer("127.0.0.1", alice.rtp_port, "77", version=2,
                                 direction="inactive")
            await alice.in_dialog("INVITE", body=inactive.encode(),
                                  fields=[("Content-Type", "application/sdp")])
            await alice.ack()
            await asyncio.sleep(1.0)  # twice rtp_timeout, silent: on hold that is fine
            resume = sdp.offer("127.0.0.1", alice.rtp_port, "77", version=3)
            await alice.in_dialog("INVITE", body=resume.encode(),
                                  fields=[("Content-Type", "application/sdp")])
            await alice.ack()
            sending = asyncio.ensure_future(alice.send_rtp(20))
            await asyncio.sleep(0.3)
            assert agent.status()["calls"][0]["state"] == "answered"
            sending.cancel()
            await alice.in_dialog("BYE")

    run(body())


def test_a_reload_that_leaves_the_intercom_alone_leaves_its_call_alone(tmp_path):
    async def body():
        async with home(tmp_path) as agent, phone() as alice:
            await alice.call(uri(agent), port(agent))
            text = (tmp_path / "home.toml").read_text() + \
                '\n[[devices]]\nname = "porch"\ntype = "light"\npin = 22\n'
            (tmp_path / "home.toml").write_text(text)
            await agent.reload(load(str(tmp_path / "home.toml"), environ=TEST_ENV))
            alice.rtp_received()
            await asyncio.sleep(0.3)
            assert alice.rtp_received() >= 8  # the audio never stopped
            assert [c["state"] for c in agent.status()["calls"]] == ["answered"]
            assert (await alice.in_dialog("BYE")).status == 200

    run(body())
