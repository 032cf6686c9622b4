"""appliance/net/resolver.py against a real DNS server (dnsmasq): RFC 3263's NAPTR, SRV and
address steps, the RFC 2782 order of SRV records, and what makes a URI unreachable."""

import asyncio
import socket

import pytest

from appliance.net.resolver import ResolveError, Target, locate, resolve
from appliance.sip.uri import parse_uri

from .conftest import peer_unavailable
from .dnsmasq import Dnsmasq
from .peers import PeerMissing

DEADLINE = 30.0  # seconds for one locate(), getaddrinfo fallbacks included

HOSTS = {
    "naptr.test": ["192.0.2.99"],  # NAPTR records take precedence over this
    "tcp.naptr.test": ["192.0.2.10"],
    "udp.naptr.test": ["192.0.2.11"],
    "tls.secure.test": ["192.0.2.20"],
    "udp.secure.test": ["192.0.2.21"],
    "primary.srv.test": ["192.0.2.30"],
    "backup.srv.test": ["192.0.2.31"],
    "last.srv.test": ["192.0.2.33"],
    "tcp.srv.test": ["192.0.2.32"],
    "spare.weighted.test": ["192.0.2.40"],
    "light.weighted.test": ["192.0.2.41"],
    "heavy.weighted.test": ["192.0.2.42"],
    "plain.test": ["192.0.2.50"],
    "ported.test": ["192.0.2.60"],
    "elsewhere.ported.test": ["192.0.2.61"],
    "udp.transport.test": ["192.0.2.70"],
    "tcp.transport.test": ["192.0.2.71"],
    "v6.dual.test": ["2001:db8::80"],
    "v4.dual.test": ["192.0.2.81"],
    "both.dual.test": ["192.0.2.82", "2001:db8::82"],
    "tcp.closed.test": ["192.0.2.90"],
    "one.twice.test": ["192.0.2.100"],
    "other.twice.test": ["192.0.2.101"],
}
SRV = [  # name, target, port, priority, weight
    ("_sip._tcp.naptr.test", "tcp.naptr.test", 5070, 0, 0),
    ("_sip._udp.naptr.test", "udp.naptr.test", 5080, 0, 0),
    ("_sips._tcp.secure.test", "tls.secure.test", 5061, 0, 0),
    ("_sip._udp.secure.test", "udp.secure.test", 5060, 0, 0),
    # Neither the order here, its reverse, nor a set's {3, 10, 20} is that of priority.
    ("_sip._udp.srv.test", "backup.srv.test", 5062, 10, 0),
    ("_sip._udp.srv.test", "primary.srv.test", 5070, 3, 0),
    ("_sip._udp.srv.test", "last.srv.test", 5063, 20, 0),
    ("_sip._tcp.srv.test", "tcp.srv.test", 5080, 0, 0),  # udp still comes first
    ("_sip._udp.weighted.test", "heavy.weighted.test", 5060, 10, 90),
    ("_sip._udp.weighted.test", "light.weighted.test", 5060, 10, 10),
    ("_sip._udp.weighted.test", "spare.weighted.test", 5060, 10, 0),
    ("_sip._udp.ported.test", "elsewhere.ported.test", 5999, 0, 0),
    ("_sip._udp.transport.test", "udp.transport.test", 5070, 0, 0),
    ("_sip._tcp.transport.test", "tcp.transport.test", 5071, 0, 0),
    ("_sip._udp.dual.test", "v6.dual.test", 5060, 10, 0),
    ("_sip._udp.dual.test", "v4.dual.test", 5062, 20, 0),
    ("_sip._udp.dual.test", "both.dual.test", 5064, 30, 0),
    ("_sip._udp.closed.test", None, 0, 0, 0),  # "." : no SIP over UDP here
    ("_sip._tcp.closed.test", "tcp.closed.test", 5060, 0, 0),
    ("_sip._udp.hosts.test", "localhost", 5099, 0, 0),  # a name only the system knows
    ("_sip._udp.twice.test", "one.twice.test", 5060, 10, 0),
    ("_sip._udp.twice.test", "other.twice.test", 5060, 20, 0),
]
NAPTR = [  # name, order, preference, flags, service, replacement
    ("naptr.test", 20, 50, "S", "SIP+D2U", "_sip._udp.naptr.test"),
    ("naptr.test", 10, 50, "s", "SIP+D2T", "_sip._tcp.naptr.test"),
    ("secure.test", 10, 50, "s", "SIPS+D2T", "_sips._tcp.secure.test"),
    ("secure.test", 20, 50, "s", "SIP+D2U", "_sip._udp.secure.test"),
    ("transport.test", 10, 50, "s", "SIP+D2U", "_sip._udp.transport.test"),
    ("ported.test", 10, 50, "s", "SIP+D2U", "_sip._udp.ported.test"),
    ("twice.test", 10, 50, "s", "SIP+D2U", "_sip._udp.twice.test"),
    ("twice.test", 20, 50, "s", "SIP+D2U", "_sip._udp.twice.test"),  # the same again
]


