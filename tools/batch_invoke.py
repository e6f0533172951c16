"""Measure one batch-2 invoke against two batch-1 invokes for the mirror pair (issue 30, item 2).

    python -m tools.batch_invoke --model models/emotion_mini_xception_int8.tflite --rounds 2000

The device's mirror averaging runs the face and its mirror image as two
``invoke`` calls on a [1, 64, 64, 1] input. ai-edge-litert can resize the input
to [2, 64, 64, 1] (``resize_tensor_input`` + ``allocate_tensors``) and run both
in one call. This prints the median and mean time of each way per face (both
images, including ``set_tensor``/``get_tensor``), measured interleaved round by
round so a busy machine slows both alike, and checks the batch gives the same
int8 outputs. The classifier now runs the pair as one batch-2 invoke (:meth:`edge.frame.classifier.Classifier.predict`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edge.frame.runtime import make_interpreter


def measure(model: Path, rounds: int, threads: int, seed: int = 0) -> dict:
    """Per-face seconds (median, mean) of two batch-1 invokes and of one batch-2 invoke, and output equality."""
    single = make_interpreter(str(model), threads)
    batch = make_interpreter(str(model), threads)
    inp = single.get_input_details()[0]
    shape = [int(v) for v in inp["shape"]]
    batch.resize_tensor_input(batch.get_input_details()[0]["index"], [2] + shape[1:])
    batch.allocate_tensors()
    b_in, b_out = batch.get_input_details()[0], batch.get_output_details()[0]
    s_out = single.get_output_details()[0]
    dtype = np.dtype(inp["dtype"])
    rng = np.random.default_rng(seed)
    low, high = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else (-1.0, 1.0)

    def two_invokes(face: np.ndarray, mirror: np.ndarray) -> np.ndarray:
        outs = []
        for tensor in (face, mirror):
            single.set_tensor(inp["index"], tensor)
            single.invoke()
            outs.append(single.get_tensor(s_out["index"])[0].copy())
        return np.stack(outs)

    def one_batch(face: np.ndarray, mirror: np.ndarray) -> np.ndarray:
        batch.set_tensor(b_in["index"], np.concatenate([face, mirror]))
        batch.invoke()
        return batch.get_tensor(b_out["index"]).copy()

    times: dict[str, list[float]] = {"two_invokes": [], "batch2": []}
    same = 0
    for r in range(rounds):
        face = rng.integers(low, high, size=shape, endpoint=True).astype(dtype) if dtype.kind in "iu" else (
            rng.uniform(low, high, size=shape).astype(dtype))
        mirror = np.ascontiguousarray(face[:, :, ::-1])
        order = (("two_invokes", two_invokes), ("batch2", one_batch))
        results = {}
        for name, run in order if r % 2 == 0 else order[::-1]:  # alternate which goes first
            start = time.perf_counter()
            results[name] = run(face, mirror)
            times[name].append(time.perf_counter() - start)
        same += bool(np.array_equal(results["two_invokes"], results["batch2"]))
    warm = slice(min(50, rounds // 10), None)  # the first calls pay for caches and XNNPACK set-up
    figures = {name: {"median_ms": round(1e3 * float(np.median(t[warm])), 4),
                      "mean_ms": round(1e3 * float(np.mean(t[warm])), 4)} for name, t in times.items()}
    return {"model": str(model), "threads": threads, "rounds": rounds, "identical_outputs": same, **figures,
            "batch2_over_two_invokes_median": round(figures["batch2"]["median_ms"]
                                                    / figures["two_invokes"]["median_ms"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.batch_invoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/emotion_mini_xception_int8.tflite")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.rounds < 20 or not Path(args.model).is_file():
        print(f"error: need --rounds >= 20 and an existing --model (got {args.rounds}, {args.model})", file=sys.stderr)
        return 2
    result = measure(Path(args.model), args.rounds, args.threads)
    two, one = result["two_invokes"], result["batch2"]
    print(f"{result['model']}, {result['threads']} thread(s), {result['rounds']} rounds: two invokes "
          f"{two['median_ms']:.3f} ms median ({two['mean_ms']:.3f} mean), one batch-2 invoke "
          f"{one['median_ms']:.3f} ms ({one['mean_ms']:.3f}) per face: "
          f"{result['batch2_over_two_invokes_median']:.2f}x; identical outputs in "
          f"{result['identical_outputs']} of {result['rounds']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
