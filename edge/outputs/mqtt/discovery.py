"""Who this device is on the bus and what Home Assistant is told about it: client id, topics, discovery configs.

Pure functions of the settings and the client id (no network): the output publishes
:func:`discovery_configs` on every connect, :func:`remove_discovery` empties them, and
``tools/ha_check.py`` reads them to know which entities a real Home Assistant must show.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

from edge import __version__
from edge.outputs.mqtt.settings import MqttSettings

MACHINE_ID = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


def default_client_id(hostname: str | None = None, machine_id: tuple[Path, ...] = MACHINE_ID) -> str:
    """``<host name>-<first 8 hex digits of the machine id>``: unique per installed system, stable across boots.

    The host name alone is "raspberrypi" on every stock Pi, and a broker drops the older of two clients that
    share an id. Without a readable machine id, the host name alone.
    """
    hostname = hostname or socket.gethostname()
    for path in machine_id:
        digits = read_stripped(path).lower()
        if len(digits) >= 8 and all(c in "0123456789abcdef" for c in digits[:8]):
            return f"{hostname}-{digits[:8]}"
    return hostname


def node_id(client_id: str) -> str:
    """The client id as Home Assistant's discovery topics allow it: ``[a-zA-Z0-9_-]`` only."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", client_id) or "face_emotion"


class Topics:
    """Every topic of one device, from the settings and the client id."""

    def __init__(self, settings: MqttSettings, client_id: str):
        self.client_id = client_id
        self.node = node_id(client_id)
        self.base = f"{settings.topic_prefix}/{client_id}"
        self.state = f"{self.base}/state"
        self.events = f"{self.base}/events"
        self.health = f"{self.base}/health"
        self.availability = f"{self.base}/availability"
        self.image = f"{self.base}/image"
        self.discovery_prefix = settings.discovery_prefix

    def discovery(self, component: str, key: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{key}/config"


# (component, key, name, topic attribute, extra fields) of each Home Assistant entity.
ENTITIES: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    ("sensor", "faces", "Faces", "state",
     {"value_template": "{{ value_json.faces }}", "state_class": "measurement", "icon": "mdi:account-group"}),
    ("sensor", "emotion", "Emotion", "state",
     {"value_template": "{{ value_json.emotion or 'none' }}", "device_class": "enum", "icon": "mdi:emoticon",
      "json_attributes_template": "{{ {'confidence': value_json.emotion_confidence, 'track': value_json.track} "
                                  "| tojson }}"}),
    ("sensor", "gender", "Gender", "state",
     {"value_template": "{{ value_json.gender or 'none' }}", "device_class": "enum", "icon": "mdi:human",
      "json_attributes_template": "{{ {'confidence': value_json.gender_confidence, 'track': value_json.track} "
                                  "| tojson }}"}),
    ("sensor", "fps", "Frame rate", "health",
     {"value_template": "{{ value_json.fps }}", "unit_of_measurement": "fps", "state_class": "measurement",
      "entity_category": "diagnostic", "icon": "mdi:speedometer"}),
    ("sensor", "latency", "Latency", "health",
     {"value_template": "{{ value_json.ms_per_frame }}", "unit_of_measurement": "ms", "device_class": "duration",
      "state_class": "measurement", "entity_category": "diagnostic"}),
    ("binary_sensor", "someone", "Someone in view", "state",
     {"value_template": "{{ 'ON' if value_json.faces > 0 else 'OFF' }}", "payload_on": "ON", "payload_off": "OFF",
      "device_class": "occupancy"}),
)


# The optional image entity (publish_images): Home Assistant's MQTT image platform, raw JPEG bytes on image_topic.
IMAGE_NAMES = {"face": "Last face", "frame": "Last frame"}
IMAGE_ICONS = {"face": "mdi:face-recognition", "frame": "mdi:image-frame"}


def discovery_configs(topics: Topics, labels: dict[str, tuple[str, ...]],
                      image: str = "") -> dict[str, dict[str, Any]]:
    """topic -> Home Assistant discovery config, one device with the project's version.

    ``labels`` gives the ``options`` of the enum sensors (``emotion``,
    ``gender``); "none" is added for an empty scene. Entities with a
    ``json_attributes_template`` read their attributes (the label's
    confidence, the track) from the state topic; ``origin`` names this
    project in Home Assistant's MQTT log and device info. ``image``
    ("face" or "frame", with ``publish_images``) adds an ``image`` entity
    that shows the JPEGs sent to the image topic; "" leaves it out.
    """
    device = {
        "identifiers": [f"face_emotion_{topics.node}"],
        "name": f"face-emotion {topics.client_id}",
        "manufacturer": "pi-face-emotion",
        "model": "Raspberry Pi face emotion and gender recognition",
        "sw_version": __version__,
    }
    origin = {"name": "pi-face-emotion", "sw_version": __version__}

    def entity(key: str, name: str) -> dict[str, Any]:
        return {"name": name, "unique_id": f"face_emotion_{topics.node}_{key}",
                "availability_topic": topics.availability, "payload_available": "online",
                "payload_not_available": "offline", "device": device, "origin": origin}

    configs = {}
    for component, key, name, attr, extra in ENTITIES:
        config = entity(key, name) | {"state_topic": getattr(topics, attr)} | extra
        if "json_attributes_template" in config:
            config["json_attributes_topic"] = config["state_topic"]
        if key in labels:
            config["options"] = [*labels[key], "none"]
        configs[topics.discovery(component, key)] = config
    if image:
        configs[topics.discovery("image", "image")] = entity("image", IMAGE_NAMES[image]) | {
            "image_topic": topics.image, "content_type": "image/jpeg", "icon": IMAGE_ICONS[image]}
    return configs


def discovery_topics(topics: Topics) -> list[str]:
    """Every discovery topic this device may have announced, the image entity's too: what removal empties."""
    return [*(topics.discovery(component, key) for component, key, *_ in ENTITIES),
            topics.discovery("image", "image")]


def read_stripped(path: Path) -> str:
    """The file's text without surrounding white space; "" when it cannot be read (no such file, no permission)."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""
