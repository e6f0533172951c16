"""``make docs-figures``: the figures README.md and docs/*.md quote, regenerated from the commands that give them.

A figure typed by hand drifts: the label-change rates, the model sizes and the
bench tables all went stale once already. So the docs carry *generated blocks*

    <!-- figures:NAME -->text<!-- /figures:NAME -->

inline (inside a sentence or a table cell) or around whole lines (a table).
Each block is rendered by a formatter in :data:`BLOCKS` from one *figure*, the
JSON a producer in :data:`FIGURES` wrote to ``docs/figures/FIGURE.json``
by running our own command (``python -m edge analyze``, ``python -m
edge.bench``) or reading ``models/manifest.json``. The JSON is committed, so

* ``python -m tools.docs_figures`` reruns the cheap producers, then rewrites
  every block; producers whose data is missing (``../shared``) say so in one
  line and keep their JSON;
* ``--only NAME[,NAME]`` reruns just those producers. Timing figures
  (``bench-*``) run only when named: on a machine that is not idle their
  numbers are noise, so the default run never measures them;
* ``--from-json`` rewrites the blocks from the stored JSON without running
  anything; ``--check`` only compares and exits 1 on a difference (what
  ``tests/test_docs_figures.py`` does, without ``../shared``), so a hand edit
  inside a block or a JSON without its re-rendered text fails the tests.

It lives in ``tools/`` because it is a maintainer's tool: it needs no
TensorFlow (the bench's baselines import it in their own processes), it is not
part of the runtime the wheel ships, and it runs our CLIs as a user would,
in subprocesses, so the figures are exactly what those commands print.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES_DIR = ROOT / "docs" / "figures"
SHARED = ROOT.parent / "shared"
VIDEOS = ("simplefr_video2_720p.mp4", "hamilton_short_clip.mp4")
# The default, the other precision, paper mode, and the default pipeline as the previous release ran it (the two
# single-task files instead of the joint one): before/after in one run.
BENCH_VARIANTS = "int8:2:0,float32:2:0,int8:2:0:det=haar,int8:2:0:joint=0"
PREVIOUS_RELEASE = "int8 t2 blazeface dt2 joint=0"  # that last row's label: the two single-task files
# 315 frames (each of the 7 samples 45 times; 3 scenes of 15 for a stream) in 15 rounds: rows 0.2-0.3 ms apart
# swapped places between two 100-frame runs on this VM.
BENCH_RUN = "--frames 315 --rounds 15"
DEFAULT_THREADS = 2  # ModelSettings().threads (tests/test_docs_figures.py checks)
BLOCK = re.compile(r"<!-- figures:([\w-]+) -->(.*?)<!-- /figures:\1 -->", re.S)
ANY_MARKER = re.compile(r"<!-- (/?)figures:([\w-]+) -->")


class Skip(Exception):
    """A producer that cannot run here (its data is missing); the message is the reason."""


@dataclass(frozen=True)
class Figure:
    """A producer: what it runs (for --list and the JSON) and the function that writes its JSON."""

    command: str
    produce: Callable[[Path], dict[str, Any] | None]  # returns the JSON, or None when it wrote the file itself
    timing: bool = False  # wall-clock figures, or slow ones (a whole Home Assistant): only when named with --only


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python() -> str:
    return sys.executable


def run(args: list[str]) -> str:
    """Run one of our commands as a user would; its stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    done = subprocess.run([python(), *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


# -- producers -----------------------------------------------------------------------------------------------------

def produce_models(_: Path) -> dict[str, Any]:
    """Sizes (the files themselves) and recorded accuracy of every classifier in models/manifest.json."""
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    models = []
    for entry in manifest["models"]:
        size = (ROOT / "models" / entry["file"]).stat().st_size
        models.append({"name": entry["name"], "task": entry["task"], "variant": entry["variant"],
                       "file": entry["file"], "bytes": size,
                       "input": f"{entry['input']['width']}x{entry['input']['height']}",
                       "flip_average": bool(entry.get("flip_average", False)),
                       "joint": int(entry.get("outputs", 1)) > 1,
                       "accuracy": [{k: a[k] for k in ("dataset", "split", "faces", "subset", "accuracy")}
                                    | {"flip_average": bool(a.get("flip_average", False))}
                                    for a in entry.get("accuracy", [])]})
    return {"command": "models/manifest.json and the sizes of the files it names", "models": models}


LABEL_LINE = re.compile(r": (\d+) frames, (\d+) faces, (\d+) tracks, (\d+) emotion label changes "
                        r"\(([\d.]+) per track-second\)")


def produce_labels(_: Path, names: tuple[str, ...] = VIDEOS) -> dict[str, Any]:
    """Label changes per track-second with and without smoothing on the two videos of ../shared/media."""
    videos: dict[str, Any] = {}
    commands = []
    for name in names:
        path = SHARED / "media" / "videos" / name
        if not path.is_file():
            raise Skip(f"{path} not found (the label figures need ../shared/media)")
        videos[name] = {}
        for key, extra in (("smoothed", []), ("raw", ["--no-smoothing"])):
            args = ["-m", "edge", "analyze", f"../shared/media/videos/{name}", *extra]
            commands.append("python " + " ".join(args))
            match = LABEL_LINE.search(run(args))
            if match is None:
                raise RuntimeError(f"{' '.join(args)}: no label-change line in its output")
            frames, faces, tracks, changes = (int(g) for g in match.groups()[:4])
            videos[name][key] = {"frames": frames, "faces": faces, "tracks": tracks, "changes": changes,
                                 "per_track_second": float(match[5])}
    return {"commands": commands, "videos": videos}


def bench_producer(hold: int | None) -> Callable[[Path], None]:
    def produce(out: Path) -> None:
        if not (ROOT / "samples").is_dir():
            raise Skip("samples/ not found")
        chart = ["--no-chart"] if hold else ["--chart", BENCH_CHART]  # the photos run draws the README's chart
        args = ["-m", "edge.bench", "--variants", BENCH_VARIANTS, *BENCH_RUN.split(), "--json", str(out), *chart]
        run(args + (["--hold", str(hold)] if hold else []))
        data = json.loads(out.read_text())  # paths relative to the checkout: the JSON is committed
        for key in ("source", "manifest"):
            if data["input"].get(key):
                data["input"][key] = os.path.relpath(data["input"][key], ROOT)
        data["input"]["names"] = [Path(name).name for name in data["input"].get("names", [])]
        if "description" in data["input"]:
            data["input"]["description"] = data["input"]["description"].replace(str(ROOT) + os.sep, "")
        if data.get("settings", {}).get("paper_models"):
            data["settings"]["paper_models"] = os.path.relpath(data["settings"]["paper_models"], ROOT)
        try:
            data["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True).stdout.strip() or None
        except OSError:  # no git: the figure is still worth keeping
            data["commit"] = None
        out.write_text(json.dumps(data, indent=1) + "\n")
    return produce


DETECTORS = "haar,blazeface,blazeface:small_faces=true,blazeface:model=short,blazeface:fallback=false"


def produce_detectors(out: Path) -> None:
    """Faces each detector finds on every shared set and face size (the table that chose the default)."""
    if not (SHARED / "data").is_dir() or not (SHARED / "media").is_dir():
        raise Skip(f"{SHARED / 'data'} or {SHARED / 'media'} not found (the detector table needs ../shared)")
    run(["-m", "train_host.detector_sets", "--data", "../shared/data", "--media", "../shared/media",
         "--detectors", DETECTORS, "--json", str(out)])


HA_SCREENSHOT = "docs/pictures/ha_dashboard.png"
DEMO_PICTURE = "docs/pictures/demo.jpg"
DEMO_SAMPLES = ("two_people.jpg", "obama_720p.jpg", "astronaut.jpg", "camera.png", "biden.jpg", "coins.png")
LIVEVIEW_PICTURE = "docs/pictures/liveview.png"
BENCH_CHART = "docs/pictures/bench_chart.png"


def produce_demo_picture(_: Path) -> dict[str, Any]:
    """``make demo``'s annotated samples as one sheet (the README's first picture), and what analyze said of each."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        lines = run(["-m", "edge", "analyze", *(f"samples/{name}" for name in DEMO_SAMPLES), "--json",
                     "--annotate", folder]).splitlines()
        annotated = [str(next(Path(folder).glob(f"{Path(name).stem}_annotated.*"))) for name in DEMO_SAMPLES]
        run(["-m", "tools.contact_sheet", DEMO_PICTURE, *annotated])
    faces = {Path(o["path"]).name: [f"{f['emotion']} {f['emotion_scores'][f['emotion']]:.2f}, "
                                    f"{f['gender']} {f['gender_scores'][f['gender']]:.2f}" for f in o["faces"]]
             for o in map(json.loads, lines)}
    return {"picture": DEMO_PICTURE, "faces": faces}


def produce_liveview_picture(_: Path) -> dict[str, Any]:
    """The live view page of the real daemon in headless Chromium (docs/pictures/liveview_screenshot.py)."""
    print(run(["docs/pictures/liveview_screenshot.py"]), end="", flush=True)
    return {"picture": LIVEVIEW_PICTURE, "source": "../shared/media/videos/simplefr_video2_720p.mp4 (else samples/)"}


def produce_ha_check(out: Path) -> None:
    """make ha-check's entities as Home Assistant shows them, and its dashboard screenshot (needs Python 3.13)."""
    print(run(["-m", "tools.ha_check", "--json", str(out.relative_to(ROOT)), "--screenshot", HA_SCREENSHOT]),
          end="", flush=True)


FIGURES: dict[str, Figure] = {
    "models": Figure("read models/manifest.json (no command)", produce_models),
    "labels": Figure("python -m edge analyze ../shared/media/videos/VIDEO [--no-smoothing], both videos",
                     produce_labels),
    "bench-stream": Figure(f"python -m edge.bench --hold 15 --variants {BENCH_VARIANTS} {BENCH_RUN} --json "
                           "docs/figures/bench-stream.json --no-chart", bench_producer(15), timing=True),
    "bench-photos": Figure(f"python -m edge.bench --variants {BENCH_VARIANTS} {BENCH_RUN} --json "
                           f"docs/figures/bench-photos.json --chart {BENCH_CHART}", bench_producer(None), timing=True),
    "detectors": Figure("python -m train_host.detector_sets --data ../shared/data --media ../shared/media "
                        f"--detectors {DETECTORS} --json docs/figures/detectors.json", produce_detectors, timing=True),
    "demo-picture": Figure(f"python -m edge analyze samples/... --annotate DIR, then python -m tools.contact_sheet "
                           f"{DEMO_PICTURE}", produce_demo_picture),
    "liveview-picture": Figure(f"python docs/pictures/liveview_screenshot.py (writes {LIVEVIEW_PICTURE})",
                               produce_liveview_picture, timing=True),
    "ha-check": Figure(f"python -m tools.ha_check --json docs/figures/ha-check.json --screenshot {HA_SCREENSHOT}",
                       produce_ha_check, timing=True),
}


# -- formatters ----------------------------------------------------------------------------------------------------

def _int8(models: dict[str, Any]) -> list[dict[str, Any]]:
    """The two single-task int8 files (emotion, gender)."""
    by_task = {m["task"]: m for m in models["models"] if m["variant"] == "int8" and not m.get("joint")}
    return [by_task["emotion"], by_task["gender"]]


def _joint(models: dict[str, Any]) -> dict[str, Any] | None:
    """The int8 file with both heads, where one ships."""
    return next((m for m in models["models"] if m["variant"] == "int8" and m.get("joint")), None)


def render_weights(models: dict[str, Any]) -> str:
    emotion, gender = _int8(models)
    both = (f"{emotion['bytes'] / 1000:.0f} kB and {gender['bytes'] / 1000:.0f} kB int8 TFLite "
            f"({emotion['bytes']:,} and {gender['bytes']:,} bytes)")
    joint = _joint(models)
    if joint is None:
        return both
    return (f"{joint['bytes'] / 1000:.0f} kB int8 TFLite for both tasks ({joint['bytes']:,} bytes, the default); "
            f"the single-task files {both}")


def render_together(models: dict[str, Any]) -> str:
    joint = _joint(models)
    if joint is not None:
        return (f"{joint['bytes'] / 1024:.0f} KiB in one file (the two single-task files: "
                f"{sum(m['bytes'] for m in _int8(models)) / 1024:.0f} KiB together)")
    return f"{sum(m['bytes'] for m in _int8(models)) / 1024:.0f} KiB together"


def render_models_table(models: dict[str, Any]) -> str:
    lines = ["| model file | input | bytes | KiB | accuracy (manifest) |", "|---|---|---|---|---|"]
    for m in models["models"]:
        shipped = m.get("flip_average", False)
        acc = "; ".join(f"{a['accuracy']:.2%} on {a['dataset']} {a['split']} ({a['faces']:,} faces"
                        + (", mirror-averaged" if a.get("flip_average") else ", one invoke" if shipped else "")
                        + (", as shipped" if shipped and a.get("flip_average") else "") + ")"
                        for a in sorted(m["accuracy"], key=lambda a: a.get("flip_average", False) != shipped)
                        if a["subset"] == "all") or "-"
        head = f" ({m['task']} head)" if m.get("joint") else ""
        lines.append(f"| `{m['file']}`{head} | {m['input']} | {m['bytes']:,} | {m['bytes'] / 1024:.1f} | {acc} |")
    return "\n" + "\n".join(lines) + "\n"


def render_labels(labels: dict[str, Any]) -> str:
    def part(name: str) -> tuple[str, str, str, str]:
        raw, smooth = labels["videos"][name]["raw"], labels["videos"][name]["smoothed"]
        ratio = raw["per_track_second"] / smooth["per_track_second"]
        return (f"{raw['per_track_second']:.2f}", f"{smooth['per_track_second']:.2f}", f"{ratio:.0f}x",
                f"{smooth['frames']:,} frames, {smooth['tracks']} tracks")

    a, b = part(VIDEOS[0]), part(VIDEOS[1])
    return (f"goes from {a[0]} to {a[1]} emotion label changes per track-second ({a[2]} calmer;\n{a[3]}) and the "
            f"Hamilton clip from {b[0]} to {b[1]} ({b[2]}; {b[3]})")


def _row_name(row: dict[str, Any]) -> str:
    if "variant" not in row:  # a baseline
        return {"paper": "the paper's pipeline (Keras)", "fer": "`fer`"}.get(row["name"], row["label"])
    detector = "Haar (paper mode)" if row["detector"]["backend"] == "haar" else "**BlazeFace**"
    if row["label"] == PREVIOUS_RELEASE:
        return f"ours, BlazeFace, {row['variant']}, the previous release's settings (`{row['label']}`)"
    count = row["threads_setting"]
    threads = f", {count} thread{'s' if count > 1 else ''}" if count != DEFAULT_THREADS else ""
    return f"ours, {detector}, {row['variant']}{threads}" + (" (default)" if row.get("default") else "")


def _ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def _ms(value: float) -> str:
    """Milliseconds as the docs quote them: 59.6, 6.7, 0.41."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def _bench_rows(bench: dict[str, Any]) -> list[dict[str, Any]]:
    return list(bench["variants"]) + [b for b in bench["baselines"] if b.get("available", True) and "stages" in b]


def _row(cells: list[str]) -> str:
    """A Markdown table row; an empty cell is "| |"."""
    return "| " + " | ".join(cells).replace("|  |", "| |").replace("|  |", "| |") + " |"


def _bold_if(text: str, flag: bool) -> str:
    return f"**{text}**" if flag and text else text


def _vs(row: dict[str, Any], others: dict[str, dict[str, Any]], name: str, key: str) -> float | None:
    """``row``'s speed-up against the baseline ``name`` (median or mean total), from the same run."""
    base = others.get(name)
    if base is None:
        return None
    if row is base:
        return 1.0
    return base["stages"]["total"][key] / row["stages"]["total"][key]


def render_bench_stream(bench: dict[str, Any]) -> str:
    rows = _bench_rows(bench)
    baselines = {b["name"]: b for b in bench["baselines"] if b in rows}
    best_median = min(r["stages"]["total"]["median"] for r in rows)
    best_mean = min(r["stages"]["total"]["mean"] for r in rows)
    lines = ["| row | ms/frame median | mean | p90 | × paper (median / mean) | × fer (median / mean) | "
             "recall (false faces) |", "|---|---|---|---|---|---|---|"]
    best_recall = max((r["recall"]["recall"], -r["recall"]["false_faces"]) for r in rows if r.get("recall"))
    for row in rows:
        total = row["stages"]["total"]
        cells = [_row_name(row), _bold_if(f"{total['median']:.1f}", total["median"] == best_median),
                 _bold_if(f"{total['mean']:.1f}", total["mean"] == best_mean), f"{total['p90']:.1f}"]
        for name in ("paper", "fer"):
            median, mean = _vs(row, baselines, name, "median"), _vs(row, baselines, name, "mean")
            cells.append("1" if median == 1.0 and row is baselines.get(name) else
                         "" if median is None or "variant" not in row else f"{_ratio(median)} / {_ratio(mean)}")
        rec = row.get("recall")
        cells.append(_bold_if(f"{rec['found']}/{rec['expected']} ({rec['false_faces']})",
                              (rec["recall"], -rec["false_faces"]) == best_recall) if rec else "")
        lines.append(_row(cells))
    return "\n" + "\n".join(lines) + "\n"


def render_bench_photos(bench: dict[str, Any]) -> str:
    rows = _bench_rows(bench)
    baselines = {b["name"]: b for b in bench["baselines"] if b in rows}
    best_median = min(r["stages"]["total"]["median"] for r in rows)
    best_mean = min(r["stages"]["total"]["mean"] for r in rows)
    lines = ["| row | ms/frame median | mean | × paper | × fer | CPU ms/frame | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        stages, total = row["stages"], row["stages"]["total"]
        median = _bold_if(f"{total['median']:.1f}", total["median"] == best_median)
        if "detect" in stages:
            median += " (" + ", ".join(f"{stage} {_ms(stages[stage]['median'])}"
                                       for stage in ("detect", "emotion", "gender")) + ")"
        cells = [_row_name(row), median, _bold_if(f"{total['mean']:.1f}", total["mean"] == best_mean)]
        for name in ("paper", "fer"):
            ratio = _vs(row, baselines, name, "median")
            cells.append("1" if row is baselines.get(name) else "" if ratio is None or "variant" not in row
                         else _ratio(ratio))
        cells += [f"{row['cpu_ms_per_frame']:.1f}", f"{row['peak_rss_mb']:.0f}"]
        lines.append(_row(cells))
    return "\n" + "\n".join(lines) + "\n"


def render_precision(bench: dict[str, Any]) -> str:
    """int8 against float32 per classifier, from two rows of one bench run with the same detector (same frames,
    same rounds): BlazeFace's (the default) where the run has both, else Haar's. Each task's own file on both
    sides (the int8 row with ``joint=0``); the joint int8 file's time for both tasks follows where the run has it."""
    for backend in ("blazeface", "haar"):
        rows = {r["variant"]: r for r in bench["variants"] if r["detector"]["backend"] == backend
                and r["threads_setting"] == DEFAULT_THREADS and "joint" not in r.get("models", {})}
        joint = next((r for r in bench["variants"] if r["detector"]["backend"] == backend
                      and r["threads_setting"] == DEFAULT_THREADS and "joint" in r.get("models", {})), None)
        if {"int8", "float32"} <= set(rows):
            break
    int8, f32 = rows["int8"]["stages"], rows["float32"]["stages"]
    both = "" if joint is None else (f"; the joint int8 file: {_ms(joint['stages']['emotion']['median'])} ms "
                                     "for both tasks")
    return (f"{_ms(int8['emotion']['median'])} vs {_ms(f32['emotion']['median'])} ms for emotion, "
            f"{_ms(int8['gender']['median'])} vs {_ms(f32['gender']['median'])} ms for gender, int8 vs float32, "
            f"each task's own file{both}")


def render_detectors(report: dict[str, Any]) -> str:
    """The detector table as ``python -m train_host.detector_sets`` prints it."""
    from train_host.detector_sets import markdown

    return "\n" + markdown(report)


def render_ha_entities(check: dict[str, Any]) -> str:
    """The first Pi's entities as Home Assistant showed them (the second Pi's differ only in its name)."""
    first = check["entities"][:len(check["entities"]) // 2]
    lines = ["| Entity id | Name in Home Assistant | State then | Attributes |", "|---|---|---|---|"]
    for row in first:
        attributes = ", ".join(f"`{k}`" for k in row["attributes"])
        lines.append(_row([f"`{row['entity_id']}`", row["name"], f"{row['state']} {row['unit']}".strip(),
                           attributes]))
    device = check["devices"][0]
    return (f"\nHome Assistant {check['home_assistant']}, device *{device['name']}* ({device['manufacturer']}, "
            f"{device['model']}, version {device['sw_version']}):\n\n" + "\n".join(lines) + "\n")


# block name -> (figure it renders from, formatter)
BLOCKS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "models-weights": ("models", render_weights),
    "models-together": ("models", render_together),
    "models-table": ("models", render_models_table),
    "labels-stability": ("labels", render_labels),
    "bench-stream": ("bench-stream", render_bench_stream),
    "bench-photos": ("bench-photos", render_bench_photos),
    "bench-precision": ("bench-photos", render_precision),
    "detectors-table": ("detectors", render_detectors),
    "ha-entities": ("ha-check", render_ha_entities),
}


# -- blocks in the docs --------------------------------------------------------------------------------------------

def load_figure(name: str, figures_dir: Path = FIGURES_DIR) -> dict[str, Any] | None:
    path = figures_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def marker_problems(text: str) -> list[str]:
    """Unknown block names, and markers that do not pair up."""
    problems, open_name = [], None
    for match in ANY_MARKER.finditer(text):
        closing, name = match[1] == "/", match[2]
        if name not in BLOCKS:
            problems.append(f"unknown block {name!r} (known: {', '.join(BLOCKS)})")
        if closing != (open_name is not None) or (closing and name != open_name):
            problems.append(f"marker {match[0]} does not pair up")
        open_name = None if closing else name
    if open_name is not None:
        problems.append(f"<!-- figures:{open_name} --> is never closed")
    return problems


def rerender(text: str, figures_dir: Path = FIGURES_DIR) -> tuple[str, list[str]]:
    """``text`` with every block rendered from its stored JSON; plus one line per block that has no JSON."""
    missing: list[str] = []

    def block(match: re.Match) -> str:
        figure, render = BLOCKS[match[1]]
        data = load_figure(figure, figures_dir)
        if data is None:
            missing.append(f"{match[1]}: no docs/figures/{figure}.json (python -m tools.docs_figures --only {figure})")
            return match[0]
        return f"<!-- figures:{match[1]} -->{render(data)}<!-- /figures:{match[1]} -->"

    return BLOCK.sub(block, text), missing


def differences(files: list[Path] | None = None, figures_dir: Path = FIGURES_DIR) -> list[str]:
    """One line per block whose text is not what its JSON renders (and per marker problem)."""
    found = []
    for path in files or doc_files():
        text = path.read_text()
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        found += [f"{name}: {p}" for p in marker_problems(text)]
        new, missing = rerender(text, figures_dir)
        found += [f"{name}: {m}" for m in missing]
        old_blocks, new_blocks = BLOCK.findall(text), BLOCK.findall(new)
        found += [f"{name}: block {b!r} differs from docs/figures JSON (python -m tools.docs_figures --from-json)"
                  for (b, old), (_, fresh) in zip(old_blocks, new_blocks) if old != fresh]
    return found


def produce(names: list[str]) -> int:
    """Run these producers; a skipped or failed one keeps its JSON. Returns the number that failed."""
    failed = 0
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        figure, out = FIGURES[name], FIGURES_DIR / f"{name}.json"
        print(f"{name}: {figure.command}", flush=True)
        try:
            data = figure.produce(out)
        except Skip as exc:
            print(f"{name}: skipped: {exc}; {out.relative_to(ROOT)} kept", flush=True)
            continue
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            print(f"{name}: failed: {exc}; {out.relative_to(ROOT)} kept", file=sys.stderr, flush=True)
            failed += 1
            continue
        if data is not None:
            out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"{name}: wrote {out.relative_to(ROOT)}", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs_figures", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--from-json", action="store_true", help="only re-render the blocks from docs/figures/*.json")
    mode.add_argument("--check", action="store_true", help="only compare; exit 1 when a block differs")
    mode.add_argument("--list", action="store_true", help="the figures, their commands and their blocks")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help=f"run only these producers ({', '.join(FIGURES)}); the bench-* ones run only when named")
    args = parser.parse_args(argv)
    if args.list:
        for name, figure in FIGURES.items():
            blocks = ", ".join(b for b, (f, _) in BLOCKS.items() if f == name)
            print(f"{name}{' (timing: only with --only)' if figure.timing else ''}: {figure.command}\n"
                  f"    blocks: {blocks}")
        return 0
    if args.check:
        problems = differences()
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    failed = 0
    if not args.from_json:
        names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else [
            n for n, f in FIGURES.items() if not f.timing]
        unknown = [n for n in names if n not in FIGURES]
        if unknown:
            print(f"error: --only: unknown figure(s) {', '.join(unknown)} (known: {', '.join(FIGURES)})",
                  file=sys.stderr)
            return 2
        if not args.only:
            print("bench-stream, bench-photos: not run (timings; on an idle machine: --only bench-stream,bench-photos)")
            print("ha-check: not run (a whole Home Assistant, Python 3.13: --only ha-check)")
            print("liveview-picture: not run (the daemon and Chromium: --only liveview-picture)")
        failed = produce(names)
    for path in doc_files():
        text = path.read_text()
        problems = marker_problems(text)
        if problems:
            for line in problems:
                print(f"error: {path.relative_to(ROOT)}: {line}", file=sys.stderr)
            return 2
        new, missing = rerender(text)
        for line in missing:
            print(f"{path.relative_to(ROOT)}: {line}", file=sys.stderr)
        if new != text:
            path.write_text(new)
            print(f"{path.relative_to(ROOT)}: blocks updated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
