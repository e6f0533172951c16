"""Ship a joint emotion + gender int8 file (``quantize.joint``) into the models folder and its manifest.

    python -m quantize.publish_joint runs/joint_b1/last.keras --tflite runs/joint_b1/joint_int8.tflite \\
        --data ../shared/data --out models

The file is listed once per task (``"outputs": 2``, see :mod:`edge.frame.manifest`):
``joint_mini_xception_int8_emotion`` reads the 7-class output and
``joint_mini_xception_int8_gender`` the 2-class one. Each entry's accuracy is
measured here through the device's classifier on the test split of its task
(FER-2013 PublicTest; UTKFace test, all and adults), with one invoke and
mirror-averaged; both ship mirror-averaged, because the mirror image the emotion
head needs gives the gender head its second view in the same invoke. The
Keras file, the training log and state and a confusion matrix per task go next
to it, as ``python -m quantize`` does for a single-task model. The
temperatures are fitted afterwards with ``python -m train_host.calibrate ...
--name ENTRY --write`` (the README's models section has the commands).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.frame.labels import LABELS_BY_TASK
from edge.frame.manifest import InputSpec, Manifest, ModelEntry, ModelError, Preprocessing, sha256_file
from edge.frame.preprocess import PIXEL_OFFSET, PIXEL_SCALE
from quantize.convert import write_atomic
from train_host import provenance
from train_host.data import ADULT_AGE_DEFAULT, DataError, find_data, load

NAME = "joint_mini_xception"
# The test split each task's figures are measured on (found under --data by name).
TEST_FILES = {"emotion": "fer2013_PublicTest.npz", "gender": "utkface_gender_gray64_test.npz"}
DATASETS = {"emotion": ("FER-2013", "PublicTest"), "gender": ("UTKFace", "test")}
RUN_FILES = ("log.csv", "state.json")


def measure(tflite: Path, task: str, data_root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Accuracy rows for ``task``'s head (mirror-averaged first: how it ships) and the mirror-averaged result."""
    from train_host.evaluate import evaluate, load_model

    labels = LABELS_BY_TASK[task]
    path = find_data(data_root, TEST_FILES[task])
    if path is None:
        raise DataError(f"{data_root}: no {TEST_FILES[task]} (the {task} test split)")
    faces = load(path, task, split="test")
    model = load_model(tflite, labels)
    dataset, split = DATASETS[task]
    base = {"dataset": dataset, "split": split, "file": TEST_FILES[task]}
    rows: list[dict[str, Any]] = []
    shipped: dict[str, Any] = {}
    for flip in (True, False):
        result = evaluate(model, faces, labels, flip_average=flip)
        shipped = shipped or result
        mode = {"flip_average": True} if flip else {}
        rows.append(base | {"faces": len(faces), "subset": "all", "accuracy": round(result["accuracy"], 4)} | mode)
        if task == "gender" and faces.age is not None:
            adults = faces.subset(faces.age >= ADULT_AGE_DEFAULT)
            accuracy = evaluate(model, adults, labels, flip_average=flip)["accuracy"]
            rows.append(base | {"faces": len(adults), "subset": "adults", "accuracy": round(accuracy, 4)} | mode)
    return rows, shipped


def entries_for(tflite: Path, keras: Path, conversion: dict[str, Any], training: dict[str, Any],
                figures: dict[str, list[dict[str, Any]]]) -> list[ModelEntry]:
    """The two manifest entries (one per head) of the joint file ``tflite`` as it will be named in the folder."""
    from edge.frame.runtime import make_interpreter

    detail = make_interpreter(str(tflite)).get_input_details()[0]
    _, height, width, channels = (int(v) for v in detail["shape"])
    scale, zero_point = detail["quantization"]
    blob = tflite.read_bytes()
    file = f"{NAME}_int8.tflite"
    entries = []
    for task in ("emotion", "gender"):
        entries.append(ModelEntry(
            name=f"{NAME}_int8_{task}", task=task, variant="int8", file=file, sha256=sha256_file(tflite),
            bytes=len(blob), labels=LABELS_BY_TASK[task],
            input=InputSpec(height, width, channels, np.dtype(detail["dtype"]).name, float(scale), int(zero_point)),
            preprocessing=Preprocessing(crop_margin=0.0, scale=PIXEL_SCALE, offset=PIXEL_OFFSET),
            accuracy=figures[task],
            provenance={
                "float_model": f"{NAME}.keras", "float_sha256": sha256_file(keras),
                "joint": "one file, two outputs: the shipped emotion network frozen and unchanged, plus a gender "
                         "branch tapping it (train_host.joint); this entry reads the output with "
                         f"{len(LABELS_BY_TASK[task])} classes",
                "training_run": training,
                "calibration": {"emotion": conversion.get("emotion_calibration"),
                                "gender": conversion.get("gender_calibration"), "ranges": conversion.get("ranges")},
                "converter": "model.export(tf_saved_model) + TFLiteConverter.from_saved_model, full int8, builtin "
                             "int8 ops only; the emotion path's ranges from the emotion faces, the branch's from "
                             "the gender faces (quantize.joint --ranges split)",
                "command": conversion.get("command"),
                "commit": provenance.git_commit(),
            },
            default=True, flip_average=True, outputs=2,
        ))
    return entries


