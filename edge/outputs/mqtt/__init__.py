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
* ``image``: only with ``publish_images = true``, a JPEG when a face appears
  (a new track, or any face of a source without tracking) or changes label: its crop, or the whole annotated frame with
  ``image_content = "frame"``; at most one per ``image_interval_s`` (the
  newest waiting one goes out next), decided on the frame loop's clock. The
  picture is copied in the frame loop, drawn and encoded by the worker.
  Home Assistant shows the last one as an ``image`` entity. Never otherwise.

Home Assistant discovery configs (retained, ``<discovery_prefix>/sensor/...``
and ``binary_sensor/...``) describe one device with sensors for face count,
emotion, gender, fps and latency, a binary sensor "someone in view" and, with
``publish_images``, an image entity (``image/...``: ``image_topic``, raw JPEG). They
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

The package's modules, one job each: :mod:`~edge.outputs.mqtt.settings`
(``MqttSettings``), :mod:`~edge.outputs.mqtt.discovery` (client id, topics,
Home Assistant configs), :mod:`~edge.outputs.mqtt.connection` (paho, TLS,
CONNACK) and :mod:`~edge.outputs.mqtt.output` (``MqttOutput``, the cleanup).

Works with paho-mqtt 1.6 (Raspberry Pi OS Bookworm's python3-paho-mqtt) and
2.x (PyPI, Trixie): the client is made with ``CallbackAPIVersion.VERSION2``
where that exists, and the callbacks read only arguments both versions pass.
"""

from edge.outputs.mqtt.connection import Connection, import_paho, read_password, tls_context
from edge.outputs.mqtt.discovery import ENTITIES, Topics, default_client_id, discovery_configs, node_id
from edge.outputs.mqtt.output import MqttOutput, cpu_temperature, remove_discovery, start_cleanup
from edge.outputs.mqtt.settings import MqttSettings

__all__ = ["ENTITIES", "Connection", "MqttOutput", "MqttSettings", "Topics", "cpu_temperature", "default_client_id",
           "discovery_configs", "import_paho", "node_id", "read_password", "remove_discovery", "start_cleanup",
           "tls_context"]
