"""A fake of picamera2 that follows upstream's behaviour for everything edge uses.

No Pi camera exists on a PC, so ``Picamera2Source`` and the display overlay are
tested against this. Each behaviour below is upstream picamera2's (read from
github.com/raspberrypi/picamera2, picamera2/picamera2.py, job.py, request.py,
previews/null_preview.py and tests/wait_cancel_test.py), because the earlier,
friendlier fake hid two real bugs (a hung ``close()`` and a display output left
on a closed camera):

* ``Picamera2(n)``: ``IndexError`` for a camera that does not exist; a camera
  already held (by an open instance here, or by another process: ``BUSY``)
  raises ``RuntimeError("Camera __init__ sequence did not complete.")`` whose
  ``__cause__`` is libcamera's "Failed to acquire camera: Device or resource busy".
* ``create_video_configuration`` / ``create_preview_configuration`` return the
  full dicts: main, lores, raw (defaults to the sensor format at the main
  size), sensor, controls (with the video defaults merged in), buffer_count,
  display/encode; sizes are truncated to even as upstream's ``align_stream``.
* ``configure`` checks the config like ``check_camera_config`` (even sizes,
  lores not larger than main and YUV on VC4, only ``bit_depth``/``output_size``
  in ``sensor``), picks the sensor mode with libcamera's score (the output
  size comes from ``sensor``, else ``raw``, else ``main``), writes the chosen
  mode back into ``config["sensor"]`` and the raw stream, and fills in each
  stream's ``stride``: rows padded so every plane is a multiple of 32 bytes
  (VC4: Pi 4 and earlier) or 64 bytes (PiSP: Pi 5), the Y plane of YUV420
  twice that so its half-width chroma planes are aligned too.
* ``sensor_modes``: the camera's modes (``SENSOR_MODES``, Camera Module v2's
  IMX219 by default: its 640x480 mode is a centre crop), each with
  ``crop_limits``; reading it reconfigures the camera, so not while started.
* ``start()`` runs a NullPreview event loop when no preview is running; one
  event loop at a time (``start_preview`` raises otherwise).
* Frames complete once per frame duration (``FrameDurationLimits``); the
  newest completed one is kept for a reader that is slower than the camera.
* ``captured_request(wait=)`` queues a capture job; without frames (``HANG``,
  or the camera died after ``FAIL_AFTER`` requests) it raises the real
  ``TimeoutError`` after ``wait`` s and the job *stays queued*.
* ``stop()`` with an event loop running is itself a job queued behind those:
  it blocks while a stale capture job waits for a frame that never comes.
  ``cancel_all_and_flush()`` cancels and drops the queued jobs; ``close()``
  stops the preview first and then stops the camera directly, so neither blocks.
* ``set_overlay`` raises ``RuntimeError("No preview specified.")`` when no
  preview runs (after ``close()`` or ``stop_preview()``) and for anything but a
  4-channel image.
* ``make_array``: ``main`` RGB888 as (h, w, 3) in BGR byte order, XBGR8888 as
  (h, w, 4); ``lores`` YUV420 as (h * 3 // 2, stride) with the Y plane on top
  and the U, V planes packed below, as in request.py.

Frames come from a picture the test provides (``SCENE``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import CancelledError

import cv2
import numpy as np

# Test hooks (not part of picamera2): the picture to show, the hardware, and failure switches.
SCENE: np.ndarray | None = None
CAMERAS = 1
PLATFORM = "vc4"  # "vc4" (Pi 4 and earlier) or "pisp" (Pi 5): sets the row alignment
BUSY: set[int] = set()  # camera numbers held by another process (e.g. the running service)
FAIL_AFTER: int | None = None  # each camera delivers this many frames, then none (cable pulled, sensor hung)
HANG = threading.Event()  # while set, no camera delivers frames
INSTANCES: list[Picamera2] = []

# Camera Module v2 (IMX219) as picamera2 lists it on a Pi 4: the 640x480 and 1920x1080 modes are centre
# crops of the 3280x2464 pixel array, 1640x1232 is the full field binned 2x2.
SENSOR_MODES: list[dict] = [
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (640, 480), "fps": 103.33,
     "crop_limits": (1000, 752, 1280, 960), "exposure_limits": (75, 11766829)},
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (1640, 1232), "fps": 41.85,
     "crop_limits": (0, 0, 3280, 2464), "exposure_limits": (75, 11766829)},
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (1920, 1080), "fps": 47.57,
     "crop_limits": (680, 692, 1920, 1080), "exposure_limits": (75, 11766829)},
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (3280, 2464), "fps": 21.19,
     "crop_limits": (0, 0, 3280, 2464), "exposure_limits": (75, 11766829)},
]
_DEFAULT_MODES = [dict(m) for m in SENSOR_MODES]
SENSOR_FORMAT = "SRGGB10_CSI2P"

_LOCK = threading.Condition()
_HELD: dict[int, Picamera2] = {}
_GENERATION = [0]  # bumped by reset(): frees a stop() the test left blocked


class Preview:
    DRM = "DRM"
    QTGL = "QTGL"
    QT = "QT"
    NULL = "NULL"


_BYTES_PER_PIXEL = {"RGB888": 3, "BGR888": 3, "XBGR8888": 4, "XRGB8888": 4, "YUV420": 1, "YVU420": 1}


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _stride(fmt: str, width: int) -> int:
    """Row length in bytes: planes are multiples of 32 (VC4) or 64 (PiSP) bytes; YUV420's Y plane twice that."""
    align = 32 if PLATFORM == "vc4" else 64
    if fmt in ("YUV420", "YVU420"):
        align *= 2
    return _align(width * _BYTES_PER_PIXEL.get(fmt, 2), align)


