"""The board's config.json: read, checked, and given defaults.

The keys mirror the Pi agent's TOML (see firmware/config.example.json for every one):

    {"wifi": {"ssid": "home", "password": "..."},
     "agent": {"name": "porch-esp32", "domain": "home.arpa", "port": 5060},
     "proxy": {"registrar": "sip:pbx.home.arpa", "username": "...", "password": "..."},
     "nat": {"stun": "stun.example.net:3478", "keepalive": 25},
     "users": [{"name": "alice", "password": "...", "devices": ["porch"]}],
     "devices": [{"name": "frontdoor", "type": "door", "pin": 4},
                 {"name": "porch", "type": "light", "pin": 2, "dimmable": true}]}

A mistake raises SettingsError naming the key, the problem and the fix, e.g.
`devices[1].pin: "GP4" is not a pin number; write the GPIO number, e.g. "pin": 4`.
"""

import json

TYPES = ("door", "light", "relay")
PI_ONLY = ("doorbell", "intercom", "camera")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"


class SettingsError(Exception):
    pass


def load(path):
    """The settings of the config.json at `path`."""
    try:
        with open(path) as file:
            text = file.read()
    except OSError:
        text = None
    if text is None:
        raise SettingsError("%s: cannot be read; copy config.example.json there and edit it"
                            % path)
    return parse(text, path)


def parse(text, where="config.json"):
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SettingsError("%s: not a JSON object; check it with a JSON validator (a comma "
                            "after the last item is a common slip)" % where)
    return _Reader(document).settings()


