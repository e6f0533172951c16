"""How ``python -m edge.bench`` shows its results: text tables, the ratio lines and a stacked-bar chart.

Everything here reads the report dictionary that is also written with
``--json``, so the table, the JSON and the chart cannot disagree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edge.frame.stats import PIPELINE_STAGES

STAGES = ("capture", *PIPELINE_STAGES)  # a bench row reads its frames from memory: no outputs stage
STAGE_COLOURS = ("#9e9e9e", "#bdbdbd", "#1f77b4", "#aec7e8", "#ff7f0e", "#2ca02c", "#9467bd")
PAPER_UNIT_NOTE = ("the paper prints 0.22 \"ms\" per frame on an i5; a Haar pass plus two CNNs cannot run in "
                   "0.22 ms on a CPU, so seconds is the only sensible reading")


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _stage(row: dict[str, Any], stage: str, stat: str = "median") -> float | None:
    return row.get("stages", {}).get(stage, {}).get(stat)


def all_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Our variants, then the baselines (available or not)."""
    return list(report.get("variants", [])) + list(report.get("baselines", []))


def _name_width(report: dict[str, Any]) -> int:
    rows = all_rows(report) + list(report.get("detector_reference", []))
    return max([24] + [len(r["label"]) + 3 for r in rows])


def timing_table(report: dict[str, Any]) -> str:
    """Per-stage medians, total median/p90/p99, fps, CPU % and peak RSS per row."""
    w = _name_width(report)
    head = (f"{'row':<{w}}" + "".join(f"{s:>9}" for s in STAGES)
            + f" |{'total':>8}{'p90':>8}{'p99':>8} |{'fps':>7}{'cpu%':>6}{'cpu ms':>8}{'RSS MB':>8}")
    lines = ["Per-stage time per frame, ms (median; total also p90 and p99)", head, "-" * len(head)]
    for row in all_rows(report):
        name = ("* " if row.get("default") else "  ") + row["label"]
        if not row.get("available", True):
            lines.append(f"{name:<{w}} not available ({row.get('reason', 'unknown reason')})")
            continue
        if row.get("error"):
            lines.append(f"{name:<{w}} failed: {row['error']}")
            continue
        stages = "".join(f"{_num(_stage(row, s)):>9}" for s in STAGES)
        lines.append(
            f"{name:<{w}}{stages} |{_num(_stage(row, 'total')):>8}{_num(_stage(row, 'total', 'p90')):>8}"
            f"{_num(_stage(row, 'total', 'p99')):>8} |{_num(row.get('fps'), '{:.1f}'):>7}"
            f"{_num(row.get('cpu_percent'), '{:.0f}'):>6}{_num(row.get('cpu_ms_per_frame'), '{:.1f}'):>8}"
            f"{_num(row.get('peak_rss_mb'), '{:.0f}'):>8}")
    lines.append("* = the shipped defaults (ModelSettings() and DetectorSettings()); '-' = not a separate stage; "
                 "cpu ms = process CPU time per frame (all threads)")
    return "\n".join(lines)


def _recall_cells(rec: dict[str, Any] | None, faces_per_frame: float | None) -> str:
    if rec and rec.get("recall") is not None:
        return (f"{rec['recall']:>7.2f} ({rec['found']}/{rec['expected']})".ljust(18)
                + f"{rec['false_faces']:>6}{rec['extra_faces']:>7}")
    if faces_per_frame is not None:
        return f"{'faces/frame ' + format(faces_per_frame, '.2f'):<18}{'-':>6}{'-':>7}"
    return f"{'-':<18}{'-':>6}{'-':>7}"


def quality_table(report: dict[str, Any]) -> str:
    """Recall and false faces per row, then model size, MACs, bare invoke time and share of the measured peak."""
    w = _name_width(report)
    head = (f"{'row':<{w}}{'recall (found/exp)':<18}{'false':>6}{'extra':>7} |{'model KB':>9}{'MMAC/face':>10}"
            f"{'invoke ms':>10}{'% peak':>7}{'pipeline ms/face':>17}{'threads':>9}")
    lines = ["Faces found and compute (emotion + gender models)", head, "-" * len(head)]
    rows = all_rows(report) + list(report.get("detector_reference", []))
    for row in rows:
        name = ("* " if row.get("default") else "  ") + row["label"]
        if not row.get("available", True) or row.get("error"):
            continue
        cells = _recall_cells(row.get("recall"), row.get("faces_per_frame"))
        models = row.get("models") or {}
        if models:
            kb = sum(m["bytes"] for m in models.values()) / 1024
            macs = sum((m.get("macs") or 0) * m.get("invokes_per_face", 1) for m in models.values()) / 1e6
            invoke = sum(m["invoke_ms"] for m in models.values())
            floor = row.get("floor", {}).get("percent_of_peak")
            per_face = row.get("per_face_ms", {})
            pf = sum(v for v in per_face.values() if v is not None) if any(per_face.values()) else None
            threads = row.get("threads", {}).get("classifier")
            cells += (f" |{kb:>9.0f}{macs:>10.1f}{invoke:>10.3f}{_num(floor, '{:.0f}'):>7}{_num(pf, '{:.3f}'):>17}"
                      f"{threads:>9}")
        elif "what" in row:  # a detection-only reference row
            cells += f" | detect {_num(_stage(row, 'detect'))} ms median ({row['what']})"
        elif row.get("settings", {}).get("bytes"):
            kb = sum(row["settings"]["bytes"].values()) / 1024
            cells += f" |{kb:>9.0f}{'-':>10}{'-':>10}{'-':>7}{'-':>17}{'all':>9}"
        lines.append(f"{name:<{w}}{cells}")
    lines.append("recall = sum(min(found, expected)) / sum(expected) over the listed images; false = faces on "
                 "listed negatives; extra = faces beyond the expected count on positive images")
    return "\n".join(lines)


