"""Fit the temperature the device reads a shipped model's probabilities through, and record it in the manifest.

    python -m train_host.calibrate --models models --task gender \\
        --data ../shared/data/utkface/utkface_gender_gray64_train.npz --holdout 0.1 --seed 1234 \\
        --test ../shared/data/utkface/utkface_gender_gray64_test.npz --write

For every manifest entry of ``--task`` (int8 and float32) the probabilities are
computed as the device prints them before calibration (the entry's own file,
mirror-averaged where its ``flip_average`` says so), one scalar ``T``
minimising the NLL of ``softmax(log p / T)`` is fitted on ``--data`` and the
ECE/NLL before and after are printed on the fit data and on ``--test``.

Which faces to fit on matters: rows the model trained on make it look more
accurate than it is on new faces, so a temperature fitted there over-sharpens
(measured: the emotion model's training rows give T = 0.63 and a PublicTest ECE
of 8.3%, worse than no calibration). ``--holdout F --seed S`` fits on the part
of ``--data`` that ``train_host.train --val holdout`` held out with the same
fraction and seed (the gender run's validation slice). When ``--data`` is
``--test`` (the emotion run validated on PublicTest, the only FER-2013 split
outside its training set here), the test figures are out of fold: each of
``--folds`` parts read through a T fitted on the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.frame.calibration import apply_temperature
from edge.frame.labels import TASKS
from edge.frame.manifest import Manifest, ModelEntry, ModelError
from train_host import provenance
from train_host.calibration import apply_class_vector, ece, fit_class_vector, fit_temperature, nll, summary
from train_host.data import DataError, FaceSet, load, random_split
from train_host.evaluate import load_model


def shipped_probs(manifest: Manifest, entry: ModelEntry, faces: FaceSet) -> np.ndarray:
    """What ``entry``'s file prints for ``faces`` before any temperature: mirror-averaged where it ships so."""
    model = load_model(manifest.verify(entry), entry.labels)
    model.temperature = 1.0
    model.flip_average = entry.flip_average
    return np.asarray(model.predict_as_shipped(faces.x))


