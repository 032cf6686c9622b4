"""appliance/config.py: the TOML file, the environment and overrides through one schema."""

import json
import os
from pathlib import Path

import pytest

from appliance import config
from appliance.config import (
    CameraDevice,
    ConfigError,
    DoorbellDevice,
    DoorDevice,
    IntercomDevice,
    LightDevice,
    ListenSpec,
    RelayDevice,
    Secret,
    default_control_path,
    default_state_dir,
    demo_config,
    load,
    parse_listen,
)
from appliance.errors import ApplianceError

DATA = Path(__file__).parent / "data"
NO_ENV: dict[str, str] = {}


def write(tmp_path, text, name="appliance.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def problems(tmp_path, text, environ=NO_ENV, overrides=None):
    """The problems a config file (with `environ` and `overrides`) is rejected with."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, environ=environ, overrides=overrides)
    assert caught.value.path == path
    return caught.value.problems


def problem(tmp_path, text, **kwargs):
    (only,) = problems(tmp_path, text, **kwargs)
    return only


DEVICE = '[[devices]]\nname = "porch"\ntype = "light"\npin = 22\n'


# --- whole configs ---


@pytest.fixture
def design_example(tmp_path):
    """DESIGN.md's example, its absolute paths moved to files under tmp_path."""
    for name, text in (
        ("proxy.secret", "s3cret\n"),
        ("cert.pem", "c"),
        ("key.pem", "k"),
        ("ca.crt", "ca"),
    ):
        (tmp_path / name).write_text(text)
    text = (DATA / "design-example.toml").read_text()
    text = text.replace("/etc/sip-appliance/", f"{tmp_path}/")
    text = text.replace("/etc/ssl/certs/ca-certificates.crt", f"{tmp_path}/ca.crt")
    return write(tmp_path, text)


def test_design_example_loads(design_example, tmp_path):
    cfg = load(design_example, environ=NO_ENV)
    agent = cfg.agent
    assert (agent.name, agent.domain, agent.simulate) == ("frontdoor-pi", "home.arpa", False)
    assert agent.listen == (ListenSpec("udp", "0.0.0.0", 5060), ListenSpec("tcp", "0.0.0.0", 5060))
    assert agent.control == "/run/sip-appliance/control.sock"
    assert agent.log_level == "info"
    assert cfg.proxy is not None
    assert (cfg.proxy.registrar, cfg.proxy.username) == ("sip:pbx.example.net", "frontdoor-pi")
    assert cfg.proxy.password.reveal() == "s3cret"  # the file's trailing newline dropped
    assert cfg.proxy.expires == 600
    assert cfg.nat == config.NatConfig(stun="stun.example.net:3478", keepalive=25)
    assert cfg.tls == config.TlsConfig(
        certificate=f"{tmp_path}/cert.pem", key=f"{tmp_path}/key.pem", ca=f"{tmp_path}/ca.crt"
    )
    assert cfg.mqtt is not None
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.base_topic, cfg.mqtt.discovery) == (
        "localhost",
        1883,
        "sip-appliance",
        True,
    )
    (alice,) = cfg.users
    assert alice.name == "alice" and alice.password.reveal() == "..."
    assert alice.devices == ("porch", "intercom", "frontdoor")

    frontdoor, porch, strike, doorbell, intercom = cfg.devices
    assert frontdoor == DoorDevice(
        name="frontdoor",
        pin=17,
        pull_up=True,
        active_state=None,
        bounce_time=None,
        notify=("sip:alice@example.net",),
    )
    assert porch == LightDevice(name="porch", pin=22, dimmable=True, initial="off")
    assert strike == RelayDevice(name="strike", pin=23, active_high=True, pulse=2.0, initial="off")
    assert doorbell == DoorbellDevice(
        name="doorbell",
        pin=27,
        call=("sip:alice@example.net", "sip:bob@example.net"),
        ring="parallel",
        ring_time=20.0,
        notify=("sip:alice@example.net",),
    )
    assert intercom == IntercomDevice(
        name="intercom", answer_after=0.0, dtmf_code="1234", strike="strike", audio="default"
    )
    assert [d.type for d in cfg.devices] == ["door", "light", "relay", "doorbell", "intercom"]
    assert intercom.pin is None


