"""A small fake of picamera2, faithful to the parts of its documented API that edge uses.

No Pi camera exists on a PC, so ``Picamera2Source`` is tested against this:
``Picamera2(camera_num)``, ``create_video_configuration(main=, lores=, controls=)``
/ ``create_preview_configuration``, ``configure``, ``stream_configuration(name)``
(with the ``stride`` a real camera pads rows to), ``start``/``stop``/``close``,
``captured_request(wait=)`` as a context manager whose request has
``make_array(name)``: ``main`` as (h, w, 3) in BGR byte order ("RGB888"), and
``lores`` as YUV420 laid out like picamera2 does, shape (h * 3 // 2, stride)
with the Y plane on top. Frames come from a picture the test provides.
"""

from __future__ import annotations

import contextlib
import threading

import cv2
import numpy as np

# Test hooks (not part of picamera2): the picture to show, and failure switches.
SCENE: np.ndarray | None = None
CAMERAS = 1
FAIL_AFTER: int | None = None  # raise after this many requests, like a camera unplugged mid-stream
HANG = threading.Event()  # when set, captured_request blocks (a hung camera) until its timeout
INSTANCES: list[Picamera2] = []


def _align(value: int, to: int = 64) -> int:
    return (value + to - 1) // to * to


class _Request:
    def __init__(self, camera: Picamera2):
        self.camera = camera
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        config = self.camera.camera_config[name]
        width, height = config["size"]
        scene = SCENE if SCENE is not None else np.full((480, 640, 3), 128, np.uint8)
        bgr = cv2.resize(scene, (width, height), interpolation=cv2.INTER_AREA)
        if config["format"] in ("RGB888", "BGR888"):
            return bgr if config["format"] == "RGB888" else bgr[:, :, ::-1].copy()
        if config["format"] == "YUV420":
            stride = config["stride"]
            i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # (h * 3 // 2, w)
            out = np.full((height * 3 // 2, stride), 255, np.uint8)  # padding bytes are garbage on a Pi
            out[:, :width] = i420
            return out
        raise RuntimeError("Format " + config["format"] + " not supported")

    def release(self) -> None:
        self.released = True


class Picamera2:
    def __init__(self, camera_num: int = 0):
        if camera_num >= CAMERAS:
            raise IndexError("list index out of range")
        self.camera_num = camera_num
        self.camera_config: dict | None = None
        self.started = False
        self.closed = False
        self.requests = 0
        self.overlays: list[np.ndarray | None] = []
        INSTANCES.append(self)

    def _configuration(self, main=None, lores=None, controls=None, buffer_count=4) -> dict:
        config = {"main": {"size": (640, 480), "format": "XBGR8888"} | dict(main or {}),
                  "lores": None if lores is None else {"size": (320, 240), "format": "YUV420"} | dict(lores),
                  "controls": dict(controls or {}), "buffer_count": buffer_count}
        return config

    def create_video_configuration(self, main=None, lores=None, controls=None, **kwargs) -> dict:
        return self._configuration(main, lores, controls, kwargs.get("buffer_count", 6))

    def create_preview_configuration(self, main=None, lores=None, controls=None, **kwargs) -> dict:
        return self._configuration(main, lores, controls, kwargs.get("buffer_count", 4))

    def configure(self, config: dict) -> None:
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is None:
                continue
            width, height = stream["size"]
            width -= width % 2
            height -= height % 2
            bytes_per_pixel = 3 if stream["format"] in ("RGB888", "BGR888") else 1
            stream["size"] = (width, height)
            stream["stride"] = _align(width * bytes_per_pixel)
        self.camera_config = config

    def stream_configuration(self, name: str = "main") -> dict:
        assert self.camera_config is not None, "configure() first"
        return self.camera_config[name]

    def start(self, config=None, show_preview=False) -> None:
        if config is not None:
            self.configure(config)
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.started = False
        self.closed = True

    @contextlib.contextmanager
    def captured_request(self, wait=None, flush=None):
        if not self.started:
            raise RuntimeError("Camera must be started before capturing")
        if HANG.is_set():  # no frame arrives: block until the caller's timeout, as a real request would
            threading.Event().wait(wait if wait is not None else 3600)
            raise TimeoutError("Timed out waiting for a request")
        self.requests += 1
        if FAIL_AFTER is not None and self.requests > FAIL_AFTER:
            raise RuntimeError("Device or resource busy: camera disconnected")
        request = _Request(self)
        try:
            yield request
        finally:
            request.release()

    def set_overlay(self, overlay) -> None:
        self.overlays.append(overlay)

    def start_preview(self, preview=None, **kwargs) -> None:
        if getattr(self, "preview", None) is not None:
            raise RuntimeError("An event loop is already running")  # picamera2 allows one preview at a time
        self.preview = preview

    def stop_preview(self) -> None:
        self.preview = None


class Preview:
    DRM = "DRM"
    QTGL = "QTGL"
    QT = "QT"
    NULL = "NULL"


def reset() -> None:
    """Test hook: forget instances and failure switches."""
    global SCENE, FAIL_AFTER, CAMERAS
    SCENE, FAIL_AFTER, CAMERAS = None, None, 1
    HANG.clear()
    INSTANCES.clear()
