"""What the pipeline needs from a face detector, whichever backend it is.

A detector finds faces in a whole frame (:meth:`Detector.detect`) and, more
cheaply, again near faces it already knows (:meth:`Detector.detect_near`);
:class:`edge.detectors.schedule.ScanSchedule` decides which of the two a
stream's frame gets. Boxes are ``(x, y, w, h)`` in the frame's pixels, largest
first, and always the Haar-like square the classifiers were trained on: a
backend whose model draws other boxes maps them before returning.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

Box = tuple[int, int, int, int]


class Detector(Protocol):
    """A face detector; ``color`` says whether it wants the BGR frame (else the gray one)."""

    color: bool

    def detect(self, image: np.ndarray) -> list[Box]:
        """Every face in ``image`` (gray, or BGR when ``color``), largest first."""
        ...

    def detect_near(self, image: np.ndarray, boxes: list[Box]) -> list[Box]:
        """Faces near ``boxes`` (the last known faces), largest first, duplicates merged."""
        ...
