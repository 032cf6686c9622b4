"""Home Assistant MQTT discovery: the retained config that makes each device an entity.

One Home Assistant device stands for the agent (identified by its stored instance id, so
renaming the agent keeps its entities); each of our devices becomes entities of it:

| our device | entity | |
| --- | --- | --- |
| door | `binary_sensor`, device_class door | on = open |
| light | `light`, JSON schema | brightness (0-100) when dimmable |
| relay | `switch` | and a `button` that pulses it, when it has a `pulse` |
| doorbell | `event`, device_class doorbell | event type `ring` |
| camera | `binary_sensor`, device_class running | on = streaming (a call watches it) |
| (the agent) | `sensor`, diagnostic | the SIP registration state |

Config topics are `<prefix>/<component>/<node>/<object>/config`, with `node` the agent's
`node_id` and `object` the device name (with a suffix for a second entity of one device).
"""

import json

from .. import __version__

MANUFACTURER = "sip-appliance"
REGISTRATION = "registration"  # the object id of the registration sensor


def node_id(instance):
    """The agent's node id: stable, made of the characters discovery topics allow."""
    return "sip_appliance_" + instance.replace("-", "")[:12]


class Discovery:
    """The discovery configs of one agent's devices, for the MQTT bridge to publish."""

    def __init__(self, prefix, base, instance, agent_name):
        self.prefix = prefix
        self.base = base  # the bridge's base topic
        self.node = node_id(instance)
        self.device = {
            "identifiers": [self.node],
            "name": agent_name,
            "manufacturer": MANUFACTURER,
            "model": "SIP appliance agent",
            "sw_version": __version__,
        }
        self.availability = {
            "availability_topic": base + "/availability",
            "payload_available": "online",
            "payload_not_available": "offline",
        }

    def topic(self, component, object_id):
        return "%s/%s/%s/%s/config" % (self.prefix, component, self.node, object_id)

    def configs(self, specs, registering):
        """{config topic: payload (text)} for the [[devices]] `specs`, and the
        registration sensor when `registering` (a [proxy] is configured)."""
        out = {}
        for spec in specs:
            for component, object_id, config in self._entities(spec):
                out[self.topic(component, object_id)] = self._payload(object_id, config)
        if registering:
            out[self.topic("sensor", REGISTRATION)] = self._payload(REGISTRATION, {
                "name": "SIP registration",
                "state_topic": self.base + "/registration",
                "value_template": "{{ value_json.state }}",
                "json_attributes_topic": self.base + "/registration",
                "entity_category": "diagnostic",
                "icon": "mdi:phone-check",
            })
        return out

    def owns(self, topic):
        """Whether `topic` is a config topic of this agent's node."""
        parts = topic.split("/")
        return topic.startswith(self.prefix + "/") and len(parts) >= 4 \
            and parts[-3] == self.node and parts[-1] == "config"

    # -- inside --------------------------------------------------------------------------

    def _entities(self, spec):
        state = "%s/%s" % (self.base, spec.name)
        command = state + "/set"
        label = spec.name.replace("_", " ").replace("-", " ").capitalize()
        control = getattr(spec, "mqtt_control", False)
        if spec.type == "door":
            yield "binary_sensor", spec.name, {
                "name": label, "device_class": "door", "state_topic": state,
                "value_template": "{{ value_json.state }}", "payload_on": "open",
                "payload_off": "closed", "json_attributes_topic": state,
            }
        elif spec.type == "light" and not control:
            # Home Assistant's light needs a command topic: without MQTT control it is a
            # read-only binary sensor.
            yield "binary_sensor", spec.name, {
                "name": label, "state_topic": state, "value_template": "{{ value_json.state }}",
                "payload_on": "ON", "payload_off": "OFF", "device_class": "light",
            }
        elif spec.type == "light":
            config = {
                "name": label, "schema": "json", "state_topic": state, "command_topic": command,
                "supported_color_modes": ["brightness" if spec.dimmable else "onoff"],
            }
            if spec.dimmable:
                config["brightness"] = True
                config["brightness_scale"] = 100
            yield "light", spec.name, config
        elif spec.type == "relay":
            config = {
                "name": label, "state_topic": state, "value_template": "{{ value_json.state }}",
                "state_on": "ON", "state_off": "OFF", "payload_on": "ON", "payload_off": "OFF",
            }
            if control:
                config["command_topic"] = command
            else:  # read-only: a binary sensor shows it without a dead switch
                yield "binary_sensor", spec.name, dict(config, payload_on="ON",
                                                       payload_off="OFF")
                return
            yield "switch", spec.name, config
            if spec.pulse:
                yield "button", spec.name + "_pulse", {
                    "name": "%s pulse" % label, "command_topic": command,
                    "payload_press": "pulse",
                }
        elif spec.type == "camera":
            yield "binary_sensor", spec.name, {
                "name": label, "device_class": "running", "state_topic": state,
                "value_template": "{{ value_json.state }}", "payload_on": "streaming",
                "payload_off": "idle", "json_attributes_topic": state,
            }
        elif spec.type == "doorbell":
            # Its event topic carries other events too (registration, calls): those
            # render empty, which Home Assistant ignores.
            yield "event", spec.name, {
                "name": label, "device_class": "doorbell", "event_types": ["ring"],
                "state_topic": state + "/event",
                "value_template": "{{ value if value_json.event_type == 'ring' else '' }}",
            }

    def _payload(self, object_id, config):
        config = dict(config, unique_id="%s_%s" % (self.node, object_id),
                      object_id="%s_%s" % (self.device["name"], object_id),
                      device=self.device,
                      origin={"name": MANUFACTURER, "sw_version": __version__},
                      **self.availability)
        if "command_topic" in config:
            config["qos"] = 1
        return json.dumps(config, sort_keys=True)