def publish(keras: Path, tflite: Path, data_root: Path, out: Path) -> list[ModelEntry]:
    """Copy the files into ``out``, measure both heads and write their entries into ``out``'s manifest."""
    from train_host.plots import confusion_matrix_png, training_curves

    sidecar = tflite.with_suffix(".json")
    conversion = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    if conversion.get("model_sha256") not in (None, sha256_file(keras)):
        raise ModelError(f"{tflite} was converted from another Keras file than {keras} ({sidecar} says so)")
    state_file = keras.parent / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    settings = state.get("settings", {})
    training = {"model": f"joint_b{settings.get('tap', '?')}", "settings": settings, "best_val_accuracy": state.get(
        "best"), "train_seconds": state.get("seconds"), "epochs_run": (state.get("next_epoch") or 1) - 1,
        "command": "python -m train_host.joint train " + " ".join(
            f"--{key.replace('_', '-')} {value}" for key, value in settings.items()
            if value is not None and key in ("data", "tap", "epochs", "lr", "batch", "seed", "label_smoothing")),
        "holdout": "the shipped gender run's 10% of UTKFace train (seed 1234)"}
    figures, shown = {}, {}
    for task in ("emotion", "gender"):
        figures[task], shown[task] = measure(tflite, task, data_root)
        print(f"{task}: " + ", ".join(f"{row['subset']}{' mirror' if row.get('flip_average') else ''} "
                                     f"{100 * row['accuracy']:.2f}%" for row in figures[task]), flush=True)
    entries = entries_for(tflite, keras, conversion, training, figures)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / entries[0].file, tflite.read_bytes())
    write_atomic(out / f"{NAME}.keras", keras.read_bytes())
    run_dir = out / "runs" / NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (keras.parent / name).is_file():
            write_atomic(run_dir / name, (keras.parent / name).read_bytes())
    if (keras.parent / "log.csv").is_file():
        training_curves(keras.parent / "log.csv", run_dir / "curves.png", f"{NAME}: the gender branch on UTKFace")
    for task in ("emotion", "gender"):
        title = (f"{NAME} int8 {task} mirror-averaged: {100 * shown[task]['accuracy']:.1f}% on "
                 f"{TEST_FILES[task]}")
        confusion_matrix_png(np.array(shown[task]["confusion"]), LABELS_BY_TASK[task],
                             run_dir / f"confusion_{task}.png", title)
    manifest = Manifest.load(out)
    old = {entry.name: entry for entry in manifest.models}
    # the same bytes published again keep their fitted temperature
    entries = [e if old.get(e.name) is None or old[e.name].sha256 != e.sha256 else dataclasses.replace(
        e, temperature=old[e.name].temperature, temperature_fit=old[e.name].temperature_fit) for e in entries]
    manifest.models = [m for m in manifest.models if m.name not in {e.name for e in entries}] + entries
    manifest.models.sort(key=lambda m: (m.task, m.variant != "int8", m.joint, m.name))
    manifest.save()
    for entry in entries:
        Manifest.load(out).verify(entry)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantize.publish_joint", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the joint .keras the file was converted from (python -m train_host.joint)")
    parser.add_argument("--tflite", required=True, help="its int8 file (python -m quantize.joint)")
    parser.add_argument("--data", required=True, help="folder holding the datasets (e.g. ../shared/data)")
    parser.add_argument("--out", default="models", help="models folder with manifest.json")
    args = parser.parse_args(argv)
    try:
        for path in (Path(args.model), Path(args.tflite)):
            if not path.is_file():
                raise ModelError(f"{path}: no such file")
        entries = publish(Path(args.model), Path(args.tflite), Path(args.data), Path(args.out))
    except (ModelError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(e.name for e in entries)} ({entries[0].file}, {entries[0].bytes / 1024:.1f} KiB) into "
          f"{Path(args.out) / 'manifest.json'}; fit their temperatures with python -m train_host.calibrate --name")
    return 0


if __name__ == "__main__":
    sys.exit(main())
