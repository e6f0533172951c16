"""Classifier accuracy through each detector backend, on all the faces each finds and on those both find.

    python -m train_host.detector_accuracy --data ../shared/data            # shipped int8 emotion and gender

Each test chip is shown to the device's detectors as ``train_host.evaluate
--through-detector`` shows it (upsampled, padded, the shipped ``[detector]``
settings of each backend), cut from the largest box with the model's manifest
margin and classified by the device's own TFLite classifier. BlazeFace's faces
are cut as the device cuts them for that classifier (the task's crop from
``box_mapping_by_task`` when the manifest has one), and, from the same
detections, from the pooled ``box_mapping`` box for comparison. The figure that
decides whether a backend's box mapping is right is the accuracy on the chips
*both* backends find: the same faces, only the crops differ; the paired counts
(right only through BlazeFace / only through Haar) and McNemar's exact p-value
say whether a difference there is more than chance.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from edge.detectors import BlazeFaceSettings, crop_box
from edge.detectors.settings import BLAZEFACE_MODELS
from edge.frame.labels import LABELS_BY_TASK
from edge.frame.manifest import Manifest, ModelError, default_models_dir, sha256_file
from edge.frame.preprocess import CropSpec, crop_face
from train_host.data import DataError, load
from train_host.evaluate import load_model
from train_host.through_detector import chip_faces, chip_frame, device_detector

TESTS = {"emotion": "fer2013/fer2013_PublicTest.npz", "gender": "utkface/utkface_gender_gray64_test.npz"}
ROWS = ("haar", "blazeface", "blazeface pooled")  # blazeface: the task's crop; pooled: the shown box


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against a fair coin."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def measure(task: str, data: Path, models: Path, variant: str, limit: int = 0,
            blazeface: BlazeFaceSettings | None = None) -> dict:
    """Per row: faces found, accuracy on them; accuracy on the faces both backends find, and paired counts."""
    manifest = Manifest.load(models)
    entry = manifest.select(task, variant)
    path = manifest.verify(entry)
    model = load_model(path, LABELS_BY_TASK[task])
    faces = load(data / TESTS[task], task)
    if limit:
        faces = faces.subset(np.arange(min(limit, len(faces))))
    margin = entry.preprocessing.crop_margin
    spec = CropSpec(size=model.size, margin=margin)
    blazeface = blazeface or BlazeFaceSettings()
    boxes = {backend: chip_faces(faces, device_detector(backend, models, blazeface))
             for backend in ("haar", "blazeface")}
    cut_as = {"haar": lambda b: b, "blazeface": lambda b: crop_box(b, task), "blazeface pooled": lambda b: b}
    correct: dict[str, np.ndarray] = {}
    out: dict = {"task": task, "model": entry.file, "sha256": sha256_file(path), "data": str(data / TESTS[task]),
                 "flip_average": model.flip_average,
                 "blazeface_model": blazeface.model,
                 "chips": len(faces), "margin": margin, "backends": {}}
    for row in ROWS:
        found = boxes[row.split()[0]]
        index = [i for i, b in enumerate(found) if b is not None]
        hits = np.zeros(len(faces), dtype=bool)
        if index:
            cut = np.stack([crop_face(chip_frame(faces.x[i]), cut_as[row](found[i]), spec) for i in index])
            hits[index] = np.argmax(model.predict_as_shipped(cut), axis=1) == faces.y[index]
        correct[row] = hits
        out["backends"][row] = {"found": len(index), "accuracy": float(hits[index].mean()) if index else None}
    both = np.array([h is not None and b is not None for h, b in zip(boxes["haar"], boxes["blazeface"])])
    out["both_found"] = int(both.sum())
    for row in ROWS:
        out["backends"][row]["accuracy_on_both"] = float(correct[row][both].mean()) if both.any() else None
        if row != "haar":
            only_b = int((correct[row] & ~correct["haar"] & both).sum())
            only_h = int((correct["haar"] & ~correct[row] & both).sum())
            out["backends"][row]["paired"] = {"right_only_via_blazeface": only_b, "right_only_via_haar": only_h,
                                              "mcnemar_p": mcnemar_p(only_b, only_h)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.detector_accuracy",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="../shared/data (FER-2013 PublicTest, UTKFace test)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--tasks", default="emotion,gender")
    parser.add_argument("--limit", type=int, default=0, help="only the first N test chips (a quick check)")
    parser.add_argument("--json", help="write the figures here")
    shipped = BlazeFaceSettings()
    parser.add_argument("--blazeface-model", default=shipped.model, choices=BLAZEFACE_MODELS,
                        help=f"BlazeFace's whole-frame model (default {shipped.model})")
    args = parser.parse_args(argv)
    results = []
    try:
        for task in filter(None, args.tasks.split(",")):
            if task not in TESTS:
                raise DataError(f"--tasks: unknown task {task!r} (emotion, gender)")
            blazeface = BlazeFaceSettings(model=args.blazeface_model)
            result = measure(task, Path(args.data), Path(args.models), args.variant, args.limit, blazeface)
            results.append(result)
            print(f"{task}: {result['model']} (sha256 {result['sha256'][:12]}"
                  f"{', mirror-averaged as shipped' if result['flip_average'] else ''}), {result['chips']} chips of "
                  f"{Path(result['data']).name}, margin {result['margin']}, BlazeFace {args.blazeface_model}; "
                  f"both backends find {result['both_found']}")
            for backend, r in result["backends"].items():
                paired = r.get("paired")
                versus = "" if paired is None else (
                    f"  right only via BlazeFace {paired['right_only_via_blazeface']}, only via Haar "
                    f"{paired['right_only_via_haar']} (McNemar p = {paired['mcnemar_p']:.3f})")
                print(f"    {backend:16s} found {r['found']:5d}  accuracy {100 * r['accuracy']:.2f}%  "
                      f"on the {result['both_found']} both find {100 * r['accuracy_on_both']:.2f}%{versus}")
    except (DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
