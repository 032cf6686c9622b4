"""A config read again while the agent runs (SIGHUP, `systemctl reload`): what stays as it
was, what changes, and what waits for a restart. Over real loopback UDP, on MockFactory
pins; the SIGHUP itself, and a config that does not load, against `appliance run`."""

import asyncio
import json
import logging
import os
import signal
import socket

from appliance.config import load
from appliance.sip.message import make_response, parse_message

from .support import TEST_ENV, agent_from, run, short_dir, wait_until
from .test_cli import AgentProcess, appliance
from .test_commands import controller, pin
from .test_notifier import watcher

BASE = """
[agent]
name = "test-home"
domain = "home.arpa"
simulate = true
listen = ["udp:127.0.0.1:0"]
control = "{control}"
"""
ALICE = """
[[users]]
name = "alice"
password = "%s"
devices = [%s]
"""
PORCH = """
[[devices]]
name = "porch"
type = "light"
pin = 22
dimmable = true
"""
HALL = """
[[devices]]
name = "hall"
type = "light"
pin = %d
"""
STRIKE = """
[[devices]]
name = "strike"
type = "relay"
pin = 24
"""
GARAGE = """
[[devices]]
name = "garage"
type = "relay"
pin = 26
"""
DOOR = """
[[devices]]
name = "frontdoor"
type = "door"
pin = 17
"""


def alice(*devices, password="alice-pw"):
    return ALICE % (password, ", ".join('"%s"' % name for name in devices))


def home(tmp_path, *parts):
    return agent_from(tmp_path, BASE + "".join(parts))


async def reload(agent, tmp_path, *parts):
    """Write the config again with `parts` and hand it to the running agent."""
    path = tmp_path / "home.toml"
    path.write_text((BASE + "".join(parts)).replace(
        "{control}", short_dir(tmp_path) + "/control.sock"))
    return await agent.reload(load(str(path), environ=TEST_ENV))


def test_lights_keep_their_state_even_when_rewired(tmp_path):
    async def body():
        async with home(tmp_path, alice("porch", "hall", "strike"), PORCH, HALL % 23,
                        STRIKE) as agent, controller(agent) as user:
            assert (await user.send("porch", b"dim 40")).status == 200
            assert (await user.send("hall", b"on")).status == 200
            porch = agent.devices["porch"]

            changes = await reload(agent, tmp_path, alice("porch", "hall", "garage"), PORCH,
                                   HALL % 25, GARAGE)

            assert changes == {"added": ["garage"], "removed": ["strike"],
                               "rebuilt": ["hall"], "restart": []}
            assert agent.devices["porch"] is porch  # untouched: the same pins
            assert pin(agent, "porch") == 0.4
            assert agent.devices["hall"].output.pin.info.name == "GPIO25"
            assert pin(agent, "hall") == 1  # on, as it was on pin 23
            assert (await user.send("strike", b"on")).status == 404
            response = await user.send("garage", b"on")
            assert (response.status, pin(agent, "garage")) == (200, 1)
            assert list(agent.status()["devices"]) == ["porch", "hall", "garage"]

    run(body())


def test_initial_applies_to_a_new_device_not_to_a_running_one(tmp_path):
    async def body():
        async with home(tmp_path, alice("porch"), PORCH) as agent:
            await reload(agent, tmp_path, alice("porch", "hall"), PORCH + 'initial = "on"\n',
                         HALL % 23 + 'initial = "on"\n')
            assert pin(agent, "porch") == 0  # off it was, off it stays
            assert pin(agent, "hall") == 1  # new: starts as configured

    run(body())


