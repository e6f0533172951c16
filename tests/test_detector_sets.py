"""The detector table's tool: specs parsed and checked, faces placed at the asked size, counts per photo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detectors import DetectorSettings, make_detector
from edge.frame.manifest import Manifest
from train_host import detector_sets as sets

ROOT = Path(__file__).resolve().parent.parent


def test_detector_specs_are_settings_with_overrides_and_bad_ones_are_one_line():
    assert sets.parse_detector("haar") == DetectorSettings(backend="haar")
    small = sets.parse_detector("blazeface:small_faces=true:fallback_threshold=0.6")
    assert small.backend == "blazeface" and small.blazeface.small_faces and small.blazeface.fallback_threshold == 0.6
    assert sets.parse_detector("haar:min_neighbors=3").min_neighbors == 3
    for bad, why in (("yolo", "unknown backend"), ("blazeface:colour=1", "not KEY=VALUE"),
                     ("blazeface:model=huge", "model: expected one of"),
                     ("blazeface:small_faces=maybe", "is not a bool"), ("haar:min_size=big", "is not a int")):
        with pytest.raises(sets.SetsError, match=why):
            sets.parse_detector(bad)


def test_a_face_is_placed_at_the_asked_width_inside_a_640x480_window(samples):
    image = cv2.imread(str(samples / "two_people.jpg"))
    rng = np.random.default_rng(0)
    for width in (24, 66, 120):
        frame, (x, y, w, h) = sets.place_face(image, (240, 47, 161, 161), width, rng)
        assert frame.shape == (480, 640, 3) and w == h == width
        assert x >= 0 and x + w <= 640 and y >= 0 and y + h <= 480


def test_media_counts_are_per_photo_against_the_person_counts(samples, models_dir):
    positives, negatives = sets.read_media(samples)
    assert {name for name, _, _ in positives} >= {"two_people.jpg", "astronaut.jpg"}
    assert {name for name, _ in negatives} == {"chelsea.jpg", "coins.png"}
    manifest = Manifest.load(models_dir)
    detectors = {"haar": make_detector(DetectorSettings(backend="haar"), manifest),
                 "blazeface": make_detector(DetectorSettings(backend="blazeface"), manifest)}
    tallies = sets.media_tallies(detectors, positives, negatives, sets.FRAME)
    assert tallies["haar"].total == tallies["blazeface"].total == 6
    assert tallies["blazeface"].found == 6 and tallies["blazeface"].false == 0  # the profile in camera.png too
    assert tallies["haar"].found == 5 and tallies["haar"].false_on["coins.png"] >= 6
    assert tallies["blazeface"].fewer_than_haar == [] and tallies["haar"].fewer_than_haar == []
    times = sets.frame_times(detectors, [cv2.imread(str(samples / "two_people.jpg"))], rounds=2)
    assert set(times) == {"haar", "blazeface"} and all(ms > 0 for ms in times.values())


def test_missing_data_is_one_line_and_exit_2(tmp_path, samples):
    def run(data, media):
        return subprocess.run([sys.executable, "-m", "train_host.detector_sets", "--data", str(data), "--media",
                               str(media)], capture_output=True, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)

    proc = run(tmp_path, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("detector_sets: --media: cannot read")
    proc = run(tmp_path, samples)  # the media exist, the test splits do not: said before any scan
    assert proc.returncode == 2 and "detector_sets: media" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("detector_sets: --data: ") and "not found" in proc.stderr
