"""The agent as a systemd service: sd_notify(3) without libsystemd.

Under `Type=notify`, systemd passes NOTIFY_SOCKET (a UNIX datagram socket; "@name" is an
abstract one) and, with `WatchdogSec=`, WATCHDOG_USEC. The agent says READY=1 once it
serves, STATUS= lines with a summary, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around
a config reload, STOPPING=1 when it stops, and WATCHDOG=1 from its event loop every half
watchdog interval: a loop that hangs stops the pings, and systemd restarts the service.
Outside systemd (no NOTIFY_SOCKET) every call does nothing.
"""

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Service:
    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.address = environ.get("NOTIFY_SOCKET") or None
        if self.address is not None and self.address.startswith("@"):
            self.address = "\0" + self.address[1:]  # an abstract socket
        self.watchdog = None  # seconds between pings, when systemd watches
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog = int(usec) / 1e6 / 2
        self._socket = None
        self._timer = None
        self._warned = False

    @property
    def active(self):
        return self.address is not None

    def notify(self, *lines):
        """Send "KEY=value" lines to systemd; nothing without NOTIFY_SOCKET."""
        if self.address is None:
            return
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        try:
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as error:
            if not self._warned:  # systemd went away? say it once
                self._warned = True
                log.warning("cannot notify systemd at %s: %s", os.environ.get(
                    "NOTIFY_SOCKET"), error.strerror or error)

    def ready(self, status):
        self.notify("READY=1", "STATUS=" + status)

    def status(self, status):
        self.notify("STATUS=" + status)

    def reloading(self):
        self.notify("RELOADING=1",
                    "MONOTONIC_USEC=%d" % (time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                                           // 1000))

    def stopping(self):
        self.notify("STOPPING=1")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def start_watchdog(self, loop):
        """Ping systemd from `loop` every half WatchdogSec, for as long as it turns."""
        if self.watchdog is None or not self.active:
            return

        def ping():
            self.notify("WATCHDOG=1")
            self._timer = loop.call_later(self.watchdog, ping)

        ping()

    def close(self):
        if self._timer is not None:
            self._timer.cancel()
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def summary(status):
    """One line for systemctl status: devices registered, watchers, calls, MQTT."""
    registrations = status.get("registrations") or []
    parts = ["%d devices" % len(status.get("devices") or {})]
    if registrations:
        registered = sum(1 for r in registrations if r.get("registered"))
        parts.append("%d/%d registered" % (registered, len(registrations)))
    parts.append("%d watching" % len(status.get("subscriptions") or []))
    parts.append("%d in calls" % len(status.get("calls") or []))
    mqtt = status.get("mqtt")
    if mqtt is not None:
        parts.append("MQTT %s" % ("up" if mqtt.get("connected") else "down"))
    return ", ".join(parts)
