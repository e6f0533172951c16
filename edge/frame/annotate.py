"""Draw results on a frame: boxes blue for man, red for woman (the paper's Fig. 8.5), labels, stats.

Labels are placed where they can be read: above the box, else below it, else
inside its top edge, moved sideways to stay inside the picture and down past
labels already placed, so neighbouring faces do not cover each other's labels
and a face at the right edge keeps its whole label. The label's background is
as opaque as the emotion is sure (a 0.3 guess is a faint tag, a 0.9 one a
solid one) and sure labels (0.6 and up) are drawn in a heavier font, so a
doubtful label does not look like a certain one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.frame.results import Face, FrameResult

GENDER_COLORS_BGR = {"man": (255, 0, 0), "woman": (0, 0, 255)}
UNKNOWN_COLOR_BGR = (0, 200, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX
BOLD_FONT = cv2.FONT_HERSHEY_DUPLEX  # heavier strokes at the same thickness: stays legible when small
BOLD_FROM = 0.6  # emotion confidence from which the label is drawn in bold (calibrated: "at least 60% sure")
MIN_ALPHA = 0.35  # label background opacity at confidence 0 (1.0 at confidence 1)

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """A 3-channel 8-bit copy of ``frame`` to draw on."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame.copy()


def label_alpha(confidence: float) -> float:
    """Opacity of a label's background for an emotion confidence in 0..1."""
    return MIN_ALPHA + (1.0 - MIN_ALPHA) * min(1.0, max(0.0, float(confidence)))


def label_text(face: Face) -> str:
    track = f"#{face.track} " if face.track is not None else ""
    return f"{track}{face.emotion} {face.emotion_confidence:.2f} / {face.gender}"


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(size: tuple[int, int], box: tuple[int, int, int, int], frame: tuple[int, int],
                taken: list[Rect]) -> Rect:
    """Where a label of ``size`` (w, h) for ``box`` goes in a ``frame`` (w, h): inside it, clear of ``taken``.

    Tried in order: just above the box, just below it, inside its top edge;
    each shifted left to fit the frame's width, and if it hits a label already
    placed, moved down (then up) past it. The first spot that is free wins; with
    none free, the spot above the box clamped into the frame.
    """
    width, height = frame
    w, h = min(size[0], width), min(size[1], height)
    x, y, bw, bh = box
    left = min(max(0, x), width - w)
    starts = [y - h, y + bh, y]
    candidates: list[int] = []
    for top in starts:
        candidates.append(top)
        for other in sorted(taken, key=lambda r: r[1]):  # step past each label in the way, both directions
            candidates += [other[3], other[1] - h]
    for top in candidates:
        if 0 <= top <= height - h:
            rect = (left, top, left + w, top + h)
            if not any(_overlaps(rect, other) for other in taken):
                return rect
    top = min(max(0, starts[0]), height - h)
    return (left, top, left + w, top + h)


def _blend_rect(image: np.ndarray, rect: Rect, color: tuple[int, int, int], alpha: float) -> None:
    x0, y0, x1, y1 = rect
    roi = image[y0:y1, x0:x1]
    roi[:] = (roi.astype(np.float32) * (1 - alpha) + np.array(color, np.float32) * alpha).round().astype(np.uint8)


def _label(image: np.ndarray, text: str, rect: Rect, color: tuple[int, int, int], scale: float, alpha: float,
           bold: bool) -> None:
    """Text in white with a dark rim (readable on a faint background) on a translucent tag."""
    _blend_rect(image, rect, color, alpha)
    font, thickness = _font(scale, bold)
    (_, th), base = cv2.getTextSize(text, font, scale, thickness)
    org = (rect[0] + 2, rect[1] + th + max(1, base // 2))
    cv2.putText(image, text, org, font, scale, (20, 20, 20), thickness + 1, cv2.LINE_AA)
    cv2.putText(image, text, org, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _font(scale: float, bold: bool) -> tuple[int, int]:
    return (BOLD_FONT if bold else FONT), max(1, int(round(scale * 2)))


def _text_size(text: str, scale: float, bold: bool) -> tuple[int, int]:
    """(width, height) of a label's tag: the text, its baseline and a small padding."""
    font, thickness = _font(scale, bold)
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness + 1)
    return tw + 6, th + base + 4


def _fit_scale(text: str, scale: float, width: int, bold: bool) -> float:
    """The font scale (at most ``scale``) at which ``text`` fits ``width`` pixels."""
    tw = _text_size(text, scale, bold)[0]
    return scale if tw <= width else max(0.3, scale * width / tw)


@dataclass(frozen=True)
class Tag:
    """A label as drawn: its text, where (``rect``), the font scale, and how sure it looks."""

    text: str
    rect: Rect
    scale: float
    color: tuple[int, int, int]
    alpha: float
    bold: bool


def layout(result: FrameResult, frame: tuple[int, int], stats: str | None = None) -> list[Tag]:
    """The stats tag (first, when given) and one tag per face, the largest face first, none overlapping."""
    width, height = frame
    base_scale = max(0.4, min(height, width) / 900.0)
    tags: list[Tag] = []
    if stats:
        scale = _fit_scale(stats, base_scale, width, False)
        rect = place_label(_text_size(stats, scale, False), (4, 4, 0, 0), frame, [])
        tags.append(Tag(stats, rect, scale, (40, 40, 40), 0.85, False))
    for face in sorted(result.faces, key=lambda f: -f.area):  # the largest face gets the best spot
        text = label_text(face)
        bold = face.emotion_confidence >= BOLD_FROM
        scale = _fit_scale(text, base_scale, width, bold)
        rect = place_label(_text_size(text, scale, bold), face.box, frame,
                           [t.rect for t in tags])
        tags.append(Tag(text, rect, scale, GENDER_COLORS_BGR.get(face.gender, UNKNOWN_COLOR_BGR),
                        label_alpha(face.emotion_confidence), bold))
    return tags


def annotate(frame: np.ndarray, result: FrameResult, stats: str | None = None) -> np.ndarray:
    """Return a BGR copy of ``frame`` with each face's box and ``emotion confidence / gender`` label.

    ``stats`` (e.g. "14.8 fps  38 ms") is written in the top-left corner.
    """
    image = as_bgr(frame)
    height, width = image.shape[:2]
    thickness = max(2, int(round(max(0.4, min(height, width) / 900.0) * 3)))
    for face in result.faces:
        x, y, w, h = (int(v) for v in face.box)
        cv2.rectangle(image, (x, y), (x + w, y + h), GENDER_COLORS_BGR.get(face.gender, UNKNOWN_COLOR_BGR), thickness)
    for tag in layout(result, (width, height), stats):
        _label(image, tag.text, tag.rect, tag.color, tag.scale, tag.alpha, tag.bold)
    return image
