"""Text for people (log lines, status output) with credentials masked.

No password, digest response or Authorization header reaches a log: messages are printed
through `printable_message`, URIs through `mask_uri_passwords`.
"""

MASK = "********"
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")
_URI_END = ' \t<>"\r\n'


def mask_uri_passwords(text):
    """Replace the password of every `sip:user:password@host` in `text` with ********."""
    lower = text.lower()
    out = []
    pos = 0
    start = lower.find("sip", pos)
    while start >= 0:
        colon = start + 3 + (lower[start + 3 : start + 4] == "s")
        if lower[colon : colon + 1] != ":":
            start = lower.find("sip", start + 3)
            continue
        user_start = colon + 1
        end = user_start
        while end < len(text) and text[end] not in _URI_END and text[end] != "@":
            end += 1
        if end < len(text) and text[end] == "@":
            password_at = text.find(":", user_start, end)
            if password_at >= 0:
                out.append(text[pos : password_at + 1])
                out.append(MASK)
                pos = end
        start = lower.find("sip", end)
    out.append(text[pos:])
    return "".join(out)


def printable(text):
    """A value from the network made safe for one log line: control characters (a CR or
    LF could forge a line of its own) shown as escapes."""
    for ch in text:
        if ch < " " or ch == "\x7f":
            break
    else:
        return text
    return "".join(ch if " " <= ch != "\x7f" else "\\x%02x" % ord(ch) for ch in text)


def printable_message(message):
    """A SIP message as text for the debug log: credential headers and URI passwords
    masked, bodies shown as text where they decode."""
    lines = message.to_bytes().decode("utf-8", "replace").split("\r\n")
    out = []
    for line in lines:
        name, colon, _ = line.partition(":")
        if colon and name.strip().lower() in _CREDENTIAL_HEADERS:
            line = name + ": " + MASK
        out.append(mask_uri_passwords(line))
    return "\n".join(out)
