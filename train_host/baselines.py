"""The bench's TensorFlow baselines: the paper's own Keras pipeline and the ``fer`` package.

    python -m train_host.baselines --which paper --frames-file frames.npy --warmup 5 \
        --paper-models ../shared/anchors/oarriaga --cascade models/haarcascade_frontalface_default.xml
    (then, on stdin: "run 20" ... "done")

``python -m edge.bench`` launches this module once per baseline, in a process
of its own, so TensorFlow never enters the bench process (nor its RSS and CPU
figures) and ``edge/`` stays free of TensorFlow imports. It reads the same
memory-mapped frames as every other row and times them with the same loop,
taking turns with the other rows (:func:`edge.bench.loop.serve`); its last
line is its row as JSON. A baseline that cannot run here (no TensorFlow, no
``fer``, no paper models) prints ``{"available": false, "reason": ...}`` at
once and exits 0: the bench shows the row as "not available (reason)".

The paper's pipeline is that of its published demo
(oarriaga/face_classification ``src/video_emotion_gender_demo.py`` and
``src/utils/inference.py``): gray frame, ``detectMultiScale(gray, 1.3, 5)`` at
full resolution, crops grown by the demo's offsets (emotion (20, 40), gender
(30, 60) pixels), ``cv2.resize`` to the model's input, ``x / 255``, then
``(x - 0.5) * 2``, and one ``model.predict`` per face and model. One change:
the demo slices ``gray[y - 40 : ...]`` without clamping, so a face near the
top or left edge gets a wrapped or empty crop and is silently skipped; here
the crop is clamped at the frame border so every detected face is classified,
as in our pipeline (skipping faces would make the baseline look faster by
doing less). ``fer`` runs as its users run it: ``FER(mtcnn=False)`` with its
defaults and ``detect_emotions(frame)`` (emotion only, no gender).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.loop import Loop, LoopResult, ProcessFn, serve

PAPER_EMOTION = "fer2013_mini_XCEPTION.102-0.66.hdf5"
PAPER_GENDER = "gender_mini_XCEPTION.21-0.95.hdf5"
PAPER_EMOTION_OFFSETS = (20, 40)
PAPER_GENDER_OFFSETS = (30, 60)
PAPER_SCALE_FACTOR, PAPER_MIN_NEIGHBORS = 1.3, 5
BASELINES = ("paper", "paper-call", "fer")


class Unavailable(RuntimeError):
    """This baseline cannot run on this machine; the message is the reason shown in the bench."""


def _keras() -> Any:
    try:
        import keras
    except ImportError:
        raise Unavailable("TensorFlow/Keras is not installed (pip install -e '.[host]')") from None
    return keras


def paper_crop(gray: np.ndarray, box: tuple[int, int, int, int], offsets: tuple[int, int]) -> np.ndarray:
    """The demo's ``apply_offsets`` crop, clamped at the frame border."""
    x, y, w, h = (int(v) for v in box)
    dx, dy = offsets
    return gray[max(y - dy, 0):y + h + dy, max(x - dx, 0):x + w + dx]


def paper_input(face: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The demo's preprocessing: ``cv2.resize``, ``x / 255``, ``(x - 0.5) * 2``, batch and channel axes."""
    import cv2

    x = cv2.resize(face, (size[1], size[0])).astype("float32") / 255.0
    x = (x - 0.5) * 2.0
    return x[None, :, :, None]


def paper_pipeline(models_dir: Path, cascade_path: Path, direct_call: bool = False) -> tuple[ProcessFn, dict]:
    """The paper's pipeline as a loop step; ``direct_call`` uses ``model(x)`` instead of ``model.predict``."""
    import cv2

    paths = [models_dir / PAPER_EMOTION, models_dir / PAPER_GENDER]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise Unavailable(f"no {', '.join(missing)} in {models_dir} (give --paper-models DIR)")
    keras = _keras()
    emotion, gender = (keras.models.load_model(str(p), compile=False) for p in paths)
    for model, path in zip((emotion, gender), paths):
        if model.input_shape[-1] != 1:
            raise Unavailable(f"{path.name} expects {model.input_shape[-1]} channels; the demo's models are gray")
    e_size, g_size = tuple(emotion.input_shape[1:3]), tuple(gender.input_shape[1:3])
    cascade = cv2.CascadeClassifier(str(cascade_path))
    if cascade.empty():
        raise Unavailable(f"{cascade_path}: not a loadable Haar cascade")

    def run(model: Any, x: np.ndarray) -> np.ndarray:
        if direct_call:
            return np.asarray(model(x, training=False))
        return model.predict(x, verbose=0)

    def process(frame: np.ndarray, _index: int) -> tuple[dict[str, float], int]:
        t0 = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        t1 = time.perf_counter()
        found = cascade.detectMultiScale(gray, PAPER_SCALE_FACTOR, PAPER_MIN_NEIGHBORS)
        boxes = [(int(x), int(y), int(w), int(h)) for x, y, w, h in np.asarray(found).reshape(-1, 4)]
        t2 = time.perf_counter()
        e_in = [paper_input(paper_crop(gray, b, PAPER_EMOTION_OFFSETS), e_size) for b in boxes]
        g_in = [paper_input(paper_crop(gray, b, PAPER_GENDER_OFFSETS), g_size) for b in boxes]
        t3 = time.perf_counter()
        e_out = [run(emotion, x) for x in e_in]
        t4 = time.perf_counter()
        g_out = [run(gender, x) for x in g_in]
        t5 = time.perf_counter()
        labels = [(int(np.argmax(e)), int(np.argmax(g))) for e, g in zip(e_out, g_out)]
        t6 = time.perf_counter()
        ms = [(b - a) * 1e3 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6), (t0, t6))]
        return dict(zip(("convert", "detect", "crop", "emotion", "gender", "track", "total"), ms)), len(labels)

    settings = {"detector": f"detectMultiScale(gray, {PAPER_SCALE_FACTOR}, {PAPER_MIN_NEIGHBORS}), full resolution",
                "emotion_offsets": PAPER_EMOTION_OFFSETS, "gender_offsets": PAPER_GENDER_OFFSETS,
                "inference": "model(x, training=False)" if direct_call else "model.predict(x) per face",
                "models": [p.name for p in paths],
                "bytes": {"emotion": paths[0].stat().st_size, "gender": paths[1].stat().st_size}}
    return process, settings


