"""The values config keys take: `Secret`, `ListenSpec`, and the value types that turn a TOML
value, or an environment variable's text, into a typed value with a clear problem and fix
when it cannot (`appliance.config` builds its schema from these).
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from appliance.sip.errors import ParseError
from appliance.sip.uri import parse_uri

MASK = "********"
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
_LISTEN_USAGE = "use udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT, e.g. udp:0.0.0.0:5060"


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

    # Equal values compare equal, so that a config reload sees an unchanged password as
    # unchanged (compared in constant time, like every other secret comparison here).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


@dataclass(frozen=True)
class ListenSpec:
    """A listener, ``udp:HOST:PORT``; `host` holds an IPv6 literal without its brackets."""

    transport: str  # udp | tcp | tls
    host: str
    port: int  # 0: any free port

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def _parse_listen(text: str) -> ListenSpec:
    transport, sep, rest = text.partition(":")
    transport = transport.lower()
    not_spec = _Invalid(f"{_q(text)} is not a listen spec; {_LISTEN_USAGE}")
    if not sep or transport not in ("udp", "tcp", "tls"):
        raise not_spec
    if not rest.startswith("[") and rest.count(":") > 1:
        host, _, port = rest.rpartition(":")
        fix = f"write {transport}:[{host}]:{port}"
        raise _Invalid(f"{_q(text)}: an IPv6 address needs brackets; {fix}")
    try:  # HOST:PORT is a SIP URI's hostport: the core's parser checks it
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
            fix = "write one such as [::1]"
            raise _Invalid(f"{_q(text)}: {host} is not an IPv6 address; {fix}") from None
    return ListenSpec(transport, host, uri.port)


# --- value types: each turns a TOML value, or a variable's text, into a typed value ---


class _Invalid(Exception):
    """A bad value: `problems` pairs a key suffix ("" or "[2]") with "problem; fix"."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [("", message)]


def _q(text: str) -> str:
    return f'"{text}"'


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"the string {_q(value)}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list | dict):
        return "an array" if isinstance(value, list) else "a table"
    return "a date/time"


class _Type:
    """A string that must not be empty; subclasses narrow it down."""

    accepts: tuple[type, ...] = (str,)
    expected = "a string"

    def __init__(self, example: str = "") -> None:
        self.example = example  # the fix: "e.g. ..." or "use ..."

    def convert(self, value: Any, text: bool, base_dir: str) -> Any:
        """Check a TOML `value`; with `text`, a string is a variable's text to `parse` first."""
        if text and isinstance(value, str):
            try:
                value = self.parse(value.strip())
            except (ValueError, KeyError):
                message = f"expected {self.expected}, got {_q(value)}; {self.example}"
                raise _Invalid(message) from None
        if not isinstance(value, self.accepts) or (
            isinstance(value, bool) and bool not in self.accepts
        ):
            raise _Invalid(f"expected {self.expected}, got {_describe(value)}; {self.example}")
        return self.check(value, base_dir)

    def parse(self, text: str) -> Any:
        return text

    def check(self, value: Any, base_dir: str) -> Any:
        if not value:
            raise _Invalid(f"is empty; {self.example}")
        return value


class _Chars(_Type):
    """A string of only some characters: a name, a DTMF code."""

    def __init__(self, example: str, chars: str, noun: str, allowed: str) -> None:
        super().__init__(example)
        self.chars, self.noun, self.allowed = frozenset(chars), noun, allowed

    def check(self, value: str, base_dir: str) -> Any:
        if not set(value) <= self.chars:
            raise _Invalid(f"{_q(value)} is not a valid {self.noun}; use only {self.allowed}")
        return super().check(value, base_dir)


def _name(noun: str) -> _Chars:
    return _Chars('e.g. "frontdoor"', _NAME_CHARS, noun, 'letters, digits, "-", "_" and "."')


class _Topic(_Type):
    """An MQTT topic prefix: levels without wildcards, not starting or ending with "/"."""

    def __init__(self) -> None:
        super().__init__('e.g. "sip-appliance" or "home/frontdoor-pi"')

    def check(self, value: str, base_dir: str) -> Any:
        if any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/") \
                or "//" in value:
            raise _Invalid(f"{_q(value)} is not a topic prefix; use levels joined by \"/\" "
                           f"without + or #, {self.example}")
        return super().check(value, base_dir)


class _CameraSource(_Type):
    """Where a camera's pictures come from: "test", "rpicam" or a V4L2 device path."""

    def __init__(self) -> None:
        super().__init__('use "/dev/video0" (a V4L2 camera), "rpicam" (the Pi camera) or '
                         '"test" (a test picture)')

    def check(self, value: str, base_dir: str) -> Any:
        if value in ("test", "rpicam") or value.startswith("/dev/"):
            return value
        raise _Invalid(f"{_q(value)} is not a camera source; {self.example}")


