"""The on-device pipeline: gray frame -> Haar -> crops -> emotion + gender -> tracks.

``Pipeline(...).process(frame)`` returns a :class:`~edge.results.FrameResult`
with boxes, track ids, labels, probabilities and per-stage timings in ms:
``convert`` (to gray), ``detect``, ``crop`` (crop + preprocess), ``emotion``,
``gender``, ``track`` (association + smoothing) and ``total``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.classifier import Classifier
from edge.detector import DetectorSettings, HaarDetector
from edge.manifest import Manifest, default_models_dir
from edge.preprocess import crop_face, to_gray
from edge.results import FaceResult, FrameResult
from edge.sources import Frame
from edge.tracking import SmoothingSettings, Tracker, iou


@dataclass(frozen=True)
class ModelSettings:
    """The ``[models]`` config section."""

    dir: str = ""  # empty = models/ of this installation
    variant: str = "int8"  # "int8" | "float32" | a model name from the manifest
    threads: int = 1  # 1 by default: two threads fight OpenCV's pool on small CPUs

    def validate(self) -> None:
        from edge.settings import ConfigError

        if not 1 <= self.threads <= 16:
            raise ConfigError(f"threads: {self.threads} is outside 1..16")


def _now() -> float:
    return time.perf_counter()


class Pipeline:
    """Detect, classify and (for streams) track faces frame by frame."""

    def __init__(self, detector: HaarDetector, emotion: Classifier, gender: Classifier,
                 smoothing: SmoothingSettings | None = None, track: bool = True):
        self.detector = detector
        self.emotion = emotion
        self.gender = gender
        self.smoothing = smoothing or SmoothingSettings()
        self.tracker = Tracker(self.smoothing) if track else None
        self._index = 0
        self._since_full = 1 << 30  # frames since the last full scan: the first frame of a stream scans fully
        self._lost_face = False
        self._last_boxes: list = []  # the faces found in the previous frame: where a stream searches next
        self._since_rescan = 1 << 30  # frames since the last full scan caused by a lost face

    @classmethod
    def from_models(cls, models: ModelSettings | None = None, detector: DetectorSettings | None = None,
                    smoothing: SmoothingSettings | None = None, track: bool = True) -> Pipeline:
        """Load and verify the models named by ``models`` (manifest check) and the shipped cascade."""
        models = models or ModelSettings()
        manifest = Manifest.load(Path(models.dir) if models.dir else default_models_dir())
        emotion = Classifier.from_manifest(manifest, manifest.select("emotion", models.variant), models.threads)
        gender = Classifier.from_manifest(manifest, manifest.select("gender", models.variant), models.threads)
        return cls(HaarDetector(manifest.cascade_path(), detector), emotion, gender, smoothing, track)

    def reset(self) -> None:
        """Start a new stream: forget tracks and restart frame numbering."""
        if self.tracker is not None:
            self.tracker.reset()
        self._index = 0
        self._since_full = 1 << 30
        self._lost_face = False
        self._last_boxes = []
        self._since_rescan = 1 << 30

    def process(self, frame: np.ndarray, gray: np.ndarray | None = None, now: float | None = None,
                box_scale: tuple[float, float] = (1.0, 1.0), independent: bool = False) -> FrameResult:
        """Analyse one frame.

        ``gray`` may be given when the source already has a gray image (the
        picamera2 lores Y plane); ``box_scale`` then maps its coordinates to the
        display frame's. ``now`` (seconds) drives smoothing; it defaults to the
        clock. ``independent`` marks an unrelated photo: no track, raw labels.
        """
        t0 = _now()
        if gray is None:
            gray = to_gray(frame)
        t1 = _now()
        boxes, detection = self._detect(gray, independent)
        t2 = _now()
        emotion_faces = [crop_face(gray, box, self.emotion.crop) for box in boxes]
        gender_faces = [crop_face(gray, box, self.gender.crop) for box in boxes]
        t3 = _now()
        emotion_probs = self.emotion.predict(emotion_faces)
        t4 = _now()
        gender_probs = self.gender.predict(gender_faces)
        t5 = _now()
        faces = self._label(boxes, emotion_probs, gender_probs, t5 if now is None else now, box_scale, independent)
        t6 = _now()
        result = FrameResult(
            index=self._index, width=int(round(gray.shape[1] * box_scale[0])),
            height=int(round(gray.shape[0] * box_scale[1])), faces=faces, timestamp=t6, detection=detection,
            timings_ms={"convert": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, "crop": (t3 - t2) * 1e3,
                        "emotion": (t4 - t3) * 1e3, "gender": (t5 - t4) * 1e3, "track": (t6 - t5) * 1e3,
                        "total": (t6 - t0) * 1e3},
        )
        self._index += 1
        return result

    def _detect(self, gray: np.ndarray, independent: bool) -> tuple[list, str]:
        """Full scan, or (in a stream) a search around the faces already tracked.

        A stream gets a full scan every ``full_scan_every`` frames; in between
        only the neighbourhood of each tracked face is searched (tracks outlive
        a missed detection by ``max_missed_s``, so a face that flickers out of
        the cascade's reach is picked up again there), and with nobody tracked
        nothing is scanned until the next full scan. A new face therefore shows
        up within ``full_scan_every`` frames. A face of the previous frame
        that the search loses triggers a full scan at once (at most once per
        half period).
        """
        boxes, mode = self._scan(gray, independent)
        self._last_boxes = boxes
        return boxes, mode

    def _scan(self, gray: np.ndarray, independent: bool) -> tuple[list, str]:
        every = self.detector.settings.full_scan_every
        if independent or self.tracker is None or every <= 1:
            return self.detector.detect(gray), "full"
        self._since_full += 1
        self._since_rescan += 1
        if self._since_full >= every or self._lost_face:
            if self._lost_face:
                self._since_rescan = 0
            self._since_full = 0
            self._lost_face = False
            return self.detector.detect(gray), "full"
        known = [t.box for t in self.tracker.tracks]
        if not known:
            return [], "skip"
        boxes = self.detector.detect_near(gray, known)
        # A face of the previous frame that the search lost (it moved fast, the scene changed) is worth a
        # full scan at once, but at most every other half period: a box that only full scans find (often
        # a false face) would otherwise cost a full scan every other frame.
        lost = any(all(iou(k, b) < 0.3 for b in boxes) for k in self._last_boxes)
        self._lost_face = lost and self._since_rescan >= max(2, every // 2)
        return boxes, "roi"

    def _label(self, boxes, emotion_probs, gender_probs, now, box_scale, independent) -> list[FaceResult]:
        e_labels, g_labels = self.emotion.labels, self.gender.labels
        tracking = self.tracker is not None and not independent
        tracks = self.tracker.assign(boxes, now) if tracking else [None] * len(boxes)
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
            faces.append(FaceResult(
                box=shown, track=None if track is None else track.id,
                emotion=e_labels[e_index], emotion_scores=dict(zip(e_labels, map(float, e_probs))),
                gender=g_labels[g_index], gender_scores=dict(zip(g_labels, map(float, g_probs))),
                raw_emotion=e_labels[int(np.argmax(e_raw))], raw_gender=g_labels[int(np.argmax(g_raw))],
            ))
        return faces

    def process_frame(self, frame: Frame) -> FrameResult:
        """Analyse a :class:`~edge.sources.Frame` from any source."""
        return self.process(frame.image, frame.gray, box_scale=frame.box_scale, independent=frame.independent)
