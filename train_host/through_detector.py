"""Re-cut dataset faces the way the device cuts them: Haar box, manifest margin, resize.

Dataset faces are pre-cropped chips; on the Pi the classifier sees a Haar box
grown by the manifest's margin instead. Gender in particular is sensitive to
that difference (the paper's gender model: 62% on UTKFace chips as given, 85%
with 40% padding). This module upsamples each chip, pads it with its edge
pixels so a box near the border can be cut, runs the shipped cascade and cuts
the largest face with ``edge.preprocess.crop_face``, so evaluation measures the
device path. Chips where Haar finds no face are counted, not guessed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.detector import DetectorSettings, HaarDetector
from edge.preprocess import CropSpec, crop_face
from train_host.data import FaceSet

UPSCALE = 4  # Haar's 24-pixel window needs room: a 48-64 px chip becomes 192-256 px
PAD = 0.25  # edge-replicated border around the chip, as a camera frame would have real pixels


def recut(faces: FaceSet, cascade: Path, margin: float, size: tuple[int, int]) -> tuple[FaceSet, np.ndarray]:
    """Faces cut from Haar boxes with ``margin``; returns (new set, mask of chips where a face was found)."""
    detector = HaarDetector(cascade, DetectorSettings(min_neighbors=3))
    spec = CropSpec(size=size, margin=margin)
    out: list[np.ndarray] = []
    found = np.zeros(len(faces), dtype=bool)
    for i, chip in enumerate(faces.x):
        big = cv2.resize(chip, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_LINEAR)
        pad = int(big.shape[0] * PAD)
        frame = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        side = big.shape[0]
        boxes = [b for b in detector.detect(frame) if b[2] >= side // 3]
        if not boxes:
            continue
        found[i] = True
        out.append(crop_face(frame, boxes[0], spec))
    subset = faces.subset(found)
    subset.x = np.stack(out) if out else np.zeros((0, *size), np.uint8)
    return subset, found
