"""Full-int8 TFLite file of a joint emotion + gender model (``train_host.joint``): one input, two outputs.

    python -m quantize.joint out/joint/b2/last.keras --emotion-calib ../shared/data/fer2013/fer2013_Training.npz \\
        --gender-calib ../shared/data/utkface/utkface_gender_gray64_train.npz --out out/joint/b2

Calibration uses real faces of both tasks, picked as ``python -m quantize`` picks
them for each shipped model (600 faces spread over the classes; FER-2013 Training
with seed 1, UTKFace train with seed 0), resized to the input as the device
resizes its crops. ``--ranges split`` (default) gives every tensor that the
emotion output depends on (the trunk and the emotion head) the emotion faces'
range at the emotion file's percentile (99.5), and the gender branch the gender
faces' range at the gender file's (100: min/max), so the emotion half is
quantized as the shipped emotion file was; ``--ranges mixed`` takes every range
over both sets of faces together (``--emotion-percentile`` for all). Next to the
file, ``<name>.json`` records the command, the Keras file's sha256 and the
calibration sets, for ``python -m quantize.publish_joint``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge.frame.manifest import sha256_file
from quantize.convert import (
    ConversionError,
    _export,
    _quantize_calibrated,
    balanced_sample,
    face_extremes,
    flatbuffer_utils_module,
    ranged_tensors,
    representative_faces,
    set_ranges,
    strip_strings,
    write_atomic,
)
from train_host import provenance


def emotion_path(model, classes: int) -> set[int]:
    """Indices of the tensors the output with ``classes`` columns is computed from (itself included)."""
    graph = model.subgraphs[0]
    target = next(int(i) for i in graph.outputs if int(graph.tensors[int(i)].shape[-1]) == classes)
    producer = {int(out): op for op in graph.operators for out in op.outputs}
    seen, todo = set(), [target]
    while todo:
        tensor = todo.pop()
        if tensor in seen or tensor < 0:
            continue
        seen.add(tensor)
        if tensor in producer:
            todo.extend(int(i) for i in producer[tensor].inputs)
    return seen


def convert_joint(model, emotion_faces: np.ndarray, gender_faces: np.ndarray, ranges: str = "split",
                  emotion_percentile: float = 99.5, gender_percentile: float = 100.0,
                  emotion_classes: int = 7) -> bytes:
    """Full-int8 flatbuffer (int8 input and outputs) of the two-output Keras ``model``."""
    import tensorflow as tf

    both = np.concatenate([emotion_faces, gender_faces])
    with tempfile.TemporaryDirectory(prefix="quantize-joint-") as tmp:
        saved = Path(tmp) / "saved_model"
        _export(model, saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: representative_faces(both)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter._experimental_calibrate_only = True
        try:
            calibrated = converter.convert()
        except Exception as exc:  # the converter raises ConverterError, RuntimeError, ...
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ConversionError(f"TFLite conversion failed: {first[:300]}") from None
    graph, ranged = ranged_tensors(calibrated)
    if ranges == "mixed":
        lows, highs = face_extremes(calibrated, ranged, both)
        low = np.percentile(lows, 100.0 - emotion_percentile, axis=0)
        high = np.percentile(highs, emotion_percentile, axis=0)
    else:
        on_emotion = np.array([i in emotion_path(graph, emotion_classes) for i in ranged])
        e_lows, e_highs = face_extremes(calibrated, ranged, emotion_faces)
        g_lows, g_highs = face_extremes(calibrated, ranged, gender_faces)
        low = np.where(on_emotion, np.percentile(e_lows, 100.0 - emotion_percentile, axis=0),
                       np.percentile(g_lows, 100.0 - gender_percentile, axis=0))
        high = np.where(on_emotion, np.percentile(e_highs, emotion_percentile, axis=0),
                        np.percentile(g_highs, gender_percentile, axis=0))
    set_ranges(graph, ranged, low, high)
    calibrated = bytes(flatbuffer_utils_module().convert_object_to_bytearray(graph))
    return strip_strings(_quantize_calibrated(calibrated))


def calibration_faces(path: str, task: str, count: int, seed: int, size: tuple[int, int]) -> np.ndarray:
    """``count`` faces of ``path`` spread over the classes, resized to ``size`` (as ``python -m quantize``)."""
    from train_host.augment import resize_batch
    from train_host.data import load

    faces = load(path, task, split="train")
    return resize_batch(faces.x[balanced_sample(faces.y, count, seed)], size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantize.joint", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the joint .keras (python -m train_host.joint train)")
    parser.add_argument("--emotion-calib", required=True)
    parser.add_argument("--gender-calib", required=True)
    parser.add_argument("--count", type=int, default=600, help="calibration faces per task")
    parser.add_argument("--emotion-seed", type=int, default=1, help="the shipped emotion file's calibration seed")
    parser.add_argument("--gender-seed", type=int, default=0, help="the shipped gender file's calibration seed")
    parser.add_argument("--ranges", choices=("split", "mixed"), default="split")
    parser.add_argument("--emotion-percentile", type=float, default=99.5)
    parser.add_argument("--gender-percentile", type=float, default=100.0)
    parser.add_argument("--out", required=True, help="folder for joint_int8.tflite")
    parser.add_argument("--name", default="joint_int8.tflite")
    args = parser.parse_args(argv)

    from train_host.joint import limit_threads
    from train_host.tfquiet import import_keras

    limit_threads(1)
    keras = import_keras()
    model = keras.models.load_model(args.model, compile=False)
    size = tuple(model.input_shape[1:3])
    emotion = calibration_faces(args.emotion_calib, "emotion", args.count, args.emotion_seed, size)
    gender = calibration_faces(args.gender_calib, "gender", args.count, args.gender_seed, size)
    try:
        flatbuffer = convert_joint(model, emotion, gender, args.ranges, args.emotion_percentile,
                                   args.gender_percentile)
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = Path(args.out) / args.name
    write_atomic(path, flatbuffer)
    # What made the file, for the manifest entry ``python -m quantize.publish_joint`` writes from it.
    record = {"command": "python -m quantize.joint " + " ".join(argv if argv is not None else sys.argv[1:]),
              "model": args.model, "model_sha256": sha256_file(Path(args.model)),
              "emotion_calibration": {"data": args.emotion_calib, "faces": len(emotion), "seed": args.emotion_seed,
                                      "percentile": args.emotion_percentile},
              "gender_calibration": {"data": args.gender_calib, "faces": len(gender), "seed": args.gender_seed,
                                     "percentile": args.gender_percentile if args.ranges == "split"
                                     else args.emotion_percentile},
              "ranges": args.ranges, "commit": provenance.git_commit()}
    write_atomic(path.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())
    print(f"wrote {path} ({len(flatbuffer) / 1000:.1f} KB; {len(emotion)} emotion + {len(gender)} gender "
          f"calibration faces, ranges {args.ranges})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
