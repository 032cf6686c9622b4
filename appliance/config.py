"""The agent's configuration: one schema drives the TOML file, the environment and the flags.

Each key of the single-table sections ([agent], [proxy], [nat], [tls], [mqtt]) is looked up
in three layers, the later winning: the file, the environment (``SIP_APPLIANCE_AGENT_NAME``;
lists comma-separated; an empty variable counts as unset) and the overrides the command line
passes as dotted keys (``{"agent.simulate": True}``; None counts as unset). [[users]] and
[[devices]] come from the file alone. Relative paths in the file are relative to its directory.

Every problem is collected and reported at once in one `ConfigError`, each as
``<key>: <what is wrong>; <the fix>``. Passwords are `Secret` objects, masked in repr(), str()
and `Config.redacted()` (as Mopidy's ``config.types.Secret``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from appliance.errors import ApplianceError
from appliance.sip.errors import ParseError
from appliance.sip.uri import parse_uri

ENV_PREFIX = "SIP_APPLIANCE_"
MASK = "********"
DEVICE_TYPES = ("door", "light", "relay", "doorbell", "intercom", "camera")
TRANSPORTS = ("udp", "tcp", "tls")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
_LISTEN_USAGE = "use udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT, e.g. udp:0.0.0.0:5060"


class ConfigError(ApplianceError):
    """The configuration cannot be used; `problems` holds one "key: problem; fix" each."""

    def __init__(self, problems: Sequence[str], path: str | None = None) -> None:
        self.problems = list(problems)
        self.path = path
        super().__init__("\n".join(self.problems))


class Secret:
    """A password: ``********`` in repr(), str() and redacted output; `reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ListenSpec:
    """A listener, ``udp:HOST:PORT``; `host` holds an IPv6 literal without its brackets."""

    transport: str  # udp | tcp | tls
    host: str
    port: int  # 0: any free port

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True)
class AgentConfig:
    name: str  # mDNS instance and MQTT client id
    domain: str | None  # host part of the device URIs; None: the listen address
    listen: tuple[ListenSpec, ...]
    control: str
    simulate: bool
    log_level: str  # debug | info | warning | error


@dataclass(frozen=True)
class ProxyConfig:
    registrar: str
    username: str  # default: agent.name
    password: Secret
    expires: int


@dataclass(frozen=True)
class NatConfig:
    stun: str | None  # "host:port"
    keepalive: int  # seconds; 0 turns keep-alives off


@dataclass(frozen=True)
class TlsConfig:
    certificate: str | None
    key: str | None
    ca: str | None  # None: the system's trust store


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int
    base_topic: str
    discovery: bool
    username: str | None
    password: Secret | None


@dataclass(frozen=True)
class User:
    name: str
    password: Secret
    devices: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Device:
    """One [[devices]] entry; `username`/`password` replace [proxy]'s for its registration."""

    type: ClassVar[str]
    name: str
    pin: int | None = None  # BCM numbering
    username: str | None = None
    password: Secret | None = None


@dataclass(frozen=True, kw_only=True)
class DoorDevice(Device):
    """A door sensor. As in gpiozero, `active_state` applies only without a pull resistor,
    so setting it leaves `pull_up` None."""

    type: ClassVar[str] = "door"
    pull_up: bool | None
    active_state: bool | None
    bounce_time: float | None
    notify: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LightDevice(Device):
    type: ClassVar[str] = "light"
    dimmable: bool
    initial: str  # off | on


@dataclass(frozen=True, kw_only=True)
class RelayDevice(Device):
    type: ClassVar[str] = "relay"
    active_high: bool
    pulse: float | None
    initial: str


@dataclass(frozen=True, kw_only=True)
class DoorbellDevice(Device):
    type: ClassVar[str] = "doorbell"
    call: tuple[str, ...]
    ring: str  # parallel | sequential
    ring_time: float
    notify: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class IntercomDevice(Device):
    type: ClassVar[str] = "intercom"
    answer_after: float
    dtmf_code: str | None
    strike: str | None  # a relay's name
    audio: str


@dataclass(frozen=True, kw_only=True)
class CameraDevice(Device):
    type: ClassVar[str] = "camera"
    source: str  # a V4L2 device, or "test" for a test picture


@dataclass(frozen=True)
class Config:
    agent: AgentConfig
    proxy: ProxyConfig | None
    nat: NatConfig | None
    tls: TlsConfig | None
    mqtt: MqttConfig | None
    users: tuple[User, ...]
    devices: tuple[Device, ...]

    def redacted(self) -> dict[str, Any]:
        """The whole effective config as plain JSON-able data, every secret masked."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["devices"] = [{"name": d.name, "type": d.type, **_plain(d)} for d in self.devices]
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, ListenSpec):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def default_control_path(environ: Mapping[str, str] | None = None) -> str:
    """The control socket's path when agent.control is not set."""
    env = os.environ if environ is None else environ
    uid = os.geteuid()
    if uid == 0:
        return "/run/sip-appliance/control.sock"
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "sip-appliance", "control.sock")
    return f"/tmp/sip-appliance-{uid}/control.sock"


def default_agent_name() -> str:
    """``sip-appliance-<host name>``, or ``sip-appliance`` when the host has no usable name."""
    label = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")
    return f"sip-appliance-{label}"[:63] if label not in ("", "localhost") else "sip-appliance"


def _q(text: str) -> str:
    return f'"{text}"'


def parse_listen(text: str) -> ListenSpec:
    """Parse ``udp:HOST:PORT`` (HOST may be ``[IPv6]``); raises ConfigError."""
    try:
        return _parse_listen(text)
    except _Invalid as exc:
        raise ConfigError([message for _, message in exc.problems]) from None


def _parse_listen(text: str) -> ListenSpec:
    transport, sep, rest = text.partition(":")
    transport = transport.lower()
    not_spec = _Invalid(f"{_q(text)} is not a listen spec; {_LISTEN_USAGE}")
    if not sep or transport not in TRANSPORTS:
        raise not_spec
    if not rest.startswith("[") and rest.count(":") > 1:
        host, _, port = rest.rpartition(":")
        raise _Invalid(f"{_q(text)}: an IPv6 address needs brackets; write {transport}:[{host}]:{port}")
    try:  # HOST:PORT has the grammar of a SIP URI's hostport: reuse the core's parser
        uri = parse_uri("sip:" + rest)
    except ParseError:
        raise not_spec from None
    if uri.user is not None or uri.params or uri.headers:
        raise not_spec
    if uri.port is None:
        raise _Invalid(f"{_q(text)} has no port; {_LISTEN_USAGE}")
    host = uri.host
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Invalid(f"{_q(text)}: {host} is not an IPv6 address; write one such as ::1") from None
    return ListenSpec(transport, host, uri.port)


# --- value types: each turns a TOML value, or a variable's text, into a typed value ---


class _Invalid(Exception):
    """A bad value: `problems` pairs a key suffix ("" or "[2]") with "problem; fix"."""

    def __init__(self, message: str, at: str = "") -> None:
        super().__init__(message)
        self.problems = [(at, message)]


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"the string {_q(value)}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return {list: "an array", tuple: "an array", dict: "a table"}.get(type(value), "a date/time")


class _Type:
    accepts: tuple[type, ...] = (str,)
    expected = "a string"

    def __init__(self, example: str = "") -> None:
        self.example = example

    def convert(self, value: Any, text: bool, base_dir: str) -> Any:
        """`value` from TOML, or (`text`) from a variable, which `parse` turns into one."""
        if text and isinstance(value, str):
            try:
                value = self.parse(value.strip())
            except (ValueError, KeyError):
                raise _Invalid(f"expected {self.expected}, got {_q(value)}; {self.example}") from None
        if not isinstance(value, self.accepts) or (isinstance(value, bool) and bool not in self.accepts):
            raise _Invalid(f"expected {self.expected}, got {_describe(value)}; {self.example}")
        return self.check(value, base_dir)

    def parse(self, text: str) -> Any:
        return text

    def check(self, value: Any, base_dir: str) -> Any:
        if not value:
            raise _Invalid(f"is empty; {self.example}")
        return value


class _Str(_Type):
    """A string; with `chars`, only those characters (a name, a code)."""

    def __init__(self, example: str, chars: str = "", noun: str = "", allowed: str = "") -> None:
        super().__init__(example)
        self.chars, self.noun, self.allowed = frozenset(chars), noun, allowed

    def check(self, value: str, base_dir: str) -> Any:
        if self.chars and not set(value) <= self.chars:
            raise _Invalid(f"{_q(value)} is not a valid {self.noun}; use only {self.allowed}")
        return super().check(value, base_dir)


def _name(noun: str) -> _Str:
    return _Str('e.g. "frontdoor"', _NAME_CHARS, noun, 'letters, digits, "-", "_" and "."')


class _Choice(_Type):
    def __init__(self, choices: Sequence[str], noun: str) -> None:
        quoted = [_q(choice) for choice in choices]
        super().__init__("use " + ", ".join(quoted[:-1]) + " or " + quoted[-1])
        self.choices, self.noun = tuple(choices), noun

    def check(self, value: str, base_dir: str) -> Any:
        if value.lower() in self.choices:
            return value.lower()
        close = difflib.get_close_matches(value.lower(), self.choices, n=1)
        fix = f"did you mean {_q(close[0])}?" if close else self.example
        raise _Invalid(f"{_q(value)} is not a {self.noun}; {fix}")


class _Bool(_Type):
    accepts = (bool,)
    expected = "a boolean"
    _WORDS: ClassVar = {"true": True, "yes": True, "on": True, "1": True}
    _WORDS |= {"false": False, "no": False, "off": False, "0": False}

    def __init__(self) -> None:
        super().__init__("use true or false")

    def parse(self, text: str) -> Any:
        return self._WORDS[text.lower()]

    def check(self, value: bool, base_dir: str) -> Any:
        return value


class _Number(_Type):
    """An integer, or (`seconds`) a duration that may have a fraction, within limits."""

    def __init__(self, noun: str, low: int, high: int | None = None, *, seconds: bool = False,
                 positive: bool = False) -> None:
        self.accepts = (int, float) if seconds else (int,)
        self.expected = "a number of seconds" if seconds else "an integer"
        super().__init__("e.g. 2 or 0.5" if seconds else f"use a whole number, e.g. {high or low}")
        self.noun, self.low, self.high, self.seconds, self.positive = noun, low, high, seconds, positive

    def parse(self, text: str) -> Any:
        return float(text) if self.seconds else int(text)

    def check(self, value: float, base_dir: str) -> Any:
        if self.high is not None:
            fix, ok = f"use a number from {self.low} to {self.high}", self.low <= value <= self.high
        elif self.positive:
            fix, ok = "use a number above 0", value > 0
        else:
            fix, ok = f"use {self.low} or more", value >= self.low
        if not ok or not math.isfinite(value):
            raise _Invalid(f"{value} is not {self.noun}; {fix}")
        return float(value) if self.seconds else value


class _Uri(_Type):
    """A sip: or sips: URI, checked with the core's parser and kept as written."""

    def __init__(self, registrar: bool = False) -> None:
        super().__init__('e.g. "sip:alice@example.net"')
        self.registrar = registrar

    def check(self, value: str, base_dir: str) -> Any:
        try:
            uri = parse_uri(super().check(value, base_dir))
        except ParseError:
            fix = f"write it as {_q('sip:' + value)}" if ":" not in value else f"write it {self.example}"
            raise _Invalid(f"{_q(value)} is not a SIP URI; {fix}") from None
        if uri.scheme not in ("sip", "sips"):
            raise _Invalid(f"{_q(value)} is a {uri.scheme}: URI; use a sip: or sips: URI")
        if uri.password is not None:
            raise _Invalid(f"{_q(value)} has a password in it; remove it (passwords go in password keys)")
        if self.registrar and uri.user is not None:
            domain = _q(f"{uri.scheme}:{uri.hostport()}")
            raise _Invalid(f"{_q(value)} has a user part; a registrar URI names only the domain: {domain}")
        return value


class _HostPort(_Type):
    """``host`` (a domain), or ``host[:port]`` when there is a `default_port` (STUN)."""

    def __init__(self, default_port: int | None) -> None:
        example = f"host[:port], e.g. {_q('stun.example.net:3478')}" if default_port else "a host, e.g. \"home.arpa\""
        super().__init__("write " + example)
        self.default_port = default_port

    def check(self, value: str, base_dir: str) -> Any:
        try:
            uri = parse_uri("sip:" + super().check(value, base_dir))
        except ParseError:
            uri = None
        if uri is None or uri.user is not None or uri.params or uri.headers:
            raise _Invalid(f"{_q(value)} is not a host name or address; {self.example}")
        if self.default_port is None and uri.port is not None:
            raise _Invalid(f"{_q(value)} has a port; {self.example}")
        return uri.host if self.default_port is None else f"{uri.host}:{uri.port or self.default_port}"


class _Listen(_Type):
    accepts = (str, ListenSpec)
    expected = "a listen spec string"

    def check(self, value: str | ListenSpec, base_dir: str) -> Any:
        return value if isinstance(value, ListenSpec) else _parse_listen(value)


class _Path(_Type):
    def __init__(self, example: str, must_exist: bool = True) -> None:
        super().__init__(f"e.g. {_q(example)}")
        self.must_exist = must_exist

    def check(self, value: str, base_dir: str) -> Any:
        path = os.path.join(base_dir, super().check(value, base_dir))
        if self.must_exist and not os.path.isfile(path):
            raise _Invalid(f"{_q(path)} does not exist; fix the path or create the file")
        return path


class _Password(_Type):
    """A password, or (`from_file`) the path of a file holding it, read at load."""

    def __init__(self, from_file: bool = False) -> None:
        super().__init__('e.g. "/etc/sip-appliance/secret"' if from_file else "set the password")
        self.from_file = from_file

    def check(self, value: str, base_dir: str) -> Any:
        if not self.from_file:
            return Secret(super().check(value, base_dir))
        path = os.path.join(base_dir, value)
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read().rstrip("\r\n")  # the newline an editor adds
        except FileNotFoundError:
            raise _Invalid(f"{_q(path)} does not exist; create it holding the password, or fix the path") from None
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise _Invalid(f"cannot read {_q(path)} ({reason}); make it a file the agent can read") from None
        if not text:
            raise _Invalid(f"{_q(path)} is empty; put the password in it")
        return Secret(text)


class _List(_Type):
    """An array; a variable lists its items comma-separated."""

    accepts = (list, tuple)
    expected = "an array"

    def __init__(self, item: _Type, example: str, required: bool = False) -> None:
        super().__init__(f"e.g. [{example}]")
        self.item, self.required = item, required

    def parse(self, text: str) -> Any:
        return [part.strip() for part in text.split(",") if part.strip()]

    def convert(self, value: Any, text: bool, base_dir: str) -> Any:
        items = super().convert(value, text, base_dir)
        out, problems = [], []
        for index, item in enumerate(items):
            try:
                out.append(self.item.convert(item, text, base_dir))
            except _Invalid as exc:
                problems += [(f"[{index}]{at}", message) for at, message in exc.problems]
        if problems:
            error = _Invalid(problems[0][1])
            error.problems = problems
            raise error
        return tuple(out)

    def check(self, value: Sequence[Any], base_dir: str) -> Any:
        if self.required and not value:
            raise _Invalid(f"is empty; list at least one, {self.example}")
        return value


# --- the schema ---


@dataclass(frozen=True)
class _Key:
    kind: _Type
    default: Any = None
    required: str | None = None  # the fix to print when it is missing
    field: str | None = None  # the dataclass field it fills, when not its own name
    factory: Callable[[Mapping[str, str]], Any] | None = None  # a default from the environ


_PASSWORD = _Key(_Password(), required="set password or password_file")
_PASSWORD_FILE = _Key(_Password(from_file=True), field="password")
_DEFAULT_LISTEN = (ListenSpec("udp", "0.0.0.0", 5060), ListenSpec("tcp", "0.0.0.0", 5060))
_SECTIONS: dict[str, tuple[type, dict[str, _Key]]] = {
    "agent": (AgentConfig, {
        "name": _Key(_name("agent name"), factory=lambda environ: default_agent_name()),
        "domain": _Key(_HostPort(default_port=None)),
        "listen": _Key(_List(_Listen(_LISTEN_USAGE), '"udp:0.0.0.0:5060"', required=True),
                       default=_DEFAULT_LISTEN),
        "control": _Key(_Path("/run/sip-appliance/control.sock", must_exist=False),
                        factory=default_control_path),
        "simulate": _Key(_Bool(), default=False),
        "log_level": _Key(_Choice(("debug", "info", "warning", "error"), "log level"),
                          default="info"),
    }),
    "proxy": (ProxyConfig, {
        "registrar": _Key(_Uri(registrar=True),
                          required='set registrar, e.g. registrar = "sip:pbx.example.net"'),
        "username": _Key(_Str('e.g. "frontdoor-pi"')),
        "password": _PASSWORD,
        "password_file": _PASSWORD_FILE,
        "expires": _Key(_Number("a registration time in seconds", 1), default=600),
    }),
    "nat": (NatConfig, {
        "stun": _Key(_HostPort(default_port=3478)),
        "keepalive": _Key(_Number("a keep-alive interval in seconds", 0), default=25),
    }),
    "tls": (TlsConfig, {
        "certificate": _Key(_Path("/etc/sip-appliance/cert.pem")),
        "key": _Key(_Path("/etc/sip-appliance/key.pem")),
        "ca": _Key(_Path("/etc/ssl/certs/ca-certificates.crt")),
    }),
    "mqtt": (MqttConfig, {
        "host": _Key(_Str('e.g. "localhost"'), default="localhost"),
        "port": _Key(_Number("a port number", 1, 65535), default=1883),
        "base_topic": _Key(_Str('e.g. "sip-appliance"'), default="sip-appliance"),
        "discovery": _Key(_Bool(), default=True),
        "username": _Key(_Str('e.g. "sip-appliance"')),
        "password": _Key(_Password()),
        "password_file": _PASSWORD_FILE,
    }),
}
_USER_KEYS = {
    "name": _Key(_Str('e.g. "alice"'), required='set name, e.g. name = "alice"'),
    "password": _PASSWORD,
    "password_file": _PASSWORD_FILE,
    "devices": _Key(_List(_Str('e.g. "porch"'), '"porch", "frontdoor"'), default=()),
}
_DEVICE_KEYS = {
    "name": _Key(_name("SIP user part"), required='set name, e.g. name = "frontdoor"'),
    "type": _Key(_Choice(DEVICE_TYPES, "device type"),
                 required="set type to one of " + ", ".join(DEVICE_TYPES)),
    "username": _Key(_Str('e.g. "frontdoor"')),
    "password": _Key(_Password()),
    "password_file": _PASSWORD_FILE,
}
_PIN = _Key(_Number("a BCM GPIO pin", 0, 27),
            required="set pin to the BCM GPIO number it is wired to (0 to 27)")
_URIS = _Key(_List(_Uri(), '"sip:alice@example.net"'), default=())
_ON_OFF = _Key(_Choice(("off", "on"), "state"), default="off")
_SECONDS = _Key(_Number("a duration", 0, seconds=True))
_DEVICE_TYPES: dict[str, tuple[type[Device], dict[str, _Key]]] = {
    "door": (DoorDevice, {
        "pin": _PIN, "pull_up": _Key(_Bool(), default=True), "active_state": _Key(_Bool()),
        "bounce_time": _SECONDS, "notify": _URIS,
    }),
    "light": (LightDevice, {
        "pin": _PIN, "dimmable": _Key(_Bool(), default=False), "initial": _ON_OFF,
    }),
    "relay": (RelayDevice, {
        "pin": _PIN, "active_high": _Key(_Bool(), default=True),
        "pulse": _Key(_Number("a duration", 0, seconds=True, positive=True)), "initial": _ON_OFF,
    }),
    "doorbell": (DoorbellDevice, {
        "pin": _PIN, "call": _URIS, "notify": _URIS,
        "ring": _Key(_Choice(("parallel", "sequential"), "ring mode"), default="parallel"),
        "ring_time": _Key(_Number("a duration", 0, seconds=True, positive=True), default=20.0),
    }),
    "intercom": (IntercomDevice, {
        "answer_after": _Key(_SECONDS.kind, default=0.0),
        "dtmf_code": _Key(_Str('e.g. "1234"', "0123456789", "DTMF code", 'digits 0-9, e.g. "1234"')),
        "strike": _Key(_name("device name")),
        "audio": _Key(_Str('e.g. "default", "null" or a WAV file'), default="default"),
    }),
    "camera": (CameraDevice, {
        "source": _Key(_Str('e.g. "/dev/video0" or "test"'), default="/dev/video0"),
    }),
}
_ALL_DEVICE_KEYS = {key: spec for _, keys in _DEVICE_TYPES.values() for key, spec in keys.items()}


# --- loading ---


_BAD = object()  # stands for a value whose problem is already reported
_Layer = dict[str, tuple[Any, str]]  # field -> (value, the key or variable it came from)
_Entry = tuple[str, dict[str, Any], _Layer]  # "devices[2].", field values, what was set


def load(
    path: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The effective config: the TOML file at `path` (None: no file) < `environ` < `overrides`."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as file:
                raw = tomllib.load(file)
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file; give the path of a config file"], path) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read it ({exc.strerror}); check the path"], path) from None
        except UnicodeDecodeError:
            raise ConfigError([f"{path}: not UTF-8 text; save it as UTF-8"], path) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([_syntax_problem(path, str(exc))], path) from None
    base_dir = os.path.dirname(os.path.abspath(path)) if path is not None else ""
    return _build(raw, base_dir, environ, overrides or {}, path)


def demo_config(
    overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] = os.environ
) -> Config:
    """The demo home of DESIGN.md on simulated pins, `environ` and `overrides` applied."""
    devices: list[dict[str, Any]] = [
        {"name": "frontdoor", "type": "door", "pin": 17},
        {"name": "porch", "type": "light", "pin": 22, "dimmable": True},
        {"name": "strike", "type": "relay", "pin": 23, "pulse": 2},
        {"name": "doorbell", "type": "doorbell", "pin": 27},
        {"name": "intercom", "type": "intercom", "answer_after": 0, "dtmf_code": "1234",
         "strike": "strike", "audio": "null"},
    ]
    user = {"name": "demo", "password": "demo", "devices": [d["name"] for d in devices]}
    raw = {"agent": {"simulate": True}, "users": [user], "devices": devices}
    return _build(raw, "", environ, overrides or {}, None)


def _syntax_problem(path: str, message: str) -> str:
    """tomllib says "Invalid value (at line 3, column 9)"; make it "FILE:3:9: Invalid value"."""
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message)
    if match:
        return f"{path}:{match[2]}:{match[3]}: {match[1]}; fix the TOML syntax there"
    message = message.replace(" (at end of document)", " at the end of the file")
    return f"{path}: {message}; fix the TOML syntax"


def _did_you_mean(word: str, known: Sequence[str], show: Callable[[str], str] = str) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f"did you mean {show(close[0])}?"
    return "remove it (known: " + ", ".join(show(name) for name in known) + ")"


def _prefixed(prefix: str) -> Callable[[str], str]:
    return lambda key: prefix + key


def _convert(table: Mapping[str, Any], keys: Mapping[str, _Key], label: Callable[[str], str],
             base_dir: str, problems: list[str], text: bool = False) -> _Layer:
    """One layer's values by field; with `text`, strings are parsed by the key's type."""
    out: _Layer = {}
    seen: dict[str, str] = {}
    for key, value in table.items():
        spec = keys.get(key)
        if spec is None:
            problems.append(f"{label(key)}: unknown key; {_did_you_mean(key, list(keys), label)}")
            continue
        field = spec.field or key
        out[field] = (_BAD, label(key))
        if field in seen:
            problems.append(f"{label(key)}: set together with {label(seen[field])}; keep only one")
            continue
        seen[field] = key
        try:
            out[field] = (spec.kind.convert(value, text, base_dir), label(key))
        except _Invalid as exc:
            problems += [f"{label(key)}{at}: {message}" for at, message in exc.problems]
    return out


def _complete(layer: _Layer, keys: Mapping[str, _Key], prefix: str,
              environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """Field values, defaults filled in and missing required keys reported."""
    values: dict[str, Any] = {}
    for key, spec in keys.items():
        field = spec.field or key
        if field in values:
            continue
        if field in layer:
            values[field] = layer[field][0]
        elif spec.required:
            problems.append(f"{prefix}{field}: missing; {spec.required}")
            values[field] = _BAD
        else:
            values[field] = spec.factory(environ) if spec.factory else spec.default
    return values


def _entries(raw: dict[str, Any], name: str, problems: list[str]) -> list[tuple[str, dict]]:
    value = raw.get(name, [])
    fix = f"write each as a [[{name}]] table"
    if not isinstance(value, list):
        problems.append(f"{name}: expected an array of tables, got {_describe(value)}; {fix}")
        return []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            problems.append(f"{name}[{index}]: expected a table, got {_describe(entry)}; {fix}")
    return [(f"{name}[{i}].", entry) for i, entry in enumerate(value) if isinstance(entry, dict)]


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _build(raw: dict[str, Any], base_dir: str, environ: Mapping[str, str],
           overrides: Mapping[str, Any], path: str | None) -> Config:
    problems: list[str] = []
    layers: dict[str, _Layer] = {name: {} for name in _SECTIONS}
    tops = {**{name: f"[{name}]" for name in _SECTIONS}, "users": "[[users]]", "devices": "[[devices]]"}
    for name, table in raw.items():
        if name not in tops:
            problems.append(f"{name}: unknown section; {_did_you_mean(name, list(tops), tops.get)}")
        elif name in _SECTIONS and not isinstance(table, dict):
            problems.append(f"{name}: expected a table, got {_describe(table)}; write [{name}]")
        elif name in _SECTIONS:
            keys = _SECTIONS[name][1]
            layers[name] = _convert(table, keys, _prefixed(name + "."), base_dir, problems)
    present = {name for name in _SECTIONS if name == "agent" or isinstance(raw.get(name), dict)}

    # the environment, then the overrides: each a layer over the one before
    variables = {_env_name(s, k): (s, k) for s, (_, keys) in _SECTIONS.items() for k in keys}
    dotted = {f"{s}.{k}": (s, k) for s, (_, keys) in _SECTIONS.items() for k in keys}
    sources = (
        ("variable", variables, _env_name,
         {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX) and v != ""}),
        ("key", dotted, lambda s, k: f"{s}.{k}",
         {k: v for k, v in overrides.items() if v is not None}),
    )
    for noun, known, label, items in sources:
        tables: dict[str, dict[str, Any]] = {}
        for name, value in items.items():
            if name in known:
                section, key = known[name]
                tables.setdefault(section, {})[key] = value
            else:
                problems.append(f"{name}: unknown {noun}; {_did_you_mean(name, list(known))}")
        for section, table in tables.items():
            present.add(section)
            keys = _SECTIONS[section][1]
            show = (lambda key, s=section, label=label: label(s, key))  # type: ignore[misc]
            layers[section] |= _convert(table, keys, show, "", problems, text=True)

    sections = {
        name: _complete(layers[name], keys, name + ".", environ, problems) if name in present else None
        for name, (_, keys) in _SECTIONS.items()
    }
    entries: dict[str, list[_Entry]] = {"users": [], "devices": []}
    for group in entries:
        for prefix, entry in _entries(raw, group, problems):
            keys = _USER_KEYS
            if group == "devices":
                kind = entry.get("type")
                keys = {**_DEVICE_KEYS, **_DEVICE_TYPES.get(kind, (Device, _ALL_DEVICE_KEYS))[1]}
                for key in sorted(set(entry) - set(keys)):
                    owners = [t for t, (_, k) in _DEVICE_TYPES.items() if key in k]
                    if owners:  # a key of another type: say so rather than "did you mean"
                        entry = {k: v for k, v in entry.items() if k != key}
                        problems.append(f"{prefix}{key}: a {kind} has no {key} (a key of "
                                        f"{', '.join(owners)} devices); remove it")
            layer = _convert(entry, keys, _prefixed(prefix), base_dir, problems)
            entries[group].append((prefix, _complete(layer, keys, prefix, environ, problems), layer))

    _cross_check(sections, layers, entries["users"], entries["devices"], problems)
    if problems:
        raise ConfigError(problems, path)
    return _make_config(sections, entries["users"], entries["devices"])


def _cross_check(sections: dict[str, dict[str, Any] | None], layers: dict[str, _Layer],
                 users: list[_Entry], devices: list[_Entry], problems: list[str]) -> None:
    """The checks that look at more than one value."""
    agent, tls, proxy, mqtt = (sections[s] or {} for s in ("agent", "tls", "proxy", "mqtt"))
    label = layers["agent"].get("listen", (None, "agent.listen"))[1]
    seen: set[str] = set()
    for index, spec in enumerate(agent["listen"] if agent["listen"] is not _BAD else ()):
        if str(spec) in seen:
            problems.append(f"{label}[{index}]: {_q(str(spec))} is listed twice; remove one")
        seen.add(str(spec))
        if spec.transport == "tls" and not (tls.get("certificate") and tls.get("key")):
            fix = "set tls.certificate and tls.key" if tls else "add [tls] with certificate and key"
            problems.append(f"{label}[{index}]: a tls listener needs a certificate and key; {fix}")
    if tls and (tls["certificate"] is None) != (tls["key"] is None):
        missing = "key" if tls["key"] is None else "certificate"
        problems.append(f"tls.{missing}: missing; set both tls.certificate and tls.key")
    if mqtt and mqtt["password"] is not None and mqtt["username"] is None:
        problems.append("mqtt.username: missing; mqtt.password needs a username; set both")

    by_name: dict[str, _Entry] = {}
    by_pin: dict[int, str] = {}
    for entry in devices:
        prefix, values, layer = entry
        name, pin = values["name"], values.get("pin")
        if name in by_name:
            problems.append(f"{prefix}name: {_q(name)} is already the name of "
                            f"{by_name[name][0][:-1]}; give each device its own name")
        elif name is not _BAD:
            by_name[name] = entry
        if isinstance(pin, int) and pin in by_pin:
            problems.append(f"{prefix}pin: {pin} is already used by {by_pin[pin]}; "
                            "give each device its own pin")
        elif isinstance(pin, int):
            by_pin[pin] = f"{prefix[:-1]} ({_q(name)})"
        if values.get("password") is not None and not proxy:
            problems.append(f"{prefix}password: only used to register through a proxy; "
                            "add [proxy] or remove it")
        if values.get("active_state") is not None and "pull_up" in layer:
            problems.append(f"{prefix}active_state: only applies without a pull resistor; "
                            "remove pull_up (the input then floats) or remove active_state")
    for prefix, values, _ in devices:
        strike = values.get("strike")
        if values.get("dtmf_code") not in (None, _BAD) and strike is None:
            problems.append(f"{prefix}strike: missing; dtmf_code opens a strike: name its relay")
        if strike in (None, _BAD):
            continue
        target = by_name.get(strike)
        if target is None or target[1]["type"] != "relay":
            what = "not a device" if target is None else f"a {target[1]['type']}"
            problems.append(f"{prefix}strike: {_q(strike)} is {what}; name a relay device")
        elif target[1]["pulse"] is None:
            problems.append(f"{prefix}strike: relay {_q(strike)} has no pulse; "
                            f"set pulse in {target[0][:-1]}, e.g. pulse = 2")

    user_names: dict[str, str] = {}
    for prefix, values, _ in users:
        if values["name"] in user_names:
            problems.append(f"{prefix}name: {_q(values['name'])} is already "
                            f"{user_names[values['name']]}; give each user its own name")
        user_names.setdefault(values["name"], prefix[:-1])
        for index, name in enumerate(values["devices"] if values["devices"] is not _BAD else ()):
            if name not in by_name:
                fix = _did_you_mean(name, list(by_name), _q) if by_name else "add [[devices]]"
                problems.append(f"{prefix}devices[{index}]: {_q(name)} is not a device; {fix}")


def _make_config(sections: dict[str, dict[str, Any] | None], users: list[_Entry],
                 devices: list[_Entry]) -> Config:
    agent, proxy = sections["agent"] or {}, sections["proxy"]
    if proxy is not None and proxy["username"] is None:
        proxy["username"] = agent["name"]
    built = {name: values and _SECTIONS[name][0](**values) for name, values in sections.items()}
    made: list[Device] = []
    for _, values, _ in devices:
        cls = _DEVICE_TYPES[values.pop("type")][0]
        if cls is DoorDevice and values["active_state"] is not None:
            values["pull_up"] = None
        made.append(cls(**values))
    return Config(
        agent=built["agent"], proxy=built["proxy"], nat=built["nat"], tls=built["tls"],
        mqtt=built["mqtt"], users=tuple(User(**values) for _, values, _ in users),
        devices=tuple(made),
    )
