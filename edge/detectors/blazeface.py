"""BlazeFace (MediaPipe's face detector) on the classifiers' TFLite runtime, decoded in numpy.

No MediaPipe on the device: the ``.tflite`` files in ``models/`` (Apache-2.0,
see ``models/LICENSE.mediapipe``) are run by ai-edge-litert like the
classifiers, and what MediaPipe's graph does around them is done here:

- input: the frame letterboxed into the model's square (black padding), RGB,
  ``x / 127.5 - 1``, written straight into the interpreter's input tensor;
  the downscale is an integer-factor area average then bilinear
  (:func:`shrink`: a third of ``INTER_AREA``'s time at 640x480);
- anchors: SSD anchors from the model's strides (``full``: 48x48 cells x 1;
  ``short``: 16x16 x 2 + 8x8 x 6), one per output row;
- decoding: score = sigmoid(logit) (thresholded in logit space, so only the
  few candidates above it are decoded); box centre = regressor / input size +
  anchor centre, width and height = regressor / input size;
- weighted non-maximum suppression: boxes overlapping the best one by more
  than ``nms_iou`` are merged into their score-weighted mean;
- the letterbox is undone, and each box is mapped to the Haar-like square the
  classifiers were trained on (``box_mapping`` in the manifest: side scale and
  centre offsets fitted on faces both detectors find, see
  ``train_host/fit_box_mapping.py``); where the manifest has
  ``box_mapping_by_task`` (fitted per classifier on its training faces), each
  box also carries the crop for each task (:class:`~edge.detectors.base.FaceBox`).

``python -m edge.bench.profile`` times each of these steps.

Both models and their sha256, input spec, anchors and mapping are listed in the
``detectors`` section of ``models/manifest.json`` and checked at load time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.detectors.base import Box, FaceBox
from edge.detectors.settings import BlazeFaceSettings
from edge.frame.manifest import Manifest, ModelError
from edge.frame.runtime import make_interpreter
from edge.frame.tracking import iou

REGRESSORS = 16  # box centre x, y, width, height, then 6 keypoints (x, y)
NEAR_FULL_SCAN = 3  # detect_near with this many known faces or more runs one whole-frame scan instead
NEAR_SIZE_RANGE = (0.5, 2.0)  # a face found near a known one must be this many times its side
# The close-up fallback runs the short-range model at the frame's aspect with this long side (96x128 for 4:3):
# no letterbox padding, so the face is as large in the input as the frame allows, for 30% less than 128x128.
FALLBACK_SIDE = 128
TILE_SHARE = 0.55  # small_faces: each of the four tiles is this share of the frame's width and height
TILE_MERGE_IOU = 0.3  # a tile's box overlapping a box already found by more than this is the same face
# A known face narrower than this share of the frame's long side (64 px at 640x480) may be too small for the
# whole-frame model (it finds 87% of 44 px faces, 93% of 54 px ones): with small_faces, a crowd's near search
# looks for it on its own. Larger ones it misses are gone (searching for them put boxes on necks and shirts
# next to real faces in the Hamilton clip).
SMALL_FACE_SHARE = 0.1
# A whole-frame box narrower than this share of the frame's long side (48 px at 640x480: the model sees it
# 14 px wide) counts from ``small_face_threshold``: small faces score lower in the full-range model.
SMALL_SCORE_SHARE = 0.075


def tiles(rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """Four overlapping windows (x0, y0, x1, y1), one per corner, each ``TILE_SHARE`` of the frame per side.

    In a tile the whole-frame model sees faces 1.8x larger than in the whole
    frame: on faces pasted at 24-44 px into 640x480 windows of their own photos,
    85-100% found against 4-87% without tiles (``python -m
    train_host.detector_sets``). A face cut by a tile's edge is whole in the
    frame scan or in the neighbouring tile (they overlap by 10% of the frame).
    """
    tw, th = int(round(cols * TILE_SHARE)), int(round(rows * TILE_SHARE))
    return [(x0, y0, x0 + tw, y0 + th) for y0 in (0, rows - th) for x0 in (0, cols - tw)]


def ssd_anchors(size: int | tuple[int, int], strides: list[int], per_layer: int) -> np.ndarray:
    """Anchor centres (N, 2: x, y), normalised, in the model's output order (MediaPipe's SsdAnchorsCalculator).

    ``size`` is the input's side, or its ``(height, width)`` for a model run
    at another shape than its own (:meth:`BlazeFaceModel.raw`'s ``side``).
    Consecutive layers with the same stride share one grid; each such layer adds
    ``per_layer`` anchors per cell (2 with the interpolated aspect ratio, else 1).
    """
    height, width = (size, size) if isinstance(size, int) else size
    anchors: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        repeats = per_layer * (same - layer)
        rows, cols = height // strides[layer], width // strides[layer]
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        anchors.append(np.repeat(grid, repeats, axis=0))
        layer = same
    return np.concatenate(anchors).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each group overlapping the best remaining box by more than ``threshold``
    becomes its score-weighted mean box, with the best score. ``boxes`` are (N, 4) x0, y0, x1, y1.

    The overlaps of every pair are computed at once (N is the few anchors above
    the score threshold, 3-30 for a face), so the greedy grouping is a loop over
    the groups with no array arithmetic in it but the mean: a third of the
    time of computing each top box's overlaps in turn, the same boxes.
    """
    if len(scores) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    if len(scores) == 1:
        return boxes.astype(np.float32), scores.astype(np.float32)
    x0, y0, x1, y1 = boxes.T
    areas = (x1 - x0) * (y1 - y0)
    inter = (np.clip(np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0), 0, None)
             * np.clip(np.minimum(y1[:, None], y1) - np.maximum(y0[:, None], y0), 0, None))
    union = areas[:, None] + areas - inter
    overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    groups = overlap > threshold
    free = np.ones(len(scores), bool)
    kept_boxes, kept_scores = [], []
    for top in range(len(scores)):
        if not free[top]:
            continue
        group = groups[top] & free
        group[top] = True  # the best box always belongs to its own group
        free &= ~group
        weights = scores[group]
        kept_boxes.append((boxes[group] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(scores[top])
    return np.array(kept_boxes, np.float32), np.array(kept_scores, np.float32)


@dataclass(frozen=True)
class BoxMapping:
    """From a BlazeFace box to the Haar-like square: side = ``scale`` x the box's mean side, centre moved by
    (``dx``, ``dy``) x that side (+ = right, down)."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def apply(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        side = ((x1 - x0) + (y1 - y0)) / 2
        cx = (x0 + x1) / 2 + self.dx * side
        cy = (y0 + y1) / 2 + self.dy * side
        out = max(1, int(round(self.scale * side)))
        return int(round(cx - out / 2)), int(round(cy - out / 2)), out, out


def shrink(image: np.ndarray, width: int, height: int, halve: bool = False) -> np.ndarray:
    """``image`` resized to ``width`` x ``height``: an integer-factor area average, then bilinear.

    ``INTER_AREA`` straight from 640x480 to 192x144 (a factor of 3.33) takes
    OpenCV's generic path: ~1 ms of CPU, a fifth of the whole detect stage. An
    exact integer factor ``k`` (the largest that divides both sides and leaves
    at least the target size) takes its fast path, and the bilinear step that
    remains is under 2x, where it hardly aliases: ~0.3 ms, pixels within 0.8
    grey levels of ``INTER_AREA`` on average, the same faces found on samples/
    and ../shared/media (``python -m edge.bench.profile`` times it).
    Below a 3x reduction the image is small next to the model's input and
    ``INTER_AREA`` costs little, so it is used as it is: the short-range
    fallback on a FER-2013 chip (288 -> 128 px) with the two steps lost 15 of
    the 3,116 faces it finds on PublicTest.

    ``halve`` (the near search): every reduction ends in an exact halving. Its
    windows (2.5 face sides: 150-250 px at 640x480) go to the short-range
    model's 128 px by 1.2-2x, where ``INTER_AREA``'s generic path took
    0.15-0.30 ms of CPU; bilinear up to twice the target, then halved, takes
    0.09-0.12 (loaded machine), within 0.2-0.4 grey levels of it on average.
    From 2x the integer path above is taken. Plain bilinear was cheaper still
    but lost faces: 420 against 430 in the Hamilton clip of ../shared/media
    (``python -m edge analyze``); the halving finds 433.
    """
    rows, cols = image.shape[:2]
    if (cols, rows) == (width, height):
        return image
    if width > cols or height > rows:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    factor = min(cols // width, rows // height)
    if halve and factor < 2:
        up = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(up, (width, height), interpolation=cv2.INTER_AREA)
    if factor < (2 if halve else 3):
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    for k in range(factor, 1, -1):
        if cols % k == 0 and rows % k == 0:
            image = cv2.resize(image, (cols // k, rows // k), interpolation=cv2.INTER_AREA)
            break
    else:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def decode(logits: np.ndarray, regressors: np.ndarray, anchors: np.ndarray, size: int | tuple[int, int],
           threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4: x0, y0, x1, y1, normalised) and scores of the anchors scoring above ``threshold``.

    ``logits`` (N,) and ``regressors`` (N, >= 4) are the model's raw outputs;
    ``size`` the input's side or ``(height, width)``. The threshold is compared
    in logit space (``sigmoid`` is monotonic), so only the few anchors that pass
    are decoded, out of 2304 (full) or 896 (short).
    """
    keep = np.flatnonzero(logits > np.float32(math.log(threshold / (1 - threshold))))
    if keep.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    height, width = (size, size) if isinstance(size, int) else size
    raw = regressors[keep, :4] * np.array([1 / width, 1 / height, 1 / width, 1 / height], np.float32)
    centre = raw[:, :2] + anchors[keep]
    half = raw[:, 2:4] * np.float32(0.5)
    valid = np.all(half > 0, axis=1)
    boxes = np.concatenate([centre - half, centre + half], axis=1)[valid]
    scores = 1 / (1 + np.exp(-np.clip(logits[keep][valid], -80, 80)))
    return boxes, scores.astype(np.float32)


@dataclass
class Graph:
    """One interpreter of a model at one input shape, with its anchors and tensor indices."""

    interpreter: Any
    height: int
    width: int
    anchors: np.ndarray
    input: int
    boxes: int
    scores: int
    pad_before: bool = False  # letterbox padding all above / left of the picture, not centred


RESHAPED_GRAPHS = 4  # interpreters kept per model for other input shapes (a stream needs one)


class BlazeFaceModel:
    """One BlazeFace ``.tflite``: letterbox, invoke, decode, weighted NMS, map to Haar-like boxes.

    ``mapping`` gives the box the detector reports (shown, tracked);
    ``task_mappings`` the crop each classifier gets (``emotion``, ``gender``),
    fitted per task on its training faces. A task without one is cut from the
    reported box.
    """

    def __init__(self, path: str | Path, strides: list[int], per_layer: int, mapping: BoxMapping,
                 threads: int = 1, task_mappings: dict[str, BoxMapping] | None = None,
                 graphs: Mapping[tuple[int, int], str | Path] | None = None):
        self.path = str(path)
        self.mapping = mapping
        self.task_mappings = dict(task_mappings or {})
        self.strides, self.per_layer, self.threads = list(strides), int(per_layer), int(threads)
        self.interpreter = self._load()
        inputs = self.interpreter.get_input_details()
        shape = [int(v) for v in inputs[0]["shape"]] if len(inputs) == 1 else []
        if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 3 or (
                np.dtype(inputs[0]["dtype"]) != np.float32):
            raise ModelError(f"{self.path}: input {shape or len(inputs)} is not one float32 [1, size, size, 3]")
        self.size = shape[1]
        self.graph = self._graph(self.interpreter, self.size, self.size)
        self.anchors = self.graph.anchors
        self._in, self._boxes, self._scores = self.graph.input, self.graph.boxes, self.graph.scores
        self._reshaped: dict[tuple[int, int], Graph] = {}
        # The same model in other files at other native shapes (``graphs`` in the manifest: made by
        # ``python -m quantize.detector_shapes`` for a graph that cannot be reshaped at run time). Their
        # letterbox padding goes before the picture (a 4:3 frame fills rows 16-159 of 160x192), not around it:
        # faces of 10-40 px are found or missed by where the picture sits on the network's 32-px grid (the
        # square graph's raw boxes find 15 to 22 of the 28 faces of train_host.detector_sets' down-scaled set
        # as the picture moves down by 0-48 px; 22 centred, at row 24). At row 16 the 160x192 graph's detect()
        # finds 23 of them like the square's, centred at row 8 only 20; the other sets the same or more.
        # Each is loaded when a frame first needs it (a camera's frames need one: no memory for the others).
        self.native: dict[tuple[int, int], Graph | Path] = {(self.size, self.size): self.graph}
        self.native.update({shape: Path(other) for shape, other in sorted((graphs or {}).items())})

    def _load(self, path: str | Path | None = None) -> Any:
        path = self.path if path is None else str(path)
        try:
            return make_interpreter(path, self.threads)
        except ImportError:
            raise
        except Exception as exc:  # the runtime raises ValueError/RuntimeError for corrupt flatbuffers
            raise ModelError(f"{path}: not a loadable TFLite model ({str(exc).splitlines()[0]})") from None

    def _graph(self, interpreter: Any, height: int, width: int) -> Graph:
        """``interpreter`` (input ``height`` x ``width``) with its anchors, its outputs checked."""
        anchors = ssd_anchors((height, width), self.strides, self.per_layer)
        n = len(anchors)
        details = interpreter.get_output_details()
        outputs = {int(o["shape"][-1]): o for o in details if [int(v) for v in o["shape"]][:2] == [1, n]}
        if len(details) != 2 or set(outputs) != {REGRESSORS, 1}:
            got = [[int(v) for v in o["shape"]] for o in details]
            raise ModelError(f"{self.path}: outputs {got} are not BlazeFace's [1, {n}, {REGRESSORS}] and [1, {n}, 1]")
        return Graph(interpreter, height, width, anchors, interpreter.get_input_details()[0]["index"],
                     outputs[REGRESSORS]["index"], outputs[1]["index"])

    def shape_for(self, rows: int, cols: int, side: int | None) -> tuple[int, int]:
        """The input (height, width) for a ``rows`` x ``cols`` image.

        Without ``side``: of the model's native graphs (its own square and the
        ``graphs`` it was loaded with), the one with the fewest pixels that holds
        the image at the square's scale: 160x192 for a 4:3 landscape frame, whose
        letterboxed 192x144 leaves 48 of the square's rows as padding. With
        ``side``: the image's aspect at a long side of ``side`` (multiples of the
        coarsest stride, so no pixel is wasted on letterbox padding and the scale
        is chosen, not fixed by the model; needs a reshapable graph).
        """
        if side is None:
            best = (self.size, self.size)
            scale = min(self.size / rows, self.size / cols)
            for height, width in self.native:
                if min(height / rows, width / cols) >= scale * (1 - 1e-9) and height * width < best[0] * best[1]:
                    best = (height, width)
            return best
        step = max(self.strides)
        short = max(step, int(round(side * min(rows, cols) / max(rows, cols) / step)) * step)
        return (short, side) if cols >= rows else (side, short)

    def reshaped(self, height: int, width: int) -> Graph:
        """The model with a ``height`` x ``width`` input (BlazeFace's graph is convolutional up to its outputs).

        A ModelError if this file cannot take another shape (the int8 full-range
        model made here has fixed reshapes). Kept for the next frame of that shape.
        """
        native = self.native.get((height, width))
        if isinstance(native, Path):
            interpreter = self._load(native)
            got = [int(v) for v in interpreter.get_input_details()[0]["shape"]]
            if got != [1, height, width, 3]:
                raise ModelError(f"{native}: input {got} is not [1, {height}, {width}, 3]")
            native = self.native[(height, width)] = replace(self._graph(interpreter, height, width), pad_before=True)
        if native is not None:
            return native
        graph = self._reshaped.get((height, width))
        if graph is None:
            interpreter = self._load()
            try:
                interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [1, height, width, 3])
                interpreter.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"{self.path}: cannot run at {width}x{height} ({str(exc).splitlines()[0]})") from None
            graph = self._graph(interpreter, height, width)
            if len(self._reshaped) >= RESHAPED_GRAPHS:
                self._reshaped.pop(next(iter(self._reshaped)))
            self._reshaped[(height, width)] = graph
        return graph

    def raw(self, image: np.ndarray, threshold: float, nms_iou: float, lap: Callable[[str], None] | None = None,
            side: int | None = None, halve: bool = False,
            small_boxes: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The model's own boxes (K, 4: x0, y0, x1, y1 in ``image``'s pixels, float32) and scores, best first.

        ``image`` is gray or BGR; ``side`` runs the model at the image's aspect
        with that long side (:meth:`shape_for`) instead of its own square;
        ``halve`` is :func:`shrink`'s. ``small_boxes`` = (``low``, ``share``): boxes
        narrower than ``share`` of the image's long side also count from the
        score ``low`` (below ``threshold``); they are merged among themselves
        and kept where they overlap no box that scored ``threshold``, so the
        boxes found at ``threshold`` are exactly those without it.
        ``lap(step)`` is called after each step (``python -m
        edge.bench.profile`` times them): ``resize``, ``colour``, ``input``
        (letterbox padding and ``x / 127.5 - 1`` straight into the interpreter's
        input tensor, no ``set_tensor`` copy), ``invoke``, ``decode``, ``nms``,
        ``unletterbox``.
        """
        lap = lap or _no_lap
        height, width = image.shape[:2]
        graph = self.reshaped(*self.shape_for(height, width, side))
        scale = min(graph.width / width, graph.height / height)
        w, h = max(1, min(graph.width, round(width * scale))), max(1, min(graph.height, round(height * scale)))
        small = shrink(image, w, h, halve)
        lap("resize")
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB if small.ndim == 2 else cv2.COLOR_BGR2RGB)
        lap("colour")
        px, py = (graph.width - w, graph.height - h) if graph.pad_before else (
            (graph.width - w) // 2, (graph.height - h) // 2)
        # Views of the interpreter's own tensors, not copies; all dropped before the next invoke, which the
        # runtime refuses while one is alive.
        tensor = graph.interpreter.tensor(graph.input)()[0]
        for pad in (tensor[:py], tensor[py + h:], tensor[py:py + h, :px], tensor[py:py + h, px + w:]):
            pad.fill(-1.0)  # only the letterbox padding: the picture overwrites the rest
        region = tensor[py:py + h, px:px + w]
        np.multiply(small, np.float32(1 / 127.5), out=region, casting="unsafe")
        np.subtract(region, np.float32(1.0), out=region)
        del tensor, region, pad
        lap("input")
        graph.interpreter.invoke()
        lap("invoke")
        logits = graph.interpreter.tensor(graph.scores)().reshape(-1)
        regressors = graph.interpreter.tensor(graph.boxes)()[0]
        low = threshold if small_boxes is None else min(threshold, small_boxes[0])
        boxes, scores = decode(logits, regressors, graph.anchors, (graph.height, graph.width), low)
        del logits, regressors
        lap("decode")
        if not len(scores):
            return boxes, scores
        strong = scores >= threshold
        merged, merged_scores = weighted_nms(boxes[strong], scores[strong], nms_iou)
        if small_boxes is not None and not strong.all():
            weak, weak_scores = weighted_nms(boxes[~strong], scores[~strong], nms_iou)
            widths = (weak[:, 2] - weak[:, 0]) * np.float32(graph.width / scale)
            xywh = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in np.concatenate([merged, weak]).tolist()]
            strong_xywh, weak_xywh = xywh[:len(merged)], xywh[len(merged):]
            keep = [i for i in range(len(weak)) if widths[i] < small_boxes[1] * max(height, width) and all(
                iou(weak_xywh[i], other) <= nms_iou for other in strong_xywh)]
            if keep:
                merged = np.concatenate([merged, weak[keep]]).astype(np.float32)
                merged_scores = np.concatenate([merged_scores, weak_scores[keep]]).astype(np.float32)
        lap("nms")
        merged *= np.array([graph.width, graph.height, graph.width, graph.height], np.float32)
        merged -= np.array([px, py, px, py], np.float32)
        merged *= np.float32(1 / scale)
        lap("unletterbox")
        return merged, merged_scores

    def run(self, image: np.ndarray, threshold: float, nms_iou: float, lap: Callable[[str], None] | None = None,
            side: int | None = None, halve: bool = False,
            small_boxes: tuple[float, float] | None = None) -> list[tuple[FaceBox, float]]:
        """Haar-like boxes in ``image``'s pixels (with each task's crop) and their scores, strong boxes first
        (best first), then any small ones :meth:`raw`'s ``small_boxes`` adds."""
        boxes, scores = self.raw(image, threshold, nms_iou, lap, side, halve, small_boxes)
        out = []
        for b, s in zip(boxes.tolist(), scores.tolist()):
            crops = {task: m.apply(*b) for task, m in self.task_mappings.items()}
            out.append((FaceBox(self.mapping.apply(*b), crops), s))
        if lap:
            lap("map")
        return out


