"""Classifier accuracy through each detector backend, on all the faces each finds and on those both find.

    python -m train_host.detector_accuracy --data ../shared/data            # shipped int8 emotion and gender

Each test chip is shown to the device's detectors as ``train_host.evaluate
--through-detector`` shows it (upsampled, padded, the shipped ``[detector]``
settings of each backend), cut from the largest box with the model's manifest
margin and classified by the device's own TFLite classifier. The figure that
decides whether a backend's box mapping is right is the accuracy on the chips
*both* backends find: the same faces, only the crops differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge.detectors import BACKENDS
from edge.labels import LABELS_BY_TASK
from edge.manifest import Manifest, ModelError, default_models_dir, sha256_file
from train_host.data import DataError, load
from train_host.evaluate import load_model
from train_host.through_detector import device_detector, recut

TESTS = {"emotion": "fer2013/fer2013_PublicTest.npz", "gender": "utkface/utkface_gender_gray64_test.npz"}


def measure(task: str, data: Path, models: Path, variant: str) -> dict:
    """Per backend: faces found, accuracy on them; and accuracy of each backend on the faces both find."""
    manifest = Manifest.load(models)
    entry = manifest.select(task, variant)
    path = manifest.verify(entry)
    model = load_model(path, LABELS_BY_TASK[task])
    faces = load(data / TESTS[task], task)
    margin = entry.preprocessing.crop_margin
    correct: dict[str, np.ndarray] = {}
    found: dict[str, np.ndarray] = {}
    out: dict = {"task": task, "model": entry.file, "sha256": sha256_file(path), "data": str(data / TESTS[task]),
                 "chips": len(faces), "margin": margin, "backends": {}}
    for backend in BACKENDS:
        cut, mask = recut(faces, device_detector(backend, models), margin, model.size)
        pred = np.argmax(model.predict(cut.x), axis=1) if len(cut) else np.zeros(0, int)
        hits = np.zeros(len(faces), dtype=bool)
        hits[np.flatnonzero(mask)] = pred == cut.y
        correct[backend], found[backend] = hits, mask
        accuracy = float(hits[mask].mean()) if mask.any() else None
        out["backends"][backend] = {"found": int(mask.sum()), "accuracy": accuracy}
    both = np.logical_and.reduce([found[b] for b in BACKENDS])
    out["both_found"] = int(both.sum())
    for backend in BACKENDS:
        out["backends"][backend]["accuracy_on_both"] = float(correct[backend][both].mean()) if both.any() else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.detector_accuracy",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="../shared/data (FER-2013 PublicTest, UTKFace test)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--tasks", default="emotion,gender")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    results = []
    try:
        for task in filter(None, args.tasks.split(",")):
            if task not in TESTS:
                raise DataError(f"--tasks: unknown task {task!r} (emotion, gender)")
            result = measure(task, Path(args.data), Path(args.models), args.variant)
            results.append(result)
            print(f"{task}: {result['model']} (sha256 {result['sha256'][:12]}), {result['chips']} chips of "
                  f"{Path(result['data']).name}, margin {result['margin']}; both backends find {result['both_found']}")
            for backend, r in result["backends"].items():
                print(f"    {backend:10s} found {r['found']:5d}  accuracy {100 * r['accuracy']:.2f}%  "
                      f"on the {result['both_found']} both find {100 * r['accuracy_on_both']:.2f}%")
    except (DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