def test_demo_config_is_the_design_demo_home():
    cfg = demo_config(environ=NO_ENV)
    assert cfg.agent.simulate is True
    assert [(d.name, d.type, d.pin) for d in cfg.devices] == [
        ("frontdoor", "door", 17),
        ("porch", "light", 22),
        ("strike", "relay", 23),
        ("doorbell", "doorbell", 27),
        ("intercom", "intercom", None),
        ("camera", "camera", None),
    ]
    porch, strike, doorbell, intercom, camera = cfg.devices[1:]
    assert isinstance(porch, LightDevice) and porch.dimmable
    assert isinstance(strike, RelayDevice) and strike.pulse == 2.0
    assert isinstance(doorbell, DoorbellDevice) and doorbell.call == ()
    assert isinstance(intercom, IntercomDevice)
    assert (intercom.answer_after, intercom.dtmf_code, intercom.strike, intercom.audio) == (
        0.0,
        "1234",
        "strike",
        "null",
    )
    assert intercom.video is True and intercom.camera is None
    assert isinstance(camera, CameraDevice)
    assert (camera.source, camera.width, camera.height, camera.framerate) == ("test", 640, 480, 15)
    (user,) = cfg.users
    assert (user.name, user.password.reveal()) == ("demo", "demo")
    assert user.devices == tuple(d.name for d in cfg.devices)
    assert (cfg.proxy, cfg.nat, cfg.tls, cfg.mqtt) == (None, None, None, None)


def test_demo_config_takes_overrides():
    cfg = demo_config(
        {"agent.listen": ["udp:127.0.0.1:5070"], "agent.control": "/tmp/x.sock"}, environ=NO_ENV
    )
    assert cfg.agent.listen == (ListenSpec("udp", "127.0.0.1", 5070),)
    assert cfg.agent.control == "/tmp/x.sock"


def test_no_file_gives_defaults_and_no_user():
    cfg = load(environ={"XDG_RUNTIME_DIR": "/run/user/1000"})
    assert cfg.agent.name == config.default_agent_name()
    assert cfg.agent.name.startswith("sip-appliance")
    assert cfg.agent.domain is None and cfg.agent.simulate is False
    assert [str(spec) for spec in cfg.agent.listen] == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    assert cfg.agent.control == default_control_path({"XDG_RUNTIME_DIR": "/run/user/1000"})
    assert (cfg.users, cfg.devices) == ((), ())
    assert (cfg.proxy, cfg.nat, cfg.tls, cfg.mqtt) == (None, None, None, None)


def test_section_defaults(tmp_path):
    (tmp_path / "secret").write_text("pw")
    path = write(
        tmp_path,
        '[nat]\n[mqtt]\n[proxy]\nregistrar = "sip:pbx"\n'
        'password_file = "secret"\n[agent]\nname = "pi"\n',
    )
    cfg = load(path, environ=NO_ENV)
    assert cfg.nat == config.NatConfig(stun=None, keepalive=25)
    assert cfg.mqtt == config.MqttConfig(
        host="localhost",
        port=None,  # 1883, or 8883 with tls
        base_topic="sip-appliance",
        discovery=True,
        username=None,
        password=None,
    )
    assert cfg.proxy is not None
    assert (cfg.proxy.username, cfg.proxy.expires) == ("pi", 600)  # username: agent.name
    assert cfg.proxy.password.reveal() == "pw"  # password_file relative to the config file