@pytest.fixture
def dns_server(tmp_path):
    try:
        server = Dnsmasq(tmp_path, hosts=HOSTS, srv=SRV, naptr=NAPTR)
    except PeerMissing as missing:
        peer_unavailable("dnsmasq (`dnsmasq`)", str(missing).rpartition("; ")[2])
    with server:
        yield server


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


def locate_in(server, text, **options):
    return run(locate(parse_uri(text), resolver=server.resolver(), **options))


def failure(server, text, **options):
    with pytest.raises(ResolveError) as raised:
        locate_in(server, text, **options)
    return str(raised.value)


def srv_queries(server):
    return [name for rdtype, name in server.queries() if rdtype == "SRV"]


# -- NAPTR -------------------------------------------------------------------------------


def test_naptr_records_lead_by_order_to_srv_records_and_their_addresses(dns_server):
    assert locate_in(dns_server, "sip:alice@naptr.test") == [
        Target("tcp", "192.0.2.10", 5070),
        Target("udp", "192.0.2.11", 5080),
    ]
    # dnsmasq sends the SRV targets' A records along: they are not asked for again.
    asked = dns_server.queries()
    assert ("NAPTR", "naptr.test") in asked
    assert ("A", "tcp.naptr.test") not in asked and ("A", "udp.naptr.test") not in asked


def test_a_naptr_service_the_caller_cannot_use_is_skipped(dns_server):
    assert locate_in(dns_server, "sip:secure.test") == [Target("udp", "192.0.2.21", 5060)]
    assert "_sips._tcp.secure.test" not in srv_queries(dns_server)
    # ... and used when it can.
    assert locate_in(dns_server, "sip:secure.test", transports=("udp", "tcp", "tls")) == [
        Target("tls", "192.0.2.20", 5061),
        Target("udp", "192.0.2.21", 5060),
    ]


def test_a_sips_uri_takes_only_sips_naptr_records(dns_server):
    assert locate_in(dns_server, "sips:secure.test", transports=("udp", "tcp", "tls")) == [
        Target("tls", "192.0.2.20", 5061),
    ]


# -- SRV without NAPTR ---------------------------------------------------------------------


def test_srv_records_go_by_priority_and_udp_before_tcp(dns_server):
    assert locate_in(dns_server, "sip:srv.test") == [
        Target("udp", "192.0.2.30", 5070),
        Target("udp", "192.0.2.31", 5062),
        Target("udp", "192.0.2.33", 5063),
        Target("tcp", "192.0.2.32", 5080),
    ]
    assert sorted(srv_queries(dns_server)) == ["_sip._tcp.srv.test", "_sip._udp.srv.test"]


@pytest.mark.parametrize(
    ("draw", "order"),
    [
        # Weights 0, 10 and 90; a draw d picks the first record whose running sum of
        # weights reaches int(d * (sum + 1)).
        (0.0, ["spare", "light", "heavy"]),  # a draw of 0: the weight-0 record first
        (0.01, ["light", "spare", "heavy"]),  # 1 of 0..100: light; then 0 of 0..90: spare
        (0.99, ["heavy", "light", "spare"]),  # 99 of 0..100: heavy; then 10 of 0..10: light
    ],
)
def test_srv_records_of_one_priority_are_drawn_by_weight(dns_server, draw, order):
    addresses = {"spare": "192.0.2.40", "light": "192.0.2.41", "heavy": "192.0.2.42"}
    targets = locate_in(dns_server, "sip:weighted.test", random=lambda: draw)
    assert targets == [Target("udp", addresses[name], 5060) for name in order]


def test_a_dot_srv_target_means_the_service_is_not_offered(dns_server):
    assert locate_in(dns_server, "sip:closed.test") == [Target("tcp", "192.0.2.90", 5060)]


def test_a_target_found_twice_is_tried_once(dns_server):
    assert locate_in(dns_server, "sip:twice.test") == [
        Target("udp", "192.0.2.100", 5060),
        Target("udp", "192.0.2.101", 5060),
    ]


def test_an_srv_target_dns_does_not_know_is_looked_up_by_the_system(dns_server):
    # dnsmasq refuses "localhost"; getaddrinfo finds it in /etc/hosts.
    targets = locate_in(dns_server, "sip:hosts.test")
    assert targets[0] == Target("udp", "127.0.0.1", 5099)
    assert {target.host for target in targets} <= {"127.0.0.1", "::1"}


# -- addresses only ------------------------------------------------------------------------


def test_a_domain_without_naptr_or_srv_records_is_reached_by_its_address(dns_server):
    assert locate_in(dns_server, "sip:plain.test") == [Target("udp", "192.0.2.50", 5060)]
    assert locate_in(dns_server, "sips:plain.test", transports=("udp", "tcp", "tls")) == [
        Target("tls", "192.0.2.50", 5061),
    ]


