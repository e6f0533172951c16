"""The ``[detector]`` config section: which backend, the scan schedule, and each backend's own keys.

Haar's keys stay flat in ``[detector]`` (``scale_factor``, ``min_neighbors``,
...), as they were before there was a choice, so configs written for earlier
releases keep working; BlazeFace's keys live in ``[detector.blazeface]``.
``backend`` and ``full_scan_every`` apply to every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge.settings import ConfigError

Equalize = Literal["hist", "clahe", "none"]
Backend = Literal["haar", "blazeface"]
BlazeFaceModelName = Literal["full", "full_float32", "short"]
# [detector.blazeface] model -> the manifest's detectors entry
BLAZEFACE_ENTRIES: dict[str, str] = {"full": "blazeface_full_int8", "full_float32": "blazeface_full",
                                     "short": "blazeface_short"}
BLAZEFACE_MODELS: tuple[str, ...] = tuple(BLAZEFACE_ENTRIES)
BACKENDS: tuple[str, ...] = ("haar", "blazeface")


@dataclass(frozen=True)
class BlazeFaceSettings:
    """``[detector.blazeface]``: MediaPipe's BlazeFace models run with the classifiers' TFLite runtime.

    ``model`` scans whole frames: ``full`` (192x192, faces up to ~5 m; the
    int8 file ``python -m quantize.detector`` made from MediaPipe's model on
    real frames: the same faces on ../shared/media for about a quarter less
    CPU per invoke, the README has the figures), ``full_float32`` (MediaPipe's
    own file, float16 weights) or ``short`` (128x128, faces within ~2 m, the
    fastest; float: its int8 version put a face on a bare wall). With ``fallback``,
    a full scan in which ``full`` finds nothing is repeated with ``short`` at
    the frame's own aspect, which finds the close-ups that fill the frame
    (``full`` alone finds 56 of 2,000 UTKFace test faces enlarged to fill a
    200x200 photo); its boxes must score ``fallback_threshold``: at 0.55 the
    default finds 1,924 of them (and 1,749 of 2,000 FER-2013 close-ups), while
    the highest-scoring thing on ``../shared/media``'s 14 negatives, the cat in
    ``chelsea.png``, scores 0.49 (``python -m train_host.detector_sets``). Between full
    scans a stream searches each known face's neighbourhood (the box grown by
    ``roi_margin`` on each side) with ``short``.

    ``small_face_threshold``: a whole-frame box narrower than 7.5% of the
    frame's long side (48 px at 640x480, 14 px in the model's input) counts
    from this score instead of ``score_threshold`` when the short-range model,
    run on its neighbourhood enlarged as the near search does, finds a face
    there at ``score_threshold``. The full-range model scores small faces
    low: at 0.5 it found 28% of 30 px faces where Haar finds 38%; with 0.4 and
    the second look 45%, and at least Haar's share at every width, the same
    faces on every other set of ``python -m train_host.detector_sets`` and no
    false face on the negatives. Without the second look 0.4 also took hands
    and a microphone in the Hamilton clip for faces; with it the clip keeps its
    433 faces and the dinner clip gains 116 (turned and distant faces, by eye).
    Set it to ``score_threshold`` (or above) to turn it off.

    ``small_faces``: whole-frame scans also run the whole-frame model on four
    overlapping tiles (each 55% of the frame), so faces 24-44 px wide at
    640x480 (a person 2-4 m from a Pi Camera v2) are found as often as large
    ones: 85-100% of them against 4-87% without, and more than Haar's 0-76% at
    those sizes, for four more invokes per full scan (a stream pays them every
    ``full_scan_every`` frames).

    ``near_side``: the long side of the short-range model's input in the
    near search (the known face's window at its own aspect, multiples of 16;
    128, the model's own size, by default). There the face fills about 40% of
    the window: 51 px at 128. Smaller is cheaper (80: about half the CPU) but
    loses faces in streams: ``python -m edge analyze`` on the Hamilton clip in
    ../shared/media found 430 faces at 128, 417 at 112, 400 at 96 and 393 at
    80 (with ``INTER_AREA`` windows; large faces filling a 640x360 frame are
    lost first: at 80 the whole frame becomes 80x48 and the face 33 px),
    although searched once per frame it finds nearly as many (945 vs 953 of
    1,011 at 80, every third frame of both videos).

    ``aspect_graphs``: the whole-frame model also loads the manifest's
    ``graphs`` (the same model at 160x192 and 192x160, ``python -m
    quantize.detector_shapes``) and runs each frame at the one that holds it
    at the square's scale with the fewest pixels: a 640x480 frame at 160x192,
    17% fewer pixels than the 192x192 square whose top and bottom 24 rows are
    letterbox padding; calling-thread CPU per ``detect()`` of the samples at
    640x480 3.57 -> 3.14 ms at 1 thread (loaded machine). The same scale and
    at least the same faces on every set of ``python -m
    train_host.detector_sets`` (one more at 640x480 on ../shared/media: 27 of
    28, the fourth tilted man; none false).

    ``near_threads``: interpreter threads of the short-range model (near
    search, fallback) when ``model`` is ``full`` or ``full_float32``. 2 by
    default: its 128x128 invoke takes 0.66 ms at two against 1.04 at one on
    the idle 2-core x86 (three runs of 300 invokes each), and a stream spends
    most of its detect time there (``python -m edge.bench --hold 15``). An
    earlier measurement on a *loaded* 2-core machine had the second thread
    waiting for a core (wall 1.23 -> 4.35 ms median): set 1 where other work
    keeps the cores busy.

    ``threads``: interpreter threads of the whole-frame model. 2 by default:
    its invoke is most of a frame's time, and a second thread takes about a
    quarter of it off the calling thread's critical path (full range on the
    2-core x86 PC: 3.7 -> ~3.2 ms of the caller's CPU time, for ~20% more CPU
    in all; ``python -m edge.bench.profile``), which every Pi (4 cores)
    has to spare. Set 1 where other work keeps the cores busy. With ``model =
    "short"`` the short-range model is the whole-frame model and gets
    ``threads``; ``near_threads`` then does nothing.
    """

    model: BlazeFaceModelName = "full"
    fallback: bool = True
    score_threshold: float = 0.5
    small_face_threshold: float = 0.4
    fallback_threshold: float = 0.55
    small_faces: bool = False
    nms_iou: float = 0.3  # weighted non-maximum suppression: boxes overlapping more are merged
    roi_margin: float = 0.75
    near_side: int = 128
    aspect_graphs: bool = True
    threads: int = 2
    near_threads: int = 2

    @property
    def entry(self) -> str:
        """The manifest's ``detectors`` key of the whole-frame model."""
        return BLAZEFACE_ENTRIES[self.model]

    def validate(self) -> None:
        if self.model not in BLAZEFACE_MODELS:
            raise ConfigError(f"model: expected one of {', '.join(map(repr, BLAZEFACE_MODELS))}, got {self.model!r}")
        if not 0.05 <= self.score_threshold <= 0.99:
            raise ConfigError(f"score_threshold: {self.score_threshold} is outside 0.05..0.99")
        if not 0.05 <= self.small_face_threshold <= 0.99:
            raise ConfigError(f"small_face_threshold: {self.small_face_threshold} is outside 0.05..0.99")
        if not 0.05 <= self.fallback_threshold <= 0.99:
            raise ConfigError(f"fallback_threshold: {self.fallback_threshold} is outside 0.05..0.99")
        if not 0.05 <= self.nms_iou <= 0.95:
            raise ConfigError(f"nms_iou: {self.nms_iou} is outside 0.05..0.95")
        if not 0.25 <= self.roi_margin <= 2.0:
            raise ConfigError(f"roi_margin: {self.roi_margin} is outside 0.25..2.0")
        if not 32 <= self.near_side <= 256 or self.near_side % 16:
            raise ConfigError(f"near_side: {self.near_side} is not a multiple of 16 in 32..256")
        if not 1 <= self.threads <= 16:
            raise ConfigError(f"threads: {self.threads} is outside 1..16")
        if not 1 <= self.near_threads <= 16:
            raise ConfigError(f"near_threads: {self.near_threads} is outside 1..16")


