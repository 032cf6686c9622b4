"""The agent: devices as SIP URIs, who may do what, and where events go.

It owns the SIP stack and the devices. A request reaches it only after the core's checks;
the agent finds the device from the Request-URI's user part (404 when there is none) and
answers. Device changes arrive on gpiozero's threads and cross into the event loop at one
place, `_device_changed`.
"""

import asyncio
import dataclasses
import json
import logging
from datetime import UTC, datetime

from . import __version__, commands, packages
from .access import Access
from .alerts import Alerts
from .calls import Calls
from .devices import build_devices
from .devices.base import DeviceError
from .devices.build import build_device, pin_factory_for, reconfigure, rewired
from .devices.outputs import Output
from .instance import instance_id
from .nat import NatProbe
from .net.stack import SipStack, format_address
from .notifier import Notifier
from .redact import mask_uri_passwords, printable, printable_message
from .registrations import Registrations
from .sip.endpoint import Capabilities
from .sip.errors import ParseError
from .sip.events import (
    MessageDropped,
    RequestCancelled,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    SourceLimited,
    TransactionTimedOut,
    TransportFailed,
)
from .sip.limits import Limits
from .sip.stun import parse_message as parse_stun

log = logging.getLogger(__name__)

USER_AGENT = "sip-appliance/%s" % __version__
STUN_WAIT = 1.0  # seconds the first registration waits for the public address

# What every device URI answers with today; methods join as their features land.
ALLOW = ("OPTIONS", "ACK", "CANCEL", "SUBSCRIBE", "MESSAGE", "DO", "INVITE", "BYE", "INFO")
# What each kind of device serves (the core's Allow, above, is what any of them does).
OUTPUT_ALLOW = ("OPTIONS", "ACK", "CANCEL", "SUBSCRIBE", "MESSAGE", "DO")  # lights, relays
SENSOR_ALLOW = ("OPTIONS", "ACK", "CANCEL", "SUBSCRIBE")  # doors, doorbells
INTERCOM_ALLOW = ("OPTIONS", "ACK", "CANCEL", "INVITE", "BYE", "INFO")  # intercoms, cameras
CALLED = ("intercom", "camera")  # the device types that take calls
ACCEPT = ("application/sdp", *commands.CONTENT_TYPES, "application/dtmf-relay",
          "application/dtmf",  # these two: DTMF in SIP INFO; the next: a keyframe request
          "application/media_control+xml")


