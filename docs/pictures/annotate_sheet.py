"""Contact sheet of annotated small pictures (docs/pictures/annotate_*.jpg).

    PYTHONPATH=. python docs/pictures/annotate_sheet.py docs/pictures/annotate_after.jpg

Small copies of the samples (labels are the widest part there), a face at the
right edge, and two faces side by side: where labels used to overlap or run off.
"""

import sys

import cv2
import numpy as np

from edge.frame.annotate import annotate
from edge.frame.pipeline import Pipeline


def small(name: str, width: int, crop: tuple[int, int] | None = None) -> np.ndarray:
    image = cv2.imread(f"samples/{name}")
    if crop:
        image = image[:, crop[0]:crop[1]]
    scale = width / image.shape[1]
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def main(out: str) -> None:
    pipeline = Pipeline.from_models(track=False)
    face = small("astronaut.jpg", 150, (120, 300))
    tiles = [small("two_people.jpg", 420), small("coins.png", 320), small("obama_720p.jpg", 420),
             small("astronaut.jpg", 200, (0, 280)), np.hstack([face, face[:, 20:]])]
    drawn = [annotate(t, pipeline.process(t, independent=True)) for t in tiles]
    height = max(d.shape[0] for d in drawn)
    padded = [cv2.copyMakeBorder(d, 0, height - d.shape[0], 0, 8, cv2.BORDER_CONSTANT, value=(255, 255, 255))
              for d in drawn]
    cv2.imwrite(out, np.hstack(padded), [cv2.IMWRITE_JPEG_QUALITY, 88])


if __name__ == "__main__":
    main(sys.argv[1])
