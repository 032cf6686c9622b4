"""The command language of lights and relays: one parser for MESSAGE, DO, MQTT and the CLI.

    command = parse("text/plain", b"dim 40")     # Command("dim", 40)

- text/plain: `on`, `off`, `toggle`, `dim N` (0-100), `pulse [S]` (seconds; without, the
  relay's `pulse`), `status`; any case, surrounding blanks ignored.
- application/json: Home Assistant's light schema, `{"state": "ON", "brightness": 40}`
  (brightness 0-100; with a brightness and no state, a dim).
- application/dmp: the appliance drafts' XML, `<dmp><command>ON</command></dmp>`, with
  the same words as text (`<command>DIM 40</command>`).

What cannot be read raises CommandError with the SIP status to answer (400 naming the
accepted commands, 415 with the accepted types, 413 for a body over MAX_BODY bytes).
"""

import json
import xml.etree.ElementTree as ElementTree

TEXT = "text/plain"
JSON = "application/json"
DMP = "application/dmp"
CONTENT_TYPES = (TEXT, JSON, DMP)
MAX_BODY = 1024
WORDS = ("on", "off", "toggle", "dim", "pulse", "status")
USAGE = "Use on, off, toggle, dim 0-100, pulse [SECONDS] or status"
MAX_PULSE = 3600.0


class CommandError(Exception):
    def __init__(self, status, reason, fields=()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.fields = tuple(fields)


class Command:
    __slots__ = ("action", "value")

    def __init__(self, action, value=None):
        self.action = action
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Command) and (self.action, self.value) == (other.action,
                                                                           other.value)

    def __repr__(self):
        return "Command(%r, %r)" % (self.action, self.value)


def parse(content_type, body):
    """The Command of a request body of `content_type` (its media type, any case)."""
    if len(body) > MAX_BODY:
        raise CommandError(413, "Request Entity Too Large")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in CONTENT_TYPES:
        raise CommandError(415, "Unsupported Media Type", (("Accept", ", ".join(CONTENT_TYPES)),))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(400, "Body Is Not UTF-8") from None
    if kind == JSON:
        return _from_json(text)
    if kind == DMP:
        return _from_dmp(text)
    return parse_words(text)


def parse_words(text):
    """A command in words: "on", "DIM 40", "pulse 2.5"."""
    words = text.strip().lower().split()
    if not words or words[0] not in WORDS:
        raise CommandError(400, USAGE)
    action, rest = words[0], words[1:]
    if action == "pulse" and not rest:
        return Command(action)  # the relay's own pulse time
    if action in ("dim", "pulse"):
        if len(rest) != 1:
            raise CommandError(400, USAGE)
        return Command(action, _number(action, rest[0]))
    if rest:
        raise CommandError(400, USAGE)
    return Command(action)


def _number(action, text):
    try:
        value = float(text)
    except ValueError:
        raise CommandError(400, USAGE) from None
    if action == "dim":
        if not 0 <= value <= 100:
            raise CommandError(400, "Brightness Is 0 To 100")
        return round(value)
    if not 0 < value <= MAX_PULSE:
        raise CommandError(400, "Pulse Is 0 To 3600 Seconds")
    return value


def _from_json(text):
    try:
        document = json.loads(text)
    except ValueError:
        raise CommandError(400, "Malformed JSON") from None
    if not isinstance(document, dict):
        raise CommandError(400, "Malformed JSON")
    state = document.get("state")
    brightness = document.get("brightness")
    if brightness is not None and (isinstance(brightness, bool)
                                   or not isinstance(brightness, (int, float))):
        raise CommandError(400, "Brightness Is 0 To 100")
    if state is None and brightness is None:
        raise CommandError(400, 'Use {"state": "ON"|"OFF"|"TOGGLE", "brightness": 0-100}')
    if brightness is not None and (state is None or str(state).upper() == "ON"):
        return Command("dim", _number("dim", str(brightness)))
    if not isinstance(state, str) or state.upper() not in ("ON", "OFF", "TOGGLE"):
        raise CommandError(400, 'Use {"state": "ON"|"OFF"|"TOGGLE", "brightness": 0-100}')
    return Command(state.lower())


def _from_dmp(text):
    try:
        document = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise CommandError(400, "Malformed DMP") from None
    command = document.find("command") if document.tag == "dmp" else None
    if command is None or not command.text:
        raise CommandError(400, "Use <dmp><command>ON</command></dmp>")
    return parse_words(command.text)
