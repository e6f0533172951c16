"""Guided back-propagation pictures (the paper's Fig. 8.7).

    python -m train_host.visualize --model models/emotion_mini_xception.keras \
        --data ../shared/data/fer2013/fer2013_PublicTest.npz --out out/guided_backprop.png

Rows are angry, happy, sad and surprise; each row shows faces the model gets
right with the highest confidence, each followed by its guided back-propagation
map for the most active neuron of the last convolution layer: which pixels
push that neuron up, with negative gradients stopped at every ReLU on the way
back (Springenberg et al.), so the map shows what the network looks at.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from edge.labels import EMOTION_LABELS
from edge.manifest import ModelError
from edge.preprocess import normalize
from train_host.augment import resize_batch
from train_host.data import DataError, load

ROWS = ("angry", "happy", "sad", "surprise")

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


def pick_faces(model, x: np.ndarray, y: np.ndarray, size: tuple[int, int], per_row: int) -> dict[str, np.ndarray]:
    """For each row's class, the test faces predicted correctly with the highest confidence."""
    faces = resize_batch(x, size)
    probs = model.predict(normalize(faces)[..., None], batch_size=256, verbose=0)
    picked = {}
    for label in ROWS:
        index = EMOTION_LABELS.index(label)
        right = np.flatnonzero((y == index) & (probs.argmax(axis=1) == index))
        if right.size == 0:
            right = np.flatnonzero(y == index)
        order = right[np.argsort(-probs[right, index])][:per_row]
        picked[label] = faces[order]
    return picked


def grid_png(picked: dict[str, np.ndarray], maps: dict[str, np.ndarray], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_row = max(len(v) for v in picked.values())
    fig, axes = plt.subplots(len(ROWS), 2 * per_row, figsize=(2.0 * per_row * 2, 2.1 * len(ROWS)), squeeze=False)
    for r, label in enumerate(ROWS):
        for c in range(per_row):
            face_ax, map_ax = axes[r, 2 * c], axes[r, 2 * c + 1]
            if c < len(picked[label]):
                face_ax.imshow(picked[label][c], cmap="gray", vmin=0, vmax=255)
                map_ax.imshow(to_picture(maps[label][c]), cmap="gray", vmin=0, vmax=255)
            face_ax.axis("off")
            map_ax.axis("off")
        axes[r, 0].set_title(label, loc="left", fontsize=11)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.visualize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="emotion model (.keras)")
    parser.add_argument("--data", required=True, help="emotion test data (any supported format)")
    parser.add_argument("--out", default="out/guided_backprop.png")
    parser.add_argument("--per-row", type=int, default=3, help="faces per emotion")
    args = parser.parse_args(argv)
    try:
        from train_host.tfquiet import import_keras

        if not Path(args.model).is_file():
            raise ModelError(f"{args.model}: no such model file")
        faces = load(args.data, "emotion", split="test")
        keras = import_keras()
        try:
            model = keras.models.load_model(args.model, compile=False)
        except Exception as exc:
            raise ModelError(f"{args.model}: not a loadable Keras model ({str(exc).splitlines()[0][:200]})") from None
        if model.output_shape[-1] != len(EMOTION_LABELS):
            raise ModelError(f"{args.model}: {model.output_shape[-1]} outputs; guided back-prop rows need the "
                             f"{len(EMOTION_LABELS)}-class emotion model")
        size = tuple(model.input_shape[1:3])
        picked = pick_faces(model, faces.x, faces.y, size, args.per_row)
        maps = {label: guided_backprop(model, batch) for label, batch in picked.items()}
    except (DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = grid_png(picked, maps, Path(args.out), f"Guided back-propagation: {Path(args.model).name}")
    print(f"guided back-propagation grid: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
