"""What the frame loop hands to the server threads, and the JPEGs drawn from it once for every viewer.

:meth:`Hub.record` is the frame loop's only call (statistics always, a frame only while
someone watches); :meth:`Hub.next_jpeg` draws and encodes in the caller's server thread,
once per frame however many viewers wait on it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edge.frame.annotate import annotate
from edge.frame.results import FaceResult, FrameResult
from edge.frame.stats import LatencyStats
from edge.outputs.display import stats_text

WAIT_S = 0.25  # how often a waiting stream thread checks whether the server is closing


def tracks(faces: list[FaceResult]) -> list[dict[str, Any]]:
    """Faces as the page's table shows them: the numbers the overlay's labels show (see the module doc)."""
    return [{"track": f.track, "emotion": f.emotion, "confidence": round(f.emotion_confidence, 4),
             "gender": f.gender, "gender_confidence": round(f.gender_confidence, 4),
             "box": [int(v) for v in f.box]} for f in faces]


class Hub:
    """What the frame loop hands to the server threads: statistics, the latest result and frame."""

    def __init__(self, stats_window: int, jpeg_quality: int, clock: Callable[[], float]):
        self.cond = threading.Condition()
        self.encode_lock = threading.Lock()
        self.clock = clock
        self.started = clock()
        self.stats = LatencyStats(stats_window)
        self.jpeg_quality = jpeg_quality
        self.result: FrameResult | None = None
        self.frame: np.ndarray | None = None
        self.frame_result: FrameResult | None = None
        self.frame_text = ""
        self.jpeg_result: FrameResult | None = None  # the result drawn on ``jpeg``
        self.running: dict[str, str] = {}  # what the service runs (LiveViewOutput.describe)
        self.seq = 0  # increments with every frame handed over
        self.jpeg = b""
        self.jpeg_seq = 0
        self.encoded = 0  # JPEGs encoded so far (stays 0 while nobody watches)
        self.viewers = 0
        self.connections: set[socket.socket] = set()
        self.closed = False

    def record(self, result: FrameResult, now: float, frame: np.ndarray | None) -> None:
        """Called by the frame loop: statistics always, the frame only when someone watches."""
        with self.cond:
            self.stats.add(result.timings_ms, stamp=now)
            self.result = result
            if frame is not None:
                self.frame, self.frame_result, self.frame_text = frame, result, stats_text(self.stats)
                self.seq += 1
                self.cond.notify_all()

    def next_jpeg(self, after: int) -> tuple[int, bytes, FrameResult] | None:
        """The first frame newer than ``after`` as JPEG, or None after a short wait (check ``closed``)."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.closed or self.seq > after, timeout=WAIT_S) or self.closed:
                return None
            seq, frame, result, text = self.seq, self.frame, self.frame_result, self.frame_text
        with self.encode_lock:  # several viewers: the first one encodes, the others reuse it
            if self.jpeg_seq != seq:
                assert frame is not None and result is not None
                ok, data = cv2.imencode(".jpg", annotate(frame, result, text),
                                        [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    return None
                self.jpeg, self.jpeg_seq, self.jpeg_result = data.tobytes(), seq, result
                self.encoded += 1
            assert self.jpeg_result is not None
            return self.jpeg_seq, self.jpeg, self.jpeg_result

    def status(self) -> dict[str, Any]:
        """The ``/status.json`` document (``tracks``: the newest frame's faces)."""
        with self.cond:
            result = self.result
            latency = {stage: round(value, 2) for stage in sorted(self.stats.samples)
                       if (value := self.stats.median(stage)) is not None}
            faces = list(result.faces) if result is not None else []
            return {
                "frame": result.index if result is not None else None,
                "frames": self.stats.frames,
                "fps": round(self.stats.fps(), 2),
                "latency_ms": latency,
                "faces": len(faces),
                "tracks": tracks(faces),
                "width": result.width if result is not None else None,
                "height": result.height if result is not None else None,
                "uptime_s": round(self.clock() - self.started, 2),
                "viewers": self.viewers,
                "running": dict(self.running),
            }

    def join(self, connection: socket.socket) -> int:
        with self.cond:
            self.viewers += 1
            self.connections.add(connection)
            return self.seq  # a new viewer waits for a fresh frame, not the one a previous viewer saw

    def leave(self, connection: socket.socket) -> None:
        with self.cond:
            self.viewers -= 1
            self.connections.discard(connection)

    def close(self) -> None:
        """Wake every stream thread and cut their connections, so none lingers after close()."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
