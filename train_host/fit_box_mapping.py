"""Fit the BlazeFace → Haar box mapping on faces both detectors find; print it and (``--write``) store it.

The classifiers were trained and measured on Haar-like crops; BlazeFace draws
its own boxes (a little smaller or larger, centred lower on the face). For
every face both detectors find (one-to-one, IoU > 0.3 between the raw boxes)
this measures, in units of the BlazeFace box's mean side ``s``: Haar side / s,
and the Haar centre minus the BlazeFace centre (dx, dy). The mapping is the
median of each over all pairs (robust to the odd mismatched pair); the report
gives it per source with the quartiles and the IoU with Haar before and after.

    python -m train_host.fit_box_mapping --data ../shared/data --media ../shared/media --write

Sources: every photo of ``--media`` at its own resolution (colour), and
``--chips`` test chips of FER-2013 PublicTest and of UTKFace test, each shown as
``train_host.through_detector`` shows it to the device (upsampled, padded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.detectors import DetectorSettings
from edge.detectors.blazeface import BoxMapping, load_model
from edge.detectors.haar import HaarDetector
from edge.manifest import MANIFEST_NAME, Manifest, ModelError, default_models_dir
from edge.sources import IMAGE_SUFFIXES
from edge.tracking import iou
from train_host.data import DataError, load
from train_host.through_detector import chip_frame

MODELS = ("blazeface_full", "blazeface_short")
MIN_IOU = 0.3


def pairs(haar: list, blaze: list) -> list[tuple[tuple, tuple]]:
    """One-to-one matches (Haar box, BlazeFace box), best IoU first, IoU > MIN_IOU."""
    scored = sorted(((iou(h, b), i, j) for i, h in enumerate(haar) for j, b in enumerate(blaze)), reverse=True)
    used_h, used_b, out = set(), set(), []
    for overlap, i, j in scored:
        if overlap > MIN_IOU and i not in used_h and j not in used_b:
            used_h.add(i)
            used_b.add(j)
            out.append((haar[i], blaze[j]))
    return out


def geometry(haar: tuple, blaze: tuple) -> tuple[float, float, float]:
    """(Haar side / s, dx / s, dy / s) for one pair; s = the BlazeFace box's mean side."""
    side = (blaze[2] + blaze[3]) / 2
    dx = (haar[0] + haar[2] / 2) - (blaze[0] + blaze[2] / 2)
    dy = (haar[1] + haar[3] / 2) - (blaze[1] + blaze[3] / 2)
    return (haar[2] + haar[3]) / 2 / side, dx / side, dy / side


def frames(args: argparse.Namespace):
    """(source name, frame) for every media photo and the chosen test chips."""
    if args.media:
        for path in sorted(p for p in Path(args.media).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            image = cv2.imread(str(path))
            if image is not None:
                yield "media", image
    if args.data and args.chips:
        rng = np.random.default_rng(0)
        for name, task, file in (("fer2013 PublicTest", "emotion", "fer2013/fer2013_PublicTest.npz"),
                                 ("utkface test", "gender", "utkface/utkface_gender_gray64_test.npz")):
            faces = load(Path(args.data) / file, task)
            pick = rng.choice(len(faces), size=min(args.chips, len(faces)), replace=False)
            for i in sorted(pick):
                yield name, chip_frame(faces.x[i])


def summary(rows: np.ndarray) -> dict:
    q = np.percentile(rows, [25, 50, 75], axis=0)
    stats = {k: {"median": round(float(q[1, c]), 4), "q25": round(float(q[0, c]), 4), "q75": round(float(q[2, c]), 4)}
             for c, k in enumerate(("scale", "dx", "dy"))}
    return {"pairs": int(len(rows)), **stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.fit_box_mapping", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="../shared/data (FER-2013 and UTKFace .npz)")
    parser.add_argument("--media", help="a folder of photos (../shared/media)")
    parser.add_argument("--chips", type=int, default=1000, help="test chips per dataset (default 1000)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--write", action="store_true", help="store the fitted mapping in the models' manifest")
    args = parser.parse_args(argv)
    try:
        manifest = Manifest.load(args.models)
        haar = HaarDetector(manifest.cascade_path(), DetectorSettings())
        raw = {name: load_model(manifest, name) for name in MODELS}
        for model in raw.values():
            model.mapping = BoxMapping()  # fit on the model's own boxes
        geo: dict[str, dict[str, list]] = {name: {} for name in MODELS}
        for source, frame in frames(args):
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            haar_boxes = haar.detect(gray)
            for name, model in raw.items():
                blaze = [box for box, _ in model.run(frame, 0.5, 0.3)]
                for h, b in pairs(haar_boxes, blaze):
                    geo[name].setdefault(source, []).append(geometry(h, b))
    except (ModelError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {}
    for name in MODELS:
        every = np.array([g for rows in geo[name].values() for g in rows])
        if not len(every):
            print(f"error: {name}: no face found by both detectors", file=sys.stderr)
            return 2
        fit = summary(every)
        mapping = BoxMapping(fit["scale"]["median"], fit["dx"]["median"], fit["dy"]["median"])
        per_source = {src: summary(np.array(rows)) for src, rows in geo[name].items()}
        report[name] = {"mapping": mapping.__dict__, "all": fit, "per_source": per_source}
        print(f"{name}: scale {mapping.scale:.4f} dx {mapping.dx:+.4f} dy {mapping.dy:+.4f} "
              f"({fit['pairs']} pairs; IQR scale {fit['scale']['q25']:.3f}-{fit['scale']['q75']:.3f}, "
              f"dy {fit['dy']['q25']:+.3f}-{fit['dy']['q75']:+.3f})")
        for src, s in per_source.items():
            print(f"    {src}: {s['pairs']} pairs, scale {s['scale']['median']:.4f} dx {s['dx']['median']:+.4f} "
                  f"dy {s['dy']['median']:+.4f}")
    if args.write:
        command = "python -m train_host.fit_box_mapping " + " ".join(argv if argv is not None else sys.argv[1:])
        path = Path(args.models) / MANIFEST_NAME
        body = json.loads(path.read_text())
        for name, fitted in report.items():
            body["detectors"][name]["box_mapping"] = {
                **{k: round(v, 4) for k, v in fitted["mapping"].items()},
                "fit": f"median over {fitted['all']['pairs']} faces both detectors find (IoU > {MIN_IOU}), "
                       f"per source: " + ", ".join(f"{s} {v['pairs']}" for s, v in fitted["per_source"].items()),
                "command": command.strip()}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        tmp.replace(path)
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