def test_default_control_path(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_control_path({}) == "/run/sip-appliance/control.sock"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert default_control_path({"XDG_RUNTIME_DIR": "/run/user/1000"}) == (
        "/run/user/1000/sip-appliance/control.sock"
    )
    assert default_control_path({}) == "/tmp/sip-appliance-1000/control.sock"


# --- listen specs ---


@pytest.mark.parametrize(
    "text, spec",
    [
        ("udp:0.0.0.0:5060", ListenSpec("udp", "0.0.0.0", 5060)),
        ("tcp:192.168.1.2:5080", ListenSpec("tcp", "192.168.1.2", 5080)),
        ("tls:[::]:5061", ListenSpec("tls", "::", 5061)),
        ("udp:[::1]:5060", ListenSpec("udp", "::1", 5060)),
        ("udp:[fe80::1]:0", ListenSpec("udp", "fe80::1", 0)),
        ("udp:localhost:5070", ListenSpec("udp", "localhost", 5070)),
    ],
)
def test_parse_listen(text, spec):
    assert parse_listen(text) == spec
    assert str(spec) == text


def test_parse_listen_normalises_the_transport():
    assert str(parse_listen("UDP:[::1]:5060")) == "udp:[::1]:5060"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "udp:0.0.0.0",
            (
                '"udp:0.0.0.0" has no port; use udp:HOST:PORT, tcp:HOST:PORT or '
                "tls:HOST:PORT, e.g. udp:0.0.0.0:5060"
            ),
        ),
        (
            "sctp:0.0.0.0:5060",
            (
                '"sctp:0.0.0.0:5060" is not a listen spec; use udp:HOST:PORT, '
                "tcp:HOST:PORT or tls:HOST:PORT, e.g. udp:0.0.0.0:5060"
            ),
        ),
        ("udp:::1:5060", '"udp:::1:5060": an IPv6 address needs brackets; write udp:[::1]:5060'),
        ("udp:[1:2]:5060", '"udp:[1:2]:5060": 1:2 is not an IPv6 address; write one such as [::1]'),
        (
            "udp:host:99999",
            (
                '"udp:host:99999" is not a listen spec; use udp:HOST:PORT, '
                "tcp:HOST:PORT or tls:HOST:PORT, e.g. udp:0.0.0.0:5060"
            ),
        ),
    ],
)
def test_parse_listen_errors(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_listen(text)
    assert caught.value.problems == [message]


def test_tls_listener_needs_a_certificate(tmp_path):
    text = '[agent]\nlisten = ["udp:0.0.0.0:5060", "tls:0.0.0.0:5061"]\n'
    assert problem(tmp_path, text) == (
        "agent.listen[1]: a tls listener needs a certificate and key; "
        "add [tls] with certificate and key"
    )
    (tmp_path / "cert.pem").write_text("c")
    assert problems(tmp_path, text + '[tls]\ncertificate = "cert.pem"\n') == [
        (
            "agent.listen[1]: a tls listener needs a certificate and key; "
            "set tls.certificate and tls.key"
        ),
        "tls.key: missing; set both tls.certificate and tls.key",
    ]


def test_tls_listener_with_certificate_and_key(tmp_path):
    (tmp_path / "cert.pem").write_text("c")
    (tmp_path / "key.pem").write_text("k")
    cfg = load(
        write(
            tmp_path,
            '[agent]\nlisten = ["tls:[::]:5061"]\n'
            '[tls]\ncertificate = "cert.pem"\nkey = "key.pem"\n',
        ),
        environ=NO_ENV,
    )
    assert cfg.agent.listen == (ListenSpec("tls", "::", 5061),)
    assert cfg.tls is not None and cfg.tls.key == str(tmp_path / "key.pem")


def test_listen_from_the_environment_names_the_variable():
    with pytest.raises(ConfigError) as caught:
        load(environ={"SIP_APPLIANCE_AGENT_LISTEN": "udp:0.0.0.0:5060, tls:0.0.0.0:5061"})
    assert caught.value.problems == [
        (
            "SIP_APPLIANCE_AGENT_LISTEN[1]: a tls listener needs a certificate and key; "
            "add [tls] with certificate and key"
        )
    ]


# --- errors: key, problem and fix ---


def test_config_error_is_an_appliance_error():
    assert issubclass(ConfigError, ApplianceError)
    error = ConfigError(["a: b; c", "d: e; f"])
    assert str(error) == "a: b; c\nd: e; f"


def test_pin_out_of_range(tmp_path):
    text = DEVICE + DEVICE.replace("porch", "hall").replace("22", "23")
    text += '[[devices]]\nname = "garden"\ntype = "relay"\npin = 40\n'
    assert problem(tmp_path, text) == (
        "devices[2].pin: 40 is not a BCM GPIO pin; use a number from 0 to 27"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[agent]\nsimulate = "yes"\n',
            'agent.simulate: expected a boolean, got the string "yes"; use true or false',
        ),
        (
            '[mqtt]\nport = "1883"\n',
            'mqtt.port: expected an integer, got the string "1883"; use a whole number',
        ),
        (
            '[agent]\nlisten = "udp:0.0.0.0:5060"\n',
            (
                'agent.listen: expected an array, got the string "udp:0.0.0.0:5060"; '
                'e.g. ["udp:0.0.0.0:5060"]'
            ),
        ),
        (
            "[agent]\nname = 7\n",
            'agent.name: expected a string, got the number 7; e.g. "frontdoor"',
        ),
        (
            "[agent]\nlisten = []\n",
            'agent.listen: is empty; list at least one, e.g. ["udp:0.0.0.0:5060"]',
        ),
        (
            '[[devices]]\nname = "bell"\ntype = "doorbell"\npin = 5\nring_time = true\n',
            "devices[0].ring_time: expected a number of seconds, got the boolean true; e.g. 2 or 0.5",
        ),
        ("agent = 1\n", "agent: expected a table, got the number 1; write [agent]"),
        (
            "[devices]\n",
            "devices: expected an array of tables, got a table; write each as a [[devices]] table",
        ),
    ],
)
def test_wrong_types_say_what_was_expected(tmp_path, text, message):
    assert problem(tmp_path, text) == message


