"""Parity, size and latency figures of a conversion, printed and written as Markdown + JSON."""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.frame.classifier import Classifier
from edge.frame.preprocess import CropSpec
from edge.frame.runtime import interpreter_class
from train_host.augment import resize_batch
from train_host.data import FaceSet
from train_host.evaluate import LoadedModel, group_breakdown, metrics, mirror_averaged

PAPER_FLOAT_BYTES = 855 * 1024  # the paper's mini-Xception float weights


def time_invokes(classifier: Classifier, face: np.ndarray, runs: int) -> dict[str, float]:
    """Median and p90 milliseconds of one classification after a warm-up."""
    for _ in range(20):
        classifier.predict_one(face)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.predict_one(face)
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 4), "p90_ms": round(samples[int(0.9 * (runs - 1))], 4)}


def measure(args, loaded: LoadedModel, flatbuffers: dict[str, bytes], test: FaceSet,
            labels: Sequence[str]) -> dict:
    """Accuracy, agreement, probability difference, sizes and latency of each model on ``test``."""
    faces = resize_batch(test.x, loaded.size)
    keras_probs = np.asarray(loaded.predict(test.x))
    keras_pred = keras_probs.argmax(axis=1)
    keras_flip = mirror_averaged(loaded, test.x)
    figures: dict = {
        "test": {"source": test.source, "faces": len(test)},
        "bytes": {"keras": Path(args.model).stat().st_size, "paper_float_weights": PAPER_FLOAT_BYTES},
        "accuracy": {"keras": metrics(test.y, keras_probs, labels)["accuracy"]},
        "groups": {"keras": group_breakdown(test.y, keras_pred, test.age, test.race)},
        "latency": {}, "agreement": {}, "mean_abs_prob_diff": {}, "confusion": {},
        "runtime": interpreter_class()[1], "cpu": platform.processor() or platform.machine(),
        # The same figures with each face's mirror image averaged in, as the device runs a model whose
        # manifest entry says flip_average (two invokes per face): computed for every conversion, so the
        # report shows what mirror averaging would buy before anyone ships it.
        "flip_average": {"accuracy": {"keras": metrics(test.y, keras_flip, labels)["accuracy"]},
                         "agreement": {}, "mean_abs_prob_diff": {}, "groups": {
                             "keras": group_breakdown(test.y, keras_flip.argmax(axis=1), test.age, test.race)}},
    }
    with tempfile.TemporaryDirectory(prefix="quantize-eval-") as tmp:
        for variant, blob in flatbuffers.items():
            path = Path(tmp) / f"{variant}.tflite"
            path.write_bytes(blob)
            figures["bytes"][variant] = len(blob)
            classifier = Classifier(str(path), tuple(labels), CropSpec(margin=args.margin))
            probs = classifier.predict(faces)
            result = metrics(test.y, probs, labels)
            figures["accuracy"][variant] = result["accuracy"]
            figures["confusion"][variant] = result["confusion"]
            figures["per_class"] = figures.get("per_class", {}) | {variant: result["per_class"]}
            figures["groups"][variant] = group_breakdown(test.y, probs.argmax(axis=1), test.age, test.race)
            figures["agreement"][variant] = round(float((probs.argmax(axis=1) == keras_pred).mean()), 4)
            figures["mean_abs_prob_diff"][variant] = round(float(np.abs(probs - keras_probs).mean()), 5)
            # What the device's flip_average computes (the mirror of a resized face, the two answers averaged),
            # reusing the single-invoke answers above instead of running them again.
            flip_probs = (probs + classifier.predict(np.ascontiguousarray(faces[:, :, ::-1]))) / 2.0
            flip = figures["flip_average"]
            flip_result = metrics(test.y, flip_probs, labels)
            flip["accuracy"][variant] = flip_result["accuracy"]
            flip.setdefault("confusion", {})[variant] = flip_result["confusion"]
            flip["agreement"][variant] = round(float((flip_probs.argmax(axis=1) == keras_flip.argmax(axis=1)).mean()),
                                               4)
            flip["mean_abs_prob_diff"][variant] = round(float(np.abs(flip_probs - keras_flip).mean()), 5)
            flip["groups"][variant] = group_breakdown(test.y, flip_probs.argmax(axis=1), test.age, test.race)
            figures["input_quantization"] = figures.get("input_quantization", {}) | {
                variant: {"dtype": classifier.input_dtype.name, "scale": classifier.input_scale,
                          "zero_point": int(classifier.input_zero_point)}}
            figures["latency"][variant] = {}
            for threads in (1, 2):
                timed = Classifier(str(path), tuple(labels), CropSpec(margin=args.margin), num_threads=threads)
                figures["latency"][variant][f"threads_{threads}"] = time_invokes(timed, faces[0], args.bench_runs)
    return figures


