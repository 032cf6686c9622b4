"""The local control socket: newline-delimited JSON over a UNIX socket.

One request per line, one reply per line:

    {"command": "status"}                                  -> {"ok": true, "status": {...}}
    {"command": "sim", "device": "frontdoor", "state": "open"} -> {"ok": true, "device": {...}}

A reply with "ok": false carries "error". The socket is created mode 0600 in a directory
of its own: it is as private as the agent's user.
"""

import asyncio
import json
import logging
import os
import stat

from .errors import ApplianceError

log = logging.getLogger(__name__)

MAX_LINE = 65536


class ControlError(ApplianceError):
    """The control socket cannot be reached or answered with an error."""


class ControlServer:
    def __init__(self, agent, path):
        self.agent = agent
        self.path = path
        self.server = None
        self._clients = {}  # writer -> the task serving that connection

    async def start(self):
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            _check_private(directory)
        if os.path.lexists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise ControlError(
                    "%s exists and is not a socket; remove it or pass --control PATH"
                    % self.path
                )
            if await _answers(self.path):
                raise ControlError(
                    "another agent is running with control socket %s; stop it or pass "
                    "--control PATH" % self.path
                )
            os.unlink(self.path)  # left over from an agent that did not stop cleanly
        old_umask = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(
                self._serve, self.path, limit=MAX_LINE
            )
        finally:
            os.umask(old_umask)

    async def close(self):
        if self.server is not None:
            self.server.close()
            # Hang up on connected clients: Python 3.12+ wait_closed() waits for them, and
            # a task still reading when the loop ends logs a CancelledError traceback.
            for writer in list(self._clients):
                writer.close()
            if self._clients:
                await asyncio.wait(list(self._clients.values()), timeout=1.0)
            await self.server.wait_closed()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    async def _serve(self, reader, writer):
        self._clients[writer] = asyncio.current_task()
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _reply(writer, {"ok": False, "error": "request line too long"})
                    break
                if not line:
                    break
                await _reply(writer, self.handle(line))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.pop(writer, None)
            writer.close()

    def handle(self, line):
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as error:
            return {"ok": False, "error": "bad request: %s" % error}
        command = request.get("command")
        try:
            if command == "status":
                return {"ok": True, "status": self.agent.status()}
            if command == "sim":
                device = self.agent.simulate(str(request.get("device")),
                                             str(request.get("state")))
                return {"ok": True, "device": device}
        except (ValueError, ApplianceError) as error:
            return {"ok": False, "error": str(error)}
        return {"ok": False, "error": "unknown command %r; commands: status, sim" % command}


def _check_private(directory):
    """The socket's directory must be ours and closed to others: in a shared place like
    /tmp, another user could have made it first to catch the socket."""
    info = os.stat(directory)
    shared = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX  # sticky, like /tmp
    if info.st_uid not in (os.geteuid(), 0) or shared:
        raise ControlError(
            "the control socket's directory %s belongs to another user or is writable by "
            "others; remove it, or pass --control PATH in a directory of your own" % directory
        )


async def _reply(writer, obj):
    writer.write(json.dumps(obj).encode() + b"\n")
    await writer.drain()


async def _answers(path):
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


async def request(path, obj, timeout=5.0):
    """Send one request to a running agent and return its reply (ControlError if none)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    except (TimeoutError, OSError) as error:
        raise ControlError(
            "cannot reach the agent at %s (%s); is `appliance run` running? Pass --control "
            "PATH if it uses another socket" % (path, getattr(error, "strerror", None) or error)
        ) from None
    try:
        writer.write(json.dumps(obj).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line:
        raise ControlError("the agent closed the control connection without answering")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "the agent refused the request"))
    return reply