class Agent:
    def __init__(self, config, pin_factory=None, path=None):
        """`path` names the config file, for `appliance status`."""
        self.config = config
        if pin_factory is None:
            pin_factory = pin_factory_for(config.agent.simulate)
        self.pin_factory = pin_factory
        self.devices = build_devices(config.devices, pin_factory)
        self.capabilities = Capabilities(allow=ALLOW, accept=ACCEPT,
                                         allow_events=packages.PACKAGES)
        self._options_fields = self._capability_fields()
        listen = [(spec.transport, spec.host, spec.port) for spec in config.agent.listen]
        # agent.domain names the devices; Via and Contact carry where we can be reached.
        self.stack = SipStack(listen, self._on_event, self.capabilities,
                              user_agent=USER_AGENT, tls=config.tls,
                              limits=_limits(config))
        self.registrations = self._registrations_for(config)
        self.access = Access(self.stack, config.users, _realm(config), self._respond,
                             config.agent.digest_algorithms, self.device_uri,
                             config.agent.trust)
        self.notifier = Notifier(self.stack, self.devices, self.access, self._respond,
                                 self.contact_for, self.device_uri)
        self._replies = {d.name: getattr(d, "reply", False) for d in config.devices}
        self.alerts = Alerts(self.stack, self._built(config), self.device_uri, config.proxy,
                             self.registrations)
        self.nat = self._nat_for(config)
        self.mqtt = self._mqtt_for(config)
        self.mdns = None  # made at start: it needs the ports bound
        self.calls = Calls(self)
        self.stack.stun_handler = self._stun
        self.loop = None
        self.started = None
        self.counters = {"requests": 0, "rejected": 0, "dropped": 0}
        self.loaded = {"path": path, "loaded": _now(), "reloads": 0, "error": None}

    def _built(self, config):
        """The [[devices]] entries that have a device (on reload, one that could not be
        set up has none)."""
        return [d for d in config.devices if d.name in self.devices]

    def _registrations_for(self, config):
        if config.proxy is None:
            self.stack.pong_handler = self.stack.closed_handler = None
            return None
        registrations = Registrations(
            self.stack, config.proxy, self._built(config), config.agent.domain,
            keepalive=config.nat.keepalive if config.nat else 0,
            instance_id=instance_id(config.agent.state_dir) if config.proxy.outbound
            else None,
            on_address_change=self._local_address_changed,
            on_change=self._registration_changed,
        )
        self.stack.pong_handler = registrations.pong
        self.stack.closed_handler = registrations.connection_closed
        return registrations

    def _mqtt_for(self, config):
        if config.mqtt is None:
            return None
        from .bridges.mqtt import MqttBridge  # paho only when there is a broker

        return MqttBridge(config.mqtt, config.agent.name, self.devices, self._built(config),
                          instance_id(config.agent.state_dir), config.agent.state_dir,
                          command=self._mqtt_command)

    def _nat_for(self, config):
        if config.nat is None or not config.nat.stun:
            return None
        return NatProbe(self.stack, config.nat.stun, config.nat.keepalive,
                        self._public_address_changed)

    async def start(self):
        self.loop = asyncio.get_running_loop()
        for device in self.devices.values():
            device.on_change = self._device_changed_threadsafe
        await self.stack.start()
        self.notifier.start(self.loop)
        self.alerts.start(self.loop)
        self.calls.start(self.loop)
        if self.mqtt is not None:
            await self.mqtt.start(self.loop)
            if self.registrations is not None:
                self.mqtt.registrations(self.registrations.status())
        if self.nat is not None:
            await self.nat.start(self.loop)
            if self.registrations is not None:
                # The Contacts carry the public address: worth a moment's wait at start.
                await self.nat.wait_public(STUN_WAIT)
        if self.registrations is not None:
            await self.registrations.start()
        await self._start_mdns(self.config)
        self.started = self.loop.time()

    async def _start_mdns(self, config):
        if not config.mdns.enabled:
            return
        from .bridges.mdns import Mdns  # zeroconf only when it is on

        self.mdns = Mdns(config.mdns, config.agent.name, self.stack.bound, _methods_of,
                         _events_of)
        await self.mdns.start(self._built(config))

    def _public_address_changed(self, public):
        if self.registrations is not None:
            self.registrations.set_public(public)

    def _local_address_changed(self):
        if self.nat is not None:
            self.nat.probe_now()

    def _stun(self, data, source):
        """STUN on the SIP socket: keep-alive answers from the registrar, or the STUN
        server's answer about our public address."""
        try:
            message = parse_stun(data)
        except ParseError as error:
            log.debug("dropped a malformed STUN message from %s: %s", source[0], error.reason)
            return
        if self.registrations is not None and self.registrations.stun_response(message):
            return
        if self.nat is not None:
            self.nat.handle(message)

    async def close(self):
        if self.mdns is not None:
            await self.mdns.close()  # goodbye first: nobody calls a device that is going
        await self.calls.close()
        await self.alerts.close()
        await self.notifier.close()
        if self.nat is not None:
            self.nat.close()
        if self.registrations is not None:
            await self.registrations.stop()
        if self.mqtt is not None:
            await self.mqtt.close()  # last: it tells of the unregistering too
        await self.stack.close()
        for device in self.devices.values():
            device.close()

    # -- reload --------------------------------------------------------------------------

    async def reload(self, config):
        """Take a config read again (SIGHUP, `systemctl reload`) without a restart.

        A device whose entry is unchanged keeps its pins, state, subscriptions and
        registration. One whose wiring changed (pin, type, levels) is built again, and an
        output keeps its state across that; other settings (notify, reply, pulse,
        credentials) apply in place. A device that left the config ends its subscriptions
        (reason=noresource) and unregisters; a new one registers. Users, trusted networks
        and digest algorithms apply at once, and a watcher no longer allowed a device is
        dropped (reason=rejected). A changed [proxy] registers every device again; keys
        that only a restart can apply (`RESTART_KEYS`) keep their running values, with a
        warning. Returns what changed, as logged."""
        old = self.config
        config, pending = _keep_restart_keys(old, config)
        for key in pending:
            log.warning("config reload: %s changed; restart the agent to apply it", key)
        before = {d.name: d for d in old.devices}
        after = {d.name: d for d in config.devices}
        self.stack.endpoint.set_limits(_limits(config))
        changed_users = self.access.update(config.users, _realm(config),
                                           config.agent.digest_algorithms,
                                           config.agent.trust)
        rewire = [name for name in self.devices
                  if name in after and rewired(before[name], after[name])]
        previous = {}  # name -> the last status of a device closed here
        for name in [n for n in self.devices if n not in after] + rewire:
            previous[name] = self._close_device(name)
        devices = {}
        for spec in config.devices:
            device = self.devices.get(spec.name)
            if device is not None:
                reconfigure(device, spec)
            else:
                try:
                    device = build_device(spec, self.pin_factory, previous.get(spec.name))
                except Exception as error:  # a pin in use, a factory that fails
                    log.error("config reload: cannot set up %s: %s; it stays out until "
                              "the config is fixed and reloaded", spec.name, error)
                    continue
            if device is not None:
                devices[spec.name] = device
        added = [name for name in devices if name not in before]
        # Gone for its watchers too: a device that became one that takes calls (no events).
        gone = {name: status for name, status in previous.items()
                if name not in devices or devices[name].type in CALLED}
        self.devices.clear()  # the same dict the notifier reads
        self.devices.update(devices)
        self.notifier.reconsider(gone, lambda user, name: user not in changed_users
                                 and self.access.allowed(user, name))
        self.calls.reconsider(config)
        for name, device in devices.items():
            device.on_change = self._device_changed_threadsafe
            if name in previous:
                device.follow(previous[name])
        await self._reload_network(old, config)
        await self._reload_mqtt(old, config)
        if old.mdns != config.mdns or old.agent.name != config.agent.name:
            if self.mdns is not None:
                await self.mdns.close()
                self.mdns = None
            await self._start_mdns(config)
        elif self.mdns is not None:
            await self.mdns.update(self._built(config))
        self.alerts.update(self._built(config), config.proxy, self.registrations)
        self._replies = {d.name: getattr(d, "reply", False) for d in config.devices}
        self.config = config  # last: a reload that fails part way is tried whole again
        changes = {"added": added, "removed": [name for name in gone if name not in devices],
                   "rebuilt": [n for n in rewire if n in devices], "restart": pending}
        self.loaded.update(loaded=_now(), reloads=self.loaded["reloads"] + 1, error=None)
        log.info("config reloaded: %s", "; ".join(
            "%s %s" % (what, ", ".join(names)) for what, names in changes.items() if names)
            or "no device changed")
        return changes

    def _close_device(self, name):
        """Close device `name` and return its last status. An input's is read once its
        worker has stopped (no event can follow it); a relay that was pulsing counts as
        off, as the pulse ends with it."""
        device = self.devices.pop(name)
        device.on_change = None
        status = device.status() if isinstance(device, Output) else None
        if status is not None and device.pulsing:
            status = dict(status, state="off")
        device.close()
        return status if status is not None else device.status()

    def reload_failed(self, problem):
        """A config read again could not be used: the running one stays."""
        self.loaded["error"] = problem

    async def _reload_mqtt(self, old, config):
        """A changed [mqtt] (or agent name) connects again; else discovery follows."""
        if old.mqtt == config.mqtt and old.agent.name == config.agent.name:
            if self.mqtt is not None:
                self.mqtt.update(self._built(config))
            return
        if self.mqtt is not None:
            await self.mqtt.close()
        self.mqtt = self._mqtt_for(config)
        if self.mqtt is not None:
            await self.mqtt.start(self.loop)
            if self.registrations is not None:
                self.mqtt.registrations(self.registrations.status())

    async def _reload_network(self, old, config):
        """Registrations and STUN after a reload."""
        if old.nat != config.nat:
            if self.nat is not None:
                self.nat.close()
            self.nat = self._nat_for(config)
            if self.nat is not None:
                await self.nat.start(self.loop)
            elif self.registrations is not None:
                self.registrations.set_public(None)
        keepalive = (old.nat.keepalive if old.nat else 0,
                     config.nat.keepalive if config.nat else 0)
        if old.proxy != config.proxy or old.agent.domain != config.agent.domain \
                or keepalive[0] != keepalive[1]:
            if self.registrations is not None:
                await self.registrations.stop()
            self.registrations = self._registrations_for(config)
            if self.registrations is not None:
                if self.nat is not None and self.nat.public is not None:
                    self.registrations.set_public(self.nat.public)
                await self.registrations.start()
        elif self.registrations is not None:
            self.registrations.update(self._built(config))

    # -- addresses -----------------------------------------------------------------------

    def host_part(self):
        """The host of the device URIs: the configured domain, else the agent's mDNS name
        when mDNS runs, else the first listener."""
        if self.config.agent.domain:
            return self.config.agent.domain
        if self.mdns is not None and self.mdns.zeroconf is not None:
            return "%s.local:%d" % (self.mdns.host, self.stack.bound[0][2])
        transport, _, port = self.stack.bound[0]
        local_host = self.stack.endpoint.local[transport][0]
        return "%s:%d" % (local_host, port)

    def device_uri(self, name):
        return "sip:%s@%s" % (name, self.host_part())

    def contact_for(self, name, transport):
        """Where a device is reached over `transport`: the Contact it registers, when it
        registers over that transport (the public address behind a NAT), else the
        listener's address."""
        registrations = self.registrations
        if registrations is not None and registrations.destination is not None \
                and registrations.destination[0] == transport:
            return registrations.contact(name)
        host, port = self.stack.endpoint.local[transport]
        return "sip:%s@%s:%d%s" % (name, host, port,
                                   "" if transport == "udp" else ";transport=" + transport)

    # -- SIP -----------------------------------------------------------------------------

    def _on_event(self, event):
        if isinstance(event, RequestReceived):
            self._request(event)
        elif isinstance(event, RequestRejected):
            self.counters["rejected"] += 1
            self._log_transaction(event.request, event.source, event.response)
        elif isinstance(event, SourceLimited):
            log.warning("%s sends requests faster than %d/s: dropping them until it slows "
                        "down", event.source[1], self.stack.endpoint.limits.rate)
        elif isinstance(event, MessageDropped):
            self.counters["dropped"] += 1
            log.debug("dropped %s from %s: %s", _describe(event.data), _peer(event.source),
                      event.reason)
        elif isinstance(event, (ResponseReceived, TransactionTimedOut, TransportFailed)):
            if self.registrations is not None and self.registrations.handle(event):
                return
            if not self.calls.handle(event) and not self.alerts.handle(event):
                self.notifier.handle(event)
        elif isinstance(event, RequestCancelled):
            log.info("INVITE %s cancelled -> 487 (Call-ID %s)",
                     mask_uri_passwords(event.request.uri_text),
                     printable(event.request.call_id or "-"))
            self.calls.cancelled(event)

    def _request(self, event):
        request = event.request
        self.counters["requests"] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("received from %s:\n%s", _peer(event.source), printable_message(request))
        if self.calls.owns(event.dialog):
            self.calls.request(event)  # ACK, BYE, re-INVITE, INFO in a call
            return
        if event.transaction is None:
            return  # an ACK within a dialog: nothing to answer
        user = request.uri.user
        device = self.devices.get(user) if user is not None else None
        method = request.method
        if device is None:
            self._respond(event, 404, stateless=True)
        elif method == "OPTIONS":
            self._respond(event, 200, fields=self._options_fields, stateless=True)
        elif method == "SUBSCRIBE" and device.type not in CALLED:
            self.notifier.subscribe(event, user)
        elif method in ("MESSAGE", "DO") and isinstance(device, Output):
            self._control(event, device)
        elif method == "INVITE" and device.type in CALLED and event.dialog is None:
            self.calls.invite(event, user)
        elif event.dialog is not None and method in ("BYE", "INFO", "INVITE"):
            self._respond(event, 481)  # a call that has ended
        else:
            # A method the core lets through but this device does not serve.
            allow = OUTPUT_ALLOW if isinstance(device, Output) else INTERCOM_ALLOW \
                if device.type in CALLED else SENSOR_ALLOW
            self._respond(event, 405, fields=(("Allow", ", ".join(allow)),))

    def respond(self, event, status, reason=None, fields=()):
        """Answer a request (and log it): for the calls."""
        self._respond(event, status, reason, fields)

    def spec(self, name):
        """Device `name`'s [[devices]] entry, or None."""
        return next((d for d in self.config.devices if d.name == name), None)

    def _control(self, event, device):
        """MESSAGE or DO to a light or relay: who asks, what for, and the pin moved before
        the 200 (RFC 3428: a MESSAGE's 200 has no body; a DO's carries the state)."""
        request = event.request
        user = self.access.authorize(event, device.name)
        if user is None:
            return  # answered: nothing moves for an unauthenticated request
        if not request.body:
            self._respond(event, 400, "Missing Body; " + commands.USAGE)
            return
        try:
            command = commands.parse(request.get("content-type"), request.body)
            status = device.apply(command)
        except commands.CommandError as error:
            self._respond(event, error.status, error.reason, error.fields)
            return
        except DeviceError as error:
            self._respond(event, 400, str(error).capitalize())
            return
        log.info("%s: %s by %s -> %s", device.name, command.action
                 + ("" if command.value is None else " %g" % command.value), user,
                 status["state"])
        if request.method == "DO":
            body = json.dumps(dict(status, device=device.name), sort_keys=True).encode()
            self._respond(event, 200, fields=(("Content-Type", commands.JSON),), body=body)
        else:
            self._respond(event, 200)
            if self._replies.get(device.name):
                self.alerts.reply(device.name, str(request.from_.uri), status)

    def _capability_fields(self):
        fields = [
            ("Allow", ", ".join(ALLOW)),
            ("Accept", ", ".join(ACCEPT)),
            ("Accept-Encoding", "identity"),
            ("Accept-Language", "en"),
        ]
        # Supported may be empty (RFC 3261 section 20.37); Allow-Events may not.
        fields.append(("Supported", ", ".join(self.capabilities.supported)))
        if self.capabilities.allow_events:
            fields.append(("Allow-Events", ", ".join(self.capabilities.allow_events)))
        return fields

    def _respond(self, event, status, reason=None, fields=(), body=b"", to_tag=None,
                 stateless=False):
        """Answer a request and log it; `stateless` for an answer that changes nothing and
        may be given again (see Endpoint.respond)."""
        response = self.stack.respond(event.transaction, status, reason, fields, body, to_tag,
                                      stateless)
        self._log_transaction(event.request, event.source, response)
        return response

    def _log_transaction(self, request, source, response):
        log.info("%s %s from %s -> %d %s (Call-ID %s)", request.method,
                 mask_uri_passwords(request.uri_text),
                 _peer(source), response.status, printable(response.reason),
                 printable(request.call_id or "-"))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sent to %s:\n%s", _peer(source), printable_message(response))

    # -- devices -------------------------------------------------------------------------

    def _device_changed_threadsafe(self, device, event):
        """gpiozero calls this on its own thread: hop onto the loop, with the status of
        this very event (a second one may follow before the loop runs)."""
        self.loop.call_soon_threadsafe(self._device_changed, device, event, device.status())

    def _device_changed(self, device, event, status):
        if self.devices.get(device.name) is not device:
            return  # from a device a reload has closed since
        log.info("%s (%s): %s", device.name, device.type, event)
        self.notifier.device_changed(device.name, status)
        # A doorbell that calls the household says "missed visitor" if nobody answers,
        # not one alert per press.
        if not (event == "press" and self.calls.doorbell(device.name)):
            self.alerts.device_changed(device.name, event, status)
        if self.mqtt is not None:
            self.mqtt.device_changed(device.name, event, status)

    def _registration_changed(self, name, status):
        if self.mqtt is not None:
            self.mqtt.registration_changed(name, status, self.registrations.status())

    def _mqtt_command(self, name, payload):
        """A command from `<base>/<name>/set`, trusted as far as the broker authenticates
        its publisher. Returns None once done, else why it was refused."""
        device = self.devices.get(name)
        spec = next((d for d in self.config.devices if d.name == name), None)
        if device is None or not isinstance(device, Output) or spec is None:
            return "no light or relay named %r" % name
        if not spec.mqtt_control:
            return "MQTT control of %s is off (mqtt_control = false)" % name
        text = payload.lstrip()
        content_type = commands.JSON if text.startswith(b"{") else \
            commands.DMP if text.startswith(b"<") else commands.TEXT
        try:
            command = commands.parse(content_type, payload)
            status = device.apply(command)
        except commands.CommandError as error:
            return error.reason
        except DeviceError as error:
            return str(error)
        log.info("%s: %s by MQTT -> %s", name, command.action
                 + ("" if command.value is None else " %g" % command.value), status["state"])
        if command.action == "status":
            self.mqtt.device_changed(name, "status", status)
        return None

    def simulate(self, name, state):
        if not self.config.agent.simulate:
            raise ValueError("the agent runs on real pins; `sim` needs simulate = true")
        device = self.devices.get(name)
        if device is None:
            raise ValueError("no device %r; devices: %s" % (name, ", ".join(self.devices)))
        device.simulate(state)
        return device.status()

    def status(self):
        """The agent as `appliance status --json` shows it."""
        return {
            "agent": {
                "name": self.config.agent.name,
                "version": __version__,
                "uptime": round(self.loop.time() - self.started, 1) if self.started else 0,
                "listen": ["%s:%s:%d" % bound for bound in self.stack.bound],
                "simulate": self.config.agent.simulate,
            },
            "devices": {
                name: dict(device.status(), uri=self.device_uri(name),
                           **self.calls.device_status(name))
                for name, device in self.devices.items()
            },
            "registrations": self.registrations.status() if self.registrations else [],
            "nat": self._nat_status(),
            "subscriptions": self.notifier.status(),
            "alerts": self.alerts.status(),
            "calls": self.calls.status(),
            "recent_calls": list(self.calls.history),  # the last 20 that ended, and why
            "mqtt": self.mqtt.status() if self.mqtt is not None else None,
            "mdns": self.mdns.status() if self.mdns is not None else None,
            "config": dict(self.loaded),
            "sip": dict(
                self.counters,
                limited=self.stack.endpoint.limited,
                limited_sources=self.stack.endpoint.limited_sources(self.stack.now()),
                refused=self.stack.endpoint.refused,
                transactions=len(self.stack.endpoint.server_transactions)
                + len(self.stack.endpoint.client_transactions),
            ),
        }

    def _nat_status(self):
        if self.config.nat is None and self.registrations is None:
            return None
        status = self.nat.status() if self.nat else {"stun": None, "public": None,
                                                     "error": None}
        flow = self.registrations.flow_status() if self.registrations else None
        status.update(flow or {"flow": None, "keepalive": None})
        return status