class _Reader:
    def __init__(self, document):
        self.document = document

    def settings(self):
        doc = self.document
        for key in doc:
            if key not in ("wifi", "agent", "proxy", "nat", "users", "devices"):
                raise SettingsError("%s: unknown key; the keys are wifi, agent, proxy, nat, "
                                    "users and devices" % key)
        wifi = self.section("wifi", ("ssid", "password", "hostname"))
        agent = self.section("agent", ("name", "domain", "port", "watchdog", "ntp",
                                       "digest_algorithms"))
        proxy = self.section("proxy", ("registrar", "username", "password", "expires"))
        nat = self.section("nat", ("stun", "keepalive"))
        out = {
            "wifi": None if wifi is None else {
                "ssid": self.text(wifi, "wifi.ssid", required='"ssid": "home"'),
                "password": self.text(wifi, "wifi.password", ""),
                "hostname": self.text(wifi, "wifi.hostname"),
            },
            "agent": self.agent(agent or {}),
            "proxy": None,
            "nat": None,
            "users": self.users(),
        }
        out["devices"] = self.devices()
        names = [device["name"] for device in out["devices"]]
        for user in out["users"]:
            for index, name in enumerate(user["devices"]):
                if name not in names:
                    raise SettingsError('%s.devices[%d]: no device is named "%s"; name one of '
                                        "%s" % (user["where"], index, name, ", ".join(names)))
        if proxy is not None:
            out["proxy"] = {
                "registrar": self.uri(proxy, "proxy.registrar", required=True),
                "username": self.text(proxy, "proxy.username", out["agent"]["name"]),
                "password": self.text(proxy, "proxy.password"),
                "expires": self.number(proxy, "proxy.expires", 600, 60, 86400),
            }
        if nat is not None:
            stun = self.text(nat, "nat.stun")
            if stun is not None and not _host_port(stun):
                raise SettingsError('nat.stun: "%s" is not HOST:PORT; write e.g. '
                                    '"stun.example.net:3478"' % stun)
            out["nat"] = {"stun": stun, "keepalive": self.number(nat, "nat.keepalive", 25, 5,
                                                                  3600)}
        return out

    def agent(self, agent):
        algorithms = agent.get("digest_algorithms", ["SHA-256", "MD5"])
        if not isinstance(algorithms, list) or not algorithms or [
                a for a in algorithms if not isinstance(a, str)
                or a.upper() not in ("MD5", "SHA-256", "SHA-512-256")]:
            raise SettingsError('agent.digest_algorithms: must be a list of "SHA-256", '
                                '"SHA-512-256" and "MD5", e.g. ["SHA-256", "MD5"]')
        return {
            "name": self.name(agent, "agent.name", "sip-appliance"),
            "domain": self.text(agent, "agent.domain"),
            "port": self.number(agent, "agent.port", 5060, 1, 65535),
            "watchdog": self.number(agent, "agent.watchdog", 8, 0, 8),
            "ntp": self.text(agent, "agent.ntp", "pool.ntp.org"),
            "digest_algorithms": [a.upper() for a in algorithms],
        }

    def users(self):
        users = self.list("users")
        out = []
        for index, user in enumerate(users):
            where = "users[%d]" % index
            self.keys(user, where, ("name", "password", "devices"))
            name = self.text(user, where + ".name", required='"name": "alice"')
            if name in [other["name"] for other in out]:
                raise SettingsError('%s.name: "%s" is a second user of that name; give each '
                                    "user a name of its own" % (where, name))
            devices = user.get("devices", [])
            if not isinstance(devices, list) or [d for d in devices if not isinstance(d, str)]:
                raise SettingsError('%s.devices: must be a list of device names, e.g. '
                                    '["porch", "frontdoor"]' % where)
            out.append({"where": where, "name": name, "devices": devices,
                        "password": self.text(user, where + ".password",
                                              required='"password": "a long phrase"')})
        return out

    def devices(self):
        devices = self.list("devices")
        out = []
        pins = {}
        for index, device in enumerate(devices):
            where = "devices[%d]" % index
            kind = device.get("type") if isinstance(device, dict) else None
            if kind in PI_ONLY:
                raise SettingsError('%s.type: "%s" needs the Pi agent; the firmware drives '
                                    "door, light and relay devices" % (where, kind))
            if kind not in TYPES:
                raise SettingsError('%s.type: must be "door", "light" or "relay", e.g. '
                                    '"type": "door"' % where)
            extra = {"door": ("pull_up", "open_level", "bounce_time"),
                     "light": ("dimmable", "initial", "active_high"),
                     "relay": ("active_high", "pulse", "initial")}[kind]
            self.keys(device, where, ("name", "type", "pin", "username", "password") + extra)
            name = self.name(device, where + ".name", None)
            if name in [other["name"] for other in out]:
                raise SettingsError('%s.name: "%s" names two devices; give each its own name'
                                    % (where, name))
            pin = device.get("pin")
            if isinstance(pin, bool) or not isinstance(pin, int) or not 0 <= pin <= 99:
                raise SettingsError('%s.pin: %s is not a pin number; write the GPIO number, '
                                    'e.g. "pin": 4' % (where, json.dumps(pin)))
            if pin in pins:
                raise SettingsError("%s.pin: %d is %s's pin too; give each device its own pin"
                                    % (where, pin, pins[pin]))
            pins[pin] = name
            entry = {"name": name, "type": kind, "pin": pin,
                     "username": self.text(device, where + ".username"),
                     "password": self.text(device, where + ".password")}
            if kind == "door":
                entry["pull_up"] = self.flag(device, where + ".pull_up", True)
                level = device.get("open_level", "high" if entry["pull_up"] else "low")
                if level not in ("high", "low"):
                    raise SettingsError('%s.open_level: must be "high" or "low" (the pin level '
                                        'of an open door)' % where)
                entry["open_level"] = level
                entry["bounce_time"] = self.seconds(device, where + ".bounce_time", 0.05, 0, 5)
            else:
                entry["initial"] = device.get("initial", "off")
                if entry["initial"] not in ("on", "off"):
                    raise SettingsError('%s.initial: must be "on" or "off"' % where)
                entry["active_high"] = self.flag(device, where + ".active_high", True)
                entry["dimmable"] = kind == "light" and self.flag(device, where + ".dimmable",
                                                                  False)
                entry["pulse"] = None if kind == "light" else \
                    self.seconds(device, where + ".pulse", None, 0.1, 3600)
            out.append(entry)
        if not out:
            raise SettingsError('devices: none configured; add one, e.g. {"name": "porch", '
                                '"type": "light", "pin": 2}')
        return out

    # -- values ------------------------------------------------------------------------

    def section(self, key, keys):
        value = self.document.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise SettingsError("%s: must be an object, {...}" % key)
        self.keys(value, key, keys)
        return value

    def list(self, key):
        value = self.document.get(key, [])
        if not isinstance(value, list) or [item for item in value if not isinstance(item, dict)]:
            raise SettingsError("%s: must be a list of objects, [{...}, {...}]" % key)
        return value

    def keys(self, value, where, known):
        if not isinstance(value, dict):
            raise SettingsError("%s: must be an object, {...}" % where)
        for key in value:
            if key not in known:
                raise SettingsError("%s.%s: unknown key; the keys here are %s"
                                    % (where, key, ", ".join(known)))

    def text(self, section, key, default=None, required=None):
        value = section.get(key.rpartition(".")[2])
        if value is None:
            if required is not None:
                raise SettingsError("%s: missing; set it, e.g. %s" % (key, required))
            return default
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise SettingsError('%s: must be one line of text in quotes, e.g. "%s"'
                                % (key, default or "..."))
        return value

    def name(self, section, key, default):
        value = self.text(section, key, default, required='"name": "porch"'
                          if default is None else None)
        if not value or [c for c in value if c not in _NAME_CHARS]:
            raise SettingsError('%s: "%s" cannot be the user part of a SIP URI; use letters, '
                                'digits and "-", e.g. "porch"' % (key, value))
        return value

    def uri(self, section, key, required=False):
        value = self.text(section, key, required='"%s": "sip:pbx.home.arpa"' % key.rpartition(
            ".")[2] if required else None)
        if value is not None and not value.startswith("sip:"):
            raise SettingsError('%s: "%s" is not a sip: URI; write e.g. "sip:pbx.home.arpa"'
                                % (key, value))
        return value

    def number(self, section, key, default, low, high):
        value = section.get(key.rpartition(".")[2], default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingsError("%s: %s is not a whole number from %d to %d"
                                % (key, json.dumps(value), low, high))
        return value

    def seconds(self, section, key, default, low, high):
        value = section.get(key.rpartition(".")[2], default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not low <= value <= high:
            raise SettingsError("%s: %s is not a number of seconds from %g to %g"
                                % (key, json.dumps(value), low, high))
        return value

    def flag(self, section, key, default):
        value = section.get(key.rpartition(".")[2], default)
        if not isinstance(value, bool):
            raise SettingsError("%s: must be true or false" % key)
        return value


def _host_port(text):
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def host_port(text, default_port):
    """("host", port) of "host:port" or "host"."""
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit():
        return host, int(port)
    return text, default_port
