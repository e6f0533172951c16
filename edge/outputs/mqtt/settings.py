"""``[outputs.mqtt]``: the settings of the MQTT output, declared once and checked in one place.

Apart from the output (as frigate keeps ``config/mqtt.py`` apart from ``comms/mqtt.py``): the config loader,
``--check`` and the outputs registry read these without loading paho or the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.settings import ConfigError

IMAGE_CONTENTS = ("face", "frame")  # what publish_images sends: a face crop or the whole annotated frame
MAX_NAME_BYTES = 128  # topic_prefix, discovery_prefix, client_id: a 70,000-character prefix was retried forever

@dataclass(frozen=True)
class MqttSettings:
    """``[outputs.mqtt]``: state, events, health and Home Assistant discovery to an MQTT broker (off by default)."""

    enabled: bool = False
    host: str = ""  # the broker; an IP address needs no DNS (the hardened unit only allows what IPAddressAllow= lists)
    port: int = 1883  # 8883 is the usual TLS port
    username: str = ""
    password: str = ""  # or password_file (one line, readable by the service user); not both
    password_file: str = ""
    tls: bool = False
    tls_ca: str = ""  # CA certificate file (PEM); "" = the system's CAs
    tls_cert: str = ""  # client certificate (PEM) for brokers that require one, with tls_key
    tls_key: str = ""
    client_id: str = ""  # "" = host name + machine-id (unique per Pi); names the device in topics and Home Assistant
    topic_prefix: str = "face-emotion"  # topics are <topic_prefix>/<client id>/state, /events, /health, /availability
    qos: int = 1
    retain: bool = True  # retain state and health (availability and discovery are always retained)
    keepalive_s: int = 60
    max_state_rate: float = 2.0  # state messages per second at most (only sent when faces or labels change)
    health_interval_s: float = 15.0
    queue_size: int = 1000  # events waiting while the broker is away; the oldest are dropped (and counted)
    publish_images: bool = False  # opt-in: JPEGs on .../image and a Home Assistant image entity (faces leave the Pi)
    image_content: str = "face"  # "face": the crop of the face that appeared or changed label; "frame": annotated
    image_interval_s: float = 10.0  # one image per this many seconds at most; the newest waiting one goes next
    discovery: bool = True  # Home Assistant discovery configs (retained); false removes them on connect
    discovery_prefix: str = "homeassistant"
    discovery_cleanup: bool = True  # with enabled = false and a host: remove this device's entities at start

    def validate(self) -> None:
        if self.enabled and not self.host:
            raise ConfigError("host: the MQTT output needs the broker's host name or address")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is outside 1..65535")
        if self.password and self.password_file:
            raise ConfigError("password_file: give password or password_file, not both")
        if (self.password or self.password_file) and not self.username:
            raise ConfigError("username: a password needs a username")
        if (self.tls_ca or self.tls_cert or self.tls_key) and not self.tls:
            raise ConfigError("tls: tls_ca/tls_cert/tls_key are set but tls = false")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_key: a client certificate needs both tls_cert and tls_key")
        for key in ("topic_prefix", "discovery_prefix", "client_id"):
            value = getattr(self, key)
            if any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
                raise ConfigError(f"{key}: {value!r} must not contain + # or a NUL, nor start or end with /")
        if not self.topic_prefix or not self.discovery_prefix:
            raise ConfigError("topic_prefix/discovery_prefix: must not be empty")
        for key in ("topic_prefix", "discovery_prefix", "client_id"):
            value = getattr(self, key)
            if len(value.encode()) > MAX_NAME_BYTES:
                raise ConfigError(f"{key}: {len(value.encode())} bytes; at most {MAX_NAME_BYTES} (MQTT topics are "
                                  "short names)")
            if not value.isprintable():
                raise ConfigError(f"{key}: {value!r} has control characters")
        for key in ("topic_prefix", "discovery_prefix"):
            if getattr(self, key).startswith("$"):  # subscribers to "#" never see $ topics; $SYS is the broker's
                raise ConfigError(f"{key}: {getattr(self, key)!r} must not start with $ (topics such as $SYS "
                                  "belong to the broker; subscribers never see them)")
        if "/" in self.client_id:
            raise ConfigError(f"client_id: {self.client_id!r} must not contain /")
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"qos: {self.qos} is not 0, 1 or 2")
        if not 5 <= self.keepalive_s <= 3600:
            raise ConfigError(f"keepalive_s: {self.keepalive_s} is outside 5..3600")
        if not 0 < self.max_state_rate <= 50:
            raise ConfigError(f"max_state_rate: {self.max_state_rate} is outside 0..50")
        if not 1 <= self.health_interval_s <= 3600:
            raise ConfigError(f"health_interval_s: {self.health_interval_s} is outside 1..3600")
        if not 10 <= self.queue_size <= 100000:
            raise ConfigError(f"queue_size: {self.queue_size} is outside 10..100000")
        if self.image_content not in IMAGE_CONTENTS:
            raise ConfigError(f"image_content: {self.image_content!r} is not one of {', '.join(IMAGE_CONTENTS)}")
        if not 1 <= self.image_interval_s <= 86400:
            raise ConfigError(f"image_interval_s: {self.image_interval_s} is outside 1..86400")
