"""One row of ``python -m edge.bench``: our pipeline with one setting, in a process of its own.

Launched by :mod:`edge.bench.__main__` as ``python -m edge.bench.row --frames-file F
--settings JSON``, the row's ``[models]`` and ``[detector]`` settings as one
mapping (:func:`edge.cli.settings_to_json`), validated by ``from_mapping`` as
the TOML config is; it then times frames when the bench tells it to on stdin and prints its row as
JSON at the end (:func:`edge.bench.loop.serve`). A fresh process per row keeps each row's peak RSS
and thread pools its own (a row with 4 classifier threads does not leave a
pool behind for the next one).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench.floor import FloorUnavailable, count_macs, time_invoke
from edge.bench.loop import Loop, LoopResult, serve
from edge.cli import settings_from_json
from edge.frame.manifest import ModelError
from edge.frame.pipeline import Pipeline
from edge.frame.runtime import RuntimeMissing
from edge.frame.tracking import SmoothingSettings

STREAM_FPS = 15.0  # the clock a stream's smoothing sees: frame index / 15 fps, as a Pi camera runs


def model_facts(path: str, threads: int, dtype: str) -> dict[str, Any]:
    """File size, input type, MACs per invoke and the median time of a bare ``invoke`` for one classifier model."""
    facts: dict[str, Any] = {"file": Path(path).name, "bytes": os.path.getsize(path), "dtype": dtype}
    try:
        facts["macs"] = count_macs(path)["total"]
    except FloorUnavailable as exc:
        facts["macs"], facts["macs_note"] = None, str(exc)
    facts["invoke_ms"] = time_invoke(path, threads) * 1e3
    return facts


def per_face_ms(stage: list[float], faces: list[int]) -> float | None:
    """A classifier stage's time per face over the timed frames (crop excluded; None without faces)."""
    total = sum(faces)
    return sum(stage) / total if total else None


def serve_row(pipeline: Pipeline, store: np.ndarray, warmup: int, stream: bool, threads: int) -> None:
    """Serve the bench's turns (:func:`edge.bench.loop.serve`) with ``pipeline``; the last line is the row."""
    clock = itertools.count()

    def process(frame: np.ndarray, _call: int) -> tuple[dict[str, float], int]:
        now = next(clock) / STREAM_FPS if stream else None
        result = pipeline.process(frame, now=now, independent=not stream)
        return result.timings_ms, len(result.faces)

    def finish(result: LoopResult) -> dict[str, Any]:
        row = result.to_json()
        row["per_face_ms"] = {task: per_face_ms(result.samples.get(task, []), result.faces_timed)
                              for task in ("emotion", "gender")}
        row["full_scan_every"] = pipeline.schedule.every  # what this process ran, not what the bench asked
        detector = getattr(pipeline.detector, "settings", None)  # BlazeFace's: its whole-frame model's threads
        row["threads"] = {"classifier": threads, "detector": getattr(detector, "threads", 1),
                          "opencv": cv2.getNumThreads(), "cpus": os.cpu_count()}
        # mirror averaging: two invokes; a joint model (one file for both tasks) is counted once
        classifiers = [("joint", pipeline.emotion)] if pipeline.joint else [
            ("emotion", pipeline.emotion), ("gender", pipeline.gender)]
        row["models"] = {task: model_facts(clf.path, threads, clf.input_dtype.name)
                         | {"invokes_per_face": 2 if clf.flip_average else 1} for task, clf in classifiers}
        return row

    serve(Loop(process, store, all_frames=not stream), warmup, finish)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m edge.bench.row", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-file", required=True, help=".npy of (N, H, W, 3) uint8 frames")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--stream", action="store_true", help="frames of one video/camera stream (tracking on)")
    parser.add_argument("--settings", required=True, help="the row's settings: JSON {\"models\": {...}, "
                        "\"detector\": {...}} as edge.cli.settings_to_json writes it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        models, detector = settings_from_json(args.settings)
        pipeline = Pipeline.from_models(models, detector, SmoothingSettings(), track=True)
        store = np.load(args.frames_file, mmap_mode="r")
    except (ModelError, RuntimeMissing, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve_row(pipeline, store, max(0, args.warmup), args.stream, models.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
