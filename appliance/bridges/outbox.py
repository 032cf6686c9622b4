"""The MQTT bridge's outbox: every message, in the order it was made, until the broker has
acknowledged it (QoS 1).

It is bounded: past `limit` messages, retained states that a later message on the same
topic supersedes go first (nothing is lost by it: the broker would keep only the later
one), and only then the oldest messages.

While the broker is away each message is also appended to a file (JSON lines), so that a
restart of the agent, or a power cut, loses none of them; once the broker has every
message the file is emptied. The file is written by a thread of its own, in the order the
writes were asked for, with one fsync per batch: an SD card's fsync takes tens of
milliseconds, which the SIP side must not wait for.
"""

import asyncio
import collections
import json
import logging
import os
import queue
import threading

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
        self._file_lines = 0  # lines the file has (or will have, once written)
        self._writer = _Writer(path) if path is not None else None

    def __len__(self):
        return len(self.messages)

    def __iter__(self):
        return iter(self.messages)

    def load(self):
        """Take the messages a previous run left in the file (oldest first); returns how
        many. A line that cannot be read (a write cut short by a power cut) is skipped
        with a warning, and the file written again without it."""
        if self.path is None:
            return 0
        try:
            with open(self.path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as error:
            log.warning("cannot read the MQTT messages kept in %s: %s", self.path, error)
            return 0
        damaged = bool(text) and not text.endswith("\n")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                message = Message(entry["topic"], entry["payload"], bool(entry["retain"]))
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: not a kept MQTT message; skipped", self.path, number)
                damaged = True
                continue
            self.messages.append(message)
        loaded = len(self.messages)
        self._trim()
        self._file_lines = loaded
        if damaged or len(self.messages) < loaded:
            self.save()
        return len(self.messages)

    def add(self, message, durable=False):
        """Queue `message` last; with `durable` (the broker is away), write it to the file
        too, after what it holds already."""
        self.messages.append(message)
        self._trim()
        if not durable or self._writer is None:
            return
        if self._file_lines < len(self.messages) - 1:
            self.save()  # the file lacks messages sent while connected: all of it again
        elif self._file_lines >= 2 * self.limit:
            self.save()  # trimmed often meanwhile: keep the file near the bound
        else:
            self._writer.append(_line(message))
            self._file_lines += 1

    def done(self, message):
        """The broker has `message`; once it has them all, the file is emptied."""
        if self.messages and self.messages[0] is message:
            self.messages.popleft()
        else:
            try:
                self.messages.remove(message)
            except ValueError:
                pass  # dropped over the limit meanwhile
        if not self.messages and self._file_lines and self._writer is not None:
            self._writer.replace("")
            self._file_lines = 0

    def save(self):
        """Have the file hold every queued message (the broker went away, or the agent
        stops): replaced whole, atomically."""
        if self._writer is not None and (self.messages or self._file_lines):
            self._writer.replace("".join(_line(message) for message in self.messages))
            self._file_lines = len(self.messages)

    def written(self, timeout=5.0):
        """Block until the file holds what was asked of it (or `timeout` seconds)."""
        if self._writer is not None:
            self._writer.wait(timeout)

    async def flush(self, timeout=5.0):
        """written(), waited for in a worker thread."""
        if self._writer is not None:
            await asyncio.to_thread(self._writer.wait, timeout)

    # -- inside --------------------------------------------------------------------------

    def _trim(self):
        """Drop what is over the limit in one pass: superseded retained states, oldest
        first, then the oldest messages."""
        excess = len(self.messages) - self.limit
        if excess <= 0:
            return
        later = set()
        superseded = []  # indices, newest first
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.retain and message.topic in later:
                superseded.append(index)
            later.add(message.topic)
        drop = set(superseded[-excess:])  # the oldest of them
        kept = [m for index, m in enumerate(self.messages) if index not in drop]
        del kept[:max(0, len(kept) - self.limit)]
        self.dropped += len(self.messages) - len(kept)
        self.messages = collections.deque(kept)


class _Writer:
    """The outbox file's writer thread: appends and whole replacements, in order."""

    def __init__(self, path):
        self.path = path
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._pending = 0  # jobs asked for and not done yet
        self._done = threading.Condition()
        self._warned = False

    def append(self, text):
        self._put(("append", text))

    def replace(self, text):
        self._put(("replace", text))

    def wait(self, timeout):
        """Until every job asked for so far is done (or `timeout` seconds)."""
        with self._done:
            self._done.wait_for(lambda: self._pending == 0, timeout)

    def _put(self, job):
        with self._done:
            self._pending += 1
        self._queue.put(job)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mqtt-outbox",
                                            daemon=True)
            self._thread.start()

    def _run(self):
        while True:
            jobs = [self._queue.get()]
            while True:  # a batch: what was asked meanwhile, with one fsync
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # A replacement makes what was asked before it moot.
            last = max((i for i, (kind, _) in enumerate(jobs) if kind == "replace"),
                       default=None)
            try:
                if last is not None:
                    text = jobs[last][1] + "".join(t for _, t in jobs[last + 1:])
                    self._replace(text)
                else:
                    self._append("".join(text for _, text in jobs))
            except OSError as error:
                if not self._warned:
                    self._warned = True
                    log.warning("cannot keep MQTT messages in %s (%s): they are kept in "
                                "memory only; set agent.state_dir to a writable directory",
                                self.path, error.strerror or error)
            with self._done:
                self._pending -= len(jobs)
                self._done.notify_all()

    def _append(self, text):
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())

    def _replace(self, text):
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        temporary = self.path + ".new"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


def _line(message):
    return json.dumps({"topic": message.topic, "payload": message.payload,
                       "retain": message.retain}, separators=(",", ":")) + "\n"
