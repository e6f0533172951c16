"""Keras glue for training: the augmented batch feeder and the best-model checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from edge.preprocess import normalize
from train_host.augment import AugmentConfig, augment_batch, gaussian_blur, resize_batch
from train_host.data import FaceSet


class AugmentedFaces(keras.utils.PyDataset):
    """Batches of normalised faces with one-hot labels; augmented when ``augment`` is given.

    Without augmentation the faces are resized once, up front, exactly as the
    device resizes its crops, and blurred by ``blur_sigma`` as the exported
    model's frozen input blur does (validation of a blur-matched model).
    """

    def __init__(self, faces: FaceSet, size: tuple[int, int], num_classes: int, batch: int,
                 augment: AugmentConfig | None, seed: int, shuffle: bool, blur_sigma: float = 0.0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x = faces.x if augment else gaussian_blur(resize_batch(faces.x, size), blur_sigma)
        self.y = faces.y
        self.size = size
        self.num_classes = num_classes
        self.batch = batch
        self.augment = augment
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(self.y))
        if shuffle:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return int(np.ceil(len(self.y) / self.batch))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        pick = self.order[index * self.batch:(index + 1) * self.batch]
        faces = self.x[pick]
        if self.augment:
            faces = augment_batch(faces, self.size, self.augment, self.rng)
        onehot = np.eye(self.num_classes, dtype=np.float32)[self.y[pick]]
        return normalize(faces)[..., None], onehot

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


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
