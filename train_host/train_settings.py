"""What a training run is: the command's options checked, defaulted and (on ``--resume``) restored.

:func:`resolve` turns the parsed command line into a :class:`TrainSettings`
before any data is read; :mod:`train_host.train` then loads, builds, fits and
records from it. The settings are stored in each run's ``resume.json`` and
read back by ``--resume``, so a resumed run trains what the first piece did.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from edge.frame.labels import LABELS_BY_TASK
from train_host.augment import AugmentConfig
from train_host.data import DataError

DEFAULTS: dict[str, dict[str, Any]] = {
    # task: (epochs, early-stop patience, LR-plateau patience, augmentation)
    "emotion": dict(epochs=150, patience=30, lr_patience=10,
                    augment=AugmentConfig(rotation_deg=10, zoom=0.1, shift=0.1, flip=True,
                                          brightness=0.1, contrast=0.2)),
    "gender": dict(epochs=60, patience=15, lr_patience=5,
                   augment=AugmentConfig(rotation_deg=10, zoom=0.12, shift=0.08, flip=True,
                                         brightness=0.1, contrast=0.25)),
}


# How this invocation runs, not what the run is: never stored, never restored by --resume.
INVOCATION_KEYS = ("resume", "stop_after", "verbose")
DISTILL_KEYS = ("teacher", "teacher_weight", "temperature", "teacher_sha256")
# Options that change what a run trains on; off (0) by default and fixed for the life of a run.
REGULARISER_KEYS = ("cutout", "mixup", "class_balance", "age_balance")


@dataclass(frozen=True)
class TrainSettings:
    """One run's settings, resolved (:func:`resolve`): every option checked and every default filled.

    The fields are the command's options; all but :data:`INVOCATION_KEYS` are what
    the run *is*, stored in ``resume.json`` (:meth:`stored`) and restored by
    ``--resume``. ``patience``, ``lr_patience``, ``zoom`` and ``shift`` stay None
    when not given, as the stored runs keep them: the task's defaults
    (:data:`DEFAULTS`) fill them where they are used.
    """

    task: str
    data: str
    out: str
    model: str
    size: int
    epochs: int
    batch: int = 32
    lr: float = 1e-3
    patience: int | None = None
    lr_patience: int | None = None
    label_smoothing: float = 0.0
    zoom: float | None = None
    shift: float | None = None
    cutout: float = 0.0
    mixup: float = 0.0
    l2: float = 0.01
    val: str | None = None
    val_fraction: float = 0.1
    input_blur: str = "auto"
    init: str | None = None
    schedule: str = "plateau"
    ferplus_weight: float = 0.0
    class_balance: float = 0.0
    age_balance: float = 0.0
    teacher: list[str] | None = None
    teacher_weight: float | None = None
    temperature: float | None = None
    teacher_sha256: list[str] | None = None
    keep_test_duplicates: bool = False
    limit: int | None = None
    seed: int = 1234
    resume: str | None = None
    stop_after: int | None = None
    verbose: int = 1

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(LABELS_BY_TASK[self.task])

    @property
    def early_stop_patience(self) -> int:
        return self.patience or int(DEFAULTS[self.task]["patience"])

    @property
    def plateau_patience(self) -> int:
        return self.lr_patience or int(DEFAULTS[self.task]["lr_patience"])

    @property
    def augment(self) -> AugmentConfig:
        """The task's augmentation with the command's zoom, shift, cutout and mixup."""
        augment: AugmentConfig = DEFAULTS[self.task]["augment"]
        if self.zoom is not None:
            augment = replace(augment, zoom=self.zoom)
        if self.shift is not None:
            augment = replace(augment, shift=self.shift)
        return replace(augment, cutout=self.cutout, mixup=self.mixup)

    def stored(self) -> dict[str, Any]:
        """What the run is, as ``resume.json`` stores it (no teacher hashes in a run without a teacher)."""
        values = {k: v for k, v in asdict(self).items() if k not in INVOCATION_KEYS}
        if values["teacher_sha256"] is None:
            del values["teacher_sha256"]
        return values | {"num_classes": len(self.labels)}


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options the command gave, in ``resume.json``'s terms (checked against a stored run on --resume)."""
    given = {k: v for k, v in vars(args).items() if k not in INVOCATION_KEYS and v is not None}
    return given | {"num_classes": len(LABELS_BY_TASK[args.task])}


