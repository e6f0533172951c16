"""Temperature scaling of class probabilities: confidences that mean what they say.

A model trained with label smoothing and read after mirror averaging prints
confidences below how often it is right (the shipped emotion model: right 73%
of the time when it prints 0.6-0.7). One scalar temperature ``T``, fitted on
held-out faces by ``train_host.calibrate`` and recorded in the manifest, turns
the printed probabilities ``p`` into ``softmax(log p / T)``: ``T < 1`` sharpens,
``T > 1`` softens, and the order of the classes (the label shown) never changes.
Here on the device side because the classifier applies it after averaging.
"""

from __future__ import annotations

import math

import numpy as np


def valid_temperature(value: object) -> float | None:
    """``value`` as a float when it is a usable temperature (a finite number > 0, not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log probs / T)`` along the last axis, computed as ``probs ** (1/T)`` renormalised.

    The power form keeps a class the int8 output rounded to exactly 0 at 0 (``log 0 / T`` is ``-inf``
    either way) without a log-of-zero warning; rows are rescaled by their maximum first so ``1/T``
    powers of small numbers do not underflow to an all-zero row.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if temperature == 1.0:
        return probs
    peak = probs.max(axis=-1, keepdims=True)
    scaled = np.power(probs / np.where(peak > 0, peak, 1.0), np.float32(1.0 / temperature))
    total = scaled.sum(axis=-1, keepdims=True)
    uniform = np.full_like(probs, 1.0 / probs.shape[-1])
    return np.where(total > 0, scaled / np.where(total > 0, total, 1.0), uniform).astype(np.float32)
