"""The Detector interface and the BlazeFace backend on real photos; bad model files and backend names refused."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detectors import BACKENDS, BlazeFaceSettings, DetectorSettings, ScanSchedule, make_detector
from edge.detectors.blazeface import BlazeFaceDetector, BoxMapping, ssd_anchors, weighted_nms
from edge.detectors.haar import HaarDetector
from edge.frame.manifest import Manifest, ModelError, sha256_file
from edge.frame.pipeline import Pipeline
from edge.frame.tracking import iou
from edge.service.config import load_config
from edge.settings import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def manifest(models_dir):
    return Manifest.load(models_dir)


@pytest.fixture(scope="module")
def blazeface(manifest):
    return make_detector(DetectorSettings(backend="blazeface"), manifest)


def expected_faces(samples) -> dict[str, int]:
    """samples/manifest.csv: the faces a person counts (``1 (profile, occluded)`` counts 1)."""
    with open(samples / "manifest.csv", newline="") as handle:
        return {row["file"]: int(row["expected_faces"].split()[0]) for row in csv.DictReader(handle)}


def test_make_detector_builds_each_backend_behind_one_interface(manifest, blazeface):
    haar = make_detector(DetectorSettings(backend="haar"), manifest)
    assert isinstance(haar, HaarDetector) and not haar.color
    assert isinstance(blazeface, BlazeFaceDetector) and blazeface.color
    for detector in (haar, blazeface):
        assert callable(detector.detect) and callable(detector.detect_near)


def test_blazeface_finds_every_face_a_person_counts_in_samples_and_none_on_the_negatives(blazeface, samples):
    for name, want in expected_faces(samples).items():
        boxes = blazeface.detect(cv2.imread(str(samples / name)))
        assert len(boxes) == want, name
        for _x, _y, w, h in boxes:
            assert w == h and w > 30  # Haar-like squares
        assert [b[2] for b in boxes] == sorted((b[2] for b in boxes), reverse=True)  # largest first


def test_the_short_range_fallback_needs_a_higher_score_than_the_cat_gets(manifest, samples):
    """Letterboxed to 640x480, full range finds nothing on the cat; short range at the frame's aspect scores
    its face just under 0.5, so the shipped 0.55 keeps it out and 0.45 lets it in."""
    from edge.bench.frames import letterbox

    cat = letterbox(cv2.imread(str(samples / "chelsea.jpg")), (640, 480))
    strict = make_detector(DetectorSettings(backend="blazeface"), manifest)
    assert strict.main.run(cat, 0.5, 0.3) == [] and strict.detect(cat) == []
    lax = DetectorSettings(backend="blazeface", blazeface=BlazeFaceSettings(fallback_threshold=0.45))
    assert len(make_detector(lax, manifest).detect(cat)) == 1


def closeup(samples, name: str) -> np.ndarray:
    """The largest face of a sample photo cut to its Haar box, so it fills the picture (a face at arm's length,
    as tight as a UTKFace chip)."""
    image = cv2.imread(str(samples / name))
    haar = HaarDetector(Manifest.load(ROOT / "models").cascade_path(), DetectorSettings(backend="haar"))
    x, y, w, h = haar.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))[0]
    return cv2.resize(image[y:y + h, x:x + w], (200, 200))


def test_close_ups_that_the_full_range_model_misses_are_found_by_the_fallback(blazeface, samples):
    found_by_full = 0
    for name in ("astronaut.jpg", "biden.jpg", "obama_720p.jpg", "two_people.jpg"):
        face = closeup(samples, name)
        found_by_full += bool(blazeface.main.run(face, 0.5, 0.3))
        boxes = blazeface.detect(face)
        assert len(boxes) == 1, name
        assert boxes[0][2] > 100  # the face fills the picture
    assert found_by_full == 0  # the fallback is what finds them


def test_the_short_model_runs_at_the_frames_aspect_without_letterbox(manifest, samples):
    """At 96x128 for a 4:3 frame the short model sees the face as large as at 128x128 letterboxed, with no
    padding rows, and finds the same faces; the int8 full-range model has a fixed shape and says so."""
    from edge.bench.frames import letterbox
    from edge.detectors.blazeface import load_model

    short = load_model(manifest, "blazeface_short")
    assert short.shape_for(480, 640, 128) == (96, 128) and short.shape_for(640, 480, 128) == (128, 96)
    frame = letterbox(cv2.imread(str(samples / "astronaut.jpg")), (640, 480))
    square, _ = short.raw(frame, 0.5, 0.3)
    fitted, _ = short.raw(frame, 0.5, 0.3, side=128)
    assert len(square) == len(fitted) == 1
    assert np.abs(square[0] - fitted[0]).max() < 12  # px, on a face ~190 px wide
    assert short.reshaped(96, 128).interpreter.get_input_details()[0]["shape"].tolist() == [1, 96, 128, 3]
    with pytest.raises(ModelError, match="cannot run at 128x96"):
        load_model(manifest, "blazeface_full_int8").raw(frame, 0.5, 0.3, side=128)


def test_a_4_3_frame_runs_at_160x192_and_finds_the_faces_of_the_square_graph(manifest, samples):
    """The manifest's 160x192 and 192x160 graphs hold 4:3 frames (and 16:9 ones) at the square's scale with
    17% fewer pixels; a frame they would shrink stays on the square. Same faces, same places; none on the
    negatives at their own size or at 640x480. (Letterboxed upright, 480x640, the coins get a box scoring just
    over 0.5 from both graphs: 0.54 from the square, 0.53 and 0.53 from 192x160.)"""
    from edge.bench.frames import letterbox
    from edge.detectors.blazeface import load_model

    fitted = load_model(manifest, "blazeface_full_int8")
    square = load_model(manifest, "blazeface_full_int8", graphs=False)
    assert set(fitted.native) == {(192, 192), (160, 192), (192, 160)} and set(square.native) == {(192, 192)}
    assert fitted.shape_for(480, 640, None) == (160, 192) and fitted.shape_for(640, 480, None) == (192, 160)
    assert fitted.shape_for(720, 1280, None) == (160, 192)
    assert fitted.shape_for(560, 600, None) == fitted.shape_for(200, 200, None) == (192, 192)
    assert square.shape_for(480, 640, None) == (192, 192)
    assert fitted.reshaped(160, 192).interpreter.get_input_details()[0]["shape"].tolist() == [1, 160, 192, 3]
    faces = 0
    for name, count in expected_faces(samples).items():
        photo = cv2.imread(str(samples / name))
        for frame in (photo, letterbox(photo, (640, 480))) + ((letterbox(photo, (480, 640)),) if count else ()):
            want, got = square.raw(frame, 0.5, 0.3)[0], fitted.raw(frame, 0.5, 0.3)[0]
            assert len(got) == len(want), name
            for box in want:
                side = box[2] - box[0]
                assert np.abs(got - box).max(axis=1).min() < 0.1 * side, name
            faces += len(want)
    assert faces >= 15


def test_a_tampered_aspect_graph_is_refused_and_the_square_one_still_runs_without_it(broken_models, samples):
    path = broken_models / "face_detection_full_range_int8_160x192.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    line = one_error_line(analyze(str(samples / "astronaut.jpg"), "--models", str(broken_models)))
    assert "face_detection_full_range_int8_160x192.tflite" in line and "sha256" in line
    proc = analyze(str(samples / "astronaut.jpg"), "--no-blazeface-aspect-graphs", "--models", str(broken_models))
    assert proc.returncode == 0, proc.stderr


def test_the_near_search_runs_the_short_model_at_near_side_on_the_window(manifest, samples, monkeypatch):
    """At 640x480 the windows around the samples' faces are 150-250 px: the short model gets them at
    ``near_side`` (128 by default; here 80) on the long side, halved then bilinear, and finds each face again."""
    from edge.bench.frames import letterbox
    from edge.detectors import blazeface as module

    assert DetectorSettings().blazeface.near_side == 128
    detector = make_detector(DetectorSettings(blazeface=BlazeFaceSettings(near_side=80)), manifest)
    shapes, resizes = [], []
    original_raw, original_shrink = module.BlazeFaceModel.raw, module.shrink

    def raw(self, image, *args, **kwargs):
        shapes.append(self.shape_for(*image.shape[:2], kwargs.get("side", args[3] if len(args) > 3 else None)))
        return original_raw(self, image, *args, **kwargs)

    monkeypatch.setattr(module.BlazeFaceModel, "raw", raw)
    monkeypatch.setattr(module, "shrink", lambda image, w, h, halve=False: (
        resizes.append((image.shape[:2], halve)), original_shrink(image, w, h, halve))[1])
    found = 0
    for name in ("astronaut.jpg", "biden.jpg", "obama_720p.jpg", "two_people.jpg"):
        frame = letterbox(cv2.imread(str(samples / name)), (640, 480))
        known = detector.detect(frame)
        shapes.clear(), resizes.clear()
        again = detector.detect_near(frame, known)
        assert shapes and all(max(shape) == 80 for shape in shapes), shapes
        assert resizes and all(halve and rows % 2 == 0 and cols % 2 == 0 for (rows, cols), halve in resizes)
        assert len(again) == len(known), name
        for box in known:
            assert max(iou(box, other) for other in again) > 0.6, name
        found += len(again)
    assert found == 5


def test_small_faces_scans_tiles_and_finds_faces_the_whole_frame_scan_misses(manifest, samples):
    """The two people of a sample shrunk to 25-33 px faces in a 640x480 frame: too small for the whole-frame
    scan at its threshold (the small-face second look finds one of them at most), found in the tiles wherever
    they stand."""
    from edge.detectors.blazeface import tiles

    image = cv2.imread(str(samples / "two_people.jpg"))
    small = cv2.resize(image, (image.shape[1] // 6, image.shape[0] // 6), interpolation=cv2.INTER_AREA)
    plain = make_detector(DetectorSettings(backend="blazeface", blazeface=BlazeFaceSettings(small_face_threshold=0.5)),
                          manifest)
    default = make_detector(DetectorSettings(backend="blazeface"), manifest)
    tiled = make_detector(DetectorSettings(backend="blazeface", blazeface=BlazeFaceSettings(small_faces=True)),
                          manifest)
    for top, left in ((150, 200), (10, 10), (200, 300)):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[top:top + small.shape[0], left:left + small.shape[1]] = small
        assert plain.detect(frame) == [] and len(default.detect(frame)) <= 1
        found = tiled.detect(frame)
        assert len(found) == 2 and all(20 <= b[2] <= 40 for b in found)
        assert all(left <= b[0] and top <= b[1] for b in found)
    assert tiles(480, 640) == [(0, 0, 352, 264), (288, 0, 640, 264), (0, 216, 352, 480), (288, 216, 640, 480)]
    for name in ("chelsea.jpg", "coins.png"):  # and no face on the negatives
        assert tiled.detect(cv2.imread(str(samples / name))) == []


def test_blazeface_works_on_a_gray_frame_too(blazeface, samples):
    """picamera2's lores stream is gray only: the detector replicates it to three channels."""
    image = cv2.imread(str(samples / "two_people.jpg"))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    colour_boxes, gray_boxes = blazeface.detect(image), blazeface.detect(gray)
    assert len(gray_boxes) == len(colour_boxes) == 2
    for box in gray_boxes:
        assert max(iou(box, other) for other in colour_boxes) > 0.8


