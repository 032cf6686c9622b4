"""The agent's configuration: one schema drives the TOML file, the environment and the flags.

The schema is the dataclasses below: each field carries its type, default and the fix to print
when it is missing (`_key`). Every key of [agent], [proxy], [nat], [tls] and [mqtt] is looked up
in three layers, the later winning: the file, the environment (``SIP_APPLIANCE_AGENT_NAME``;
lists comma-separated; an empty variable counts as unset) and the command line's overrides as
dotted keys (``{"agent.simulate": True}``; None counts as unset). [[users]] and [[devices]] come
from the file alone. Relative paths in a file are relative to its directory. Each password key
has a ``*_file`` twin naming a file that holds it, read at load.

All problems are collected into one `ConfigError`, one ``<key>: <what is wrong>; <the fix>``
each. Passwords are `Secret`s: masked in repr(), str() and `Config.redacted()`, as Mopidy does.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from appliance.config_values import (
    _LISTEN_USAGE,
    MASK,
    ListenSpec,
    Secret,
    _Bool,
    _CameraSource,
    _Chars,
    _Choice,
    _describe,
    _HostPort,
    _Invalid,
    _List,
    _Listen,
    _name,
    _Network,
    _Number,
    _parse_listen,
    _Password,
    _Path,
    _q,
    _Topic,
    _Type,
    _Uri,
)
from appliance.errors import ApplianceError

ENV_PREFIX = "SIP_APPLIANCE_"
DEVICE_TYPES = ("door", "light", "relay", "doorbell", "intercom", "camera")


class ConfigError(ApplianceError):
    """The configuration cannot be used; `problems` holds one "key: problem; fix" each."""

    def __init__(self, problems: Sequence[str], path: str | None = None) -> None:
        self.problems = list(problems)
        self.path = path
        super().__init__("\n".join(self.problems))


def parse_listen(text: str) -> ListenSpec:
    """Parse ``udp:HOST:PORT``, ``tcp:...`` or ``tls:...`` (HOST may be ``[IPv6]``).

    Raises ConfigError, whose one problem says what is wrong and the fix."""
    try:
        return _parse_listen(text)
    except _Invalid as exc:
        raise ConfigError([exc.problems[0][1]]) from None


def default_control_path(environ: Mapping[str, str] | None = None) -> str:
    """The control socket's path when agent.control is not set."""
    env = os.environ if environ is None else environ
    uid = os.geteuid()
    if uid == 0:
        return "/run/sip-appliance/control.sock"
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "sip-appliance", "control.sock")
    return f"/tmp/sip-appliance-{uid}/control.sock"


def default_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """Where the agent keeps what must survive a restart (its RFC 5626 instance id) when
    agent.state_dir is not set: systemd's StateDirectory, else the XDG state home."""
    env = os.environ if environ is None else environ
    if env.get("STATE_DIRECTORY"):
        return env["STATE_DIRECTORY"].split(":")[0]
    if os.geteuid() == 0:
        return "/var/lib/sip-appliance"
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "sip-appliance")


def default_agent_name() -> str:
    """``sip-appliance-<host name>``, or ``sip-appliance`` when the host has no usable name."""
    label = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")
    return f"sip-appliance-{label}"[:63] if label not in ("", "localhost") else "sip-appliance"


# --- the schema: dataclass fields that carry their config type ---


@dataclass(frozen=True)
class _Key:
    kind: _Type
    default: Any = None
    required: str | None = None  # the fix to print when it is missing
    factory: Callable[[Mapping[str, str]], Any] | None = None  # a default from the environ
    field: str = ""  # the field a ``*_file`` key fills


def _key(kind: _Type, default: Any = None, *, required: str | None = None,
         factory: Callable[[Mapping[str, str]], Any] | None = None) -> Any:
    """A dataclass field carrying its config key. (It is a `dataclasses.field`, so RUF009's
    shared-default worry does not apply where it is silenced.)"""
    key = _Key(kind, default, required, factory)
    if required:
        return dataclasses.field(metadata={"key": key})
    if factory:
        return dataclasses.field(default_factory=lambda: factory(os.environ), metadata={"key": key})
    return dataclasses.field(default=default, metadata={"key": key})


