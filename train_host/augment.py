"""Training-time augmentation that matches what the device will cut.

Each face goes from its stored size to the model's input size through one
random affine warp (rotation, zoom, shift, horizontal flip as in the paper) with
edge-replicating borders, the same border rule as ``edge.frame.preprocess.crop_padded``.
The zoom and shift ranges cover the spread of Haar boxes around a face, so the
model sees the crops the Pi will feed it, not only perfectly centred chips.

Two optional regularisers, off by default (runs with them: docs/experiments.md):
cutout (a square of each face painted with the face's mean grey, so the model
cannot lean on one region: a hand, glasses or a shadow hides part of a face on
a real camera) and mixup (pairs of faces and their targets blended, which
softens the decision boundaries between expressions that shade into each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.frame.preprocess import resize_face


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms (all symmetric around identity)."""

    rotation_deg: float = 10.0
    zoom: float = 0.1  # content scale in [1 - zoom, 1 + zoom]
    shift: float = 0.1  # fraction of the output size
    flip: bool = True
    brightness: float = 0.0  # additive, fraction of 255
    contrast: float = 0.0  # multiplicative around the mean, [1 - c, 1 + c]
    cutout: float = 0.0  # side of the painted-over square, fraction of the output side (0 = off)
    mixup: float = 0.0  # Beta(alpha, alpha) of the blend weight between two faces (0 = off)


PAPER = AugmentConfig()
NONE = AugmentConfig(rotation_deg=0.0, zoom=0.0, shift=0.0, flip=False)


def resize_batch(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Deterministic resize of uint8 faces (N, H, W) to ``size``, as the device resizes crops."""
    if x.shape[1:3] == tuple(size):
        return x
    return np.stack([resize_face(face, size) for face in x])


def augment_batch(x: np.ndarray, size: tuple[int, int], config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random affine (+ photometric) version of each uint8 face, resized to ``size`` (h, w)."""
    count, src_h, src_w = x.shape
    out_h, out_w = size
    out = np.empty((count, out_h, out_w), dtype=np.uint8)
    angles = np.asarray(rng.uniform(-config.rotation_deg, config.rotation_deg, count))
    zooms = np.asarray(rng.uniform(1 - config.zoom, 1 + config.zoom, count))
    shifts = rng.uniform(-config.shift, config.shift, (count, 2)) * (out_w, out_h)
    flips = np.asarray(rng.random(count) < 0.5) if config.flip else np.zeros(count, dtype=bool)
    base = out_w / src_w
    for i in range(count):
        face = x[i][:, ::-1] if flips[i] else x[i]
        matrix = cv2.getRotationMatrix2D((src_w / 2.0, src_h / 2.0), float(angles[i]), float(base * zooms[i]))
        matrix[0, 2] += out_w / 2.0 - src_w / 2.0 + shifts[i, 0]
        matrix[1, 2] += out_h / 2.0 - src_h / 2.0 + shifts[i, 1]
        out[i] = cv2.warpAffine(
            np.ascontiguousarray(face), matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    if config.brightness or config.contrast:
        gain = rng.uniform(1 - config.contrast, 1 + config.contrast, (count, 1, 1))
        bias = rng.uniform(-config.brightness, config.brightness, (count, 1, 1)) * 255.0
        mean = out.mean(axis=(1, 2), keepdims=True)
        out = np.clip((out - mean) * gain + mean + bias, 0, 255).astype(np.uint8)
    if config.cutout:
        out = cutout_batch(out, config.cutout, rng)
    return out


def cutout_batch(x: np.ndarray, side: float, rng: np.random.Generator) -> np.ndarray:
    """Paint a square of ``side`` x the face's width over each face with that face's mean grey.

    The square's centre is uniform over the whole face, so near an edge only
    part of it lands on the face (DeVries & Taylor 2017): on average less than
    the full square is hidden, and the face's borders are hidden too, if less
    often than its centre.
    """
    count, height, width = x.shape
    out = x.copy()
    half = side * width / 2.0
    centres = rng.uniform(0, 1, (count, 2)) * (width, height)
    for i in range(count):
        x0, x1 = (int(round(np.clip(centres[i, 0] + d, 0, width))) for d in (-half, half))
        y0, y1 = (int(round(np.clip(centres[i, 1] + d, 0, height))) for d in (-half, half))
        out[i, y0:y1, x0:x1] = np.uint8(round(float(x[i].mean())))
    return out


def mixup_batch(x: np.ndarray, targets: np.ndarray, alpha: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blend each face and its target row with another face of the batch (Zhang et al. 2018).

    ``x`` is the normalised float batch; each face gets its own weight
    ``lam ~ Beta(alpha, alpha)`` folded to ``max(lam, 1 - lam)``, so the face
    keeps the larger share of the pixels and of the target row.
    """
    count = len(x)
    lam = rng.beta(alpha, alpha, count).astype(np.float32)
    lam = np.maximum(lam, 1.0 - lam)
    partner = rng.permutation(count)
    shape = (count,) + (1,) * (x.ndim - 1)
    mixed_x = lam.reshape(shape) * x + (1.0 - lam.reshape(shape)) * x[partner]
    mixed_t = lam[:, None] * targets + (1.0 - lam[:, None]) * targets[partner]
    return mixed_x.astype(x.dtype), mixed_t.astype(targets.dtype)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Blur uint8 faces (N, H, W) with a Gaussian of ``sigma`` pixels (no-op for 0)."""
    if sigma <= 0:
        return x
    return np.stack([cv2.GaussianBlur(face, (0, 0), sigma) for face in x])
