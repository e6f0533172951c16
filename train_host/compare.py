"""The paper's published models next to ours: same test splits, same crops, one run.

    python -m train_host.compare --data ../shared/data --anchors ../shared/anchors/oarriaga \
        --json out/compare.json --markdown out/compare.md

For each task of ``models/manifest.json`` the test file its accuracy figures
name is looked up under ``--data``; every shipped model of that task (int8 and
float32 TFLite, run through the device's classifier) and the paper's published
Keras model from ``--anchors`` are scored on it:

- on the dataset's own chips (and adults only, when the data has ages);
- through the detector: each chip re-cut from the Haar box the device would
  find, grown by each ``--margins`` value per side (chips where Haar finds no
  face are left out, and their count is reported). The paper's gender model is
  very sensitive to this margin, so it gets every margin, not just ours.

A bar on stderr shows the phase (step i of n) and the time left. Re-cutting
is most of the time: the full run re-cuts every test face once per input size
and margin (about 49,000 Haar scans); ``--quick`` (the first 600 faces per
task, margin 0 only: 2,400 scans) gives a first look in about a minute.

The anchors are the baseline only: they are read from the path given, never
copied or shipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.frame.labels import LABELS_BY_TASK
from edge.frame.manifest import Manifest, ModelError
from train_host.data import ADULT_AGE_DEFAULT, DataError, FaceSet, find_data, load
from train_host.evaluate import evaluate, load_model

PAPER_MODELS = {"emotion": "fer2013_mini_XCEPTION*.hdf5", "gender": "gender_mini_XCEPTION*.hdf5"}
DEFAULT_MARGINS = (0.0, 0.2, 0.4)
QUICK_FACES = 600  # --quick: test faces per task
QUICK_MARGINS = (0.0,)  # --quick: the margin the shipped models use
# A re-cut (a Haar scan of every chip) costs about as much per face as 20 scorings: measured with --quick,
# four 600-face re-cuts took 8 of the 9 minutes on a loaded 2-core machine. The bar weighs steps so.
RECUT_WEIGHT = 20


@dataclass(frozen=True)
class Contender:
    label: str
    path: Path
    bytes: int
    flip_average: bool = False  # scored as the device runs it: each face averaged with its mirror image
    labels: tuple[str, ...] | None = None  # which head of a joint file (its entry's labels); None: the only one


def contenders(manifest: Manifest, anchors: Path | None, task: str) -> list[Contender]:
    """Our shipped models of ``task`` (int8 first) and the paper's published one when present.

    A model whose manifest entry ships it mirror-averaged is scored that way
    (the device's default) and once more with a single invoke, so both
    figures sit side by side.
    """
    ours = sorted((e for e in manifest.models if e.task == task), key=lambda e: e.variant != "int8")
    found = []
    for e in ours:
        name = f"ours {e.variant}" + (" joint file" if e.joint else "")
        if e.flip_average:
            found.append(Contender(f"{name} (mirror-averaged, as shipped)", manifest.root / e.file,
                                   e.bytes, flip_average=True, labels=e.labels))
            found.append(Contender(f"{name}, one invoke", manifest.root / e.file, e.bytes, labels=e.labels))
        else:
            found.append(Contender(name, manifest.root / e.file, e.bytes, labels=e.labels))
    if anchors is not None:
        paper = sorted(anchors.glob(PAPER_MODELS[task]))
        if paper:
            found.append(Contender("paper (published Keras)", paper[0], paper[0].stat().st_size))
    return found


def test_file(manifest: Manifest, data_root: Path, task: str) -> Path:
    """The test file the manifest's figures for ``task`` were measured on, found under ``data_root``."""
    names = [f["file"] for e in manifest.models if e.task == task for f in e.accuracy if f.get("file")]
    if not names:
        raise DataError(f"manifest: no accuracy figure names a dataset file for {task}")
    path = find_data(data_root, names[0])
    if path is None:
        raise DataError(f"{data_root}: no {names[0]} (the {task} test file the manifest names)")
    return path


@dataclass
class TaskPlan:
    """One task's faces, its contenders (loaded) and every step of its scoring, in order."""

    task: str
    faces: FaceSet
    models: list[tuple[Contender, Any]]
    steps: list[tuple]  # ("recut", margin, size) | ("score", model index, subset name, margin or None)

    def work(self, step: tuple) -> int:
        """A step's share of the bar: its faces, a re-cut's weighted by :data:`RECUT_WEIGHT`."""
        if step[0] == "recut":
            return RECUT_WEIGHT * len(self.faces)
        if step[2] == "adults":
            return 0 if self.faces.age is None else int((self.faces.age >= ADULT_AGE_DEFAULT).sum())
        return len(self.faces)

    @property
    def total_work(self) -> int:
        return sum(self.work(step) for step in self.steps)


def plan_task(task: str, faces: FaceSet, models: list[Contender], margins: tuple[float, ...]) -> TaskPlan:
    """Load the contenders and list the steps: chips, adults, then each margin's re-cut and scoring."""
    loaded = [(info, load_model(info.path, info.labels)) for info in models]
    steps: list[tuple] = []
    recuts: set[tuple[float, tuple[int, int]]] = set()
    for index, (_, model) in enumerate(loaded):
        steps.append(("score", index, "chips", None))
        if faces.age is not None:
            steps.append(("score", index, "adults", None))
        for margin in margins:
            if (margin, model.size) not in recuts:
                recuts.add((margin, model.size))
                steps.append(("recut", margin, model.size))
            steps.append(("score", index, f"detector m{margin:g}", margin))
    return TaskPlan(task, faces, loaded, steps)


class Progress:
    """One bar over every phase of the run (weighted faces), with the ETA (tqdm, on stderr)."""

    def __init__(self, total_work: int, total_steps: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total_work, file=sys.stderr, smoothing=0.05, dynamic_ncols=True,
                        bar_format="{desc} |{bar}| {percentage:3.0f}% [{elapsed}<{remaining}]")
        self.steps = total_steps
        self.step = 0

    def phase(self, text: str) -> None:
        self.step += 1
        self.bar.set_description(f"[{self.step}/{self.steps}] {text}")

    def done(self, work: int, message: str) -> None:
        self.bar.update(work)
        self.bar.write(f"  {message}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def score_task(plan: TaskPlan, cascade: Path, progress: Progress) -> list[dict]:
    """One row per (model, subset): accuracy and how many faces it was measured on."""
    from train_host.through_detector import recut

    task, faces = plan.task, plan.faces
    labels = LABELS_BY_TASK[task]
    recuts: dict[tuple[float, tuple[int, int]], tuple[FaceSet, int]] = {}
    rows = []
    for step in plan.steps:
        if step[0] == "recut":
            _, margin, size = step
            progress.phase(f"{task}: re-cutting through the detector (margin {margin:g}, {size[0]}x{size[1]})")
            cut, found = recut(faces, cascade, margin, size)
            recuts[(margin, size)] = (cut, int(found.sum()))
            progress.done(plan.work(step), f"{task}: re-cut {len(faces)} faces at margin {margin:g}, "
                                      f"{size[0]}x{size[1]}: Haar found {int(found.sum())}")
            continue
        _, index, name, margin = step
        model_info, model = plan.models[index]
        if name == "chips":
            subset, count = faces, len(faces)
        elif name == "adults":
            assert faces.age is not None  # an "adults" step is planned only for data with ages
            subset = faces.subset(faces.age >= ADULT_AGE_DEFAULT)
            count = len(subset)
        else:
            subset, count = recuts[(margin, model.size)]
        progress.phase(f"{task} / {model_info.label} / {name}")
        accuracy = evaluate(model, subset, labels, flip_average=model_info.flip_average)["accuracy"] if len(
            subset) else None
        rows.append({"task": task, "model": model_info.label, "file": str(model_info.path),
                     "bytes": model_info.bytes, "input": list(model.size), "subset": name,
                     "faces": count, "of": len(faces), "accuracy": accuracy})
        shown = "-" if accuracy is None else f"{100 * accuracy:.2f}%"
        progress.done(plan.work(step), f"{task} / {model_info.label} / {name}: {shown} on {count} faces")
    return rows


def markdown(rows: list[dict], sources: dict[str, str]) -> str:
    """One table per task: models as rows, subsets as columns."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        task_rows = [r for r in rows if r["task"] == task]
        subsets = list(dict.fromkeys(r["subset"] for r in task_rows))
        out.append(f"**{task}** on `{sources[task]}` ({task_rows[0]['of']} test faces)\n")
        out.append("| model | input | KB | " + " | ".join(subsets) + " |")
        out.append("|---|---|---|" + "---|" * len(subsets))
        for model in dict.fromkeys(r["model"] for r in task_rows):
            cells = {r["subset"]: r for r in task_rows if r["model"] == model}
            first = next(iter(cells.values()))
            values = []
            for subset in subsets:
                r = cells[subset]
                value = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
                if subset.startswith("detector"):
                    value += f" ({r['faces']})"
                values.append(value)
            size = f"{first['input'][0]}x{first['input'][1]}"
            out.append(f"| {model} | {size} | {first['bytes'] / 1000:.0f} | " + " | ".join(values) + " |")
        out.append("")
    out.append("detector mX = faces re-cut from the Haar box grown by X per side (faces Haar found in brackets).")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="models", help="folder with manifest.json (default: models)")
    parser.add_argument("--data", required=True, help="folder holding the datasets (e.g. ../shared/data)")
    parser.add_argument("--anchors", help="folder with the paper's published .hdf5 models")
    parser.add_argument("--tasks", default="emotion,gender")
    parser.add_argument("--margins", default=",".join(f"{m:g}" for m in DEFAULT_MARGINS),
                        help="through-detector crop margins per side (default 0,0.2,0.4; empty: none)")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test faces (0 = all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a first look in about a minute: the first {QUICK_FACES} test faces of each task and "
                             f"one margin ({QUICK_MARGINS[0]:g}, the shipped one) unless --limit/--margins say "
                             "otherwise")
    parser.add_argument("--json", help="write the rows as JSON here")
    parser.add_argument("--markdown", help="write the tables as Markdown here")
    args = parser.parse_args(argv)
    if args.quick:
        args.limit = args.limit or QUICK_FACES
        if args.margins == ",".join(f"{m:g}" for m in DEFAULT_MARGINS):
            args.margins = ",".join(f"{m:g}" for m in QUICK_MARGINS)
    try:
        margins = tuple(float(m) for m in args.margins.split(",") if m.strip())
    except ValueError:
        print(f"error: --margins {args.margins!r}: expected numbers separated by commas", file=sys.stderr)
        return 2
    try:
        tasks = [t for t in args.tasks.split(",") if t]
        unknown = [t for t in tasks if t not in LABELS_BY_TASK]
        if unknown:
            raise DataError(f"--tasks: unknown task {unknown[0]!r} (emotion, gender)")
        anchors = Path(args.anchors) if args.anchors else None
        if anchors is not None and not anchors.is_dir():
            raise DataError(f"--anchors: {anchors} is not a folder")
        manifest = Manifest.load(args.models)
        plans: list[TaskPlan] = []
        sources: dict[str, str] = {}
        for task in tasks:
            path = test_file(manifest, Path(args.data), task)
            faces = load(path, task, split="test")
            if args.limit:
                faces = faces.subset(np.arange(min(args.limit, len(faces))))
            sources[task] = path.name
            print(f"{task}: {len(faces)} faces from {path}", file=sys.stderr)
            plans.append(plan_task(task, faces, contenders(manifest, anchors, task), margins))
        cascade = manifest.cascade_path()
    except (DataError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = Progress(sum(p.total_work for p in plans), sum(len(p.steps) for p in plans))
    started = time.monotonic()
    try:
        rows = [row for plan in plans for row in score_task(plan, cascade, progress)]
    finally:
        progress.close()
    print(f"compare: {time.monotonic() - started:.0f} s for {progress.step} steps", file=sys.stderr)
    table = markdown(rows, sources)
    print(table, end="")
    for path, text in ((args.markdown, table), (args.json, json.dumps(rows, indent=2) + "\n")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
