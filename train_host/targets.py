"""Training targets: one-hot labels, optionally blended with FER+ crowd votes; class and age-band loss weights.

FER+ (Barsoum et al. 2016) had ten people relabel every FER-2013 image. Their
vote distribution says how ambiguous a face is (a "fear" face that four of ten
people call "surprise"), which a one-hot label cannot. Training on
``(1 - w) * onehot(FER-2013 label) + w * FER+ distribution`` keeps the
original labels as the goal (the test labels stay FER-2013's) and uses the
votes as soft targets, a form of label smoothing informed by people.

The votes come in FER+ order (neutral, happiness, surprise, sadness, anger,
disgust, fear, contempt, unknown, not-a-face); contempt, unknown and
not-a-face have no class of ours and are left out before normalising. Faces
without usable votes (255, or only votes for those three) keep their one-hot
target.
"""

from __future__ import annotations

import numpy as np

from edge.frame.labels import LABELS_BY_TASK
from train_host.data import AGE_BANDS, DataError, FaceSet

# For each emotion label of ours (edge.frame.labels order), its column in the FER+ vote array.
FERPLUS_COLUMN = {"angry": 4, "disgust": 5, "fear": 6, "happy": 1, "sad": 3, "surprise": 2, "neutral": 0}
FERPLUS_MISSING = 255


def ferplus_distribution(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Votes (N, 10) → (distribution (N, 7) in our label order, mask of rows that have one)."""
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] != 10:
        raise DataError(f"ferplus_votes has shape {votes.shape}, expected (N, 10)")
    columns = [FERPLUS_COLUMN[name] for name in LABELS_BY_TASK["emotion"]]
    counts = votes[:, columns].astype(np.float32)
    missing = (votes == FERPLUS_MISSING).all(axis=1)
    counts[missing] = 0.0
    totals = counts.sum(axis=1, keepdims=True)
    usable = totals[:, 0] > 0
    dist = np.where(usable[:, None], counts / np.maximum(totals, 1.0), 0.0).astype(np.float32)
    return dist, usable


def training_targets(faces: FaceSet, num_classes: int, ferplus_weight: float = 0.0) -> np.ndarray:
    """Float targets (N, classes): one-hot, blended with FER+ votes when ``ferplus_weight`` > 0."""
    if not 0.0 <= ferplus_weight <= 1.0:
        raise DataError(f"--ferplus-weight {ferplus_weight}: expected a number between 0 and 1")
    onehot = np.eye(num_classes, dtype=np.float32)[faces.y]
    if ferplus_weight == 0.0:
        return onehot
    if faces.ferplus_votes is None:
        raise DataError(f"{faces.source}: no 'ferplus_votes' in the data; --ferplus-weight needs FER+ votes "
                        "aligned to the faces (our fer2013_Training.npz has them)")
    if num_classes != len(FERPLUS_COLUMN):
        raise DataError(f"--ferplus-weight applies to the 7 emotion classes, not {num_classes} classes")
    dist, usable = ferplus_distribution(faces.ferplus_votes)
    blended = (1.0 - ferplus_weight) * onehot + ferplus_weight * dist
    return np.where(usable[:, None], blended, onehot).astype(np.float32)


def class_balance_weights(labels: np.ndarray, num_classes: int, power: float) -> np.ndarray:
    """Per-class loss weights proportional to ``(N / (K * n_c)) ** power``, scaled so their mean over the faces is 1.

    FER-2013 has 17x more happy faces than disgust ones; an unweighted loss lets
    the model all but ignore disgust. ``power`` 1 weighs every class equally in
    the loss, 0.5 halfway (in log terms), 0 leaves the loss as it is. The mean
    over the faces stays 1 so the learning rate means the same with or without.
    ``train_host.sequence`` applies them to soft targets as a class-weighted
    cross-entropy, ``sum_k w_k t_k (-log p_k)``.
    """
    if not (np.isfinite(power) and power >= 0):
        raise DataError(f"--class-balance {power}: expected a power of 0 (off) or more")
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if np.any(counts == 0):
        missing = [int(c) for c in np.flatnonzero(counts == 0)]
        raise DataError(f"--class-balance: classes {missing} have no training faces")
    weights = (len(labels) / (num_classes * counts)) ** power
    weights /= weights[labels].mean()
    return weights.astype(np.float32)


def age_balance_weights(age: np.ndarray | None, labels: np.ndarray, num_classes: int, power: float,
                        bands: tuple[tuple[int, int], ...] = AGE_BANDS) -> np.ndarray:
    """Per-face loss weights that balance the (age band, class) cells: ``(N / (C * n_cell)) ** power``, mean 1.

    UTKFace holds 18,622 training faces but only 1,270 infants and 547 boys of
    3-12 (against 3,548 women of 18-29); an unweighted loss spends little on
    the faces the shipped gender model gets wrong most (boys of 3-12 are
    called "woman" a third of the time). Weighting each of the ``C`` non-empty
    (band, class) cells by the inverse of its size (``power`` 1) makes every
    cell weigh the same in the loss, and within a band both genders too;
    ``power`` 0.5 goes halfway in log terms and 0 leaves the loss as it is.
    Faces of no band (an unknown, negative age) form a band of their own. The
    mean over the faces stays 1 so the learning rate means the same. The
    weights multiply the class weights of :func:`class_balance_weights` in
    ``train_host.sequence``; as with those, an epoch still shows every face
    once (a weighted loss rather than oversampling, so an epoch costs the same).
    """
    if not (np.isfinite(power) and power >= 0):
        raise DataError(f"--age-balance {power}: expected a power of 0 (off) or more")
    if age is None:
        raise DataError("--age-balance needs the faces' ages ('age' in the data, as UTKFace has)")
    age = np.asarray(age)
    band = np.full(len(age), len(bands), dtype=np.int64)
    for i, (lo, hi) in enumerate(bands):
        band[(age >= lo) & (age <= hi)] = i
    cell = band * num_classes + np.asarray(labels, dtype=np.int64)
    _, index, counts = np.unique(cell, return_inverse=True, return_counts=True)
    weights = (len(cell) / (len(counts) * counts[index].astype(np.float64))) ** power
    weights /= weights.mean()
    return weights.astype(np.float32)
