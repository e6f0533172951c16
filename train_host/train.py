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
import math
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


def load_data(args: argparse.Namespace, size: tuple[int, int]) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets as the arguments ask."""
    val_mode = args.val or ("dataset" if args.task == "emotion" else "holdout")
    train, val = load_train_val(args.data, args.task, size=None, seed=args.seed, val_fraction=args.val_fraction)
    if val_mode == "holdout" and Path(args.data).is_dir() and any(Path(args.data).glob("*.npz")):
        train, val = random_split(train, args.val_fraction, args.seed)
    if train.test_dup is not None and not args.keep_test_duplicates:
        dropped = int(train.test_dup.sum())
        train = train.subset(~train.test_dup)
        print(f"dropped {dropped} training faces that copy a test image (--keep-test-duplicates keeps them)",
              flush=True)
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


def run_settings(args: argparse.Namespace) -> dict:
    """What a run is, as stored in ``resume.json`` (everything but how this invocation runs)."""
    skip = {"resume", "stop_after", "verbose"}
    return {k: v for k, v in vars(args).items() if k not in skip} | {"num_classes": len(LABELS_BY_TASK[args.task])}


DISTILL_KEYS = ("teacher", "teacher_weight", "temperature", "teacher_sha256")
# Options that change what a run trains on; off (0) by default and fixed for the life of a run.
REGULARISER_KEYS = ("cutout", "mixup", "class_balance", "age_balance")


def distill_settings(args: argparse.Namespace) -> None:
    """Check the distillation flags before any data is read; fill their defaults; hash each teacher.

    The hashes are taken now, when the teacher is used, and kept with the run's
    settings: a resumed run refuses a teacher file that has changed since.
    """
    from train_host.distill import file_sha256

    if not args.teacher:
        if args.teacher_weight is not None or args.temperature is not None:
            raise DataError("--teacher-weight and --temperature need --teacher")
        return
    args.teacher_weight = 0.5 if args.teacher_weight is None else args.teacher_weight
    args.temperature = 1.0 if args.temperature is None else args.temperature
    if not 0.0 <= args.teacher_weight <= 1.0:
        raise DataError(f"--teacher-weight {args.teacher_weight}: expected a number between 0 and 1")
    if not args.temperature > 0:
        raise DataError(f"--temperature {args.temperature}: expected a positive number")
    hashes = [file_sha256(Path(path)) for path in args.teacher]
    stored = getattr(args, "teacher_sha256", None)
    if stored and stored != hashes:
        changed = next(p for p, a, b in zip(args.teacher, stored, hashes) if a != b)
        raise DataError(f"--resume {args.out}: teacher {changed} has changed since the run started (sha256 differs)")
    args.teacher_sha256 = hashes


def resumed_args(args: argparse.Namespace) -> tuple[argparse.Namespace, dict]:
    """The stored settings of the ``--resume`` run (checked against the command's) and its saved state."""
    from train_host.resume import check_same_run, load_state

    run = Path(args.resume)
    state = load_state(run)
    given = {k: v for k, v in run_settings(args).items() if v is not None}
    check_same_run(state, given, run)
    stored = {k: v for k, v in state["settings"].items() if k != "num_classes"}
    for key in DISTILL_KEYS:  # a run stored before distillation existed trained without it
        stored.setdefault(key, None)
    for key in REGULARISER_KEYS:  # a run stored before these options existed trained without them
        stored.setdefault(key, 0.0)
        if key in given and given[key] != stored[key]:
            raise DataError(f"--resume {run}: that run was trained with --{key.replace('_', '-')} {stored[key]}; a "
                            "resumed run keeps its augmentation and loss (start a new run with --init to change it)")
    if given.get("teacher") and given["teacher"] != stored["teacher"]:
        raise DataError(f"--resume {run}: that run was trained with teacher {stored['teacher']!r}; a resumed run "
                        "keeps its targets (start a new run, e.g. with --init, to distil)")
    merged = vars(args) | stored | {"resume": args.resume, "stop_after": args.stop_after, "verbose": args.verbose,
                                     "out": args.resume}
    return argparse.Namespace(**merged), state


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


def train(args: argparse.Namespace) -> dict:
    """Run one training (or continue one with ``--resume``); returns the summary written to ``run.json``."""
    state = None
    # The code that trains is the code at the start: the tree may change while a long run goes on.
    started_at_commit = provenance.git_commit()
    if args.resume:
        args, state = resumed_args(args)
    args.model = args.model or "mini_xception"
    args.size = args.size or 64
    if args.size < 16:
        raise DataError(f"--size {args.size} is too small (at least 16)")
    if not args.data or not args.out:
        raise DataError("--data and --out are required (or --resume RUN)")
    distill_settings(args)
    for flag, value in (("--epochs", args.epochs), ("--stop-after", args.stop_after), ("--batch", args.batch)):
        if value is not None and value < 1:
            raise DataError(f"{flag} {value}: expected a whole number of at least 1")
    for key in REGULARISER_KEYS:
        setattr(args, key, 0.0 if getattr(args, key, None) is None else getattr(args, key))
    if not 0.0 <= args.cutout < 1.0:
        raise DataError(f"--cutout {args.cutout}: expected a fraction of the face from 0 up to (not including) 1")
    if not (math.isfinite(args.class_balance) and args.class_balance >= 0.0):
        raise DataError(f"--class-balance {args.class_balance}: expected a power of 0 (off) or more")
    if not (math.isfinite(args.age_balance) and args.age_balance >= 0.0):
        raise DataError(f"--age-balance {args.age_balance}: expected a power of 0 (off) or more")
    if not (math.isfinite(args.mixup) and args.mixup >= 0.0):
        raise DataError(f"--mixup {args.mixup}: expected a Beta alpha of 0 (off) or more")
    task_defaults = DEFAULTS[args.task]
    args.epochs = args.epochs or task_defaults["epochs"]
    epochs = args.epochs
    patience = args.patience or task_defaults["patience"]
    lr_patience = args.lr_patience or task_defaults["lr_patience"]
    labels = LABELS_BY_TASK[args.task]
    size = (args.size, args.size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_set, val_set = load_data(args, size)
    print(f"{args.task}: {len(train_set)} training faces from {train_set.source}, "
          f"{len(val_set)} validation faces from {val_set.source}", flush=True)
    from train_host.targets import training_targets

    train_targets = training_targets(train_set, len(labels), args.ferplus_weight)
    if args.teacher:
        from train_host.distill import blend, teacher_probabilities

        print(f"distillation: {len(args.teacher)} teacher(s) over {len(train_set)} training faces "
              "(mirror-averaged)", flush=True)
        teacher = teacher_probabilities(args.teacher, train_set, len(labels), temperature=args.temperature)
        teacher_val = teacher_probabilities(args.teacher, val_set, len(labels))
        print(f"distillation: teacher accuracy {100 * (teacher.argmax(1) == train_set.y).mean():.2f}% on the "
              f"training faces, {100 * (teacher_val.argmax(1) == val_set.y).mean():.2f}% on validation; weight "
              f"{args.teacher_weight}, temperature {args.temperature}", flush=True)
        train_targets = blend(train_targets, teacher, args.teacher_weight)
    val_targets = training_targets(val_set, len(labels), 0.0)
    class_weights = None
    if args.class_balance:
        from train_host.targets import class_balance_weights

        class_weights = class_balance_weights(train_set.y, len(labels), args.class_balance)
        print("class-balanced loss weights: " + ", ".join(f"{name} {w:.2f}" for name, w in
                                                          zip(labels, class_weights, strict=True)), flush=True)
    face_weights = None
    if args.age_balance:
        from train_host.data import AGE_BANDS
        from train_host.targets import age_balance_weights

        face_weights = age_balance_weights(train_set.age, train_set.y, len(labels), args.age_balance)
        print(f"age-balanced loss weights (power {args.age_balance}): "
              + ", ".join(f"{lo}-{hi}: {face_weights[(train_set.age >= lo) & (train_set.age <= hi)].mean():.2f}"
                          for lo, hi in AGE_BANDS), flush=True)
    sharpness, blur_sigma = blur_match(args, train_set, val_set, size)

    from train_host.tfquiet import import_keras

    keras = import_keras()
    from train_host.models import build_model
    from train_host.plots import training_curves
    from train_host.resume import RestoreCallbackState, SaveResumeState
    from train_host.resume import load_model as load_resume_model
    from train_host.sequence import AugmentedFaces, BestCanonicalCheckpoint, canonical_copy

    keras.utils.set_random_seed(args.seed)
    start_epoch = 0
    if state is not None:
        model = load_resume_model(out)
        start_epoch = int(state["next_epoch"])
        if args.schedule == "plateau":
            model.optimizer.learning_rate = state["learning_rate"]
        print(f"resuming {out} at epoch {start_epoch + 1} of {epochs} with its stored settings", flush=True)
    else:
        kwargs = {"subsample_residual": True, "l2": args.l2} if args.model == "mini_xception" else {}
        model = build_model(args.model, (*size, 1), len(labels), **kwargs)
        if args.init:
            init_from(model, Path(args.init))
        model.compile(
            optimizer=keras.optimizers.Adam(args.lr),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
            metrics=["accuracy"],
        )
    params = model.count_params()
    print(f"{args.model}: {params:,} parameters at {size[0]}x{size[1]}x1, {len(labels)} classes", flush=True)

    augment: AugmentConfig = task_defaults["augment"]
    if args.zoom is not None:
        augment = replace(augment, zoom=args.zoom)
    if args.shift is not None:
        augment = replace(augment, shift=args.shift)
    augment = replace(augment, cutout=args.cutout, mixup=args.mixup)
    train_seq = AugmentedFaces(train_set, train_targets, size, args.batch, augment, seed=args.seed, shuffle=True,
                               start_epoch=start_epoch, class_weights=class_weights, face_weights=face_weights)
    val_seq = AugmentedFaces(val_set, val_targets, size, 256, None, seed=args.seed, shuffle=False,
                             blur_sigma=blur_sigma)

    def build_canonical():
        canon_kwargs = {"l2": args.l2} if args.model == "mini_xception" else {}
        return build_model(args.model, (*size, 1), len(labels), blur_sigma=blur_sigma, **canon_kwargs)

    title = f"{args.task} {args.model} {size[0]}x{size[1]}"
    best_ckpt = BestCanonicalCheckpoint(out / "best.keras", build_canonical)
    callbacks = [best_ckpt, keras.callbacks.CSVLogger(str(out / "log.csv"), append=state is not None)]
    stateful = [best_ckpt]
    if args.schedule == "plateau":
        stateful += [
            keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=lr_patience,
                                              min_lr=1e-6, verbose=1),
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, verbose=1),
        ]
        callbacks += stateful[1:]
    else:
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: cosine_lr(args.lr, epoch, epochs)))
    if state is not None:
        callbacks.append(RestoreCallbackState(state.get("callbacks", {}), stateful))
    callbacks += [
        keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: training_curves(out / "log.csv",
                                                                                    out / "curves.png", title)),
        SaveResumeState(out, run_settings(args), stateful),
        stop_on_signal(),
    ]
    if args.stop_after:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: setattr(model, "stop_training",
                                                 model.stop_training or e + 1 - start_epoch >= args.stop_after)))
    begin = time.time()
    model.fit(train_seq, validation_data=val_seq, epochs=epochs, initial_epoch=start_epoch, callbacks=callbacks,
              verbose=args.verbose)
    seconds = time.time() - begin
    canonical_copy(model, build_canonical()).save(out / "last.keras")
    training_curves(out / "log.csv", out / "curves.png", title)
    history = history_from_log(out / "log.csv")
    val_acc = history.get("val_accuracy", [0.0])
    previous = json.loads((out / "run.json").read_text()) if state is not None and (out / "run.json").is_file() else {}
    summary = {
        "task": args.task,
        "model": args.model,
        "labels": list(labels),
        "input": [size[0], size[1], 1],
        "parameters": int(params),
        "data": {"path": str(args.data), "train": train_set.source, "train_faces": len(train_set),
                 "validation": val_set.source, "validation_faces": len(val_set)},
        "epochs": epochs,
        "epochs_run": len(val_acc),
        "complete": len(val_acc) >= epochs or (args.schedule == "plateau" and not _StopFlag.requested
                                               and not args.stop_after),
        "best_epoch": int(np.argmax(val_acc)) + 1,
        "best_val_accuracy": round(float(np.max(val_acc)), 4),
        "last_val_accuracy": round(float(val_acc[-1]), 4),
        "init": args.init,
        "batch": args.batch, "lr": args.lr, "schedule": args.schedule, "l2": args.l2,
        "label_smoothing": args.label_smoothing, "ferplus_weight": args.ferplus_weight,
        "class_balance": None if class_weights is None else {
            "power": args.class_balance, "weights": dict(zip(labels, [round(float(w), 4) for w in class_weights],
                                                                strict=True))},
        "age_balance": args.age_balance or None,
        "teacher": None if not args.teacher else {
            "models": [{"path": str(p), "sha256": h} for p, h in zip(args.teacher, args.teacher_sha256)],
            "weight": args.teacher_weight,
            "temperature": args.temperature, "mirror_averaged": True},
        "test_duplicates_dropped": not args.keep_test_duplicates,
        "patience": patience, "lr_patience": lr_patience, "seed": args.seed,
        "augment": augment.__dict__,
        "input_blur_sigma": round(blur_sigma, 3),
        "sharpness": sharpness,
        "train_seconds": round(previous.get("train_seconds", 0.0) + seconds, 1),
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
