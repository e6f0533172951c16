"""Annotated frames on the Pi's screen: picamera2's preview overlay, or an OpenCV window.

With the picamera2 source the camera's own preview (DRM on the console, QtGL
on a desktop) shows the live image at full rate, and this output only
draws the boxes, labels and statistics into a transparent RGBA overlay sized
to the main stream (``camera.set_overlay``): no frame is copied to the
screen by Python. With any other source, annotated frames go to an OpenCV
window (``cv2.imshow``).

A Pi without a screen (no ``DISPLAY``/``WAYLAND_DISPLAY`` and no DRM device),
or an OpenCV without GUI support (the pip wheel opencv-python-headless), gives
one clear :class:`OutputError` line; the live view is the headless option.
picamera2 is imported only when the overlay is used.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edge.frame.annotate import annotate
from edge.frame.results import FrameResult
from edge.frame.stats import LatencyStats, stats_text
from edge.outputs.base import Output, OutputError
from edge.settings import ConfigError


@dataclass(frozen=True)
class DisplaySettings:
    """``[outputs.display]``: annotated frames on the Pi's screen."""

    enabled: bool = False
    mode: Literal["auto", "overlay", "window"] = "auto"  # auto: overlay with picamera2, else an OpenCV window
    preview: Literal["auto", "drm", "qtgl"] = "auto"  # overlay: auto = qtgl on a desktop, drm on the console
    window_name: str = "face-emotion"
    show_stats: bool = True  # fps and latency in the top-left corner

    def validate(self) -> None:
        if not self.window_name:
            raise ConfigError("window_name: must not be empty")

STATS_REFRESH_S = 0.5  # the fps/latency text changes at most this often: readable, and fewer overlay redraws
LIVE_VIEW_HINT = "enable [outputs.live_view] to watch from a browser instead"