def _no_lap(step: str) -> None:
    """No profiling."""


class BlazeFaceDetector:
    """Whole frames with ``settings.model`` (``short`` for close-ups it misses, four tiles for small faces when
    ``small_faces``), known faces' neighbourhoods with ``short``."""

    color = True  # BlazeFace wants the colour frame (a gray one works, replicated to three channels)

    def __init__(self, main: BlazeFaceModel, near: BlazeFaceModel, settings: BlazeFaceSettings | None = None):
        self.main, self.near = main, near
        self.settings = settings or BlazeFaceSettings()

    @classmethod
    def from_manifest(cls, manifest: Manifest, settings: BlazeFaceSettings | None = None) -> BlazeFaceDetector:
        """Load the models the manifest's ``detectors`` section lists, after checking their bytes."""
        settings = settings or BlazeFaceSettings()
        main = load_model(manifest, settings.entry, settings.threads, graphs=settings.aspect_graphs)
        near = main if settings.model == "short" else load_model(manifest, "blazeface_short", settings.near_threads)
        return cls(main, near, settings)

    def _run(self, model: BlazeFaceModel, image: np.ndarray, threshold: float | None = None,
             side: int | None = None, halve: bool = False,
             small_boxes: tuple[float, float] | None = None) -> list[Box]:
        threshold = self.settings.score_threshold if threshold is None else threshold
        return [box for box, _ in model.run(image, threshold, self.settings.nms_iou, side=side,
                                            halve=halve, small_boxes=small_boxes)]

    def _whole(self, image: np.ndarray) -> list[Box]:
        """The whole-frame model on ``image``, then the close-up fallback where it finds no face at
        ``score_threshold``.

        A box narrower than :data:`SMALL_SCORE_SHARE` of the frame's long side
        that scores between ``small_face_threshold`` and ``score_threshold`` is
        looked at again by the short-range model in its neighbourhood and kept
        (as the box found there) when that finds a face; a close-up found by
        the fallback keeps such boxes beside it.
        """
        if image.ndim not in (2, 3) or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise ValueError("detector needs an 8-bit gray or BGR frame")
        settings = self.settings
        small_boxes = None if settings.small_face_threshold >= settings.score_threshold else (
            settings.small_face_threshold, SMALL_SCORE_SHARE)
        found = self.main.run(image, settings.score_threshold, settings.nms_iou, small_boxes=small_boxes)
        boxes: list[Box] = [box for box, score in found if score >= settings.score_threshold]
        for weak in (box for box, score in found if score < settings.score_threshold):
            # A small face the whole-frame model is unsure of counts when the short-range model, shown its
            # neighbourhood enlarged (the near search), finds a face there at the usual threshold: that keeps
            # the turned and distant faces and drops the hands and microphones that score as high.
            boxes += [box for box in self.detect_near(image, [weak]) if iou(box, weak) >= 0.3 and all(
                iou(box, other) < 0.3 for other in boxes)][:1]
        if settings.fallback and self.near is not self.main and all(
                score < settings.score_threshold for _, score in found):
            closeups = self._run(self.near, image, settings.fallback_threshold, FALLBACK_SIDE)
            boxes = closeups + [box for box in boxes if all(iou(box, other) < 0.3 for other in closeups)]
        return boxes

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes (Haar-like squares) in full-resolution coordinates, largest first.

        Where the whole-frame model finds nothing, the short-range model looks
        again at the frame's own aspect (:data:`FALLBACK_SIDE`): the full-range
        model misses nearly every face that fills the photo (it finds 56 of 2,000 enlarged
        UTKFace chips), the short-range one finds them. With ``small_faces`` the
        whole-frame model also scans four overlapping tiles (:func:`tiles`).
        """
        boxes = self._whole(image)
        if self.settings.small_faces:
            for x0, y0, x1, y1 in tiles(*image.shape[:2]):
                for box in self._run(self.main, image[y0:y1, x0:x1]):
                    moved = box.moved(x0, y0) if isinstance(box, FaceBox) else (box[0] + x0, box[1] + y0, *box[2:])
                    if all(iou(moved, other) < TILE_MERGE_IOU for other in boxes):
                        boxes.append(moved)
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return boxes

    def detect_near(self, image: np.ndarray, boxes: list[Box]) -> list[Box]:
        """Faces near ``boxes``: the short-range model on each box grown by ``roi_margin`` per side.

        In such a window the face fills a third to a half of the width, which is
        what the short-range model is made for (about 1 ms per face against
        3-4 ms for a whole-frame scan); from ``NEAR_FULL_SCAN`` known faces on,
        one whole-frame scan (never the tiles) is cheaper and is run instead;
        with ``small_faces``, the known faces too small for it
        (:data:`SMALL_FACE_SHARE`) that it misses are then searched for one by
        one. A face found must be 0.5-2x the known one's size. Returns
        full-frame boxes, largest first, duplicates merged.
        """
        found: list[Box] = []
        rows, cols = image.shape[:2]
        if len(boxes) >= NEAR_FULL_SCAN:
            found = self._whole(image)
            if not self.settings.small_faces:
                found.sort(key=lambda b: b[2] * b[3], reverse=True)
                return found
            small = SMALL_FACE_SHARE * max(rows, cols)
            boxes = [known for known in boxes if max(known[2], known[3]) < small and all(
                iou(known, other) < 0.3 for other in found)]
        for x, y, w, h in boxes:
            side = max(w, h)
            pad = int(round(side * self.settings.roi_margin))
            x0, y0 = max(0, x - pad), max(0, y - pad)
            x1, y1 = min(cols, x + w + pad), min(rows, y + h + pad)
            x1, y1 = x1 - (x1 - x0) % 2, y1 - (y1 - y0) % 2  # even sides: shrink halves them exactly
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            for box in self._run(self.near, image[y0:y1, x0:x1], side=self.settings.near_side, halve=True):
                candidate = box.moved(x0, y0) if isinstance(box, FaceBox) else (box[0] + x0, box[1] + y0, *box[2:])
                if not NEAR_SIZE_RANGE[0] <= candidate[2] / side <= NEAR_SIZE_RANGE[1]:
                    continue
                if all(iou(candidate, other) < 0.3 for other in found):
                    found.append(candidate)
        found.sort(key=lambda b: b[2] * b[3], reverse=True)
        return found


def mapping_of(fit: dict[str, Any]) -> BoxMapping:
    """A ``box_mapping`` (or one task's entry of ``box_mapping_by_task``) from the manifest."""
    return BoxMapping(**{k: float(v) for k, v in fit.items() if k in ("scale", "dx", "dy")})


def load_model(manifest: Manifest, name: str, threads: int = 1, graphs: bool = True) -> BlazeFaceModel:
    """The ``detectors.<name>`` entry of the manifest, verified (sha256, input, outputs) and loaded; with
    ``graphs``, also the files of its ``graphs`` list (the same model at other input shapes), each verified."""
    entry = manifest.detector_entry(name)
    path = manifest.verify_detector(name)
    where = f"{manifest.root / 'manifest.json'}: detectors.{name}"
    try:
        anchors: dict[str, Any] = entry["anchors"]
        strides, per_layer = [int(s) for s in anchors["strides"]], int(anchors["per_layer"])
        mapping = mapping_of(entry.get("box_mapping", {}))
        by_task = {str(task): mapping_of(fit) for task, fit in entry.get("box_mapping_by_task", {}).items()}
        size = int(entry["input"]["height"])
        shapes = {(int(g["height"]), int(g["width"])): g for g in entry.get("graphs", [])} if graphs else {}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{where}: malformed entry ({exc})") from None
    files = {shape: manifest.verify_detector_file(g) for shape, g in shapes.items()}
    model = BlazeFaceModel(path, strides, per_layer, mapping, threads, by_task, files)
    if model.size != size:
        raise ModelError(f"{path}: input {model.size}x{model.size} does not match the manifest ({size}x{size})")
    return model
