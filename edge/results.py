"""What the pipeline returns for a frame: faces with boxes, tracks, labels, scores and timings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


@dataclass
class FaceResult:
    """One face in one frame.

    ``emotion``/``gender`` and their scores are the smoothed values when the
    pipeline tracks (video, camera) and the raw model output otherwise.
    """

    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    track: int | None
    emotion: str
    emotion_scores: dict[str, float]
    gender: str
    gender_scores: dict[str, float]

    @property
    def area(self) -> int:
        return int(self.box[2]) * int(self.box[3])

    @property
    def emotion_confidence(self) -> float:
        return float(self.emotion_scores.get(self.emotion, 0.0))

    @property
    def gender_confidence(self) -> float:
        return float(self.gender_scores.get(self.gender, 0.0))

    def to_json(self) -> dict:
        """The face as the CLI's ``--json`` prints it."""
        return {
            "box": [int(v) for v in self.box],
            "track": self.track,
            "emotion": self.emotion,
            "emotion_scores": {k: round(float(v), 4) for k, v in self.emotion_scores.items()},
            "gender": self.gender,
            "gender_scores": {k: round(float(v), 4) for k, v in self.gender_scores.items()},
        }


@dataclass
class FrameResult:
    """All faces of one frame and where the time went (milliseconds per stage)."""

    index: int
    width: int
    height: int
    faces: list[FaceResult] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    detection: str = "full"  # "full" scan, "roi" (around tracked faces) or "skip" (nobody tracked)

    @property
    def largest(self) -> FaceResult | None:
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

    def to_json(self, path: str | None = None) -> dict:
        """One JSON object per frame, as ``python -m edge analyze --json`` prints it (boxes in its width x height)."""
        return {
            "path": path,
            "frame": self.index,
            "width": self.width,
            "height": self.height,
            "faces": [face.to_json() for face in self.faces],
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
        }