class StatsText:
    """Frame rate and latency of the frames an output has seen, as corner text refreshed twice a second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: int = 30):
        self.clock = clock
        self.stats = LatencyStats(window)
        self.text = ""
        self._refreshed: float | None = None

    def add(self, result: FrameResult) -> str:
        now = self.clock()
        self.stats.add({"total": result.timings_ms.get("total", 0.0)}, stamp=now)
        if self._refreshed is None or now - self._refreshed >= STATS_REFRESH_S:
            self.text, self._refreshed = stats_text(self.stats), now
        return self.text


def overlay_rgba(frame_shape: tuple[int, ...], result: FrameResult, text: str | None) -> np.ndarray:
    """Boxes, labels and ``text`` on a transparent canvas the size of the frame (RGBA, for ``set_overlay``)."""
    height, width = frame_shape[:2]
    drawn = annotate(np.zeros((height, width, 3), np.uint8), result, text)
    alpha = np.where(drawn.max(axis=2) > 0, 255, 0).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([drawn[..., ::-1], alpha]))


class DisplayOutput(Output):
    """Draws results on the local screen; see the module docstring."""

    name = "display"

    def __init__(self, settings: DisplaySettings | None = None, camera: Any = None,
                 env: Mapping[str, str] | None = None, dri_dir: str | Path = "/dev/dri",
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings or DisplaySettings()
        self.camera = camera
        self.env = os.environ if env is None else env
        self.dri_dir = Path(dri_dir)
        self.stats = StatsText(clock)
        self.mode: str | None = None  # "overlay" or "window" once started
        self.preview: str | None = None  # "drm" or "qtgl" in overlay mode
        self._last_key: Any = None

    # -- start / close -------------------------------------------------------------------------------

    def _desktop(self) -> bool:
        return bool(self.env.get("DISPLAY") or self.env.get("WAYLAND_DISPLAY"))

    def _drm(self) -> bool:
        return any(self.dri_dir.glob("card*"))

    def start(self) -> None:
        wanted = self.settings.mode
        if wanted == "overlay" and self.camera is None:
            raise OutputError('display: mode "overlay" needs the picamera2 source (camera.source = "picamera2")')
        if self.camera is not None and wanted in ("auto", "overlay"):
            self._start_overlay()
        else:
            self._start_window()

    def _start_overlay(self) -> None:
        kind: str = self.settings.preview
        if kind == "auto":
            kind = "qtgl" if self._desktop() else "drm" if self._drm() else ""
        if not kind:
            raise OutputError(f"display: no screen (DISPLAY and WAYLAND_DISPLAY are unset and there is no DRM "
                              f"device in {self.dri_dir}); {LIVE_VIEW_HINT}")
        if kind == "qtgl" and not self._desktop():
            raise OutputError(f'display: preview "qtgl" needs a desktop (DISPLAY and WAYLAND_DISPLAY are unset); '
                              f'use preview = "drm" on the console, or {LIVE_VIEW_HINT}')
        if kind == "drm" and not self._drm():
            raise OutputError(f'display: preview "drm" needs a DRM device ({self.dri_dir}/card*); {LIVE_VIEW_HINT}')
        try:
            from picamera2 import Preview
        except ImportError:
            raise OutputError("display: picamera2 is not installed (on a Pi: sudo apt install python3-picamera2)") \
                from None
        camera = self.camera
        try:
            with contextlib.suppress(RuntimeError):  # camera.start() runs a NullPreview; make room for ours
                camera.stop_preview()
            camera.start_preview(Preview.QTGL if kind == "qtgl" else Preview.DRM)
        except Exception as exc:
            with contextlib.suppress(Exception):  # without an event loop the camera delivers no frames
                camera.start_preview(False)
            raise OutputError(f"display: cannot start the picamera2 {kind} preview ({exc})") from None
        self.mode, self.preview = "overlay", kind

    def _start_window(self) -> None:
        if not self._desktop():
            raise OutputError(f"display: no screen for a window (DISPLAY and WAYLAND_DISPLAY are unset); "
                              f"{LIVE_VIEW_HINT}")
        try:
            cv2.namedWindow(self.settings.window_name, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise OutputError(explain_cv2_error(exc)) from None
        self.mode = "window"

    def close(self) -> None:
        """Remove the overlay and hand the camera back its NullPreview, or close the window. Safe to call twice."""
        if self.mode == "overlay":
            camera = self.camera
            with contextlib.suppress(Exception):
                camera.set_overlay(None)
            with contextlib.suppress(Exception):
                camera.stop_preview()
            with contextlib.suppress(Exception):  # frames must keep coming if only the display is dropped
                camera.start_preview(False)
        elif self.mode == "window":
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.settings.window_name)
                cv2.waitKey(1)
        self.mode = None
        self._last_key = None

    def camera_reopened(self, camera: Any) -> None:
        """Move the overlay to the reopened camera: the old one is closed and its preview gone.

        ``set_overlay`` on the closed camera would raise ("No preview
        specified.") and the display would be dropped after every reopen.
        """
        if self.camera is None:
            return  # window mode: frames arrive through update(), no camera is held
        self.camera, self._last_key = camera, None
        if self.mode == "overlay":
            self.mode = None
            if camera is None:
                raise OutputError("display: the camera came back without a picamera2 object; overlay stopped")
            self._start_overlay()

    # -- per frame -----------------------------------------------------------------------------------

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        if self.mode is None:
            return
        text = self.stats.add(result) if self.settings.show_stats else None
        if self.mode == "overlay":
            key = (frame.shape[:2], text, tuple((f.box, f.track, f.emotion, round(f.emotion_confidence, 2), f.gender)
                                                for f in result.faces))
            if key == self._last_key:
                return  # nothing new to draw: skip the redraw and the copy into the preview
            self.camera.set_overlay(overlay_rgba(frame.shape, result, text))
            self._last_key = key
            return
        try:
            cv2.imshow(self.settings.window_name, annotate(frame, result, text))
            cv2.waitKey(1)
        except cv2.error as exc:
            raise OutputError(explain_cv2_error(exc)) from None


def explain_cv2_error(exc: cv2.error) -> str:
    """One line for an OpenCV GUI failure; the headless wheel's "not implemented" gets its own advice."""
    text = str(exc)
    if "not implemented" in text.lower() or "rebuild the library" in text.lower():
        return ("display: this OpenCV has no GUI support (the opencv-python-headless wheel); on a Pi install "
                f"python3-opencv with apt, or {LIVE_VIEW_HINT}")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"display: cannot open an OpenCV window ({first})"
