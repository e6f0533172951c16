"""Preprocessing shared by training and the device: gray conversion, border-safe crops, the int8 table."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.frame.preprocess import (
    CropSpec,
    FrameError,
    crop_face,
    crop_padded,
    expand_box,
    normalize,
    quantize_lut,
    to_gray,
)


@pytest.fixture(scope="module")
def photo(samples):
    return cv2.imread(str(samples / "astronaut.jpg"))


def test_to_gray_accepts_the_frame_kinds_cameras_and_files_produce(photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(to_gray(photo), gray)
    assert np.array_equal(to_gray(gray), gray)
    assert np.array_equal(to_gray(gray[:, :, None]), gray)
    bgra = cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)
    assert np.array_equal(to_gray(bgra), gray)
    sixteen = gray.astype(np.uint16) * 257  # a 16-bit PNG of the same picture
    assert np.abs(to_gray(sixteen).astype(int) - gray).max() <= 1


@pytest.mark.parametrize("frame, reason", [
    (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 2), np.uint8), "2 channels"),
    (np.zeros((10, 10), np.int32), "unsupported pixel type"),
    ("not an image", "not a numpy array"),
])
def test_to_gray_rejects_what_it_cannot_use_with_a_reason(frame, reason):
    with pytest.raises(FrameError, match=reason):
        to_gray(frame)


def test_one_pixel_frame_is_gray_not_an_error():
    assert to_gray(np.full((1, 1, 3), 200, np.uint8)).shape == (1, 1)


def test_crop_at_the_frame_edge_repeats_edge_pixels_and_never_wraps(photo):
    gray = to_gray(photo)
    box = (-20, -10, 80, 60)  # hangs over the top-left corner
    crop = crop_padded(gray, box)
    assert crop.shape == (60, 80)
    inside = gray[0:50, 0:60]
    assert np.array_equal(crop[10:, 20:], inside)
    assert np.array_equal(crop[:10, 20:], np.repeat(inside[:1], 10, axis=0))  # top rows copy row 0
    # negative slicing would have pulled pixels from the right/bottom of the frame instead
    assert not np.array_equal(crop[:10, :20], gray[-10:, -20:])


def test_box_entirely_outside_the_frame_is_an_error(photo):
    with pytest.raises(FrameError, match="outside"):
        crop_padded(to_gray(photo), (5000, 5000, 10, 10))


def test_margin_grows_each_side_by_a_fraction_of_the_box():
    assert expand_box((100, 50, 100, 80), 0.1) == (90, 42, 120, 96)


def test_crop_face_gives_the_model_size_for_any_box(photo):
    gray = to_gray(photo)
    spec = CropSpec(size=(64, 64), margin=0.2)
    for box in [(170, 60, 100, 100), (0, 0, 30, 30), (480, 480, 40, 40)]:
        assert crop_face(gray, box, spec).shape == (64, 64)


def test_int8_table_equals_normalise_then_quantise():
    scale, zero_point = 2.0 / 255.0, -1
    lut = quantize_lut(2.0 / 255.0, -1.0, scale, zero_point)
    pixels = np.arange(256, dtype=np.uint8)
    exact = np.clip(np.round((pixels * (2.0 / 255.0) - 1.0) / scale) + zero_point, -128, 127).astype(np.int8)
    assert np.array_equal(lut[pixels], exact)
    # float32 normalising (what a float model gets) lands within one step of the table
    via_float32 = np.round(normalize(pixels).astype(np.float64) / scale) + zero_point
    assert np.abs(via_float32 - lut[pixels]).max() <= 1
    assert normalize(np.array([0, 255], np.uint8)).tolist() == [-1.0, 1.0]