def test_the_fitted_mapping_brings_blazeface_boxes_closer_to_haar_boxes(manifest, blazeface, samples):
    """The classifiers were trained on Haar-like crops: mapped boxes must overlap Haar's better than raw ones."""
    haar = make_detector(DetectorSettings(backend="haar"), manifest)
    raw_mapping = BoxMapping()
    mapped, raw = [], []
    for name in ("astronaut.jpg", "two_people.jpg", "biden.jpg", "obama_720p.jpg"):
        image = cv2.imread(str(samples / name))
        haar_boxes = haar.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        fitted = blazeface.main.mapping
        try:
            blazeface.main.mapping = raw_mapping
            raw_boxes = blazeface.main.run(image, 0.5, 0.3)
        finally:
            blazeface.main.mapping = fitted
        for box, _ in raw_boxes:
            x0, y0, w, h = box  # identity mapping: the model's own square
            best = max(haar_boxes, key=lambda b: iou(b, box), default=None)
            if best is None or iou(best, box) < 0.3:
                continue
            raw.append(iou(best, box))
            mapped.append(iou(best, fitted.apply(x0, y0, x0 + w, y0 + h)))
    assert len(mapped) >= 4
    assert np.mean(mapped) > np.mean(raw) and np.mean(mapped) > 0.75


