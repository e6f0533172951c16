"""Evaluate a ``.keras`` or ``.tflite`` model on any supported dataset.

    python -m train_host.evaluate --model models/emotion_mini_xception.keras \
        --data ../shared/data/fer2013/fer2013_PublicTest.npz --json out/eval.json --plots out/

Prints accuracy and per-class precision/recall, writes a row-normalised
confusion matrix PNG (the paper's Fig. 8.6) and, when the data has ages or
races (UTKFace), gender accuracy per age band and per group: the paper's
gender model is known to be biased and users deserve the figures. It also
prints how well the confidences match how often the model is right (``ece``,
10 equal-width bins on the top class, and ``nll``) on the probabilities the
device prints: mirror-averaged and read through the manifest's temperature
(``--temperature 1`` gives the uncalibrated figures); ``--plots`` adds a
reliability diagram.

TFLite models are run through the device's own classifier (``edge.frame.classifier``),
so the figure is what the Pi computes, including the int8 input table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.frame.calibration import apply_temperature, valid_temperature
from edge.frame.labels import LABELS_BY_TASK, TASKS
from edge.frame.manifest import Manifest, ModelError
from edge.frame.preprocess import PIXEL_OFFSET, PIXEL_SCALE, CropSpec, normalize
from train_host.augment import resize_batch
from train_host.calibration import ece, nll, reliability
from train_host.data import ADULT_AGE_DEFAULT, AGE_BANDS, RACE_NAMES, DataError, FaceSet, load

ADULT_AGE = ADULT_AGE_DEFAULT


@dataclass
class LoadedModel:
    """A model ready to predict probabilities for uint8 faces of any size."""

    path: Path
    kind: str  # "keras" | "tflite"
    size: tuple[int, int]
    num_classes: int
    predict: Callable[[np.ndarray], np.ndarray]
    flip_average: bool = False  # its manifest entry ships it mirror-averaged (the device's default for it)
    temperature: float = 1.0  # its manifest entry's calibration (1 for a model without one)

    def predict_as_shipped(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities as the device prints them by default: mirror-averaged when the manifest says so, then
        read through the manifest's temperature."""
        probs = mirror_averaged(self, faces) if self.flip_average else np.asarray(self.predict(faces))
        return apply_temperature(probs, self.temperature)


def mirror_averaged(model: LoadedModel, faces: np.ndarray) -> np.ndarray:
    """Mean probabilities of each face and its mirror image, mirrored after the resize as the device does."""
    resized = resize_batch(faces, model.size)
    mirrored = np.ascontiguousarray(resized[:, :, ::-1])
    return (np.asarray(model.predict(resized)) + np.asarray(model.predict(mirrored))) / 2.0