def test_unknown_key_did_you_mean(tmp_path):
    assert problem(tmp_path, '[agent]\nnmae = "pi"\n') == (
        "agent.nmae: unknown key; did you mean agent.name?"
    )
    assert problem(tmp_path, '[mqtt]\nbase_topik = "x"\n') == (
        "mqtt.base_topik: unknown key; did you mean mqtt.base_topic?"
    )
    assert problem(tmp_path, "[nat]\ncolour = 1\n") == (
        "nat.colour: unknown key; remove it (known: stun, keepalive)"
    )
    assert problem(tmp_path, DEVICE + "dimable = true\n") == (
        "devices[0].dimable: unknown key; did you mean devices[0].dimmable?"
    )


def test_unknown_section_did_you_mean(tmp_path):
    assert problem(tmp_path, '[agnet]\nname = "pi"\n') == (
        "agnet: unknown section; did you mean [agent]?"
    )
    assert problem(tmp_path, '[[device]]\nname = "x"\n') == (
        "device: unknown section; did you mean [[devices]]?"
    )
    assert problem(tmp_path, "[xyzzy]\n") == (
        "xyzzy: unknown section; remove it (known: agent, proxy, nat, tls, mqtt, mdns, users, devices)"
    )


def test_key_of_another_device_type(tmp_path):
    assert problem(tmp_path, DEVICE + "pulse = 2\n") == (
        "devices[0].pulse: not a key of light devices (only of relay); remove it"
    )
    text = '[[devices]]\nname = "intercom"\ntype = "intercom"\npin = 4\n'
    assert problem(tmp_path, text) == (
        "devices[0].pin: not a key of intercom devices (only of door, light, relay, doorbell); "
        "remove it"
    )


def test_toml_syntax_error_has_file_line_and_column(tmp_path):
    path = write(tmp_path, '[agent]\nname = "pi"\n[proxy\n')
    with pytest.raises(ConfigError) as caught:
        load(path, environ=NO_ENV)
    assert caught.value.problems == [
        f"{path}:3:7: Expected ']' at the end of a table declaration; fix the TOML syntax"
    ]


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as caught:
        load(path, environ=NO_ENV)
    assert caught.value.problems == [
        f"{path}: No such file or directory; give the path of a config file"
    ]


def test_all_problems_of_a_file_are_reported(tmp_path):
    text = (
        '[agent]\nsimulate = 1\nlog_level = "verbose"\n[mqtt]\nport = 0\n' + DEVICE + "pin = 99\n"
    )  # a duplicate key is a TOML error: use another one
    text = text.replace("pin = 22\npin = 99\n", "pin = 99\n")
    assert problems(tmp_path, text) == [
        "agent.simulate: expected a boolean, got the number 1; use true or false",
        (
            'agent.log_level: "verbose" is not a log level; use "debug", "info", "warning" or '
            '"error"'
        ),
        "mqtt.port: 0 is not a port number; use a number from 1 to 65535",
        "devices[0].pin: 99 is not a BCM GPIO pin; use a number from 0 to 27",
    ]


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            'name = "front door"\ntype = "door"\npin = 17\n',
            (
                'devices[0].name: "front door" is not a valid SIP user part; use only letters, digits, '
                '"-", "_" and "."'
            ),
        ),
        ('type = "door"\npin = 17\n', 'devices[0].name: missing; set it, e.g. name = "frontdoor"'),
        (
            'name = "x"\npin = 17\n',
            "devices[0].type: missing; use one of door, light, relay, doorbell, intercom, camera",
        ),
        (
            'name = "x"\ntype = "lite"\npin = 17\n',
            'devices[0].type: "lite" is not a device type; did you mean "light"?',
        ),
        (
            'name = "x"\ntype = "door"\n',
            "devices[0].pin: missing; set pin to the BCM GPIO number it is wired to (0 to 27)",
        ),
        (
            'name = "x"\ntype = "doorbell"\npin = 5\nring = "paralel"\n',
            'devices[0].ring: "paralel" is not a ring mode; did you mean "parallel"?',
        ),
        (
            'name = "x"\ntype = "doorbell"\npin = 5\nring = "all"\n',
            'devices[0].ring: "all" is not a ring mode; use "parallel" or "sequential"',
        ),
        (
            'name = "x"\ntype = "relay"\npin = 5\npulse = 0\n',
            "devices[0].pulse: 0 is not a duration; use a number above 0",
        ),
        (
            'name = "x"\ntype = "door"\npin = 5\nbounce_time = -1\n',
            "devices[0].bounce_time: -1 is not a duration; use 0 or more",
        ),
        (
            'name = "x"\ntype = "intercom"\ndtmf_code = "12#4"\n',
            'devices[0].dtmf_code: "12#4" is not a valid DTMF code; use only digits 0-9',
        ),
        (
            'name = "x"\ntype = "door"\npin = 5\nnotify = ["alice@example.net"]\n',
            (
                'devices[0].notify[0]: "alice@example.net" is not a SIP URI; '
                'write it as "sip:alice@example.net"'
            ),
        ),
        (
            'name = "x"\ntype = "doorbell"\npin = 5\ncall = ["sip:bob@example.net", "tel:+4930"]\n',
            'devices[0].call[1]: "tel:+4930" is a tel: URI; use a sip: or sips: URI',
        ),
        (
            'name = "x"\ntype = "doorbell"\npin = 5\ncall = ["sip:bob:pw@example.net"]\n',
            'devices[0].call[0]: "sip:bob:pw@example.net" has a password in it; remove it from the URI',
        ),
        (
            'name = "x"\ntype = "door"\npin = 5\npull_up = false\nactive_state = true\n',
            (
                "devices[0].active_state: only for an input without a pull resistor; remove pull_up "
                "(the input then floats) or remove active_state"
            ),
        ),
        (
            'name = "x"\ntype = "door"\npin = 5\npassword = "pw"\n',
            "devices[0].password: only used to register through [proxy]; add [proxy] or remove it",
        ),
    ],
)
def test_device_errors(tmp_path, entry, message):
    assert problem(tmp_path, "[[devices]]\n" + entry) == message


