"""Convert a trained Keras model into the float32 and int8 TFLite models the Pi runs.

    python -m quantize runs/emotion/best.keras \
        --calib ../shared/data/fer2013/fer2013_Training.npz \
        --test ../shared/data/fer2013/fer2013_PublicTest.npz --out models/

Writes ``<name>_float32.tflite``, ``<name>_int8.tflite``, ``<name>.keras`` (the
float model), a report (``reports/<name>_quantize.md`` and ``.json``) with sizes,
accuracy of float and int8 on the test split, argmax agreement, mean absolute
probability difference and latency at 1 and 2 threads, and updates
``manifest.json``. Files are written to temp names and renamed, so a good
model already in ``--out`` is never half-overwritten; when int8 misses the
parity targets, or scores lower on the same test file than the model it
would replace (the figure in ``--out``'s manifest), nothing in ``--out``
changes unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.frame.labels import LABELS_BY_TASK, TASKS
from edge.frame.manifest import ModelError

PARITY_MAX_DROP_PP = 1.0
PARITY_MIN_AGREEMENT = 0.97
MAX_INT8_BYTES = 100 * 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m quantize", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="trained float model (.keras)")
    parser.add_argument("--calib", required=True, help="training data for calibration (any supported format)")
    parser.add_argument("--test", required=True, help="test split for the parity figures")
    parser.add_argument("--out", default="models", help="models folder (default: models/)")
    parser.add_argument("--task", choices=TASKS, help="default: from the model's output count")
    parser.add_argument("--name", help="base name of the files (default: <task>_<architecture>)")
    parser.add_argument("--calib-count", type=int, default=600, help="calibration faces, spread over all classes")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="crop margin per side the device applies to Haar boxes, recorded in the manifest "
                             "(default 0: the shipped models score best on bare Haar boxes; measure yours with "
                             "python -m train_host.evaluate --through-detector MARGIN)")
    parser.add_argument("--range-percentile", type=_percentile, metavar="P", default=99.5,
                        help="int8 activation ranges: the P-th percentile of the per-face maxima (and the "
                             "(100-P)-th of the minima) over the calibration faces (default 99.5: finer int8 "
                             "steps, the rarest extremes clipped; 99, 99.5 and 99.9 against min/max are measured "
                             "in docs/experiments.md); 100 keeps the converter's min/max over all faces, as the "
                             "shipped gender model was converted")
    parser.add_argument("--flip-average", action="store_true",
                        help="ship the model with mirror averaging (the device scores each face and its mirror "
                             "image, two invokes per face): the parity targets, the confusion matrix and the "
                             "manifest's first accuracy figures are then the mirror-averaged ones; the "
                             "single-invoke figures are recorded too (a miss there is a warning); latency stays "
                             "per invoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench-runs", type=int, default=300, help="invokes per latency figure")
    parser.add_argument("--force", action="store_true",
                        help="write even when int8 misses the parity targets or scores below the model it "
                             "replaces")
    return parser.parse_args(argv)


def _percentile(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 50.0 < value <= 100.0:
        raise argparse.ArgumentTypeError(f"{value:g} is outside (50, 100]")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from quantize.convert import ConversionError
    from train_host.data import DataError

    try:
        return run(args)
    except (DataError, ModelError, ConversionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"error: cannot write {exc.filename}: permission denied", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from quantize.convert import MIN_CALIBRATION, balanced_sample, convert
    from quantize.publish import publish, worse_than_published
    from quantize.report import measure, parity_problems, write_report
    from train_host.augment import resize_batch
    from train_host.data import DataError, load
    from train_host.evaluate import load_model, task_for

    out = Path(args.out)
    _check_writable(out)
    loaded = load_model(args.model)
    if loaded.kind != "keras":
        raise ModelError(f"{args.model}: give the float Keras model (.keras), not a {loaded.kind} file")
    from train_host.tfquiet import import_keras

    model = import_keras().models.load_model(args.model, compile=False)
    task = task_for(loaded.num_classes, args.task)
    labels = LABELS_BY_TASK[task]
    name = args.name or f"{task}_{model.name}"
    print(f"{args.model}: {task} model '{name}', {model.count_params():,} parameters, input {loaded.size}")

    calib_set = load(args.calib, task, split="train")
    if args.calib_count < MIN_CALIBRATION:
        raise DataError(f"--calib-count {args.calib_count} is below the minimum of {MIN_CALIBRATION} faces")
    if len(calib_set) < MIN_CALIBRATION:
        raise DataError(f"{args.calib}: {len(calib_set)} faces; calibration needs at least {MIN_CALIBRATION}")
    pick = balanced_sample(calib_set.y, args.calib_count, args.seed)
    calibration = resize_batch(calib_set.x[pick], loaded.size)
    test_set = load(args.test, task, split="test")
    classes = sorted(set(calib_set.y[pick].tolist()))
    print(f"calibrating on {len(pick)} real faces from {calib_set.source} "
          f"({len(classes)} of {len(labels)} classes); testing on {len(test_set)} from {test_set.source}")

    flatbuffers = {"float32": convert(model, None),
                   "int8": convert(model, calibration,
                                   range_percentile=None if args.range_percentile == 100 else args.range_percentile)}
    figures = measure(args, loaded, flatbuffers, test_set, labels)
    figures["shipped_flip_average"] = bool(args.flip_average)
    figures["range_percentile"] = args.range_percentile
    problems = parity_problems(figures, PARITY_MAX_DROP_PP, PARITY_MIN_AGREEMENT, MAX_INT8_BYTES,
                               flip_average=args.flip_average)
    report_md = write_report(out / "reports", name, figures, problems)
    print(report_md.read_text())
    if args.flip_average:
        single = parity_problems(figures, PARITY_MAX_DROP_PP, PARITY_MIN_AGREEMENT, MAX_INT8_BYTES)
        if single:
            print(f"warning: with one invoke per face (config flip_average = \"none\") int8 misses: "
                  f"{'; '.join(single)}", file=sys.stderr)
    worse = worse_than_published(out, name, figures)
    if worse:
        print(f"{'warning' if args.force else 'error'}: less accurate than the models it would replace: "
              f"{'; '.join(worse)}" + ("; replacing them (--force)" if args.force else
                                      f"; models in {out} left unchanged (--force replaces them)"), file=sys.stderr)
    if problems and not args.force:
        print(f"error: int8 misses its targets ({'; '.join(problems)}); models in {out} left unchanged "
              "(--force writes anyway)", file=sys.stderr)
    if (problems or worse) and not args.force:
        return 1
    manifest_path = publish(args, out, name, task, labels, model, flatbuffers, figures, calib_set, pick)
    print(f"wrote {name}_float32.tflite, {name}_int8.tflite and {name}.keras to {out}; updated {manifest_path}")
    return 0


def _check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ModelError(f"{out}: not writable ({exc.strerror})") from None


if __name__ == "__main__":
    sys.exit(main())
