"""Train mini-Xception or the sequential CNN for emotion or gender.

    python -m train_host.train emotion --data ../shared/data/fer2013 --model mini_xception --out runs/emotion
    python -m train_host.train gender --data ../shared/data/utkface --out runs/gender

Writes to ``--out``: ``best.keras`` (best validation accuracy, the paper's graph),
``last.keras``, ``log.csv`` (Keras CSVLogger), ``curves.png`` and ``run.json``
(configuration, data, parameter count, best epoch, commit).

One run is five steps: :func:`~train_host.train_settings.resolve` (options checked
and defaulted, or restored by ``--resume``, into a ``TrainSettings``), :func:`load`
(faces, targets, teacher, class weights, input blur), :func:`build` (the model),
:func:`fit` and :func:`record` (``run.json``).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.frame.labels import TASKS
from train_host import provenance
from train_host.data import DataError, FaceSet, load_train_val, random_split
from train_host.train_settings import DEFAULTS, TrainSettings, resolve

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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
    parser.add_argument("--data",
                        help="dataset file or folder (npz, fer2013.csv, image tree, UTKFace, IMDB-WIKI); "
                             "required unless --resume")
    parser.add_argument("--model", choices=("mini_xception", "sequential_cnn"),
                        help="architecture (default mini_xception)")
    parser.add_argument("--out", help="run folder for checkpoints, log and plots (required unless --resume)")
    parser.add_argument("--size", type=int, help="input side in pixels (default 64, the paper's)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, help="early-stopping patience (epochs)")
    parser.add_argument("--lr-patience", type=int, help="epochs without improvement before the LR drops 10x")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--zoom", type=float, help="random zoom range (content scale 1 +- zoom); "
                                                   "the default suits each task")
    parser.add_argument("--shift", type=float, help="random shift range, fraction of the size")
    parser.add_argument("--cutout", type=float, metavar="SIDE",
                        help="paint a square of this side (fraction of the face, 0 up to 1) over each training face "
                             "with its mean grey (0 = off)")
    parser.add_argument("--mixup", type=float, metavar="ALPHA",
                        help="blend pairs of training faces and their targets, weight ~ Beta(ALPHA, ALPHA); "
                             "0.2 is usual (0 = off)")
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
    parser.add_argument("--schedule", choices=("plateau", "cosine"), default="plateau",
                        help="learning rate: /10 when validation accuracy stalls, with early stopping (plateau), "
                             "or a cosine decay from --lr to 0 over --epochs with no early stopping (cosine; "
                             "the last epoch is the model, nothing is picked on the validation split)")
    parser.add_argument("--ferplus-weight", type=float, default=0.0,
                        help="blend the FER+ crowd votes into the targets with this weight (0..1; emotion only, "
                             "needs 'ferplus_votes' in the data); test labels stay FER-2013's")
    parser.add_argument("--class-balance", type=float, metavar="POWER",
                        help="class-weighted loss, each class weighted by (N / (classes * faces of that class)) "
                             "** POWER, rescaled to a mean of 1: 1 = every class counts equally, 0.5 = halfway "
                             "(0 = off)")
    parser.add_argument("--age-balance", type=float, metavar="POWER",
                        help="loss weights by (age band, class) cell, each cell weighted by (N / (cells * faces "
                             "of that cell)) ** POWER, rescaled to a mean of 1: 1 = every cell (e.g. boys of 3-12) "
                             "counts equally, 0.5 = halfway; needs ages (UTKFace) (0 = off)")
    parser.add_argument("--teacher", action="append", metavar="MODEL",
                        help="knowledge distillation: blend this trained model's probabilities (mirror-averaged) "
                             "into the targets; repeat for an ensemble (see train_host/distill.py)")
    parser.add_argument("--teacher-weight", type=float,
                        help="with --teacher: weight of the teacher's probabilities in the targets (0..1; "
                             "default 0.5)")
    parser.add_argument("--temperature", type=float,
                        help="with --teacher: soften the teacher's probabilities, softmax(log p / T) (default 1)")
    parser.add_argument("--keep-test-duplicates", action="store_true",
                        help="keep training rows marked as copies of test images ('publictest_dup'); by default "
                             "they are dropped so the validation figure is not inflated")
    parser.add_argument("--resume", metavar="RUN",
                        help="continue the run in this folder from its last epoch (optimizer state, schedule and "
                             "augmentation seed included); the stored settings are used")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="stop after N epochs of this invocation (train in pieces; continue with --resume)")
    parser.add_argument("--limit", type=int, help="use only this many training faces, and limit/4 validation "
                                                  "faces (smoke tests)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress output")
    show_defaults(parser)
    return parser.parse_args(argv)


def load_data(settings: TrainSettings) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets as the settings ask."""
    val_mode = settings.val or ("dataset" if settings.task == "emotion" else "holdout")
    train, val = load_train_val(settings.data, settings.task, size=None, seed=settings.seed,
                                val_fraction=settings.val_fraction)
    if val_mode == "holdout" and Path(settings.data).is_dir() and any(Path(settings.data).glob("*.npz")):
        train, val = random_split(train, settings.val_fraction, settings.seed)
    if train.test_dup is not None and not settings.keep_test_duplicates:
        dropped = int(train.test_dup.sum())
        train = train.subset(~train.test_dup)
        print(f"dropped {dropped} training faces that copy a test image (--keep-test-duplicates keeps them)",
              flush=True)
    if settings.limit:
        rng = np.random.default_rng(settings.seed)
        train = train.subset(rng.permutation(len(train))[: settings.limit])
        val = val.subset(rng.permutation(len(val))[: max(settings.limit // 4, 32)])
    return train, val


class _StopFlag:
    requested = False


def stop_on_signal() -> Any:
    """Ctrl-C or SIGTERM ends training after the current epoch, so checkpoints, log and run.json are written."""
    import keras

    class _Callback(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            def stop(signum: int, _frame: Any) -> None:
                if _StopFlag.requested:  # a second Ctrl-C stops at once
                    raise KeyboardInterrupt
                _StopFlag.requested = True
                print(f"\n{signal.Signals(signum).name}: stopping after this epoch (again to stop now)", flush=True)

            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGTERM, stop)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if _StopFlag.requested:
                self.model.stop_training = True

    return _Callback()


def blur_match(settings: TrainSettings, train_set: FaceSet, val_set: FaceSet) -> tuple[dict[str, float], float]:
    """Sharpness figures of both sets and the input blur (model-input pixels) the exported model applies."""
    from train_host.sharpness import MIN_SIGMA, estimate_blur_sigma, laplacian_variance

    figures = {"train_laplacian_var": round(laplacian_variance(train_set.x), 1),
               "validation_laplacian_var": round(laplacian_variance(val_set.x), 1)}
    if settings.input_blur != "auto":
        try:
            sigma = float(settings.input_blur)
        except ValueError:
            raise DataError(f"--input-blur {settings.input_blur!r}: expected 'auto' or a number") from None
        return figures, max(0.0, sigma)
    source_sigma = estimate_blur_sigma(train_set.x, val_set.x)
    figures["estimated_train_blur_sigma_px"] = round(source_sigma, 3)
    if source_sigma < MIN_SIGMA:
        return figures, 0.0
    sigma = source_sigma * settings.size / train_set.x.shape[2]
    print(f"WARNING: the training faces are blurred (Gaussian sigma ~{source_sigma:.2f} px at "
          f"{train_set.x.shape[2]}x{train_set.x.shape[1]}; Laplacian variance {figures['train_laplacian_var']} vs "
          f"{figures['validation_laplacian_var']} for validation). The exported model will blur its input by "
          f"sigma {sigma:.2f} px at {settings.size}x{settings.size} to match; pass --input-blur 0 to disable.",
          flush=True)
    return figures, sigma


def init_from(model: Any, path: Path) -> None:
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


def cosine_lr(base: float, epoch: int, epochs: int) -> float:
    """Cosine decay from ``base`` at epoch 0 towards 0 at ``epochs`` (half a cosine period)."""
    return float(base * 0.5 * (1.0 + np.cos(np.pi * epoch / max(epochs, 1))))


def history_from_log(log_csv: Path) -> dict[str, list[float]]:
    """Per-epoch metrics of the whole run (all pieces of a resumed run) from Keras' CSV log."""
    import csv

    if not log_csv.is_file():
        return {}
    with log_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    keys = rows[0].keys() if rows else ()
    return {key: [float(row[key]) for row in rows if row.get(key) not in (None, "")] for key in keys}


@dataclass
class TrainingData:
    """What a model is fitted on: both sets, their targets (teacher blended in), class weights, input blur."""

    train: FaceSet
    val: FaceSet
    train_targets: np.ndarray
    val_targets: np.ndarray
    class_weights: np.ndarray | None
    face_weights: np.ndarray | None
    sharpness: dict[str, float]
    blur_sigma: float


@dataclass
class Fitted:
    """What fitting left: the parameter count, the epoch it started at and the seconds it took."""

    parameters: int
    start_epoch: int
    seconds: float


def load(settings: TrainSettings) -> TrainingData:
    """The faces, their targets (FER+ votes and the teacher blended in), class weights and the input blur."""
    labels = settings.labels
    train_set, val_set = load_data(settings)
    print(f"{settings.task}: {len(train_set)} training faces from {train_set.source}, "
          f"{len(val_set)} validation faces from {val_set.source}", flush=True)
    from train_host.targets import training_targets

    train_targets = training_targets(train_set, len(labels), settings.ferplus_weight)
    if settings.teacher:
        from train_host.distill import blend, teacher_probabilities

        assert settings.teacher_weight is not None and settings.temperature is not None  # resolve fills both

        print(f"distillation: {len(settings.teacher)} teacher(s) over {len(train_set)} training faces "
              "(mirror-averaged)", flush=True)
        teacher = teacher_probabilities(settings.teacher, train_set, len(labels), temperature=settings.temperature)
        teacher_val = teacher_probabilities(settings.teacher, val_set, len(labels))
        print(f"distillation: teacher accuracy {100 * (teacher.argmax(1) == train_set.y).mean():.2f}% on the "
              f"training faces, {100 * (teacher_val.argmax(1) == val_set.y).mean():.2f}% on validation; weight "
              f"{settings.teacher_weight}, temperature {settings.temperature}", flush=True)
        train_targets = blend(train_targets, teacher, settings.teacher_weight)
    val_targets = training_targets(val_set, len(labels), 0.0)
    class_weights = None
    if settings.class_balance:
        from train_host.targets import class_balance_weights

        class_weights = class_balance_weights(train_set.y, len(labels), settings.class_balance)
        print("class-balanced loss weights: " + ", ".join(f"{name} {w:.2f}" for name, w in
                                                          zip(labels, class_weights, strict=True)), flush=True)
    face_weights = None
    if settings.age_balance:
        from train_host.data import AGE_BANDS
        from train_host.targets import age_balance_weights

        face_weights = age_balance_weights(train_set.age, train_set.y, len(labels), settings.age_balance)
        assert train_set.age is not None  # age_balance_weights refuses faces without ages
        print(f"age-balanced loss weights (power {settings.age_balance}): "
              + ", ".join(f"{lo}-{hi}: {face_weights[(train_set.age >= lo) & (train_set.age <= hi)].mean():.2f}"
                          for lo, hi in AGE_BANDS), flush=True)
    sharpness, blur_sigma = blur_match(settings, train_set, val_set)
    return TrainingData(train_set, val_set, train_targets, val_targets, class_weights, face_weights, sharpness,
                        blur_sigma)


def build(settings: TrainSettings, state: dict[str, Any] | None) -> tuple[Any, int]:
    """The compiled training model and the epoch it starts at: new (or ``--init``'s weights), or the resumed one."""
    from train_host.models import build_model
    from train_host.resume import load_model as load_resume_model
    from train_host.tfquiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(settings.seed)
    out, size, labels = Path(settings.out), settings.size, settings.labels
    if state is not None:
        model = load_resume_model(out)
        start_epoch = int(state["next_epoch"])
        if settings.schedule == "plateau":
            model.optimizer.learning_rate = state["learning_rate"]
        print(f"resuming {out} at epoch {start_epoch + 1} of {settings.epochs} with its stored settings", flush=True)
    else:
        start_epoch = 0
        kwargs = {"subsample_residual": True, "l2": settings.l2} if settings.model == "mini_xception" else {}
        model = build_model(settings.model, (size, size, 1), len(labels), **kwargs)
        if settings.init:
            init_from(model, Path(settings.init))
        model.compile(
            optimizer=keras.optimizers.Adam(settings.lr),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing),
            metrics=["accuracy"],
        )
    print(f"{settings.model}: {model.count_params():,} parameters at {size}x{size}x1, {len(labels)} classes",
          flush=True)
    return model, start_epoch


def fit(settings: TrainSettings, data: TrainingData, model: Any, start_epoch: int,
        state: dict[str, Any] | None) -> Fitted:
    """Fit with checkpoints, log, curves and resume state after each epoch; save the last model (paper's graph)."""
    from train_host.models import build_model
    from train_host.plots import training_curves
    from train_host.resume import RestoreCallbackState, SaveResumeState
    from train_host.sequence import AugmentedFaces, BestCanonicalCheckpoint, canonical_copy
    from train_host.tfquiet import import_keras

    keras = import_keras()
    out, size, epochs = Path(settings.out), (settings.size, settings.size), settings.epochs
    train_seq = AugmentedFaces(data.train, data.train_targets, size, settings.batch, settings.augment,
                               seed=settings.seed, shuffle=True, start_epoch=start_epoch,
                               class_weights=data.class_weights, face_weights=data.face_weights)
    val_seq = AugmentedFaces(data.val, data.val_targets, size, 256, None, seed=settings.seed, shuffle=False,
                             blur_sigma=data.blur_sigma)

    def build_canonical() -> Any:
        canon_kwargs = {"l2": settings.l2} if settings.model == "mini_xception" else {}
        return build_model(settings.model, (*size, 1), len(settings.labels), blur_sigma=data.blur_sigma,
                           **canon_kwargs)

    title = f"{settings.task} {settings.model} {size[0]}x{size[1]}"
    best_ckpt = BestCanonicalCheckpoint(out / "best.keras", build_canonical)
    callbacks = [best_ckpt, keras.callbacks.CSVLogger(str(out / "log.csv"), append=state is not None)]
    stateful = [best_ckpt]
    if settings.schedule == "plateau":
        stateful += [
            keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1,
                                              patience=settings.plateau_patience, min_lr=1e-6, verbose=1),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=settings.early_stop_patience, verbose=1),
        ]
        callbacks += stateful[1:]
    else:
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: cosine_lr(settings.lr, epoch, epochs)))
    if state is not None:
        callbacks.append(RestoreCallbackState(state.get("callbacks", {}), stateful))
    callbacks += [
        keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: training_curves(out / "log.csv",
                                                                                    out / "curves.png", title)),
        SaveResumeState(out, settings.stored(), stateful),
        stop_on_signal(),
    ]
    if settings.stop_after:
        stop_after = settings.stop_after
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: setattr(model, "stop_training",
                                                 model.stop_training or e + 1 - start_epoch >= stop_after)))
    begin = time.time()
    model.fit(train_seq, validation_data=val_seq, epochs=epochs, initial_epoch=start_epoch, callbacks=callbacks,
              verbose=settings.verbose)
    seconds = time.time() - begin
    canonical_copy(model, build_canonical()).save(out / "last.keras")
    training_curves(out / "log.csv", out / "curves.png", title)
    return Fitted(int(model.count_params()), start_epoch, seconds)


