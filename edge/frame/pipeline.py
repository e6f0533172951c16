"""The on-device pipeline: frame -> face detector -> crops -> emotion + gender -> tracks.

``Pipeline(...).process(frame)`` returns a :class:`~edge.frame.results.FrameResult`
with boxes, track ids, labels, probabilities and per-stage timings in ms:
``convert`` (the frame to 8-bit gray for Haar, 8-bit BGR for BlazeFace),
``detect``, ``crop`` (crop, gray, preprocess), ``emotion``, ``gender``,
``track`` (association + smoothing) and ``total``. With a joint model (one
file, both tasks: ``[models] joint``) each face is cropped once and one set of
invokes answers both tasks, so ``emotion`` holds both and ``gender`` is about 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edge.detectors import Detector, DetectorSettings, ScanSchedule, crop_box, make_detector
from edge.frame.classifier import Classifier, View
from edge.frame.manifest import Manifest, ModelEntry, default_models_dir
from edge.frame.preprocess import crop_face, to_bgr, to_gray
from edge.frame.results import Face, FrameResult
from edge.frame.stats import PIPELINE_STAGES
from edge.frame.tracking import Box, SmoothingSettings, Track, Tracker, iou
from edge.inputs.sources import Frame
from edge.settings import ConfigError


@dataclass(frozen=True)
class ModelSettings:
    """The ``[models]`` config section."""

    dir: str = ""  # empty = models/ of this installation
    variant: str = "int8"  # "int8" | "float32" | a model name from the manifest
    threads: int = 2  # see docs/bench.md: a mirror pair is one batch-2 invoke, which two threads split
    # Test-time mirror averaging: score each face and its mirror image, average the two. It costs a second
    # invoke per face for the classifiers it names; what it buys is in docs/experiments.md. "auto" follows
    # each model's manifest entry (a model whose figures were measured mirror-averaged runs that way). With the
    # joint file both heads score the same crops, so a mirror image asked for by either is averaged into both.
    flip_average: Literal["auto", "none", "emotion", "gender", "both"] = "auto"
    # In a stream, a face that is already tracked gets one of the two views per frame, the crop and its mirror
    # image in turn, and the track's smoothing averages them ("alternate": half the mirror-averaging classifier's
    # invokes); a new face, a photo, and a pipeline without smoothing get both. "both": both on every frame.
    stream_flip: Literal["alternate", "both"] = "alternate"
    # Run a joint model (one trunk, two heads: one file answers both tasks in one invoke, see docs/experiments.md)
    # where the manifest lists one for the variant; false: the two single-task files (what ran before it shipped).
    joint: bool = True

    def flips(self, task: str, entry: ModelEntry) -> bool:
        """Whether the ``task`` classifier (manifest ``entry``) averages each face with its mirror image."""
        if self.flip_average == "auto":
            return entry.flip_average
        return self.flip_average in (task, "both")

    def validate(self) -> None:
        if not 1 <= self.threads <= 16:
            raise ConfigError(f"threads: {self.threads} is outside 1..16")


def clip_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` cut to the ``width`` x ``height`` frame: what a result reports, draws and crops.

    BlazeFace finds faces cut by the frame's edge and draws their whole square,
    partly outside; the classifiers still get that square (edge pixels
    repeated, :func:`~edge.frame.preprocess.crop_padded`), tracking keeps it, and the
    result says where the face is in the picture.
    """
    x, y, w, h = box
    x0, y0 = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    x1, y1 = max(min(x + w, width), x0 + 1), max(min(y + h, height), y0 + 1)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)  # plain ints, whatever the detector's type


def _now() -> float:
    return time.perf_counter()


