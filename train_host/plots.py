"""PNG figures: training curves and confusion matrices (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(log_csv: Path, out_png: Path, title: str) -> Path:
    """Loss and accuracy per epoch, training vs validation, from Keras' CSVLogger file."""
    with open(log_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return out_png
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in rows[0]:
            ax_loss.plot(epochs, [float(r[key]) for r in rows], label=label)
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        if key in rows[0]:
            ax_acc.plot(epochs, [100 * float(r[key]) for r in rows], label=label)
    if "val_accuracy" in rows[0]:
        best = int(np.argmax([float(r["val_accuracy"]) for r in rows]))
        ax_acc.axvline(epochs[best], color="grey", linestyle=":", label=f"best epoch {epochs[best]}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _wrap_title(title: str, width: int = 42) -> str:
    """Break a long title after its colon (model: figure on file), else at spaces, so no line is cut off."""
    import textwrap

    head, sep, tail = title.partition(": ")
    lines = [head + sep.strip(), tail] if sep and len(title) > width else [title]
    return "\n".join(part for line in lines for part in textwrap.wrap(line, width) if part)


def confusion_matrix_png(matrix: np.ndarray, labels: Sequence[str], out_png: Path, title: str) -> Path:
    """Row-normalised confusion matrix (true class per row), as the paper's Fig. 8.6."""
    counts = matrix.astype(np.float64)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.2, 1.0 + 0.9 * len(labels))  # two classes still get cells that fit their numbers
    fig, ax = plt.subplots(figsize=(size + 1.5, size + 0.4))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 3 else 0,
                  ha="right" if len(labels) > 3 else "center")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(_wrap_title(title), fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class (faces in brackets)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def reliability_png(curves: dict[str, list[dict]], out_png: Path, title: str) -> Path:
    """Reliability diagram: accuracy against mean confidence per confidence bin, one line per curve
    (``train_host.calibration.reliability`` rows), the diagonal being confidences that mean what they say."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="confidence = accuracy")
    for name, rows in curves.items():
        used = [r for r in rows if r["faces"]]
        ax.plot([r["confidence"] for r in used], [r["accuracy"] for r in used], marker="o", label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean printed confidence in the bin (10 equal-width bins)",
           ylabel="share right in the bin")
    ax.set_title(_wrap_title(title, 56), fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
