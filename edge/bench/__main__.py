"""``python -m edge.bench``: where the time goes, against the paper and the peers, measured side by side.

    python -m edge.bench                                  # samples/ letterboxed to 640x480
    python -m edge.bench --source ../shared/media --manifest ../shared/media/manifest.csv --frames 200
    python -m edge.bench --source clip.mp4 --variants all --json out/bench.json
    python -m edge.bench --source camera                  # on a Pi: picamera2, else OpenCV camera 0

Every row (each of our settings, the paper's Keras pipeline, ``fer``) runs in a
process of its own over the very same prepared frames with the same loop
(:mod:`edge.bench.loop`), after the same warm-up. The report gives per-stage
median/p90/p99, fps, CPU %, peak RSS, face recall against a manifest, model
size, MACs and the share of the CPU's measured peak the classifiers reach, and
the speed ratios against the paper's pipeline, ``fer`` and the paper's
published 0.22 s per frame. See docs/bench.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench.floor import FloorUnavailable, measure_peak
from edge.bench.frames import Inputs, load_inputs, match_expected, parse_size, read_manifest, recall
from edge.bench.loop import summarize
from edge.bench.report import render, write_chart
from edge.bench.workers import run_rows
from edge.cli import add_settings_options, settings_from, settings_of, settings_to_json
from edge.detectors import BlazeFaceSettings, DetectorSettings, make_detector
from edge.frame.manifest import Manifest, ModelError, default_models_dir, default_samples_dir
from edge.frame.pipeline import ModelSettings
from edge.frame.runtime import RuntimeMissing, interpreter_class
from edge.frame.stats import PAPER_SECONDS_PER_FRAME
from edge.inputs.sources import SourceError
from edge.settings import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent
# samples/ in a checkout; after pip install, the sample photos the wheel ships (setup.py's SHIPPED_SAMPLES)
DEFAULT_SOURCE = default_samples_dir()
DEFAULT_PAPER_MODELS = ROOT.parent / "shared" / "anchors" / "oarriaga"
DOWNSCALED_WIDTH = 320
ALL_THREADS = (1, 2, 4)
# The cascade settings the bench compares detection against (full resolution, no equalisation).
REFERENCE_CASCADES = (("cascade 1.1/5/min30", 1.1, 5, 30, "paper's default cascade settings (media manifest)"),
                      ("cascade 1.3/5", 1.3, 5, 0, "the paper's code: detectMultiScale(gray, 1.3, 5)"))


class BenchError(RuntimeError):
    """Bad input: printed as one line, exit status 2."""


@dataclass(frozen=True)
class Variant:
    """One of our rows: the settings its process builds the pipeline from, ``[models]`` and ``[detector]``.

    The bench declares none of its own: a row is a :class:`ModelSettings` and a
    :class:`DetectorSettings`, made from the command line's and changed by a
    ``--variants`` spec (:func:`parse_spec`), so a new setting reaches the bench
    without a field here.
    """

    models: ModelSettings
    detector: DetectorSettings

    @property
    def variant(self) -> str:
        return self.models.variant

    @property
    def threads(self) -> int:
        return self.models.threads

    @property
    def flip_average(self) -> str:
        return self.models.flip_average

    @property
    def detect_width(self) -> int:
        return self.detector.detect_width

    @property
    def label(self) -> str:
        """``int8 t2 blazeface dt2``, ``int8 t2 haar``: the backend, then what differs from the shipped settings.

        BlazeFace rows add the whole-frame model's interpreter threads (``dt2``: a
        product choice, the classifiers' are ``t2``), the model where it is not
        the shipped one, ``small`` (``small_faces``), ``ns80`` (``near_side``) and
        ``square`` (``aspect_graphs`` off) where they differ;
        Haar rows (paper mode) ``w320`` for a detect width, and scale factor,
        neighbours, min size and equalisation where they differ from the reference ones.
        """
        shipped, d = DetectorSettings(), self.detector
        flip = "" if self.flip_average == "auto" else f" flip={self.flip_average}"
        if self.models.stream_flip != ModelSettings().stream_flip:
            flip += f" sflip={self.models.stream_flip}"
        if self.models.joint != ModelSettings().joint:
            flip += f" joint={int(self.models.joint)}"
        if d.backend != "haar":
            b, ship = d.blazeface, shipped.blazeface
            extra = "".join((f" dt{b.threads}", "" if b.model == ship.model else f" {b.model}",
                             " small" if b.small_faces else "",
                             "" if b.near_side == ship.near_side else f" ns{b.near_side}",
                             "" if b.near_threads == ship.near_threads else f" nt{b.near_threads}",
                             "" if b.aspect_graphs or not ship.aspect_graphs else " square"))
            return f"{self.variant} t{self.threads} {d.backend}{extra}{flip}"
        width = "" if self.detect_width == 0 else f" w{self.detect_width}"
        extra = "".join((f" sf{d.scale_factor:g}" if d.scale_factor != shipped.scale_factor else "",
                         f" n{d.min_neighbors}" if d.min_neighbors != shipped.min_neighbors else "",
                         f" min{d.min_size}" if d.min_size != shipped.min_size else "",
                         f" eq={d.equalize}" if d.equalize != shipped.equalize else "", flip))
        return f"{self.variant} t{self.threads} haar{width}{extra}"

    def settings(self, models_dir: str) -> tuple[ModelSettings, DetectorSettings]:
        """The row's validated settings, as its own process will build them (``from_mapping``)."""
        return settings_of({"models": asdict(replace(self.models, dir=models_dir)), "detector": asdict(self.detector)})

    @property
    def shipped(self) -> bool:
        """The settings a fresh install runs: ModelSettings() and DetectorSettings() (any models folder)."""
        return (replace(self.models, dir=""), self.detector) == (ModelSettings(), DetectorSettings())


