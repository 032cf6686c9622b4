"""mDNS where it cannot start: one warning, and the agent serves on without it. (mDNS at
work, between two agents on a LAN of namespaces: tests/interop/test_mdns.py.)"""

import logging

from appliance.agent import Agent
from appliance.config import load

from .support import run, short_dir


def test_without_a_usable_interface_it_warns_once_and_serves_on(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = tmp_path / "home.toml"
    path.write_text(
        '[agent]\nlisten = ["udp:127.0.0.1:0"]\ncontrol = "%s/c.sock"\nsimulate = true\n'
        '[mdns]\ninterfaces = ["203.0.113.99"]\n'  # an address no interface here has
        '[[devices]]\nname = "porch"\ntype = "light"\npin = 22\n' % short_dir(tmp_path))

    async def body():
        agent = Agent(load(str(path), environ={}))  # mDNS on, as by default
        await agent.start()
        try:
            status = agent.status()
            assert status["mdns"]["error"] and status["mdns"]["announced"] == []
            assert status["devices"]["porch"]["uri"].startswith("sip:porch@127.0.0.1:")
        finally:
            await agent.close()

    run(body())
    warnings = [r.getMessage() for r in caplog.records if "mDNS" in r.getMessage()]
    assert len(warnings) == 1 and "the devices are not announced on the LAN" in warnings[0]
