"""The MQTT bridge: every device's state and every event on a broker, commands from it, and
Home Assistant discovery (paho-mqtt 2.x).

Topics, under `[mqtt] base_topic` (`<base>`):
- `<base>/<device>`: the device's state, retained JSON (`{"state": "open", "changed": ...,
  "seq": ...}`; lights and relays `"ON"`/`"OFF"`, dimmable lights a `brightness` 0-100);
- `<base>/<device>/set`: commands in the language of MESSAGE and DO (commands.py): text
  (`on`, `dim 40`), Home Assistant's JSON (`{"state": "ON", "brightness": 40}`) or DMP XML;
- `<base>/<device>/event`: events, not retained, each with an `event_type`: `ring` (a
  doorbell press), `registered`, `unregistered`, `registration_failed`, `command_refused`;
- `<base>/registration`: the SIP registrations, retained;
- `<base>/availability`: `online` once connected, `offline` on a clean stop and, as the
  broker's last will, when the agent vanishes; retained.

Every state and event goes through the outbox (outbox.py) and out with QoS 1, in order:
while the broker is away they wait there (on disk, so a restart loses none), and the
connection is tried again with a backoff of 1 s doubling to 60 s, each wait drawn from
its upper half. The SIP side never waits for MQTT.

paho's network loop runs on the agent's event loop (its socket callbacks and
`loop_read`/`loop_write`/`loop_misc`), so its callbacks run on the loop thread too; only
the blocking connect (name lookup, TCP, TLS) runs in a worker thread. A fresh client per
connection keeps paho from sending again what the outbox sends itself.
"""

import asyncio
import functools
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as paho

from ..redact import printable
from .homeassistant import Discovery
from .outbox import Message, Outbox

log = logging.getLogger(__name__)

WINDOW = 20  # messages of the outbox in flight at once
BACKOFF_FIRST = 1.0  # seconds before the first retry, doubling...
BACKOFF_LIMIT = 60.0  # ... up to this; each wait is drawn from the upper half
STABLE = 60.0  # seconds a connection must last before its loss counts as a first failure
CONNACK_WAIT = 10.0  # seconds from TCP connected to the broker's CONNACK
CLOSE_WAIT = 1.0  # seconds a stop waits for the broker to take the last messages
OUTBOX_FILE = "mqtt-outbox.jsonl"


def state_payload(device, status):
    """The retained state of `device` (its `status()` is `status`)."""
    payload = {key: value for key, value in status.items() if key not in ("type", "uri")}
    if device.type in ("light", "relay"):
        payload["state"] = status["state"].upper()
    if device.type == "light":
        dimmable = getattr(device, "dimmable", False)
        payload["color_mode"] = "brightness" if dimmable else "onoff"
        if not dimmable:
            payload.pop("brightness", None)
    return payload


def _guarded(callback):
    """paho raises again what a callback raises, in the middle of reading a packet, which
    is then read again at every wake-up: log it here instead, and carry on."""

    @functools.wraps(callback)
    def guarded(self, *args):
        try:
            return callback(self, *args)
        except Exception:
            log.exception("MQTT: %s failed", callback.__name__)
            return None

    return guarded


def retry_delay(failures, random):
    """Seconds before connecting again after `failures` failures in a row: 1 s doubling
    to 60 s, drawn from the upper half (`random()` in [0, 1)), so that agents that lost
    one broker together do not all come back at once."""
    limit = min(BACKOFF_LIMIT, BACKOFF_FIRST * 2 ** min(failures - 1, 16))
    return limit * (0.5 + random() / 2)


def _now():
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _dumps(payload):
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


