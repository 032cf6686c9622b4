"""The MQTT bridge's outbox: every message, in the order it was made, until the broker has
acknowledged it (QoS 1).

It is bounded: past `limit` messages, a retained state that a later message on the same
topic supersedes goes first (nothing is lost by it: the broker would keep only the later
one), and only then the oldest message. While the broker is away, each message is also
appended to a file (JSON lines, fsynced: a door event matters more than SD card wear at
that rate), and the file is rewritten whenever the messages and the file part ways, so a
restart of the agent, or a power cut, loses none of them; once the broker has every
message the file is emptied.
"""

import collections
import json
import logging
import os

log = logging.getLogger(__name__)


class Message:
    __slots__ = ("topic", "payload", "retain")

    def __init__(self, topic, payload, retain=False):
        self.topic = topic
        self.payload = payload  # text
        self.retain = retain

    def __repr__(self):
        return "Message(%r, %r, retain=%r)" % (self.topic, self.payload, self.retain)


class Outbox:
    def __init__(self, limit, path=None):
        """`path`: the file kept while the broker is away (None: memory only)."""
        self.limit = limit
        self.path = path
        self.messages = collections.deque()
        self.dropped = 0  # since the start: over the limit
        self._file_lines = 0  # messages in the file (0: empty or none)
        self._warned = False  # about a file that cannot be written

    def __len__(self):
        return len(self.messages)

    def __iter__(self):
        return iter(self.messages)

    def load(self):
        """Take the messages a previous run left in the file (oldest first); returns how
        many. A line that cannot be read is skipped with a warning."""
        if self.path is None:
            return 0
        try:
            with open(self.path, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as error:
            log.warning("cannot read the MQTT messages kept in %s: %s", self.path, error)
            return 0
        loaded = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                message = Message(entry["topic"], entry["payload"], bool(entry["retain"]))
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: not a kept MQTT message; skipped", self.path, number)
                continue
            self.messages.append(message)
            loaded += 1
        self._trim()
        self._file_lines = loaded
        return loaded

    def add(self, message, durable=False):
        """Queue `message` last; with `durable` (the broker is away), write it to the file."""
        self.messages.append(message)
        trimmed = self._trim()
        if durable:
            if trimmed or self._file_lines != len(self.messages) - 1:
                self.save()
            else:
                self._append(message)

    def done(self, message):
        """The broker has `message`; once it has them all, the file is emptied."""
        if self.messages and self.messages[0] is message:
            self.messages.popleft()
        else:
            try:
                self.messages.remove(message)
            except ValueError:
                pass  # dropped over the limit meanwhile
        if not self.messages and self._file_lines:
            self._write([])

    def save(self):
        """Write every queued message to the file (the broker went away, or the agent
        stops): replaced whole, atomically."""
        if self.path is not None and (self.messages or self._file_lines):
            self._write(self.messages)

    # -- inside --------------------------------------------------------------------------

    def _trim(self):
        trimmed = 0
        while len(self.messages) > self.limit:
            self._drop_one()
            trimmed += 1
        if trimmed:
            self.dropped += trimmed
        return trimmed

    def _drop_one(self):
        later = set()
        superseded = None
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.retain and message.topic in later:
                superseded = index  # keep looking: the oldest such goes first
            later.add(message.topic)
        if superseded is None:
            self.messages.popleft()
        else:
            del self.messages[superseded]

    def _append(self, message):
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(_line(message))
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            self._cannot_write(error)
            return
        self._file_lines += 1

    def _write(self, messages):
        temporary = self.path + ".new"
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as file:
                file.write("".join(_line(message) for message in messages))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            self._cannot_write(error)
            return
        self._file_lines = len(messages)

    def _cannot_write(self, error):
        if not self._warned:
            self._warned = True
            log.warning("cannot keep MQTT messages in %s (%s): they are kept in memory only; "
                        "set agent.state_dir to a writable directory", self.path,
                        error.strerror or error)


def _line(message):
    return json.dumps({"topic": message.topic, "payload": message.payload,
                       "retain": message.retain}, separators=(",", ":")) + "\n"
