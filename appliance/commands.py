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

Written in the MicroPython subset, like the SIP core: the firmware ships this module and
its lights obey the same words. So the DMP body is read by `_from_dmp` below (a root
`dmp` element holding one `command` element of text), not by an XML library.
"""

import json

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
    except UnicodeError:
        text = None
    if text is None:
        raise CommandError(400, "Body Is Not UTF-8")
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
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")):
        raise CommandError(400, USAGE)
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
        document = None
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
    """The words of `<dmp><command>ON</command></dmp>`: an optional XML declaration and
    comments, a root `dmp` (attributes such as xmlns, and a prefix, allowed) whose one
    child element is `command`, holding text with the five predefined entities."""
    rest = _skip_misc(text)
    root, rest = _start_tag(rest)
    if root is None:
        raise CommandError(400, "Malformed DMP")
    if _local(root) != "dmp":
        raise CommandError(400, "Use <dmp><command>ON</command></dmp>")
    child, rest = _start_tag(_skip_misc(rest))
    if child is None or _local(child) != "command":
        raise CommandError(400, "Use <dmp><command>ON</command></dmp>")
    words, rest = _text_until(rest, child)
    rest = _skip_misc(_end_tag(_skip_misc(rest), root))
    if rest:
        raise CommandError(400, "Malformed DMP")
    words = _unescape(words)
    if not words.strip():
        raise CommandError(400, "Use <dmp><command>ON</command></dmp>")
    return parse_words(words)


def _skip_misc(text):
    """`text` after blanks, an XML declaration and comments."""
    while True:
        text = text.lstrip()
        if text.startswith("<?"):
            end = text.find("?>")
            close = 2
        elif text.startswith("<!--"):
            end = text.find("-->", 4)
            close = 3
        else:
            return text
        if end < 0:
            raise CommandError(400, "Malformed DMP")
        text = text[end + close:]


def _start_tag(text):
    """(qualified name, what follows) of the start tag `text` opens with, name None when it
    does not open with one. An empty-element tag reads as a start tag and its end tag."""
    end = text.find(">")
    if not text.startswith("<") or end < 0:
        return None, text
    empty = text[end - 1] == "/"
    parts = text[1:end - 1 if empty else end].split()
    name = parts[0] if parts else ""
    if not name or not (name[0].isalpha() or name[0] == "_"):
        return None, text
    rest = text[end + 1:]
    return name, "</%s>%s" % (name, rest) if empty else rest


def _text_until(text, name):
    """(the text before `</name>`, what follows that end tag); only text may come first."""
    close = "</" + name
    end = text.find(close)
    if end < 0 or "<" in text[:end]:
        raise CommandError(400, "Malformed DMP")
    return text[:end], _end_tag(text[end:], name)


def _end_tag(text, name):
    close = "</" + name
    end = text.find(">")
    if not text.startswith(close) or end < 0 or text[len(close):end].strip():
        raise CommandError(400, "Malformed DMP")
    return text[end + 1:]


def _local(name):
    return name.rpartition(":")[2]


_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def _unescape(text):
    for entity, character in _ENTITIES:
        text = text.replace(entity, character)
    return text