def test_door_active_state_means_no_pull_resistor(tmp_path):
    cfg = load(
        write(
            tmp_path,
            '[[devices]]\nname = "door"\ntype = "door"\npin = 5\n'
            "active_state = false\nbounce_time = 0.05\n",
        ),
        environ=NO_ENV,
    )
    (door,) = cfg.devices
    assert isinstance(door, DoorDevice)
    assert (door.pull_up, door.active_state, door.bounce_time) == (None, False, 0.05)


def test_cross_checks(tmp_path):
    text = (
        DEVICE
        + '[[devices]]\nname = "porch"\ntype = "relay"\npin = 22\n'
        + '[[devices]]\nname = "gate"\ntype = "relay"\npin = 23\n'
        + '[[devices]]\nname = "intercom"\ntype = "intercom"\nstrike = "porch"\n'
        + '[[devices]]\nname = "intercom2"\ntype = "intercom"\nstrike = "garage"\n'
        + '[[devices]]\nname = "intercom3"\ntype = "intercom"\nstrike = "gate"\n'
        + '[[devices]]\nname = "intercom4"\ntype = "intercom"\ndtmf_code = "1234"\n'
        + '[[users]]\nname = "alice"\npassword = "pw"\ndevices = ["porch", "intercon"]\n'
        + '[[users]]\nname = "alice"\npassword = "pw"\ndevices = ["xyzzy"]\n'
    )
    assert problems(tmp_path, text) == [
        (
            'devices[1].name: "porch" is already the name of devices[0]; '
            "give each device its own name"
        ),
        (
            'devices[1].pin: 22 is already used by devices[0] ("porch"); '
            "give each device its own pin"
        ),
        'devices[3].strike: "porch" is a light; name a relay device',
        'devices[4].strike: "garage" is not a device; name a relay device',
        'devices[5].strike: relay "gate" has no pulse; set one in devices[2], e.g. pulse = 2',
        "devices[6].strike: missing; dtmf_code opens a strike: name its relay",
        'users[0].devices[1]: "intercon" is not a device; did you mean "intercom"?',
        'users[1].name: "alice" is already users[0]; give each user its own name',
        (
            'users[1].devices[0]: "xyzzy" is not a device; remove it (known: porch, gate, '
            "intercom, intercom2, intercom3, intercom4)"
        ),
    ]


def test_user_password_rules(tmp_path):
    assert problem(tmp_path, '[[users]]\nname = "alice"\n') == (
        "users[0].password: missing; set password or password_file"
    )
    (tmp_path / "pw").write_text("x")
    assert problem(tmp_path, '[[users]]\nname = "a"\npassword = "x"\npassword_file = "pw"\n') == (
        "users[0].password_file: set together with users[0].password; keep one of them"
    )
    assert problem(tmp_path, '[[users]]\nname = "a"\npassword = ""\n') == (
        "users[0].password: is empty; set a password"
    )


