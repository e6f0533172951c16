"""MQTT output: state, events, health and Home Assistant discovery, published off the frame loop.

Makers wire this Pi to something else (a lamp, a counter, a dashboard); the
common bus for that is MQTT and the usual hub is Home Assistant, whose MQTT
discovery makes entities appear without any YAML. Per device (the client id,
by default the host name and the first 8 hex digits of ``/etc/machine-id``:
every stock Pi is called "raspberrypi", and two clients with one id knock
each other off the broker) under ``<topic_prefix>/<device>/``:

* ``state`` (retained): faces in view, the largest face's emotion and gender
  with confidences, fps and median ms per frame; sent only when the faces or
  labels change (confidences in 0.05 steps) and at most ``max_state_rate``
  times a second, so a stable scene costs nothing;
* ``events``: one JSON object per event, the same objects as the event log
  (``track_new``, ``label_change``, ``track_lost``, ``face``);
* ``availability`` (retained): ``online``, and ``offline`` as the last will,
  so a Pi that loses power or is killed shows as unavailable;
* ``health`` (retained) every ``health_interval_s``: uptime, frames, fps,
  latency against the paper's 0.22 s per frame, CPU temperature (when
  ``/sys/class/thermal`` has one), messages sent/dropped, reconnects;
* ``image``: only with ``publish_images = true``, a JPEG of the face on every
  new track and label change (the crop is copied in the frame loop and
  encoded by the worker). Never otherwise.

Home Assistant discovery configs (retained, ``<discovery_prefix>/sensor/...``
and ``binary_sensor/...``) describe one device with sensors for face count,
emotion, gender, fps and latency and a binary sensor "someone in view". They
are removed (empty retained payloads) on connect when ``discovery = false``,
and, with the whole output ``enabled = false`` but a ``host`` still set, by a
one-off background cleanup at start (:func:`start_cleanup`).

The frame loop never waits for the network: :meth:`MqttOutput.update` only
records statistics, keeps the latest state and appends events to a bounded
queue (the oldest dropped and counted when full). One worker thread owns the
paho client: it connects, reconnects with exponential backoff (1 s doubling
to 30 s, +-20 % jitter), publishes and loops. The backoff is reset only by a
connection that held for ``STABLE_S``: a broker that accepts and then drops
at once (another client with our id, a message over its ``max_packet_size``)
once got ~530 reconnects a second; now the waits grow, and the warning names
the likely cause. A refused login or a TLS mistake is
permanent: start() raises it as one line (or the next update() does, if it
happens later) and the daemon goes on without this output.

Works with paho-mqtt 1.6 (Raspberry Pi OS Bookworm's python3-paho-mqtt) and
2.x (PyPI, Trixie): the client is made with ``CallbackAPIVersion.VERSION2``
where that exists, and the callbacks read only arguments both versions pass.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge import __version__
from edge.outputs.base import Output, OutputError
from edge.outputs.eventlog import EventLogOutput, EventLogSettings
from edge.results import FaceResult, FrameResult
from edge.settings import ConfigError
from edge.stats import PAPER_SECONDS_PER_FRAME, LatencyStats

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
    publish_images: bool = False  # opt-in: a JPEG of the face on every new track and label change (.../image)
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

log = logging.getLogger(__name__)

BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
BACKOFF_JITTER = 0.2  # +-20 %: a fleet of Pis does not reconnect in lockstep after a broker restart
STABLE_S = 10.0  # a connection that held this long resets the backoff; a shorter one doubles it
MACHINE_ID = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
CONNACK_WAIT_S = 10.0  # after the TCP/TLS connection: how long the broker may take to answer CONNECT
START_WAIT_S = 5.0  # start() waits this long for the first outcome, so a refused login is reported at start
LOOP_S = 0.05  # the worker's select() timeout: how soon a queued event goes out
FLUSH_S = 2.0  # close(): time to get the last events and "offline" out
CONFIDENCE_STEP = 0.05  # state is re-sent when a confidence moves to another 0.05 step
STATS_WINDOW = 100
THERMAL = Path("/sys/class/thermal")
# CONNACK return codes of MQTT 3.1.1 (paho 1.6 passes them as ints, 2.x as ReasonCodes 132..136).
CONNACK_TEXT = {
    1: "refused the protocol version",
    2: "rejected the client id",
    3: "is unavailable",
    4: "refused the login (bad user name or password)",
    5: "refused the login (not authorized)",
}
REASON_TO_CONNACK = {132: 1, 133: 2, 136: 3, 134: 4, 135: 5}
PERMANENT_CONNACK = {1, 2, 4, 5}


def import_paho() -> Any:
    """``paho.mqtt.client``, or one line that says how to install it."""
    try:
        import paho.mqtt.client as mqtt  # type: ignore[import-not-found]
    except ImportError:
        raise OutputError("mqtt: paho-mqtt is not installed (pip install 'pi-face-emotion[mqtt]', "
                          "or apt install python3-paho-mqtt)") from None
    return mqtt


def default_client_id(hostname: str | None = None, machine_id: tuple[Path, ...] = MACHINE_ID) -> str:
    """``<host name>-<first 8 hex digits of the machine id>``: unique per installed system, stable across boots.

    The host name alone is "raspberrypi" on every stock Pi, and a broker drops the older of two clients that
    share an id. Without a readable machine id, the host name alone.
    """
    hostname = hostname or socket.gethostname()
    for path in machine_id:
        digits = _read(path).lower()
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


def discovery_configs(topics: Topics, labels: dict[str, tuple[str, ...]]) -> dict[str, dict[str, Any]]:
    """topic -> Home Assistant discovery config, one device with the project's version.

    ``labels`` gives the ``options`` of the enum sensors (``emotion``,
    ``gender``); "none" is added for an empty scene. Entities with a
    ``json_attributes_template`` read their attributes (the label's
    confidence, the track) from the state topic; ``origin`` names this
    project in Home Assistant's MQTT log and device info.
    """
    device = {
        "identifiers": [f"face_emotion_{topics.node}"],
        "name": f"face-emotion {topics.client_id}",
        "manufacturer": "pi-face-emotion",
        "model": "Raspberry Pi face emotion and gender recognition",
        "sw_version": __version__,
    }
    origin = {"name": "pi-face-emotion", "sw_version": __version__}
    configs = {}
    for component, key, name, attr, extra in ENTITIES:
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"face_emotion_{topics.node}_{key}",
            "state_topic": getattr(topics, attr),
            "availability_topic": topics.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            "origin": origin,
        }
        config.update(extra)
        if "json_attributes_template" in config:
            config["json_attributes_topic"] = config["state_topic"]
        if key in labels:
            config["options"] = [*labels[key], "none"]
        configs[topics.discovery(component, key)] = config
    return configs


def cpu_temperature(root: Path = THERMAL) -> float | None:
    """The CPU's temperature in °C from the kernel's thermal zones (``cpu-thermal`` on a Pi), or None."""
    zones = sorted(root.glob("thermal_zone*"))
    preferred = [z for z in zones if _read(z / "type") in ("cpu-thermal", "cpu_thermal", "x86_pkg_temp")]
    for zone in preferred + zones:
        text = _read(zone / "temp")
        if text and text.lstrip("-").isdigit():
            return round(int(text) / 1000.0, 1)
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def read_password(settings: MqttSettings) -> str | None:
    """The password from the settings or the first line of ``password_file``; None without a user name."""
    if not settings.username:
        return None
    if not settings.password_file:
        return settings.password
    try:
        text = Path(settings.password_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"mqtt: cannot read password_file {settings.password_file} "
                          f"({exc.strerror or exc})") from None
    return text.splitlines()[0] if text else ""


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context the settings ask for (verifying the broker), or one line naming the bad file."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca or None)
    except FileNotFoundError:
        raise OutputError(f"mqtt: tls_ca {settings.tls_ca} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise OutputError(f"mqtt: tls_ca {settings.tls_ca} is not a PEM CA certificate ({exc})") from None
    if settings.tls_cert:
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except FileNotFoundError as exc:
            raise OutputError(f"mqtt: {exc.filename or settings.tls_cert} does not exist "
                              "(tls_cert/tls_key)") from None
        except (OSError, ssl.SSLError) as exc:
            raise OutputError(f"mqtt: tls_cert {settings.tls_cert} / tls_key {settings.tls_key} cannot be "
                              f"used ({exc})") from None
    return context


def _connack_code(value: Any) -> int:
    """A CONNACK result as MQTT 3.1.1's 0..5, from paho 1.6's int or 2.x's ReasonCode."""
    code = int(getattr(value, "value", value))
    return REASON_TO_CONNACK.get(code, code)


