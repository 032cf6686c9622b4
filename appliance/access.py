"""Who may watch or control which device: the [[users]] of the config, each with the
devices it names, proven by digest authentication (sip/auth.py).

`authorize(event, device)` is the one check every request to a device passes before the
device does anything: it returns the user name, or None after answering the request itself
(401 with a challenge; 403 for a user the device is not shared with, or one that keeps
sending a wrong password; 503 with Retry-After for a source that failed MAX_FAILURES times
within a minute). A source in `[agent] trust` (networks of the home's own; none by default)
skips the challenge. No password, digest or Authorization header is ever logged.
"""

import collections
import ipaddress
import logging

from .redact import printable
from .sip.auth import MISSING, STALE, DigestServer

log = logging.getLogger(__name__)

# A source that fails this often within FAILURE_WINDOW seconds gets 503 with Retry-After
# until the window ends, without its credentials being checked: guessing slows to a crawl,
# and other sources carry on.
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
MAX_SOURCES = 1024  # sources remembered at once (the oldest forgotten first)
TRUSTED = "trusted "  # authorize() names a trusted source's request "trusted ADDRESS"


class Access:
    def __init__(self, stack, users, realm, respond, algorithms=("SHA-256", "MD5"),
                 uri_for=None, trust=()):
        """`users` are the config's [[users]]; `respond(event, status, reason, fields,
        stateless=True)` answers a request statelessly (a refusal keeps no transaction:
        see Endpoint.respond) and logs it; `algorithms` are offered in that order; `uri_for(name)`
        is a device's address of record, which a client behind a proxy signs."""
        self.stack = stack
        self.uri_for = uri_for
        self.respond = respond
        self.server = None
        self.users = {}
        self._settings = None  # (realm, algorithms) of the server
        self._failures = collections.OrderedDict()  # source address -> (count, since)
        self.update(users, realm, algorithms, trust)

    def update(self, users, realm, algorithms=("SHA-256", "MD5"), trust=()):
        """Take the users, realm, algorithms and trusted networks of a (reloaded) config.
        Nonces already given out stay good unless the realm or the algorithms change;
        the count of failures per source is kept. Returns the names of the users that
        are gone or have a new password."""
        self.trust = [ipaddress.ip_network(network) for network in trust]
        before = self.users
        self.users = {user.name: user for user in users}
        changed = {name for name, user in before.items()
                   if name not in self.users or self.users[name].password != user.password}
        settings = (realm, tuple(name.upper() for name in algorithms))
        if settings != self._settings:
            self._settings = settings
            self.server = DigestServer(realm, self.stack.endpoint.token,
                                       algorithms=settings[1])
        return changed

    def allowed(self, user, device):
        """Whether `user`, as authorize() returned it, may still use `device`."""
        if user.startswith(TRUSTED):
            return self._trusted(user[len(TRUSTED):])
        entry = self.users.get(user)
        return entry is not None and device in entry.devices

    def authorize(self, event, device):
        request = event.request
        source = event.source[1]
        if self.trust and self._trusted(source):
            return TRUSTED + source
        now = self.stack.now() / 1000.0
        count, since = self._failures.get(source, (0, now))
        if now - since >= FAILURE_WINDOW:
            count, since = 0, now
        if count >= MAX_FAILURES:
            wait = max(1, int(since + FAILURE_WINDOW - now + 0.999))
            self.respond(event, 503, "Too Many Failed Attempts", [("Retry-After", wait)],
                         stateless=True)
            return None
        targets = (self.uri_for(device),) if self.uri_for is not None else ()
        result = self.server.check(request, self.stack.now(), self._password, targets)
        if result.ok:
            self._failures.pop(source, None)
            user = self.users[result.username]
            if device in user.devices:
                return user.name
            log.warning("%s may not use %s (its devices: %s)", user.name, device,
                        ", ".join(user.devices) or "none")
            self.respond(event, 403, "Not Allowed For This Device", (), stateless=True)
            return None
        if result.outcome not in (MISSING, STALE):  # stale: the right password, an old nonce
            log.warning("%s to %s from %s refused: %s (user %r)", request.method, device,
                        source, result.reason, printable(result.username or ""))
            self._failed(source, count + 1, since)
        status, name, values = self.server.rejection(result, self.stack.now())
        self.respond(event, status, None, [(name, value) for value in values], stateless=True)
        return None

    def _failed(self, source, count, since):
        self._failures.pop(source, None)
        self._failures[source] = (count, since)
        if count == MAX_FAILURES:
            log.warning("%s: %d failed attempts; refusing it for %.0f s", source, count,
                        FAILURE_WINDOW)
        while len(self._failures) > MAX_SOURCES:
            self._failures.popitem(last=False)

    def _trusted(self, source):
        try:
            address = ipaddress.ip_address(source.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.trust)

    def _password(self, username):
        user = self.users.get(username)
        return user.password.reveal() if user is not None else None