def test_password_file(tmp_path):
    (tmp_path / "alice.secret").write_text("correct horse\n")
    cfg = load(
        write(tmp_path, '[[users]]\nname = "alice"\npassword_file = "alice.secret"\n'),
        environ=NO_ENV,
    )
    assert cfg.users[0].password.reveal() == "correct horse"
    missing = tmp_path / "bob.secret"
    assert problem(tmp_path, f'[[users]]\nname = "bob"\npassword_file = "{missing}"\n') == (
        f'users[0].password_file: "{missing}" does not exist; create it holding the password, '
        "or fix the path"
    )
    (tmp_path / "empty").write_text("\n")
    assert problem(tmp_path, '[[users]]\nname = "c"\npassword_file = "empty"\n') == (
        f'users[0].password_file: "{tmp_path}/empty" is empty; put the password in it'
    )


def test_password_file_from_systemd_credentials(tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "alice").write_text("from systemd\n")
    text = '[[users]]\nname = "alice"\npassword_file = "$CREDENTIALS_DIRECTORY/alice"\n'
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert problem(tmp_path, text) == (
        'users[0].password_file: "$CREDENTIALS_DIRECTORY/alice" names a variable that is '
        "not set; set it, or give the path itself")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    cfg = load(write(tmp_path, text), environ=NO_ENV)
    assert cfg.users[0].password.reveal() == "from systemd"


def test_proxy_rules(tmp_path):
    assert problems(tmp_path, "[proxy]\nexpires = 0\n") == [
        "proxy.expires: 0 is not a registration time in seconds; use 1 or more",
        'proxy.registrar: missing; set it, e.g. "sip:pbx.example.net"',
        "proxy.password: missing; set password or password_file",
    ]
    assert problem(
        tmp_path, '[proxy]\nregistrar = "sip:bob@pbx.example.net"\npassword = "x"\n'
    ) == (
        'proxy.registrar: "sip:bob@pbx.example.net" has a user part; a registrar URI names only '
        'the domain: "sip:pbx.example.net"'
    )

    assert problem(
        tmp_path, '[proxy]\nregistrar = "sip:pbx"\npassword = "x"\n'
        'outbound_proxy = "edge.example.net"\n'
    ) == 'proxy.outbound_proxy: "edge.example.net" is not a SIP URI; write it as ' \
        '"sip:edge.example.net"'
    assert problem(
        tmp_path, '[proxy]\nregistrar = "sip:pbx"\npassword = "x"\noutbound = "yes"\n'
    ).startswith("proxy.outbound: ")


def test_proxy_outbound_keys(tmp_path):
    path = write(tmp_path, '[proxy]\nregistrar = "sip:pbx"\npassword = "x"\n'
                 'outbound_proxy = "sip:edge.example.net;transport=tcp"\noutbound = false\n')
    cfg = load(path, environ=NO_ENV)
    assert cfg.proxy.outbound_proxy == "sip:edge.example.net;transport=tcp"
    assert cfg.proxy.outbound is False
    path = write(tmp_path, '[proxy]\nregistrar = "sip:pbx"\npassword = "x"\n')
    cfg = load(path, environ=NO_ENV)
    assert (cfg.proxy.outbound_proxy, cfg.proxy.outbound) == (None, True)


def test_default_state_dir(monkeypatch):
    # systemd's StateDirectory= first, then root's /var/lib, then the XDG state home.
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/sip-appliance:/x"}) == (
        "/var/lib/sip-appliance")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_dir({}) == "/var/lib/sip-appliance"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert default_state_dir({"XDG_STATE_HOME": "/home/pi/.state"}) == (
        "/home/pi/.state/sip-appliance")
    monkeypatch.setenv("HOME", "/home/pi")
    assert default_state_dir({}) == "/home/pi/.local/state/sip-appliance"


def test_state_dir_is_relative_to_the_config_file(tmp_path):
    path = write(tmp_path, '[agent]\nstate_dir = "state"\n')
    assert load(path, environ=NO_ENV).agent.state_dir == str(tmp_path / "state")


def test_other_section_rules(tmp_path):
    assert problem(tmp_path, '[agent]\ndomain = "home.arpa:5060"\n') == (
        'agent.domain: "home.arpa:5060" has a port; write a host name only, e.g. home.arpa'
    )
    assert problem(tmp_path, '[nat]\nstun = "stun server"\n') == (
        'nat.stun: "stun server" is not a host name or address; write host or host:port, '
        "e.g. stun.example.net:3478"
    )
    assert problem(tmp_path, '[mqtt]\npassword = "x"\n') == (
        "mqtt.username: missing; set it, the broker needs it with the password"
    )
    assert problem(tmp_path, '[tls]\nca = "nope.pem"\n') == (
        f'tls.ca: "{tmp_path}/nope.pem" does not exist; fix the path or create the file'
    )


# --- environment and overrides ---