def fer_pipeline() -> tuple[ProcessFn, dict]:
    """``fer``'s ``FER(mtcnn=False).detect_emotions(frame)`` with the package's defaults."""
    try:
        from fer.fer import FER
    except ImportError as exc:
        raise Unavailable(f"fer is not installed ({exc.name} missing; pip install --no-deps fer)") from None
    detector = FER(mtcnn=False)

    def process(frame: np.ndarray, _index: int) -> tuple[dict[str, float], int]:
        start = time.perf_counter()
        found = detector.detect_emotions(frame)
        return {"total": (time.perf_counter() - start) * 1e3}, len(found)

    return process, {"detector": "FER(mtcnn=False) defaults: Haar 1.1/5, minSize 50, full resolution",
                     "inference": "detect_emotions(frame): emotion only, no gender"}


def versions() -> dict[str, str]:
    """Versions of what the baselines ran on (only packages already imported)."""
    from importlib import metadata

    out = {}
    for module, dist in (("tensorflow", "tensorflow-cpu"), ("keras", "keras"), ("fer", "fer")):
        if module in sys.modules:
            try:
                out[module] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                out[module] = str(getattr(sys.modules[module], "__version__", "?"))
    return out


def build(which: str, args: argparse.Namespace) -> tuple[ProcessFn, dict]:
    builders: dict[str, Callable[[], tuple[ProcessFn, dict]]] = {
        "paper": lambda: paper_pipeline(Path(args.paper_models), Path(args.cascade)),
        "paper-call": lambda: paper_pipeline(Path(args.paper_models), Path(args.cascade), direct_call=True),
        "fer": fer_pipeline,
    }
    return builders[which]()


def serve_baseline(args: argparse.Namespace) -> None:
    """Serve the bench's turns with this baseline, or print why it is not available."""
    row: dict[str, Any] = {"name": args.which, "available": False}
    try:
        process, settings = build(args.which, args)
        store = np.load(args.frames_file, mmap_mode="r")
    except Unavailable as exc:
        print(json.dumps({**row, "reason": str(exc)}), flush=True)
        return
    except Exception as exc:  # a baseline that breaks must not take the bench down with it
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        print(json.dumps({**row, "reason": reason}), flush=True)
        return

    def finish(result: LoopResult) -> dict[str, Any]:
        return {**row, **result.to_json(), "available": True, "settings": settings, "versions": versions(),
                "threads": {"cpus": os.cpu_count(), "tensorflow": "default (all cores)"}}

    serve(Loop(process, store, all_frames=not args.stream), max(0, args.warmup), finish)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.baselines", description=__doc__.split("\n\n")[0])
    parser.add_argument("--which", choices=BASELINES, required=True)
    parser.add_argument("--frames-file", required=True, help=".npy of (N, H, W, 3) uint8 BGR frames")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--stream", action="store_true", help="frames of one video/camera stream")
    parser.add_argument("--paper-models", default="../shared/anchors/oarriaga", help="folder with the paper's .hdf5")
    parser.add_argument("--cascade", default="models/haarcascade_frontalface_default.xml")
    args = parser.parse_args(argv)
    serve_baseline(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
