"""Faces each detector finds on every shared set, at every face size, and what a 640x480 scan costs.

    python -m train_host.detector_sets --data ../shared/data --media ../shared/media
    python -m train_host.detector_sets --data ../shared/data --media ../shared/media --json out/detector_sets.json \\
        --markdown out/detector_sets.md --detectors haar,blazeface,blazeface:closeups=fallback

The table that chose the default detector (README, "Face detectors"). Each
detector is a ``[detector]`` setting: ``haar`` (the paper's), ``blazeface``
(the shipped ``[detector.blazeface]``), or either with ``:key=value`` overrides
of its keys (``blazeface:model=short``, ``blazeface:small_faces=true``). Every
frame is an independent photo (a whole-frame scan), as ``analyze`` and the
bench's photo rows run it. The sets:

- ``media``: the photos of ``--media`` (a person count each in its
  ``manifest.csv``) at their own size and letterboxed to 640x480: faces found
  (``min(boxes, persons)`` per photo), extra boxes on positives, boxes on the
  negatives (false faces), and the photos where a detector finds fewer faces
  than Haar;
- ``down-scaled``: the same positives shrunk to half of 640x480 and pasted
  into a 640x480 negative photo (group photos become rooms of 10-40 px faces);
- ``sizes``: every face Haar and BlazeFace's full-range model both find at native size
  in the positives and in every 10th / 40th frame of the two videos (two
  detectors of different kinds agreeing: a real face), its picture scaled so
  the face is 24 to 120 px wide and cut to a 640x480 window around it; found
  when a box overlaps it (IoU >= 0.3);
- ``close-ups``: UTKFace test chips and FER-2013 PublicTest chips enlarged to
  200x200 (the face fills the photo): photos with at least one box.

``ms`` is the median wall time of ``detect()`` on the 640x480 media frames,
the detectors taking turns frame by frame (:func:`frame_times`; this machine,
one process; the bench times the whole pipeline). Test data
only: nothing here was used to fit a detector or its settings.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench.frames import every_nth_frame, letterbox
from edge.detectors import BlazeFaceSettings, Detector, DetectorSettings, make_detector
from edge.frame.manifest import Manifest, ModelError, default_models_dir
from edge.frame.tracking import iou
from edge.settings import ConfigError

FRAME = (640, 480)
SIZES = (24, 30, 36, 44, 54, 66, 80, 100, 120)  # face (Haar box) width in a 640x480 frame, px
VIDEO_STEPS = {"hamilton_short_clip.mp4": 10, "simplefr_video2_720p.mp4": 40}  # reference faces from every n-th
DEFAULT_DETECTORS = "haar,blazeface"
TIMING_ROUNDS = 3
BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class SetsError(ValueError):
    """Bad input: one line, exit status 2."""


@dataclass
class Tally:
    """Faces (or photos) a detector found out of those there are, and boxes where there is no face."""

    found: int = 0
    total: int = 0
    false: int = 0
    extra: int = 0
    fewer_than_haar: list[str] = field(default_factory=list)
    false_on: dict[str, int] = field(default_factory=dict)  # negative photo -> boxes on it

    @property
    def rate(self) -> float:
        return self.found / self.total if self.total else 0.0


def parse_detector(spec: str) -> DetectorSettings:
    """``haar``, ``blazeface`` or either with ``:key=value`` overrides (``blazeface:model=short``)."""
    backend, *pairs = spec.split(":")
    if backend not in ("haar", "blazeface"):
        raise SetsError(f"--detectors: unknown backend {backend!r} in {spec!r} (haar or blazeface)")
    top: dict[str, Any] = {"backend": backend}
    blaze: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        target, defaults = (blaze, BlazeFaceSettings()) if backend == "blazeface" else (top, DetectorSettings())
        if not sep or not hasattr(defaults, key):
            raise SetsError(f"--detectors: {pair!r} in {spec!r} is not KEY=VALUE of a [detector] key")
        kind = type(getattr(defaults, key))
        try:
            target[key] = BOOLEANS[value.lower()] if kind is bool else kind(value)
        except (KeyError, ValueError):
            raise SetsError(f"--detectors: {key}={value!r} in {spec!r} is not a {kind.__name__}") from None
    settings = replace(DetectorSettings(**top), blazeface=replace(BlazeFaceSettings(), **blaze))
    try:
        settings.validate()
    except ConfigError as exc:
        raise SetsError(f"--detectors {spec!r}: {exc}") from None
    return settings


def gray_bgr(image: np.ndarray) -> np.ndarray:
    """A gray image as three equal channels: what a camera frame of a gray chip looks like."""
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def read_media(media: Path) -> tuple[list[tuple[str, np.ndarray, int]], list[tuple[str, np.ndarray]]]:
    """(name, BGR photo, persons) for the positives and (name, photo) for the negatives of ``media``."""
    try:
        with open(media / "manifest.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["kind"] != "video"]
    except OSError as exc:
        raise SetsError(f"--media: cannot read {media / 'manifest.csv'} ({exc.strerror})") from None
    positives, negatives = [], []
    for row in rows:
        image = cv2.imread(str(media / row["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise SetsError(f"--media: {media / row['file']} is not a readable image")
        count = int(row["expected_faces"].split()[0])
        (positives.append((row["file"], image, count)) if count else negatives.append((row["file"], image)))
    return positives, negatives


def backgrounds(negatives: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    """640x480 gray-as-BGR backdrops cut from the negative photos (scaled to cover the frame)."""
    out = []
    for _, image in negatives:
        rows, cols = image.shape[:2]
        scale = max(FRAME[0] / cols, FRAME[1] / rows)
        big = cv2.resize(image, (max(FRAME[0], round(cols * scale)), max(FRAME[1], round(rows * scale))))
        out.append(gray_bgr(cv2.cvtColor(big[:FRAME[1], :FRAME[0]], cv2.COLOR_BGR2GRAY)))
    return out


def video_frames(media: Path, every: dict[str, int]) -> list[tuple[str, np.ndarray]]:
    """Every ``every[name]``-th frame of the videos of ``media/videos``, as (name#index, BGR frame)."""
    try:
        return [(f"{name}#{index}", frame) for name, step in every.items()
                for index, frame in every_nth_frame(media / "videos" / name, step)]
    except ValueError as exc:
        raise SetsError(f"--media: {exc}") from None


def reference_faces(images: list[tuple[str, np.ndarray]], haar: Detector, blazeface: Detector) -> list[tuple]:
    """(image, box) for each face both detectors find in ``images`` at their own size (IoU >= 0.3): a face two
    detectors of different kinds agree on is a face, the box is Haar's (the size the sweep is in)."""
    faces = []
    for _, image in images:
        others = blazeface.detect(image)
        for box in haar.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)):
            if any(iou(box, other) >= 0.3 for other in others):
                faces.append((image, tuple(int(v) for v in box)))
    return faces