def _bit_depth(fmt: str) -> int:
    digits = "".join(c for c in fmt.split("_")[0] if c.isdigit())
    return int(digits) if digits else 8


def _score_mode(mode: dict, bit_depth: int, output_size: tuple[int, int]) -> float:
    """libcamera's sensor mode score, as picamera2 copies it (lower is better)."""

    def score_format(desired: float, actual: float) -> float:
        score = desired - actual
        return -score / 4 if score < 0 else score * 2

    width, height = mode["size"]
    score = score_format(output_size[0], width) + score_format(output_size[1], height)
    score += 1500 * score_format(output_size[0] / output_size[1], width / height)
    return score + 500 * abs(bit_depth - mode["bit_depth"])


def _stream(defaults: dict, updates: dict | None) -> dict | None:
    if updates is None:
        return None
    valid = ("format", "size", "stride", "preserve_ar")
    for key in updates:
        if key not in valid:
            raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {valid}")
    stream = defaults | dict(updates)
    width, height = stream["size"]
    stream["size"] = (width - width % 2, height - height % 2)  # align_stream(optimal=False)
    return stream


class _Job:
    """A queued capture; ``cancelled`` by cancel_all_and_flush()."""

    def __init__(self) -> None:
        self.cancelled = False


class _Request:
    def __init__(self, camera: Picamera2):
        self.camera = camera
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        config = self.camera.camera_config[name]
        width, height = config["size"]
        stride, fmt = config["stride"], config["format"]
        scene = SCENE if SCENE is not None else np.full((480, 640, 3), 128, np.uint8)
        bgr = cv2.resize(scene, (width, height), interpolation=cv2.INTER_AREA)
        if fmt in ("RGB888", "BGR888", "XBGR8888", "XRGB8888"):
            pixels = bgr if fmt in ("RGB888", "XRGB8888") else bgr[:, :, ::-1]
            if fmt.startswith("X"):
                pixels = np.dstack([pixels, np.full((height, width), 255, np.uint8)])
            channels = pixels.shape[2]
            buffer = np.full((height, stride), 7, np.uint8)  # row padding is garbage on a Pi
            buffer[:, : width * channels] = pixels.reshape(height, width * channels)
            return buffer[:, : width * channels].reshape(height, width, channels)  # a view, as request.py
        if fmt == "YUV420":
            i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
            y, rest = i420[: width * height].reshape(height, width), i420[width * height :]
            half = (width // 2) * (height // 2)
            planes = [np.full((height, stride), 7, np.uint8)]
            planes[0][:, :width] = y
            for chroma in (rest[:half], rest[half:]):
                plane = np.full((height // 2, stride // 2), 7, np.uint8)
                plane[:, : width // 2] = chroma.reshape(height // 2, width // 2)
                planes.append(plane)
            return np.concatenate([p.reshape(-1) for p in planes]).reshape(height * 3 // 2, stride)
        raise RuntimeError("Format " + fmt + " not supported")

    def release(self) -> None:
        self.released = True


class Picamera2:
    def __init__(self, camera_num: int = 0):
        if camera_num >= CAMERAS:
            raise IndexError("list index out of range")  # global_camera_info()[camera_num]
        self.camera_num = camera_num
        self.camera_config: dict | None = None
        self.started = False
        self.closed = False
        self.is_open = False
        self.requests = 0
        self.preview: str | None = None  # the running preview (event loop), None when none runs
        self.overlays: list[np.ndarray | None] = []
        self.stop_calls = 0
        self._jobs: list[_Job] = []
        self._last_frame = 0.0
        with _LOCK:
            if camera_num in BUSY or camera_num in _HELD:
                cause = RuntimeError("Failed to acquire camera: Device or resource busy")
                raise RuntimeError("Camera __init__ sequence did not complete.") from cause
            _HELD[camera_num] = self
        self.is_open = True
        INSTANCES.append(self)

    def __enter__(self) -> Picamera2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configurations ---------------------------------------------------------------------------

    def _configuration(self, main, lores, raw, controls, sensor, buffer_count, default_main, default_controls):
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = _stream(default_main, main if main is not None else {})
        return {
            "use_case": "video" if buffer_count == 6 else "preview",
            "transform": "Transform(identity)",
            "colour_space": "Smpte170m" if main["size"][0] < 1280 else "Rec709",
            "buffer_count": buffer_count,
            "queue": True,
            "main": main,
            "lores": _stream({"format": "YUV420", "size": main["size"], "preserve_ar": False}, lores),
            "raw": _stream({"format": SENSOR_FORMAT, "size": main["size"]}, raw),
            "controls": default_controls | dict(controls or {}),
            "sensor": {} if sensor is None else dict(sensor),
            "display": "main",
            "encode": "main",
        }

    def create_video_configuration(self, main=None, lores=None, raw=None, controls=None, sensor=None,
                                   buffer_count=6, **kwargs) -> dict:
        return self._configuration(main, lores, {} if raw is None else raw, controls, sensor, buffer_count,
                                   {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True},
                                   {"NoiseReductionMode": "Fast", "FrameDurationLimits": (33333, 33333)})

    def create_preview_configuration(self, main=None, lores=None, raw=None, controls=None, sensor=None,
                                     buffer_count=4, **kwargs) -> dict:
        return self._configuration(main, lores, {} if raw is None else raw, controls, sensor, buffer_count,
                                   {"format": "XBGR8888", "size": (640, 480), "preserve_ar": True},
                                   {"NoiseReductionMode": "Minimal", "FrameDurationLimits": (100, 83333)})

    @staticmethod
    def _check(config: dict) -> None:
        sensor = config.get("sensor") or {}
        bad = set(sensor).difference({"bit_depth", "output_size"})
        if bad:
            raise RuntimeError(f"Unexpected keys {bad} in sensor configuration")
        for name in ("main", "lores", "raw"):
            stream = config.get(name)
            if stream is None:
                continue
            size = stream["size"]
            if type(size) is not tuple or len(size) != 2:
                raise RuntimeError("size in " + name + " stream should be (width, height)")
            if size[0] % 2 or size[1] % 2:
                raise RuntimeError("width and height should be even")
        if config.get("lores") is not None:
            (mw, mh), (lw, lh) = config["main"]["size"], config["lores"]["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if PLATFORM == "vc4" and config["lores"]["format"] not in ("YUV420", "YVU420"):
                raise RuntimeError("lores stream must be YUV")

    def configure(self, config: dict) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self._check(config)
        sensor = config.get("sensor") or {}
        raw = config.get("raw")
        bit_depth = sensor.get("bit_depth") or _bit_depth(raw["format"] if raw else SENSOR_FORMAT)
        output_size = sensor.get("output_size") or (raw["size"] if raw else config["main"]["size"])
        mode = min(SENSOR_MODES, key=lambda m: _score_mode(m, bit_depth, tuple(output_size)))
        config["sensor"] = {"bit_depth": mode["bit_depth"], "output_size": mode["size"]}
        if raw is not None:
            raw.update(format=mode["format"], size=mode["size"], stride=_align(mode["size"][0] * 5 // 4, 32))
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is not None:
                stream["stride"] = _stride(stream["format"], stream["size"][0])
                rows = stream["size"][1] * 3 // 2 if stream["format"] in ("YUV420", "YVU420") else stream["size"][1]
                stream["framesize"] = stream["stride"] * rows
        self.camera_config = config

    def stream_configuration(self, name: str = "main") -> dict:
        return self.camera_config[name]

    @property
    def sensor_modes(self) -> list[dict]:
        if self.started:  # upstream configures the camera once per mode to read them
            raise RuntimeError("Camera must be stopped before configuring")
        self.camera_config = None
        return [dict(m) for m in SENSOR_MODES]

    # -- running ----------------------------------------------------------------------------------

    def _delivering(self) -> bool:
        return self.started and not HANG.is_set() and (FAIL_AFTER is None or self.requests < FAIL_AFTER)

    def start(self, config=None, show_preview=False) -> None:
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if show_preview is not None and self.preview is None:
            self.start_preview(show_preview)
        self.started = True
        self._last_frame = time.monotonic()  # the first frame completes one frame duration after start

    def stop(self) -> None:
        if not self.started:
            return
        self.stop_calls += 1
        if self.preview is not None:  # dispatched to the event loop, behind every queued job
            generation = _GENERATION[0]
            with _LOCK:
                while self._jobs and not self._delivering() and generation == _GENERATION[0]:
                    _LOCK.wait(0.02)
                self._jobs.clear()  # with frames coming, the queued jobs complete first
        self.started = False

    def cancel_all_and_flush(self) -> None:
        with _LOCK:
            for job in self._jobs:
                job.cancelled = True
            self._jobs = []
            _LOCK.notify_all()

    def close(self) -> None:
        if self.preview is not None:
            self.stop_preview()
        if not self.is_open:
            return
        self.started = False  # stop_() directly: no event loop left to queue behind
        self.is_open = False
        self.closed = True
        with _LOCK:
            if _HELD.get(self.camera_num) is self:
                del _HELD[self.camera_num]

    def _frame_interval(self) -> float:
        limits = (self.camera_config or {}).get("controls", {}).get("FrameDurationLimits")
        return max(limits[1], 1) / 1e6 if limits else 1 / 30

    def _wait_for_frame(self, job: _Job, wait: float | None) -> None:
        """Frames complete every frame duration; the newest one waits (queue=True) for a slow reader."""
        interval = self._frame_interval()
        end = None if wait is None else time.monotonic() + wait
        with _LOCK:
            while True:
                if job.cancelled:
                    raise CancelledError()
                now = time.monotonic()
                if self._delivering():
                    due = self._last_frame + interval
                    if due <= now:
                        self._last_frame = due + ((now - due) // interval) * interval
                        self._jobs.remove(job)
                        return
                    wake = due
                else:
                    if end is None:
                        raise RuntimeError("fake picamera2: captured_request(wait=None) without frames blocks forever")
                    wake = now + 0.02
                if end is not None and now >= end:
                    raise TimeoutError()  # concurrent.futures.TimeoutError is the builtin; the job stays queued
                _LOCK.wait(max(0.0, min(wake, end if end is not None else wake) - now))

    @contextlib.contextmanager
    def captured_request(self, wait=None, flush=None):
        job = _Job()
        with _LOCK:
            self._jobs.append(job)
        self._wait_for_frame(job, wait)
        self.requests += 1
        request = _Request(self)
        try:
            yield request
        finally:
            request.release()

    # -- previews ---------------------------------------------------------------------------------

    def start_preview(self, preview=None, **kwargs) -> None:
        if self.preview is not None:
            raise RuntimeError("An event loop is already running")
        self.preview = Preview.NULL if preview in (None, False) else preview

    def stop_preview(self) -> None:
        if self.preview is None:
            raise RuntimeError("No preview specified.")
        self.preview = None

    def set_overlay(self, overlay) -> None:
        if self.preview is None:
            raise RuntimeError("No preview specified.")
        if overlay is not None and (overlay.ndim != 3 or overlay.shape[2] != 4):
            raise RuntimeError("Overlay must be a 4-channel image")
        self.overlays.append(overlay)


def reset() -> None:
    """Test hook: forget instances and failure switches, free any stop() a test left blocked."""
    global SCENE, FAIL_AFTER, CAMERAS, PLATFORM
    SCENE, FAIL_AFTER, CAMERAS, PLATFORM = None, None, 1, "vc4"
    SENSOR_MODES[:] = [dict(m) for m in _DEFAULT_MODES]
    BUSY.clear()
    HANG.clear()
    INSTANCES.clear()
    with _LOCK:
        _HELD.clear()
        _GENERATION[0] += 1
        _LOCK.notify_all()