SPEC = re.compile(r"([\w.-]+):(\d+):(\d+)((?::\w+=[\w.]+)*)")
SPEC_KEYS = {"sf": ("scale_factor", float), "n": ("min_neighbors", int), "min": ("min_size", int),
             "eq": ("equalize", str), "det": ("backend", str), "flip": ("flip_average", str),
             "sflip": ("stream_flip", str), "joint": ("joint", int),
             "bm": ("blazeface_model", str), "small": ("small_faces", int), "ns": ("near_side", int),
             "ag": ("aspect_graphs", int), "dt": ("blazeface_threads", int), "nt": ("near_threads", int)}
BLAZEFACE_KEYS = (("model", "blazeface_model"), ("small_faces", "small_faces"), ("near_side", "near_side"),
                  ("aspect_graphs", "aspect_graphs"), ("threads", "blazeface_threads"),
                  ("near_threads", "near_threads"))  # [detector.blazeface]
SPEC_HELP = ("VARIANT:THREADS:WIDTH[:sf=SCALE_FACTOR][:n=MIN_NEIGHBORS][:min=MIN_SIZE][:eq=hist|clahe|none]"
             "[:det=haar|blazeface][:bm=full|full_float32|short][:small=0|1][:ns=NEAR_SIDE][:ag=0|1][:dt=DETECTOR_THREADS]"
             "[:nt=NEAR_THREADS]"
             "[:flip=auto|none|emotion|gender|both][:sflip=alternate|both][:joint=0|1], "
             "e.g. int8:1:0,float32:2:0,int8:1:0:det=haar,int8:1:320:det=haar:sf=1.3:n=3,int8:1:0:small=1,"
             "int8:1:0:bm=full_float32,int8:1:0:flip=emotion,int8:2:0:joint=0 "
             "(WIDTH: Haar's detect width, 0 = full resolution)")


def parse_spec(spec: str, base: Variant) -> Variant:
    """One ``--variants`` item, parsed into the row's settings; what it does not give comes from ``base`` (the
    command line's row)."""
    match = SPEC.fullmatch(spec)
    if not match:
        raise BenchError(f"--variants {spec!r}: expected default, all or {SPEC_HELP}")
    changes: dict[str, Any] = {"detect_width": int(match[3])}
    for item in filter(None, match[4].split(":")):
        key, _, value = item.partition("=")
        if key not in SPEC_KEYS:
            raise BenchError(f"--variants {spec!r}: unknown key {key!r} (sf, n, min, eq, det, bm, small, ns, ag, "
                             "dt, nt, flip, sflip, joint)")
        field, kind = SPEC_KEYS[key]
        try:
            changes[field] = kind(value)
        except ValueError:
            raise BenchError(f"--variants {spec!r}: {key}={value} is not a {kind.__name__}") from None
    models = replace(base.models, variant=match[1], threads=int(match[2]),
                     flip_average=changes.pop("flip_average", base.flip_average),
                     stream_flip=changes.pop("stream_flip", base.models.stream_flip),
                     joint=bool(changes.pop("joint", base.models.joint)))
    detector = base.detector
    blaze = {key: changes.pop(field) for key, field in BLAZEFACE_KEYS if field in changes}  # [detector.blazeface]
    if blaze:
        if changes.get("backend", detector.backend) != "blazeface":
            raise BenchError(f"--variants {spec!r}: bm=, small=, ns=, ag=, dt= and nt= are BlazeFace keys; add "
                             "det=blazeface")
        for flag in ("small_faces", "aspect_graphs"):
            if flag in blaze:
                blaze[flag] = bool(blaze[flag])
        changes["blazeface"] = replace(detector.blazeface, **blaze)
    variant = Variant(models, replace(detector, **changes))
    try:
        variant.settings("")
    except ConfigError as exc:
        raise BenchError(f"--variants {spec!r}: {exc}") from None
    return variant