def test_a_port_in_the_uri_skips_naptr_and_srv(dns_server):
    assert locate_in(dns_server, "sip:ported.test:5070") == [Target("udp", "192.0.2.60", 5070)]
    asked = {rdtype for rdtype, _ in dns_server.queries()}
    assert "SRV" not in asked and "NAPTR" not in asked


def test_a_transport_parameter_asks_for_that_transport_s_srv_records_only(dns_server):
    targets = locate_in(dns_server, "sip:transport.test;transport=TCP")
    assert targets == [Target("tcp", "192.0.2.71", 5071)]
    assert srv_queries(dns_server) == ["_sip._tcp.transport.test"]
    assert "NAPTR" not in {rdtype for rdtype, _ in dns_server.queries()}
    # Without SRV records: the address, on that transport's default port.
    assert locate_in(dns_server, "sip:plain.test;transport=tcp") == [
        Target("tcp", "192.0.2.50", 5060),
    ]


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        ("sip:192.0.2.1", Target("udp", "192.0.2.1", 5060)),
        ("sip:192.0.2.1:5070;transport=tcp", Target("tcp", "192.0.2.1", 5070)),
        ("sip:[2001:db8::1]", Target("udp", "2001:db8::1", 5060)),
        ("sips:[2001:db8::1]", Target("tls", "2001:db8::1", 5061)),
        ("sips:192.0.2.1;transport=tcp", Target("tls", "192.0.2.1", 5061)),
        ("sip:bob@naptr.test;maddr=192.0.2.9", Target("udp", "192.0.2.9", 5060)),
        ("sip:bob@nowhere.test:5070;maddr=[2001:db8::9]", Target("udp", "2001:db8::9", 5070)),
        ("sip:bob@nowhere.test;maddr=plain.test", Target("udp", "192.0.2.50", 5060)),
    ],
)
def test_numeric_hosts_and_maddr(dns_server, uri, target):
    assert locate_in(dns_server, uri, transports=("udp", "tcp", "tls")) == [target]
    if "maddr=plain.test" not in uri:
        assert dns_server.queries() == []


# -- address families ----------------------------------------------------------------------


def test_families_filter_and_order_the_addresses(dns_server):
    assert locate_in(dns_server, "sip:dual.test") == [
        Target("udp", "2001:db8::80", 5060),
        Target("udp", "192.0.2.81", 5062),
        Target("udp", "192.0.2.82", 5064),
        Target("udp", "2001:db8::82", 5064),
    ]
    assert locate_in(dns_server, "sip:dual.test", families=(socket.AF_INET,)) == [
        Target("udp", "192.0.2.81", 5062),
        Target("udp", "192.0.2.82", 5064),
    ]
    assert locate_in(dns_server, "sip:dual.test", families=(socket.AF_INET6, socket.AF_INET)) == [
        Target("udp", "2001:db8::80", 5060),
        Target("udp", "192.0.2.81", 5062),
        Target("udp", "2001:db8::82", 5064),
        Target("udp", "192.0.2.82", 5064),
    ]


def test_a_numeric_host_of_a_family_the_caller_lacks_is_refused(dns_server):
    message = failure(dns_server, "sip:[2001:db8::1]", families=(socket.AF_INET,))
    assert message == "cannot reach [2001:db8::1]: IPv6 is not available"


# -- failures ------------------------------------------------------------------------------


def test_a_name_nothing_knows_names_the_host(dns_server):
    message = failure(dns_server, "sip:alice@nowhere.test")
    assert message == "cannot resolve nowhere.test: no NAPTR, SRV or address records"
    message = failure(dns_server, "sip:alice@nowhere.test:5060")
    assert message == "cannot resolve nowhere.test: no address records"
    message = failure(dns_server, "sip:alice@nowhere.test;transport=tcp")
    assert message == "cannot resolve nowhere.test: no SRV or address records"


def test_a_transport_the_caller_lacks_is_refused_with_the_reason(dns_server):
    message = failure(dns_server, "sips:alice@secure.test")
    assert message == "cannot reach secure.test: a sips: URI needs TLS, which is not available"
    message = failure(dns_server, "sip:alice@plain.test;transport=tls")
    assert message == "cannot reach plain.test: transport=tls needs TLS, which is not available"
    message = failure(dns_server, "sips:alice@plain.test;transport=udp", transports=("udp", "tls"))
    assert message == "cannot reach plain.test: a sips: URI cannot go over udp"
    assert dns_server.queries() == []  # refused before any query


# -- resolve() -----------------------------------------------------------------------------


def test_resolve_gives_the_first_target_as_a_plain_tuple(dns_server):
    result = run(resolve(parse_uri("sip:alice@naptr.test"), resolver=dns_server.resolver()))
    assert result == ("tcp", "192.0.2.10", 5070)
    assert type(result) is tuple