@dataclass(frozen=True)
class DetectorSettings:
    """The ``[detector]`` section: the backend, the scan schedule, Haar's keys (flat) and ``blazeface``."""

    backend: Backend = "blazeface"  # "haar": the paper's pipeline ("paper mode")
    full_scan_every: int = 8  # streams: scan the whole frame every N frames, around known faces in between
    # Haar (the paper's detector; OpenCV's reference settings by default)
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 30  # smallest face side, in full-resolution pixels
    equalize: Equalize = "none"
    clahe_clip: float = 2.0
    detect_width: int = 0  # 0 = detect at full resolution
    roi_margin: float = 0.5  # around a known face, search this fraction of its size on each side
    blazeface: BlazeFaceSettings = field(default_factory=BlazeFaceSettings)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: unknown detector {self.backend!r} (known: {', '.join(BACKENDS)})")
        if not 1.01 <= self.scale_factor <= 2.0:
            raise ConfigError(f"scale_factor: {self.scale_factor} is outside 1.01..2.0")
        if not 0 <= self.min_neighbors <= 50:
            raise ConfigError(f"min_neighbors: {self.min_neighbors} is outside 0..50")
        if self.min_size < 1:
            raise ConfigError(f"min_size: {self.min_size} must be at least 1 pixel")
        if self.detect_width and self.detect_width < 64:
            raise ConfigError(f"detect_width: {self.detect_width} is below 64 pixels (0 = full resolution)")
        if not 1 <= self.full_scan_every <= 300:
            raise ConfigError(f"full_scan_every: {self.full_scan_every} is outside 1..300 (1 = every frame)")
        if not 0.1 <= self.roi_margin <= 2.0:
            raise ConfigError(f"roi_margin: {self.roi_margin} is outside 0.1..2.0")
        try:
            self.blazeface.validate()
        except ConfigError as exc:
            raise ConfigError(f"blazeface.{exc}") from None
