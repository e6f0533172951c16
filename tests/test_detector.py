"""Haar detection on real photos: the shipped cascade, downscaled detection, equalisation options."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.detectors import DetectorSettings
from edge.detectors.haar import HaarDetector
from edge.frame.manifest import ModelError
from edge.frame.preprocess import to_gray
from edge.frame.tracking import iou


@pytest.fixture(scope="module")
def cascade(models_dir):
    return models_dir / "haarcascade_frontalface_default.xml"


def gray(samples, name):
    return to_gray(cv2.imread(str(samples / name)))


@pytest.mark.parametrize("name, faces", [("astronaut.jpg", 1), ("two_people.jpg", 2), ("chelsea.jpg", 0)])
def test_finds_the_faces_a_person_counts(cascade, samples, name, faces):
    assert len(HaarDetector(cascade).detect(gray(samples, name))) == faces


def test_downscaled_detection_maps_boxes_back_to_full_resolution(cascade, samples):
    frame = gray(samples, "two_people.jpg")  # 1126 px wide
    full = HaarDetector(cascade, DetectorSettings(detect_width=0)).detect(frame)
    small = HaarDetector(cascade, DetectorSettings(detect_width=400)).detect(frame)
    assert len(small) == len(full) == 2
    for box in small:
        assert max(iou(box, other) for other in full) > 0.6  # same faces, full-resolution coordinates


@pytest.mark.parametrize("equalize", ["hist", "clahe", "none"])
def test_each_equalisation_still_finds_the_astronaut(cascade, samples, equalize):
    boxes = HaarDetector(cascade, DetectorSettings(equalize=equalize)).detect(gray(samples, "astronaut.jpg"))
    assert len(boxes) == 1


def test_boxes_are_sorted_largest_first(cascade, samples):
    boxes = HaarDetector(cascade).detect(gray(samples, "obama_720p.jpg"))
    areas = [w * h for _, _, w, h in boxes]
    assert areas == sorted(areas, reverse=True)


def test_frames_smaller_than_the_haar_window_give_no_faces(cascade):
    assert HaarDetector(cascade).detect(np.zeros((10, 10), np.uint8)) == []


def test_min_size_drops_small_faces(cascade, samples):
    frame = gray(samples, "two_people.jpg")
    assert HaarDetector(cascade, DetectorSettings(min_size=400)).detect(frame) == []


def test_a_corrupt_cascade_is_refused(tmp_path):
    bad = tmp_path / "cascade.xml"
    bad.write_text("<opencv_storage><cascade>broken")
    with pytest.raises(ModelError, match="not a loadable Haar cascade"):
        HaarDetector(bad)


@pytest.mark.parametrize("corner", ["top-left", "bottom-right"])
def test_the_search_around_a_known_face_finds_it_again_at_the_frame_edge(cascade, samples, corner):
    # A face pushed against the frame's edge: its search window is clipped there, and the face found again
    # must come back in full-frame coordinates, where a full scan puts it.
    gray = to_gray(cv2.imread(str(samples / "two_people.jpg")))
    x, y, w, h = HaarDetector(cascade).detect(gray)[-1]
    keep = 4
    top_left = corner == "top-left"
    frame = np.ascontiguousarray(gray[y - keep:, x - keep:] if top_left else gray[: y + h + keep, : x + w + keep])
    detector = HaarDetector(cascade)
    found = detector.detect(frame)
    edge_face = min(found, key=lambda b: b[0] + b[1]) if top_left else max(
        found, key=lambda b: b[0] + b[2] + b[1] + b[3])
    assert iou(edge_face, (keep, keep, w, h) if top_left else (x, y, w, h)) > 0.7
    known = [edge_face]
    again = detector.detect_near(frame, known)
    assert len(again) == 1 and iou(again[0], known[0]) > 0.7
    bx, by, bw, bh = again[0]
    assert bx >= 0 and by >= 0 and bx + bw <= frame.shape[1] + 2 and by + bh <= frame.shape[0] + 2


def test_nothing_near_a_box_in_an_empty_place(cascade, samples):
    gray = to_gray(cv2.imread(str(samples / "chelsea.jpg")))
    assert HaarDetector(cascade).detect_near(gray, [(10, 10, 120, 120), (0, 0, 10, 10)]) == []
