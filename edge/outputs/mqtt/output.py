"""The MQTT output itself: the frame loop's side (statistics, state, events) and the worker that publishes.

See the package docstring (:mod:`edge.outputs.mqtt`) for the topics and the guarantees; here is
how they are kept: :meth:`MqttOutput.update` never waits for the network, one worker thread owns
the :class:`~edge.outputs.mqtt.connection.Connection`, and :func:`remove_discovery` /
:func:`start_cleanup` empty a disabled device's retained topics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
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
from edge.frame.annotate import annotate
from edge.frame.results import FaceResult, FrameResult
from edge.frame.stats import PAPER_SECONDS_PER_FRAME, LatencyStats
from edge.outputs.base import Output, OutputError
from edge.outputs.eventlog import EventLogOutput, EventLogSettings
from edge.outputs.mqtt.connection import Connection, import_paho, read_password, tls_context
from edge.outputs.mqtt.discovery import (
    Topics,
    default_client_id,
    discovery_configs,
    discovery_topics,
    read_stripped,
)
from edge.outputs.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
BACKOFF_JITTER = 0.2  # +-20 %: a fleet of Pis does not reconnect in lockstep after a broker restart
STABLE_S = 10.0  # a connection that held this long resets the backoff; a shorter one doubles it
START_WAIT_S = 5.0  # start() waits this long for the first outcome, so a refused login is reported at start
FLUSH_S = 2.0  # close(): time to get the last events and "offline" out
CONFIDENCE_STEP = 0.05  # state is re-sent when a confidence moves to another 0.05 step
STATS_WINDOW = 100
# what makes a new image (with publish_images): a new track, a label change, or a face without a track (a source
# without tracking, such as a photo folder: every face there is news; the interval still bounds the rate)
IMAGE_EVENTS = ("track_new", "label_change", "face")
JPEG_QUALITY = 85
THERMAL = Path("/sys/class/thermal")


def cpu_temperature(root: Path = THERMAL) -> float | None:
    """The CPU's temperature in °C from the kernel's thermal zones (``cpu-thermal`` on a Pi), or None."""
    zones = sorted(root.glob("thermal_zone*"))
    preferred = [z for z in zones if read_stripped(z / "type") in ("cpu-thermal", "cpu_thermal", "x86_pkg_temp")]
    for zone in preferred + zones:
        text = read_stripped(zone / "temp")
        if text and text.lstrip("-").isdigit():
            return round(int(text) / 1000.0, 1)
    return None


@dataclass(frozen=True)
class Picture:
    """An image waiting for the worker: a face crop, or a frame with the result to draw on it (annotated there)."""

    image: np.ndarray
    result: FrameResult | None = None

    def jpeg(self) -> bytes | None:
        """The JPEG to publish (the overlay drawn first for a frame); None if OpenCV cannot encode it."""
        image = annotate(self.image, self.result) if self.result is not None else self.image
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return data.tobytes() if ok else None


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
    """Publishes to an MQTT broker; see the package docstring (:mod:`edge.outputs.mqtt`)."""

    name = "MQTT"

    def __init__(self, settings: MqttSettings, clock: Callable[[], float] = time.monotonic,
                 thermal: Path = THERMAL):
        from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS

        self.settings = settings
        self.clock = clock
        self.thermal = thermal
        self.client_id = settings.client_id or default_client_id()
        self.topics = Topics(settings, self.client_id)
        self.configs = discovery_configs(self.topics, {"emotion": EMOTION_LABELS, "gender": GENDER_LABELS},
                                         image=settings.image_content if settings.publish_images else "")
        self.discovery_topics = discovery_topics(self.topics)  # those not in configs are emptied on connect
        self.started = clock()
        self.stats = LatencyStats(STATS_WINDOW)
        self.lock = threading.Lock()
        self.queue: deque[tuple[str, bytes | Picture]] = deque(maxlen=settings.queue_size)
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
        self._frame: tuple[np.ndarray, FrameResult] | None = None  # during update(), for the image of an event
        self._picture: Picture | None = None  # the newest image waiting for image_interval_s to pass
        self._image_due = float("-inf")  # when the next image may go out (the frame loop's clock)
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
        self._frame = (frame, result)
        self._events.update(frame, result)
        self._frame = None
        if self._picture is not None and now >= self._image_due:
            self._enqueue(self.topics.image, self._picture)  # JPEG-encoded (and annotated) by the worker, not here
            self._picture, self._image_due = None, now + self.settings.image_interval_s
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
        """From the event tap (in update): queue the event; with publish_images, make it the waiting image.

        The image goes out at the end of update() if ``image_interval_s`` has passed since the last one,
        else later, unless a newer event replaces it first: at most one image per interval, the newest.
        """
        self._enqueue(self.topics.events, json.dumps(record).encode())
        if not self.settings.publish_images or self._frame is None or record["event"] not in IMAGE_EVENTS:
            return
        frame, result = self._frame
        if self.settings.image_content == "frame":
            self._picture = Picture(frame.copy(), result)
            return
        x, y, w, h = (int(v) for v in face.box)
        crop = frame[max(0, y):y + h, max(0, x):x + w]
        if crop.size:
            self._picture = Picture(crop.copy())

    def _enqueue(self, topic: str, payload: bytes | Picture) -> None:
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
        for topic in self.discovery_topics:  # re-sent on every connect: a broker restart may lose them
            config = self.configs.get(topic) if s.discovery else None  # "" removes an entity (the image one when off)
            conn.publish(topic, json.dumps(config) if config else "", retain=True)
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
            if isinstance(payload, Picture):
                jpeg = payload.jpeg()
                if jpeg is None:
                    continue
                payload = jpeg
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
    for topic in [*discovery_topics(topics), topics.state, topics.health, topics.availability]:
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