# Keys a running agent cannot change: the sockets, the control socket, where its state
# lives, real or simulated pins, and TLS.
def _limits(config):
    """The SIP endpoint's limits: `[agent] rate_limit` a second per source, twice that at
    once; the tables' bounds are the core's."""
    rate = config.agent.rate_limit
    return Limits(rate=rate, burst=max(1, 2 * rate))


RESTART_KEYS = ("agent.listen", "agent.control", "agent.state_dir", "agent.simulate", "tls")


def _keep_restart_keys(old, new):
    """`new` with the running values of RESTART_KEYS, and the keys that differed."""
    pending = [key for key in RESTART_KEYS if _value(old, key) != _value(new, key)]
    kept = {key.split(".")[1]: _value(old, key) for key in pending if "." in key}
    config = dataclasses.replace(new, agent=dataclasses.replace(new.agent, **kept))
    if "tls" in pending:
        config = dataclasses.replace(config, tls=old.tls)
    return config, pending


def _value(config, key):
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _methods_of(spec):
    """The methods device `spec` serves, as its mDNS record says."""
    if spec.type in CALLED:
        return INTERCOM_ALLOW
    return OUTPUT_ALLOW if spec.type in ("light", "relay") else SENSOR_ALLOW


def _events_of(spec):
    return () if spec.type in CALLED else packages.PACKAGES


def _realm(config):
    return config.agent.domain or config.agent.name


def _now():
    return datetime.now(UTC).isoformat(timespec="seconds")


def _peer(source):
    return "?" if source is None else format_address(source)


def _describe(data):
    return "%d bytes" % len(data) if data else "message"
