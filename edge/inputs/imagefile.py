"""Decode one image file safely: size read from the header first, big photos decoded reduced, damage reported.

A 12000x9000 JPEG decoded at full size takes seconds and gigabytes (a Pi 4
with 2 GB dies), and a truncated JPEG decodes "fine" with only libjpeg's
warning on stderr. So before decoding, the header gives the size: absurd sizes
are refused with one line; JPEGs larger than the wanted size are decoded with
libjpeg's DCT scaling (``IMREAD_REDUCED_*``: 1/2, 1/4 or 1/8, never below the
wanted size) and then resized to fit; a JPEG whose end-of-image marker is
missing, or a PNG without its IEND chunk, is reported as damaged.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import cv2
import numpy as np

# Formats decoded at full size before any resize may use at most this many pixels (75 MB as 8-bit BGR).
MAX_FULL_DECODE_PIXELS = 25_000_000
# JPEGs are decoded reduced (down to 1/64 of the pixels), so they may be larger.
MAX_JPEG_PIXELS = 400_000_000
MAX_FILE_BYTES = 256 * 1024 * 1024
# What `python -m edge analyze` and the API decode a photo to at most (a 108-megapixel photo never needs its
# full-size pixels in memory); their boxes are mapped back to the file's own pixels.
ANALYZE_FIT = (4096, 4096)

_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNM = re.compile(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)")


class ImageFileError(ValueError):
    """An image that cannot be used; the message says why (without the path)."""


def jpeg_info(data: bytes) -> tuple[int, int, bool] | None:
    """(width, height, complete) of a JPEG from its markers; None when the header is unreadable.

    ``complete`` is False when no end-of-image marker follows the first scan:
    entropy-coded data never contains FFD9 (0xFF is stuffed), and an EXIF
    thumbnail's own FFD9 sits in APP1, before the scan.
    """
    i, size = 2, None
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF and i + 9 <= len(data):
            size = (int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big"))
        if marker == 0xDA:  # start of scan
            if size is None:
                return None
            return size[0], size[1], data.rfind(b"\xff\xd9") > i
        i += 2 + length
    return None if size is None else (size[0], size[1], False)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, BMP, WebP or PNM header; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"BM" and len(data) >= 26:
        return (abs(int.from_bytes(data[18:22], "little", signed=True)),
                abs(int.from_bytes(data[22:26], "little", signed=True)))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    match = _PNM.match(data[:1024])
    if match:
        return int(match.group(1)), int(match.group(2))
    return None


def fit_within(width: int, height: int, fit: tuple[int, int]) -> tuple[int, int]:
    """The size (w, h) keeping the aspect ratio that fits in ``fit``; never larger than the original."""
    scale = min(fit[0] / width, fit[1] / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_image(path: str | Path, fit: tuple[int, int] | None = None) -> np.ndarray:
    """Decode ``path`` (``IMREAD_UNCHANGED`` semantics), scaled down to fit ``fit`` when it is larger.

    Raises :class:`ImageFileError` for an unreadable, damaged or absurdly large file.
    """
    return read_image_sized(path, fit)[0]


def read_image_sized(path: str | Path, fit: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`read_image`, and the (width, height) of the picture in the file (before any reduction)."""
    original: tuple[int, int] | None = None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # opening a FIFO waits for a writer that never comes
            raise ImageFileError("not a regular file (a FIFO, device or socket); refused")
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ImageFileError("no such file") from None
    except OSError as exc:
        raise ImageFileError(exc.strerror or str(exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ImageFileError(f"file larger than {MAX_FILE_BYTES // 2**20} MB; refused")
    buffer = np.frombuffer(data, np.uint8)
    flags = cv2.IMREAD_UNCHANGED
    if data[:2] == b"\xff\xd8":
        info = jpeg_info(data)
        if info is None:
            raise ImageFileError("not a readable image (damaged JPEG header)")
        width, height, complete = info
        original = (width, height)
        if not complete:
            raise ImageFileError("damaged JPEG (truncated: no end-of-image marker)")
        _check_pixels(width, height, MAX_JPEG_PIXELS)
        reduce = _reduction(width, height, fit)
        if reduce > 1:
            flags = _REDUCED[reduce] | cv2.IMREAD_IGNORE_ORIENTATION  # as UNCHANGED: EXIF rotation not applied
    else:
        size = header_size(data)
        if size is not None:
            _check_pixels(*size, MAX_FULL_DECODE_PIXELS)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
            raise ImageFileError("damaged PNG (truncated: no IEND chunk)")
    try:
        image = cv2.imdecode(buffer, flags) if len(data) else None
    except cv2.error:  # e.g. a decoder that asserts on what it was given
        image = None
    del buffer, data
    if image is None or image.size == 0:
        raise ImageFileError("not a readable image")
    original = original or (image.shape[1], image.shape[0])
    if fit is not None:
        width, height = fit_within(image.shape[1], image.shape[0], fit)
        if (width, height) != (image.shape[1], image.shape[0]):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image, original


def _check_pixels(width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageFileError(f"{width}x{height}: not a readable image size")
    if width * height > limit:
        raise ImageFileError(f"{width}x{height} is {width * height / 1e6:.0f} megapixels, more than the "
                             f"{limit / 1e6:.0f} this reads; refused (scale it down first)")


def _reduction(width: int, height: int, fit: tuple[int, int] | None) -> int:
    """The largest JPEG DCT reduction (1, 2, 4, 8) that keeps the image at least as large as it will be shown."""
    if fit is None:
        return 1
    shown = fit_within(width, height, fit)
    for factor in (8, 4, 2):
        if width // factor >= shown[0] and height // factor >= shown[1]:
            return factor
    return 1