def load_model(path: str | Path, labels: Sequence[str] | None = None, margin: float = 0.0) -> LoadedModel:
    """Load ``.keras``/``.h5``/``.hdf5`` with Keras or ``.tflite`` with the device classifier."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return _load_tflite(path, labels)
    if suffix in (".keras", ".h5", ".hdf5"):
        from train_host.tfquiet import import_keras

        keras = import_keras()
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # Keras raises many types for a bad file
            raise ModelError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0][:200]})") from None
        _, height, width, channels = model.input_shape
        if channels != 1:
            raise ModelError(f"{path}: expects {channels} channels; these models take gray 1-channel faces")

        def predict(faces: np.ndarray) -> np.ndarray:
            x = normalize(resize_batch(faces, (height, width)))[..., None]
            return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)

        return LoadedModel(path, "keras", (height, width), int(model.output_shape[-1]), predict)
    raise ModelError(f"{path}: unknown model type '{suffix}' (use .keras, .h5 or .tflite)")


def _load_tflite(path: Path, labels: Sequence[str] | None) -> LoadedModel:
    from edge.frame.classifier import Classifier

    crop = CropSpec(scale=PIXEL_SCALE, offset=PIXEL_OFFSET)
    flip, temperature = False, 1.0
    try:  # a model listed in a manifest next to it: use its recorded preprocessing and calibration
        manifest = Manifest.load(path.parent)
        # a joint file is listed once per task: the labels given (or the first entry) say which output is read
        entry = next(m for m in manifest.models
                     if m.file == path.name and (labels is None or m.labels == tuple(labels)))
        labels = entry.labels
        crop = CropSpec(margin=entry.preprocessing.crop_margin, scale=entry.preprocessing.scale,
                        offset=entry.preprocessing.offset)
        flip, temperature = entry.flip_average, entry.temperature
    except (ModelError, StopIteration):
        pass
    probe = Classifier(str(path), tuple(labels or ("?",) * _tflite_classes(path)), crop)
    classes = len(probe.labels)

    def predict(faces: np.ndarray) -> np.ndarray:
        return probe.predict(resize_batch(faces, probe.size))

    return LoadedModel(path, "tflite", probe.size, classes, predict, flip, temperature)


def _tflite_classes(path: Path) -> int:
    from edge.frame.runtime import make_interpreter

    try:
        return int(make_interpreter(str(path)).get_output_details()[0]["shape"][-1])
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable TFLite model ({str(exc).splitlines()[0]})") from None


def task_for(num_classes: int, task: str | None) -> str:
    """The task a model with ``num_classes`` outputs serves (checked against ``task`` when given)."""
    matches = [t for t in TASKS if len(LABELS_BY_TASK[t]) == num_classes]
    if task:
        if len(LABELS_BY_TASK[task]) != num_classes:
            raise ModelError(f"model has {num_classes} outputs but {task} has {len(LABELS_BY_TASK[task])} classes")
        return task
    if not matches:
        raise ModelError(f"model has {num_classes} outputs; expected 7 (emotion) or 2 (gender)")
    return matches[0]


def confusion(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, true class per row."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y, pred), 1)
    return matrix


def class_figures(matrix: np.ndarray, i: int) -> tuple[float, float, float, int]:
    """Precision, recall, F1 and support of class ``i`` from a confusion matrix of counts (true class per row)."""
    tp = matrix[i, i]
    predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
    precision = float(tp / predicted) if predicted else 0.0
    recall = float(tp / actual) if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, int(actual)


def metrics(y: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    pred = probs.argmax(axis=1)
    matrix = confusion(y, pred, len(labels))
    per_class = {}
    for i, label in enumerate(labels):
        precision, recall, f1, support = class_figures(matrix, i)
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": support}
    return {"accuracy": round(float((pred == y).mean()), 4), "samples": int(len(y)), "per_class": per_class,
            "confusion": matrix.tolist()}


def group_breakdown(y: np.ndarray, pred: np.ndarray, age: np.ndarray | None, race: np.ndarray | None) -> dict:
    """Accuracy, face count and right-answer count per age band, per race group and for adults only (when the
    data has them); the count lets a report print the exact figure at any precision."""
    out: dict[str, dict] = {}
    correct = pred == y

    def cell(mask: np.ndarray) -> dict:
        # The count of right answers too: printing the 4-decimal rounded accuracy to one decimal rounds twice
        # (194 of 328 is 59.146%, stored 0.5915, printed 59.2%).
        return {"accuracy": round(float(correct[mask].mean()), 4) if mask.any() else None, "samples": int(mask.sum()),
                "correct": int(correct[mask].sum())}

    if age is not None:
        out["age"] = {f"{lo}-{hi}" if hi < 200 else f"{lo}+": cell((age >= lo) & (age <= hi)) for lo, hi in AGE_BANDS}
        out["adults"] = cell(age >= ADULT_AGE)
    if race is not None:
        out["race"] = {name: cell(race == i) for i, name in enumerate(RACE_NAMES)}
    return out


def evaluate(model: LoadedModel, faces: FaceSet, labels: Sequence[str], flip_average: bool = False,
             temperature: float = 1.0) -> dict:
    """All figures for ``model`` on ``faces``.

    ``flip_average`` scores each face and its mirror image and averages the
    probabilities (test-time augmentation): what it gains here is weighed
    against twice the classifier time on the device. ``temperature`` is applied
    after the averaging, as the device does; it changes ECE and NLL, never the
    predicted class.
    """
    raw = mirror_averaged(model, faces.x) if flip_average else np.asarray(model.predict(faces.x))
    probs = apply_temperature(raw, temperature)
    result = metrics(faces.y, probs, labels)
    result.update({"ece": round(ece(probs, faces.y), 4), "nll": round(nll(probs, faces.y), 4),
                   "temperature": temperature, "reliability": reliability(probs, faces.y)})
    if temperature != 1.0:  # the same answers before calibration, for the before -> after figures
        result["uncalibrated"] = {"ece": round(ece(raw, faces.y), 4), "nll": round(nll(raw, faces.y), 4),
                                  "reliability": reliability(raw, faces.y)}
    result.update(group_breakdown(faces.y, probs.argmax(axis=1), faces.age, faces.race))
    result["model"] = str(model.path)
    result["data"] = faces.source
    return result


def format_report(result: dict, labels: Sequence[str]) -> str:
    """Human-readable table of the figures."""
    lines = [f"{result['model']} on {result['data']} ({result['samples']} faces)",
             f"accuracy: {100 * result['accuracy']:.2f}%"
             + (" (each face averaged with its mirror image)" if result.get("flip_average") else "")]
    if "ece" in result:
        before = result.get("uncalibrated")
        lines.append("calibration (10 bins on the top class): "
                     + (f"ECE {100 * before['ece']:.2f}% -> {100 * result['ece']:.2f}%, NLL {before['nll']:.4f} -> "
                        f"{result['nll']:.4f} (temperature 1 -> {result['temperature']:g})" if before else
                        f"ECE {100 * result['ece']:.2f}%, NLL {result['nll']:.4f} at temperature "
                        f"{result.get('temperature', 1.0):g}"))
    lines += ["",
             f"{'class':>10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    matrix = np.asarray(result["confusion"]) if result.get("confusion") is not None else None
    for i, label in enumerate(labels):
        c = result["per_class"][label]
        # From the counts when they are there: the stored figures are already rounded to 4 decimals.
        precision, recall, f1, support = (class_figures(matrix, i) if matrix is not None else
                                          (c["precision"], c["recall"], c["f1"], c["support"]))
        lines.append(f"{label:>10} {100 * precision:>8.1f}% {100 * recall:>6.1f}% {100 * f1:>5.1f}% {support:>8}")
    for group in ("age", "race"):
        if group in result:
            lines.append("")
            lines.append(f"accuracy by {group}:")
            for name, c in result[group].items():
                exact = c["correct"] / c["samples"] if c.get("correct") is not None and c["samples"] else c["accuracy"]
                acc = "-" if c["accuracy"] is None else f"{100 * exact:.1f}%"
                lines.append(f"  {name:>8}: {acc:>6} ({c['samples']} faces)")
    if "adults" in result and result["adults"]["accuracy"] is not None:
        a = result["adults"]
        lines.append(f"adults only (age >= {ADULT_AGE}): {100 * a['accuracy']:.2f}% ({a['samples']} faces)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=".keras, .h5 or .tflite")
    parser.add_argument("--data", required=True, help="dataset file or folder (its test split is used)")
    parser.add_argument("--task", choices=TASKS, help="default: from the model's output count")
    parser.add_argument("--split", help="FER CSV usage or train/test file of a folder (default: test)")
    parser.add_argument("--json", help="write the figures as JSON here")
    parser.add_argument("--plots", help="folder for the confusion-matrix PNG")
    parser.add_argument("--through-detector", type=float, metavar="MARGIN",
                        help="re-cut every face as the device does: detector box grown by MARGIN per side "
                             "(e.g. 0.1), instead of the dataset's own chip")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction,
                        help="average each face's probabilities with its mirror image's (test-time augmentation; "
                             "twice the classifier time on the device); default: as the model's manifest entry "
                             "ships it (off for a model without one)")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="read the probabilities through softmax(log p / T) after any mirror averaging; default: "
                             "the model's manifest entry's (1 without one; 1 gives the uncalibrated figures)")
    parser.add_argument("--detector", default="haar", metavar="haar|blazeface",
                        help="the device's detector backend for --through-detector (default haar)")
    parser.add_argument("--blazeface-model", metavar="full|full_float32|short",
                        help="with --detector blazeface: its whole-frame model (default: the shipped one, full: "
                             "the int8 file)")
    args = parser.parse_args(argv)
    if args.temperature is not None and valid_temperature(args.temperature) is None:
        print(f"error: --temperature: {args.temperature} is not a number greater than 0", file=sys.stderr)
        return 2
    try:
        # --task picks a joint file's head (its labels say which output); otherwise the output count says the task
        model = load_model(args.model, LABELS_BY_TASK[args.task] if args.task else None)
        task = task_for(model.num_classes, args.task)
        labels = LABELS_BY_TASK[task]
        split = args.split or ("PublicTest" if Path(args.data).suffix.lower() == ".csv" else "test")
        faces = load(args.data, task, split=split)
        detected = None
        if args.through_detector is not None:
            from edge.detectors import BACKENDS
            from train_host.through_detector import device_detector, recut

            if args.detector not in BACKENDS:
                raise DataError(f"--detector: unknown backend {args.detector!r} (known: {', '.join(BACKENDS)})")
            total = len(faces)
            from edge.detectors import BlazeFaceSettings
            from edge.settings import ConfigError

            try:
                blazeface = BlazeFaceSettings(model=args.blazeface_model or BlazeFaceSettings().model)
                detector = device_detector(args.detector, blazeface=blazeface)
            except ConfigError as exc:
                raise DataError(f"--blazeface-model: {exc}") from None
            faces, found = recut(faces, detector, args.through_detector, model.size, task)
            detected = {"margin": args.through_detector, "detector": args.detector, "chips": total,
                        "blazeface_model": blazeface.model if args.detector == "blazeface" else None,
                        "faces_found": int(found.sum())}
            if len(faces) == 0:
                raise DataError(f"{args.data}: the {args.detector} detector found no face in any chip")
        flip = model.flip_average if args.flip_average is None else args.flip_average
        temperature = model.temperature if args.temperature is None else args.temperature
        result = evaluate(model, faces, labels, flip_average=flip, temperature=temperature)
        result["flip_average"] = flip
        if detected:
            result["through_detector"] = detected
    except (DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["task"] = task
    if detected:
        which = detected["detector"] + (f" ({detected['blazeface_model']})" if detected["blazeface_model"] else "")
        print(f"through the detector (margin {detected['margin']}): {which} found a face in "
              f"{detected['faces_found']} of {detected['chips']} chips; figures below are on those")
    print(format_report(result, labels))
    if args.plots:
        from train_host.plots import confusion_matrix_png

        plots = Path(args.plots)
        plots.mkdir(parents=True, exist_ok=True)
        png = plots / f"confusion_{model.path.stem}.png"
        confusion_matrix_png(np.array(result["confusion"]), labels, png,
                             f"{model.path.name}: {100 * result['accuracy']:.1f}% on {Path(faces.source).name}")
        print(f"confusion matrix: {png}")
        from train_host.plots import reliability_png

        curve = plots / f"reliability_{model.path.stem}.png"
        curves = {f"T = {temperature:g}, as printed: ECE {100 * result['ece']:.1f}%": result["reliability"]}
        if "uncalibrated" in result:
            curves = {f"T = 1, uncalibrated: ECE {100 * result['uncalibrated']['ece']:.1f}%":
                      result["uncalibrated"]["reliability"]} | curves
        reliability_png(curves, curve, f"{model.path.name} on {Path(faces.source).name} ({len(faces)} faces)")
        print(f"reliability diagram: {curve}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
