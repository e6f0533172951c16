"""How well printed confidences match how often the model is right, and the temperature that matches them.

ECE (expected calibration error) uses 10 equal-width bins on the top class's
probability: the face-weighted mean of |accuracy - mean confidence| per bin.
NLL is the mean negative log-probability of the true class. Both are computed
on the probabilities the device prints (``edge.frame.calibration.apply_temperature``
after mirror averaging), which is what a user reads.
"""

from __future__ import annotations

import numpy as np

from edge.frame.calibration import apply_temperature

BINS = 10
# int8 outputs round small probabilities to exactly 0; the log is floored here so one such face cannot make
# the NLL infinite (1e-6 is far below the smallest non-zero int8 step, 1/256).
PROB_FLOOR = 1e-6


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per equal-width bin of the top-class probability: faces, mean confidence, accuracy (None when empty)."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y)
    index = np.minimum((confidence * bins).astype(int), bins - 1)  # 1.0 belongs to the last bin
    rows = []
    for b in range(bins):
        mask = index == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "faces": int(mask.sum()),
                     "confidence": float(confidence[mask].mean()) if mask.any() else None,
                     "accuracy": float(correct[mask].mean()) if mask.any() else None})
    return rows


def ece(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error on the top class, ``bins`` equal-width bins."""
    rows = reliability(probs, y, bins)
    total = sum(r["faces"] for r in rows)
    if total == 0:
        return 0.0
    return float(sum(r["faces"] * abs(r["accuracy"] - r["confidence"]) for r in rows if r["faces"]) / total)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-probability of the true class (floored at ``PROB_FLOOR``)."""
    probs = np.asarray(probs, dtype=np.float64)
    picked = probs[np.arange(len(probs)), np.asarray(y, dtype=np.int64)]
    return float(-np.log(np.maximum(picked, PROB_FLOOR)).mean())


def _nll_at(logp: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logp / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(z)), y]).mean())


def fit_temperature(probs: np.ndarray, y: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The scalar T minimising the NLL of ``softmax(log p / T)``: a grid on log T, then golden-section search.

    NLL is smooth and unimodal in log T for these models; the grid only guards the bracket.
    """
    logp = np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR))
    y = np.asarray(y, dtype=np.int64)
    grid = np.linspace(np.log(low), np.log(high), 61)
    losses = [_nll_at(logp, y, float(np.exp(g))) for g in grid]
    best = int(np.argmin(losses))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if _nll_at(logp, y, float(np.exp(c))) < _nll_at(logp, y, float(np.exp(d))):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def fit_class_vector(probs: np.ndarray, y: np.ndarray, steps: int = 2000, lr: float = 0.5) -> np.ndarray:
    """Per-class inverse temperatures ``w`` minimising the NLL of ``softmax(w * log p)`` (the vector variant).

    Convex in ``w`` (the logits are linear in it); plain gradient descent from the scalar fit is enough.
    """
    logp = np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR))
    y = np.asarray(y, dtype=np.int64)
    onehot = np.eye(logp.shape[1])[y]
    w = np.full(logp.shape[1], 1.0 / fit_temperature(probs, y))
    for _ in range(steps):
        z = w * logp
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        w -= lr * ((q - onehot) * logp).mean(axis=0)
    return w


def apply_class_vector(probs: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``softmax(w * log p)``: the per-class variant, for comparison with the scalar temperature."""
    z = np.asarray(w) * np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR))
    z -= z.max(axis=1, keepdims=True)
    q = np.exp(z)
    return (q / q.sum(axis=1, keepdims=True)).astype(np.float32)


def summary(probs: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> dict:
    """ECE, NLL and accuracy of ``probs`` read through ``temperature``."""
    shown = apply_temperature(probs, temperature)
    return {"ece": round(ece(shown, y), 4), "nll": round(nll(shown, y), 4),
            "accuracy": round(float((shown.argmax(axis=1) == np.asarray(y)).mean()), 4)}