def _keys(cls: type) -> dict[str, _Key]:
    """The config keys of a dataclass: its fields', plus a ``*_file`` twin for each password."""
    keys = {}
    for field in dataclasses.fields(cls):
        if "key" in field.metadata:
            keys[field.name] = key = field.metadata["key"]
            if isinstance(key.kind, _Password):
                keys[field.name + "_file"] = _Key(_Password(from_file=True), field=field.name)
    return keys


_PASSWORD_REQUIRED = "set password or password_file"
_PIN = _Number("a BCM GPIO pin", 0, 27)
_PIN_REQUIRED = "set pin to the BCM GPIO number it is wired to (0 to 27)"
_URIS = _List(_Uri(), '"sip:alice@example.net"')
_ON_OFF = _Choice("state", "off", "on")
_SECONDS = _Number("a duration", 0, seconds=True)
_PERIOD = _Number("a duration", 0, seconds=True, positive=True)


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    name: str = _key(_name("agent name"), factory=lambda env: default_agent_name())  # mDNS, MQTT
    domain: str | None = _key(_HostPort())  # host part of the device URIs; None: listen address
    listen: tuple[ListenSpec, ...] = _key(
        _List(_Listen(_LISTEN_USAGE), '"udp:0.0.0.0:5060"', required=True),
        (ListenSpec("udp", "0.0.0.0", 5060), ListenSpec("tcp", "0.0.0.0", 5060)),
    )
    control: str = _key(_Path("/tmp/control.sock", must_exist=False), factory=default_control_path)
    state_dir: str = _key(_Path("/var/lib/sip-appliance", must_exist=False),
                          factory=default_state_dir)
    simulate: bool = _key(_Bool(), False)
    log_level: str = _key(_Choice("log level", "debug", "info", "warning", "error"), "info")
    # Source networks whose requests control and watch every device without a challenge:
    # off by default; only a LAN of the home's own may be listed.
    trust: tuple[str, ...] = _key(_List(_Network(), '"192.168.1.0/24"'), ())
    # Requests a second from one source address before the rest are dropped (twice as
    # many in a burst); 0: no limit. Keep it above what the home proxy forwards.
    rate_limit: int = _key(_Number("a number of requests a second", 0), 50)
    # Offered to [[users]], strongest first (RFC 8760); some clients (SIPp, older phones)
    # answer only the first challenge they are given: list only "MD5" for them.
    digest_algorithms: tuple[str, ...] = _key(
        _List(_Choice("digest algorithm", "sha-512-256", "sha-256", "md5"), '"SHA-256", "MD5"',
              required=True), ("sha-256", "md5"))


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    registrar: str = _key(_Uri(registrar=True), required='set it, e.g. "sip:pbx.example.net"')
    username: str = _key(_Type('e.g. "frontdoor-pi"'))  # None here: agent.name
    password: Secret = _key(_Password(), required=_PASSWORD_REQUIRED)  # noqa: RUF009
    expires: int = _key(_Number("a registration time in seconds", 1), 600)
    # Where requests go first (a preloaded Route, RFC 3261 section 8.1.2); None: registrar.
    outbound_proxy: str | None = _key(_Uri(registrar=True))
    outbound: bool = _key(_Bool(), True)  # RFC 5626: +sip.instance, reg-id, flow keep-alives


@dataclass(frozen=True, kw_only=True)
class NatConfig:
    stun: str | None = _key(_HostPort(default_port=3478))  # "host:port"
    keepalive: int = _key(_Number("a keep-alive interval in seconds", 0), 25)  # 0: none


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    certificate: str | None = _key(_Path("/etc/sip-appliance/cert.pem"))
    key: str | None = _key(_Path("/etc/sip-appliance/key.pem"))
    ca: str | None = _key(_Path("/etc/ssl/certs/ca-certificates.crt"))  # None: system's


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    host: str = _key(_Type('e.g. "localhost"'), "localhost")
    port: int | None = _key(_Number("a port number", 1, 65535))  # None: 1883, 8883 with tls
    base_topic: str = _key(_Topic(), "sip-appliance")
    discovery: bool = _key(_Bool(), True)  # Home Assistant MQTT discovery
    discovery_prefix: str = _key(_Topic(), "homeassistant")
    client_id: str | None = _key(_Type('e.g. "frontdoor-pi"'))  # None: agent.name
    username: str | None = _key(_Type('e.g. "sip-appliance"'))
    password: Secret | None = _key(_Password())  # noqa: RUF009
    # TLS to the broker: the system's CAs unless `ca`; a client certificate when
    # `certificate` and `key` are set.
    tls: bool = _key(_Bool(), False)
    ca: str | None = _key(_Path("/etc/mosquitto/ca_certificates/ca.crt"))
    certificate: str | None = _key(_Path("/etc/sip-appliance/mqtt-client.crt"))
    key: str | None = _key(_Path("/etc/sip-appliance/mqtt-client.key"))
    keepalive: int = _key(_Number("a keep-alive interval in seconds", 5, 3600), 60)
    # Messages kept while the broker is away (the oldest go first past it), and kept on
    # disk under agent.state_dir so that a restart loses none.
    queue: int = _key(_Number("a number of messages", 1, 100000), 1000)
    persist: bool = _key(_Bool(), True)


