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


def test_only_lan_addresses_are_announced(monkeypatch):
    """Not loopback, link-local, nor a container's bridge, which a phone cannot reach; the
    v6 entries as ifaddr gives them ((address, flow, scope))."""
    import ifaddr

    from appliance.bridges.mdns import Mdns
    from appliance.config import MdnsConfig

    def adapter(name, *ips):
        return ifaddr.Adapter(name, name, [ifaddr.IP(ip, 64, name) for ip in ips])

    monkeypatch.setattr(ifaddr, "get_adapters", lambda: [
        adapter("lo", "127.0.0.1", ("::1", 0, 0)),
        adapter("eth0", "192.168.1.20", ("fd00::20", 0, 0), ("fe80::1", 0, 2),
                "169.254.3.4"),
        adapter("docker0", "172.17.0.1"),
        adapter("br-1a2b", "172.18.0.1"),
    ])
    bound = [("udp", "0.0.0.0", 5060)]
    for version, expected in (("v4", ["192.168.1.20"]), ("v6", ["fd00::20"]),
                              ("all", ["192.168.1.20", "fd00::20"])):
        mdns = Mdns(MdnsConfig(ip_version=version), "porch-pi", bound, None, None)
        assert mdns._addresses() == expected
