"""The timed loop every bench row shares: ours, the paper's Keras pipeline and ``fer``.

One loop for all rows is the point of the bench: the same frames, the same
warm-up, the same "capture" (copying the frame out of the shared frame store),
the same clock and the same CPU and memory accounting, so differences between
rows come from the pipelines and nothing else.

CPU % is process CPU time (user + system, all threads, from ``os.times``) over
wall time, so two busy threads read 200 %; CPU ms per frame is the same CPU
time per frame, the figure least disturbed by other jobs on the machine. Peak
RSS is ``ru_maxrss`` of the process that ran the loop; every row runs in a
process of its own so it is that row's own figure, as a service running that
setting would have it. Rows take turns in short chunks (:func:`serve`).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

# One frame through a pipeline: (stage timings in ms, number of faces found).
ProcessFn = Callable[[np.ndarray, int], tuple[dict[str, float], int]]
PERCENTILES = {"median": 50, "p90": 90, "p99": 99}


@dataclass
class LoopResult:
    """What one row measured: per-stage samples (ms), faces per distinct frame, time and resources."""

    samples: dict[str, list[float]]
    faces: dict[int, int]  # distinct frame index -> faces found (first time it was processed)
    frames: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    faces_timed: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Stage statistics, fps, CPU %, RSS and face counts (the raw samples stay out of the report)."""
        return {
            "stages": summarize(self.samples),
            "frames": self.frames,
            "fps": self.frames / self.wall_s if self.wall_s > 0 else 0.0,
            "cpu_percent": 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0,
            "cpu_ms_per_frame": 1e3 * self.cpu_s / self.frames if self.frames else 0.0,
            "peak_rss_mb": self.peak_rss_mb,
            "faces_per_distinct_frame": [self.faces.get(i, -1) for i in range(max(self.faces, default=-1) + 1)],
            "faces_per_frame": float(np.mean(self.faces_timed)) if self.faces_timed else 0.0,
        }


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """median, p90, p99 and mean of each stage's samples (ms)."""
    out: dict[str, dict[str, float]] = {}
    for stage, values in samples.items():
        if not values:
            continue
        arr = np.asarray(values, dtype=np.float64)
        stats = {name: float(np.percentile(arr, q)) for name, q in PERCENTILES.items()}
        stats["mean"] = float(arr.mean())
        out[stage] = stats
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Loop:
    """The timed loop, run in chunks so that rows can take turns (see :func:`serve`).

    Frames cycle through ``store``; the frame index carries on from chunk to
    chunk. Only the chunks' own wall and CPU time count.
    """

    def __init__(self, process: ProcessFn, store: np.ndarray, all_frames: bool):
        self.process = process
        self.store = store
        self.all_frames = all_frames  # image inputs: face counts must cover every distinct image
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.faces: dict[int, int] = {}
        self.faces_timed: list[int] = []
        self.wall_s = self.cpu_s = 0.0
        self.done = 0
        self._calls = 0

    def warmup(self, frames: int) -> None:
        for i in range(frames):
            self.process(np.array(self.store[i % len(self.store)]), self._next_call())

    def _next_call(self) -> int:
        self._calls += 1
        return self._calls - 1

    def run(self, frames: int) -> None:
        """Time ``frames`` more frames."""
        distinct = len(self.store)
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        for _ in range(frames):
            index = self.done % distinct
            start = time.perf_counter()
            frame = np.array(self.store[index])  # "capture": the frame leaves the store as a camera buffer would
            got = time.perf_counter()
            timings, found = self.process(frame, self._next_call())
            self.samples["capture"].append((got - start) * 1e3)
            for stage, value in timings.items():
                self.samples[stage].append(float(value))
            self.faces.setdefault(index, found)
            self.faces_timed.append(found)
            self.done += 1
        self.wall_s += time.perf_counter() - wall0
        self.cpu_s += _cpu_seconds() - cpu0

    def result(self) -> LoopResult:
        """The row's figures; first counts faces (untimed) on any distinct image not yet seen."""
        if self.all_frames:
            for index in range(len(self.store)):
                if index not in self.faces:
                    self.faces[index] = self.process(np.array(self.store[index]), self._next_call())[1]
        return LoopResult(dict(self.samples), self.faces, self.done, self.wall_s, self.cpu_s, peak_rss_mb(),
                          self.faces_timed)


def serve(loop: Loop, warmup: int, finish: Callable[[LoopResult], dict[str, Any]],
          commands: TextIO | None = None, out: TextIO | None = None) -> None:
    """Take turns with the other rows: a line-based protocol on stdin/stdout.

    After the warm-up the row prints ``{"ready": true}``; then each ``run N``
    line times N more frames and answers ``{"ok": N}``; ``done`` prints the
    row's JSON (``finish`` of the result) and returns. The bench sends every
    row a short chunk in turn, so slow drift in the machine (another job,
    a Pi's thermal throttling) falls on all rows alike.
    """
    commands = commands or sys.stdin
    out = out or sys.stdout
    loop.warmup(warmup)
    _say(out, {"ready": True})
    for line in commands:
        word, _, arg = line.strip().partition(" ")
        if word == "run":
            loop.run(int(arg))
            _say(out, {"ok": int(arg)})
        elif word == "done":
            break
    _say(out, finish(loop.result()))


def _say(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()
