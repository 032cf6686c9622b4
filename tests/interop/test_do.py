"""Lights under SIP control from real peers: SIPp sends DO and MESSAGE with digest
credentials, and a DO reaches a registered light through Kamailio."""

import asyncio
import json
from pathlib import Path

from appliance.client import send_once

from .conftest import running_home, start_kamailio, wait_for
from .test_registration import registrations, workdir, write_config
from .test_subscribe import finish, start_sipp

__all__ = ["workdir"]  # the fixture, imported for the tests below

HOME = """
[agent]
name = "porch-pi"
simulate = true
digest_algorithms = ["MD5"]      # SIPp answers only the first challenge, and only MD5

[[users]]
name = "demo"
password = "demo"
devices = ["porch"]

[[devices]]
name = "porch"
type = "light"
pin = 22
"""


def porch(agent):
    return agent.status()["devices"]["porch"]


def test_sipp_switches_the_light_with_do_and_message(sipp_binary, tmp_path):
    with running_home(HOME, "sipdo-") as agent:
        for scenario, state in (("do_light.xml", "on"), ("message_light.xml", "off")):
            if state == "off":
                assert porch(agent)["state"] == "on"
            result = finish(*start_sipp(sipp_binary, agent, tmp_path, scenario, "porch",
                                        timeout=15), timeout=30)
            assert result.returncode == 0, result.report(agent)
            assert porch(agent)["state"] == state
        log = agent.log()
        assert "porch: on by demo -> on" in log and "porch: off by demo -> off" in log


def test_a_do_reaches_a_registered_light_through_kamailio(workdir):
    # alice authenticates twice: to the home proxy (407) and to the light (401).
    users = {"frontdoor-pi": "pi-s3cret", "alice": "alice-pw"}
    with start_kamailio(Path(workdir, "kamailio"), users) as kamailio:
        config = Path(workdir, "home.toml")
        write_config(config, kamailio.uri, "pi-s3cret", devices=("porch",))
        text = config.read_text() + ('[[users]]\nname = "alice"\npassword = "alice-pw"\n'
                                     'devices = ["porch"]\n')
        with running_home(text, "sipdok-") as agent:
            assert wait_for(lambda: registrations(agent).get("porch", {}).get(
                "registered")), agent.output()
            result = asyncio.run(send_once(
                "DO", "sip:porch@home.arpa", from_uri="sip:alice@home.arpa",
                proxy=kamailio.uri, username="alice", password="alice-pw", body=b"on",
                fields=[("Content-Type", "text/plain")]))
            response = result.response
            assert response is not None and response.status == 200, (
                result.error, agent.output(), kamailio.log())
            assert json.loads(response.body)["state"] == "on"
            assert porch(agent)["state"] == "on"
            assert "porch: on by alice -> on" in agent.log()
