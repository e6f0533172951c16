"""Keras glue for training: the augmented batch feeder and the best-model checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from edge.frame.preprocess import normalize
from train_host.augment import AugmentConfig, augment_batch, gaussian_blur, mixup_batch, resize_batch
from train_host.data import FaceSet


class AugmentedFaces(keras.utils.PyDataset):
    """Batches of normalised faces with their targets; augmented when ``augment`` is given.

    Without augmentation the faces are resized once, up front, exactly as the
    device resizes its crops, and blurred by ``blur_sigma`` as the exported
    model's frozen input blur does (validation of a blur-matched model).

    ``targets`` are float rows (one-hot or soft, see ``train_host.targets``).
    ``class_weights`` (one per class, see ``targets.class_balance_weights``)
    turn the loss into a class-weighted cross-entropy, ``sum_k w_k t_k
    (-log p_k)``, for any target row (one-hot, mixed, FER+ or teacher): each
    batch becomes a triple whose per-face weight is ``s = t . w`` with the row
    rescaled to ``w * t / s`` (Keras multiplies the per-face loss by ``s``).
    ``face_weights`` (one per face, see ``targets.age_balance_weights``)
    multiply that per-face weight; with mixup a blended face keeps the weight
    of the face that has the larger share of it.
    The shuffle order and every batch's augmentation are drawn from
    ``(seed, epoch[, batch])`` rather than from one running generator, so a
    run resumed at epoch ``k`` sees exactly the batches an uninterrupted run
    would have seen from epoch ``k`` on.
    """

    def __init__(self, faces: FaceSet, targets: np.ndarray, size: tuple[int, int], batch: int,
                 augment: AugmentConfig | None, seed: int, shuffle: bool, blur_sigma: float = 0.0,
                 start_epoch: int = 0, class_weights: np.ndarray | None = None,
                 face_weights: np.ndarray | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x = faces.x if augment else gaussian_blur(resize_batch(faces.x, size), blur_sigma)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.class_weights = None if class_weights is None else np.asarray(class_weights, np.float32)
        self.face_weights = None if face_weights is None else np.asarray(face_weights, np.float32)
        if self.face_weights is not None and self.face_weights.shape != (len(self.targets),):
            raise ValueError(f"face_weights has shape {self.face_weights.shape}, expected ({len(self.targets)},)")
        self.size = size
        self.batch = batch
        self.augment = augment
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = start_epoch
        self.order = self._order()

    def _order(self) -> np.ndarray:
        order = np.arange(len(self.targets))
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        return order

    def __len__(self) -> int:
        return int(np.ceil(len(self.targets) / self.batch))

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        pick = self.order[index * self.batch:(index + 1) * self.batch]
        faces, targets = self.x[pick], self.targets[pick]
        if not self.augment:
            x = normalize(faces)[..., None]
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            x = normalize(augment_batch(faces, self.size, self.augment, rng))[..., None]
            if self.augment.mixup:
                x, targets = mixup_batch(x, targets, self.augment.mixup, rng)
        if self.class_weights is not None:
            weights = targets @ self.class_weights
            targets = targets * self.class_weights / weights[:, None]
        elif self.face_weights is not None:
            weights = np.ones(len(pick), np.float32)
        else:
            return x, targets
        if self.face_weights is not None:
            weights = weights * self.face_weights[pick]
        return x, targets, weights

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()


def canonical_copy(trained: keras.Model, canonical: keras.Model) -> keras.Model:
    """Copy weights layer by layer (by name) into the paper's graph built by ``canonical``.

    Layers only the canonical graph has (the frozen input blur) keep their built-in weights.
    """
    trained_names = {layer.name for layer in trained.layers}
    for layer in canonical.layers:
        if layer.name not in trained_names:
            continue
        weights = trained.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights(weights)
    return canonical


class BestCanonicalCheckpoint(keras.callbacks.Callback):
    """Save the paper's graph whenever validation accuracy improves (temp file, then rename)."""

    def __init__(self, path: Path, build_canonical: Callable[[], keras.Model], monitor: str = "val_accuracy"):
        super().__init__()
        self.path = Path(path)
        self.build_canonical = build_canonical
        self.monitor = monitor
        self.best = -np.inf
        self.best_epoch = -1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or value <= self.best:
            return
        self.best, self.best_epoch = float(value), epoch
        tmp = self.path.with_name(self.path.stem + ".tmp.keras")
        canonical_copy(self.model, self.build_canonical()).save(tmp)
        os.replace(tmp, self.path)
