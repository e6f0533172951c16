"""Faces each detector backend finds on every photo of a media folder, against its manifest's person counts.

    python -m train_host.count_faces --media ../shared/media            # native size and 640x480
    python -m train_host.count_faces --media ../shared/media --markdown out/faces.md
    python -m train_host.count_faces --media ../shared/media --blazeface full,full_float32

Each photo is run at its own resolution and letterboxed to 640x480 (as the
bench shows it), with the shipped ``[detector]`` settings of each backend, as
independent photos (full scans). ``found`` = min(boxes, persons) summed over
the positives; ``extra`` = boxes beyond the person count on positives;
``false`` = boxes on the negatives. Counts only: a box is not matched to a
person, so the annotated pictures (``--annotate``) are where to check them.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2

from edge.bench.frames import letterbox
from edge.detectors import BlazeFaceSettings, DetectorSettings, make_detector
from edge.detectors.settings import BLAZEFACE_MODELS
from edge.frame.manifest import Manifest, ModelError, default_models_dir
from edge.frame.preprocess import to_gray

SIZES = ("native", "640x480")


def persons(value: str) -> int:
    """``1 (profile, occluded)`` -> 1."""
    return int(value.split()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.count_faces", description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", required=True, help="folder with manifest.csv (file, kind, expected_faces)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--markdown", help="also write the table here")
    parser.add_argument("--annotate", help="write each photo with each backend's boxes into this folder")
    parser.add_argument("--blazeface", default="",
                        help="a BlazeFace column per whole-frame model, e.g. full,full_float32 (known: "
                             f"{', '.join(BLAZEFACE_MODELS)}; default: the shipped one)")
    args = parser.parse_args(argv)
    media = Path(args.media)
    try:
        with open(media / "manifest.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["kind"] != "video"]
        manifest = Manifest.load(args.models)
        detectors = {"haar": make_detector(DetectorSettings(backend="haar"), manifest)}  # paper mode, not the default
        wanted = args.blazeface.split(",") if args.blazeface else [BlazeFaceSettings().model]
        for model in wanted:
            if model not in BLAZEFACE_MODELS or wanted.count(model) > 1:
                raise ValueError(f"--blazeface: {'repeated' if wanted.count(model) > 1 else 'unknown'} model "
                                 f"{model!r} (known: {', '.join(BLAZEFACE_MODELS)})")
            settings = DetectorSettings(backend="blazeface", blazeface=BlazeFaceSettings(model=model))
            detectors["blazeface" if args.blazeface == "" else f"blazeface {model}"] = make_detector(settings, manifest)
    except (OSError, KeyError, ValueError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    backends = list(detectors)
    header = "| file | persons | " + " | ".join(f"{b} {s}" for s in SIZES for b in backends) + " |"
    lines = [header, "|" + "---|" * (2 + len(SIZES) * len(backends))]
    totals = {(b, s): {"found": 0, "extra": 0, "false": 0} for b in backends for s in SIZES}
    expected_total = 0
    for row in rows:
        image = cv2.imread(str(media / row["file"]))
        if image is None:
            print(f"error: {media / row['file']}: unreadable", file=sys.stderr)
            return 2
        want = persons(row["expected_faces"])
        expected_total += want
        cells = []
        for size in SIZES:
            frame = image if size == "native" else letterbox(image, (640, 480))
            for backend, detector in detectors.items():
                boxes = detector.detect(frame if detector.color else to_gray(frame))
                t = totals[(backend, size)]
                if row["kind"] == "negative":
                    t["false"] += len(boxes)
                else:
                    t["found"] += min(len(boxes), want)
                    t["extra"] += max(0, len(boxes) - want)
                cells.append(str(len(boxes)))
                if args.annotate and size == "native":
                    out = Path(args.annotate) / f"{Path(row['file']).stem}_{backend.replace(' ', '_')}.jpg"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shown = image.copy()
                    for box in boxes:
                        x, y, w, h = box
                        cv2.rectangle(shown, (x, y), (x + w, y + h), (0, 200, 0), max(2, image.shape[1] // 400))
                    cv2.imwrite(str(out), shown)
        lines.append(f"| {row['file']} | {want} | " + " | ".join(cells) + " |")
    lines.append(f"| **positives: found / extra** | {expected_total} | " + " | ".join(
        f"{totals[(b, s)]['found']} / {totals[(b, s)]['extra']}" for s in SIZES for b in backends) + " |")
    lines.append("| **negatives: false faces** | 0 | " + " | ".join(
        str(totals[(b, s)]["false"]) for s in SIZES for b in backends) + " |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
