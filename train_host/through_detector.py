"""Re-cut dataset faces the way the device cuts them: its detector, its settings, the manifest margin, resize.

Dataset faces are pre-cropped chips; on the Pi the classifier sees a detector
box grown by the manifest's margin instead. Gender in particular is sensitive
to that difference (the paper's gender model: 62% on UTKFace chips as given,
85% with 40% padding). This module upsamples each chip, pads it with its edge
pixels so a box near the border can be cut, runs the device's detector (Haar
or BlazeFace, with the shipped ``[detector]`` defaults) and cuts the largest
face with ``edge.frame.preprocess.crop_face``, so evaluation measures the device
path. Chips where the detector finds no face are counted, not guessed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.detectors import BlazeFaceSettings, Box, Detector, DetectorSettings, crop_box, make_detector
from edge.detectors.haar import HaarDetector
from edge.frame.manifest import Manifest, default_models_dir
from edge.frame.preprocess import CropSpec, crop_face
from train_host.data import FaceSet

UPSCALE = 4  # Haar's 24-pixel window needs room: a 48-64 px chip becomes 192-256 px
PAD = 0.25  # edge-replicated border around the chip, as a camera frame would have real pixels


def device_detector(backend: str = "haar", models_dir: str | Path | None = None,
                    blazeface: BlazeFaceSettings | None = None) -> Detector:
    """The detector the device runs with ``backend`` and the shipped settings (or ``blazeface``'s), from
    ``models_dir``'s manifest."""
    manifest = Manifest.load(models_dir or default_models_dir())
    settings = DetectorSettings(backend=backend, blazeface=blazeface or BlazeFaceSettings())  # type: ignore[arg-type]
    settings.validate()
    return make_detector(settings, manifest)


def chip_frame(chip: np.ndarray) -> np.ndarray:
    """A dataset chip as a camera would show it: upsampled, with an edge-replicated border."""
    big = cv2.resize(chip, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_LINEAR)
    pad = int(big.shape[0] * PAD)
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def chip_faces(faces: FaceSet, detector: Detector | str | Path) -> list[Box | None]:
    """The box :func:`recut` cuts from each chip (the largest face at least a third of the chip wide), or None."""
    if isinstance(detector, (str, Path)):
        detector = HaarDetector(detector, DetectorSettings())
    out: list[Box | None] = []
    for chip in faces.x:
        side = chip.shape[0] * UPSCALE
        boxes = [b for b in detector.detect(chip_frame(chip)) if b[2] >= side // 3]
        out.append(boxes[0] if boxes else None)
    return out


def recut(faces: FaceSet, detector: Detector | str | Path, margin: float,
          size: tuple[int, int], task: str | None = None) -> tuple[FaceSet, np.ndarray]:
    """Faces cut from the detector's boxes with ``margin``; returns (new set, mask of chips where one was found).

    ``detector`` is a :class:`~edge.detectors.base.Detector` or the path of a
    Haar cascade (run with the device's default settings). With ``task``, a
    detector that carries a crop per classifier (BlazeFace's per-task box
    mapping) is cut as the device cuts that task's input.
    """
    spec = CropSpec(size=size, margin=margin)
    out: list[np.ndarray] = []
    found = np.zeros(len(faces), dtype=bool)
    for i, box in enumerate(chip_faces(faces, detector)):
        if box is None:
            continue
        found[i] = True
        out.append(crop_face(chip_frame(faces.x[i]), crop_box(box, task) if task else box, spec))
    subset = faces.subset(found)
    subset.x = np.stack(out) if out else np.zeros((0, *size), np.uint8)
    return subset, found