def shipped_figures(figures: dict, flip_average: bool) -> dict:
    """The accuracy/agreement figures of the mode the model ships in: single invoke, or mirror-averaged."""
    return figures["flip_average"] if flip_average else figures


def parity_problems(figures: dict, max_drop_pp: float, min_agreement: float, max_int8_bytes: int,
                    flip_average: bool = False) -> list[str]:
    """What the int8 model misses of its targets (empty when it meets them all).

    With ``flip_average`` the accuracy and agreement compared are the
    mirror-averaged ones: what the device computes when the manifest says so.
    """
    problems = []
    shown = shipped_figures(figures, flip_average)
    mode = " (mirror-averaged)" if flip_average else ""
    drop = 100 * (shown["accuracy"]["keras"] - shown["accuracy"]["int8"])
    if drop > max_drop_pp:
        problems.append(f"accuracy{mode} {drop:.2f} pp below float (max {max_drop_pp})")
    if shown["agreement"]["int8"] < min_agreement:
        problems.append(f"argmax agreement{mode} {100 * shown['agreement']['int8']:.1f}% "
                        f"(min {100 * min_agreement:.0f}%)")
    if figures["bytes"]["int8"] > max_int8_bytes:
        problems.append(f"int8 file {figures['bytes']['int8'] / 1024:.1f} KB (max {max_int8_bytes / 1024:.0f} KB)")
    return problems


def markdown(name: str, figures: dict, problems: list[str]) -> str:
    """The report as Markdown."""
    b, a, lat = figures["bytes"], figures["accuracy"], figures["latency"]
    lines = [
        f"# {name}: conversion report", "",
        f"Test split: `{figures['test']['source']}` ({figures['test']['faces']} faces). "
        f"Runtime: {figures['runtime']} on {figures['cpu']}.", "",
        "| model | bytes | vs paper's 855 KB | accuracy | argmax agreement with Keras | mean abs prob diff "
        "| latency 1 thread (median ms per invoke) | latency 2 threads (median ms per invoke) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| Keras float (.keras) | {b['keras']:,} | {b['paper_float_weights'] / b['keras']:.1f}x smaller "
        f"| {100 * a['keras']:.2f}% | - | - | - | - |",
    ]
    for variant in ("float32", "int8"):
        lines.append(
            f"| TFLite {variant} | {b[variant]:,} | {b['paper_float_weights'] / b[variant]:.1f}x smaller "
            f"| {100 * a[variant]:.2f}% | {100 * figures['agreement'][variant]:.2f}% "
            f"| {figures['mean_abs_prob_diff'][variant]:.4f} "
            f"| {lat[variant]['threads_1']['median_ms']:.3f} | {lat[variant]['threads_2']['median_ms']:.3f} |"
        )
    flip = figures["flip_average"]
    lines += ["", "With mirror averaging (each face and its mirror image, probabilities averaged: two invokes per "
                  "face" + ("; **the mode this model ships in**" if figures.get("shipped_flip_average") else "") + "):",
              "", "| model | accuracy | argmax agreement with Keras (mirror-averaged) | mean abs prob diff |",
              "|---|---:|---:|---:|",
              f"| Keras float (.keras) | {100 * flip['accuracy']['keras']:.2f}% | - | - |"]
    for variant in ("float32", "int8"):
        lines.append(f"| TFLite {variant} | {100 * flip['accuracy'][variant]:.2f}% "
                     f"| {100 * flip['agreement'][variant]:.2f}% | {flip['mean_abs_prob_diff'][variant]:.4f} |")
    if figures.get("range_percentile") not in (None, 100):
        lines += ["", f"int8 activation ranges: the {figures['range_percentile']:g}th percentile of the per-face "
                      "extremes over the calibration faces (the converter's min/max otherwise)."]
    adults = {k: g.get("adults") for k, g in figures["groups"].items() if g.get("adults")}
    if adults:
        lines += ["", "Adults only (age >= 18): " + ", ".join(
            f"{k} {100 * v['accuracy']:.2f}%" for k, v in adults.items() if v["accuracy"] is not None)]
    q = figures["input_quantization"]["int8"]
    lines += ["", f"int8 input: scale {q['scale']:.6f}, zero point {q['zero_point']} "
                  "(the device maps pixels to int8 with one 256-entry table).", "",
              "Parity targets (int8 vs float" + (", mirror-averaged as shipped" if figures.get("shipped_flip_average")
                                                  else "") + ": <= 1.0 pp accuracy drop, >= 97% argmax agreement, "
              "<= 100 KB): "
              + ("**met**" if not problems else "**missed**: " + "; ".join(problems))]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, name: str, figures: dict, problems: list[str]) -> Path:
    """Write ``<name>_quantize.md`` and ``.json`` into ``folder``; returns the Markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / f"{name}_quantize.md"
    md.write_text(markdown(name, figures, problems))
    (folder / f"{name}_quantize.json").write_text(json.dumps(figures | {"problems": problems}, indent=2) + "\n")
    return md
