"""A BlazeFace ``.tflite`` at other input shapes: the same weights, the graph's fixed sizes rewritten.

    python -m quantize.detector_shapes --detector blazeface_full_int8 --shapes 160x192,192x160 --write

The full-range graph is convolutional up to its outputs but for three
``RESIZE_BILINEAR`` ops (its feature pyramid's up-sampling), whose output sizes
are constants for a 192x192 input (12x12, 24x24, 48x48): the runtime refuses
``resize_tensor_input`` on it ("failed to reshape"). Here those constants are
rewritten for the new input (160x192: 10x12, 20x24, 40x48), the input is given
the new shape and every other tensor's shape is re-inferred by TensorFlow's own
interpreter (no delegate) and written back, so the file loads at its new shape
like the original at its own. Weights and quantization parameters are untouched
(the int8 file's ranges were calibrated per tensor, not per pixel), so on the
same pixels the outputs are the original's; only the letterbox padding around
the picture is smaller. A 640x480 frame fills 192x144 of the 192x192 square:
at 160x192 (both sides must be multiples of the coarsest stride, 32) the same
scale costs 17% fewer pixels per invoke.

``--write`` lists each file under the entry's ``graphs`` (file, sha256, bytes,
height, width); :func:`edge.detectors.blazeface.load_model` loads them with the
square one and runs a frame at the graph that holds it at the square graph's
scale with the fewest pixels (:meth:`~edge.detectors.blazeface.BlazeFaceModel.shape_for`).
The box mappings stay the entry's: boxes are mapped in the frame's pixels.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from edge.frame.manifest import MANIFEST_NAME, Manifest, ModelError, default_models_dir, sha256_file
from quantize.convert import write_atomic
from quantize.detector import DetectorQuantizeError, _code

RESIZE_BILINEAR = 23  # TFLite builtin operator code (tensorflow/lite/schema/schema.fbs)


def reshape_graph(flatbuffer: bytes, height: int, width: int) -> bytes:
    """``flatbuffer`` (one float32 [1, H, W, 3] input) rewritten for a [1, ``height``, ``width``, 3] input."""
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    if len(model.subgraphs) != 1 or len(model.subgraphs[0].inputs) != 1:
        raise DetectorQuantizeError("expected one subgraph with one input")
    graph = model.subgraphs[0]
    source = graph.tensors[graph.inputs[0]]
    shape = [int(v) for v in source.shape]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise DetectorQuantizeError(f"input {shape} is not [1, height, width, 3]")
    old_h, old_w = shape[1], shape[2]
    for op in graph.operators:
        if _code(model, op) != RESIZE_BILINEAR:
            continue
        size_tensor = graph.tensors[op.inputs[1]]
        data = model.buffers[size_tensor.buffer].data
        if data is None:
            raise DetectorQuantizeError("a RESIZE_BILINEAR whose size is not a constant")
        size = np.frombuffer(bytes(data), np.int32)
        if size[0] * height % old_h or size[1] * width % old_w:
            raise DetectorQuantizeError(f"{width}x{height}: the {size[1]}x{size[0]} up-sampling of a "
                                        f"{old_w}x{old_h} input has no whole size there (use multiples of 32)")
        new = np.array([size[0] * height // old_h, size[1] * width // old_w], np.int32)
        model.buffers[size_tensor.buffer].data = np.frombuffer(new.tobytes(), np.uint8)
    source.shape = np.array([1, height, width, 3], np.int32)
    patched = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    try:
        interpreter = tf.lite.Interpreter(
            model_content=patched,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise DetectorQuantizeError(f"{width}x{height}: the graph does not take it "
                                    f"({str(exc).splitlines()[0]})") from None
    shapes = {int(d["index"]): d["shape"] for d in interpreter.get_tensor_details()}
    for index, tensor in enumerate(graph.tensors):
        if index in shapes and model.buffers[tensor.buffer].data is None:  # activations, not constants
            tensor.shape = np.array(shapes[index], np.int32)
            if tensor.shapeSignature is not None:
                tensor.shapeSignature = np.array(shapes[index], np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def write_graphs(models: Path, name: str, graphs: list[dict], command: str) -> None:
    """Set ``detectors.<name>.graphs`` in the manifest (replacing the shapes given); nothing else changes."""
    path = models / MANIFEST_NAME
    body = json.loads(path.read_text())
    entry = body["detectors"][name]
    given = {(g["height"], g["width"]) for g in graphs}
    kept = [g for g in entry.get("graphs", []) if (g.get("height"), g.get("width")) not in given]
    entry["graphs"] = sorted(kept + [dict(g, command=command) for g in graphs],
                             key=lambda g: (g["height"], g["width"]))
    write_atomic(path, (json.dumps(body, indent=2) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantize.detector_shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", default="blazeface_full_int8", help="the manifest's BlazeFace entry")
    parser.add_argument("--shapes", default="160x192,192x160",
                        help="HEIGHTxWIDTH list (default 160x192,192x160: 4:3 landscape and portrait frames)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--write", action="store_true", help="write the files into --models and list them in "
                        "the entry's graphs (else into --out)")
    parser.add_argument("--out", help="folder for a trial run's files (default: the current folder)")
    args = parser.parse_args(argv)
    command = ("python -m quantize.detector_shapes " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    try:
        shapes = []
        for item in filter(None, args.shapes.split(",")):
            match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", item)
            height, width = (int(match[1]), int(match[2])) if match else (0, 0)
            if not height or not width or height % 32 or width % 32:
                raise DetectorQuantizeError(f"--shapes {item!r}: expected HEIGHTxWIDTH, each a multiple of 32 "
                                            "(e.g. 160x192)")
            shapes.append((height, width))
        if not shapes:
            raise DetectorQuantizeError("--shapes: none given")
        models = Path(args.models)
        manifest = Manifest.load(models)
        entry = manifest.detector_entry(args.detector)
        if entry.get("kind") != "blazeface":
            raise DetectorQuantizeError(f"--detector {args.detector}: not a BlazeFace entry")
        source = manifest.verify_detector(args.detector)
        folder = models if args.write else Path(args.out or ".")
        graphs = []
        for height, width in shapes:
            target = folder / f"{source.stem}_{height}x{width}.tflite"
            write_atomic(target, reshape_graph(source.read_bytes(), height, width))
            graphs.append({"file": target.name, "sha256": sha256_file(target), "bytes": target.stat().st_size,
                           "height": height, "width": width})
            print(f"wrote {target} ({height}x{width}, from {source.name})")
        if args.write:
            write_graphs(models, args.detector, graphs, command)
            print(f"listed them under detectors.{args.detector}.graphs in {models / MANIFEST_NAME}")
    except (DetectorQuantizeError, ModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
