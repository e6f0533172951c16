"""Detect a blur mismatch between training and validation images.

FER-2013's ``Training`` split in ``../shared`` turned out to be blurred with a
Gaussian of about 3 pixels (48x48 images; Laplacian variance ~6 against ~2,000
for ``PublicTest``; the paper's own model scores 23% on it against 65% on
PublicTest). A model trained on such faces fails on sharp ones (16% accuracy).
This module measures the mismatch so that training can blur-match its
exported model instead of silently shipping a model that only works on blur.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_SIGMA = 0.6  # below this the two sets count as equally sharp


def laplacian_variance(x: np.ndarray, limit: int = 2000) -> float:
    """Median variance of the Laplacian over up to ``limit`` faces: a sharpness figure."""
    sample = x[:: max(1, len(x) // limit)][:limit]
    return float(np.median([cv2.Laplacian(face, cv2.CV_64F).var() for face in sample]))


def _radial_power(x: np.ndarray, limit: int) -> np.ndarray:
    size = min(x.shape[1], x.shape[2])
    window = np.outer(np.hanning(size), np.hanning(size))
    sample = x[:: max(1, len(x) // limit)][:limit, :size, :size].astype(np.float64)
    centred = sample - sample.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fftshift(np.fft.fft2(centred * window), axes=(1, 2))) ** 2).mean(axis=0)
    yy, xx = np.indices(power.shape)
    radius = np.hypot(yy - size // 2, xx - size // 2).astype(int)
    return np.bincount(radius.ravel(), power.ravel()) / np.maximum(np.bincount(radius.ravel()), 1)


def estimate_blur_sigma(blurred: np.ndarray, sharp: np.ndarray, limit: int = 3000) -> float:
    """Gaussian sigma (pixels of ``blurred``) that best explains ``blurred``'s spectrum against ``sharp``'s.

    Both sets are brought to the size of ``blurred`` first; the fit uses the
    low and middle frequencies where the ratio is above the noise floor.
    """
    size = blurred.shape[1]
    if sharp.shape[1:] != blurred.shape[1:]:
        sharp = np.stack([cv2.resize(face, (blurred.shape[2], blurred.shape[1]), interpolation=cv2.INTER_AREA)
                          for face in sharp[:limit]])
    ratio = np.sqrt(_radial_power(blurred, limit) / np.maximum(_radial_power(sharp, limit), 1e-9))
    freq = np.arange(ratio.size) / size
    use = (freq > 0.02) & (freq < 0.12) & (ratio > 0.03)
    if use.sum() < 2:
        return 0.0
    log_ratio = np.log(np.minimum(ratio[use], 1.0))
    # log|H(f)| = -2 pi^2 sigma^2 f^2  ->  least squares for sigma^2
    design = -2 * np.pi ** 2 * freq[use] ** 2
    sigma_sq = float(np.dot(design, log_ratio) / np.dot(design, design))
    return float(np.sqrt(sigma_sq)) if sigma_sq > 0 else 0.0
