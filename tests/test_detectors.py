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

from edge.config import load_config
from edge.detectors import BACKENDS, BlazeFaceSettings, DetectorSettings, ScanSchedule, make_detector
from edge.detectors.blazeface import BlazeFaceDetector, BoxMapping, ssd_anchors, weighted_nms
from edge.detectors.haar import HaarDetector
from edge.manifest import Manifest, ModelError, sha256_file
from edge.pipeline import Pipeline
from edge.settings import ConfigError
from edge.tracking import iou

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
    haar = make_detector(DetectorSettings(), manifest)
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
    """Letterboxed to 640x480, full range finds nothing on the cat and short range scores its face 0.6."""
    from edge.bench.frames import letterbox

    cat = letterbox(cv2.imread(str(samples / "chelsea.jpg")), (640, 480))
    strict = make_detector(DetectorSettings(backend="blazeface"), manifest)
    assert strict.main.run(cat, 0.5, 0.3) == [] and strict.detect(cat) == []
    lax = DetectorSettings(backend="blazeface", blazeface=BlazeFaceSettings(fallback_threshold=0.5))
    assert len(make_detector(lax, manifest).detect(cat)) == 1


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
    haar = make_detector(DetectorSettings(), manifest)
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
    for name in ("blazeface_full", "blazeface_short"):
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
    (broken_models / "face_detection_full_range.tflite").unlink()
    line = one_error_line(analyze(str(samples / "astronaut.jpg"), "--detector", "blazeface",
                                  "--models", str(broken_models)))
    assert "face_detection_full_range.tflite" in line and "missing" in line


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
    target = broken_models / "face_detection_full_range.tflite"
    shutil.copy(broken_models / "emotion_mini_xception_float32.tflite", target)
    body = json.loads((broken_models / "manifest.json").read_text())
    body["detectors"]["blazeface_full"]["sha256"] = sha256_file(target)
    (broken_models / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(ModelError, match=r"face_detection_full_range\.tflite: input") as info:
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
    assert again.detectors == manifest.detectors and set(again.detectors) == {"blazeface_full", "blazeface_short"}
    make_detector(DetectorSettings(backend="blazeface"), again)