@dataclass(frozen=True, kw_only=True)
class MdnsConfig:
    """mDNS (on by default): every device announced on the LAN as a _sip._udp/_sip._tcp
    service, and the agent's name answered as NAME.local."""

    enabled: bool = _key(_Bool(), True)
    # The addresses to announce and answer on; none: every interface's.
    interfaces: tuple[str, ...] = _key(_List(_Type('e.g. "192.168.1.20"'),
                                             '"192.168.1.20"'), ())
    ip_version: str = _key(_Choice("IP version", "v4", "v6", "all"), "v4")


@dataclass(frozen=True, kw_only=True)
class User:
    name: str = _key(_Type('e.g. "alice"'), required='set it, e.g. name = "alice"')
    password: Secret = _key(_Password(), required=_PASSWORD_REQUIRED)  # noqa: RUF009
    devices: tuple[str, ...] = _key(_List(_Type('e.g. "porch"'), '"porch", "frontdoor"'), ())


@dataclass(frozen=True, kw_only=True)
class Device:
    """A [[devices]] entry; `username` and `password` replace [proxy]'s for its REGISTER."""

    type: ClassVar[str]
    name: str = _key(_name("SIP user part"), required='set it, e.g. name = "frontdoor"')
    pin: int | None = None  # BCM numbering; a key of the types that have a pin
    username: str | None = _key(_Type('e.g. "frontdoor"'))
    password: Secret | None = _key(_Password())  # noqa: RUF009


@dataclass(frozen=True, kw_only=True)
class DoorDevice(Device):
    """A door sensor. As in gpiozero, `active_state` is only for an input without a pull
    resistor: setting it leaves `pull_up` None."""

    type: ClassVar[str] = "door"
    pin: int | None = _key(_PIN, required=_PIN_REQUIRED)
    pull_up: bool | None = _key(_Bool(), True)
    active_state: bool | None = _key(_Bool())
    bounce_time: float | None = _key(_SECONDS)  # None: 0.05 s
    # The pin level of an open door (None: high with pull_up, low without): "low" for a
    # switch whose contacts close when the door opens.
    open_level: str | None = _key(_Choice("pin level", "high", "low"))
    notify: tuple[str, ...] = _key(_URIS, ())


@dataclass(frozen=True, kw_only=True)
class LightDevice(Device):
    type: ClassVar[str] = "light"
    pin: int | None = _key(_PIN, required=_PIN_REQUIRED)
    dimmable: bool = _key(_Bool(), False)
    initial: str = _key(_ON_OFF, "off")
    reply: bool = _key(_Bool(), False)  # a MESSAGE back with the state after a MESSAGE
    mqtt_control: bool = _key(_Bool(), True)  # obey <base_topic>/<name>/set


@dataclass(frozen=True, kw_only=True)
class RelayDevice(Device):
    type: ClassVar[str] = "relay"
    pin: int | None = _key(_PIN, required=_PIN_REQUIRED)
    active_high: bool = _key(_Bool(), True)
    pulse: float | None = _key(_PERIOD)  # seconds a `pulse` command keeps it on
    initial: str = _key(_ON_OFF, "off")
    reply: bool = _key(_Bool(), False)
    mqtt_control: bool = _key(_Bool(), True)


@dataclass(frozen=True, kw_only=True)
class DoorbellDevice(Device):
    type: ClassVar[str] = "doorbell"
    pin: int | None = _key(_PIN, required=_PIN_REQUIRED)
    pull_up: bool = _key(_Bool(), True)
    bounce_time: float | None = _key(_SECONDS)  # None: 0.03 s
    call: tuple[str, ...] = _key(_URIS, ())
    ring: str = _key(_Choice("ring mode", "parallel", "sequential"), "parallel")
    ring_time: float = _key(_PERIOD, 20.0)
    notify: tuple[str, ...] = _key(_URIS, ())