def test_watchers_of_a_removed_device_or_a_revoked_user_are_told_and_others_carry_on(tmp_path):
    async def body():
        async with home(tmp_path, alice("frontdoor", "porch"), DOOR, PORCH) as agent, \
                watcher(agent) as of_door, watcher(agent) as of_porch:
            assert (await of_door.subscribe("frontdoor")).status == 200
            assert (await of_porch.subscribe("porch")).status == 200
            await of_door.notify()
            await of_porch.notify()

            await reload(agent, tmp_path, alice("frontdoor"), DOOR)  # porch is gone

            last = await of_porch.notify()
            assert last.get("subscription-state") == "terminated;reason=noresource"
            agent.simulate("frontdoor", "open")  # the door's watcher did not notice a thing
            assert json.loads((await of_door.notify()).body)["state"] == "open"

            await reload(agent, tmp_path, alice(), DOOR)  # alice may no longer watch it
            last = await of_door.notify()
            assert last.get("subscription-state") == "terminated;reason=rejected"
            assert await wait_until(lambda: agent.status()["subscriptions"] == [])

    run(body())


def test_a_rewired_door_reports_what_it_reads_now_with_the_next_seq(tmp_path):
    async def body():
        async with home(tmp_path, alice("frontdoor"), DOOR) as agent, \
                watcher(agent) as user:
            await user.subscribe("frontdoor")
            await user.notify()
            agent.simulate("frontdoor", "open")
            opened = json.loads((await user.notify()).body)

            # On another pin, where a simulated door starts shut.
            await reload(agent, tmp_path, alice("frontdoor"),
                         DOOR.replace("pin = 17", "pin = 18"))

            now = json.loads((await user.notify()).body)
            assert (now["state"], now["seq"]) == ("closed", opened["seq"] + 1)
            agent.simulate("frontdoor", "open")
            assert agent.devices["frontdoor"].input.pin.state == 1  # the new pin moved

    run(body())


def test_new_passwords_and_device_lists_apply_at_once(tmp_path):
    async def body():
        async with home(tmp_path, alice("porch"), PORCH, HALL % 23) as agent:
            await reload(agent, tmp_path, alice("porch", "hall", password="new-pw"), PORCH,
                         HALL % 23)
            async with controller(agent) as old:
                assert (await old.send("hall", b"on")).status == 401
            async with controller(agent, password="new-pw") as new:
                assert (await new.send("hall", b"on")).status == 200
            assert pin(agent, "hall") == 1

    run(body())