def _speed(ratio: float) -> str:
    """``3.2x faster`` or ``0.5x, i.e. 2.0x slower``: a ratio below 1 is never called faster."""
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{ratio:.2f}x, i.e. {1 / ratio:.1f}x slower"


def ratio_lines(report: dict[str, Any]) -> str:
    """The comparisons the bench exists for, for the base (default) row."""
    ratios = report.get("ratios", {})
    base = ratios.get("base_label", "?")
    ours = ratios.get("base_total_ms")
    lines = [f"Against the paper and the peers (our row: {base}, {_num(ours)} ms per frame, median):"]
    for key, what in (("vs_paper_measured", "the paper's Keras pipeline, measured here on the same frames"),
                      ("vs_fer_measured", "fer, measured here on the same frames"),
                      ("vs_paper_published", "the paper's published 0.22 s per frame (i5)")):
        item = ratios.get(key, {})
        if item.get("ratio") is None:
            lines.append(f"  ours vs {what}: not available ({item.get('reason', 'no figure')})")
        else:
            means = item.get("ratio_of_means")
            extra = f"; {_speed(means)} on mean frame time" if means else ""
            lines.append(f"  ours vs {what}: {_speed(item['ratio'])} ({_num(ours)} vs {item['ms']:.1f} ms{extra})")
    others = [r for r in report.get("variants", []) if r.get("ratios") and r["label"] != base]
    if others:
        lines.append("  the other rows (median total; x = times faster than paper measured / fer measured / 0.22 s):")
        for row in others:
            cells = [_num(row["ratios"][k].get("ratio"), "{:.1f}x") for k in
                     ("vs_paper_measured", "vs_fer_measured", "vs_paper_published")]
            lines.append(f"    {row['label']:<{_name_width(report)}}{_num(_stage(row, 'total')):>8} ms  "
                         + " / ".join(cells))
    lines.append(f"  note: {PAPER_UNIT_NOTE}")
    return "\n".join(lines)


def floor_lines(report: dict[str, Any]) -> str:
    peaks = report.get("peak", {})
    parts = []
    for dtype, peak in peaks.items():
        if peak.get("macs_per_s"):
            parts.append(f"{dtype} {peak['macs_per_s'] / 1e9:.1f} GMAC/s ({peak['method']})")
        else:
            parts.append(f"{dtype}: not available ({peak.get('reason')})")
    return "Measured peak at 1 thread: " + "; ".join(parts) if parts else ""


def render(report: dict[str, Any]) -> str:
    """The whole text report."""
    info = report["input"]
    machine = report["machine"]
    header = (f"edge.bench: {info['description']}; {report['settings']['frames']} timed frames after "
              f"{report['settings']['warmup']} warm-up\n"
              f"CPU: {machine['cpu_model']} ({machine['cpus']} cores); runtime {machine['runtime']} "
              f"{machine['runtime_version']}; OpenCV {machine['opencv']} ({machine['opencv_threads']} threads); "
              f"numpy {machine['numpy']}")
    return "\n\n".join(part for part in (header, timing_table(report), quality_table(report),
                                         floor_lines(report), ratio_lines(report)) if part)


def chart_title(info: dict[str, Any]) -> str:
    """The input description with its folder shown relative to the working folder (or by name): no home paths."""
    source = str(info.get("source", ""))
    description = str(info["description"])
    if not source or not Path(source).is_absolute():
        return description
    try:
        shown = str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        shown = Path(source).name
    return description.replace(source, shown)


def write_chart(report: dict[str, Any], path: Path) -> str | None:
    """Stacked horizontal bars of mean ms per stage for each row; a one-line note when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install 'pi-face-emotion[chart]')"
    rows = [r for r in all_rows(report) if r.get("available", True) and not r.get("error") and r.get("stages")]
    if not rows:
        return "chart skipped: no row has timings"
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 2.2))
    labels = [("* " if r.get("default") else "") + r["label"] for r in rows]
    ys = list(range(len(rows)))[::-1]
    lefts = [0.0] * len(rows)
    for stage, colour in zip(STAGES + ("unsplit",), STAGE_COLOURS + ("#d62728",)):
        widths = []
        for row in rows:
            stages = row["stages"]
            if stage == "unsplit":  # a row that only reports its total (fer)
                split = any(s in stages for s in ("detect", "emotion"))
                widths.append(0.0 if split else stages["total"]["mean"])
            else:
                widths.append(stages.get(stage, {}).get("mean", 0.0))
        if any(widths):
            ax.barh(ys, widths, left=lefts, color=colour, label=stage if stage != "unsplit" else "total (not split)")
            lefts = [a + b for a, b in zip(lefts, widths)]
    longest = max(lefts) or 1.0
    for y, total in zip(ys, lefts):  # the total at the end of each bar, in the room left for it
        ax.text(total + longest * 0.01, y, f"{total:.1f} ms", va="center", fontsize=8)
    ax.set_xlim(0, longest * 1.14)
    ax.set_yticks(ys, labels)
    ax.set_xlabel("mean ms per frame (stages stacked; the tables give medians)")
    ax.set_title(f"edge.bench: {chart_title(report['input'])}", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(rows)), ncol=8, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
