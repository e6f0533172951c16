"""Rolling per-stage latency figures and the comparison with the paper's 0.22 s per frame.

The paper (Arriaga et al.) reports its whole pipeline at 0.22 s per frame on
an i5 CPU; its text prints "ms", which is physically impossible for a Haar
pass plus two CNNs on a CPU, so seconds is the only sensible reading.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict, deque

PAPER_SECONDS_PER_FRAME = 0.22
# Every stage name, declared once and imported by the pipeline, analyze, the bench's tables and the service.
# Where a frame's analysis spends its time: the detector, the face crops and the two classifiers.
ANALYSIS_STAGES = ("detect", "crop", "emotion", "gender")
# What Pipeline.process times, in order (``convert`` to gray before, ``track`` after); ``total`` is their sum.
PIPELINE_STAGES = ("convert", *ANALYSIS_STAGES, "track")
# The service's frame: the camera read before the pipeline, the outputs after; ``frame`` is the whole of it.
STAGES = ("capture", *PIPELINE_STAGES, "outputs", "frame")


class LatencyStats:
    """The last ``window`` frames' stage timings (ms) and the frame rate."""

    def __init__(self, window: int = 300):
        self.samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self.stamps: deque[float] = deque(maxlen=window)
        self.frames = 0

    def add(self, timings_ms: dict[str, float], stamp: float | None = None) -> None:
        for key, value in timings_ms.items():
            self.samples[key].append(float(value))
        self.stamps.append(time.monotonic() if stamp is None else stamp)
        self.frames += 1

    def median(self, stage: str) -> float | None:
        values = self.samples.get(stage)
        return statistics.median(values) if values else None

    def fps(self) -> float:
        if len(self.stamps) < 2 or self.stamps[-1] <= self.stamps[0]:
            return 0.0
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])

    def paper_factor(self) -> float | None:
        """How many times faster a frame is than the paper's 0.22 s (frame = capture to outputs)."""
        frame = self.median("frame") or self.median("total")
        return PAPER_SECONDS_PER_FRAME * 1e3 / frame if frame else None

    def summary(self) -> str:
        """One log line: medians per stage, fps and the factor against the paper."""
        parts = [f"{s} {self.median(s):.1f} ms" for s in STAGES if self.median(s) is not None]
        factor = self.paper_factor()
        vs = f"; {factor:.1f}x faster than the paper's 0.22 s/frame on an i5" if factor else ""
        return (f"latency (median of last {len(self.stamps)} frames): " + ", ".join(parts)
                + f"; {self.fps():.1f} fps{vs}")

    def status(self) -> str:
        """Short text for systemd's STATUS=."""
        frame = self.median("frame") or 0.0
        factor = self.paper_factor()
        return (f"{self.fps():.1f} fps, {frame:.0f} ms/frame"
                + (f", {factor:.0f}x the paper's i5 speed" if factor else ""))


def stats_text(stats: LatencyStats) -> str:
    """The corner text of the screen and the live view: frame rate and median pipeline latency, e.g.
    ``"14.8 fps  38 ms"``."""
    total = stats.median("total")
    return f"{stats.fps():.1f} fps  {total:.0f} ms" if total is not None else f"{stats.fps():.1f} fps"
