"""What the pipeline needs from a face detector, whichever backend it is.

A detector finds faces in a whole frame (:meth:`Detector.detect`) and, more
cheaply, again near faces it already knows (:meth:`Detector.detect_near`);
:class:`edge.detectors.schedule.ScanSchedule` decides which of the two a
stream's frame gets. Boxes are ``(x, y, w, h)`` in the frame's pixels, largest
first, and always the Haar-like square the classifiers were trained on: a
backend whose model draws other boxes maps them before returning. Such a
backend may also return :class:`FaceBox` es that carry a crop per classifier
(a mapping fitted for each task); :func:`crop_box` picks it, or the box itself.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

Box = tuple[int, int, int, int]


class FaceBox(tuple):
    """A box ``(x, y, w, h)`` that also carries the crop each classifier wants: ``crops["emotion"]``, ...

    It is still a plain 4-tuple to everything else (unpacking, equality,
    tracking, JSON); only :func:`crop_box` looks at ``crops``.
    """

    crops: dict[str, Box]

    def __new__(cls, box: Box, crops: dict[str, Box] | None = None) -> FaceBox:
        self = super().__new__(cls, box)
        self.crops = dict(crops or {})
        return self

    def moved(self, dx: int, dy: int) -> FaceBox:
        """The same box and crops shifted by (dx, dy): a window's coordinates to the frame's."""
        x, y, w, h = self
        return FaceBox((x + dx, y + dy, w, h), {t: (cx + dx, cy + dy, cw, ch) for t, (cx, cy, cw, ch) in
                                                self.crops.items()})


def crop_box(box: Box, task: str) -> Box:
    """The box to cut ``task``'s classifier input from: the detector's crop for that task, else ``box``."""
    crops = getattr(box, "crops", None)
    return crops.get(task, box) if crops else box


class Detector(Protocol):
    """A face detector; ``color`` says whether it wants the BGR frame (else the gray one)."""

    color: bool

    def detect(self, image: np.ndarray) -> list[Box]:
        """Every face in ``image`` (gray, or BGR when ``color``), largest first."""
        ...

    def detect_near(self, image: np.ndarray, boxes: list[Box]) -> list[Box]:
        """Faces near ``boxes`` (the last known faces), largest first, duplicates merged."""
        ...
