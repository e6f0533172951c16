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
That pooled mapping gives the box the device shows and tracks.

``--per-task`` fits the crop each classifier gets, on its *training* faces
only (emotion: FER-2013 Training without the rows that copy a test image;
gender: UTKFace train), for each BlazeFace model:

    python -m train_host.fit_box_mapping --data ../shared/data --per-task --write

``--detectors blazeface_full_int8`` fits that one and leaves the others' entries as they are.

dx and dy are the geometric medians (BlazeFace box -> the Haar box on the same
training face); the scale is the one, on a grid around the geometric one, at
which the shipped classifier's prediction on the BlazeFace crop agrees most
often with its prediction on the Haar crop of the same face (ties: the nearer
to the geometric scale). Both scales, the agreement curve and the training
accuracy through each crop are printed and stored under
``detectors.<model>.box_mapping_by_task.<task>``; re-run it after a classifier
is retrained.
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
from edge.frame.labels import LABELS_BY_TASK
from edge.frame.manifest import MANIFEST_NAME, Manifest, ModelError, default_models_dir, sha256_file
from edge.frame.preprocess import CropSpec, crop_face
from edge.frame.tracking import iou
from edge.inputs.sources import IMAGE_SUFFIXES
from train_host.data import DataError, load
from train_host.evaluate import load_model as load_classifier
from train_host.through_detector import UPSCALE, chip_frame

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


TRAINING = {"emotion": ("fer2013 Training", "fer2013/fer2013_Training.npz"),
            "gender": ("utkface train", "utkface/utkface_gender_gray64_train.npz")}
STEPS = 8  # the scales tried: the geometric one (rounded to 0.02) +- 8 steps of 0.02


def largest(boxes: list) -> tuple | None:
    return max(boxes, key=lambda b: b[2] * b[3], default=None)


def training_chips(data: Path, task: str, count: int, seed: int = 0):
    """``count`` random training faces of ``task`` (never a row that copies a test image): (faces, indices)."""
    faces = load(data / TRAINING[task][1], task)
    allowed = np.arange(len(faces)) if faces.test_dup is None else np.flatnonzero(~faces.test_dup)
    pick = np.sort(np.random.default_rng(seed).choice(allowed, size=min(count, len(allowed)), replace=False))
    return faces, pick