def test_keys_only_a_restart_applies_keep_their_running_values(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.agent")

    async def body():
        async with home(tmp_path, alice("porch"), PORCH) as agent:
            bound = list(agent.stack.bound)
            text = BASE.replace('"udp:127.0.0.1:0"', '"udp:127.0.0.1:0", "tcp:127.0.0.1:0"')
            path = tmp_path / "home.toml"
            path.write_text((text + alice("porch") + PORCH).replace(
                "{control}", short_dir(tmp_path) + "/control.sock"))
            listen = agent.config.agent.listen
            changes = await agent.reload(load(str(path), environ=TEST_ENV))
            assert changes["restart"] == ["agent.listen"]
            assert agent.stack.bound == bound
            assert agent.config.agent.listen == listen

    run(body())
    assert "config reload: agent.listen changed; restart the agent to apply it" in caplog.text


def test_a_strike_rewired_during_its_pulse_ends_up_off(tmp_path):
    async def body():
        relay = STRIKE + "pulse = 30\n"
        async with home(tmp_path, alice("strike"), relay) as agent, \
                controller(agent) as user:
            assert (await user.send("strike", b"pulse")).status == 200
            assert pin(agent, "strike") == 1
            await reload(agent, tmp_path, alice("strike"), relay.replace("pin = 24",
                                                                         "pin = 25"))
            assert pin(agent, "strike") == 0  # not held open until someone notices
            assert agent.status()["devices"]["strike"]["state"] == "off"

    run(body())


def test_a_device_that_becomes_a_camera_ends_its_watchers(tmp_path):
    async def body():
        camera = '[[devices]]\nname = "frontdoor"\ntype = "camera"\nsource = "test"\n'
        async with home(tmp_path, alice("frontdoor"), DOOR) as agent, \
                watcher(agent) as user:
            await user.subscribe("frontdoor")
            await user.notify()
            changes = await reload(agent, tmp_path, alice("frontdoor"), camera)
            assert changes["rebuilt"] == ["frontdoor"]
            assert agent.status()["devices"]["frontdoor"]["type"] == "camera"
            last = await user.notify()
            assert last.get("subscription-state") == "terminated;reason=noresource"
            assert json.loads(last.body)["state"] == "closed"  # its last state
        # ... and the agent closed cleanly around it (the block above would raise).

    run(body())


def test_a_new_password_ends_the_watchers_of_the_old_one(tmp_path):
    async def body():
        async with home(tmp_path, alice("frontdoor"), DOOR) as agent, \
                watcher(agent) as user:
            await user.subscribe("frontdoor")
            await user.notify()
            await reload(agent, tmp_path, alice("frontdoor", password="leaked-no-more"), DOOR)
            last = await user.notify()
            assert last.get("subscription-state") == "terminated;reason=rejected"

    run(body())


class Registrar:
    """A registrar on a loopback UDP socket that grants every REGISTER."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.uri = "sip:127.0.0.1:%d" % self.sock.getsockname()[1]
        self.registers = []  # (device, Expires)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self):
        loop = asyncio.get_running_loop()
        while True:
            data, source = await loop.sock_recvfrom(self.sock, 65535)
            request = parse_message(data)
            self.registers.append((request.to.uri.user, request.get("expires")))
            contact = request.get("contact") + ";expires=%s" % request.get("expires")
            response = make_response(request, 200, to_tag="r", fields=[("Contact", contact)])
            await loop.sock_sendto(self.sock, response.to_bytes(), source)

    def close(self):
        self._task.cancel()
        self.sock.close()


def test_a_new_registrar_gets_every_device_and_the_old_one_their_goodbyes(tmp_path):
    async def body():
        first, second = Registrar(), Registrar()
        proxy = '[proxy]\nregistrar = "%s"\npassword = "pw"\noutbound = false\n'
        try:
            async with home(tmp_path, proxy % first.uri, alice("porch"), PORCH) as agent:
                assert await wait_until(lambda: first.registers == [("porch", "600")])
                await reload(agent, tmp_path, proxy % second.uri, alice("porch"), PORCH)
                assert first.registers[1:] == [("porch", "0")]
                assert await wait_until(lambda: second.registers == [("porch", "600")])
                assert await wait_until(
                    lambda: agent.status()["registrations"][0]["registered"])
        finally:
            first.close()
            second.close()

    run(body())


# -- SIGHUP against `appliance run` ----------------------------------------------------------


def test_sighup_reloads_and_a_broken_config_leaves_the_running_one(tmp_path):
    control = os.path.join(short_dir(tmp_path), "control.sock")
    path = tmp_path / "home.toml"
    base = BASE.replace("{control}", control)
    path.write_text(base + alice("porch") + PORCH)
    agent = AgentProcess("-c", str(path))
    try:
        agent.wait_banner()
        assert appliance("do", "sip:porch@127.0.0.1:%d" % agent.port, "on", "--user",
                         "alice", "--password", "alice-pw").returncode == 0

        path.write_text(base + alice("porch", "hall") + PORCH + HALL % 40)
        agent.process.send_signal(signal.SIGHUP)
        agent.wait_for("stderr", r"config reload failed; the running config stays:\n"
                       r".*devices\[1\]\.pin: .*40.*0 to 27", 10.0)
        status = json.loads(appliance("status", "--control", control, "--json").stdout)
        assert list(status["devices"]) == ["porch"]
        assert "devices[1].pin" in status["config"]["error"]

        path.write_text(base + alice("porch", "hall") + PORCH + HALL % 23)
        agent.process.send_signal(signal.SIGHUP)
        agent.wait_for("stderr", r"config reloaded: added hall", 10.0)
        status = json.loads(appliance("status", "--control", control, "--json").stdout)
        assert sorted(status["devices"]) == ["hall", "porch"]
        assert status["devices"]["porch"]["state"] == "on"
        assert (status["config"]["reloads"], status["config"]["error"]) == (1, None)
        text = appliance("status", "--control", control).stdout
        assert "config: %s, loaded " % path in text and "(reloaded 1 time)" in text
        assert agent.stop() == 0
        assert "Traceback" not in agent.stderr()
    finally:
        agent.kill()