def parse_variants(text: str, base: Variant) -> list[Variant]:
    """``default``, ``all`` or a comma list of specs (:data:`SPEC_HELP`)."""
    other = "float32" if base.variant == "int8" else "int8"
    if text == "default":
        # The command line's row, BlazeFace with small_faces, paper mode (Haar) at full resolution, with the
        # paper code's faster pyramid and at 320 px, the other precision, then the other classifier thread counts.
        haar = replace(base.detector, backend="haar")
        blaze = replace(base.detector, backend="blazeface")
        fast = replace(haar, scale_factor=1.3, min_neighbors=3, min_size=40)  # the paper code's pyramid
        wanted = [base, replace(base, detector=replace(blaze, blazeface=replace(blaze.blazeface, small_faces=True))),
                  replace(base, detector=replace(haar, detect_width=0)), replace(base, detector=fast),
                  replace(base, detector=replace(haar, detect_width=DOWNSCALED_WIDTH)),
                  replace(base, models=replace(base.models, variant=other))]
        wanted += [replace(base, models=replace(base.models, threads=t)) for t in ALL_THREADS if t != base.threads]
    elif text == "all":
        widths = sorted({0, DOWNSCALED_WIDTH, base.detect_width})
        detectors = [replace(base.detector, backend="blazeface", detect_width=0)] + [
            replace(base.detector, backend="haar", detect_width=w) for w in widths]
        wanted = [base] + [Variant(replace(base.models, variant=v, threads=t), d) for v in ("int8", "float32")
                           for t in ALL_THREADS for d in detectors]
    else:
        specs = filter(None, (s.strip() for s in text.split(",")))
        wanted = [parse_spec(spec, base) for spec in specs]
    unique: list[Variant] = []
    for item in wanted:
        if item not in unique:
            unique.append(item)
    return unique


def cpu_model() -> str:
    """The board (``Model`` on a Pi) or the CPU (``model name``) from /proc/cpuinfo."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields.get("Model") or fields.get("model name") or platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    _, runtime = interpreter_class()
    try:
        version = metadata.version("ai-edge-litert" if runtime == "ai_edge_litert" else "tflite-runtime")
    except metadata.PackageNotFoundError:
        version = "?"
    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "runtime": runtime, "runtime_version": version, "python": platform.python_version(),
            "opencv": cv2.__version__, "numpy": np.__version__, "opencv_threads": cv2.getNumThreads()}


def check_models(models_dir: Path, variants: list[Variant]) -> Path:
    """Fail early, in one line, on a broken models folder; return the cascade path."""
    manifest = Manifest.load(models_dir)
    for name, joint in sorted({(v.variant, v.models.joint) for v in variants}):
        for entry in manifest.select_pair(name, joint):
            manifest.verify(entry)
    for model in sorted({v.detector.blazeface.model for v in variants if v.detector.backend == "blazeface"}):
        make_detector(DetectorSettings(backend="blazeface", blazeface=BlazeFaceSettings(model=model)), manifest)
    return manifest.cascade_path()


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    return env


def variant_command(variant: Variant, args: argparse.Namespace, frames_file: Path, stream: bool) -> list[str]:
    """The row's process: every setting travels as one JSON mapping, none re-parsed from flags."""
    return [sys.executable, "-m", "edge.bench.row", "--frames-file", str(frames_file), "--warmup", str(args.warmup),
            "--settings", settings_to_json(*variant.settings(args.models_dir))] + (["--stream"] if stream else [])


