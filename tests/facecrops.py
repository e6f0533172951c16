"""Real face crops for dataset and conversion tests, cut from the committed public-domain samples.

Six real faces, varied by small random warps and brightness changes, give as
many distinct real-looking faces as a test needs without any dataset in the repo.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def sample_faces(size: int = 48) -> list[np.ndarray]:
    cascade = cv2.CascadeClassifier(str(SAMPLES.parent / "models" / "haarcascade_frontalface_default.xml"))
    faces = []
    for name in ("astronaut.jpg", "two_people.jpg", "obama_720p.jpg", "biden.jpg"):
        gray = cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2GRAY)
        for x, y, w, h in cascade.detectMultiScale(gray, 1.1, 5, minSize=(60, 60)):
            m = int(0.1 * w)
            crop = gray[max(0, y - m):y + h + m, max(0, x - m):x + w + m]
            faces.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return faces


def varied_faces(count: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """``count`` uint8 faces (count, size, size) made from the sample faces by small random warps."""
    rng = np.random.default_rng(seed)
    base = sample_faces(size)
    out = np.empty((count, size, size), np.uint8)
    for i in range(count):
        face = base[i % len(base)]
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-8, 8), rng.uniform(0.92, 1.08))
        matrix[:, 2] += rng.uniform(-2, 2, 2)
        warped = cv2.warpAffine(face, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
        out[i] = np.clip(warped * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15), 0, 255).astype(np.uint8)
    return out
