"""What the pipeline returns for a frame: faces with boxes, tracks, labels, scores and timings."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Face:
    """One face: where it is, what the models say, and (in a stream) which track it belongs to.

    The one face type: the pipeline returns it, the outputs read it and the
    Python API (:mod:`edge.api`) hands it to callers. ``box`` is ``(x, y,
    width, height)`` in the frame's pixels. ``emotion``/``gender`` are the
    labels shown and their ``*_scores`` map every label to a probability: the
    smoothed values when the pipeline tracks (video, camera; ``track`` is then
    a stable id) and the models' raw output otherwise (``track`` None).
    """

    box: tuple[int, int, int, int]
    emotion: str
    emotion_scores: dict[str, float]
    gender: str
    gender_scores: dict[str, float]
    track: int | None = None

    @property
    def area(self) -> int:
        return int(self.box[2]) * int(self.box[3])

    @property
    def emotion_confidence(self) -> float:
        """Probability of the emotion label shown (0..1)."""
        return float(self.emotion_scores.get(self.emotion, 0.0))

    @property
    def gender_confidence(self) -> float:
        """Probability of the gender label shown (0..1)."""
        return float(self.gender_scores.get(self.gender, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """The face as ``python -m edge analyze --json`` prints it: plain types, scores rounded to 4 places."""
        return {
            "box": [int(v) for v in self.box],
            "track": self.track,
            "emotion": self.emotion,
            "emotion_scores": {k: round(float(v), 4) for k, v in self.emotion_scores.items()},
            "gender": self.gender,
            "gender_scores": {k: round(float(v), 4) for k, v in self.gender_scores.items()},
        }

    def to_json(self, **dumps: Any) -> str:
        """``to_dict()`` as a JSON string; keyword arguments go to :func:`json.dumps` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **dumps)


# The name the outputs have imported so far; the same class, kept while they move (issue 31).
FaceResult = Face


def frame_dict(path: str | None, frame: int, width: int, height: int, faces: list[Face],
               timings_ms: dict[str, float]) -> dict[str, Any]:
    """One JSON object per frame, as ``python -m edge analyze --json`` prints it (boxes in its width x height)."""
    return {
        "path": path,
        "frame": frame,
        "width": width,
        "height": height,
        "faces": [face.to_dict() for face in faces],
        "timings_ms": {k: round(float(v), 3) for k, v in timings_ms.items()},
    }


@dataclass
class FrameResult:
    """All faces of one frame and where the time went (milliseconds per stage)."""

    index: int
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    detection: str = "full"  # "full" scan, "roi" (around tracked faces) or "skip" (nobody tracked)

    @property
    def largest(self) -> Face | None:
        """The face with the largest box (the one LEDs show), or None."""
        return max(self.faces, key=lambda f: f.area, default=None)

    def in_size(self, width: int, height: int) -> FrameResult:
        """This result with its boxes in a picture of ``width`` x ``height`` (a photo analysed reduced, mapped
        back to the file's own pixels), rounded outwards so that a box never loses part of its face."""
        if (width, height) == (self.width, self.height) or not self.width or not self.height:
            return self
        sx, sy = width / self.width, height / self.height

        def scaled(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
            x, y, w, h = box
            left, top = math.floor(x * sx), math.floor(y * sy)
            return left, top, math.ceil((x + w) * sx) - left, math.ceil((y + h) * sy) - top

        faces = [replace(face, box=scaled(face.box)) for face in self.faces]
        return replace(self, width=width, height=height, faces=faces)

    def to_dict(self, path: str | None = None) -> dict[str, Any]:
        """The frame as ``python -m edge analyze --json`` prints it, ``path`` naming the picture or video."""
        return frame_dict(path, self.index, self.width, self.height, self.faces, self.timings_ms)

    def to_json(self, path: str | None = None, **dumps: Any) -> str:
        """``to_dict(path)`` as a JSON string; keyword arguments go to :func:`json.dumps`."""
        return json.dumps(self.to_dict(path), **dumps)
