"""Haar face detection (the paper's detector) with the knobs that matter on a Pi.

The cascade XML ships in ``models/`` because Debian's and Raspberry Pi OS's apt
OpenCV have no ``cv2.data``. Detection can run on a downscaled copy of the gray
frame (``detect_width``) with boxes mapped back to full resolution: on a Pi the
cascade's cost grows with the pixels it scans, and faces a metre from a camera
are far larger than the 24-pixel window.

The defaults are OpenCV's and the media manifest's reference settings
(``detectMultiScale(gray, 1.1, 5, minSize=(30, 30))``) without equalisation:
measured on ``../shared/media`` at 640x480, histogram equalisation (the paper's
low-contrast aid, still available) lost a tilted face and added time, and
coarser pyramids (1.2-1.3, which the paper's own code used) lost it too. The
speed comes instead from not scanning whole frames every frame in a stream:
:meth:`HaarDetector.detect_near` looks only around the faces already tracked,
and :class:`edge.detectors.schedule.ScanSchedule` runs a full scan every ``full_scan_every`` frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.detectors.base import Box
from edge.detectors.settings import DetectorSettings
from edge.frame.manifest import ModelError
from edge.frame.tracking import iou

HAAR_WINDOW = 24  # the frontal-face cascade's window side
ROI_SMALLEST = 42  # detect_near shrinks its window so that the smallest face tried is this many pixels
ROI_NEIGHBORS_RELIEF = 2  # detect_near asks min_neighbors minus this: the face was confirmed by a full scan


class HaarDetector:
    """Find frontal faces in a gray frame; returns boxes (x, y, w, h) in the frame's pixels."""

    color = False  # scans gray frames

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

    def detect(self, gray: np.ndarray) -> list[Box]:
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

    def detect_near(self, gray: np.ndarray, boxes: list[Box]) -> list[Box]:
        """Faces near ``boxes`` (the last known faces): one small scan per box instead of a whole frame.

        Each search window is the box grown by ``roi_margin`` on every side, and
        only face sizes from 0.7x to 1.5x the known one are tried, so a face that
        moved or turned a little is found again at a fraction of a full scan's
        cost. The window is first shrunk so that the smallest size tried is
        ``ROI_SMALLEST`` pixels (large faces need no more detail than that), and
        the face, already confirmed by a full scan, needs ``min_neighbors - 2``
        neighbours. Measured on the 38 faces the default cascade finds in
        ``samples/`` and ``../shared/media`` photos at 640x480: 37 found again
        (35 with the full-scan settings and no shrinking), no extra boxes,
        2.2 ms per face on a 2-core x86 PC. Returns full-frame boxes, largest
        first, duplicates merged.
        """
        s = self.settings
        found: list[Box] = []
        rows, cols = gray.shape[:2]
        for x, y, w, h in boxes:
            side = max(w, h)
            pad = int(round(side * s.roi_margin))
            x0, y0 = max(0, x - pad), max(0, y - pad)
            x1, y1 = min(cols, x + w + pad), min(rows, y + h + pad)
            if x1 - x0 < HAAR_WINDOW or y1 - y0 < HAAR_WINDOW:
                continue
            roi = gray[y0:y1, x0:x1]
            smallest = max(HAAR_WINDOW, int(side * 0.7))
            shrink = min(1.0, ROI_SMALLEST / smallest)
            sx = sy = 1.0  # the window's scale per axis (they differ slightly by rounding, or when a side was clamped)
            if shrink < 1.0:
                width, height = (max(HAAR_WINDOW, int(round(n * shrink))) for n in (x1 - x0, y1 - y0))
                roi = cv2.resize(roi, (width, height), interpolation=cv2.INTER_AREA)
                sx, sy = width / (x1 - x0), height / (y1 - y0)
                shrink = min(sx, sy)
                smallest = max(HAAR_WINDOW, int(round(smallest * shrink)))
            if s.equalize == "hist":
                roi = cv2.equalizeHist(roi)
            elif s.equalize == "clahe":
                roi = self._clahe.apply(roi)
            largest = max(smallest + 1, min(int(side * 1.5 * shrink), roi.shape[1], roi.shape[0]))
            neighbors = max(1, s.min_neighbors - ROI_NEIGHBORS_RELIEF) if s.min_neighbors else 0
            hits = self.cascade.detectMultiScale(roi, scaleFactor=s.scale_factor, minNeighbors=neighbors,
                                                 minSize=(smallest, smallest), maxSize=(largest, largest))
            for hx, hy, hw, hh in np.asarray(hits).reshape(-1, 4):
                candidate = (int(round(hx / sx)) + x0, int(round(hy / sy)) + y0,
                             int(round(hw / sx)), int(round(hh / sy)))
                if all(iou(candidate, other) < 0.3 for other in found):
                    found.append(candidate)
        found.sort(key=lambda b: b[2] * b[3], reverse=True)
        return found
