"""When a stream's frame gets a whole-frame scan and when only a search near the tracked faces.

A full scan costs the most (a Haar pyramid over the frame, or a detector
model over the whole frame); a face that is already tracked can be found
again far more cheaply in its neighbourhood. This schedule works for any
:class:`~edge.detectors.base.Detector`: a full scan every ``full_scan_every``
frames, in between only :meth:`~edge.detectors.base.Detector.detect_near`
around the tracked faces (tracks outlive a missed detection by
``max_missed_s``, so a face that flickers out of reach is picked up again
there), and with nobody tracked nothing is scanned until the next full scan.
A new face therefore shows up within ``full_scan_every`` frames. A face of the
previous frame that the search loses triggers a full scan at once (at most
once per half period). Independent photos always get a full scan.
"""

from __future__ import annotations

import numpy as np

from edge.detectors.base import Box, Detector
from edge.frame.tracking import iou

FAR = 1 << 30  # "long ago": the first frame of a stream scans fully


class ScanSchedule:
    """Full scan, near search or nothing, frame by frame; one instance per stream (see :meth:`reset`)."""

    def __init__(self, detector: Detector, full_scan_every: int):
        self.detector = detector
        self.every = int(full_scan_every)
        self.reset()

    def reset(self) -> None:
        """A new stream: the next frame scans fully."""
        self._since_full = FAR  # frames since the last full scan
        self._since_rescan = FAR  # frames since the last full scan caused by a lost face
        self._lost_face = False
        self._last_boxes: list[Box] = []  # the faces found in the previous frame

    def scan(self, image: np.ndarray, tracked: list[Box] | None) -> tuple[list[Box], str]:
        """Boxes in ``image`` and how they were found: ``full``, ``roi`` (near ``tracked``) or ``skip``.

        ``tracked`` is None for an independent photo or a pipeline without
        tracking: then every frame is a full scan.
        """
        boxes, mode = self._scan(image, tracked)
        self._last_boxes = boxes
        return boxes, mode

    def _scan(self, image: np.ndarray, tracked: list[Box] | None) -> tuple[list[Box], str]:
        if tracked is None or self.every <= 1:
            return self.detector.detect(image), "full"
        self._since_full += 1
        self._since_rescan += 1
        if self._since_full >= self.every or self._lost_face:
            if self._lost_face:
                self._since_rescan = 0
            self._since_full = 0
            self._lost_face = False
            return self.detector.detect(image), "full"
        if not tracked:
            return [], "skip"
        boxes = self.detector.detect_near(image, tracked)
        # A face of the previous frame that the search lost (it moved fast, the scene changed) is worth a
        # full scan at once, but at most every other half period: a box that only full scans find (often
        # a false face) would otherwise cost a full scan every other frame.
        lost = any(all(iou(k, b) < 0.3 for b in boxes) for k in self._last_boxes)
        self._lost_face = lost and self._since_rescan >= max(2, self.every // 2)
        return boxes, "roi"