class Connection:
    """One paho client and its connection to the broker; used only by one thread.

    :meth:`open` connects and waits for the broker's answer; it returns None
    when connected, else ``(message, permanent)``: permanent for a refused
    login or a TLS failure, which retrying cannot fix.
    """

    def __init__(self, settings: MqttSettings, topics: Topics, client_id: str, password: str | None,
                 context: ssl.SSLContext | None, will: bool = True):
        mqtt = import_paho()
        self.mqtt = mqtt
        self.settings = settings
        self.where = f"{settings.host}:{settings.port}"
        api = getattr(mqtt, "CallbackAPIVersion", None)
        if api is not None:  # paho 2.x: its first argument is the callback API version
            self.client = mqtt.Client(api.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        else:  # paho 1.x
            self.client = mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.max_queued_messages_set(max(settings.queue_size, 100))
        if settings.username:
            self.client.username_pw_set(settings.username, password)
        if context is not None:
            self.client.tls_set_context(context)
        if will:
            self.client.will_set(topics.availability, "offline", qos=settings.qos, retain=True)
        self.connack: int | None = None
        self.unacked: set[int] = set()
        self.acked = 0
        self.largest = 0  # bytes of the largest message handed to paho since the last open()

    def _on_connect(self, *args: Any) -> None:  # 1.6: (client, userdata, flags, rc); 2.x: (..., reason, props)
        self.connack = _connack_code(args[3])

    def _on_publish(self, *args: Any) -> None:  # 1.6: (client, userdata, mid); 2.x: (..., mid, reason, props)
        self.unacked.discard(args[2])
        self.acked += 1

    def open(self, stop: threading.Event, first: bool = True) -> tuple[str, bool] | None:
        """Connect and wait for CONNACK; None when connected, else (one-line reason, permanent).

        A TLS failure before the first successful connection is a configuration
        mistake (permanent); after one, only a certificate that fails
        verification is, other TLS errors may be a broker restarting mid-handshake.
        """
        s = self.settings
        self.connack, self.largest = None, 0
        try:
            self.client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except ssl.SSLCertVerificationError as exc:
            return f"mqtt: the broker {self.where} failed TLS verification ({exc.verify_message}; check tls_ca)", True
        except ssl.SSLError as exc:
            return f"mqtt: TLS handshake with {self.where} failed ({exc.reason or exc}; is it a TLS port?)", first
        except (ConnectionResetError, BrokenPipeError) as exc:
            if s.tls and first:  # a plain MQTT listener hangs up on a TLS hello
                return (f"mqtt: TLS handshake with {self.where} failed (the broker hung up: {exc.strerror}; "
                        "is it a TLS port?)"), True
            return f"mqtt: cannot connect to {self.where} ({exc.strerror or exc})", False
        except socket.gaierror as exc:
            return f"mqtt: cannot resolve {s.host} ({exc.strerror})", False
        except OSError as exc:
            if exc.errno == errno.EPERM:
                return (f"mqtt: connecting to {self.where} is not permitted (the systemd unit's IPAddressAllow= "
                        "must list the broker's address; see config.example.toml)"), False
            return f"mqtt: cannot connect to {self.where} ({exc.strerror or exc})", False
        deadline = time.monotonic() + CONNACK_WAIT_S
        while self.connack is None and time.monotonic() < deadline and not stop.is_set():
            if self.client.loop(timeout=LOOP_S) != 0:
                break
        if self.connack == 0:
            return None
        with contextlib.suppress(Exception):
            self.client.disconnect()
        if self.connack is None:
            return f"mqtt: {self.where} did not answer the MQTT handshake (is it an MQTT broker?)", False
        text = CONNACK_TEXT.get(self.connack, f"refused the connection (code {self.connack})")
        return f"mqtt: the broker {self.where} {text}", self.connack in PERMANENT_CONNACK

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> bool:
        """Hand one message to paho; False when it was not accepted (connection gone, paho's queue full)."""
        info = self.client.publish(topic, payload, qos=self.settings.qos, retain=retain)
        if info.rc != 0:
            return False
        self.largest = max(self.largest, len(topic) + len(payload))
        if self.settings.qos:
            self.unacked.add(info.mid)
        return True

    def loop(self) -> bool:
        """Network I/O for up to LOOP_S; False when the connection is gone."""
        return self.client.loop(timeout=LOOP_S) == 0

    def flush(self, until: float) -> None:
        """Let paho write what it holds (and QoS 1/2 acknowledgements arrive) until ``until``."""
        while (self.unacked or self.client.want_write()) and time.monotonic() < until:
            if not self.loop():
                return

    def quick_drop_cause(self, client_id: str) -> str:
        """The likely cause when the broker closed a connection it had just accepted (MQTT 3.1.1 says nothing)."""
        size = f"a message of up to {self.largest} bytes"
        if self.unacked:  # the broker hung up before acknowledging a message: it refused the message
            return (f"it hung up before acknowledging {size}: a message larger than the broker's max_packet_size "
                    "(raise it in the broker's configuration)")
        too_large = (f"; or {size} over the broker's max_packet_size (raise it in the broker's configuration)"
                     if self.settings.qos == 0 else "")
        return (f"another client with the client id {client_id!r} is connected (each Pi needs its own "
                f"[outputs.mqtt] client_id){too_large}")

    def close(self) -> None:
        """Disconnect (a clean DISCONNECT: the broker does not send the will). Messages not yet acknowledged
        stay with paho and go out again after the next :meth:`open`."""
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop(timeout=LOOP_S)


class _EventTap(EventLogOutput):
    """The event log's bookkeeping of tracks, with each event handed to a callback instead of written."""

    def __init__(self, sink: Callable[[dict[str, Any], FaceResult], None], clock: Callable[[], float]):
        super().__init__(EventLogSettings(journal=False), clock=clock, env={})
        self.sink = sink

    def start(self) -> None:
        """Nothing to open."""

    def emit(self, kind: str, face: FaceResult, now: float, index: int, **extra: Any) -> None:
        self.sink(self.event(kind, face, now, index, **extra), face)

    def close(self) -> None:
        """Report the tracks still in view as lost (reason "stopped")."""
        self._lose_all(self.clock(), self._last_index or 0, "stopped")


class MqttOutput(Output):
    """Publishes to an MQTT broker; see the module docstring."""

    name = "MQTT"

    def __init__(self, settings: MqttSettings, clock: Callable[[], float] = time.monotonic,
                 thermal: Path = THERMAL):
        from edge.labels import EMOTION_LABELS, GENDER_LABELS

        self.settings = settings
        self.clock = clock
        self.thermal = thermal
        self.client_id = settings.client_id or default_client_id()
        self.topics = Topics(settings, self.client_id)
        self.configs = discovery_configs(self.topics, {"emotion": EMOTION_LABELS, "gender": GENDER_LABELS})
        self.started = clock()
        self.stats = LatencyStats(STATS_WINDOW)
        self.lock = threading.Lock()
        self.queue: deque[tuple[str, bytes | np.ndarray]] = deque(maxlen=settings.queue_size)  # ndarray: a face
        self.state: dict[str, Any] | None = None  # latest state, picked up by the worker
        self.state_key: tuple | None = None
        self.perf: tuple[float, float | None] = (0.0, None)  # fps, median ms per frame (pipeline)
        self.sent = 0  # messages handed to paho while connected
        self.dropped = 0  # events pushed out of the full queue or refused by paho
        self.reconnects = 0
        self.connected = threading.Event()
        self.fatal: str | None = None
        self._first = threading.Event()  # set at the first connect outcome
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events = _EventTap(self._on_event, clock)
        self._frame: np.ndarray | None = None
        self._password: str | None = None
        self._context: ssl.SSLContext | None = None

    # -- frame loop side ----------------------------------------------------------------------------

    def start(self) -> None:
        import_paho()
        self._password = read_password(self.settings)
        self._context = tls_context(self.settings)
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()
        self._first.wait(START_WAIT_S)
        if self.fatal:
            self.close()
            raise OutputError(self.fatal)

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        if self.fatal:
            raise OutputError(self.fatal)  # a refused login after a broker restart: the daemon drops us
        now = self.clock()
        self.stats.add(result.timings_ms, stamp=now)
        median = self.stats.median("total")  # here, not in the worker: the deques change only in this thread
        self.perf = (round(self.stats.fps(), 2), round(median, 1) if median is not None else None)
        self._frame = frame
        self._events.update(frame, result)
        self._frame = None
        face = result.largest
        key = (len(result.faces), face and face.emotion, face and face.gender,
               face and round(face.emotion_confidence / CONFIDENCE_STEP),
               face and round(face.gender_confidence / CONFIDENCE_STEP))
        if key != self.state_key:
            state = {
                "faces": len(result.faces),
                "track": face.track if face else None,
                "emotion": face.emotion if face else None,
                "emotion_confidence": round(face.emotion_confidence, 3) if face else None,
                "gender": face.gender if face else None,
                "gender_confidence": round(face.gender_confidence, 3) if face else None,
                "frame": result.index,
            }
            with self.lock:
                self.state, self.state_key = state, key

    def _on_event(self, record: dict[str, Any], face: FaceResult) -> None:
        """From the event tap (in update): queue the event, and the face's JPEG when opted in."""
        self._enqueue(self.topics.events, json.dumps(record).encode())
        frame = self._frame
        if self.settings.publish_images and frame is not None and record["event"] in ("track_new", "label_change"):
            x, y, w, h = (int(v) for v in face.box)
            crop = frame[max(0, y):y + h, max(0, x):x + w]
            if crop.size:
                self._enqueue(self.topics.image, crop.copy())  # JPEG-encoded by the worker, not here

    def _enqueue(self, topic: str, payload: bytes | np.ndarray) -> None:
        with self.lock:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1  # deque(maxlen) drops the oldest
            self.queue.append((topic, payload))

    def close(self) -> None:
        """Last events ("stopped"), final health, ``offline``, disconnect. Safe to call twice."""
        if self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._events.close()
        self._stop.set()
        self._thread.join(timeout=FLUSH_S + 3)
        self._thread = None

    # -- worker side ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The health document: uptime, frames, fps, latency against the paper, CPU temperature, counters."""
        fps, median = self.perf
        with self.lock:
            queued, dropped = len(self.queue), self.dropped
        return {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "uptime_s": round(self.clock() - self.started, 1),
            "frames": self.stats.frames,
            "fps": fps,
            "ms_per_frame": median,
            "paper_ms_per_frame": PAPER_SECONDS_PER_FRAME * 1e3,
            "x_faster_than_paper": round(PAPER_SECONDS_PER_FRAME * 1e3 / median, 1) if median else None,
            "cpu_temp_c": cpu_temperature(self.thermal),
            "sent": self.sent,
            "dropped": dropped,
            "queued": queued,
            "reconnects": self.reconnects,
            "version": __version__,
        }

    def _state_payload(self, state: dict[str, Any]) -> bytes:
        fps, median = self.perf
        return json.dumps(dict(state, fps=fps, ms_per_frame=median,
                               time=datetime.now(UTC).isoformat(timespec="milliseconds"))).encode()

    def _run(self) -> None:
        """Connect, publish, reconnect with backoff; until close() or a permanent failure."""
        s = self.settings
        delay, reported, was_connected, quick_drops = BACKOFF_MIN_S, "", False, 0
        try:
            conn = Connection(s, self.topics, self.client_id, self._password, self._context)
        except Exception as exc:  # noqa: BLE001 - one line for the daemon, not a dead thread
            self.fatal = f"mqtt: cannot set up the client ({exc})"
            self._first.set()
            return
        while not self._stop.is_set():
            try:
                failure = conn.open(self._stop, first=not was_connected)
            except Exception as exc:  # noqa: BLE001 - a paho surprise must not kill the thread silently
                failure = (f"mqtt: unexpected error connecting to {s.host}:{s.port} ({exc!r})", False)
            if failure is not None:
                message, permanent = failure
                if permanent:
                    self.fatal = message
                    self._first.set()
                    log.debug("%s", message)  # the daemon logs it once, with "continuing without it"
                    return
                if message != reported:
                    log.warning("%s; retrying with backoff (up to %.0f s)", message, BACKOFF_MAX_S)
                    reported = message
                self._first.set()
                if self._stop.wait(delay * random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)):
                    return
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if was_connected:
                self.reconnects += 1
            log.info("mqtt: %s to %s:%d as %s, publishing to %s/", "reconnected" if was_connected else "connected",
                     s.host, s.port, self.client_id, self.topics.base)
            was_connected, reported = True, ""
            connected_at = time.monotonic()
            self.connected.set()
            self._first.set()
            try:
                lost = self._serve(conn)
            except Exception as exc:  # noqa: BLE001
                lost = f"unexpected error ({exc!r})"
            self.connected.clear()
            held = time.monotonic() - connected_at
            quick_drops = quick_drops + 1 if lost and held < STABLE_S else 0
            if quick_drops >= 2:  # one quick drop may be a broker restarting; two in a row are not
                lost = (f"closed by the broker {held:.1f} s after it accepted the connection, {quick_drops} times "
                        f"in a row; likely cause: {conn.quick_drop_cause(self.client_id)}")
            elif lost and not quick_drops:
                delay = BACKOFF_MIN_S  # a connection that held: a fresh start for the backoff
            conn.close()
            if lost:
                wait = delay * random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)
                log.warning("mqtt: lost the connection to %s:%d (%s); reconnecting in %.1f s", s.host, s.port, lost,
                            wait)
                if self._stop.wait(wait):
                    return
                delay = min(delay * 2, BACKOFF_MAX_S)

    def _serve(self, conn: Connection) -> str:
        """Publish while connected. Returns "" after close() flushed, else why the connection went."""
        s = self.settings
        conn.publish(self.topics.availability, "online", retain=True)
        for topic, config in self.configs.items():  # re-sent on every connect: a broker restart may lose them
            conn.publish(topic, json.dumps(config) if s.discovery else "", retain=True)
        with self.lock:
            self.state_key = None  # re-send the state after a reconnect
        next_state = next_health = time.monotonic()
        while True:
            stopping = self._stop.is_set()
            now = time.monotonic()
            self._drain(conn)
            with self.lock:
                state, self.state = self.state, None
            if state is not None:
                if now >= next_state or stopping:
                    if conn.publish(self.topics.state, self._state_payload(state), retain=s.retain):
                        self.sent += 1
                    next_state = now + 1.0 / s.max_state_rate
                else:
                    with self.lock:
                        self.state = self.state or state  # not yet: keep it (unless a newer one came)
            if now >= next_health or stopping:
                if conn.publish(self.topics.health, json.dumps(self.health()), retain=s.retain):
                    self.sent += 1
                next_health = now + s.health_interval_s
            if stopping:
                conn.publish(self.topics.availability, "offline", retain=True)
                conn.flush(time.monotonic() + FLUSH_S)
                return ""
            if not conn.loop():
                return "connection closed"

    def _drain(self, conn: Connection) -> None:
        """Publish the queued events; one that paho does not take goes back to the front."""
        while True:
            with self.lock:
                if not self.queue:
                    return
                topic, payload = self.queue.popleft()
            if isinstance(payload, np.ndarray):
                ok, jpeg = cv2.imencode(".jpg", payload, [cv2.IMWRITE_JPEG_QUALITY, 85])
                if not ok:
                    continue
                payload = jpeg.tobytes()
            if conn.publish(topic, payload):
                self.sent += 1
                continue
            with self.lock:
                if len(self.queue) < (self.queue.maxlen or 0):
                    self.queue.appendleft((topic, payload))
                else:
                    self.dropped += 1
            return


