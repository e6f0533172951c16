"""The bench's input: real frames prepared once, shared by every row, and the faces a person counts in them.

Images are letterboxed to the bench size (default 640x480, a camera's frame):
scaled to fit, aspect ratio kept, the rest padded black, so a tall portrait is
not squashed into a face Haar would not find. A video's first frames (up to
``MAX_STORED``) and a camera's recorded frames are letterboxed the same way.
Decoding is done here, before timing: a camera delivers raw pixels, not JPEG.

The frames are saved as one ``.npy`` that every row (each in its own process,
the TensorFlow baselines included) memory-maps, so all rows see the very same
pixels.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.inputs.sources import (
    IMAGE_SUFFIXES,
    BadImage,
    FrameSource,
    OpenCVSource,
    Picamera2Source,
    SourceError,
    checked_frame,
    is_video,
)

MAX_STORED = 150  # distinct frames kept from a video or camera; the loop cycles through them


@dataclass
class Inputs:
    """Prepared frames (N, H, W, 3) uint8 BGR, what each came from, and how they were captured."""

    frames: np.ndarray
    names: list[str]  # path of each image (for the manifest); the source for video/camera frames
    kind: str  # "images" | "video" | "camera" | "held" (images repeated as one stream, see --hold)
    source: str
    capture_ms: list[float] = field(default_factory=list)  # camera only: time of each read()
    skipped: list[str] = field(default_factory=list)
    hold: int = 1  # "held": frames per image

    @property
    def stream(self) -> bool:
        """Frames of one stream (tracking and smoothing apply) rather than independent photos."""
        return self.kind != "images"


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 32:
        raise ValueError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480")
    return int(match[1]), int(match[2])


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` to fit ``size`` (width, height) keeping its aspect ratio; pad black, centred."""
    width, height = size
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    rows, cols = image.shape[:2]
    if (cols, rows) == (width, height):
        return np.ascontiguousarray(image)
    scale = min(width / cols, height / rows)
    new_w, new_h = max(1, int(round(cols * scale))), max(1, int(round(rows * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return cv2.copyMakeBorder(resized, top, height - new_h - top, left, width - new_w - left,
                              cv2.BORDER_CONSTANT, value=(0, 0, 0))


def every_nth_frame(path: Path, step: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) of every ``step``-th frame of a video file, read to its end; ValueError if it won't open.

    For the host tools that sample a clip (calibration, the detector table): the bench and the service read
    videos through :class:`~edge.inputs.sources.OpenCVSource` with its damaged-stretch handling instead.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: not a readable video")
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            if index % step == 0:
                yield index, frame
            index += 1
    finally:
        capture.release()


def image_files(folder: Path) -> list[Path]:
    """Images anywhere under ``folder`` (sorted); videos in a folder are not frames of a photo set."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(paths: list[Path], size: tuple[int, int], source: str) -> Inputs:
    frames, names, skipped = [], [], []
    for path in paths:
        try:
            image, _ = checked_frame(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), str(path))
        except BadImage as exc:
            skipped.append(str(exc))
            continue
        frames.append(letterbox(image, size))
        names.append(str(path))
    if not frames:
        raise SourceError(f"{source}: no readable images")
    return Inputs(np.stack(frames), names, "images", source, skipped=skipped)


def load_stream(reader: FrameSource, size: tuple[int, int], count: int, warmup: int, kind: str,
                source: str) -> Inputs:
    """Up to ``count`` frames from an open video or camera (after ``warmup`` discarded camera frames)."""
    frames: list[np.ndarray] = []
    capture_ms: list[float] = []
    for _ in range(warmup if kind == "camera" else 0):
        reader.read()
    while len(frames) < count:
        start = time.perf_counter()
        frame = reader.read()
        elapsed = (time.perf_counter() - start) * 1e3
        if frame is None:
            break
        capture_ms.append(elapsed)
        frames.append(letterbox(frame.image, size))
    if not frames:
        raise SourceError(f"{source}: no frames could be read")
    return Inputs(np.stack(frames), [source] * len(frames), kind, source, capture_ms if kind == "camera" else [])


def _quiet_opencv() -> None:
    """OpenCV prints multi-line warnings when a camera index is absent; the bench says it in one line."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)


def open_camera(size: tuple[int, int]) -> FrameSource:
    """The Pi camera through picamera2, else the first OpenCV camera; :class:`SourceError` if neither opens."""
    reasons = []
    _quiet_opencv()
    for reader in (Picamera2Source(main_size=size), OpenCVSource(0, width=size[0], height=size[1])):
        try:
            reader.open()
            return reader
        except SourceError as exc:
            reasons.append(str(exc))
    raise SourceError("no camera: " + "; ".join(reasons))


def load_inputs(source: str, size: tuple[int, int], frames: int, warmup: int) -> Inputs:
    """Frames from ``camera``, a video file, an image file or a folder of images (searched recursively)."""
    keep = max(1, min(frames, MAX_STORED))
    if source == "camera":
        reader = open_camera(size)
        try:
            return load_stream(reader, size, keep, warmup, "camera", "camera")
        finally:
            reader.close()
    path = Path(source)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise SourceError(f"{source}: no images in this folder")
        return load_images(files, size, source)
    if not path.exists():
        raise SourceError(f"{source}: no such file or folder")
    if is_video(path):
        reader = OpenCVSource(str(path))
        reader.open()
        try:
            return load_stream(reader, size, keep, 0, "video", source)
        finally:
            reader.close()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return load_images([path], size, source)
    raise SourceError(f"{source}: not an image, a video or a folder")


def leading_count(text: str) -> int | None:
    """Faces a manifest cell promises for one image: ``"2"`` -> 2, ``"1 (partial)"`` -> 1; ranges -> None."""
    text = (text or "").strip()
    if re.match(r"^\d+\s*-\s*\d+", text) or "per frame" in text:
        return None
    match = re.match(r"^(\d+)", text)
    return int(match[1]) if match else None


def read_manifest(path: Path) -> dict[str, int]:
    """``file -> expected faces`` for the single images of a manifest CSV (videos and ranges skipped)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    if rows and ("file" not in rows[0] or "expected_faces" not in rows[0]):
        raise SourceError(f"{path}: manifest needs 'file' and 'expected_faces' columns")
    expected = {}
    for row in rows:
        if (row.get("kind") or "").strip() == "video":
            continue
        count = leading_count(row.get("expected_faces", ""))
        if count is not None:
            expected[row["file"].strip()] = count
    return expected


def match_expected(names: list[str], manifest: Path, expected: dict[str, int]) -> list[int | None]:
    """Expected faces for each input image: by path relative to the manifest's folder, else by unique file name."""
    base = manifest.resolve().parent
    by_name: dict[str, list[int]] = {}
    for file, count in expected.items():
        by_name.setdefault(Path(file).name, []).append(count)
    out: list[int | None] = []
    for name in names:
        path = Path(name).resolve()
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            rel = None
        if rel is not None and rel in expected:
            out.append(expected[rel])
        elif len(by_name.get(path.name, [])) == 1:
            out.append(by_name[path.name][0])
        else:
            out.append(None)
    return out


def recall(found: list[int], expected: list[int | None]) -> dict[str, float | int | None]:
    """Face recall on the listed images, false faces on the listed negatives, extra faces on the rest.

    recall = sum over images of min(found, expected) / sum of expected; a
    negative (expected 0) contributes every face found to ``false_faces``.
    """
    hits = total = false = extra = negatives = listed = 0
    for got, want in zip(found, expected):
        if want is None or got < 0:
            continue
        listed += 1
        if want == 0:
            negatives += 1
            false += got
        else:
            hits += min(got, want)
            total += want
            extra += max(0, got - want)
    return {"recall": hits / total if total else None, "found": hits, "expected": total,
            "false_faces": false, "negatives": negatives, "extra_faces": extra, "images": listed}