def test_environment_over_file_and_overrides_over_both(tmp_path):
    path = write(tmp_path, '[agent]\nname = "file"\nsimulate = false\n[mqtt]\nport = 1000\n')
    environ = {
        "SIP_APPLIANCE_AGENT_NAME": "env",
        "SIP_APPLIANCE_AGENT_SIMULATE": "true",
        "SIP_APPLIANCE_MQTT_PORT": "2000",
        "HOME": "/root",
    }
    cfg = load(path, environ=environ)
    assert (cfg.agent.name, cfg.agent.simulate) == ("env", True)
    assert cfg.mqtt is not None and cfg.mqtt.port == 2000
    cfg = load(
        path,
        environ=environ,
        overrides={
            "agent.name": "flag",
            "agent.simulate": False,
            "agent.control": "/tmp/x.sock",
            "agent.listen": None,
        },
    )
    agent = cfg.agent
    assert (agent.name, agent.simulate, agent.control) == ("flag", False, "/tmp/x.sock")
    assert cfg.agent.listen == config.AgentConfig().listen  # None: not given


def test_environment_values_are_parsed_by_type():
    cfg = load(
        environ={
            "SIP_APPLIANCE_AGENT_LISTEN": "udp:[::1]:5070, tcp:127.0.0.1:5070",
            "SIP_APPLIANCE_AGENT_LOG_LEVEL": "DEBUG",
            "SIP_APPLIANCE_NAT_STUN": "stun.example.net",
            "SIP_APPLIANCE_MQTT_HOST": "broker",  # a variable is enough to enable a section
            "SIP_APPLIANCE_MQTT_DISCOVERY": "off",
            "SIP_APPLIANCE_AGENT_DOMAIN": "",  # empty: unset
        }
    )
    assert [str(spec) for spec in cfg.agent.listen] == ["udp:[::1]:5070", "tcp:127.0.0.1:5070"]
    assert (cfg.agent.log_level, cfg.agent.domain) == ("debug", None)
    assert cfg.nat == config.NatConfig(stun="stun.example.net:3478", keepalive=25)
    assert cfg.mqtt is not None and (cfg.mqtt.host, cfg.mqtt.discovery) == ("broker", False)


def test_environment_errors_name_the_variable():
    with pytest.raises(ConfigError) as caught:
        load(
            environ={
                "SIP_APPLIANCE_AGENT_SIMULATE": "maybe",
                "SIP_APPLIANCE_MQTT_PORT": "x",
                "SIP_APPLIANCE_AGENT_NAEM": "pi",
                "SIP_APPLIANCE_COLOUR": "red",
                "SIP_APPLIANCE_PROXY_REGISTRAR": "pbx.example.net",
            }
        )
    assert caught.value.problems == [
        "SIP_APPLIANCE_AGENT_NAEM: unknown variable; did you mean SIP_APPLIANCE_AGENT_NAME?",
        (
            "SIP_APPLIANCE_COLOUR: unknown variable; remove it (variables are "
            "SIP_APPLIANCE_<SECTION>_<KEY>)"
        ),
        'SIP_APPLIANCE_AGENT_SIMULATE: expected a boolean, got "maybe"; use true or false',
        'SIP_APPLIANCE_MQTT_PORT: expected an integer, got "x"; use a whole number',
        (
            'SIP_APPLIANCE_PROXY_REGISTRAR: "pbx.example.net" is not a SIP URI; '
            'write it as "sip:pbx.example.net"'
        ),
        "proxy.password: missing; set password or password_file",
    ]


def test_environment_password_replaces_the_files_password_file(tmp_path):
    (tmp_path / "secret").write_text("from-file")
    path = write(tmp_path, '[proxy]\nregistrar = "sip:pbx"\npassword_file = "secret"\n')
    cfg = load(path, environ={"SIP_APPLIANCE_PROXY_PASSWORD": "from-env"})
    assert cfg.proxy is not None and cfg.proxy.password.reveal() == "from-env"


def test_override_errors():
    with pytest.raises(ConfigError) as caught:
        load(environ=NO_ENV, overrides={"agent.simlate": True, "agent.listen": ["udp:x"]})
    assert caught.value.problems == [
        "agent.simlate: unknown key; did you mean agent.simulate?",
        (
            'agent.listen[0]: "udp:x" has no port; use udp:HOST:PORT, tcp:HOST:PORT or '
            "tls:HOST:PORT, e.g. udp:0.0.0.0:5060"
        ),
    ]


def test_overrides_take_listen_specs_and_strings():
    spec = parse_listen("udp:[::1]:5070")
    cfg = load(environ=NO_ENV, overrides={"agent.listen": [spec], "mqtt.port": "1884"})
    assert cfg.agent.listen == (spec,)
    assert cfg.mqtt is not None and cfg.mqtt.port == 1884


