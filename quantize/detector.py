"""BlazeFace float -> int8 (float input and output), calibrated on real frames, written beside the float model.

    python -m quantize.detector --detector blazeface_full --videos ../shared/media/videos \\
        --data ../shared/data --write

MediaPipe ships BlazeFace only as float (float16 weights, float32 compute) and
no int8 version exists in any package. Its graph is a TFLite flatbuffer, not a
Keras model, so it is quantized as a flatbuffer with TFLite's own calibrator:

1. every ``DEQUANTIZE`` of a float16 weight becomes a float32 constant (the
   calibrator cannot run float16 graphs; the conversion is exact);
2. every ``RELU`` is fused into the ``ADD`` / ``CONV_2D`` / ``DEPTHWISE_CONV_2D``
   that feeds it (an unfused int8 ``RELU`` is not taken by XNNPACK, which then
   cuts the graph into ~45 pieces and runs 5x *slower* than float);
3. the calibrator runs the graph on real frames, preprocessed exactly as the
   device does it (:meth:`edge.detectors.blazeface.BlazeFaceModel.raw`), and
   the quantizer writes per-channel int8 weights and int8 activations for the
   body; the output heads (last convolution, reshapes, concatenation) stay
   float (:func:`head_nodes` says why), and so do input and output, so the
   device code and the anchors are unchanged;
4. buffers no tensor uses any more are emptied.

Calibration frames: every ``--video-step``-th frame of each video in
``--videos`` (letterboxed to 640x480, as the bench and a camera show them) and
``--chips`` training chips each of FER-2013 and UTKFace from ``--data`` (shown
as ``train_host.through_detector`` shows them: upsampled, padded), so close-ups
and scenes with small faces both set the ranges. The test photos
(``../shared/media``'s photos, the test splits) are left out: they measure it.

``--write`` adds ``detectors.<name>_int8`` to the manifest (sha256, bytes, the
float entry's input spec, anchors, box mappings and licence, and how it was
made); refit its crops afterwards with ``python -m train_host.fit_box_mapping
--detectors <name>_int8``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.frame.manifest import MANIFEST_NAME, Manifest, ModelError, default_models_dir, sha256_file
from quantize.convert import write_atomic

# TFLite builtin operator codes (tensorflow/lite/schema/schema.fbs)
ADD, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, RELU = 0, 3, 4, 6, 19
FLOAT16 = 1
FUSED_RELU = 1  # ActivationFunctionType.RELU
FRAME = (640, 480)


class DetectorQuantizeError(RuntimeError):
    """Bad input or a graph this tool does not know: one line."""


def _code(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def float32_graph(flatbuffer: bytes) -> bytes:
    """``flatbuffer`` with float16 weights made float32 constants and every RELU fused into its producer."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    if len(model.subgraphs) != 1:
        raise DetectorQuantizeError(f"expected one subgraph, found {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    kept = []
    for op in graph.operators:
        if _code(model, op) == DEQUANTIZE:
            source, target = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
            data = model.buffers[source.buffer].data
            if source.type != FLOAT16 or data is None:
                raise DetectorQuantizeError("a DEQUANTIZE that is not a float16 constant: not a MediaPipe float "
                                            "BlazeFace graph")
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.frombuffer(bytes(data), np.float16).astype(np.float32).tobytes(), np.uint8)
            model.buffers.append(buffer)
            target.buffer = len(model.buffers) - 1  # outputs of DEQUANTIZE share the empty buffer 0: a new one
            model.buffers[source.buffer].data = None
            continue
        kept.append(op)
    producer = {int(t): op for op in kept for t in op.outputs}
    readers: dict[int, int] = {}
    for op in kept:
        for t in op.inputs:
            readers[int(t)] = readers.get(int(t), 0) + 1
    outputs = {int(t) for t in graph.outputs}
    fused = set()
    for op in kept:
        if _code(model, op) != RELU:
            continue
        feed = int(op.inputs[0])
        source = producer.get(feed)
        if (source is None or _code(model, source) not in (ADD, CONV_2D, DEPTHWISE_CONV_2D) or readers[feed] != 1
                or feed in outputs or source.builtinOptions.fusedActivationFunction != 0):
            continue
        source.builtinOptions.fusedActivationFunction = FUSED_RELU
        source.outputs[0] = op.outputs[0]
        fused.add(id(op))
    kept = [op for op in kept if id(op) not in fused]
    used = sorted({op.opcodeIndex for op in kept})  # the runtime refuses opcodes it has no kernel for, used or not
    renumber = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for op in kept:
        op.opcodeIndex = renumber[op.opcodeIndex]
    graph.operators = kept
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def drop_unused_buffers(flatbuffer: bytes) -> bytes:
    """Empty the buffers no tensor refers to (the calibrator keeps the float weights it replaced)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    used = {t.buffer for graph in model.subgraphs for t in graph.tensors}
    for index, buffer in enumerate(model.buffers):
        if index not in used:
            buffer.data = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def calibration_frames(videos: list[Path], step: int, data: Path | None, chips: int, seed: int) -> Iterator[np.ndarray]:
    """Video frames letterboxed to 640x480, then training chips as the device would see them."""
    from edge.bench.frames import every_nth_frame, letterbox

    for video in videos:
        try:
            for _, frame in every_nth_frame(video, step):
                yield letterbox(frame, FRAME)
        except ValueError as exc:
            raise DetectorQuantizeError(str(exc)) from None
    if data is None or chips == 0:
        return
    from train_host.data import load
    from train_host.through_detector import chip_frame

    rng = np.random.default_rng(seed)
    for file, task in (("fer2013/fer2013_Training.npz", "emotion"), ("utkface/utkface_gender_gray64_train.npz",
                                                                      "gender")):
        faces = load(data / file, task)
        allowed = np.arange(len(faces)) if faces.test_dup is None else np.flatnonzero(~faces.test_dup)
        for i in np.sort(rng.choice(allowed, size=min(chips, len(allowed)), replace=False)):
            yield chip_frame(faces.x[i])


def device_inputs(float_path: Path, frames: Iterator[np.ndarray], strides: list[int], per_layer: int) -> np.ndarray:
    """Each frame as the device feeds it to the model (letterbox, RGB, x / 127.5 - 1), stacked."""
    from edge.detectors.blazeface import BlazeFaceModel, BoxMapping

    model = BlazeFaceModel(float_path, strides, per_layer, BoxMapping())
    inputs = []
    for frame in frames:
        model.raw(frame, 0.5, 0.3)
        inputs.append(model.interpreter.get_tensor(model._in).copy())
    if not inputs:
        raise DetectorQuantizeError("no calibration frames (give --videos and/or --data)")
    return np.concatenate(inputs)


def head_nodes(flatbuffer: bytes) -> list[str]:
    """Names of the output heads' tensors: the last ``CONV_2D`` before each output and the reshapes and
    concatenations after it.

    They stay float. One int8 scale per output tensor cannot serve them: the
    short-range model concatenates two score heads whose calibrated ranges got
    int8 steps of 0.61 and 117, and the one step of the concatenation (117)
    turned every score into 0.5; float heads cost two 1x1 convolutions.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    producer = {int(t): op for op in graph.operators for t in op.outputs}
    names, todo, seen = [], [int(t) for t in graph.outputs], set()
    while todo:
        tensor = todo.pop()
        op = producer.get(tensor)
        if op is None or tensor in seen:
            continue
        seen.add(tensor)
        name = graph.tensors[tensor].name
        names.append(name.decode() if isinstance(name, bytes) else str(name))
        if _code(model, op) != CONV_2D:
            todo.extend(int(t) for t in op.inputs if int(t) in producer)
    return names


