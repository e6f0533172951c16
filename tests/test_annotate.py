"""Annotated pictures: labels inside the picture, clear of each other, as sure-looking as the model is."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from edge.frame.annotate import GENDER_COLORS_BGR, annotate, label_alpha, layout, place_label
from edge.frame.results import Face, FrameResult


def inside(rect, frame) -> bool:
    return 0 <= rect[0] < rect[2] <= frame[0] and 0 <= rect[1] < rect[3] <= frame[1]


def disjoint(rects) -> bool:
    pairs = itertools.combinations(rects, 2)
    return all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1] for a, b in pairs)


def small(path, width, crop=None):
    image = cv2.imread(str(path))
    if crop:
        image = image[:, crop[0]:crop[1]]
    return cv2.resize(image, None, fx=width / image.shape[1], fy=width / image.shape[1], interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def pipeline(pipeline_factory):
    """Paper mode: the Haar cascade's many boxes (six on the coins) are what crowds the labels."""
    from edge.detectors import DetectorSettings

    return pipeline_factory(track=False, detector=DetectorSettings(backend="haar"))


def scenes(samples):
    """Small real pictures where the old labels overlapped or ran off the edge."""
    face = small(samples / "astronaut.jpg", 150, (120, 300))
    return {
        "two faces side by side": np.hstack([face, face[:, 20:]]),
        "face at the right edge": small(samples / "astronaut.jpg", 200, (0, 280)),
        "coins, small": small(samples / "coins.png", 320),
        "two people, small": small(samples / "two_people.jpg", 420),
        "obama, small": small(samples / "obama_720p.jpg", 420),
    }


def test_labels_of_real_small_pictures_stay_inside_and_apart(pipeline, samples):
    for name, image in scenes(samples).items():
        result = pipeline.process(image, independent=True)
        assert result.faces, name
        frame = (image.shape[1], image.shape[0])
        tags = layout(result, frame, "12.3 fps  40 ms")
        assert len(tags) == len(result.faces) + 1
        assert all(inside(t.rect, frame) for t in tags), name
        assert disjoint([t.rect for t in tags]), name
        for tag in tags[1:]:  # the whole label is drawn: its text fits its tag
            assert "/ man" in tag.text or "/ woman" in tag.text


def test_a_label_moves_below_or_down_when_above_is_taken_or_off_the_frame():
    frame = (200, 150)
    assert place_label((60, 14), (50, 40, 40, 40), frame, []) == (50, 26, 110, 40)  # above the box
    assert place_label((60, 14), (50, 5, 40, 40), frame, []) == (50, 45, 110, 59)  # no room above: below
    assert place_label((80, 14), (170, 60, 30, 30), frame, []) == (120, 46, 200, 60)  # pulled in from the right
    first = place_label((60, 14), (50, 40, 40, 40), frame, [])
    second = place_label((60, 14), (70, 40, 40, 40), frame, [first])
    assert disjoint([first, second]) and inside(second, frame)


def test_a_doubtful_label_is_fainter_than_a_sure_one():
    assert label_alpha(0.0) < label_alpha(0.3) < label_alpha(0.9) <= label_alpha(1.0) == 1.0
    gray = np.full((240, 480, 3), 128, np.uint8)

    def face(x, confidence):
        scores = {"happy": confidence, "sad": 1 - confidence}
        return Face((x, 100, 80, 80), "happy", scores, "man", {"man": 0.9, "woman": 0.1})

    result = FrameResult(0, 480, 240, [face(40, 0.3), face(300, 0.95)])
    drawn = annotate(gray, result)
    tags = {t.text.split()[1]: t for t in layout(result, (480, 240))}
    assert not tags["0.30"].bold and tags["0.95"].bold

    def blueness(rect):  # median over the tag: its background, not the text
        x0, y0, x1, y1 = rect
        pixels = drawn[y0:y1, x0:x1].reshape(-1, 3).astype(int)
        return np.median(pixels[:, 0] - pixels[:, 2])

    assert GENDER_COLORS_BGR["man"] == (255, 0, 0)
    assert blueness(tags["0.95"].rect) > blueness(tags["0.30"].rect) + 60