def record(settings: TrainSettings, data: TrainingData, fitted: Fitted, resumed: bool,
           started_at_commit: str) -> dict[str, Any]:
    """``run.json``: the configuration, the data, the figures of the whole run (all its pieces) and provenance."""
    out, labels, epochs = Path(settings.out), settings.labels, settings.epochs
    history = history_from_log(out / "log.csv")
    val_acc = history.get("val_accuracy", [0.0])
    previous = json.loads((out / "run.json").read_text()) if resumed and (out / "run.json").is_file() else {}
    class_weights = data.class_weights
    summary = {
        "task": settings.task,
        "model": settings.model,
        "labels": list(labels),
        "input": [settings.size, settings.size, 1],
        "parameters": fitted.parameters,
        "data": {"path": str(settings.data), "train": data.train.source, "train_faces": len(data.train),
                 "validation": data.val.source, "validation_faces": len(data.val)},
        "epochs": epochs,
        "epochs_run": len(val_acc),
        "complete": len(val_acc) >= epochs or (settings.schedule == "plateau" and not _StopFlag.requested
                                               and not settings.stop_after),
        "best_epoch": int(np.argmax(val_acc)) + 1,
        "best_val_accuracy": round(float(np.max(val_acc)), 4),
        "last_val_accuracy": round(float(val_acc[-1]), 4),
        "init": settings.init,
        "batch": settings.batch, "lr": settings.lr, "schedule": settings.schedule, "l2": settings.l2,
        "label_smoothing": settings.label_smoothing, "ferplus_weight": settings.ferplus_weight,
        "class_balance": None if class_weights is None else {
            "power": settings.class_balance,
            "weights": dict(zip(labels, [round(float(w), 4) for w in class_weights], strict=True))},
        "age_balance": settings.age_balance or None,
        "teacher": None if not settings.teacher else {
            "models": [{"path": str(p), "sha256": h} for p, h in zip(settings.teacher, settings.teacher_sha256 or [])],
            "weight": settings.teacher_weight,
            "temperature": settings.temperature, "mirror_averaged": True},
        "test_duplicates_dropped": not settings.keep_test_duplicates,
        "patience": settings.early_stop_patience, "lr_patience": settings.plateau_patience, "seed": settings.seed,
        "augment": settings.augment.__dict__,
        "input_blur_sigma": round(data.blur_sigma, 3),
        "sharpness": data.sharpness,
        "train_seconds": round(previous.get("train_seconds", 0.0) + fitted.seconds, 1),
        "pieces": previous.get("pieces", 0) + 1,
        "stopped_by_signal": _StopFlag.requested,
        "commit": previous.get("commit") or started_at_commit,
        "piece_commits": previous.get("piece_commits", [previous["commit"]] if previous.get("commit") else [])
        + [started_at_commit],
        "command": previous.get("command") or "python -m train_host.train " + " ".join(sys.argv[1:]),
        "host": provenance.host_info(),
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"best validation accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}, "
          f"last {summary['last_val_accuracy']:.4f} after {summary['epochs_run']} of {epochs} epochs; "
          f"models in {out / 'best.keras'} and {out / 'last.keras'}", flush=True)
    return summary


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run one training (or continue one with ``--resume``): resolve, load, build, fit, record.

    Returns the summary written to ``run.json``.
    """
    # The code that trains is the code at the start: the tree may change while a long run goes on.
    started_at_commit = provenance.git_commit()
    settings, state = resolve(args)
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    data = load(settings)
    model, start_epoch = build(settings, state)
    fitted = fit(settings, data, model, start_epoch, state)
    return record(settings, data, fitted, state is not None, started_at_commit)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
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