@dataclass(frozen=True, kw_only=True)
class IntercomDevice(Device):
    type: ClassVar[str] = "intercom"
    answer_after: float = _key(_SECONDS, 0.0)
    dtmf_code: str | None = _key(_Chars('e.g. "1234"', "0123456789", "DTMF code", "digits 0-9"))
    strike: str | None = _key(_name("device name"))  # a relay's name
    audio: str = _key(_Type('e.g. "default", "null" or a WAV file'), "default")
    max_calls: int = _key(_Number("a number of calls", 1, 8), 1)  # more: 486 Busy Here
    max_call_time: float = _key(_PERIOD, 600.0)  # seconds; then the intercom hangs up
    rtp_timeout: float = _key(_PERIOD, 30.0)  # seconds without RTP before it hangs up
    video: bool = _key(_Bool(), False)  # its calls carry a camera's video beside the audio
    camera: str | None = _key(_name("device name"))  # which camera; unset: the only one


@dataclass(frozen=True, kw_only=True)
class CameraDevice(Device):
    """A camera: H.264 over RTP to whoever calls it, encoded by ffmpeg or rpicam-vid.
    The defaults suit a Pi Zero 2 W."""

    type: ClassVar[str] = "camera"
    source: str = _key(_CameraSource(), "/dev/video0")  # "rpicam": the Pi camera; "test"
    width: int = _key(_Number("a width in pixels", 64, 1920), 640)
    height: int = _key(_Number("a height in pixels", 64, 1080), 480)
    framerate: int = _key(_Number("a frame rate", 1, 30), 15)
    bitrate: int = _key(_Number("a bit rate in kbit/s", 50, 8000), 500)
    keyframe_interval: float = _key(_PERIOD, 2.0)  # seconds between keyframes
    encoder: str = _key(_Choice("H.264 encoder", "libx264", "h264_v4l2m2m"), "libx264")
    max_calls: int = _key(_Number("a number of calls", 1, 8), 2)  # more: 486 Busy Here
    max_call_time: float = _key(_PERIOD, 600.0)  # seconds; then the camera hangs up
    rtp_timeout: float = _key(_PERIOD, 30.0)  # seconds without RTCP from the viewer


@dataclass(frozen=True)
class Config:
    agent: AgentConfig
    proxy: ProxyConfig | None
    nat: NatConfig | None
    tls: TlsConfig | None
    mqtt: MqttConfig | None
    mdns: MdnsConfig
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


_SECTIONS: dict[str, type] = {
    "agent": AgentConfig, "proxy": ProxyConfig, "nat": NatConfig, "tls": TlsConfig,
    "mqtt": MqttConfig, "mdns": MdnsConfig,
}
_DEVICES: dict[str, type[Device]] = {
    cls.type: cls
    for cls in (DoorDevice, LightDevice, RelayDevice, DoorbellDevice, IntercomDevice, CameraDevice)
}
_TYPE_KEY = _Key(_Choice("device type", *DEVICE_TYPES),
                 required="use one of " + ", ".join(DEVICE_TYPES))


# --- loading ---


_BAD = object()  # stands for a value whose problem is already reported
_Layer = dict[str, tuple[Any, str]]  # field -> (value, the key or variable it came from)
_Entry = tuple[str, dict[str, Any], _Layer]  # ("devices[2].", values by field, what was set)


def load(
    path: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The effective config: the TOML file at `path` (None: none) < `environ` < `overrides`."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as file:
                raw = tomllib.load(file)
        except OSError as exc:
            fix = "give the path of a config file"
            raise ConfigError([f"{path}: {exc.strerror}; {fix}"], path) from None
        except UnicodeDecodeError:
            raise ConfigError([f"{path}: not UTF-8 text; save it as UTF-8"], path) from None
        except tomllib.TOMLDecodeError as exc:  # "Invalid value (at line 3, column 9)"
            match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc))
            where, what = (f"{path}:{match[2]}:{match[3]}", match[1]) if match else (path, exc)
            raise ConfigError([f"{where}: {what}; fix the TOML syntax"], path) from None
    base_dir = os.path.dirname(os.path.abspath(path)) if path is not None else ""
    return _build(raw, base_dir, environ, overrides or {}, path)