def quantize(float_bytes: bytes, inputs: np.ndarray) -> bytes:
    """The int8 flatbuffer (float32 input and output, float heads) of a float BlazeFace graph, calibrated on
    ``inputs``."""
    import tensorflow as tf
    from tensorflow.lite.python import convert
    from tensorflow.lite.python.optimize import calibrator

    graph = float32_graph(float_bytes)

    def feed():
        for x in inputs:
            yield [x[None]]

    calibrated = calibrator.Calibrator(graph).calibrate(feed)
    int8 = convert.mlir_quantize(calibrated, fully_quantize=False, input_data_type=tf.float32,
                                 output_data_type=tf.float32, denylisted_nodes=head_nodes(graph))
    return drop_unused_buffers(int8)


def invoke_ms(path: Path, runs: int = 60) -> float:
    """Median calling-thread CPU ms per invoke at 1 thread (a rough figure; ``edge.bench`` is the real one)."""
    from edge.frame.runtime import make_interpreter

    interpreter = make_interpreter(str(path), 1)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], np.float32))
    times = []
    for _ in range(runs):
        start = time.thread_time()
        interpreter.invoke()
        times.append(time.thread_time() - start)
    return 1000 * float(np.median(times))


def write_entry(models: Path, name: str, target: Path, float_entry: dict, calibration: dict, command: str) -> None:
    """Add (or replace) ``detectors.<name>_int8`` in the manifest; nothing else changes."""
    path = models / MANIFEST_NAME
    body = json.loads(path.read_text())
    entry = {"file": target.name, "sha256": sha256_file(target), "bytes": target.stat().st_size,
             "kind": float_entry["kind"], "what": f"{float_entry.get('what', name)}; int8 (float32 in and out)"}
    entry.update({k: float_entry[k] for k in ("input", "outputs", "anchors", "box_mapping", "box_mapping_by_task",
                                              "licence") if k in float_entry})
    entry["source"] = (f"{float_entry['file']} (sha256 {float_entry['sha256'][:12]}) quantized to int8 here: "
                       "float16 weights made float32, RELUs fused, TFLite's calibrator, per-channel int8 weights "
                       "and int8 activations, output heads float")
    entry["calibration"] = calibration
    entry["command"] = command
    detectors = body["detectors"]
    ordered = {}
    for key, value in detectors.items():
        if key != f"{name}_int8":
            ordered[key] = value
        if key == name:
            ordered[f"{name}_int8"] = entry
    body["detectors"] = ordered
    write_atomic(path, (json.dumps(body, indent=2) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantize.detector", description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default="blazeface_full",
                        help="the manifest's float BlazeFace entry (default blazeface_full, the one the device "
                             "runs as int8; blazeface_short converts too, but its int8 version is not used)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--videos", help="a video file or a folder of them (../shared/media/videos)")
    parser.add_argument("--video-step", type=int, default=10, help="every Nth frame of each video (default 10)")
    parser.add_argument("--data", help="../shared/data: FER-2013 Training and UTKFace train chips")
    parser.add_argument("--chips", type=int, default=100, help="training chips per dataset (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="the int8 file (default: <models>/<float file>_int8.tflite)")
    parser.add_argument("--write", action="store_true", help="add detectors.<detector>_int8 to the manifest")
    args = parser.parse_args(argv)
    command = ("python -m quantize.detector " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    from train_host.data import DataError

    try:
        if args.video_step < 1 or args.chips < 0:
            raise DetectorQuantizeError("--video-step must be at least 1 and --chips at least 0")
        models = Path(args.models)
        manifest = Manifest.load(models)
        entry = manifest.detector_entry(args.detector)
        if entry.get("kind") != "blazeface" or args.detector.endswith("_int8"):
            raise DetectorQuantizeError(f"--detector {args.detector}: not a float BlazeFace entry")
        float_path = manifest.verify_detector(args.detector)
        target = Path(args.out) if args.out else float_path.with_name(f"{float_path.stem}_int8.tflite")
        if args.write and target.resolve().parent != models.resolve():
            raise DetectorQuantizeError(f"--write needs the int8 file in {models} (--out {target})")
        listed = {(models / str(e.get("file", ""))).resolve() for e in manifest.detectors.values()}
        if not args.write and target.resolve() in listed:
            raise DetectorQuantizeError(f"{target} is a model the manifest lists: --write replaces it together "
                                        "with its entry; a trial run needs another --out")
        videos = []
        if args.videos:
            where = Path(args.videos)
            videos = sorted(p for p in where.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov")) \
                if where.is_dir() else [where]
            if not videos or not all(v.is_file() for v in videos):
                raise DetectorQuantizeError(f"--videos {where}: no video files")
        data = Path(args.data) if args.data else None
        anchors = entry.get("anchors") or {}
        if "strides" not in anchors or "per_layer" not in anchors:
            raise DetectorQuantizeError(f"detectors.{args.detector}: no anchors in the manifest")
        frames = calibration_frames(videos, args.video_step, data, args.chips, args.seed)
        inputs = device_inputs(float_path, frames, [int(s) for s in anchors["strides"]], int(anchors["per_layer"]))
        print(f"calibrating {float_path.name} on {len(inputs)} frames")
        int8 = quantize(float_path.read_bytes(), inputs)
        write_atomic(target, int8)
        print(f"wrote {target} ({len(int8):,} bytes; float {float_path.stat().st_size:,}); one invoke at 1 thread, "
              f"calling-thread CPU: int8 {invoke_ms(target):.2f} ms, float {invoke_ms(float_path):.2f} ms")
        if args.write:
            calibration = {"frames": int(len(inputs)), "videos": [v.name for v in videos],
                           "video_step": args.video_step, "chips_per_dataset": args.chips if data else 0,
                           "data": ["fer2013 Training (no test copies)", "utkface train"] if data else [],
                           "seed": args.seed}
            write_entry(models, args.detector, target, entry, calibration, command)
            print(f"added detectors.{args.detector}_int8 to {models / MANIFEST_NAME}, with the float model's box "
                  f"mappings; fit its own: python -m train_host.fit_box_mapping --data ../shared/data --media "
                  f"../shared/media --write --detectors {args.detector}_int8, then the same with --per-task")
    except (DetectorQuantizeError, DataError, ModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
