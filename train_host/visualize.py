"""Guided back-propagation pictures (the paper's Fig. 8.7).

    python -m train_host.visualize --model models/emotion_mini_xception.keras \
        --data ../shared/data/fer2013/fer2013_PublicTest.npz --out out/guided_backprop.png
    python -m train_host.visualize --model models/gender_mini_xception.keras \
        --data ../shared/data/utkface/utkface_gender_gray64_test.npz --out out/guided_backprop_gender.png

One row per class (emotion: angry, happy, sad and surprise, the paper's rows;
gender: woman and man; the task follows from the model's output count). Each
row shows test faces the model gets right with the highest confidence, each
followed by its guided back-propagation map for the most active neuron of the
last convolution layer: which pixels push that neuron up, with negative
gradients stopped at every ReLU on the way back (Springenberg et al.), so the
map shows what the network looks at. Columns are labelled ("input", "guided
back-prop") and every face carries the model's predicted class and probability,
so a reader needs neither the paper nor this docstring to read the grid.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.frame.labels import LABELS_BY_TASK
from edge.frame.manifest import ModelError
from edge.frame.preprocess import normalize
from train_host.augment import resize_batch
from train_host.data import DataError, load

ROWS_BY_TASK = {"emotion": ("angry", "happy", "sad", "surprise"), "gender": ("woman", "man")}

# Back-propagating through a strided 1x1 conv on a 60x60 map crashes TF 2.21's oneDNN
# kernels (heap corruption); the plain kernels are fast enough for a dozen faces.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def guided_model(model):
    """A copy of ``model`` whose ReLUs pass back only positive gradients where the input was positive."""
    import keras
    import tensorflow as tf

    @tf.custom_gradient
    def guided_relu(x):
        def grad(dy):
            return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype)

        return tf.nn.relu(x), grad

    class GuidedReLU(keras.layers.Layer):
        def call(self, inputs):
            return guided_relu(inputs)

    def clone(layer):
        if isinstance(layer, keras.layers.ReLU):
            return GuidedReLU(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def last_conv_name(model) -> str:
    """Name of the last convolution layer (the class conv of both architectures)."""
    import keras

    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ModelError(f"{model.name}: no convolution layer to visualise")
    return convs[-1]


def guided_backprop(model, faces: np.ndarray) -> np.ndarray:
    """Guided gradients (N, H, W) of each face's most active last-conv neuron w.r.t. its input pixels."""
    import keras
    import tensorflow as tf

    guided = guided_model(model)
    probe = keras.Model(guided.inputs, guided.get_layer(last_conv_name(model)).output)
    x = tf.convert_to_tensor(normalize(faces)[..., None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        activations = probe(x, training=False)
        flat = tf.reshape(activations, (tf.shape(activations)[0], -1))
        top = tf.reduce_max(flat, axis=1)
    return tape.gradient(top, x).numpy()[..., 0]


def to_picture(gradient: np.ndarray) -> np.ndarray:
    """Gradient map -> uint8 picture centred on grey, contrast by its own spread."""
    g = gradient - gradient.mean()
    g = g / (g.std() + 1e-8) * 0.15 + 0.5
    return (np.clip(g, 0, 1) * 255).astype(np.uint8)


@dataclass
class Picked:
    """One row of the grid: faces of a class and the model's prediction for each."""

    faces: np.ndarray  # (N, H, W) uint8 at the model's input size
    predicted: list[str]
    probability: list[float]  # of the predicted class


def task_of(model) -> str:
    """"emotion" or "gender", from the number of outputs."""
    for task, labels in LABELS_BY_TASK.items():
        if model.output_shape[-1] == len(labels):
            return task
    raise ModelError(f"{model.name}: {model.output_shape[-1]} outputs; guided back-prop rows need the "
                     + " or ".join(f"{len(v)}-class {k}" for k, v in LABELS_BY_TASK.items()) + " model")


def pick_faces(model, x: np.ndarray, y: np.ndarray, size: tuple[int, int], per_row: int,
               task: str = "emotion") -> dict[str, Picked]:
    """For each row's class, the test faces predicted correctly with the highest confidence."""
    labels = LABELS_BY_TASK[task]
    faces = resize_batch(x, size)
    probs = model.predict(normalize(faces)[..., None], batch_size=256, verbose=0)
    picked = {}
    for label in ROWS_BY_TASK[task]:
        index = labels.index(label)
        right = np.flatnonzero((y == index) & (probs.argmax(axis=1) == index))
        if right.size == 0:
            right = np.flatnonzero(y == index)
        order = right[np.argsort(-probs[right, index])][:per_row]
        picked[label] = Picked(faces[order], [labels[int(i)] for i in probs[order].argmax(axis=1)],
                               [float(p) for p in probs[order].max(axis=1)])
    return picked


def grid_png(picked: dict[str, Picked], maps: dict[str, np.ndarray], out: Path, title: str) -> Path:
    """The grid (:func:`grid_figure`) saved as a PNG."""
    import matplotlib.pyplot as plt

    fig = grid_figure(picked, maps, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def grid_figure(picked: dict[str, Picked], maps: dict[str, np.ndarray], title: str):
    """The grid: a row per class, (input, guided back-prop) column pairs, the prediction under each face."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(picked)
    per_row = max(len(v.faces) for v in picked.values())
    fig, axes = plt.subplots(len(rows), 2 * per_row, figsize=(1.7 * per_row * 2 + 0.6, 2.0 * len(rows) + 0.9),
                             squeeze=False)
    for r, label in enumerate(rows):
        row = picked[label]
        for c in range(per_row):
            face_ax, map_ax = axes[r, 2 * c], axes[r, 2 * c + 1]
            if c < len(row.faces):
                face_ax.imshow(row.faces[c], cmap="gray", vmin=0, vmax=255)
                map_ax.imshow(to_picture(maps[label][c]), cmap="gray", vmin=0, vmax=255)
                face_ax.set_xlabel(f"predicted {row.predicted[c]} {row.probability[c]:.2f}", fontsize=9)
            for ax in (face_ax, map_ax):
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
            if r == 0:
                face_ax.set_title("input", fontsize=10)
                map_ax.set_title("guided back-prop", fontsize=10)
        axes[r, 0].set_ylabel(label, fontsize=12, fontweight="bold")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.visualize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="emotion or gender model (.keras)")
    parser.add_argument("--data", required=True, help="test data of that task (any supported format)")
    parser.add_argument("--out", default="out/guided_backprop.png")
    parser.add_argument("--per-row", type=int, default=3, help="faces per class")
    args = parser.parse_args(argv)
    try:
        from train_host.tfquiet import import_keras

        if not Path(args.model).is_file():
            raise ModelError(f"{args.model}: no such model file")
        keras = import_keras()
        try:
            model = keras.models.load_model(args.model, compile=False)
        except Exception as exc:
            raise ModelError(f"{args.model}: not a loadable Keras model ({str(exc).splitlines()[0][:200]})") from None
        task = task_of(model)
        faces = load(args.data, task, split="test")
        size = tuple(model.input_shape[1:3])
        picked = pick_faces(model, faces.x, faces.y, size, args.per_row, task)
        maps = {label: guided_backprop(model, row.faces) for label, row in picked.items()}
    except (DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = Path(args.data).name
    title = (f"Guided back-propagation of {Path(args.model).name} ({size[0]}x{size[1]} input), {data}\n"
             f"per class: the {args.per_row} test faces it gets right most confidently; "
             "bright = pixels that raise its most active last-layer neuron")
    out = grid_png(picked, maps, Path(args.out), title)
    print(f"guided back-propagation grid: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
