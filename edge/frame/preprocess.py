"""Face preprocessing shared by training and the device.

Defined once here and imported by ``train_host`` so that what a model is trained
on and what the Pi feeds it cannot drift apart: the crop (Haar box grown by a
margin, border-safe), the resize, the grayscale conversion and the mapping of
pixels to the model's float input ``x = pixel * scale + offset``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The paper's models take 64x64x1 in [-1, 1]: (pixel / 255 - 0.5) * 2.
PIXEL_SCALE = 2.0 / 255.0
PIXEL_OFFSET = -1.0


class FrameError(ValueError):
    """A frame or image that cannot be processed (empty, wrong depth, odd channels)."""


def to_8bit(image: np.ndarray) -> np.ndarray:
    """``image`` with 8-bit pixels: 16-bit keeps its high byte, float in 0..1 (or 0..255) is scaled.

    The one conversion rule every detector's input goes through, so a colour
    detector and the gray path see the same pixels.
    """
    if not isinstance(image, np.ndarray):
        raise FrameError(f"frame is {type(image).__name__}, not a numpy array")
    if image.size == 0 or image.ndim < 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise FrameError(f"empty frame of shape {image.shape}")
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype in (np.float32, np.float64):
        # NaN/inf count as black: one NaN pixel used to make max() NaN, read the image as 0..255 (all black, no
        # face) and warn on the cast
        image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
        return np.rint(np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255)).astype(np.uint8)
    if image.dtype != np.uint8:
        raise FrameError(f"unsupported pixel type {image.dtype}")
    return image


def channels(image: np.ndarray) -> int:
    """Channels of a frame (0 for a 2-D gray one): 1, 3 (BGR) or 4 (BGRA), else a :class:`FrameError`."""
    if image.ndim == 2:
        return 0
    if image.ndim != 3:
        raise FrameError(f"frame has {image.ndim} dimensions, expected 2 or 3")
    if image.shape[2] not in (1, 3, 4):
        raise FrameError(f"frame has {image.shape[2]} channels, expected 1, 3 or 4")
    return image.shape[2]


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return an 8-bit single-channel view of ``image``.

    Accepts gray (HxW or HxWx1), BGR, BGRA and 16-bit images; anything else is a
    :class:`FrameError` with a one-line reason, never a crash deep in OpenCV.
    """
    image = to_8bit(image)
    count = channels(image)
    if count in (0, 1):
        return image if count == 0 else image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if count == 3 else cv2.COLOR_BGRA2GRAY)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """``image`` as 8-bit BGR for a colour detector, or 8-bit gray where it has one channel.

    The same rules as :func:`to_gray` (BGRA drops alpha, 16-bit and float
    become 8-bit), so a BGRA or 16-bit photo finds the same faces as its 8-bit
    BGR copy; an 8-bit BGR or gray frame is returned as it is.
    """
    image = to_8bit(image)
    count = channels(image)
    if count in (0, 3):
        return image
    return image[:, :, 0] if count == 1 else cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)


@dataclass(frozen=True)
class CropSpec:
    """How a detector box becomes a model input.

    ``margin`` grows the box by that fraction of its width on the left and the
    right and of its height on the top and the bottom (0.2 = 20% per side).
    """

    size: tuple[int, int] = (64, 64)  # (height, width)
    margin: float = 0.0
    scale: float = PIXEL_SCALE
    offset: float = PIXEL_OFFSET


def expand_box(box: tuple[int, int, int, int], margin: float) -> tuple[int, int, int, int]:
    """Grow ``(x, y, w, h)`` by ``margin`` on each side (may leave the frame)."""
    x, y, w, h = box
    dx = int(round(w * margin))
    dy = int(round(h * margin))
    return x - dx, y - dy, w + 2 * dx, h + 2 * dy


def crop_padded(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Cut ``box`` out of ``gray``; parts outside the frame repeat the edge pixels.

    A face at the frame edge keeps its geometry (no stretching) and never wraps
    around to the other side, as plain negative slicing would.
    """
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise FrameError(f"empty face box {box}")
    rows, cols = gray.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, cols), min(y + h, rows)
    if x0 >= x1 or y0 >= y1:
        raise FrameError(f"face box {box} lies outside the {cols}x{rows} frame")
    crop = gray[y0:y1, x0:x1]
    pads = (y0 - y, (y + h) - y1, x0 - x, (x + w) - x1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    return crop


def resize_face(face: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``(height, width)``: area averaging when shrinking, bilinear when growing."""
    height, width = size
    if face.shape[0] == height and face.shape[1] == width:
        return face
    shrinking = face.shape[0] > height or face.shape[1] > width
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(face, (width, height), interpolation=interp)


def crop_face(image: np.ndarray, box: tuple[int, int, int, int], spec: CropSpec) -> np.ndarray:
    """Detector box -> uint8 gray face of ``spec.size`` (margin, border-safe crop, gray, resize).

    ``image`` is gray or 8-bit BGR: a BGR crop is made gray after cutting, the
    same pixels as cutting the gray frame (the conversion is per pixel) for the
    cost of the crop alone.
    """
    return resize_face(to_gray(crop_padded(image, expand_box(box, spec.margin))), spec.size)


def normalize(faces: np.ndarray, scale: float = PIXEL_SCALE, offset: float = PIXEL_OFFSET) -> np.ndarray:
    """uint8 pixels -> float32 model input ``pixel * scale + offset``."""
    return faces.astype(np.float32) * np.float32(scale) + np.float32(offset)


def quantize_lut(scale: float, offset: float, input_scale: float, zero_point: int) -> np.ndarray:
    """256-entry table: uint8 pixel -> int8 model input.

    Equal to normalising then quantizing with the model's input parameters, but a
    single table lookup per pixel on the Pi.
    """
    pixels = np.arange(256, dtype=np.float64)
    q = np.round((pixels * scale + offset) / input_scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)