def remove_discovery(settings: MqttSettings, client_id: str | None = None) -> str:
    """Empty retained payloads over this device's discovery configs, state, health and availability.

    What Home Assistant needs to delete the entities, and what keeps a broker
    from handing stale retained state to new subscribers. Returns one line saying what happened.
    """
    from edge.labels import EMOTION_LABELS, GENDER_LABELS

    client_id = client_id or settings.client_id or default_client_id()
    topics = Topics(settings, client_id)
    stop = threading.Event()
    try:
        conn = Connection(settings, topics, f"{client_id}-cleanup", read_password(settings), tls_context(settings),
                          will=False)
    except OutputError as exc:
        return f"{exc}; the Home Assistant entities were not removed"
    failure = conn.open(stop)
    if failure is not None:
        return f"{failure[0]}; the Home Assistant entities were not removed"
    configs = discovery_configs(topics, {"emotion": EMOTION_LABELS, "gender": GENDER_LABELS})
    for topic in [*configs, topics.state, topics.health, topics.availability]:
        conn.publish(topic, "", retain=True)
    conn.flush(time.monotonic() + FLUSH_S)
    conn.close()
    return (f"mqtt: output disabled: removed the Home Assistant entities of {client_id} "
            f"from {settings.host}:{settings.port}")


def start_cleanup(settings: MqttSettings, logger: logging.Logger = log) -> threading.Thread:
    """:func:`remove_discovery` in a background thread, so a broker that is away never delays the start."""

    def run() -> None:
        try:
            logger.info("%s", remove_discovery(settings))
        except Exception as exc:  # noqa: BLE001 - best effort; the service does not depend on it
            logger.warning("mqtt: cleanup of the Home Assistant entities failed (%s)", exc)

    thread = threading.Thread(target=run, name="mqtt-cleanup", daemon=True)
    thread.start()
    return thread