def demo_config(
    overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] = os.environ
) -> Config:
    """The demo home of DESIGN.md on simulated pins, with `environ` and `overrides` applied."""
    devices: list[dict[str, Any]] = [
        {"name": "frontdoor", "type": "door", "pin": 17},
        {"name": "porch", "type": "light", "pin": 22, "dimmable": True},
        {"name": "strike", "type": "relay", "pin": 23, "pulse": 2},
        {"name": "doorbell", "type": "doorbell", "pin": 27},
        {"name": "intercom", "type": "intercom", "answer_after": 0, "dtmf_code": "1234",
         "strike": "strike", "audio": "null", "video": True},
        {"name": "camera", "type": "camera", "source": "test"},
    ]
    user = {"name": "demo", "password": "demo", "devices": [d["name"] for d in devices]}
    raw = {"agent": {"simulate": True}, "users": [user], "devices": devices}
    return _build(raw, "", environ, overrides or {}, None)


def _did_you_mean(word: str, known: Sequence[str], show: Callable[[str], str] = str,
                  otherwise: str = "") -> str:
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f"did you mean {show(close[0])}?"
    return f"remove it ({otherwise or 'known: ' + ', '.join(known)})"


def _prefixed(prefix: str) -> Callable[[str], str]:
    return lambda key: prefix + key


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _convert(table: Mapping[str, Any], keys: Mapping[str, _Key], label: Callable[[str], str],
             base_dir: str, problems: list[str], text: bool = False) -> _Layer:
    """One layer's values by field; with `text`, strings are parsed by the key's type."""
    out: _Layer = {}
    seen: dict[str, str] = {}
    for key, value in table.items():
        if key not in keys:
            problems.append(f"{label(key)}: unknown key; {_did_you_mean(key, list(keys), label)}")
            continue
        field = keys[key].field or key
        out[field] = (_BAD, label(key))
        if field in seen:
            fix = "keep one of them"
            problems.append(f"{label(key)}: set together with {label(seen[field])}; {fix}")
            continue
        seen[field] = key
        try:
            out[field] = (keys[key].kind.convert(value, text, base_dir), label(key))
        except _Invalid as exc:
            problems += [f"{label(key)}{at}: {message}" for at, message in exc.problems]
    return out