def distill_settings(values: dict[str, Any], out: str) -> dict[str, Any]:
    """Check the distillation options; their defaults and each teacher's hash (nothing without --teacher).

    The hashes are taken now, when the teacher is used, and kept with the run's
    settings: a resumed run refuses a teacher file that has changed since.
    """
    from train_host.distill import file_sha256

    if not values.get("teacher"):
        if values.get("teacher_weight") is not None or values.get("temperature") is not None:
            raise DataError("--teacher-weight and --temperature need --teacher")
        return {}
    weight = 0.5 if values.get("teacher_weight") is None else values["teacher_weight"]
    temperature = 1.0 if values.get("temperature") is None else values["temperature"]
    if not 0.0 <= weight <= 1.0:
        raise DataError(f"--teacher-weight {weight}: expected a number between 0 and 1")
    if not temperature > 0:
        raise DataError(f"--temperature {temperature}: expected a positive number")
    hashes = [file_sha256(Path(path)) for path in values["teacher"]]
    stored = values.get("teacher_sha256")
    if stored and stored != hashes:
        changed = next(p for p, a, b in zip(values["teacher"], stored, hashes) if a != b)
        raise DataError(f"--resume {out}: teacher {changed} has changed since the run started (sha256 differs)")
    return {"teacher_weight": weight, "temperature": temperature, "teacher_sha256": hashes}


def resolve(args: argparse.Namespace) -> tuple[TrainSettings, dict[str, Any] | None]:
    """The run's settings (the stored ones on ``--resume``, with its saved state), checked and filled in.

    Every check happens here, before any data is read; ``args`` is left as parsed.
    """
    state = None
    if args.resume:
        args, state = resumed_args(args)
    values = dict(vars(args))
    values["model"] = values.get("model") or "mini_xception"
    values["size"] = values.get("size") or 64
    if values["size"] < 16:
        raise DataError(f"--size {values['size']} is too small (at least 16)")
    if not values.get("data") or not values.get("out"):
        raise DataError("--data and --out are required (or --resume RUN)")
    values |= distill_settings(values, values["out"])
    for flag, key in (("--epochs", "epochs"), ("--stop-after", "stop_after"), ("--batch", "batch")):
        if values.get(key) is not None and values[key] < 1:
            raise DataError(f"{flag} {values[key]}: expected a whole number of at least 1")
    for key in REGULARISER_KEYS:
        values[key] = 0.0 if values.get(key) is None else values[key]
    if not 0.0 <= values["cutout"] < 1.0:
        raise DataError(f"--cutout {values['cutout']}: expected a fraction of the face from 0 up to (not including) 1")
    if not (math.isfinite(values["class_balance"]) and values["class_balance"] >= 0.0):
        raise DataError(f"--class-balance {values['class_balance']}: expected a power of 0 (off) or more")
    if not (math.isfinite(values["age_balance"]) and values["age_balance"] >= 0.0):
        raise DataError(f"--age-balance {values['age_balance']}: expected a power of 0 (off) or more")
    if not (math.isfinite(values["mixup"]) and values["mixup"] >= 0.0):
        raise DataError(f"--mixup {values['mixup']}: expected a Beta alpha of 0 (off) or more")
    values["epochs"] = values.get("epochs") or DEFAULTS[values["task"]]["epochs"]
    known = {f.name for f in fields(TrainSettings)}
    return TrainSettings(**{k: v for k, v in values.items() if k in known}), state


def resumed_args(args: argparse.Namespace) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The stored settings of the ``--resume`` run (checked against the command's) and its saved state."""
    from train_host.resume import check_same_run, load_state

    run = Path(args.resume)
    state = load_state(run)
    given = given_settings(args)
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