def baseline_command(which: str, args: argparse.Namespace, frames_file: Path, cascade: Path,
                     stream: bool) -> list[str]:
    command = [sys.executable, "-m", "train_host.baselines", "--which", which, "--frames-file", str(frames_file),
               "--warmup", str(args.warmup), "--cascade", str(cascade)]
    command += ["--paper-models", str(args.paper_models)] if args.paper_models else []
    return command + (["--stream"] if stream else [])


def run_all(variants: list[Variant], args: argparse.Namespace, frames_file: Path, cascade: Path,
            stream: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Our rows and the baselines' rows, measured in the same rounds over the same frames."""
    labels = {"paper": "paper Keras (measured)", "paper-call": "paper Keras model()", "fer": "fer (measured)"}
    jobs: list[tuple[str, list[str]]] = [(v.label, variant_command(v, args, frames_file, stream)) for v in variants]
    skipped: dict[str, str] = {}
    for name in args.baseline_names:
        if name.startswith("paper") and args.paper_models is None:
            skipped[name] = f"no paper models: {DEFAULT_PAPER_MODELS} is absent; give --paper-models DIR"
        elif not (ROOT / "train_host").is_dir():  # the wheel ships edge only
            skipped[name] = "the TensorFlow baselines run from a checkout (train_host/, with the host extra)"
        else:
            jobs.append((labels[name], baseline_command(name, args, frames_file, cascade, stream)))
    results = iter(run_rows(jobs, args.frames, args.rounds, _env(), ROOT))
    rows = []
    for variant in variants:
        row = {"label": variant.label, "variant": variant.variant, "threads_setting": variant.threads,
               "detect_width": variant.detect_width, "detector": asdict(variant.detector),
               "default": variant.shipped}
        rows.append({**row, **next(results)})
    baselines = []
    for name in args.baseline_names:
        head = {"label": labels[name], "name": name}
        if name in skipped:
            baselines.append({**head, "available": False, "reason": skipped[name]})
            continue
        result = next(results)
        if "error" in result:
            result = {"available": False, "reason": result["error"]}
        baselines.append({**result, **head})
    return rows, baselines


def reference_cascades(inputs: Inputs, cascade_path: Path) -> list[dict[str, Any]]:
    """Detection only, with the paper's cascade settings, on the same frames (full resolution, raw gray).

    Timed once per distinct frame in the bench process, outside the rounds: their recall is the point.
    """
    cascade = cv2.CascadeClassifier(str(cascade_path))
    grays = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in inputs.frames]
    rows = []
    for label, scale, neighbours, min_size, what in REFERENCE_CASCADES:
        cascade.detectMultiScale(grays[0], scale, neighbours, minSize=(min_size, min_size))  # warm-up
        found, times = [], []
        for gray in grays:
            start = time.perf_counter()
            boxes = cascade.detectMultiScale(gray, scale, neighbours, minSize=(min_size, min_size))
            times.append((time.perf_counter() - start) * 1e3)
            found.append(len(boxes))
        rows.append({"label": label, "what": what, "scale_factor": scale, "min_neighbors": neighbours,
                     "min_size": min_size, "stages": summarize({"detect": times}),
                     "faces_per_distinct_frame": found, "faces_per_frame": float(np.mean(found))})
    return rows


def add_recall(rows: list[dict[str, Any]], expected: list[int | None] | None) -> None:
    for row in rows:
        counts = row.get("faces_per_distinct_frame")
        if expected is not None and counts is not None:
            row["recall"] = recall(counts, expected)


def add_floor(rows: list[dict[str, Any]], peaks: dict[str, dict[str, Any]]) -> None:
    """Bare-invoke speed of the two models as a share of the measured peak (x usable threads)."""
    for row in rows:
        models = row.get("models")
        if not models:
            continue
        dtype = "float32" if all(m.get("dtype") == "float32" for m in models.values()) else "int8"
        peak = peaks.get(dtype, {}).get("macs_per_s")
        macs = sum((m.get("macs") or 0) * m.get("invokes_per_face", 1) for m in models.values())
        seconds = sum(m["invoke_ms"] * m.get("invokes_per_face", 1) for m in models.values()) / 1e3
        usable = max(1, min(row["threads"]["classifier"], row["threads"]["cpus"] or 1))
        row["floor"] = {"macs": macs, "peak_dtype": dtype, "usable_threads": usable,
                        "floor_ms": macs / (peak * usable) * 1e3 if peak else None,
                        "percent_of_peak": 100.0 * macs / seconds / (peak * usable) if peak and seconds else None}


