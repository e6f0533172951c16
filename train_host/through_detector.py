"""Re-cut dataset faces the way the device cuts them: its detector, its settings, the manifest margin, resize.

Dataset faces are pre-cropped chips; on the Pi the classifier sees a detector
box grown by the manifest's margin instead. Gender in particular is sensitive
to that difference (the paper's gender model: 62% on UTKFace chips as given,
85% with 40% padding). This module upsamples each chip, pads it with its edge
pixels so a box near the border can be cut, runs the device's detector (Haar
or BlazeFace, with the shipped ``[detector]`` defaults) and cuts the largest
face with ``edge.preprocess.crop_face``, so evaluation measures the device
path. Chips where the detector finds no face are counted, not guessed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.detectors import Detector, DetectorSettings, make_detector
from edge.detectors.haar import HaarDetector
from edge.manifest import Manifest, default_models_dir
from edge.preprocess import CropSpec, crop_face
from train_host.data import FaceSet

UPSCALE = 4  # Haar's 24-pixel window needs room: a 48-64 px chip becomes 192-256 px
PAD = 0.25  # edge-replicated border around the chip, as a camera frame would have real pixels


def device_detector(backend: str = "haar", models_dir: str | Path | None = None) -> Detector:
    """The detector the device runs with ``backend`` and the shipped settings, from ``models_dir``'s manifest."""
    manifest = Manifest.load(models_dir or default_models_dir())
    return make_detector(DetectorSettings(backend=backend), manifest)  # type: ignore[arg-type]


def chip_frame(chip: np.ndarray) -> np.ndarray:
    """A dataset chip as a camera would show it: upsampled, with an edge-replicated border."""
    big = cv2.resize(chip, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_LINEAR)
    pad = int(big.shape[0] * PAD)
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def recut(faces: FaceSet, detector: Detector | str | Path, margin: float,
          size: tuple[int, int]) -> tuple[FaceSet, np.ndarray]:
    """Faces cut from the detector's boxes with ``margin``; returns (new set, mask of chips where one was found).

    ``detector`` is a :class:`~edge.detectors.base.Detector` or the path of a
    Haar cascade (run with the device's default settings).
    """
    if isinstance(detector, (str, Path)):
        detector = HaarDetector(detector, DetectorSettings())
    spec = CropSpec(size=size, margin=margin)
    out: list[np.ndarray] = []
    found = np.zeros(len(faces), dtype=bool)
    for i, chip in enumerate(faces.x):
        frame = chip_frame(chip)
        side = chip.shape[0] * UPSCALE
        boxes = [b for b in detector.detect(frame) if b[2] >= side // 3]
        if not boxes:
            continue
        found[i] = True
        out.append(crop_face(frame, boxes[0], spec))
    subset = faces.subset(found)
    subset.x = np.stack(out) if out else np.zeros((0, *size), np.uint8)
    return subset, found
