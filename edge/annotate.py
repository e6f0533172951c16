"""Draw results on a frame: boxes blue for man, red for woman (the paper's Fig. 8.5), labels, stats."""

from __future__ import annotations

import cv2
import numpy as np

from edge.results import FrameResult

GENDER_COLORS_BGR = {"man": (255, 0, 0), "woman": (0, 0, 255)}
UNKNOWN_COLOR_BGR = (0, 200, 0)


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """A 3-channel 8-bit copy of ``frame`` to draw on."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame.copy()


def _label(image: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int], scale: float) -> None:
    thickness = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = org
    y = max(y, th + base)
    cv2.rectangle(image, (x, y - th - base), (x + tw, y + base // 2), color, cv2.FILLED)
    cv2.putText(image, text, (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)


def annotate(frame: np.ndarray, result: FrameResult, stats: str | None = None) -> np.ndarray:
    """Return a BGR copy of ``frame`` with each face's box and ``emotion / gender`` label.

    ``stats`` (e.g. "14.8 fps  38 ms") is written in the top-left corner.
    """
    image = as_bgr(frame)
    scale = max(0.4, min(image.shape[0], image.shape[1]) / 900.0)
    for face in result.faces:
        x, y, w, h = (int(v) for v in face.box)
        color = GENDER_COLORS_BGR.get(face.gender, UNKNOWN_COLOR_BGR)
        cv2.rectangle(image, (x, y), (x + w, y + h), color, max(2, int(round(scale * 3))))
        track = f"#{face.track} " if face.track is not None else ""
        text = f"{track}{face.emotion} {face.emotion_confidence:.2f} / {face.gender}"
        _label(image, text, (x, y - 4), color, scale)
    if stats:
        _label(image, stats, (4, 4), (40, 40, 40), scale)
    return image
