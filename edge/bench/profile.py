"""Where each detector's time goes: every sub-step of a scan, in wall-clock and CPU time.

    python -m edge.bench.profile                      # samples/, 640x480, 200 passes; BlazeFace at 1 and 2
                                                      # threads, then Haar (paper mode)
    python -m edge.bench.profile --source ../shared/media/single_faces --threads 2 --repeat 500
    python -m edge.bench.profile --backends haar

The frames are letterboxed to ``--size`` as the bench shows them. For
BlazeFace (the default detector) each pass runs
the whole-frame model as the detector does and times its steps
(:meth:`BlazeFaceModel.raw`'s ``lap``): ``resize`` (:func:`shrink`),
``colour`` (BGR -> RGB), ``input`` (letterbox padding and normalisation into
the input tensor), ``invoke``, ``decode`` (logit threshold, anchors), ``nms``
(weighted), ``unletterbox``, ``map`` (to Haar-like boxes and each task's
crop), then ``detect()`` as the pipeline calls it (with the short-range
fallback on frames without a face), and ``detect() small_faces`` with the four
tiles of ``small_faces`` as well. For Haar (paper mode) the steps are ``gray``
(the conversion the pipeline does), ``cascade`` (``detectMultiScale``, with the
equalisation and resizing its settings ask for: :meth:`HaarDetector.detect`)
and nothing else: the cascade is the whole scan. ``cpu`` is the process's CPU time (all
threads: OpenCV's and the interpreter's workers), ``main`` the calling
thread's. With other jobs on the machine wall times stretch, CPU times far
less (though a thread that was preempted resumes with cold caches: the steps
after ``invoke`` then read several times their idle cost), so compare CPU
times there and re-run on an idle machine for wall-clock figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.bench.frames import image_files, letterbox, parse_size
from edge.detectors import DetectorSettings, make_detector
from edge.detectors.blazeface import BlazeFaceDetector
from edge.detectors.haar import HaarDetector
from edge.detectors.settings import BACKENDS, BLAZEFACE_MODELS, BlazeFaceSettings
from edge.frame.manifest import Manifest, ModelError, default_models_dir, default_samples_dir

STEPS = ("resize", "colour", "input", "invoke", "decode", "nms", "unletterbox", "map", "run() total", "detect()",
         "detect() small_faces")
HAAR_STEPS = ("gray", "cascade")


class Clocks:
    """Wall, process-CPU and thread-CPU samples (ms) per step."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, ...]]] = {step: [] for step in STEPS}
        self._last = self.now()

    @staticmethod
    def now() -> tuple[int, int, int]:
        return time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns()

    def add(self, step: str, begin: tuple[int, int, int], end: tuple[int, int, int]) -> None:
        self.samples.setdefault(step, []).append(tuple((b - a) / 1e6 for a, b in zip(begin, end)))

    def start(self) -> None:
        self._last = self.now()

    def lap(self, step: str) -> None:
        now = self.now()
        self.add(step, self._last, now)
        self._last = now

    def table(self) -> list[str]:
        lines = [f"{'step':12s} {'wall median':>11s} {'mean':>7s} {'cpu median':>10s} {'mean':>7s} "
                 f"{'main median':>11s} {'mean':>7s}"]
        for step, rows in self.samples.items():
            if rows:
                a = np.array(rows)
                med, mean = np.median(a, axis=0), a.mean(axis=0)
                lines.append(f"{step:12s} {med[0]:11.3f} {mean[0]:7.3f} {med[1]:10.3f} {mean[1]:7.3f} "
                             f"{med[2]:11.3f} {mean[2]:7.3f}")
        return lines


def profile(detector: BlazeFaceDetector, frames: list[np.ndarray], repeat: int,
            tiled: BlazeFaceDetector | None = None) -> Clocks:
    """Time each sub-step of the whole-frame model on every frame, ``repeat`` times (after one warm-up pass);
    ``tiled`` (the same detector with ``small_faces``) adds its whole ``detect()``."""
    model, s = detector.main, detector.settings
    clocks = Clocks()
    for rep in range(repeat + 1):
        if rep == 1:
            clocks = Clocks()
        for image in frames:
            begin = clocks.now()
            clocks.start()
            model.run(image, s.score_threshold, s.nms_iou, lap=clocks.lap)
            clocks.add("run() total", begin, clocks.now())
            clocks.start()
            detector.detect(image)
            clocks.lap("detect()")
            if tiled is not None:
                tiled.detect(image)
                clocks.lap("detect() small_faces")
    return clocks


def profile_haar(detector: HaarDetector, frames: list[np.ndarray], repeat: int) -> Clocks:
    """The gray conversion and the cascade, as the pipeline runs them in paper mode."""
    clocks = Clocks()
    clocks.samples = {step: [] for step in HAAR_STEPS}
    for rep in range(repeat + 1):
        if rep == 1:
            clocks.samples = {step: [] for step in HAAR_STEPS}
        for image in frames:
            clocks.start()
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            clocks.lap("gray")
            detector.detect(gray)
            clocks.lap("cascade")
    return clocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(default_samples_dir()),
                        help="a folder of photos (default: samples/, or the sample photos a wheel ships)")
    parser.add_argument("--size", default="640x480", help="letterbox every photo to this frame size")
    parser.add_argument("--repeat", type=int, default=200, help="passes over the frames (default 200)")
    parser.add_argument("--backends", default="blazeface,haar",
                        help="detectors to profile, comma-separated (default blazeface,haar)")
    parser.add_argument("--threads", default="1,2", help="BlazeFace: interpreter threads of the whole-frame model")
    parser.add_argument("--model", default="full", choices=BLAZEFACE_MODELS)
    parser.add_argument("--models", default=str(default_models_dir()))
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.size)
        threads = [int(t) for t in args.threads.split(",")]
        backends = [b for b in args.backends.split(",") if b]
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown or not backends:
            raise ValueError(f"--backends: unknown {', '.join(unknown) or 'none given'} (known: {', '.join(BACKENDS)})")
        paths = image_files(Path(args.source))
        frames = [letterbox(image, size) for image in (cv2.imread(str(p)) for p in paths) if image is not None]
        if not frames:
            raise ValueError(f"{args.source}: no readable images")
        manifest = Manifest.load(args.models)
        where = f"{len(frames)} frames of {args.source} at {args.size}, {args.repeat} passes; ms per frame"
        for backend in backends:
            if backend == "haar":
                haar = make_detector(DetectorSettings(backend="haar"), manifest)
                assert isinstance(haar, HaarDetector)
                print(f"haar (paper mode): {where}")
                print("\n".join(profile_haar(haar, frames, args.repeat).table()))
                continue
            for count in threads:
                settings = replace(BlazeFaceSettings(), model=args.model, threads=count)
                settings.validate()
                detector = BlazeFaceDetector.from_manifest(manifest, settings)
                tiled = BlazeFaceDetector.from_manifest(manifest, replace(settings, small_faces=True))
                clocks = profile(detector, frames, args.repeat, tiled)
                rows, cols = frames[0].shape[:2]
                height, width = detector.main.shape_for(rows, cols, None)
                print(f"blazeface, model {args.model} at {height}x{width} (HxW), {count} thread(s): {where}")
                print("\n".join(clocks.table()))
    except (ValueError, ModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