def place_face(image: np.ndarray, box: tuple, width: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """``image`` scaled so the face ``box`` is ``width`` px wide, then a 640x480 window of it around the face
    (at a random place in the window; gray where the picture ends): (frame, the face's box in it)."""
    x, y, w, h = box
    scale = width / w
    big = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    fx, fy, fw = round(x * scale), round(y * scale), round(w * scale)
    ox = fx - int(rng.integers(0, max(1, FRAME[0] - fw)))
    oy = fy - int(rng.integers(0, max(1, FRAME[1] - fw)))
    frame = np.full((FRAME[1], FRAME[0], 3), 128, np.uint8)
    sx0, sy0 = max(0, ox), max(0, oy)
    sx1, sy1 = min(big.shape[1], ox + FRAME[0]), min(big.shape[0], oy + FRAME[1])
    frame[sy0 - oy:sy1 - oy, sx0 - ox:sx1 - ox] = big[sy0:sy1, sx0:sx1]
    return frame, (fx - ox, fy - oy, fw, fw)


def timed_detect(detector: Detector, image: np.ndarray, clock: list[float]) -> list:
    """``detector.detect`` on ``image`` (BGR, or gray for a gray-only detector), its wall time appended."""
    frame = image if detector.color else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    start = time.perf_counter()
    boxes = detector.detect(frame)
    clock.append(time.perf_counter() - start)
    return boxes


def frame_times(detectors: dict[str, Detector], frames: list[np.ndarray], rounds: int = TIMING_ROUNDS
                ) -> dict[str, float]:
    """Median ms of ``detect()`` per frame for each detector, the detectors taking turns frame by frame in
    ``rounds`` rounds, so a machine whose load changes slows them all alike (one warm-up pass first)."""
    clocks: dict[str, list[float]] = {name: [] for name in detectors}
    for round_ in range(rounds + 1):
        for frame in frames:
            for name, detector in detectors.items():
                timed_detect(detector, frame, clocks[name] if round_ else [])
    return {name: round(float(np.median(c)) * 1e3, 2) for name, c in clocks.items()}


def media_tallies(detectors: dict[str, Detector], positives, negatives,
                  size: tuple[int, int] | None) -> dict[str, Tally]:
    """Faces found on the positives, extra and false boxes, at native size (``size`` None) or letterboxed."""
    tallies = {name: Tally() for name in detectors}
    counts: dict[str, dict[str, int]] = {name: {} for name in detectors}
    for name, detector in detectors.items():
        clock: list[float] = []
        for file, image, persons in positives:
            frame = letterbox(image, size) if size else image
            boxes = timed_detect(detector, frame, clock)
            tally = tallies[name]
            tally.found += min(len(boxes), persons)
            tally.total += persons
            tally.extra += max(0, len(boxes) - persons)
            counts[name][file] = min(len(boxes), persons)
        for file, image in negatives:
            frame = letterbox(image, size) if size else image
            false = len(timed_detect(detector, frame, clock))
            tallies[name].false += false
            if false:
                tallies[name].false_on[file] = false
    if "haar" in counts:
        for name in detectors:
            tallies[name].fewer_than_haar = [f for f, n in counts[name].items() if n < counts["haar"][f]]
    return tallies


def downscaled_tallies(detectors: dict[str, Detector], positives, backdrops: list[np.ndarray]) -> dict[str, Tally]:
    """Positives letterboxed to half of 640x480 and pasted into a backdrop: faces found, boxes beyond them."""
    half = (FRAME[0] // 2, FRAME[1] // 2)
    rng = np.random.default_rng(0)
    frames = []
    for index, (_, image, persons) in enumerate(positives):
        frame = backdrops[index % len(backdrops)].copy()
        x, y = int(rng.integers(0, FRAME[0] - half[0])), int(rng.integers(0, FRAME[1] - half[1]))
        frame[y:y + half[1], x:x + half[0]] = letterbox(image, half)
        frames.append((frame, persons))
    tallies = {}
    for name, detector in detectors.items():
        tally = Tally()
        for frame, persons in frames:
            boxes = timed_detect(detector, frame, [])
            tally.found += min(len(boxes), persons)
            tally.total += persons
            tally.extra += max(0, len(boxes) - persons)
        tallies[name] = tally
    return tallies


def size_tallies(detectors: dict[str, Detector], faces: list[tuple]) -> dict[str, dict[int, Tally]]:
    """Each reference face at each width of :data:`SIZES` in a 640x480 window of its own picture: found when a
    box overlaps it (IoU >= 0.3)."""
    rng = np.random.default_rng(1)
    cases = [(size, *place_face(image, box, size, rng)) for size in SIZES for image, box in faces]
    out: dict[str, dict[int, Tally]] = {}
    for name, detector in detectors.items():
        tallies = {size: Tally() for size in SIZES}
        for size, frame, face in cases:
            boxes = timed_detect(detector, frame, [])
            tallies[size].found += int(any(iou(tuple(box), face) >= 0.3 for box in boxes))
            tallies[size].total += 1
        out[name] = tallies
    return out


def closeup_tallies(detectors: dict[str, Detector], chips: np.ndarray) -> dict[str, Tally]:
    """Chips enlarged to 200x200 (the face fills the photo): photos with at least one box."""
    frames = [gray_bgr(cv2.resize(chip, (200, 200), interpolation=cv2.INTER_LINEAR)) for chip in chips]
    tallies = {}
    for name, detector in detectors.items():
        tally = Tally(total=len(frames))
        for frame in frames:
            tally.found += int(bool(timed_detect(detector, frame, [])))
        tallies[name] = tally
    return tallies


def load_chips(path: Path, limit: int) -> np.ndarray:
    """``limit`` chips of an ``.npz`` test split (``x``), spread evenly over the file."""
    try:
        with np.load(path) as data:
            x = data["x"]
    except (OSError, KeyError, ValueError) as exc:
        raise SetsError(f"--data: cannot read faces from {path} ({exc})") from None
    picks = np.linspace(0, len(x) - 1, num=min(limit, len(x))).astype(int)
    return x[picks]


def measure(detector_specs: list[str], data: Path, media: Path, models: Path, limit: int) -> dict[str, Any]:
    """Every set for every detector: the report ``--json`` writes."""
    manifest = Manifest.load(models)
    settings = {spec: parse_detector(spec) for spec in detector_specs}
    detectors = {spec: make_detector(s, manifest) for spec, s in settings.items()}
    positives, negatives = read_media(media)
    backdrops = backgrounds(negatives)
    utk = data / "utkface" / "utkface_gender_gray64_test.npz"
    fer = data / "fer2013" / "fer2013_PublicTest.npz"
    for needed in (utk, fer):  # before minutes of media scans, not after
        if not needed.is_file():
            raise SetsError(f"--data: {needed} not found (the test splits of ../shared/data)")
    report: dict[str, Any] = {"detectors": {spec: asdict(s) for spec, s in settings.items()}, "sets": {}}
    sets = report["sets"]
    steps = [("media native", lambda: media_tallies(detectors, positives, negatives, None)),
             ("media 640x480", lambda: media_tallies(detectors, positives, negatives, FRAME)),
             ("down-scaled", lambda: downscaled_tallies(detectors, positives, backdrops)),
             ("close-ups UTKFace", lambda: closeup_tallies(detectors, load_chips(utk, limit))),
             ("close-ups FER-2013", lambda: closeup_tallies(detectors, load_chips(fer, limit)))]
    for title, step in steps:
        print(f"detector_sets: {title} ...", file=sys.stderr, flush=True)
        sets[title] = {name: asdict(t) | {"rate": round(t.rate, 4)} for name, t in step().items()}
    print("detector_sets: sizes ...", file=sys.stderr, flush=True)
    pictures = [(name, image) for name, image, _ in positives] + video_frames(media, VIDEO_STEPS)
    # The full-range model alone confirms Haar's boxes: the set must not move with the settings under test
    # (the short-range fallback's loose boxes around small faces would let some of Haar's false faces in).
    faces = reference_faces(pictures, make_detector(DetectorSettings(backend="haar"), manifest),
                            make_detector(DetectorSettings(backend="blazeface",
                                                           blazeface=BlazeFaceSettings(fallback=False)), manifest))
    report["reference_faces"] = len(faces)
    sizes = size_tallies(detectors, faces)
    sets["sizes"] = {name: {str(s): asdict(t) | {"rate": round(t.rate, 4)} for s, t in per.items()}
                     for name, per in sizes.items()}
    print("detector_sets: timing ...", file=sys.stderr, flush=True)
    frames = [letterbox(image, FRAME) for image in [p[1] for p in positives] + [n[1] for n in negatives]]
    report["ms_per_640x480_frame"] = frame_times(detectors, frames)
    return report


def markdown(report: dict[str, Any]) -> str:
    """Two tables: the sets, and faces found by face width."""
    names = list(report["detectors"])
    sets = report["sets"]

    def cell(t: dict[str, Any], false: bool = False) -> str:
        text = f"{t['found']}/{t['total']}"
        return text + (f", {t['false']} false" if false else "")

    lines = ["| detector | media native: found, false | media 640x480: found, false | fewer than Haar (640x480) | "
             "down-scaled | close-ups UTKFace | close-ups FER-2013 | ms per 640x480 frame |",
             "|---|---|---|---|---|---|---|---|"]
    for name in names:
        fewer = ", ".join(sets["media 640x480"][name]["fewer_than_haar"]) or "none"
        lines.append(f"| `{name}` | {cell(sets['media native'][name], True)} | "
                     f"{cell(sets['media 640x480'][name], True)} | {fewer} | {cell(sets['down-scaled'][name])} | "
                     f"{cell(sets['close-ups UTKFace'][name])} | {cell(sets['close-ups FER-2013'][name])} | "
                     f"{report['ms_per_640x480_frame'][name]:.2f} |")
    lines += ["", f"Faces found by face width ({report['reference_faces']} faces, each in a 640x480 window of "
              "its own picture):", "", "| detector | " + " | ".join(f"{s} px" for s in SIZES) + " |",
              "|---|" + "---|" * len(SIZES)]
    for name in names:
        per = sets["sizes"][name]
        lines.append(f"| `{name}` | " + " | ".join(f"{100 * per[str(s)]['rate']:.0f}%" for s in SIZES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.detector_sets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder with fer2013/ and utkface/ (.npz test splits)")
    parser.add_argument("--media", required=True, help="folder with manifest.csv (file, kind, expected_faces)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--detectors", default=DEFAULT_DETECTORS,
                        help=f"comma list of haar|blazeface[:key=value...] (default {DEFAULT_DETECTORS})")
    parser.add_argument("--limit", type=int, default=2000, help="test chips per close-up set (default 2000)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--markdown", help="write the tables here")
    args = parser.parse_args(argv)
    try:
        if args.limit < 1:
            raise SetsError("--limit must be at least 1")
        report = measure([s for s in args.detectors.split(",") if s], Path(args.data), Path(args.media),
                         Path(args.models), args.limit)
    except (SetsError, ModelError) as exc:
        print(f"detector_sets: {exc}", file=sys.stderr)
        return 2
    text = markdown(report)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