class Pipeline:
    """Detect, classify and (for streams) track faces frame by frame."""

    def __init__(self, detector: Detector, emotion: Classifier, gender: Classifier,
                 smoothing: SmoothingSettings | None = None, track: bool = True, full_scan_every: int | None = None,
                 alternate_flips: bool = True):
        self.detector = detector
        self.alternate_flips = alternate_flips
        self.emotion = emotion
        self.gender = gender
        # One crop and one set of invokes for both tasks: a joint model whose two heads score the same views.
        self.joint = emotion.shares_invokes(gender) and emotion.flip_average == gender.flip_average
        self.smoothing = smoothing or SmoothingSettings()
        self.tracker = Tracker(self.smoothing) if track else None
        if full_scan_every is None:
            settings = getattr(detector, "settings", None)
            full_scan_every = getattr(settings, "full_scan_every", DetectorSettings().full_scan_every)
        self.schedule = ScanSchedule(detector, full_scan_every)
        self._index = 0

    @classmethod
    def from_models(cls, models: ModelSettings | None = None, detector: DetectorSettings | None = None,
                    smoothing: SmoothingSettings | None = None, track: bool = True) -> Pipeline:
        """Load and verify the models named by ``models`` and the detector ``detector`` names (manifest checks)."""
        models = models or ModelSettings()
        detector = detector or DetectorSettings()
        manifest = Manifest.load(Path(models.dir) if models.dir else default_models_dir())
        emotion_entry, gender_entry = manifest.select_pair(models.variant, models.joint)
        flips = {"emotion": models.flips("emotion", emotion_entry), "gender": models.flips("gender", gender_entry)}
        shared_file = gender_entry.file == emotion_entry.file
        if shared_file:  # one invoke scores both heads: the mirror image one asks for, the other gets for free
            flips = dict.fromkeys(flips, any(flips.values()))
        emotion = Classifier.from_manifest(manifest, emotion_entry, models.threads, flip_average=flips["emotion"])
        gender = Classifier.from_manifest(manifest, gender_entry, models.threads, flip_average=flips["gender"],
                                          share_with=emotion if shared_file else None)
        return cls(make_detector(detector, manifest), emotion, gender, smoothing, track, detector.full_scan_every,
                   alternate_flips=models.stream_flip == "alternate")

    def reset(self) -> None:
        """Start a new stream: forget tracks and restart frame numbering."""
        if self.tracker is not None:
            self.tracker.reset()
        self._index = 0
        self.schedule.reset()

    def process(self, frame: np.ndarray, gray: np.ndarray | None = None, now: float | None = None,
                box_scale: tuple[float, float] = (1.0, 1.0), independent: bool = False) -> FrameResult:
        """Analyse one frame.

        ``gray`` may be given when the source already has a gray image (the
        picamera2 lores Y plane); ``box_scale`` then maps its coordinates to the
        display frame's. ``now`` (seconds) drives smoothing; it defaults to the
        clock. ``independent`` marks an unrelated photo: no track, raw labels.
        """
        stamps = [_now()]  # one after each of PIPELINE_STAGES
        if gray is not None:
            pixels = gray
        elif self.detector.color:
            # A colour detector reads the BGR frame, and the classifiers' gray is made crop by crop
            # (:func:`crop_face`: the same pixels as cutting a gray frame, for a few small crops instead of it all).
            pixels = to_bgr(frame)
        else:
            pixels = to_gray(frame)
        stamps.append(_now())
        boxes, detection = self._detect(frame, pixels, independent)
        stamps.append(_now())
        # A joint model gets emotion's crop for both heads: emotion's figures stay the shipped file's, and gender
        # measured no loss there (docs/experiments.md, "One trunk, two heads").
        emotion_faces = [crop_face(pixels, crop_box(box, "emotion"), self.emotion.crop) for box in boxes]
        gender_faces = [] if self.joint else [
            crop_face(pixels, crop_box(box, "gender"), self.gender.crop) for box in boxes]
        stamps.append(_now())
        views = self._views(boxes, independent)
        if self.joint:
            emotion_probs, gender_probs = self.emotion.predict_pair(
                self.gender, emotion_faces, views if self.emotion.flip_average else None)
            stamps.append(_now())
        else:
            emotion_probs = self.emotion.predict(emotion_faces, views if self.emotion.flip_average else None)
            stamps.append(_now())
            gender_probs = self.gender.predict(gender_faces, views if self.gender.flip_average else None)
        stamps.append(_now())
        width, height = int(round(pixels.shape[1] * box_scale[0])), int(round(pixels.shape[0] * box_scale[1]))
        faces = self._label(boxes, emotion_probs, gender_probs, stamps[-1] if now is None else now, box_scale,
                            independent, width, height)
        stamps.append(_now())
        timings = {stage: (end - start) * 1e3 for stage, start, end in zip(PIPELINE_STAGES, stamps, stamps[1:])}
        result = FrameResult(index=self._index, width=width, height=height, faces=faces, detection=detection,
                             timings_ms=timings | {"total": (stamps[-1] - stamps[0]) * 1e3})
        self._index += 1
        return result

    def _views(self, boxes: list[Box], independent: bool) -> list[View] | None:
        """What a mirror-averaging classifier scores for each face (:meth:`Classifier.predict`'s ``views``).

        With ``alternate_flips`` in a smoothed stream, a face that overlaps a
        track gets the crop on even frames and its mirror image on odd ones, so
        the track's exponential average holds both views in near-equal parts
        (at 15 fps and the 0.4 s time constant consecutive frames weigh 0.15 and
        0.13); a face no track holds yet gets both, so its first label is as
        good as a photo's. None: both for every face.
        """
        tracker = self.tracker
        if not self.alternate_flips or independent or tracker is None or not self.smoothing.enabled:
            return None
        view: View = "plain" if self._index % 2 == 0 else "mirror"
        threshold = self.smoothing.iou_threshold
        return [view if any(iou(box, t.box) >= threshold for t in tracker.tracks) else "both" for box in boxes]

    def _detect(self, frame: np.ndarray, pixels: np.ndarray, independent: bool) -> tuple[list[Box], str]:
        """Boxes in ``pixels``' coordinates, by :class:`~edge.detectors.schedule.ScanSchedule` (full scan or search).

        ``pixels`` is the frame the crops are cut from: BGR for a colour
        detector, else gray. A colour detector given a gray image of its own
        (picamera2's lores Y plane) gets the BGR frame when it has the gray
        one's size, else the gray one.
        """
        image = pixels if pixels.ndim == 3 or not self.detector.color or frame is None or not (
            frame.ndim == 3 and frame.shape[:2] == pixels.shape[:2]) else to_bgr(frame)
        tracked = None if independent or self.tracker is None else [t.box for t in self.tracker.tracks]
        return self.schedule.scan(image, tracked)

    def _label(self, boxes: list[Box], emotion_probs: np.ndarray, gender_probs: np.ndarray, now: float,
               box_scale: tuple[float, float], independent: bool, width: int, height: int) -> list[Face]:
        e_labels, g_labels = self.emotion.labels, self.gender.labels
        tracker = None if independent else self.tracker
        tracks: list[Track] | list[None] = tracker.assign(boxes, now) if tracker is not None else [None] * len(boxes)
        faces = []
        for box, e_raw, g_raw, track in zip(boxes, emotion_probs, gender_probs, tracks):
            e_index, e_probs = int(np.argmax(e_raw)), e_raw
            g_index, g_probs = int(np.argmax(g_raw)), g_raw
            if track is not None and self.smoothing.enabled:
                e_index, e_probs = track.emotion.update(e_raw, now)
                g_index, g_probs = track.gender.update(g_raw, now)
            sx, sy = box_scale
            shown = box if box_scale == (1.0, 1.0) else (
                int(round(box[0] * sx)), int(round(box[1] * sy)), int(round(box[2] * sx)), int(round(box[3] * sy)))
            shown = clip_box(shown, width, height)
            faces.append(Face(
                box=shown, track=None if track is None else track.id,
                emotion=e_labels[e_index], emotion_scores=dict(zip(e_labels, map(float, e_probs))),
                gender=g_labels[g_index], gender_scores=dict(zip(g_labels, map(float, g_probs))),
            ))
        return faces

    def process_frame(self, frame: Frame) -> FrameResult:
        """Analyse a :class:`~edge.inputs.sources.Frame` from any source, at its timestamp (a video's is media time)."""
        return self.process(frame.image, frame.gray, now=frame.timestamp, box_scale=frame.box_scale,
                            independent=frame.independent)
