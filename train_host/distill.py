"""Knowledge distillation targets: a trained teacher's probabilities blended into the training targets.

``--teacher MODEL`` (repeat it for an ensemble) runs the teacher once over the
training faces before the first epoch, each face averaged with its mirror image
by default (the teacher as the device would run it with ``flip_average``),
softened by ``--temperature``, and blends the result into the one-hot (or FER+)
targets with ``--teacher-weight``:

    target = (1 - w) * label + w * teacher(face)

Why offline, not a teacher forward pass per augmented batch: on a 2-core PC a
second network in every step would cost a third more time per epoch; the
teacher's view of the un-augmented face is a close stand-in for small shifts,
zooms and rotations, and a mirror-averaged teacher gives the same target for a
face and its mirror, as the flip augmentation needs.

A teacher is a model trained here (a wider network, an ensemble, or a larger
compute budget such as mirror averaging). The paper's published models are the
baseline we measure against and are refused as teachers.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.frame.manifest import ModelError
from train_host.data import DataError, FaceSet

# The paper's published files (see train_host.compare.PAPER_MODELS): never a teacher.
PAPER_FILES = ("*mini_XCEPTION*", "*simple_CNN*")


def _is_paper_model(path: Path) -> bool:
    return "anchors" in path.parts or any(fnmatch.fnmatchcase(path.name, pattern) for pattern in PAPER_FILES)


def teacher_probabilities(paths: Sequence[str | Path], faces: FaceSet, num_classes: int, flip: bool = True,
                          temperature: float = 1.0) -> np.ndarray:
    """The teachers' mean probabilities (N, classes) for ``faces``, mirror-averaged and softened."""
    from train_host.evaluate import load_model, mirror_averaged

    if not paths:
        raise DataError("--teacher: no model given")
    if not temperature > 0:
        raise DataError(f"--temperature {temperature}: expected a positive number")
    total = np.zeros((len(faces), num_classes), np.float64)
    for raw in paths:
        path = Path(raw)
        if _is_paper_model(path):
            raise DataError(f"--teacher {path}: the paper's published models are the baseline, not a teacher")
        try:
            teacher = load_model(path)
        except ModelError as exc:
            raise DataError(f"--teacher {exc}") from None
        if teacher.num_classes != num_classes:
            raise DataError(f"--teacher {path}: {teacher.num_classes} classes, this task has {num_classes}")
        probs = mirror_averaged(teacher, faces.x) if flip else teacher.predict(faces.x)
        total += np.asarray(probs, np.float64)
    probs = total / len(paths)
    if temperature != 1.0:
        logits = np.log(np.clip(probs, 1e-7, 1.0)) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(np.float32)


def blend(targets: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * targets + weight * teacher``; weight outside [0, 1] is one line."""
    if not 0.0 <= weight <= 1.0:
        raise DataError(f"--teacher-weight {weight}: expected a number between 0 and 1")
    if targets.shape != teacher.shape:
        raise DataError(f"teacher targets have shape {teacher.shape}, the labels {targets.shape}")
    return ((1.0 - weight) * targets + weight * teacher).astype(np.float32)


def file_sha256(path: Path) -> str:
    """sha256 of a teacher file, as ``run.json`` records it (the teacher itself never ships)."""
    if not path.is_file():
        raise DataError(f"--teacher {path}: no such model file")
    return hashlib.sha256(path.read_bytes()).hexdigest()
