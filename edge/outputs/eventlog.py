"""An event log of label changes per track, as JSON lines (stdout or a file) and journal entries.

Logging every frame would bury the interesting moments (15 lines a second per
face); this logs what a person would note down: a face appeared
(``track_new``), its smoothed emotion or gender changed (``label_change``),
it went away (``track_lost``). Faces without a track (independent photos)
give one ``face`` line each. Every line carries the wall time (ISO-8601, UTC),
monotonic seconds, frame index, track, labels, confidences and box::

    {"event": "label_change", "time": "2025-05-01T10:00:01.250+00:00", "mono": 812.402, "frame": 301,
     "track": 3, "emotion": "happy", "confidence": 0.71, "gender": "woman", "gender_confidence": 0.93,
     "box": [210, 80, 120, 120], "previous": {"emotion": "neutral", "gender": "woman"}}

Under systemd (``INVOCATION_ID``/``JOURNAL_STREAM`` set and python3-systemd
importable) each event also goes to the journal as a structured entry
(``FACE_EVENT=``, ``FACE_TRACK=``, ``FACE_EMOTION=``, ...); stdout would reach
the journal anyway, so with ``path = ""`` it is then not printed twice.

A full disk never stops the service: lines that cannot be written are held
in memory (up to 1,000) and retried with backoff, one warning per outage, and
the file never gets a half line (:mod:`edge.outputs.appendlog`).

Face images are never written unless ``save_faces_dir`` is set: then one
crop per new track and per label change, nothing per frame.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from edge.frame.results import Face, FrameResult
from edge.outputs.appendlog import AppendLog
from edge.outputs.base import Output, OutputError
from edge.service.notify import SYSLOG_IDENTIFIER, load_journal
from edge.settings import ConfigError


@dataclass(frozen=True)
class EventLogSettings:
    """``[outputs.event_log]``: one JSON line per label change, new track and lost track."""

    enabled: bool = True
    path: str = ""  # "" = stdout (the journal under systemd); a file is appended to
    journal: bool = True  # under systemd, also send structured entries with systemd.journal.send
    lost_after_s: float = 1.0  # a track unseen this long is reported lost (keep >= smoothing.max_missed_s)
    save_faces_dir: str = ""  # opt-in: save a face crop (JPEG) on every label change; "" = never

    def validate(self) -> None:
        if self.lost_after_s < 0:
            raise ConfigError(f"lost_after_s: {self.lost_after_s} must not be negative")

log = logging.getLogger(__name__)


@dataclass
class _Seen:
    """What the log last reported for one track."""

    emotion: str
    gender: str
    first_seen: float
    last_seen: float
    face: Face


class EventLogOutput(Output):
    """Writes one JSON line per event; see the module docstring."""

    name = "event log"

    def __init__(self, settings: EventLogSettings | None = None, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] | None = None,
                 env: Mapping[str, str] | None = None):
        self.settings = settings or EventLogSettings()
        self.clock = clock
        self.wall = wall or (lambda: datetime.now(UTC))
        self.env = os.environ if env is None else env
        self._stream = stream  # injected stream (tests); otherwise stdout or the file from settings.path
        self._out: AppendLog | None = None
        self.journal: Any = None
        self.tracks: dict[int, _Seen] = {}
        self._last_index: int | None = None
        self._save_dir: Path | None = None
        self.saved_faces: list[Path] = []

    def start(self) -> None:
        s = self.settings
        self.journal = load_journal(self.env) if s.journal else None
        if self._stream is not None:
            self._out = AppendLog(stream=self._stream, clock=self.clock)
        elif s.path:
            out = AppendLog(path=s.path, clock=self.clock)
            try:
                out.open()
            except OSError as exc:
                raise OutputError(f"event log: cannot open {s.path} ({exc.strerror})") from None
            self._out = out
        elif self.journal is None:
            self._out = AppendLog(stream=sys.stdout, clock=self.clock)
        # else: stdout is the journal already; the structured journal entries are enough
        if s.save_faces_dir:
            path = Path(s.save_faces_dir)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.close()
                raise OutputError(f"event log: cannot create save_faces_dir {path} ({exc.strerror})") from None
            self._save_dir = path

    # -- per frame -----------------------------------------------------------------------------------

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        now = self.clock()
        if self._last_index is not None and result.index < self._last_index:
            self._lose_all(now, result.index, "restart")  # the pipeline was reset: track ids start again
        self._last_index = result.index
        present = set()
        for face in result.faces:
            if face.track is None:
                self.emit("face", face, now, result.index)
                continue
            present.add(face.track)
            seen = self.tracks.get(face.track)
            if seen is None:
                self.tracks[face.track] = _Seen(face.emotion, face.gender, now, now, face)
                self.emit("track_new", face, now, result.index)
                self._save_face(frame, face, "new")
                continue
            seen.last_seen, seen.face = now, face
            if (face.emotion, face.gender) != (seen.emotion, seen.gender):
                previous = {"emotion": seen.emotion, "gender": seen.gender}
                seen.emotion, seen.gender = face.emotion, face.gender
                self.emit("label_change", face, now, result.index, previous=previous)
                self._save_face(frame, face, "change")
        for track, seen in list(self.tracks.items()):
            if track not in present and now - seen.last_seen >= self.settings.lost_after_s:
                self._lose(track, now, result.index, "gone")

    def _lose(self, track: int, now: float, index: int, reason: str) -> None:
        seen = self.tracks.pop(track)
        self.emit("track_lost", seen.face, now, index, reason=reason,
                  duration_s=round(seen.last_seen - seen.first_seen, 3))

    def _lose_all(self, now: float, index: int, reason: str) -> None:
        for track in list(self.tracks):
            self._lose(track, now, index, reason)

    # -- writing -------------------------------------------------------------------------------------

    def event(self, kind: str, face: Face, now: float, index: int, **extra: Any) -> dict[str, Any]:
        """The JSON object for one event."""
        record: dict[str, Any] = {
            "event": kind,
            "time": self.wall().isoformat(timespec="milliseconds"),
            "mono": round(now, 3),
            "frame": index,
            "track": face.track,
            "emotion": face.emotion,
            "confidence": round(face.emotion_confidence, 4),
            "gender": face.gender,
            "gender_confidence": round(face.gender_confidence, 4),
            "box": [int(v) for v in face.box],
        }
        record.update(extra)
        return record

    def emit(self, kind: str, face: Face, now: float, index: int, **extra: Any) -> None:
        record = self.event(kind, face, now, index, **extra)
        if self._out is not None:
            try:
                self._out.write(json.dumps(record))  # a full disk is held and retried there, never raised
            except ValueError as exc:  # a closed stream: nothing to retry
                raise OutputError(f"event log: cannot write ({exc})") from None
        if self.journal is not None:
            self._send_journal(record)

    def _send_journal(self, record: dict[str, Any]) -> None:
        track = "" if record["track"] is None else f"track {record['track']}: "
        message = (f"{record['event']} {track}{record['emotion']} {record['confidence']:.2f} / {record['gender']}")
        fields = {f"FACE_{key.upper()}": json.dumps(value) if isinstance(value, (list, dict)) else str(value)
                  for key, value in record.items() if key not in ("time",)}
        try:
            self.journal.send(message, SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER, PRIORITY="6", **fields)
        except OSError as exc:
            log.warning("event log: journal send failed (%s); not sending any more", exc)
            self.journal = None

    def _save_face(self, frame: np.ndarray, face: Face, why: str) -> None:
        """The opt-in face crop, on a new track or a label change only."""
        if self._save_dir is None:
            return
        x, y, w, h = (int(v) for v in face.box)
        crop = frame[max(0, y):y + h, max(0, x):x + w]
        if crop.size == 0:
            return
        stamp = self.wall().strftime("%Y%m%dT%H%M%S_%f")
        path = self._save_dir / f"{stamp}_track{face.track}_{why}_{face.emotion}_{face.gender}.jpg"
        if cv2.imwrite(str(path), crop):
            self.saved_faces.append(path)
        else:
            log.warning("event log: cannot write %s; not saving faces any more", path)
            self._save_dir = None

    def close(self) -> None:
        """Report the remaining tracks as lost (reason "stopped") and close the file. Safe to call twice."""
        try:
            if self._out is not None or self.journal is not None:
                self._lose_all(self.clock(), self._last_index or 0, "stopped")
        except OutputError as exc:
            log.warning("%s", exc)
        finally:
            if self._out is not None:
                self._out.close()  # never raises; says how many lines a full disk kept out
            self._out = None
            self.journal = None
            self.tracks.clear()