def test_detect_near_finds_the_known_faces_again_and_nothing_where_there_is_none(blazeface, samples):
    image = cv2.imread(str(samples / "two_people.jpg"))
    known = blazeface.detect(image)
    again = blazeface.detect_near(image, known)
    assert len(again) == 2
    for box in known:
        assert max(iou(box, other) for other in again) > 0.6
    empty = (10, image.shape[0] - 110, 100, 100)  # bottom-left corner: wall, no face
    assert all(iou(empty, b) == 0 for b in known)
    assert blazeface.detect_near(image, [empty]) == []


def test_weighted_nms_merges_overlapping_boxes_into_their_score_weighted_mean():
    boxes = np.array([[0.10, 0.10, 0.30, 0.30], [0.12, 0.11, 0.32, 0.31], [0.60, 0.60, 0.80, 0.80]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    merged, kept = weighted_nms(boxes, scores, 0.3)
    assert kept.tolist() == pytest.approx([0.9, 0.7])
    want = (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5
    np.testing.assert_allclose(merged[0], want, rtol=1e-6)
    np.testing.assert_allclose(merged[1], boxes[2])
    assert weighted_nms(boxes[:0], scores[:0], 0.3)[0].shape == (0, 4)


def test_anchors_match_each_model_output_rows(manifest):
    for name in ("blazeface_full", "blazeface_short", "blazeface_full_int8"):
        entry = manifest.detector_entry(name)
        anchors = ssd_anchors(entry["input"]["height"], entry["anchors"]["strides"], entry["anchors"]["per_layer"])
        assert len(anchors) == entry["outputs"]["scores"][1]
        assert anchors.min() > 0 and anchors.max() < 1


def test_the_schedule_scans_fully_every_n_frames_and_searches_near_tracks_in_between(blazeface, samples):
    image = cv2.imread(str(samples / "astronaut.jpg"))
    schedule = ScanSchedule(blazeface, full_scan_every=4)
    tracked: list = []
    modes = []
    for _ in range(9):
        boxes, mode = schedule.scan(image, tracked)
        modes.append(mode)
        tracked = boxes
        assert len(boxes) == 1
    assert modes == ["full", "roi", "roi", "roi", "full", "roi", "roi", "roi", "full"]
    assert schedule.scan(image, None)[1] == "full"  # an independent photo


def test_pipeline_with_blazeface_labels_every_face(models_dir, samples):
    pipeline = Pipeline.from_models(detector=DetectorSettings(backend="blazeface"), track=False)
    result = pipeline.process(cv2.imread(str(samples / "two_people.jpg")), independent=True)
    assert len(result.faces) == 2
    assert all(face.gender == "man" for face in result.faces)  # two men, official portraits


# --- bad input: one line naming the file or listing the backends ---

def copy_models(models_dir: Path, to: Path) -> Path:
    shutil.copytree(models_dir, to, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
    return to


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", "analyze", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error") or "Traceback" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture
def broken_models(models_dir, tmp_path):
    return copy_models(models_dir, tmp_path / "models")


def test_a_missing_detector_model_is_refused_naming_the_file(broken_models, samples):
    (broken_models / "face_detection_full_range_int8.tflite").unlink()
    line = one_error_line(analyze(str(samples / "astronaut.jpg"), "--detector", "blazeface",
                                  "--models", str(broken_models)))
    assert "face_detection_full_range_int8.tflite" in line and "missing" in line
    # MediaPipe's float files are still there: the float32 variant runs without the int8 one
    proc = analyze(str(samples / "astronaut.jpg"), "--detector", "blazeface", "--blazeface-model", "full_float32",
                   "--models", str(broken_models))
    assert proc.returncode == 0, proc.stderr


def test_a_tampered_detector_model_is_refused_naming_the_file(broken_models, samples):
    path = broken_models / "face_detection_short_range.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    line = one_error_line(analyze(str(samples / "astronaut.jpg"), "--detector", "blazeface",
                                  "--models", str(broken_models)))
    assert "face_detection_short_range.tflite" in line and "sha256" in line


def test_a_detector_model_with_other_outputs_is_refused_naming_the_file(broken_models, manifest):
    """A loadable TFLite model that is not BlazeFace (the emotion classifier, listed with its true sha256)."""
    target = broken_models / "face_detection_full_range_int8.tflite"
    shutil.copy(broken_models / "emotion_mini_xception_float32.tflite", target)
    body = json.loads((broken_models / "manifest.json").read_text())
    body["detectors"]["blazeface_full_int8"]["sha256"] = sha256_file(target)
    (broken_models / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(ModelError, match=r"face_detection_full_range_int8\.tflite: input") as info:
        make_detector(DetectorSettings(backend="blazeface"), Manifest.load(broken_models))
    assert "\n" not in str(info.value)


def test_a_detector_model_with_wrong_output_shapes_is_refused(manifest):
    """The short-range model decoded with the full-range anchors: 896 output rows, 2304 anchors."""
    from edge.detectors.blazeface import BlazeFaceModel

    with pytest.raises(ModelError, match=r"face_detection_short_range\.tflite: outputs .* not BlazeFace's"):
        BlazeFaceModel(manifest.root / "face_detection_short_range.tflite", [2], 1, BoxMapping())


def test_an_unknown_backend_is_refused_in_one_line_listing_the_known_ones(tmp_path, samples):
    line = one_error_line(analyze(str(samples / "astronaut.jpg"), "--detector", "yunet"))
    assert all(name in line for name in BACKENDS) and "yunet" in line
    config = tmp_path / "config.toml"
    config.write_text('[detector]\nbackend = "yunet"\n')
    with pytest.raises(ConfigError, match="detector.backend: expected one of 'haar', 'blazeface'"):
        load_config(config)


def test_blazeface_keys_are_checked_like_every_other_key(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[detector]\nbackend = "blazeface"\n[detector.blazeface]\nmodel = "short"\nthreshold = 0.4\n')
    with pytest.raises(ConfigError, match=r"detector\.blazeface\.threshold: unknown key \(known: .*score_threshold"):
        load_config(config)
    config.write_text('[detector]\nbackend = "blazeface"\n[detector.blazeface]\nscore_threshold = 1.5\n')
    with pytest.raises(ConfigError, match=r"detector\.blazeface\.score_threshold: 1\.5 is outside"):
        load_config(config)
    config.write_text('[detector]\n[detector.blazeface]\nfallback_threshold = 0\n')
    with pytest.raises(ConfigError, match=r"detector\.blazeface\.fallback_threshold: 0\.0 is outside"):
        load_config(config)
    config.write_text('[detector]\nbackend = "blazeface"\n[detector.blazeface]\nmodel = "short"\nfallback = false\n')
    settings = load_config(config).detector
    assert settings.backend == "blazeface" and settings.blazeface.model == "short" and not settings.blazeface.fallback


def test_rewriting_the_manifest_keeps_the_detectors_section(models_dir, tmp_path):
    """quantize.publish loads and saves the manifest: the detector entries must survive that."""
    models = copy_models(models_dir, tmp_path / "models")
    manifest = Manifest.load(models)
    manifest.models = manifest.models[:1]
    manifest.save()
    again = Manifest.load(models)
    assert again.detectors == manifest.detectors and set(again.detectors) == {
        "blazeface_full", "blazeface_short", "blazeface_full_int8"}
    make_detector(DetectorSettings(backend="blazeface"), again)


# --- the optimised detect stage gives what the straightforward one gives ---

def decode_every_anchor(logits: np.ndarray, regressors: np.ndarray, anchors: np.ndarray, size: int,
                        threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The straightforward decoding: sigmoid on every score, a box for every anchor (float64), then threshold."""
    with np.errstate(over="ignore"):  # exp(large) = inf: a score of 0, as it should be
        scores = 1 / (1 + np.exp(-logits.astype(np.float64)))
    raw = regressors[:, :4].astype(np.float64) / size
    centre = raw[:, :2] + anchors
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keep = (scores > threshold) & np.all(half > 0, axis=1)
    return boxes[keep], scores[keep]


@pytest.mark.parametrize("name", ["blazeface_full", "blazeface_short", "blazeface_full_int8"])
def test_decoding_only_the_anchors_above_the_threshold_gives_the_boxes_of_decoding_every_anchor(manifest, samples,
                                                                                                 name):
    from edge.bench.frames import letterbox
    from edge.detectors.blazeface import decode, load_model

    model = load_model(manifest, name)
    seen = 0
    for path in sorted(samples.glob("*.*g")):
        for image in (cv2.imread(str(path)), letterbox(cv2.imread(str(path)), (640, 480))):
            model.raw(image, 0.5, 0.3)  # leaves this image's outputs in the interpreter
            logits = model.interpreter.get_tensor(model._scores).reshape(-1)
            regressors = model.interpreter.get_tensor(model._boxes)[0]
            for threshold in (0.3, 0.5, 0.7):
                fast_boxes, fast_scores = decode(logits, regressors, model.anchors, model.size, threshold)
                want_boxes, want_scores = decode_every_anchor(logits, regressors, model.anchors, model.size,
                                                              threshold)
                assert fast_boxes.shape == want_boxes.shape
                np.testing.assert_allclose(fast_boxes, want_boxes, atol=1e-6)
                np.testing.assert_allclose(fast_scores, want_scores, rtol=1e-5)
                seen += len(want_boxes)
    assert seen > 20  # the samples' faces give candidate boxes at every threshold


def nms_one_top_at_a_time(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The straightforward weighted NMS: the overlaps of the best remaining box computed anew for each group."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    remaining, kept_boxes, kept_scores = np.arange(len(scores)), [], []
    while remaining.size:
        top = remaining[0]
        x0, y0 = np.maximum(boxes[top, 0], boxes[remaining, 0]), np.maximum(boxes[top, 1], boxes[remaining, 1])
        x1, y1 = np.minimum(boxes[top, 2], boxes[remaining, 2]), np.minimum(boxes[top, 3], boxes[remaining, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = areas[top] + areas[remaining] - inter
        group = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0) > threshold
        group[0] = True
        weights = scores[remaining[group]]
        kept_boxes.append((boxes[remaining[group]] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(scores[top])
        remaining = remaining[~group]
    return np.array(kept_boxes, np.float32).reshape(-1, 4), np.array(kept_scores, np.float32)


def test_weighted_nms_over_all_pairs_at_once_gives_the_boxes_of_one_top_at_a_time(manifest, samples):
    """On every sample's candidates (both models, three thresholds) and on random crowds of boxes."""
    from edge.bench.frames import letterbox
    from edge.detectors.blazeface import decode, load_model

    cases = []
    for name in ("blazeface_full_int8", "blazeface_short"):
        model = load_model(manifest, name, graphs=False)
        for path in sorted(samples.glob("*.*g")):
            for image in (cv2.imread(str(path)), letterbox(cv2.imread(str(path)), (640, 480))):
                model.raw(image, 0.5, 0.3)
                logits = model.interpreter.get_tensor(model._scores).reshape(-1)
                regressors = model.interpreter.get_tensor(model._boxes)[0]
                cases += [decode(logits, regressors, model.anchors, model.size, t) for t in (0.3, 0.5, 0.7)]
    rng = np.random.default_rng(0)
    for count in (2, 5, 40):
        centre, half = rng.uniform(0.2, 0.8, (count, 2)), rng.uniform(0.02, 0.2, (count, 1))
        cases.append((np.hstack([centre - half, centre + half]).astype(np.float32),
                      rng.uniform(0.5, 1, count).astype(np.float32)))
    merged = 0
    for boxes, scores in cases:
        for threshold in (0.3, 0.5):
            got, want = weighted_nms(boxes, scores, threshold), nms_one_top_at_a_time(boxes, scores, threshold)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7)
            merged += len(scores) - len(got[1])
    assert merged > 50  # candidates were actually merged, not just passed through


def test_shrink_stays_close_to_inter_area_and_finds_the_same_faces(manifest, samples, monkeypatch):
    """The two-step resize (integer-factor area average, then bilinear) replaced a plain INTER_AREA; the near
    search's ``halve`` (bilinear to twice the size, then an exact halving, below 2x) stays as close to it."""
    from edge.bench.frames import letterbox
    from edge.detectors import blazeface as module

    frames = [letterbox(cv2.imread(str(p)), (640, 480)) for p in sorted(samples.glob("*.*g"))]
    for frame in frames:
        fast = module.shrink(frame, 192, 144).astype(int)
        area = cv2.resize(frame, (192, 144), interpolation=cv2.INTER_AREA).astype(int)
        assert fast.shape == area.shape and np.abs(fast - area).mean() < 1.5
    odd = np.zeros((479, 641, 3), np.uint8)  # no integer factor divides both sides: plain INTER_AREA
    np.testing.assert_array_equal(module.shrink(odd, 192, 143), cv2.resize(odd, (192, 143),
                                                                            interpolation=cv2.INTER_AREA))
    chip = cv2.resize(frames[0], (288, 288))  # under 3x (a FER-2013 chip for the short model): plain INTER_AREA
    np.testing.assert_array_equal(module.shrink(chip, 128, 128), cv2.resize(chip, (128, 128),
                                                                             interpolation=cv2.INTER_AREA))
    for y0, x0, side in ((50, 400, 196), (50, 400, 240), (100, 300, 160), (0, 0, 300)):  # windows, 1.25-2.3x
        window = frames[-1][y0:y0 + side, x0:x0 + side]
        halved = module.shrink(window, 128, 128, halve=True).astype(int)
        area = cv2.resize(window, (128, 128), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(halved - area).mean() < 1.5
    detector = make_detector(DetectorSettings(backend="blazeface"), manifest)
    fast_boxes = [detector.detect(frame) for frame in frames]
    fast_near = [detector.detect_near(frame, boxes) for frame, boxes in zip(frames, fast_boxes)]
    monkeypatch.setattr(module, "shrink", lambda image, w, h, _halve=False: cv2.resize(image, (w, h), interpolation=(
        cv2.INTER_AREA if w < image.shape[1] else cv2.INTER_LINEAR)))
    area_boxes = [detector.detect(frame) for frame in frames]
    area_near = [detector.detect_near(frame, boxes) for frame, boxes in zip(frames, fast_boxes)]
    assert [len(b) for b in fast_near] == [len(b) for b in area_near] and sum(map(len, fast_near)) >= 5
    for fast, area in zip(fast_near, area_near):
        for box in fast:
            assert max(iou(box, other) for other in area) > 0.8
    assert [len(b) for b in fast_boxes] == [len(b) for b in area_boxes] and sum(map(len, fast_boxes)) >= 5
    for fast, area in zip(fast_boxes, area_boxes):
        for box in fast:
            assert max(iou(box, other) for other in area) > 0.9


# --- a crop per classifier ---

def with_task_mappings(models_dir: Path, to: Path, mappings: dict) -> Manifest:
    models = copy_models(models_dir, to)
    body = json.loads((models / "manifest.json").read_text())
    for name in ("blazeface_full", "blazeface_short", "blazeface_full_int8"):
        body["detectors"][name]["box_mapping_by_task"] = mappings
    (models / "manifest.json").write_text(json.dumps(body))
    return Manifest.load(models)


def test_each_classifier_gets_the_crop_its_task_mapping_draws(models_dir, tmp_path, samples, monkeypatch):
    from edge.detectors import FaceBox, crop_box

    manifest = with_task_mappings(models_dir, tmp_path / "models", {"gender": {"scale": 1.5, "dx": 0, "dy": 0.1}})
    detector = make_detector(DetectorSettings(backend="blazeface"), manifest)
    image = cv2.imread(str(samples / "two_people.jpg"))
    boxes = detector.detect(image)
    assert len(boxes) == 2
    pooled = detector.main.mapping.scale
    for box in boxes:
        assert isinstance(box, FaceBox) and crop_box(box, "emotion") == box  # no emotion mapping: the box itself
        x, y, w, h = box
        gx, gy, gw, gh = crop_box(box, "gender")
        assert gw == gh and gw / w == pytest.approx(1.5 / pooled, abs=0.03)
        assert gy + gh / 2 > y + h / 2  # dy 0.1: the gender crop's centre is lower
    for box in detector.detect_near(image, boxes):  # the near search's crops are in frame coordinates too
        gx, gy, gw, _ = crop_box(box, "gender")
        assert abs((gx + gw / 2) - (box[0] + box[2] / 2)) < 0.1 * box[2]
    # the pipeline cuts the gender input from the gender crop, the emotion input from the box
    import edge.frame.pipeline as pipeline_module

    seen: list[tuple] = []
    real = pipeline_module.crop_face
    monkeypatch.setattr(pipeline_module, "crop_face", lambda gray, box, spec: seen.append(tuple(box)) or real(
        gray, box, spec))
    pipeline = Pipeline.from_models(models=pipeline_module.ModelSettings(dir=str(manifest.root), joint=False),
                                    detector=DetectorSettings(backend="blazeface"), track=False)
    assert len(pipeline.process(image, independent=True).faces) == 2
    assert sorted(seen) == sorted([tuple(b) for b in boxes] + [crop_box(b, "gender") for b in boxes])
    # the joint file (the default) has one input for both heads: each face is cut once, with emotion's mapping
    seen.clear()
    joint = Pipeline.from_models(models=pipeline_module.ModelSettings(dir=str(manifest.root)),
                                 detector=DetectorSettings(backend="blazeface"), track=False)
    assert joint.joint and len(joint.process(image, independent=True).faces) == 2
    assert sorted(seen) == sorted(tuple(b) for b in boxes)


def test_a_manifest_without_task_mappings_cuts_every_classifier_from_the_box(blazeface, samples):
    """Backward compatible: manifests written before ``box_mapping_by_task`` keep the pooled mapping."""
    from edge.detectors import crop_box

    blazeface.main.task_mappings, saved = {}, blazeface.main.task_mappings
    try:
        for box in blazeface.detect(cv2.imread(str(samples / "two_people.jpg"))):
            assert crop_box(box, "emotion") == crop_box(box, "gender") == box
    finally:
        blazeface.main.task_mappings = saved
    assert crop_box((1, 2, 3, 3), "gender") == (1, 2, 3, 3)  # a plain tuple (Haar's boxes)


def test_the_profile_times_every_step_of_each_backend_and_refuses_bad_input(tmp_path, capsys):
    from edge.bench import profile

    assert profile.main(["--repeat", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    blaze, _, haar = out.partition("haar (paper mode): ")
    assert blaze.startswith("blazeface, model full at 160x192 (HxW), 1 thread(s): 7 frames")
    for step in profile.STEPS:
        assert f"\n{step} " in blaze
    for step in profile.HAAR_STEPS:
        assert f"\n{step} " in haar
    assert profile.main(["--source", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {tmp_path}: no readable images"]
    assert profile.main(["--backends", "yolo"]) == 2
    assert capsys.readouterr().err.strip() == "error: --backends: unknown yolo (known: haar, blazeface)"


def test_a_crowd_of_small_known_faces_is_found_again_without_scanning_the_tiles(manifest, samples, monkeypatch):
    """From three known faces on, the near search runs one whole-frame scan (no tiles: a stream pays for
    those only at its periodic full scans) and looks for the small faces it misses one by one."""
    import edge.detectors.blazeface as blazeface_module

    image = cv2.imread(str(samples / "two_people.jpg"))
    small = cv2.resize(image, (image.shape[1] // 6, image.shape[0] // 6), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[20:20 + small.shape[0], 20:20 + small.shape[1]] = small
    frame[300:300 + small.shape[0], 400:400 + small.shape[1]] = small
    tiled = make_detector(DetectorSettings(backend="blazeface", blazeface=BlazeFaceSettings(small_faces=True)),
                          manifest)
    known = tiled.detect(frame)
    assert len(known) == 4
    scans = []
    real_tiles = blazeface_module.tiles
    monkeypatch.setattr(blazeface_module, "tiles", lambda *a: scans.append(a) or real_tiles(*a))
    again = tiled.detect_near(frame, known)
    assert scans == []
    for box in known:
        assert max(iou(box, other) for other in again) > 0.6


def _small_face_frame(samples: Path, name: str, width: int, detector) -> np.ndarray:
    """The sample's largest face scaled to ``width`` px, its picture cut to 640x480 around it over coins.png."""
    image = cv2.imread(str(samples / name))
    x, y, w, h = detector.detect(image)[0]
    scale = width / w
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cx, cy = int((x + w / 2) * scale), int((y + h / 2) * scale)
    piece = small[max(0, cy - 240):max(0, cy - 240) + 480, max(0, cx - 320):max(0, cx - 320) + 640]
    frame = cv2.resize(cv2.imread(str(samples / "coins.png")), (640, 480))
    frame[:piece.shape[0], :piece.shape[1]] = piece
    return frame


@pytest.mark.parametrize("name, width", [("obama_720p.jpg", 34), ("two_people.jpg", 36)])
def test_a_small_face_the_full_range_model_is_unsure_of_counts_once_the_short_model_confirms_it(
        manifest, blazeface, samples, name, width):
    """Scored between small_face_threshold and score_threshold, a 34-36 px face is kept after the second look;
    at small_face_threshold = score_threshold (off) it is missed. The boxes above the threshold are the same."""
    frame = _small_face_frame(samples, name, width, blazeface)
    off = make_detector(DetectorSettings(blazeface=BlazeFaceSettings(small_face_threshold=0.5)), manifest)
    found, without = blazeface.detect(frame), off.detect(frame)
    assert without == [] and len(found) == 1
    assert abs(found[0][2] - width * 1.05) < 0.3 * width  # about the face's own size, where it is
    scores = [score for _, score in blazeface.main.run(frame, 0.5, 0.3, small_boxes=(0.4, 0.075))]
    assert scores and all(0.4 <= s < 0.5 for s in scores)  # only a weak box: the strong set is empty as before


def test_the_small_face_rule_leaves_large_faces_and_the_negatives_as_they_were(manifest, blazeface, samples):
    off = make_detector(DetectorSettings(blazeface=BlazeFaceSettings(small_face_threshold=0.5)), manifest)
    for path in sorted(samples.glob("*.jpg")) + sorted(samples.glob("*.png")):
        image = cv2.imread(str(path))
        assert blazeface.detect(image) == off.detect(image), path.name