class _Choice(_Type):
    def __init__(self, noun: str, *choices: str) -> None:
        quoted = [_q(choice) for choice in choices]
        super().__init__("use " + ", ".join(quoted[:-1]) + " or " + quoted[-1])
        self.choices, self.noun = choices, noun

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
    """An integer from `low` to `high`, or (`seconds`) a duration, maybe with a fraction."""

    def __init__(self, noun: str, low: int, high: int | None = None, *, seconds: bool = False,
                 positive: bool = False) -> None:
        super().__init__("e.g. 2 or 0.5" if seconds else "use a whole number")
        self.accepts = (int, float) if seconds else (int,)
        self.expected = "a number of seconds" if seconds else "an integer"
        self.noun, self.low, self.high = noun, low, high
        self.seconds, self.positive = seconds, positive

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
    """A sip: or sips: URI, checked by the core's parser and kept as written."""

    def __init__(self, registrar: bool = False) -> None:
        super().__init__('e.g. "sip:alice@example.net"')
        self.registrar = registrar

    def check(self, value: str, base_dir: str) -> Any:
        try:
            uri = parse_uri(super().check(value, base_dir))
        except ParseError:
            fix = f"write it as {_q('sip:' + value)}" if ":" not in value else self.example
            raise _Invalid(f"{_q(value)} is not a SIP URI; {fix}") from None
        if uri.scheme not in ("sip", "sips"):
            raise _Invalid(f"{_q(value)} is a {uri.scheme}: URI; use a sip: or sips: URI")
        if uri.password is not None:
            raise _Invalid(f"{_q(value)} has a password in it; remove it from the URI")
        if self.registrar and uri.user is not None:
            fix = f"a registrar URI names only the domain: {_q(uri.scheme + ':' + uri.hostport())}"
            raise _Invalid(f"{_q(value)} has a user part; {fix}")
        return value


class _HostPort(_Type):
    """A host (the domain), or ``host[:port]`` when there is a `default_port` (STUN)."""

    def __init__(self, default_port: int | None = None) -> None:
        if default_port:
            super().__init__("write host or host:port, e.g. stun.example.net:3478")
        else:
            super().__init__("write a host name only, e.g. home.arpa")
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
        return f"{uri.host}:{uri.port or self.default_port}" if self.default_port else uri.host


class _Network(_Type):
    """A network of the home's own (private, loopback or link-local), e.g. 192.168.1.0/24."""

    def __init__(self) -> None:
        super().__init__('e.g. "192.168.1.0/24"')

    def check(self, value: str, base_dir: str) -> Any:
        try:
            network = ipaddress.ip_network(super().check(value, base_dir), strict=False)
        except ValueError:
            raise _Invalid(f"{_q(value)} is not a network; {self.example}") from None
        if not (network.is_private or network.is_loopback or network.is_link_local):
            raise _Invalid(f"{_q(value)} is not a network of the home's own; trust only a "
                           "LAN, e.g. \"192.168.1.0/24\"")
        return str(network)


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
    """A password, or (`from_file`) the path of a file holding it, which is read now."""

    def __init__(self, from_file: bool = False) -> None:
        super().__init__('e.g. "/etc/sip-appliance/secret"' if from_file else "set a password")
        self.from_file = from_file

    def check(self, value: str, base_dir: str) -> Any:
        if not self.from_file:
            return Secret(super().check(value, base_dir))
        # "$CREDENTIALS_DIRECTORY/alice": systemd's LoadCredential= (or any variable).
        named = os.path.expandvars(super().check(value, base_dir))
        if "$" in named:
            raise _Invalid(f"{_q(value)} names a variable that is not set; set it, or give "
                           "the path itself")
        path = os.path.join(base_dir, named)
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read().rstrip("\r\n")  # the newline an editor adds
        except FileNotFoundError:
            fix = "create it holding the password, or fix the path"
            raise _Invalid(f"{_q(path)} does not exist; {fix}") from None
        except (OSError, UnicodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            fix = "make it readable by the agent"
            raise _Invalid(f"cannot read {_q(path)} ({why}); {fix}") from None
        if not text:
            raise _Invalid(f"{_q(path)} is empty; put the password in it")
        return Secret(text)


class _List(_Type):
    """An array of `item`s; a variable lists them comma-separated."""

    accepts = (list, tuple)
    expected = "an array"

    def __init__(self, item: _Type, example: str, required: bool = False) -> None:
        super().__init__(f"e.g. [{example}]")
        self.item, self.required = item, required

    def parse(self, text: str) -> Any:
        return [part.strip() for part in text.split(",") if part.strip()]

    def convert(self, value: Any, text: bool, base_dir: str) -> Any:
        out, problems = [], []
        for index, item in enumerate(super().convert(value, text, base_dir)):
            try:
                out.append(self.item.convert(item, text, base_dir))
            except _Invalid as exc:
                problems += [(f"[{index}]{at}", message) for at, message in exc.problems]
        if problems:
            raise _Invalid(problems[0][1], problems)
        return tuple(out)

    def check(self, value: Sequence[Any], base_dir: str) -> Any:
        if self.required and not value:
            raise _Invalid(f"is empty; list at least one, {self.example}")
        return value
