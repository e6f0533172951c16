"""Keras 3 -> TFLite through a SavedModel.

``TFLiteConverter.from_keras_model`` is broken with Keras 3 on TF >= 2.16, so
the model is exported with ``model.export(dir, "tf_saved_model")`` and
converted with ``from_saved_model``. The int8 model is full-integer: int8 input
and output, per-channel weights, and builtin int8 ops only, so an op that
cannot be quantized fails the conversion loudly instead of silently staying float.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.frame.preprocess import normalize

MIN_CALIBRATION = 300


class ConversionError(RuntimeError):
    """The converter refused the model; the message says why in one line."""


def balanced_sample(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of ``count`` faces spread as evenly as possible over all classes."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = {c: rng.permutation(np.flatnonzero(y == c)) for c in classes}
    picked: list[int] = []
    round_ = 0
    while len(picked) < count and any(round_ < len(v) for v in per_class.values()):
        for c in classes:
            if round_ < len(per_class[c]) and len(picked) < count:
                picked.append(int(per_class[c][round_]))
        round_ += 1
    return np.array(sorted(picked), dtype=np.int64)


def representative_faces(faces_uint8: np.ndarray) -> Iterator[list[np.ndarray]]:
    """The converter's calibration feed: one preprocessed float face per step."""
    x = normalize(faces_uint8)[..., None]
    for face in x:
        yield [face[None]]


def _export(model, directory: Path) -> None:
    import tensorflow as tf  # noqa: F401  (makes sure TF, not another backend, exports)

    model.export(str(directory), "tf_saved_model", verbose=False)


def convert(model, calibration_uint8: np.ndarray | None, range_percentile: float | None = None) -> bytes:
    """TFLite flatbuffer of ``model``: float32 when ``calibration_uint8`` is None, else full int8.

    ``range_percentile`` (int8 only): instead of the converter's min/max over
    all calibration faces, each activation's range is the given percentile
    of the per-face maxima (and the mirrored percentile of the minima), see
    :func:`percentile_ranges`. None keeps the converter's min/max.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        saved = Path(tmp) / "saved_model"
        _export(model, saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if calibration_uint8 is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: representative_faces(calibration_uint8)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            converter._experimental_calibrate_only = range_percentile is not None
        try:
            flatbuffer = converter.convert()
            if calibration_uint8 is not None and range_percentile is not None:
                flatbuffer = _quantize_calibrated(
                    percentile_ranges(flatbuffer, calibration_uint8, range_percentile))
        except Exception as exc:  # the converter raises ConverterError, RuntimeError, ...
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ConversionError(f"TFLite conversion failed: {first[:300]}") from None
    return strip_strings(flatbuffer)


def percentile_ranges(calibrated: bytes, calibration_uint8: np.ndarray, percentile: float) -> bytes:
    """The calibrated float graph with every activation range set from per-face extremes.

    Why: the converter quantizes each activation over the min/max of all
    calibration faces, so one outlier face stretches a tensor's int8 step for
    every face. Running the faces one at a time and taking, per tensor, the
    ``percentile`` of the per-face maxima (and the ``100 - percentile`` of the
    minima) gives finer steps at the cost of clipping the rarest extremes.
    Measured on the 64x64 emotion model (docs/experiments.md): the 99th
    percentile agrees with float more often than min/max, the mean of the
    per-face extremes (QAT's moving average) clips too much. A range that
    crossed zero keeps zero inside it, so ReLU outputs stay exact at 0.
    """
    if not 50.0 < percentile <= 100.0:
        raise ConversionError(f"range percentile {percentile} is outside (50, 100]")
    model, ranged = ranged_tensors(calibrated)
    lows, highs = face_extremes(calibrated, ranged, calibration_uint8)
    set_ranges(model, ranged, np.percentile(lows, 100.0 - percentile, axis=0), np.percentile(highs, percentile, axis=0))
    return bytes(flatbuffer_utils_module().convert_object_to_bytearray(model))


def flatbuffer_utils_module():
    """TensorFlow Lite's flatbuffer helpers (imported late: TensorFlow is heavy)."""
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils


def ranged_tensors(calibrated: bytes) -> tuple[object, list[int]]:
    """The calibrated graph as an object, and the tensors with one calibrated range (the pixels excluded)."""
    model = flatbuffer_utils_module().convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    inputs = {int(i) for i in model.subgraphs[0].inputs}  # pixels: their range is exact already
    ranged = [i for i, t in enumerate(tensors) if i not in inputs and t.quantization is not None
              and t.quantization.min is not None and len(t.quantization.min) == 1]
    return model, ranged


def face_extremes(calibrated: bytes, ranged: list[int], faces_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per face (rows) and tensor (columns, ``ranged``): the smallest and largest value the float graph computes."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=bytes(calibrated), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    lows = np.empty((len(faces_uint8), len(ranged)), np.float64)
    highs = np.empty_like(lows)
    for row, (face,) in enumerate(representative_faces(faces_uint8)):
        interpreter.set_tensor(index, face.astype(np.float32))
        interpreter.invoke()
        for column, i in enumerate(ranged):
            values = interpreter.get_tensor(i)
            lows[row, column], highs[row, column] = values.min(), values.max()
    return lows, highs


def set_ranges(model, ranged: list[int], lows: np.ndarray, highs: np.ndarray) -> None:
    """Write new activation ranges into the graph object; a range that crossed zero keeps zero inside it."""
    tensors = model.subgraphs[0].tensors
    for column, i in enumerate(ranged):
        quantization = tensors[i].quantization
        low, high = float(lows[column]), float(highs[column])
        if float(quantization.min[0]) <= 0.0:
            low = min(low, 0.0)
        quantization.min, quantization.max = [low], [max(high, 0.0)]


def _quantize_calibrated(calibrated: bytes) -> bytes:
    """Full-int8 flatbuffer (int8 input and output) of a calibrated float graph."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    return tf_convert.mlir_quantize(calibrated, fully_quantize=True, input_data_type=tf.int8,
                                    output_data_type=tf.int8)


def strip_strings(flatbuffer: bytes) -> bytes:
    """Drop tensor names, descriptions and signature names (about 7 KB of a 100 KB int8 model).

    The device addresses the single input and output by index, so nothing it
    needs is lost; per-channel quantization parameters (int64 zero points) are
    what remains of the overhead beyond the weights.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename.

    A reader (or a crash) never sees a half-written model.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