class MqttBridge:
    def __init__(self, config, agent_name, devices, specs, instance, state_dir=None,
                 command=None, random=random.random):
        """`config` is [mqtt]; `devices` the agent's dict of devices (read, never
        changed); `specs` their [[devices]] entries; `instance` the agent's stored UUID
        (Home Assistant's device id); `state_dir` where the outbox is kept (None: memory
        only); `command(name, payload)` carries out a `/set` and returns None, or the
        reason it was refused."""
        self.config = config
        self.base = config.base_topic
        self.client_id = config.client_id or agent_name
        self.port = config.port or (8883 if config.tls else 1883)
        self.devices = devices
        self.specs = list(specs)
        self.command = command
        self.random = random
        self.discovery = Discovery(config.discovery_prefix, self.base, instance, agent_name)
        path = os.path.join(state_dir, OUTBOX_FILE) if state_dir and config.persist else None
        self.outbox = Outbox(config.queue, path)
        self.connected = False
        self.last_error = None
        self.published = 0  # outbox messages the broker acknowledged
        self.commands = 0  # /set commands carried out
        self.registration_summary = None  # the last payload of <base>/registration
        self._client = None
        self._attached = False  # the client's socket is watched by the loop
        self._inflight = {}  # mid -> Message of the outbox
        self._sent = set()  # those Messages
        self._configs = {}  # discovery config topic -> payload, as last published
        self._loop = None
        self._loop_thread = None
        self._task = None
        self._lost = None  # set when the connection ends
        self._misc = None  # the one-second timer of paho's housekeeping
        self._connack_timer = None
        self._since = None  # when the connection came up (loop time)
        self._retry_at = None
        self._closing = False

    # -- life ------------------------------------------------------------------------------

    async def start(self, loop):
        """Take what a previous run left in the outbox, and connect in the background."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        kept = self.outbox.load()
        if kept:
            log.info("MQTT: %d message(s) kept from before, sent once the broker has us", kept)
        self._task = loop.create_task(self._run())

    async def close(self):
        """Say `offline`, wait briefly for the broker to take what is in flight,
        disconnect, and keep what it has not taken on disk."""
        if self._loop is None or self._closing:
            return
        self._closing = True
        if self.connected:
            info = self._client.publish(self.base + "/availability", "offline", qos=1,
                                        retain=True)
            deadline = self._loop.time() + CLOSE_WAIT
            while (self._inflight or not info.is_published()) and self.connected \
                    and self._loop.time() < deadline:
                await asyncio.sleep(0.01)
            if self.connected:
                self._client.disconnect()
                while self.connected and self._loop.time() < deadline + CLOSE_WAIT:
                    await asyncio.sleep(0.01)
        self._detach()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # a bug: say so, and still keep the messages
                log.exception("MQTT connection task failed")
        self.outbox.save()
        await self.outbox.flush()
        if len(self.outbox):
            log.info("MQTT: %d message(s) not delivered yet; kept for the next start",
                     len(self.outbox))

    # -- what the agent reports ----------------------------------------------------------

    def device_changed(self, name, event, status):
        """Device `name` reported `event` with `status`: its state, and for a doorbell
        press a `ring` event."""
        device = self.devices.get(name)
        if device is None:
            return
        self._add(Message("%s/%s" % (self.base, name), _dumps(state_payload(device, status)),
                          retain=True))
        if event == "press":
            self.event(name, "ring", seq=status.get("seq"))

    def event(self, name, event_type, **fields):
        """A non-retained event on `<base>/<name>/event`."""
        payload = dict(fields, event_type=event_type, time=_now())
        self._add(Message("%s/%s/event" % (self.base, name), _dumps(payload)))

    def registration_changed(self, name, status, summary):
        """Device `name`'s registration moved to `status` (its status() entry);
        `summary` lists every device's entry now."""
        if status["registered"] and status["last_error"] is None:
            self.event(name, "registered", expires_in=status["expires_in"])
        elif status["last_error"] is not None and not status["registered"]:
            self.event(name, "registration_failed", error=status["last_error"])
        elif status["state"] == "unregistered":
            self.event(name, "unregistered")
        self.registrations(summary)

    def registrations(self, summary):
        """The retained `<base>/registration`, when it says something new."""
        states = {entry["device"]: "registered" if entry["registered"] else entry["state"]
                  for entry in summary}
        errors = {entry["device"]: entry["last_error"] for entry in summary
                  if entry["last_error"]}
        registered = sum(1 for state in states.values() if state == "registered")
        overall = "registered" if states and registered == len(states) \
            else "partly registered" if registered \
            else "failing" if errors else "unregistered"
        payload = _dumps({"state": overall, "devices": states, "errors": errors})
        if payload != self.registration_summary:
            self.registration_summary = payload
            self._add(Message(self.base + "/registration", payload, retain=True))

    def update(self, specs):
        """The [[devices]] of a reloaded config: a new device's state is published, a
        removed one's cleared, and discovery follows."""
        before = {spec.name for spec in self.specs}
        after = {spec.name for spec in specs}
        self.specs = list(specs)
        for name in before - after:
            self._add(Message("%s/%s" % (self.base, name), "", retain=True))
        for name in after - before:
            device = self.devices.get(name)
            if device is not None:
                self._add(Message("%s/%s" % (self.base, name),
                                  _dumps(state_payload(device, device.status())), retain=True))
        if self.connected:
            self._publish_discovery()

    def status(self):
        now = self._loop.time() if self._loop is not None else 0.0
        return {
            "broker": "%s:%d" % (self.config.host, self.port),
            "tls": self.config.tls,
            "connected": self.connected,
            "up_for": round(now - self._since) if self.connected else None,
            "queued": len(self.outbox),
            "published": self.published,
            "dropped": self.outbox.dropped,
            "commands": self.commands,
            "last_error": self.last_error,
            "retry_in": None if self._retry_at is None or self.connected
            else max(0, round(self._retry_at - now)),
        }

    # -- the connection ------------------------------------------------------------------

    async def _run(self):
        failures = 0
        while not self._closing:
            self._lost = asyncio.Event()
            self._since = None  # set by a CONNACK that accepts us
            error = await self._connect()
            if error is None:
                await self._lost.wait()
                if self._closing:
                    return
                if self._since is not None and self._loop.time() - self._since >= STABLE:
                    failures = 0  # a connection that lasted: its loss is a first failure
                error = self.last_error
            failures += 1
            delay = retry_delay(failures, self.random)
            self._retry_at = self._loop.time() + delay
            if failures == 1:
                log.warning("MQTT broker %s:%d: %s; trying again in %.1f s, %d message(s) "
                            "kept meanwhile", self.config.host, self.port, error, delay,
                            len(self.outbox))
            else:
                log.debug("MQTT broker %s:%d: %s; next try in %.1f s", self.config.host,
                          self.port, error, delay)
            await asyncio.sleep(delay)

    async def _connect(self):
        """Connect a fresh client; None once its socket is watched (CONNACK follows), else
        what went wrong."""
        try:
            client = self._new_client()  # reads the TLS files: a bad one is an error here
            self._client = client
            await asyncio.to_thread(client.connect, self.config.host, self.port,
                                    self.config.keepalive)
        except (OSError, ssl.SSLError, ValueError) as error:
            self.last_error = getattr(error, "strerror", None) or str(error) \
                or type(error).__name__
            return self.last_error
        self._attached = True
        sock = client.socket()
        # A state and an event of one edge go out back to back: no Nagle wait between.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock, self._readable)
        if client.want_write():
            self._loop.add_writer(sock, self._writable)
        self._misc = self._loop.call_later(1.0, self._housekeeping)
        self._connack_timer = self._loop.call_later(CONNACK_WAIT, self._no_connack)
        return None

    def _new_client(self):
        config = self.config
        # reconnect_on_failure: paho would connect again by itself, blocking, inside a read.
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv311, clean_session=True,
                             reconnect_on_failure=False)
        client.will_set(self.base + "/availability", "offline", qos=1, retain=True)
        if config.username is not None:
            client.username_pw_set(config.username, config.password.reveal()
                                   if config.password is not None else None)
        if config.tls:
            client.tls_set(ca_certs=config.ca, certfile=config.certificate,
                           keyfile=config.key)
        client.max_inflight_messages_set(WINDOW + 80)  # ours, plus discovery and birth
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    # -- paho on the event loop ------------------------------------------------------------

    @_guarded
    def _readable(self):
        self._client.loop_read()

    @_guarded
    def _writable(self):
        self._client.loop_write()

    @_guarded
    def _housekeeping(self):
        self._misc = None
        if self._attached:
            self._client.loop_misc()
        if self._attached:
            self._misc = self._loop.call_later(1.0, self._housekeeping)

    def _no_connack(self):
        self._connack_timer = None
        if self._attached and not self.connected:
            self.last_error = "no CONNACK within %.0f s" % CONNACK_WAIT
            self._detach()
            self._lost.set()

    def _on_register_write(self, client, userdata, sock):
        if threading.get_ident() != self._loop_thread:  # the connect, in its worker
            return  # the loop adds the writer once the connect returns
        if client is self._client and self._attached:
            self._loop.add_writer(sock, self._writable)

    def _on_unregister_write(self, client, userdata, sock):
        if threading.get_ident() == self._loop_thread and client is self._client \
                and self._attached:
            self._loop.remove_writer(sock)

    def _on_socket_close(self, client, userdata, sock):
        if threading.get_ident() == self._loop_thread and client is self._client:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    def _detach(self):
        """Stop watching the client's socket (and close it when it is still open)."""
        client = self._client
        for timer in (self._misc, self._connack_timer):
            if timer is not None:
                timer.cancel()
        self._misc = self._connack_timer = None
        if client is None or not self._attached:
            return
        self._attached = False
        sock = client.socket()
        if sock is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            sock.close()
        self._went_down()

    def _went_down(self):
        if self.connected:
            self.connected = False
            self.outbox.save()  # from now on the file holds every message
        self._inflight.clear()
        self._sent.clear()

    @_guarded
    def _on_connect(self, client, userdata, flags, reason, properties):
        if client is not self._client:
            return
        if self._connack_timer is not None:
            self._connack_timer.cancel()
            self._connack_timer = None
        if reason.is_failure:
            self.last_error = "refused: %s" % reason
            if "authori" in str(reason).lower() or "credentials" in str(reason).lower():
                self.last_error += "; check mqtt.username and mqtt.password"
            return  # the broker closes the connection: _on_disconnect follows
        self.connected = True
        self._since = self._loop.time()
        self._retry_at = None
        kept = len(self.outbox)
        log.info("MQTT connected to %s:%d%s", self.config.host, self.port,
                 "; sending %d kept message(s)" % kept if kept else "")
        self.last_error = None
        client.subscribe([(self.base + "/+/set", 1),
                          (self.config.discovery_prefix + "/status", 1)])
        client.publish(self.base + "/availability", "online", qos=1, retain=True)
        if self.config.discovery:
            client.subscribe("%s/+/%s/+/config" % (self.config.discovery_prefix,
                                                    self.discovery.node), 1)
            self._configs = {}
            self._publish_discovery()
        self._publish_states()
        self._pump()

    @_guarded
    def _on_disconnect(self, client, userdata, flags, reason, properties):
        if client is not self._client:
            return
        if self.connected and not self._closing:
            self.last_error = "connection lost"
        self._attached = False
        for timer in (self._misc, self._connack_timer):
            if timer is not None:
                timer.cancel()
        self._misc = self._connack_timer = None
        self._went_down()
        if self._lost is not None:
            self._lost.set()

    @_guarded
    def _on_publish(self, client, userdata, mid, reason, properties):
        message = self._inflight.pop(mid, None)
        if message is None or client is not self._client:
            return
        self._sent.discard(message)
        self.outbox.done(message)
        self.published += 1
        self._pump()

    @_guarded
    def _on_message(self, client, userdata, message):
        topic = message.topic
        if topic == self.config.discovery_prefix + "/status":
            if message.payload == b"online" and self.config.discovery:
                log.info("Home Assistant is online: publishing discovery again")
                self._configs = {}
                self._publish_discovery()
            return
        if self.discovery.owns(topic):
            self._stale_config(topic, message.payload)
            return
        prefix, suffix = self.base + "/", "/set"
        if topic.startswith(prefix) and topic.endswith(suffix):
            name = topic[len(prefix):-len(suffix)]
            if "/" not in name and not message.retain:
                self._set(name, message.payload)

    # -- what goes out -------------------------------------------------------------------

    def _add(self, message):
        """Queue `message` and send what may go. While the bridge closes (a reload that
        changes [mqtt]) it is still queued: the file hands it to the next bridge."""
        if self._loop is None:
            return
        self.outbox.add(message, durable=not self.connected or self._closing)
        if not self._closing:
            self._pump()

    def _pump(self):
        """Send the outbox's messages in order, WINDOW at a time."""
        if not self.connected:
            return
        client = self._client
        for message in self.outbox:
            if len(self._inflight) >= WINDOW:
                return
            if message in self._sent:
                continue
            info = client.publish(message.topic, message.payload, qos=1,
                                  retain=message.retain)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                return  # the connection is going: the rest waits for the next
            self._inflight[info.mid] = message
            self._sent.add(message)

    def _publish_discovery(self):
        """Publish the configs that changed; clear those of devices gone."""
        configs = self.discovery.configs(
            self.specs, self.registration_summary is not None) if self.config.discovery \
            else {}
        for topic, payload in configs.items():
            if self._configs.get(topic) != payload:
                self._client.publish(topic, payload, qos=1, retain=True)
        for topic in self._configs:
            if topic not in configs:
                self._client.publish(topic, b"", qos=1, retain=True)
        self._configs = configs

    def _publish_states(self):
        """Each device's state now, unless it is the last one waiting in the outbox: the
        broker may have lost its retained messages, and what waits may be from before a
        restart of the agent (a door that changed meanwhile, lights back at `initial`)."""
        waiting = {message.topic: message.payload for message in self.outbox
                   if message.retain}
        for name, device in self.devices.items():
            topic = "%s/%s" % (self.base, name)
            payload = _dumps(state_payload(device, device.status()))
            if waiting.get(topic) != payload:
                self.outbox.add(Message(topic, payload, retain=True))
        topic = self.base + "/registration"
        if self.registration_summary is not None \
                and waiting.get(topic) != self.registration_summary:
            self.outbox.add(Message(topic, self.registration_summary, retain=True))

    def _stale_config(self, topic, payload):
        """A retained config of our node that this config no longer has (a device removed
        while the agent was not running): cleared, with its state."""
        if not payload or topic in self._configs:
            return
        log.info("removing the Home Assistant config %s: no such device now", topic)
        self._client.publish(topic, b"", qos=1, retain=True)
        name = topic.split("/")[-2]
        if name not in self.devices:  # after any state of it still waiting
            self._add(Message("%s/%s" % (self.base, name), "", retain=True))

    # -- commands --------------------------------------------------------------------------

    def _set(self, name, payload):
        started = time.monotonic()
        refused = self.command(name, payload) if self.command is not None \
            else "no commands taken"
        if refused is None:
            self.commands += 1
            log.debug("MQTT command to %s took %.2f ms", name,
                      (time.monotonic() - started) * 1000)
            return
        log.warning("MQTT command to %s refused: %s", printable(name), refused)
        if name in self.devices:
            self.event(name, "command_refused", reason=refused)