def ratios_for(row: dict[str, Any], baselines: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed-ups of one of our rows: measured baselines' median (and mean) total over ours, and 220 ms over ours."""
    ours, our_mean = row["stages"]["total"]["median"], row["stages"]["total"]["mean"]
    out: dict[str, Any] = {}
    by_name = {r["name"]: r for r in baselines}
    for key, name in (("vs_paper_measured", "paper"), ("vs_fer_measured", "fer")):
        other = by_name.get(name)
        if other is None:
            out[key] = {"ratio": None, "reason": "not run (--baselines)"}
        elif not other.get("available"):
            out[key] = {"ratio": None, "reason": other.get("reason")}
        else:
            theirs = other["stages"]["total"]
            out[key] = {"ratio": theirs["median"] / ours if ours else None, "ms": theirs["median"],
                        "ratio_of_means": theirs["mean"] / our_mean if our_mean else None}
    paper_ms = PAPER_SECONDS_PER_FRAME * 1e3
    out["vs_paper_published"] = {"ratio": paper_ms / ours if ours else None, "ms": paper_ms}
    return out


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """Each row's speed-ups (``row["ratios"]``); the report's own are those of the default row (or the first)."""
    rows = [r for r in report["variants"] if not r.get("error")]
    for row in rows:
        row["ratios"] = ratios_for(row, report["baselines"])
    base = next((r for r in rows if r.get("default")), rows[0] if rows else None)
    if base is None:
        return {"base_label": None, "base_total_ms": None}
    return {"base_label": base["label"], "base_total_ms": base["stages"]["total"]["median"], **base["ratios"]}


def hold_images(inputs: Inputs, expected: list[int | None] | None, hold: int) -> tuple[Inputs, list | None]:
    """Each image repeated ``hold`` times as one stream; recall counts the last frame of each scene.

    The first frame after a scene change still searches around the previous
    scene's faces (and finds none), exactly as a camera would after a cut; what
    a user sees is the scene's steady state, so that is what recall scores.
    """
    held = Inputs(np.repeat(inputs.frames, hold, axis=0), [n for n in inputs.names for _ in range(hold)], "held",
                  inputs.source, skipped=inputs.skipped, hold=hold)
    if expected is not None:
        expected = [want if j == hold - 1 else None for want in expected for j in range(hold)]
    return held, expected


def describe_input(inputs: Inputs, size: tuple[int, int]) -> str:
    kinds = {"images": "images", "video": "frames of a video", "camera": "camera frames",
             "held": f"frames (each image held for {inputs.hold} frames as one stream)"}
    return (f"{len(inputs.frames)} {kinds[inputs.kind]} from {inputs.source}, letterboxed to "
            f"{size[0]}x{size[1]}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m edge.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("--source", default=str(DEFAULT_SOURCE),
                        help="image folder (recursive), image, video file or 'camera' (default: samples/; installed "
                        "from a wheel: the sample photos it ships)")
    parser.add_argument("--manifest", help="CSV with file,expected_faces (default: manifest.csv in the folder)")
    parser.add_argument("--size", default="640x480", help="frame size; images are letterboxed (default 640x480)")
    parser.add_argument("--frames", type=int, default=100, help="timed frames per row, cycling the input")
    parser.add_argument("--warmup", type=int, default=10, help="untimed frames first (default 10)")
    parser.add_argument("--hold", type=int, default=1,
                        help="images: show each one for N consecutive frames as one camera stream (tracking, "
                             "smoothing and the search around known faces apply, as for a camera watching "
                             "people); 1 = independent photos, every frame a new scene (default)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rows take turns in this many chunks of frames (default 5; 1 = one after another)")
    parser.add_argument("--variants", default="default", help=f"default, all, or a comma list of {SPEC_HELP}")
    parser.add_argument("--baselines", default="paper,fer", help="paper,fer (default), paper-call, all or none")
    parser.add_argument("--paper-models", help=f"folder with the paper's .hdf5 (default {DEFAULT_PAPER_MODELS})")
    parser.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    parser.add_argument("--chart", metavar="PNG", help="stacked-bar chart (default: next to --json, else "
                        "out/bench.png in the current folder)")
    parser.add_argument("--no-chart", action="store_true")
    add_settings_options(parser)
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 0 or args.rounds < 1 or args.hold < 1:
        raise BenchError("--frames, --rounds and --hold must be at least 1 and --warmup at least 0")
    names = {"all": ["paper", "fer", "paper-call"], "none": []}.get(args.baselines)
    args.baseline_names = names if names is not None else [b for b in args.baselines.split(",") if b]
    unknown = [b for b in args.baseline_names if b not in ("paper", "paper-call", "fer")]
    if unknown:
        raise BenchError(f"--baselines: unknown {unknown[0]!r} (paper, paper-call, fer, all or none)")
    if args.paper_models is None and DEFAULT_PAPER_MODELS.is_dir():
        args.paper_models = str(DEFAULT_PAPER_MODELS)
    args.models_dir = settings_from(args)[0].dir or str(default_models_dir())
    return args


def variants_of(args: argparse.Namespace) -> list[Variant]:
    """The rows ``--variants`` asks for, each starting from the command line's settings."""
    models, detector = settings_from(args)
    return parse_variants(args.variants, Variant(models, detector))


def bench(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Prepare the frames, run every row and assemble the report; returns (report, exit status)."""
    variants = variants_of(args)
    for item in variants:
        item.settings(args.models_dir)  # every row validated here, before any frame is prepared
    cascade = check_models(Path(args.models_dir), variants)
    size = parse_size(args.size)
    inputs = load_inputs(args.source, size, args.frames, args.warmup)
    manifest = Path(args.manifest) if args.manifest else None
    if manifest is None and inputs.kind == "images" and Path(args.source).is_dir():
        candidate = Path(args.source) / "manifest.csv"
        manifest = candidate if candidate.is_file() else None
    expected = match_expected(inputs.names, manifest, read_manifest(manifest)) if (
        manifest is not None and inputs.kind == "images") else None
    if args.hold > 1 and inputs.kind == "images":
        inputs, expected = hold_images(inputs, expected, args.hold)
        if args.frames < len(inputs.frames):
            print(f"note: --frames raised to {len(inputs.frames)} so that every held scene is timed", file=sys.stderr)
            args.frames = len(inputs.frames)

    report: dict[str, Any] = {
        "input": {"source": inputs.source, "kind": inputs.kind, "frames_distinct": len(inputs.frames),
                  "size": list(size), "resize": "letterbox (aspect kept, black padding)",
                  "manifest": str(manifest) if manifest else None, "expected": expected,
                  "names": inputs.names, "skipped": inputs.skipped, "description": describe_input(inputs, size)},
        "settings": {"frames": args.frames, "warmup": args.warmup, "rounds": args.rounds, "variants": args.variants,
                     "baselines": args.baseline_names, "paper_models": args.paper_models},
        "machine": machine_info(),
        "paper_published_s_per_frame": PAPER_SECONDS_PER_FRAME,
    }
    if inputs.capture_ms:
        report["camera_capture"] = summarize({"capture": inputs.capture_ms})["capture"]
    peaks: dict[str, dict[str, Any]] = {}
    for dtype in ("int8", "float32"):
        try:
            peak = measure_peak(dtype)
            peaks[dtype] = {"macs_per_s": peak.macs_per_s, "method": peak.method}
        except FloorUnavailable as exc:
            peaks[dtype] = {"macs_per_s": None, "reason": str(exc)}
    report["peak"] = peaks

    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        frames_file = Path(tmp) / "frames.npy"
        np.save(frames_file, inputs.frames)
        rows, baselines = run_all(variants, args, frames_file, cascade, inputs.stream)
    for row in rows:
        if not row.get("error"):
            row["paper_ratio"] = PAPER_SECONDS_PER_FRAME * 1e3 / row["stages"]["total"]["median"]
            row["model_bytes"] = sum(m["bytes"] for m in row["models"].values())
    report["variants"], report["baselines"] = rows, baselines
    report["detector_reference"] = reference_cascades(inputs, cascade)
    add_recall(rows + baselines + report["detector_reference"], expected)
    add_floor(rows, peaks)
    report["ratios"] = ratios(report)
    return report, (1 if any(r.get("error") for r in rows) else 0)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        report, status = bench(args)
    except (BenchError, ModelError, RuntimeMissing, SourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if not args.no_chart:
        chart = Path(args.chart) if args.chart else (
            Path(args.json).with_suffix(".png") if args.json else Path("out") / "bench.png")  # never the package
        note = write_chart(report, chart)
        report["chart"] = None if note else str(chart)
    print(render(report))
    if not args.no_chart:
        print("\n" + (note or f"chart: {chart}"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"JSON report: {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
