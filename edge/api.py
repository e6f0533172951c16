"""The Python API: three lines from a photo to labelled faces.

    from edge import FaceAnalyzer

    analyzer = FaceAnalyzer()                       # the shipped int8 models
    result = analyzer.analyze_image("photo.jpg")    # a path, or a numpy image (BGR or gray)
    print(result.to_json())

Photos are **independent**: every call scans the whole picture and returns the
models' own labels, whatever was analysed before (the bare ``Pipeline`` treats
calls as one video stream, so an unrelated second photo could come back with
no face). Video is a stream: ``with analyzer.stream(fps=30) as stream:`` keeps
track ids across frames and smooths the labels, as the service does.

This module is a thin layer over :class:`edge.frame.pipeline.Pipeline`; the results
are plain dataclasses whose ``to_dict()`` is the object ``python -m edge
analyze --json`` prints for the same picture. Their faces are the pipeline's
own :class:`edge.frame.results.Face` (re-exported here), so there is one face type.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from edge.detectors import DetectorSettings
from edge.detectors.settings import Backend
from edge.frame.pipeline import ModelSettings, Pipeline
from edge.frame.results import Face, FrameResult, frame_dict
from edge.frame.tracking import SmoothingSettings
from edge.inputs.imagefile import ANALYZE_FIT, ImageFileError, read_image_sized
from edge.inputs.sources import BadImage, OpenCVSource, checked_frame
from edge.settings import from_mapping

__all__ = ["BadImage", "Face", "FaceAnalyzer", "ImageResult", "Stream", "analyze_image"]


@dataclass(frozen=True)
class ImageResult:
    """Every face found in one image or video frame, and where the time went.

    ``frame`` counts frames within a stream (0 for a photo); ``timings_ms``
    holds the per-stage milliseconds (``detect``, ``crop``, ``emotion``,
    ``gender``, ``track``, ``total``...).
    """

    faces: list[Face]
    width: int
    height: int
    path: str | None = None
    frame: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def largest(self) -> Face | None:
        """The face with the largest box, or None when there is no face."""
        return max(self.faces, key=lambda f: f.box[2] * f.box[3], default=None)

    @staticmethod
    def from_result(result: FrameResult, path: str | None = None, frame: int | None = None) -> ImageResult:
        return ImageResult(faces=list(result.faces), width=result.width, height=result.height, path=path,
                           frame=result.index if frame is None else frame, timings_ms=dict(result.timings_ms))

    def to_dict(self) -> dict[str, Any]:
        """The same object ``python -m edge analyze --json`` prints for this image (its size included)."""
        return frame_dict(self.path, self.frame, self.width, self.height, self.faces, self.timings_ms)

    def to_json(self, **dumps: Any) -> str:
        """``to_dict()`` as a JSON string; keyword arguments go to :func:`json.dumps`."""
        return json.dumps(self.to_dict(), **dumps)


def _load(image: str | Path | np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None, tuple[int, int] | None]:
    """(image, gray, path or None, the file's own size or None) for a path or an array; :class:`BadImage` with
    one line when unusable. Files are decoded as ``analyze`` decodes them: reduced to fit 4096 x 4096."""
    if isinstance(image, np.ndarray):
        return (*checked_frame(image, "image array"), None, None)
    if not isinstance(image, (str, Path)):
        raise BadImage(f"expected a file path or a numpy image, got {type(image).__name__}")
    path = Path(image)
    if not path.is_file():
        raise BadImage(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    try:  # decoded reduced as `analyze` does: a 12000x9000 JPEG at full size took 3.6 GB
        decoded, original = read_image_sized(path, ANALYZE_FIT)
    except ImageFileError as exc:
        raise BadImage(f"{path}: {exc}") from None
    return (*checked_frame(decoded, str(path)), str(path), original)


class FaceAnalyzer:
    """Load the models once; analyse photos (independent) and streams (tracked).

    ``models`` is a folder with ``manifest.json`` (default: the models shipped
    with the package), ``variant`` ``"int8"`` (default) or ``"float32"``,
    ``threads`` the classifier threads, ``stream_flip`` how a stream's tracked
    faces are mirror-averaged and ``joint`` whether one file answers both tasks
    where the manifest lists one (:class:`~edge.frame.pipeline.ModelSettings`). ``backend`` picks the face detector by
    name (``"blazeface"``, the default, or ``"haar"``: paper mode); ``detector`` sets all
    its settings (:class:`edge.detectors.DetectorSettings`) and ``smoothing``
    the label smoothing of streams (:class:`edge.frame.tracking.SmoothingSettings`).
    A missing or modified model raises :class:`edge.frame.manifest.ModelError`
    naming the file; an unknown backend :class:`edge.settings.ConfigError`.
    """

    def __init__(self, models: str | Path | None = None, variant: str = "int8", threads: int = ModelSettings.threads,
                 detector: DetectorSettings | None = None, smoothing: SmoothingSettings | None = None,
                 backend: str | None = None, flip_average: str = "auto",
                 stream_flip: str = ModelSettings.stream_flip, joint: bool = ModelSettings.joint):
        # through the config file's parser: the same type and range checks, the same one-line errors
        self._settings = from_mapping(ModelSettings, {"dir": str(models) if models else "", "variant": variant,
                                                      "threads": threads, "flip_average": flip_average,
                                                      "stream_flip": stream_flip, "joint": joint}, "models")
        if backend is not None:  # the detector backend by name ("haar", "blazeface"), other settings as given
            detector = replace(detector or DetectorSettings(), backend=cast(Backend, backend))  # checked next line
            detector.validate()
        self._detector = detector
        self.smoothing = smoothing or SmoothingSettings()
        self._pipeline = Pipeline.from_models(self._settings, detector, self.smoothing, track=False)
        self._idle_stream: Pipeline | None = None  # kept between streams: the models load once

    def analyze_image(self, image: str | Path | np.ndarray) -> ImageResult:
        """Faces of one photo: a file path, or an image array (BGR as ``cv2.imread`` gives, or gray).

        Each call is independent of the ones before it. An unreadable file
        raises :class:`edge.inputs.sources.BadImage` with a one-line message.
        """
        frame, gray, path, original = _load(image)  # the colour frame too: a colour detector (BlazeFace) uses it
        result = self._pipeline.process(frame, gray, independent=True)
        if original:  # a photo decoded reduced: boxes and size in the file's own pixels, as `analyze` prints them
            result = result.in_size(*original)
        return ImageResult.from_result(result, path, frame=0)

    @contextmanager
    def stream(self, fps: float | None = None) -> Iterator[Stream]:
        """A video stream: ``with analyzer.stream(fps=30) as s: s.analyze(frame)`` for each frame in order.

        Faces keep their ``track`` id from frame to frame and labels are
        smoothed over time. With ``fps`` the frame count sets the clock (right
        for video files, however fast they are processed); without it the
        wall clock does (right for a live camera).
        """
        pipeline, self._idle_stream = self._idle_stream, None
        if pipeline is None:  # the first stream, or one opened while another runs
            pipeline = Pipeline.from_models(self._settings, self._detector, self.smoothing, track=True)
        pipeline.reset()
        try:
            yield Stream(pipeline, fps)
        finally:
            self._idle_stream = pipeline

    def analyze_video(self, path: str | Path) -> Iterator[ImageResult]:
        """Every frame of a video file as a tracked stream; :class:`edge.inputs.sources.SourceError` if unreadable."""
        source = OpenCVSource(str(path))
        source.open()
        try:
            with self.stream(fps=source.frame_rate) as stream:
                for frame in source:
                    yield stream.analyze(frame.image, path=str(path))
        finally:
            source.close()


class Stream:
    """Frames of one video or camera, in order; made by :meth:`FaceAnalyzer.stream`."""

    def __init__(self, pipeline: Pipeline, fps: float | None):
        self._pipeline = pipeline
        self._fps = fps
        self._frames = 0
        self._start = time.monotonic()

    def analyze(self, frame: np.ndarray, timestamp: float | None = None, path: str | None = None) -> ImageResult:
        """Faces of the next frame (BGR or gray array). ``timestamp`` (seconds) overrides the stream's clock."""
        frame, gray = checked_frame(frame, "frame")  # the same conversion as analyze_image (float, 16-bit, BGRA)
        if timestamp is None:
            timestamp = self._frames / self._fps if self._fps else time.monotonic() - self._start
        self._frames += 1
        return ImageResult.from_result(self._pipeline.process(frame, gray, now=timestamp), path)


_default: FaceAnalyzer | None = None


def analyze_image(image: str | Path | np.ndarray) -> ImageResult:
    """``FaceAnalyzer().analyze_image(image)`` with the shipped models, loaded once per process."""
    global _default
    if _default is None:
        _default = FaceAnalyzer()
    return _default.analyze_image(image)
