"""The compute floor: how many multiply-accumulates a model needs and how fast this CPU can do them.

MACs are counted from the TFLite model itself (shapes of each op's output and
weight tensors, as the interpreter reports them), so the figure is that of the
file that ships, not of a Keras summary:

* ``CONV_2D``: out_h * out_w * out_c * k_h * k_w * in_c (weights [out_c, k_h, k_w, in_c])
* ``DEPTHWISE_CONV_2D``: out_h * out_w * out_c * k_h * k_w (weights [1, k_h, k_w, out_c])
* ``FULLY_CONNECTED``: rows * out * in (weights [out, in])

Other ops (pooling, adds, softmax) are memory-bound and not counted.

The "peak" is measured, not taken from a datasheet: one large FULLY_CONNECTED
op (int8 or float32, built in memory with the flatbuffer schema that
ai_edge_litert ships) timed on the same runtime at 1 thread. That is the GEMM
throughput the runtime's kernels reach on this CPU, so "the model runs at X% of
peak" says how much of the classifier time is real arithmetic and how much is
per-op overhead, small tensors and memory traffic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.frame.runtime import make_interpreter

COUNTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
PEAK_SHAPE = (128, 512, 512)  # rows, inputs, outputs: weights fit in L2, 33.5 M MACs per invoke


class FloorUnavailable(RuntimeError):
    """The measurement cannot be made with the installed runtime; the message says why."""


def count_macs(model_path: str | Path) -> dict[str, int]:
    """Multiply-accumulates per invoke of ``model_path``, by op type (and ``total``)."""
    interpreter = make_interpreter(str(model_path), 1)
    try:
        ops = interpreter._get_ops_details()  # noqa: SLF001 - the only op-level view the runtime offers
    except AttributeError:
        raise FloorUnavailable("this TFLite runtime has no op details (_get_ops_details)") from None
    shapes = {t["index"]: [int(v) for v in t["shape"]] for t in interpreter.get_tensor_details()}
    counts = dict.fromkeys(COUNTED_OPS, 0)
    for op in ops:
        name = op.get("op_name", "")
        if name not in counts:
            continue
        inputs = [int(i) for i in op["inputs"] if int(i) >= 0]
        outputs = [int(i) for i in op["outputs"] if int(i) >= 0]
        if len(inputs) < 2 or not outputs:
            continue
        counts[name] += op_macs(name, shapes.get(outputs[0], []), shapes.get(inputs[1], []))
    counts["total"] = sum(counts[name] for name in COUNTED_OPS)
    return counts


def op_macs(op_name: str, out_shape: list[int], weight_shape: list[int]) -> int:
    """MACs of one op from its output and weight shapes (0 when the shapes are not what the op implies)."""
    if not out_shape or not weight_shape:
        return 0
    if op_name == "CONV_2D" and len(out_shape) == 4 and len(weight_shape) == 4:
        _, kh, kw, cin = weight_shape
        return int(np.prod(out_shape)) * kh * kw * cin
    if op_name == "DEPTHWISE_CONV_2D" and len(out_shape) == 4 and len(weight_shape) == 4:
        return int(np.prod(out_shape)) * weight_shape[1] * weight_shape[2]
    if op_name == "FULLY_CONNECTED" and len(weight_shape) == 2:
        return int(np.prod(out_shape)) * weight_shape[1]
    return 0


def _fc_model(dtype: str, rows: int, inputs: int, outputs: int) -> bytes:
    """A TFLite flatbuffer holding one FULLY_CONNECTED op (random weights)."""
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:
        raise FloorUnavailable(f"cannot build the peak model ({exc.name} is not installed)") from None

    rng = np.random.default_rng(0)
    if dtype == "int8":
        weights: np.ndarray = rng.integers(-127, 128, size=(outputs, inputs), dtype=np.int8)
        bias: np.ndarray = np.zeros(outputs, np.int32)
        kind, bias_kind = schema.TensorType.INT8, schema.TensorType.INT32
        # input, weights, bias (= in * w), output
        quant: list[tuple[float, int] | None] = [(0.02, 0), (0.01, 0), (0.0002, 0), (0.5, 0)]
    else:
        weights = rng.standard_normal((outputs, inputs)).astype(np.float32)
        bias = np.zeros(outputs, np.float32)
        kind = bias_kind = schema.TensorType.FLOAT32
        quant = [None] * 4

    def buffer(data: np.ndarray | None = None) -> Any:
        buf = schema.BufferT()
        if data is not None:
            buf.data = np.frombuffer(data.tobytes(), np.uint8)
        return buf

    def tensor(name: str, shape: tuple[int, ...], ttype: int, buf: int, q: tuple[float, int] | None) -> Any:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), ttype, buf
        if q is not None:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [q[0]], [q[1]]
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors = [tensor("x", (rows, inputs), kind, 0, quant[0]), tensor("w", (outputs, inputs), kind, 1, quant[1]),
                     tensor("b", (outputs,), bias_kind, 2, quant[2]), tensor("y", (rows, outputs), kind, 0, quant[3])]
    graph.inputs, graph.outputs, graph.operators = [0], [3], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [buffer(), buffer(weights), buffer(bias)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@dataclass(frozen=True)
class Peak:
    """Measured multiply-accumulate throughput of the runtime on this CPU at one thread."""

    dtype: str
    macs_per_s: float
    method: str


def measure_peak(dtype: str, seconds: float = 0.3) -> Peak:
    """Time the one-op FULLY_CONNECTED model; the best of many invokes (the achievable rate)."""
    from edge.frame.runtime import interpreter_class, quiet_notices

    rows, inputs, outputs = PEAK_SHAPE
    interpreter_cls, runtime = interpreter_class()
    try:
        with quiet_notices():
            interpreter = interpreter_cls(model_content=_fc_model(dtype, rows, inputs, outputs), num_threads=1)
            interpreter.allocate_tensors()
    except FloorUnavailable:
        raise
    except Exception as exc:  # the runtime rejects a model it cannot run
        raise FloorUnavailable(f"{runtime} cannot run the peak model ({str(exc).splitlines()[0]})") from None
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.ones((rows, inputs), dtype=detail["dtype"]))
    for _ in range(3):
        interpreter.invoke()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    runs = 0
    while runs < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        interpreter.invoke()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return Peak(dtype, rows * inputs * outputs / best,
                f"{dtype} FULLY_CONNECTED {rows}x{inputs} @ {inputs}x{outputs}, {runtime}, 1 thread, best of {runs}")


def time_invoke(model_path: str | Path, threads: int, repeats: int = 30) -> float:
    """Median seconds of one ``invoke`` of the model on a constant input (no pre/post-processing)."""
    interpreter = make_interpreter(str(model_path), threads)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
    for _ in range(3):
        interpreter.invoke()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))
