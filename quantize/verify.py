"""Re-measure the shipped models' accuracy on the real data and compare with the manifest.

    python -m quantize.verify --models models --data ../shared/data

For every model in ``manifest.json`` and every accuracy figure it records
(dataset file, subset, single invoke or mirror-averaged), the file is looked up under ``--data`` by name, the
model is run through the device's own classifier and the figure is measured
again. Exits 1 when any model scores more than ``--tolerance`` percentage
points (default 1.0) below what its manifest promises: the manifest must never
claim more than the shipped file delivers. A calibrated entry (``temperature``)
also promises the ECE its fit recorded on the test split (as the device prints:
mirror-averaged where it ships so, read through the temperature); it fails when
the measured ECE is more than ``--ece-tolerance`` points (default 0.5) above it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.frame.manifest import Manifest, ModelEntry, ModelError
from train_host.data import ADULT_AGE_DEFAULT, DataError, find_data, load
from train_host.evaluate import evaluate, load_model


def verify_calibration(entry: ModelEntry, path: Path, data_root: Path, tolerance_pp: float) -> dict | None:
    """The row for the ECE ``entry``'s ``temperature_fit`` promises on its test split (None when it has none)."""
    test = entry.temperature_fit.get("test")
    if not test:
        return None
    row = {"model": entry.file, "dataset": Path(test["data"]).name, "recorded": test["ece_after"],
           "subset": "ECE" + ("+flip" if entry.flip_average else ""), "worse": "above"}
    data = find_data(data_root, Path(test["data"]).name)
    if data is None:
        return row | {"measured": None, "ok": None, "note": "data not found"}
    faces = load(data, entry.task, split="test")
    measured = evaluate(load_model(path, entry.labels), faces, entry.labels, flip_average=entry.flip_average,
                        temperature=entry.temperature)["ece"]
    return row | {"measured": measured, "ok": 100 * (measured - test["ece_after"]) <= tolerance_pp, "faces": len(faces)}


def verify(models: Path, data_root: Path, tolerance_pp: float,
           ece_tolerance_pp: float = 0.5) -> tuple[list[dict], bool]:
    """Rows of (model, dataset, subset, recorded, measured, ok) and whether all passed."""
    manifest = Manifest.load(models)
    rows, ok = [], True
    for entry in manifest.models:
        path = manifest.verify(entry)
        calibration = verify_calibration(entry, path, data_root, ece_tolerance_pp)
        if calibration is not None:
            rows.append(calibration)
            ok &= calibration["ok"] is not False
        for figure in entry.accuracy:
            data = find_data(data_root, figure["file"])
            flip = bool(figure.get("flip_average", False))
            row = {"model": entry.file, "dataset": figure["file"],
                   "subset": figure.get("subset", "all") + ("+flip" if flip else ""), "recorded": figure["accuracy"]}
            if data is None:
                rows.append(row | {"measured": None, "ok": None, "note": "data not found"})
                continue
            faces = load(data, entry.task, split="test")
            if figure.get("subset") == "adults" and faces.age is not None:
                faces = faces.subset(faces.age >= ADULT_AGE_DEFAULT)
            measured = evaluate(load_model(path, entry.labels), faces, entry.labels, flip_average=flip)["accuracy"]
            passed = 100 * (figure["accuracy"] - measured) <= tolerance_pp
            ok &= passed
            rows.append(row | {"measured": measured, "ok": passed, "faces": len(faces)})
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantize.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="models")
    parser.add_argument("--data", required=True, help="folder holding the datasets (e.g. ../shared/data)")
    parser.add_argument("--tolerance", type=float, default=1.0, help="allowed shortfall in percentage points")
    parser.add_argument("--ece-tolerance", type=float, default=0.5,
                        help="allowed ECE excess over a calibrated entry's recorded figure, in percentage points")
    parser.add_argument("--json", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    try:
        rows, ok = verify(Path(args.models), Path(args.data), args.tolerance, args.ece_tolerance)
    except (ModelError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'model':<42} {'data':<34} {'subset':<12} {'manifest':>8} {'measured':>8}  result")
    for r in rows:
        measured = "-" if r["measured"] is None else f"{100 * r['measured']:.2f}%"
        limit = f"{args.ece_tolerance} pp above" if r.get("worse") == "above" else f"{args.tolerance} pp below"
        verdict = r.get("note") or ("ok" if r["ok"] else f"FAIL (more than {limit})")
        print(f"{r['model']:<42} {r['dataset']:<34} {r['subset']:<12} {100 * r['recorded']:>7.2f}% "
              f"{measured:>8}  {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
