"""Train mini-Xception or the sequential CNN for emotion or gender.

    python -m train_host.train emotion --data ../shared/data/fer2013 --model mini_xception --out runs/emotion
    python -m train_host.train gender --data ../shared/data/utkface --out runs/gender

Writes to ``--out``: ``best.keras`` (best validation accuracy, the paper's graph),
``last.keras``, ``log.csv`` (Keras CSVLogger), ``curves.png`` and ``run.json``
(configuration, data, parameter count, best epoch, commit).

CPU note: TensorFlow 2.21's oneDNN kernel for strided 1x1 convolutions crashes
(segfault) on inputs above ~56x56 while training, and without oneDNN an epoch
is ~2x slower. Training therefore builds mini-Xception with the residual
subsampling split into a 1x1 max-pool and a 1x1 conv (same function, same
weights) and saves the paper's graph; oneDNN stays on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.labels import LABELS_BY_TASK, TASKS
from train_host import provenance
from train_host.augment import AugmentConfig
from train_host.data import DataError, FaceSet, load_train_val, random_split

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

DEFAULTS = {
    # task: (epochs, early-stop patience, LR-plateau patience, augmentation)
    "emotion": dict(epochs=150, patience=30, lr_patience=10,
                    augment=AugmentConfig(rotation_deg=10, zoom=0.1, shift=0.1, flip=True,
                                          brightness=0.1, contrast=0.2)),
    "gender": dict(epochs=60, patience=15, lr_patience=5,
                   augment=AugmentConfig(rotation_deg=10, zoom=0.12, shift=0.08, flip=True,
                                         brightness=0.1, contrast=0.25)),
}


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Make ``--help`` show every default: the fixed ones, and per task the ones :data:`DEFAULTS` sets."""
    per_task = {"epochs": "epochs", "patience": "patience", "lr_patience": "lr_patience"}
    for action in parser._actions:
        text = action.help or ""
        if action.dest in per_task:
            shown = ", ".join(f"{task} {values[per_task[action.dest]]}" for task, values in DEFAULTS.items())
        elif action.dest in ("zoom", "shift"):
            shown = ", ".join(f"{task} {getattr(values['augment'], action.dest)}" for task, values in DEFAULTS.items())
        elif action.default is not None and action.default is not False and action.default != argparse.SUPPRESS \
                and "default" not in text:
            shown = str(action.default)
        else:
            continue
        action.help = f"{text} (default: {shown})".strip().replace("%", "%%")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train_host.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("--data", required=True,
                        help="dataset file or folder (npz, fer2013.csv, image tree, UTKFace, IMDB-WIKI)")
    parser.add_argument("--model", default="mini_xception", choices=("mini_xception", "sequential_cnn"))
    parser.add_argument("--out", required=True, help="run folder for checkpoints, log and plots")
    parser.add_argument("--size", type=int, default=64, help="input side in pixels (default 64, the paper's)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, help="early-stopping patience (epochs)")
    parser.add_argument("--lr-patience", type=int, help="epochs without improvement before the LR drops 10x")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--zoom", type=float, help="random zoom range (content scale 1 +- zoom); "
                                                   "the default suits each task")
    parser.add_argument("--shift", type=float, help="random shift range, fraction of the size")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 on conv kernels (the paper's 0.01)")
    parser.add_argument("--val", choices=("dataset", "holdout"),
                        help="validate on the dataset's own test split, or hold out part of training "
                             "(default: dataset for emotion, holdout for gender)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--input-blur", default="auto",
                        help="blur (sigma, model-input pixels) the exported model applies to its input; 'auto' "
                             "measures how much blurrier the training faces are than the validation faces "
                             "(default), 0 turns it off")
    parser.add_argument("--init", metavar="MODEL.keras",
                        help="start from a trained model's weights (fine-tuning, e.g. with another label "
                             "smoothing or learning rate); same architecture and class count")
    parser.add_argument("--limit", type=int, help="use only this many training faces (smoke tests)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress output")
    show_defaults(parser)
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace, size: tuple[int, int]) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets as the arguments ask."""
    val_mode = args.val or ("dataset" if args.task == "emotion" else "holdout")
    train, val = load_train_val(args.data, args.task, size=None, seed=args.seed, val_fraction=args.val_fraction)
    if val_mode == "holdout" and Path(args.data).is_dir() and any(Path(args.data).glob("*.npz")):
        train, val = random_split(train, args.val_fraction, args.seed)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        train = train.subset(rng.permutation(len(train))[: args.limit])
        val = val.subset(rng.permutation(len(val))[: max(args.limit // 4, 32)])
    return train, val


class _StopFlag:
    requested = False


def stop_on_signal():
    """Ctrl-C or SIGTERM ends training after the current epoch, so checkpoints, log and run.json are written."""
    import keras

    class _Callback(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            def stop(signum, _frame):
                if _StopFlag.requested:  # a second Ctrl-C stops at once
                    raise KeyboardInterrupt
                _StopFlag.requested = True
                print(f"\n{signal.Signals(signum).name}: stopping after this epoch (again to stop now)", flush=True)

            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGTERM, stop)

        def on_epoch_end(self, epoch, logs=None):
            if _StopFlag.requested:
                self.model.stop_training = True

    return _Callback()


def blur_match(args: argparse.Namespace, train_set: FaceSet, val_set: FaceSet,
               size: tuple[int, int]) -> tuple[dict, float]:
    """Sharpness figures of both sets and the input blur (model-input pixels) the exported model applies."""
    from train_host.sharpness import MIN_SIGMA, estimate_blur_sigma, laplacian_variance

    figures = {"train_laplacian_var": round(laplacian_variance(train_set.x), 1),
               "validation_laplacian_var": round(laplacian_variance(val_set.x), 1)}
    if args.input_blur != "auto":
        try:
            sigma = float(args.input_blur)
        except ValueError:
            raise DataError(f"--input-blur {args.input_blur!r}: expected 'auto' or a number") from None
        return figures, max(0.0, sigma)
    source_sigma = estimate_blur_sigma(train_set.x, val_set.x)
    figures["estimated_train_blur_sigma_px"] = round(source_sigma, 3)
    if source_sigma < MIN_SIGMA:
        return figures, 0.0
    sigma = source_sigma * size[1] / train_set.x.shape[2]
    print(f"WARNING: the training faces are blurred (Gaussian sigma ~{source_sigma:.2f} px at "
          f"{train_set.x.shape[2]}x{train_set.x.shape[1]}; Laplacian variance {figures['train_laplacian_var']} vs "
          f"{figures['validation_laplacian_var']} for validation). The exported model will blur its input by "
          f"sigma {sigma:.2f} px at {size[1]}x{size[0]} to match; pass --input-blur 0 to disable.", flush=True)
    return figures, sigma


def init_from(model, path: Path) -> None:
    """Copy the weights of the trained model at ``path`` into ``model``, layer by layer, by name.

    Checkpoints hold the paper's graph (plus the frozen input blur); the
    training graph has the same named layers, so every layer with weights must
    be found there with the same shapes, or the run stops with one line.
    """
    from train_host.tfquiet import import_keras

    keras = import_keras()
    if not path.is_file():
        raise DataError(f"--init {path}: no such model file")
    try:
        trained = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise DataError(f"--init {path}: not a loadable Keras model ({str(exc).splitlines()[0][:160]})") from None
    found = {layer.name: layer for layer in trained.layers}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        source = found.get(layer.name)
        theirs = source.get_weights() if source is not None else []
        if [w.shape for w in theirs] != [w.shape for w in weights]:
            raise DataError(f"--init {path}: layer {layer.name} is missing or has other shapes "
                            "(another architecture or class count?)")
        layer.set_weights(theirs)


def train(args: argparse.Namespace) -> dict:
    """Run one training; returns the summary written to ``run.json``."""
    task_defaults = DEFAULTS[args.task]
    epochs = args.epochs or task_defaults["epochs"]
    patience = args.patience or task_defaults["patience"]
    lr_patience = args.lr_patience or task_defaults["lr_patience"]
    labels = LABELS_BY_TASK[args.task]
    size = (args.size, args.size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_set, val_set = load_data(args, size)
    print(f"{args.task}: {len(train_set)} training faces from {train_set.source}, "
          f"{len(val_set)} validation faces from {val_set.source}", flush=True)
    sharpness, blur_sigma = blur_match(args, train_set, val_set, size)

    from train_host.tfquiet import import_keras

    keras = import_keras()
    from train_host.models import build_model
    from train_host.plots import training_curves
    from train_host.sequence import AugmentedFaces, BestCanonicalCheckpoint, canonical_copy

    keras.utils.set_random_seed(args.seed)
    kwargs = {"subsample_residual": True, "l2": args.l2} if args.model == "mini_xception" else {}
    model = build_model(args.model, (*size, 1), len(labels), **kwargs)
    if args.init:
        init_from(model, Path(args.init))
    params = model.count_params()
    print(f"{args.model}: {params:,} parameters at {size[0]}x{size[1]}x1, {len(labels)} classes", flush=True)

    augment: AugmentConfig = task_defaults["augment"]
    if args.zoom is not None:
        augment = replace(augment, zoom=args.zoom)
    if args.shift is not None:
        augment = replace(augment, shift=args.shift)
    train_seq = AugmentedFaces(train_set, size, len(labels), args.batch, augment, seed=args.seed, shuffle=True)
    val_seq = AugmentedFaces(val_set, size, len(labels), 256, None, seed=args.seed, shuffle=False,
                             blur_sigma=blur_sigma)
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
        metrics=["accuracy"],
    )

    def build_canonical():
        canon_kwargs = {"l2": args.l2} if args.model == "mini_xception" else {}
        return build_model(args.model, (*size, 1), len(labels), blur_sigma=blur_sigma, **canon_kwargs)

    best_ckpt = BestCanonicalCheckpoint(out / "best.keras", build_canonical)
    callbacks = [
        best_ckpt,
        keras.callbacks.CSVLogger(str(out / "log.csv")),
        keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=lr_patience, min_lr=1e-6,
                                          verbose=1),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, verbose=1),
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: training_curves(out / "log.csv", out / "curves.png",
                                                             f"{args.task} {args.model} {size[0]}x{size[1]}")
        ),
    ]
    callbacks.append(stop_on_signal())
    start = time.time()
    history = model.fit(train_seq, validation_data=val_seq, epochs=epochs, callbacks=callbacks, verbose=args.verbose)
    seconds = time.time() - start
    canonical_copy(model, build_canonical()).save(out / "last.keras")
    training_curves(out / "log.csv", out / "curves.png", f"{args.task} {args.model} {size[0]}x{size[1]}")
    val_acc = history.history.get("val_accuracy", [0.0])
    summary = {
        "task": args.task,
        "model": args.model,
        "labels": list(labels),
        "input": [size[0], size[1], 1],
        "parameters": int(params),
        "data": {"path": str(args.data), "train": train_set.source, "train_faces": len(train_set),
                 "validation": val_set.source, "validation_faces": len(val_set)},
        "epochs_run": len(val_acc),
        "best_epoch": best_ckpt.best_epoch + 1,
        "best_val_accuracy": round(float(np.max(val_acc)), 4),
        "init": args.init,
        "batch": args.batch, "lr": args.lr, "l2": args.l2, "label_smoothing": args.label_smoothing,
        "patience": patience, "lr_patience": lr_patience, "seed": args.seed,
        "augment": augment.__dict__,
        "input_blur_sigma": round(blur_sigma, 3),
        "sharpness": sharpness,
        "train_seconds": round(seconds, 1),
        "stopped_by_signal": _StopFlag.requested,
        "commit": provenance.git_commit(),
        "command": "python -m train_host.train " + " ".join(sys.argv[1:]),
        "host": provenance.host_info(),
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"best validation accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}; "
          f"model in {out / 'best.keras'}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.size < 16:
            raise DataError(f"--size {args.size} is too small (at least 16)")
        train(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the best checkpoint so far is kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
