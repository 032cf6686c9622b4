"""The agent's RFC 5626 instance id: one UUID per installation, kept across restarts.

The registrar knows a device's binding by `+sip.instance` and `reg-id`; with the same
instance id after a restart, the new REGISTER replaces the old binding instead of adding
a second one that would ring a dead address until it expires. The id lives in
`<state_dir>/instance-id`, created on first use.
"""

import logging
import os
import uuid

log = logging.getLogger(__name__)

FILE_NAME = "instance-id"


def instance_id(state_dir):
    """The stored UUID (as text), created on first use. When the directory cannot be
    written, a fresh one for this run, with one warning."""
    path = os.path.join(state_dir, FILE_NAME)
    try:
        with open(path) as stored:
            return str(uuid.UUID(stored.read().strip()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        log.warning("unreadable instance id in %s (%s); writing a new one", path, error)
    value = str(uuid.uuid4())
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        temporary = path + ".new"
        with open(temporary, "w") as new:
            new.write(value + "\n")
            new.flush()
            os.fsync(new.fileno())  # an SD card losing power must not keep an empty file
        os.replace(temporary, path)
    except OSError as error:
        log.warning("cannot store the instance id in %s (%s); set agent.state_dir to a "
                    "writable directory, or each restart leaves a stale binding at the "
                    "registrar until it expires", state_dir, error.strerror or error)
    return value
