"""Pictures side by side in rows of a fixed width: the README's first picture, made from ``analyze``'s own output.

    python -m tools.contact_sheet OUT.jpg IMAGE... [--width 1000]

Each picture is scaled to the row's height so a row fills the width exactly;
the sheet is what a user sees in ``out/demo/`` after ``make demo``, in one image.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

GAP = 6  # white pixels between pictures and rows


def rows_of(images: list[np.ndarray], per_row: int) -> list[list[np.ndarray]]:
    return [images[i:i + per_row] for i in range(0, len(images), per_row)]


def row_image(images: list[np.ndarray], width: int) -> np.ndarray:
    """One row ``width`` wide: every picture at the same height, aspect kept, ``GAP`` between them."""
    aspects = [image.shape[1] / image.shape[0] for image in images]
    height = max(1, round((width - GAP * (len(images) - 1)) / sum(aspects)))
    scaled = [cv2.resize(image, (max(1, round(height * aspect)), height), interpolation=cv2.INTER_AREA)
              for image, aspect in zip(images, aspects)]
    gap = np.full((height, GAP, 3), 255, np.uint8)
    row = np.hstack([part for image in scaled for part in (image, gap)][:-1])
    return cv2.resize(row, (width, height), interpolation=cv2.INTER_AREA)  # rounding: exactly `width`


def sheet(images: list[np.ndarray], width: int = 1000, per_row: int = 3) -> np.ndarray:
    """The pictures in rows of ``per_row``, each row ``width`` wide."""
    if not images:
        raise ValueError("no pictures for the sheet")
    colour = [cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3] for image in images]
    rows = [row_image(row, width) for row in rows_of(colour, per_row)]
    gap = np.full((GAP, width, 3), 255, np.uint8)
    return np.vstack([part for row in rows for part in (row, gap)][:-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.contact_sheet", description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--per-row", type=int, default=3)
    args = parser.parse_args(argv)
    images = [cv2.imread(path) for path in args.images]
    missing = [path for path, image in zip(args.images, images) if image is None]
    if missing:
        print(f"error: cannot read {', '.join(missing)}", file=sys.stderr)
        return 2
    if not cv2.imwrite(args.out, sheet(images, args.width, args.per_row), [cv2.IMWRITE_JPEG_QUALITY, 85]):
        print(f"error: cannot write {args.out}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