def out_of_fold(probs: np.ndarray, y: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, list[float]]:
    """Each of ``folds`` random parts read through the temperature fitted on the other parts."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), folds)
    shown = np.empty_like(probs, dtype=np.float32)
    temps = []
    for part in parts:
        rest = np.setdiff1d(np.arange(len(y)), part)
        temps.append(fit_temperature(probs[rest], y[rest]))
        shown[part] = apply_temperature(probs[part], temps[-1])
    return shown, temps


def _figures(before: dict, after: dict) -> dict:
    return {"ece_before": before["ece"], "ece_after": after["ece"], "nll_before": before["nll"],
            "nll_after": after["nll"], "accuracy": after["accuracy"]}


def calibrate_entry(manifest: Manifest, entry: ModelEntry, fit: FaceSet, fit_rows: str, test: FaceSet | None,
                    folds: int, seed: int, compare_vector: bool = False) -> tuple[float, dict]:
    """The fitted temperature and the record ``temperature_fit`` keeps of it."""
    probs = shipped_probs(manifest, entry, fit)
    temperature = round(fit_temperature(probs, fit.y), 4)
    record: dict[str, Any] = {
        "data": fit.source, "rows": fit_rows, "faces": len(fit), "flip_average": entry.flip_average,
        "objective": "NLL of softmax(log p / T), one scalar T", "model_sha256_16": entry.sha256[:16],
        "fit": _figures(summary(probs, fit.y), summary(probs, fit.y, temperature))}
    if test is not None:
        same = test.source == fit.source and len(test) == len(fit) and np.array_equal(test.y, fit.y)
        test_probs = probs if same else shipped_probs(manifest, entry, test)
        record["test"] = {"data": test.source, "faces": len(test)} | _figures(
            summary(test_probs, test.y), summary(test_probs, test.y, temperature))
        if compare_vector:  # printed, never recorded: the device applies one scalar
            shown = apply_class_vector(test_probs, fit_class_vector(probs, fit.y))
            record["test"]["class_vector"] = {"ece_after": round(ece(shown, test.y), 4),
                                              "nll_after": round(nll(shown, test.y), 4)}
        if same:  # the test split is the fit data: the honest figure reads each part through a T it never saw
            shown, temps = out_of_fold(test_probs, test.y, folds, seed)
            oof = summary(shown, test.y)
            record["test"]["out_of_fold"] = {"folds": folds, "seed": seed, "temperatures": [round(t, 4) for t in temps],
                                             "ece_after": oof["ece"], "nll_after": oof["nll"]}
    return temperature, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="models", help="folder with manifest.json")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--data", required=True, help="dataset file to fit on (see --holdout)")
    parser.add_argument("--holdout", type=float, metavar="FRACTION",
                        help="fit only on the stratified FRACTION of --data that train_host.train --val holdout "
                             "held out with --seed (the training run's validation slice)")
    parser.add_argument("--rows", choices=("all", "test-duplicates", "not-test-duplicates"), default="all",
                        help="FER-2013 Training only: fit on the rows that copy a PublicTest image (publictest_dup, "
                             "which training drops) or on the others (the rows the model trained on)")
    parser.add_argument("--seed", type=int, default=0, help="the training run's seed for --holdout; the fold split")
    parser.add_argument("--test", help="dataset file to report ECE/NLL before and after on")
    parser.add_argument("--folds", type=int, default=5, help="out-of-fold parts when --test is the fit data")
    parser.add_argument("--compare-vector", action="store_true",
                        help="also fit one temperature per class (softmax(w * log p)) and print its test figures")
    parser.add_argument("--name", action="append", metavar="ENTRY",
                        help="fit only this manifest entry (repeatable; default: every entry of --task)")
    parser.add_argument("--write", action="store_true", help="record the temperatures in the manifest")
    args = parser.parse_args(argv)
    if args.holdout is not None and not 0 < args.holdout < 1:
        print(f"error: --holdout: {args.holdout} is outside 0..1 (a fraction of --data)", file=sys.stderr)
        return 2
    if args.write and args.compare_vector:
        print("error: --compare-vector only prints; run --write without it", file=sys.stderr)
        return 2
    if args.folds < 2:
        print(f"error: --folds: {args.folds}, need at least 2", file=sys.stderr)
        return 2
    try:
        manifest = Manifest.load(args.models)
        entries = [m for m in manifest.models if m.task == args.task and (not args.name or m.name in args.name)]
        if not entries:
            which = f" named {', '.join(args.name)}" if args.name else ""
            raise ModelError(f"{args.models}: no {args.task} model{which} in the manifest")
        fit = load(args.data, args.task, split="train" if args.holdout else "test")
        rows = f"all {len(fit)}"
        if args.rows != "all":
            if fit.test_dup is None:
                raise DataError(f"{args.data}: --rows {args.rows} needs a publictest_dup column (FER-2013 Training)")
            fit = fit.subset(fit.test_dup if args.rows == "test-duplicates" else ~fit.test_dup)
            rows = f"the {len(fit)} {'rows that copy' if args.rows == 'test-duplicates' else 'rows not copying'} " \
                   "a PublicTest image"
        if args.holdout is not None:
            rows = f"the {args.holdout:g} stratified holdout of seed {args.seed} of all {len(fit)}"
            fit = random_split(fit, args.holdout, args.seed)[1]
        test = load(args.test, args.task, split="test") if args.test else None
        if test is not None and args.holdout is None and Path(args.test).resolve() == Path(args.data).resolve():
            rows += " (also the test split: test.out_of_fold holds the figures on faces each T never saw)"
        results = {}
        for entry in entries:
            results[entry.name] = calibrate_entry(manifest, entry, fit, rows, test, args.folds, args.seed,
                                                  args.compare_vector)
    except (DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, (temperature, record) in results.items():
        parts = [f"{name}: T = {temperature:g} on {record['faces']} faces ({record['rows']})",
                 "fit ECE {ece_before:.2%} -> {ece_after:.2%}, NLL {nll_before:.4f} -> {nll_after:.4f}".format(
                     **record["fit"])]
        if "test" in record:
            t = record["test"]
            parts.append(f"test {Path(t['data']).name} ECE {t['ece_before']:.2%} -> {t['ece_after']:.2%}, NLL "
                         f"{t['nll_before']:.4f} -> {t['nll_after']:.4f}, accuracy {t['accuracy']:.2%}")
            if "out_of_fold" in t:
                oof = t["out_of_fold"]
                parts.append(f"out of fold ({oof['folds']} parts) ECE {oof['ece_after']:.2%}, "
                             f"NLL {oof['nll_after']:.4f}")
            if "class_vector" in t:
                parts.append("one T per class instead: ECE {ece_after:.2%}, NLL {nll_after:.4f}".format(
                    **t["class_vector"]))
        print("; ".join(parts))
    if args.write:
        command = "python -m train_host.calibrate " + " ".join(argv if argv is not None else sys.argv[1:])
        commit = provenance.git_commit()
        manifest.models = [
            dataclasses.replace(m, temperature=results[m.name][0],
                                temperature_fit=results[m.name][1] | {"command": command, "commit": commit})
            if m.name in results else m for m in manifest.models]
        print(f"recorded in {manifest.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
