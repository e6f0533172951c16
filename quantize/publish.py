"""Put converted models into the models folder and record them in ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.frame.manifest import MANIFEST_NAME, InputSpec, Manifest, ModelEntry, ModelError, Preprocessing, sha256_file
from edge.frame.preprocess import PIXEL_OFFSET, PIXEL_SCALE
from quantize.convert import write_atomic
from quantize.report import shipped_figures
from train_host import provenance
from train_host.data import FaceSet

CASCADE = "haarcascade_frontalface_default.xml"
RUN_FILES = ("log.csv", "curves.png", "run.json")


def _dataset_name(source: str) -> str:
    name = Path(source.split("[")[0]).name.lower()
    if "fer" in name:
        return "FER-2013"
    if "utk" in name:
        return "UTKFace"
    if "imdb" in name or "wiki" in name:
        return "IMDB-WIKI"
    return Path(source).name


def _accuracy_entries(figures: dict, variant: str, test_source: str, flip_average: bool = False) -> list[dict]:
    file = Path(test_source.split("[")[0]).name
    split = "test" if "test" in file.lower() else file
    if "publictest" in file.lower():
        split = "PublicTest"
    base = {"dataset": _dataset_name(test_source), "split": split, "file": file, "faces": figures["test"]["faces"]}
    entries = []
    # Single invoke per face, then mirror-averaged (``flip_average``): both are recorded, the entry's own
    # ``flip_average`` says which one the device runs by default.
    modes = [(figures, {}), (figures["flip_average"], {"flip_average": True})]
    for mode, flip in (reversed(modes) if flip_average else modes):  # the shipped mode's figures first
        entries.append(base | {"subset": "all", "accuracy": mode["accuracy"][variant]} | flip)
        adults = mode["groups"][variant].get("adults")
        if adults and adults["accuracy"] is not None:
            entries.append(base | {"subset": "adults", "faces": adults["samples"], "accuracy": adults["accuracy"]}
                           | flip)
    return entries


def _load_or_new(out: Path) -> Manifest:
    if (out / MANIFEST_NAME).exists():
        return Manifest.load(out)
    return Manifest(out, [], {})


def _run_info(model_path: Path, depth: int = 0) -> dict:
    """The training run behind ``model_path`` (its ``run.json``), with the run it started from.

    A run started with ``--init`` (a warm restart, a fine-tune) is only half
    its own story: the manifest must say what the starting weights were, so
    the parent run is recorded under ``init_run``, recursively.
    """
    run_json = model_path.parent / "run.json"
    if not run_json.is_file():
        return {}
    run = json.loads(run_json.read_text())
    keep = ("model", "input", "parameters", "data", "epochs", "epochs_run", "best_epoch", "best_val_accuracy",
            "last_val_accuracy", "batch", "lr", "schedule", "l2", "label_smoothing", "ferplus_weight",
            "class_balance", "teacher", "test_duplicates_dropped", "input_blur_sigma", "seed", "augment",
            "train_seconds", "pieces", "command",
            "commit", "host")
    info = {k: run[k] for k in keep if k in run}
    if run.get("init"):
        info["init"] = run["init"]
        info["init_run"] = _init_run(Path(run["init"]), model_path.parent, depth + 1)
    return info


def _init_run(init: Path, run_dir: Path, depth: int) -> dict | None:
    """What is known of the model a run was initialised from: its run folder, or the manifest that shipped it."""
    path = init if init.is_absolute() or init.exists() else run_dir / init
    if depth > 8 or not path.is_file():
        return None
    if (path.parent / "run.json").is_file():
        return _run_info(path, depth) | {"sha256": sha256_file(path)}
    if (path.parent / MANIFEST_NAME).is_file():
        digest = sha256_file(path)
        for entry in Manifest.load(path.parent).models:
            if entry.provenance.get("float_sha256") == digest:
                return {"shipped_as": entry.name, "sha256": digest} | dict(entry.provenance.get("training_run") or {})
    return {"sha256": sha256_file(path)}


def _command(model_path: Path) -> str:
    """The quantize command line as typed (``python -m quantize`` runs ``quantize/__main__.py``)."""
    program = Path(sys.argv[0])
    if program.name == "quantize" or (program.name == "__main__.py" and program.parent.name == "quantize"):
        return " ".join(["python -m quantize", *sys.argv[1:]])
    return "python -m quantize " + str(model_path)


def worse_than_published(out: Path, name: str, figures: dict) -> list[str]:
    """The models this conversion would overwrite whose manifest figure on the same test file is higher.

    A model trained for two epochs can pass the int8 parity check (int8 agrees
    with its own float model) while saying "happy" for every face; only the
    figure the manifest already records for the model being replaced shows it.
    """
    if not (out / MANIFEST_NAME).exists():
        return []
    current = {m.name: m for m in Manifest.load(out).models}
    file = Path(figures["test"]["source"].split("[")[0]).name
    worse = []
    for variant in figures["accuracy"]:
        entry = current.get(f"{name}_{variant}")
        if entry is None:
            continue
        for published in entry.accuracy:
            if published.get("file") != file or published.get("subset", "all") != "all":
                continue
            flip = bool(published.get("flip_average", False))  # like with like: single invoke or mirror-averaged
            measured = (figures["flip_average"] if flip else figures)["accuracy"][variant]
            if round(float(measured), 4) < round(float(published["accuracy"]), 4):
                worse.append(f"{entry.name} {100 * measured:.2f}% on {file}{' mirror-averaged' if flip else ''} vs "
                             f"{100 * published['accuracy']:.2f}% in {out / MANIFEST_NAME}")
    return worse


def publish(args, out: Path, name: str, task: str, labels: Sequence[str], model, flatbuffers: dict[str, bytes],
            figures: dict, calib: FaceSet, pick: np.ndarray) -> Path:
    """Write the models, the float ``.keras``, run files and plots; update the manifest; return its path."""
    from train_host.plots import confusion_matrix_png

    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model)
    keras_bytes = model_path.read_bytes()
    training_run = _run_info(model_path)  # before anything in ``out`` is replaced: a warm start may come from there
    keras_target = out / f"{name}.keras"
    if model_path.resolve() != keras_target.resolve():
        write_atomic(keras_target, keras_bytes)
    run_dir = out / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    for file in RUN_FILES:
        source = model_path.parent / file
        if source.is_file() and source.resolve() != (run_dir / file).resolve():
            write_atomic(run_dir / file, source.read_bytes())
    cascade = out / CASCADE
    if not cascade.exists():
        from edge.frame.manifest import default_models_dir

        write_atomic(cascade, (default_models_dir() / CASCADE).read_bytes())

    manifest = _load_or_new(out)
    manifest.detector = {"file": CASCADE, "sha256": sha256_file(cascade),
                         "source": "OpenCV data/haarcascades (Intel License Agreement, see the XML header)"}
    calib_pick_sha = hashlib.sha256(np.asarray(pick).tobytes()).hexdigest()[:16]
    entries = []
    for variant, blob in flatbuffers.items():
        file = f"{name}_{variant}.tflite"
        write_atomic(out / file, blob)
        q = figures["input_quantization"][variant]
        height, width = model.input_shape[1:3]
        entries.append(ModelEntry(
            name=f"{name}_{variant}", task=task, variant=variant, file=file,
            sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob), labels=tuple(labels),
            input=InputSpec(int(height), int(width), 1, q["dtype"], float(q["scale"]), int(q["zero_point"])),
            preprocessing=Preprocessing(crop_margin=float(args.margin), scale=PIXEL_SCALE, offset=PIXEL_OFFSET),
            accuracy=_accuracy_entries(figures, variant, figures["test"]["source"], bool(args.flip_average)),
            provenance={
                "float_model": keras_target.name, "float_sha256": hashlib.sha256(keras_bytes).hexdigest(),
                "training_run": training_run,
                "calibration": None if variant == "float32" else {
                    "data": calib.source, "faces": int(len(pick)), "seed": args.seed,
                    "classes": sorted(set(int(v) for v in calib.y[pick])), "pick_sha256_16": calib_pick_sha},
                "converter": "model.export(tf_saved_model) + TFLiteConverter.from_saved_model"
                             + (", full int8, builtin int8 ops only" if variant == "int8" else ", float32")
                             + (f", activation ranges: {args.range_percentile:g}th percentile of per-face extremes"
                                if variant == "int8" and args.range_percentile not in (None, 100) else ""),
                "command": _command(model_path),
                "commit": provenance.git_commit(),
            },
            default=(variant == "int8"),
            flip_average=bool(args.flip_average),
        ))
        shown = shipped_figures(figures, bool(args.flip_average))
        confusion_matrix_png(np.array(shown["confusion"][variant]), labels, run_dir / f"confusion_{variant}.png",
                             f"{name} {variant}{' mirror-averaged' if args.flip_average else ''}: "
                             f"{100 * shown['accuracy'][variant]:.1f}% on {Path(figures['test']['source']).name}")
    names = {e.name for e in entries}
    manifest.models = [m for m in manifest.models if m.name not in names] + entries
    manifest.models.sort(key=lambda m: (m.task, m.variant != "int8", m.name))
    path = manifest.save()
    try:
        Manifest.load(out).verify(entries[-1])
    except ModelError as exc:  # pragma: no cover - would mean the write itself failed
        raise ModelError(f"manifest written but does not verify: {exc}") from None
    return path