def fit_task(task: str, args: argparse.Namespace, manifest: Manifest, haar: HaarDetector, raw: dict) -> dict:
    """Per BlazeFace model: geometric dx, dy, scale and the scale of best agreement with the Haar crop."""
    entry = manifest.select(task, args.variant)
    classifier = load_classifier(manifest.verify(entry), LABELS_BY_TASK[task])
    spec = CropSpec(size=classifier.size, margin=entry.preprocessing.crop_margin)
    faces, pick = training_chips(Path(args.data), task, args.chips)
    found: dict[str, list] = {name: [] for name in raw}  # (chip index, Haar box, raw BlazeFace box)
    for i in pick:
        frame = chip_frame(faces.x[i])
        side = faces.x.shape[1] * UPSCALE
        h = largest([b for b in haar.detect(frame) if b[2] >= side // 3])
        if h is None:
            continue
        for name, model in raw.items():
            b = largest([box for box, _ in model.run(frame, 0.5, 0.3)])
            if b is not None and iou(h, b) > MIN_IOU:
                found[name].append((i, h, b))
    out: dict = {}
    for name, rows in found.items():
        if not rows:
            raise DataError(f"{task}: {name} and Haar find no training face in common")
        geo = summary(np.array([geometry(h, b) for _, h, b in rows]))
        dx, dy, geometric = geo["dx"]["median"], geo["dy"]["median"], geo["scale"]["median"]
        scales = [round(round(geometric / 0.02) * 0.02 + 0.02 * k, 2) for k in range(-STEPS, STEPS + 1)]
        haar_crops: list[np.ndarray] = []
        blaze_crops: dict[float, list[np.ndarray]] = {scale: [] for scale in scales}
        for i, h, b in rows:
            frame = chip_frame(faces.x[i])
            haar_crops.append(crop_face(frame, h, spec))
            x0, y0, w, hh = b
            for scale in scales:
                blaze_crops[scale].append(crop_face(frame, BoxMapping(scale, dx, dy).apply(x0, y0, x0 + w, y0 + hh),
                                                    spec))
        labels = faces.y[[i for i, _, _ in rows]]
        via_haar = np.argmax(classifier.predict_as_shipped(np.stack(haar_crops)), axis=1)
        curve = {}
        for scale, crops in blaze_crops.items():
            pred = np.argmax(classifier.predict_as_shipped(np.stack(crops)), axis=1)
            curve[scale] = {"agreement": float(np.mean(pred == via_haar)), "accuracy": float(np.mean(pred == labels))}
        best = max(scales, key=lambda sc: (curve[sc]["agreement"], -abs(sc - geometric)))
        out[name] = {"scale": best, "dx": dx, "dy": dy, "geometric_scale": geometric, "faces": len(rows),
                     "chips": int(len(pick)), "haar_accuracy": float(np.mean(via_haar == labels)),
                     "curve": curve, "scales": scales, "model": entry.file, "data": TRAINING[task][0],
                     "sha256": sha256_file(manifest.path_of(entry))}
        print(f"{task} / {name}: {len(rows)} of {len(pick)} {TRAINING[task][0]} faces found by both; geometric "
              f"scale {geometric:.4f} dx {dx:+.4f} dy {dy:+.4f}; best agreement with the Haar crop at scale "
              f"{best:.2f}: {100 * curve[best]['agreement']:.2f}% (training accuracy "
              f"{100 * curve[best]['accuracy']:.2f}% vs {100 * out[name]['haar_accuracy']:.2f}% through Haar)")
        print("    scale     " + " ".join(f"{sc:6.2f}" for sc in scales))
        print("    agree %   " + " ".join(f"{100 * curve[sc]['agreement']:6.2f}" for sc in scales))
        print("    accuracy %" + " ".join(f"{100 * curve[sc]['accuracy']:6.2f}" for sc in scales))
    return out


def write_per_task(path: Path, fits: dict, command: str) -> None:
    """Store each model's per-task crop mapping under ``box_mapping_by_task``; nothing else changes."""
    body = json.loads(path.read_text())
    for task, per_model in fits.items():
        for name, fit in per_model.items():
            best = fit["curve"][fit["scale"]]
            body["detectors"][name].setdefault("box_mapping_by_task", {})[task] = {
                "scale": fit["scale"], "dx": round(fit["dx"], 4), "dy": round(fit["dy"], 4),
                "geometric_scale": round(fit["geometric_scale"], 4),
                "fit": f"{fit['data']}, {fit['faces']} of {fit['chips']} faces both detectors find: dx, dy the "
                       f"geometric medians; scale on {fit['scales'][0]}-{fit['scales'][-1]} where {fit['model']} "
                       f"(sha256 {fit['sha256'][:12]}) agrees most with its Haar-crop prediction "
                       f"({100 * best['agreement']:.2f}%; training accuracy {100 * best['accuracy']:.2f}% "
                       f"vs {100 * fit['haar_accuracy']:.2f}% through Haar)",
                "command": command}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)


def summary(rows: np.ndarray) -> dict:
    q = np.percentile(rows, [25, 50, 75], axis=0)
    stats = {k: {"median": round(float(q[1, c]), 4), "q25": round(float(q[0, c]), 4), "q75": round(float(q[2, c]), 4)}
             for c, k in enumerate(("scale", "dx", "dy"))}
    return {"pairs": int(len(rows)), **stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train_host.fit_box_mapping", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="../shared/data (FER-2013 and UTKFace .npz)")
    parser.add_argument("--media", help="a folder of photos (../shared/media)")
    parser.add_argument("--chips", type=int, help="test chips per dataset (default 1000; --per-task: 3000)")
    parser.add_argument("--models", default=str(default_models_dir()))
    parser.add_argument("--write", action="store_true", help="store the fitted mapping in the models' manifest")
    parser.add_argument("--per-task", action="store_true",
                        help="fit each classifier's crop on its training faces (--chips of each, default 3000)")
    parser.add_argument("--tasks", default="emotion,gender", help="with --per-task (default emotion,gender)")
    parser.add_argument("--variant", default="int8", help="with --per-task: the classifiers to agree with")
    parser.add_argument("--detectors", default="",
                        help="the manifest's BlazeFace entries to fit, e.g. blazeface_full_int8 (default: every "
                             "BlazeFace entry); the others keep what they have")
    args = parser.parse_args(argv)
    command = ("python -m train_host.fit_box_mapping " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    try:
        manifest = Manifest.load(args.models)
        haar = HaarDetector(manifest.cascade_path(), DetectorSettings())
        known = [name for name, entry in manifest.detectors.items() if entry.get("kind") == "blazeface"]
        chosen = [name for name in args.detectors.split(",") if name] if args.detectors else known
        unknown = [name for name in chosen if name not in known]
        if unknown or not chosen:
            raise DataError(f"--detectors: unknown {', '.join(unknown) or 'empty list'} "
                            f"(the manifest's BlazeFace entries: {', '.join(known)})")
        raw = {name: load_model(manifest, name) for name in dict.fromkeys(chosen)}
        for model in raw.values():
            model.mapping, model.task_mappings = BoxMapping(), {}  # fit on the model's own boxes
        if args.per_task:
            if not args.data:
                raise DataError("--per-task needs --data (FER-2013 Training, UTKFace train)")
            args.chips = 3000 if args.chips is None else args.chips
            fits = {}
            for task in filter(None, args.tasks.split(",")):
                if task not in TRAINING:
                    raise DataError(f"--tasks: unknown task {task!r} (emotion, gender)")
                fits[task] = fit_task(task, args, manifest, haar, raw)
            if args.write:
                write_per_task(Path(args.models) / MANIFEST_NAME, fits, command)
                print(f"written to {Path(args.models) / MANIFEST_NAME}")
            return 0
        args.chips = 1000 if args.chips is None else args.chips
        geo: dict[str, dict[str, list]] = {name: {} for name in raw}
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
    for name in raw:
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
        path = Path(args.models) / MANIFEST_NAME
        body = json.loads(path.read_text())
        for name, fitted in report.items():
            body["detectors"][name]["box_mapping"] = {
                **{k: round(v, 4) for k, v in fitted["mapping"].items()},
                "fit": f"median over {fitted['all']['pairs']} faces both detectors find (IoU > {MIN_IOU}), "
                       f"per source: " + ", ".join(f"{s} {v['pairs']}" for s, v in fitted["per_source"].items()),
                "command": command}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        tmp.replace(path)
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
