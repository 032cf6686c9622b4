"""Passwords that every user of the machine can read: a config file that holds some, or a
password file, readable by others (mode o+r).

`secret_warnings(path)` lists them as "key: problem; fix" lines, like the pin warnings:
the config works as it is, but a guest account or a compromised service on the same Pi
could read the door's passwords. The group may read (the install gives the service's
group read access); others may not.
"""

from __future__ import annotations

import os
import stat
import tomllib

PASSWORD = "password"
PASSWORD_FILE = "password_file"


def secret_warnings(path: str | None) -> list[str]:
    """The warnings for the config file at `path` (none without one, or when it cannot be
    read: loading it says why)."""
    if not path:
        return []
    try:
        with open(path, "rb") as file:
            raw = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    base = os.path.dirname(path)
    inline, files = [], []
    for key, table in _tables(raw):
        if isinstance(table.get(PASSWORD), str):
            inline.append(key + PASSWORD)
        if isinstance(table.get(PASSWORD_FILE), str):
            named = os.path.expandvars(table[PASSWORD_FILE])  # as the config reads it
            files.append((key + PASSWORD_FILE, os.path.join(base, named)))
    out = []
    mode = _mode(path)
    if inline and mode is not None and mode & stat.S_IROTH:
        out.append("%s: holds %s and every user of this machine can read it (mode %04o); "
                   "chmod o-r %s, or move the passwords to password_file entries"
                   % (path, ", ".join(inline), mode, path))
    for key, secret in files:
        mode = _mode(secret)
        if mode is not None and mode & stat.S_IROTH:
            out.append("%s: every user of this machine can read %s (mode %04o); chmod o-r %s"
                       % (key, secret, mode, secret))
    return out


def _tables(raw):
    """(key prefix, table) of each section and each [[users]] or [[devices]] entry."""
    for name, value in raw.items():
        if isinstance(value, dict):
            yield name + ".", value
        elif isinstance(value, list):
            for index, entry in enumerate(value):
                if isinstance(entry, dict):
                    yield "%s[%d]." % (name, index), entry


def _mode(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