def _complete(layer: _Layer, keys: Mapping[str, _Key], prefix: str,
              environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """All field values: the layer's, else the default; missing required keys reported."""
    values: dict[str, Any] = {}
    for name, key in keys.items():
        if key.field:
            continue  # a *_file twin: its value is in the layer under its field
        if name in layer:
            values[name] = layer[name][0]
        elif key.required:
            problems.append(f"{prefix}{name}: missing; {key.required}")
            values[name] = _BAD
        else:
            values[name] = key.factory(environ) if key.factory else key.default
    return values


def _tables(raw: dict[str, Any], name: str, problems: list[str]) -> list[tuple[str, dict]]:
    """The [[users]] or [[devices]] tables, each with its key prefix."""
    value = raw.get(name, [])
    fix = f"write each as a [[{name}]] table"
    if not isinstance(value, list):
        problems.append(f"{name}: expected an array of tables, got {_describe(value)}; {fix}")
        return []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            problems.append(f"{name}[{index}]: expected a table, got {_describe(entry)}; {fix}")
    return [(f"{name}[{i}].", entry) for i, entry in enumerate(value) if isinstance(entry, dict)]


def _build(raw: dict[str, Any], base_dir: str, environ: Mapping[str, str],
           overrides: Mapping[str, Any], path: str | None) -> Config:
    problems: list[str] = []
    tops = {**{name: f"[{name}]" for name in _SECTIONS}, "users": "[[users]]",
            "devices": "[[devices]]"}
    layers: dict[str, _Layer] = {name: {} for name in _SECTIONS}
    for name, table in raw.items():
        if name not in tops:
            fix = _did_you_mean(name, list(tops), lambda top: tops[top])
            problems.append(f"{name}: unknown section; {fix}")
        elif name in _SECTIONS and not isinstance(table, dict):
            problems.append(f"{name}: expected a table, got {_describe(table)}; write [{name}]")
        elif name in _SECTIONS:
            keys = _keys(_SECTIONS[name])
            layers[name] = _convert(table, keys, _prefixed(name + "."), base_dir, problems)
    present = {name for name in _SECTIONS if name in ("agent", "mdns")  # always there
               or isinstance(raw.get(name), dict)}

    # The environment, then the overrides, each a layer over the one before.
    names = [(s, k) for s, cls in _SECTIONS.items() for k in _keys(cls)]
    sources: list[tuple[str, dict[str, tuple[str, str]], Callable[[str], Callable[[str], str]],
                        Mapping[str, Any]]] = [
        (ENV_PREFIX, {f"{s}_{k}".upper(): (s, k) for s, k in names},
         lambda section: functools.partial(_env_name, section),
         {k[len(ENV_PREFIX):]: v for k, v in environ.items() if k.startswith(ENV_PREFIX) and v}),
        ("", {f"{s}.{k}": (s, k) for s, k in names},
         lambda section: _prefixed(section + "."),
         {k: v for k, v in overrides.items() if v is not None}),
    ]
    for prefix, known, labeller, items in sources:
        tables: dict[str, dict[str, Any]] = {}
        for name, value in items.items():
            if name in known:
                section, key = known[name]
                tables.setdefault(section, {})[key] = value
            else:  # compare without the prefix, or every variable looks alike
                otherwise = f"variables are {ENV_PREFIX}<SECTION>_<KEY>" if prefix else ""
                fix = _did_you_mean(name, list(known), _prefixed(prefix), otherwise)
                noun = "variable" if prefix else "key"
                problems.append(f"{prefix}{name}: unknown {noun}; {fix}")
        for section, table in tables.items():
            present.add(section)
            keys = _keys(_SECTIONS[section])
            layers[section] |= _convert(table, keys, labeller(section), "", problems, text=True)
    sections = {
        name: _complete(layers[name], _keys(cls), f"{name}.", environ, problems)
        for name, cls in _SECTIONS.items() if name in present
    }

    users: list[_Entry] = []
    for prefix, table in _tables(raw, "users", problems):
        layer = _convert(table, _keys(User), _prefixed(prefix), base_dir, problems)
        users.append((prefix, _complete(layer, _keys(User), prefix, environ, problems), layer))
    devices: list[_Entry] = []
    for prefix, table in _tables(raw, "devices", problems):
        kind = table.get("type")
        cls = _DEVICES.get(kind) if isinstance(kind, str) else None
        keys = {"type": _TYPE_KEY, **_keys(cls or Device)}
        for key in sorted(set(table) - set(keys)):  # a key of other types: say which
            owners = [t for t, other in _DEVICES.items() if key in _keys(other)]
            if owners:
                table = {k: v for k, v in table.items() if k != key}
            if owners and cls:  # without a valid type, the type's problem is enough
                problems.append(f"{prefix}{key}: not a key of {kind} devices (only of "
                                f"{', '.join(owners)}); remove it")
        layer = _convert(table, keys, _prefixed(prefix), base_dir, problems)
        devices.append((prefix, _complete(layer, keys, prefix, environ, problems), layer))

    _check_sections(sections, layers, problems)
    _check_devices(sections, users, devices, problems)
    if problems:
        raise ConfigError(problems, path)
    return _make_config(sections, users, devices)


def _check_sections(sections: dict[str, dict[str, Any]], layers: dict[str, _Layer],
                    problems: list[str]) -> None:
    tls, mqtt = sections.get("tls"), sections.get("mqtt")
    label = layers["agent"].get("listen", (None, "agent.listen"))[1]
    listen = sections["agent"]["listen"]
    for index, spec in enumerate(listen if listen is not _BAD else ()):
        if spec in listen[:index]:
            problems.append(f"{label}[{index}]: {_q(str(spec))} is listed twice; remove one")
        if spec.transport == "tls" and not (tls and tls["certificate"] and tls["key"]):
            fix = "set tls.certificate and tls.key" if tls else "add [tls] with certificate and key"
            problems.append(f"{label}[{index}]: a tls listener needs a certificate and key; {fix}")
    if tls and (tls["certificate"] is None) != (tls["key"] is None):
        missing = "key" if tls["key"] is None else "certificate"
        problems.append(f"tls.{missing}: missing; set both tls.certificate and tls.key")
    if mqtt and mqtt["password"] is not None and mqtt["username"] is None:
        problems.append("mqtt.username: missing; set it, the broker needs it with the password")
    if mqtt and (mqtt["certificate"] is None) != (mqtt["key"] is None):
        missing = "key" if mqtt["key"] is None else "certificate"
        problems.append(f"mqtt.{missing}: missing; a client certificate needs both "
                        "mqtt.certificate and mqtt.key")
    if mqtt and not mqtt["tls"]:
        for name in ("ca", "certificate"):
            if mqtt[name] is not None:
                problems.append(f"mqtt.{name}: only used over TLS; set mqtt.tls = true "
                                f"or remove mqtt.{name}")
    if mqtt and mqtt["base_topic"] == mqtt["discovery_prefix"]:
        problems.append(f"mqtt.base_topic: {_q(mqtt['base_topic'])} is the discovery prefix "
                        "too; give the agent its own, e.g. \"sip-appliance\"")


def _check_devices(sections: dict[str, dict[str, Any]], users: list[_Entry],
                   devices: list[_Entry], problems: list[str]) -> None:
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
            by_pin[pin] = prefix[:-1] + (f" ({_q(name)})" if isinstance(name, str) else "")
        if values.get("password") is not None and "proxy" not in sections:
            problems.append(f"{prefix}password: only used to register through [proxy]; "
                            "add [proxy] or remove it")
        if values.get("active_state") is not None and "pull_up" in layer:
            problems.append(f"{prefix}active_state: only for an input without a pull resistor; "
                            "remove pull_up (the input then floats) or remove active_state")
        if values.get("active_state") is not None and values.get("open_level") is not None:
            problems.append(f"{prefix}open_level: says the same as active_state; keep one "
                            "(active_state = true is open_level = \"low\")")
    cameras = [values["name"] for _, values, _ in devices if values.get("type") == "camera"]
    for prefix, values, _ in devices:
        for key in ("width", "height"):
            if isinstance(values.get(key), int) and values[key] % 2:
                problems.append(f"{prefix}{key}: {values[key]} is odd; H.264 pictures have "
                                f"an even {key}, e.g. {values[key] + 1}")
        camera = values.get("camera")
        if camera is not None and camera is not _BAD and values.get("video") is False:
            problems.append(f"{prefix}camera: only used with video = true; set video = true "
                            "or remove it")
        elif isinstance(camera, str) and camera not in cameras:
            target = by_name.get(camera)
            what = "not a device" if target is None else _a(target[1]["type"])
            problems.append(f"{prefix}camera: {_q(camera)} is {what}; name a camera device")
        elif values.get("video") is True and camera is None and len(cameras) != 1:
            problems.append(f"{prefix}video: needs a camera; " + (
                "add a [[devices]] entry with type = \"camera\" or set video = false"
                if not cameras else "name one with camera = " + " or ".join(map(_q, cameras))))
        strike = values.get("strike")
        if values.get("dtmf_code") not in (None, _BAD) and strike is None:
            problems.append(f"{prefix}strike: missing; dtmf_code opens a strike: name its relay")
        target = by_name.get(strike) if isinstance(strike, str) else None
        if isinstance(strike, str) and (target is None or target[1]["type"] != "relay"):
            what = "not a device" if target is None else _a(target[1]["type"])
            problems.append(f"{prefix}strike: {_q(strike)} is {what}; name a relay device")
        elif target and target[1]["pulse"] is None:
            relay, where = target[1]["name"], target[0][:-1]
            problems.append(f"{prefix}strike: relay {_q(relay)} has no pulse; "
                            f"set one in {where}, e.g. pulse = 2")
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


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _make_config(sections: dict[str, dict[str, Any]], users: list[_Entry],
                 devices: list[_Entry]) -> Config:
    if "proxy" in sections and sections["proxy"]["username"] is None:
        sections["proxy"]["username"] = sections["agent"]["name"]
    built = {name: _SECTIONS[name](**values) for name, values in sections.items()}
    made: list[Device] = []
    for _, values, _ in devices:
        cls = _DEVICES[values.pop("type")]
        if cls is DoorDevice and values["active_state"] is not None:
            values["pull_up"] = None
        made.append(cls(**values))
    return Config(
        agent=built["agent"], proxy=built.get("proxy"), nat=built.get("nat"),
        tls=built.get("tls"), mqtt=built.get("mqtt"), mdns=built["mdns"],
        devices=tuple(made),
        users=tuple(User(**values) for _, values, _ in users),
    )