# --- secrets ---


def test_redacted_and_repr_never_show_a_password(design_example):
    cfg = load(
        design_example,
        environ={"SIP_APPLIANCE_MQTT_USERNAME": "ha", "SIP_APPLIANCE_MQTT_PASSWORD": "mqtt-pw"},
    )
    redacted = cfg.redacted()
    shown = json.dumps(redacted) + repr(cfg) + str(cfg)
    for secret in ("s3cret", "mqtt-pw", '"..."'):
        assert secret not in shown
    assert redacted["proxy"]["password"] == "********"
    assert redacted["mqtt"]["password"] == "********"
    assert redacted["users"][0]["password"] == "********"
    assert redacted["agent"]["listen"] == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    assert redacted["devices"][0] == {
        "name": "frontdoor",
        "type": "door",
        "pin": 17,
        "username": None,
        "password": None,
        "pull_up": True,
        "active_state": None,
        "bounce_time": None,
        "open_level": None,
        "notify": ["sip:alice@example.net"],
    }


def test_open_level_and_active_state_say_the_same_thing(tmp_path):
    assert problem(
        tmp_path, '[[devices]]\nname = "d"\ntype = "door"\npin = 4\nactive_state = true\n'
        'open_level = "low"\n'
    ) == 'devices[0].open_level: says the same as active_state; keep one (active_state = ' \
        'true is open_level = "low")'
    assert problem(
        tmp_path, '[[devices]]\nname = "d"\ntype = "door"\npin = 4\nopen_level = "middle"\n'
    ) == 'devices[0].open_level: "middle" is not a pin level; use "high" or "low"'


def test_demo_redacted_is_json():
    redacted = demo_config(environ=NO_ENV).redacted()
    assert json.loads(json.dumps(redacted)) == redacted
    assert redacted["users"] == [
        {
            "name": "demo",
            "password": "********",
            "devices": ["frontdoor", "porch", "strike", "doorbell", "intercom", "camera"],
        }
    ]
    assert "demo" not in repr(demo_config(environ=NO_ENV).users[0].password)


def test_secret():
    secret = Secret("hunter2")
    assert (repr(secret), str(secret), f"{secret}") == (
        "Secret('********')",
        "********",
        "********",
    )
    assert secret.reveal() == "hunter2"


# --- cameras and the video intercom ---

CAMERA = '[[devices]]\nname = "{name}"\ntype = "camera"\nsource = "test"\n'
INTERCOM = '[[devices]]\nname = "intercom"\ntype = "intercom"\naudio = "null"\n'


def test_a_camera_defaults_to_what_suits_a_pi_zero_2_w(tmp_path):
    cfg = load(write(tmp_path, CAMERA.format(name="camera") + INTERCOM + "video = true\n"),
               environ=NO_ENV)
    camera, intercom = cfg.devices
    assert isinstance(camera, CameraDevice)
    assert (camera.width, camera.height, camera.framerate, camera.bitrate,
            camera.keyframe_interval, camera.encoder) == (640, 480, 15, 500, 2.0, "libx264")
    assert intercom.video is True and intercom.camera is None  # the only camera


def test_camera_settings_that_cannot_work_name_the_key_and_the_fix(tmp_path):
    text = (CAMERA.format(name="front") + 'width = 641\nencoder = "nvenc"\n'
            + '[[devices]]\nname = "cam2"\ntype = "camera"\nsource = "usb0"\n'
            + INTERCOM + "video = true\n"
            + '[[devices]]\nname = "intercom2"\ntype = "intercom"\ncamera = "front"\n'
            + '[[devices]]\nname = "intercom3"\ntype = "intercom"\nvideo = true\n'
              'camera = "intercom"\n')
    assert problems(tmp_path, text) == [
        'devices[0].encoder: "nvenc" is not a H.264 encoder; use "libx264" or "h264_v4l2m2m"',
        'devices[1].source: "usb0" is not a camera source; use "/dev/video0" (a V4L2 camera), '
        '"rpicam" (the Pi camera) or "test" (a test picture)',
        "devices[0].width: 641 is odd; H.264 pictures have an even width, e.g. 642",
        'devices[2].video: needs a camera; name one with camera = "front" or "cam2"',
        "devices[3].camera: only used with video = true; set video = true or remove it",
        'devices[4].camera: "intercom" is an intercom; name a camera device',
    ]


def test_video_without_any_camera(tmp_path):
    assert problem(tmp_path, INTERCOM + "video = true\n") == (
        'devices[0].video: needs a camera; add a [[devices]] entry with type = "camera" '
        "or set video = false")
