"""The event packages a device URI serves to SUBSCRIBE (RFC 6665), and their bodies.

- `presence` (RFC 3856), with a PIDF body (RFC 3863): what a stock softphone shows for a
  buddy. A door's basic status mirrors it (`open`/`closed`); every other device is `open`
  (there and working). A note says what happened last and when.
- `appliance`, this project's own package: a JSON object per event, e.g.
  `{"device": "frontdoor", "type": "door", "state": "open", "changed":
  "2026-11-21T10:32:05+00:00", "seq": 17}`. `seq` grows by one per event of the device, so a
  watcher sees any it missed; a doorbell's `state` is `pressed` or `idle`, with its
  `presses`.

`body(package, uri, name, status)` gives (content type, bytes) for a device's status.

Written in the MicroPython subset, like the SIP core: the firmware's devices send the same
bodies. A board without the date and time zone support of CPython shows the time of day
of `changed` as it is written.
"""

import json

try:
    from datetime import datetime
except ImportError:  # MicroPython
    datetime = None

PRESENCE = "presence"
APPLIANCE = "appliance"
PACKAGES = (PRESENCE, APPLIANCE)
CONTENT_TYPES = {PRESENCE: "application/pidf+xml", APPLIANCE: "application/json"}


def body(package, uri, name, status):
    """(content type, bytes) of the NOTIFY body for device `name` (address of record
    `uri`) in `status` (its `status()`)."""
    if package == PRESENCE:
        return CONTENT_TYPES[PRESENCE], presence(uri, name, status)
    return CONTENT_TYPES[APPLIANCE], appliance(name, status)


def appliance(name, status):
    """The JSON object, keys sorted, without blanks (one way on CPython and MicroPython)."""
    fields = {"device": name}
    fields.update(status)
    return ("{" + ",".join(json.dumps(key) + ":" + _json(fields[key])
                           for key in sorted(fields)) + "}").encode()


def _json(value):
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(key)) + ":" + _json(value[key])
                              for key in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json(item) for item in value) + "]"
    return json.dumps(value)


def presence(uri, name, status):
    kind, state = status["type"], status["state"]
    basic = state if kind == "door" else "open"
    note = _note(kind, state, status.get("changed"))
    timestamp = status.get("changed")
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="%s">\n' % _escape(uri, True),
        '  <tuple id="%s">\n' % _escape(name, True),
        "    <status><basic>%s</basic></status>\n" % basic,
        "    <note>%s</note>\n" % _escape(note),
    ]
    if timestamp:
        parts.append("    <timestamp>%s</timestamp>\n" % _escape(timestamp))
    parts += ["  </tuple>\n", "  <note>%s</note>\n" % _escape(note), "</presence>\n"]
    return "".join(parts).encode()


def _note(kind, state, changed):
    when = _clock(changed)
    if kind == "door":
        return "Door %s%s" % (state, " since " + when if when else "")
    if kind == "doorbell":
        return "Rang at %s" % when if when else "Not rung yet"
    return "%s %s%s" % (kind[:1].upper() + kind[1:], state, " since " + when if when else "")


def _clock(changed):
    """The local time of day of an ISO 8601 time, e.g. 10:32:05 (on a board without time
    zones, the time as written)."""
    if not changed:
        return None
    if datetime is not None:
        try:
            return datetime.fromisoformat(changed).astimezone().strftime("%H:%M:%S")
        except ValueError:
            return None
        except (AttributeError, TypeError, NotImplementedError):
            pass  # MicroPython's datetime: no local time zone
    time = changed.partition("T")[2]
    return time[:8] if len(time) >= 8 and time[2] == ":" and time[5] == ":" else None


def _escape(text, attribute=False):
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if attribute else text
