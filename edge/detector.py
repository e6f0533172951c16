"""Haar face detection (the paper's detector) with the knobs that matter on a Pi.

The cascade XML ships in ``models/`` because Debian's and Raspberry Pi OS's apt
OpenCV have no ``cv2.data``. Detection can run on a downscaled copy of the gray
frame (``detect_width``) with boxes mapped back to full resolution: on a Pi the
cascade's cost grows with the pixels it scans, and faces a metre from a camera
are far larger than the 24-pixel window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.manifest import ModelError

Equalize = Literal["hist", "clahe", "none"]
HAAR_WINDOW = 24  # the frontal-face cascade's window side


@dataclass(frozen=True)
class DetectorSettings:
    """Settings of :class:`HaarDetector` (the ``[detector]`` config section)."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 30  # smallest face side, in full-resolution pixels
    equalize: Equalize = "hist"
    clahe_clip: float = 2.0
    detect_width: int = 0  # 0 = detect at full resolution

    def validate(self) -> None:
        from edge.settings import ConfigError

        if not 1.01 <= self.scale_factor <= 2.0:
            raise ConfigError(f"scale_factor: {self.scale_factor} is outside 1.01..2.0")
        if not 0 <= self.min_neighbors <= 50:
            raise ConfigError(f"min_neighbors: {self.min_neighbors} is outside 0..50")
        if self.min_size < 1:
            raise ConfigError(f"min_size: {self.min_size} must be at least 1 pixel")
        if self.detect_width and self.detect_width < 64:
            raise ConfigError(f"detect_width: {self.detect_width} is below 64 pixels (0 = full resolution)")


class HaarDetector:
    """Find frontal faces in a gray frame; returns boxes (x, y, w, h) in the frame's pixels."""

    def __init__(self, cascade_path: str | Path, settings: DetectorSettings | None = None):
        self.settings = settings or DetectorSettings()
        try:
            self.cascade = cv2.CascadeClassifier(str(cascade_path))
        except (cv2.error, SystemError):  # OpenCV raises while parsing a broken XML
            raise ModelError(f"{cascade_path}: not a loadable Haar cascade") from None
        if self.cascade.empty():
            raise ModelError(f"{cascade_path}: not a loadable Haar cascade")
        self._clahe = cv2.createCLAHE(clipLimit=self.settings.clahe_clip, tileGridSize=(8, 8))

    def scale_for(self, width: int) -> float:
        """Downscale factor used for a frame of ``width`` pixels (1.0 = full resolution)."""
        wanted = self.settings.detect_width
        if not wanted or width <= wanted:
            return 1.0
        return wanted / float(width)

    def prepare(self, gray: np.ndarray) -> tuple[np.ndarray, float]:
        """The (downscaled, equalised) image the cascade scans, and its scale."""
        scale = self.scale_for(gray.shape[1])
        small = gray
        if scale < 1.0:
            size = (max(1, int(round(gray.shape[1] * scale))), max(1, int(round(gray.shape[0] * scale))))
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        if self.settings.equalize == "hist":
            small = cv2.equalizeHist(small)
        elif self.settings.equalize == "clahe":
            small = self._clahe.apply(small)
        return small, scale

    def detect(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes in full-resolution coordinates, largest first."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError("detector needs an 8-bit single-channel frame")
        if min(gray.shape) < HAAR_WINDOW:
            return []
        small, scale = self.prepare(gray)
        min_side = max(HAAR_WINDOW, int(round(self.settings.min_size * scale)))
        if min_side > min(small.shape):
            return []
        found = self.cascade.detectMultiScale(
            small, scaleFactor=self.settings.scale_factor, minNeighbors=self.settings.min_neighbors,
            minSize=(min_side, min_side),
        )
        boxes = [tuple(int(round(v / scale)) for v in box) for box in np.asarray(found).reshape(-1, 4)]
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return boxes  # type: ignore[return-value]
