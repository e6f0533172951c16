"""The camera in one room: the ``[camera]`` settings, the frame sources behind one interface, and
:func:`make_source` from the one to the other.

Sources: picamera2, OpenCV (USB camera or video file), image files. A source
is opened, read frame by frame (``None`` = the stream ended) and closed.
Reading a camera that has gone away raises :class:`CameraLost`, so the
service can retry and, failing that, exit for systemd to restart it. Libraries
are imported lazily: ``picamera2`` exists only on a Pi. Adding a source is a
class here, a value of :attr:`CameraSettings.source` and a branch in
:func:`make_source`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.frame.preprocess import FrameError, to_bgr, to_gray
from edge.inputs.imagefile import ImageFileError, read_image_sized
from edge.settings import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
# Camera retries are bounded: each wait is at most 30 s (doubling from retry_backoff_s), so 10 retries wait at
# most ~3 minutes; the daemon feeds the watchdog while it waits, and then exits 3 for systemd to restart it.
MAX_RETRIES, MAX_BACKOFF_S = 10, 30.0


@dataclass(frozen=True)
class CameraSettings:
    """The ``[camera]`` section: where frames come from (:func:`make_source` turns it into a source)."""

    source: Literal["picamera2", "opencv", "images"] = "picamera2"
    device: str = "0"  # opencv: a camera index ("0"), a V4L2 device node ("/dev/video0") or a video file
    path: str = ""  # images: a file or folder
    width: int = 640
    height: int = 480
    lores_width: int = 320  # picamera2: the gray stream used for detection and classification
    lores_height: int = 240
    fps: float = 15.0
    loop: bool = False  # images and video files: start over at the end
    retries: int = 4  # reopen attempts after the camera is lost, then exit for systemd to restart
    retry_backoff_s: float = 1.0  # first wait; doubled after each failed attempt

    def validate(self) -> None:
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ConfigError(f"width/height: {self.width}x{self.height} is outside 16..4096")
        if not (16 <= self.lores_width <= self.width and 16 <= self.lores_height <= self.height):
            raise ConfigError(f"lores_width/lores_height: {self.lores_width}x{self.lores_height} must be between "
                              f"16 and the main size {self.width}x{self.height}")
        if not 0.5 <= self.fps <= 120:
            raise ConfigError(f"fps: {self.fps} is outside 0.5..120")
        if self.source == "images" and not self.path:
            raise ConfigError("path: the images source needs a file or folder")
        if self.retries < 0 or self.retry_backoff_s < 0:
            raise ConfigError("retries/retry_backoff_s: must not be negative")
        if self.retries > MAX_RETRIES or self.retry_backoff_s > MAX_BACKOFF_S:
            raise ConfigError(f"retries/retry_backoff_s: at most {MAX_RETRIES} retries and {MAX_BACKOFF_S:g} s of "
                              "first wait (the service gives up after a few minutes; systemd restarts it)")


class SourceError(RuntimeError):
    """A source that cannot be opened (no camera, unreadable video); one-line message."""


class CameraLost(SourceError):
    """The camera stopped delivering frames mid-stream; the caller may reopen it."""


class BadImage(SourceError):
    """One image file could not be used; the source moves on to the next."""


@dataclass
class Frame:
    """One captured frame.

    ``image`` is what gets displayed and annotated (BGR or gray). ``gray`` is
    the 8-bit gray frame for detection and both classifiers; ``box_scale``
    maps its pixel coordinates onto ``image`` (picamera2's lores stream is
    smaller than its main stream).
    """

    image: np.ndarray
    gray: np.ndarray
    index: int
    timestamp: float  # seconds: time.monotonic() at capture for cameras and photos, media time for a video file
    path: str | None = None
    independent: bool = False  # a separate photo: never tracked together with its neighbours
    box_scale: tuple[float, float] = (1.0, 1.0)
    original: tuple[int, int] | None = None  # a photo: (width, height) in its file, before any reduction


def checked_frame(image: np.ndarray | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, gray) for a decoded frame, or :class:`BadImage` saying why it cannot be used."""
    if image is None:
        raise BadImage(f"{what}: not a readable image")
    try:
        gray = to_gray(image)
    except FrameError as exc:
        raise BadImage(f"{what}: {exc}") from None
    return to_bgr(image), gray  # 16-bit, float, BGRA: the same 8-bit pixels the gray frame was made from


class FrameSource:
    """Base class: ``open``, ``read`` until ``None``, ``close``; also an iterator and a context manager."""

    name = "source"
    live = False  # a camera: frames keep coming, tracking and smoothing apply

    def open(self) -> None:
        """Acquire the device or file; :class:`SourceError` with a clear message on failure."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device. Safe to call twice."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their images and videos (sorted); missing paths kept to report."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES))
        else:
            files.append(path)
    return files


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def is_device_path(device: str) -> bool:
    """A V4L2 device node (``/dev/video0``, ``/dev/v4l/by-id/...``): a camera, even while it is unplugged."""
    return device.startswith("/dev/")


def camera_index(device: str) -> int | str:
    """What ``cv2.VideoCapture`` opens a camera by: ``N`` for "N" and for a node that resolves to /dev/videoN
    (not every OpenCV build opens V4L2 devices by name); any other node by its name."""
    if device.isdigit():
        return int(device)
    found = re.fullmatch(r"/dev/video(\d+)", os.path.realpath(device))
    return int(found.group(1)) if found else device


class ImageSource(FrameSource):
    """Image files (and folders of them), each an independent frame.

    ``fit`` (width, height): larger images are decoded reduced and scaled to
    fit in it (the daemon passes ``camera.width/height``), so a 100-megapixel
    photo costs about what a camera frame does. With ``loop`` the folder is
    listed again on every pass (images added or removed are noticed); a pass
    without a single readable image, or a folder that has emptied, raises
    :class:`CameraLost` so the service takes its retry-then-exit path instead
    of spinning.
    """

    name = "images"

    def __init__(self, paths: Sequence[str | Path], loop: bool = False, fit: tuple[int, int] | None = None):
        self.inputs = list(paths)
        self.paths = self._expand()
        self.loop = loop
        self.fit = fit
        self._next = 0
        self._index = 0
        self._good = 0  # readable images in the current pass

    def _expand(self) -> list[Path]:
        return [p for p in expand_paths(self.inputs) if not is_video(p)]

    def _where(self) -> str:
        return ", ".join(str(p) for p in self.inputs)

    def open(self) -> None:
        self.paths, self._next, self._good = self._expand(), 0, 0
        if not any(p.is_file() for p in self.paths):
            raise SourceError(f"no image files in {self._where()}")

    def read(self) -> Frame | None:
        if self._next >= len(self.paths):
            if not self.loop or not self.paths:
                return None
            if not self._good:
                raise CameraLost(f"none of the {len(self.paths)} image(s) in {self._where()} could be read")
            self.paths, self._next, self._good = self._expand(), 0, 0
            if not self.paths:
                raise CameraLost(f"no image files left in {self._where()}")
        path = self.paths[self._next]
        self._next += 1
        try:
            decoded, original = read_image_sized(path, self.fit)
        except ImageFileError as exc:
            raise BadImage(f"{path}: {exc}") from None
        image, gray = checked_frame(decoded, str(path))
        frame = Frame(image, gray, self._index, time.monotonic(), str(path), independent=True, original=original)
        self._index += 1
        self._good += 1
        return frame


class OpenCVSource(FrameSource):
    """A USB camera (an index such as 0, or a device node such as /dev/video0) or a video file, through OpenCV.

    In a video file a frame that does not decode is skipped and counted in
    ``skipped`` (a damaged stretch of an MP4 used to end the whole video).
    Each failed read moves on by one frame, so a damaged stretch is read past
    as long as the container says frames are left: the file ends after
    ``end_failures`` failed reads in a row only once the frames read and
    skipped add up to its frame count (or it has none). 200 KB zeroed a third
    into an MP4 once ended it after 50 failed reads, 90 of 275 frames
    analysed and nothing reported; failed reads before the frame count is
    reached are counted in ``skipped`` even when no frame follows them.
    """

    name = "opencv"

    def __init__(self, device: int | str = 0, width: int = 640, height: int = 480, fps: float = 15.0,
                 read_failures: int = 5, end_failures: int = 50):
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self.read_failures = read_failures
        self.end_failures = end_failures
        self.is_file = isinstance(device, str) and not device.isdigit() and not is_device_path(device)
        self.live = not self.is_file
        self.capture: cv2.VideoCapture | None = None
        self._index = 0
        self.skipped = 0  # video file: undecodable frames skipped so far
        self._position = 0  # video file: frames read or skipped since open()

    def open(self) -> None:
        if self.is_file and not Path(str(self.device)).is_file():
            what = "not a regular file" if Path(str(self.device)).exists() else "no such video file"
            raise SourceError(f"{self.device}: {what}")
        capture = cv2.VideoCapture(self.device if self.is_file else camera_index(str(self.device)))
        if not capture.isOpened():
            capture.release()
            what = f"video {self.device}" if self.is_file else f"camera {self.device}"
            raise SourceError(f"cannot open {what}")
        if not self.is_file:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        self.capture, self._position = capture, 0

    @property
    def frame_rate(self) -> float:
        """The stream's nominal frame rate (a video file's own, or the configured one)."""
        if self.capture is not None:
            rate = self.capture.get(cv2.CAP_PROP_FPS)
            if rate and 1 <= rate <= 240:
                return float(rate)
        return float(self.fps)

    def read(self) -> Frame | None:
        if self.capture is None:
            raise SourceError("source is not open")
        if self.is_file:
            return self._read_file()
        for _ in range(max(1, self.read_failures)):
            ok, image = self.capture.read()
            if ok and image is not None and image.size:
                try:
                    image, gray = checked_frame(image, str(self.device))
                except BadImage:
                    continue
                frame = Frame(image, gray, self._index, time.monotonic(), str(self.device))
                self._index += 1
                return frame
            time.sleep(0.05)
        raise CameraLost(f"camera {self.device} stopped delivering frames")

    def _read_file(self) -> Frame | None:
        """The next decodable frame of a video file; None only at its real end."""
        assert self.capture is not None
        total = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        failed = 0
        while failed < max(self.end_failures, total - self._position):
            ok, image = self.capture.read()
            if ok and image is not None and image.size:
                try:
                    image, gray = checked_frame(image, str(self.device))
                except BadImage:
                    ok = False
            if ok:
                self.skipped += failed
                self._position += failed + 1
                # Media time, as analyze uses: tracking and smoothing follow the clip, not how fast this machine
                # decodes and classifies it (at 300 ms a frame, wall time dropped a track after 2 missed frames,
                # not 10, and with it the search near that face). Frames skipped as undecodable still took
                # their time in the clip, so they count.
                media_time = (self._index + self.skipped) / self.frame_rate
                frame = Frame(image, gray, self._index, media_time, str(self.device))
                self._index += 1
                return frame
            failed += 1
            if total > 0 and self.capture.get(cv2.CAP_PROP_POS_FRAMES) >= total:
                break  # the last frame: the end
        # frames the container promised that no read produced: lost (a damaged or truncated end)
        lost = int(max(0, min(failed, total - self._position)))
        self.skipped, self._position = self.skipped + lost, self._position + lost
        return None

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def read_timeout_s(fps: float, first: bool = False) -> float:
    """How long one read waits for a frame: 1 s plus two frame intervals (four for the first after start).

    Derived from the frame rate so that a slow camera (``fps = 0.5``: one frame
    every 2 s) is not taken for a hung one; libcamera drops a few frames after
    start, hence the longer first wait. At 0.5 fps that is 5 s (9 s first),
    well inside the unit's 30 s watchdog.
    """
    return 1.0 + (4.0 if first else 2.0) / fps


def full_field_mode(modes: Sequence[dict], fps: float) -> dict | None:
    """The smallest sensor mode that sees the sensor's whole field and keeps up with ``fps``.

    Left to itself, libcamera picks the mode closest to the requested output
    size: 640x480 on Camera Module v2 (IMX219) is a centre crop (1280x960 of
    3280x2464, binned), a narrow view. Full field means the largest
    ``crop_limits`` of all modes; among those the smallest size (binned: less
    bandwidth) whose frame rate is at least ``fps``, else the fastest one.
    None when the modes carry no crop limits (not a Pi camera).
    """
    def area(mode: dict) -> int:
        return int(mode["crop_limits"][2]) * int(mode["crop_limits"][3])

    framed = [m for m in modes if m.get("crop_limits") and m.get("size")]
    if not framed:
        return None
    widest = max(area(m) for m in framed)
    full = [m for m in framed if area(m) == widest]
    fast = [m for m in full if float(m.get("fps") or 0) >= fps]
    if fast:
        return min(fast, key=lambda m: (m["size"][0] * m["size"][1], -int(m.get("bit_depth") or 0)))
    return max(full, key=lambda m: float(m.get("fps") or 0))


def picamera2_import_error(exc: ImportError) -> str:
    """Why ``import picamera2`` failed, in one line: not installed, or installed without one of its own modules.

    picamera2 from PyPI beside Debian's libcamera imports PiDNG, simplejpeg and
    kms++ bindings that pip may not have brought (seen in a booted Trixie guest);
    "not installed" would send the owner after the wrong package.
    """
    missing = exc.name or ""
    if missing and missing.split(".")[0] != "picamera2":
        return (f"picamera2 is installed but cannot be imported: it needs {missing!r}, which is missing (on a Pi: "
                "sudo apt install --reinstall python3-picamera2 brings its dependencies)")
    return "picamera2 is not installed (on a Pi: sudo apt install python3-picamera2)"


class Picamera2Source(FrameSource):
    """The Pi camera through picamera2, with two streams from one request.

    ``main`` (BGR, for display) and ``lores`` (YUV420; its Y plane is the gray
    frame for detection and both classifiers) come from the same captured
    request, so crops and display always show the same instant. The sensor
    runs in its full-field mode (:func:`full_field_mode`), so 640x480 shows the
    whole view rather than a centre crop. A read waits :func:`read_timeout_s`
    unless ``timeout_s`` is given.
    """

    name = "picamera2"
    live = True

    def __init__(self, main_size: tuple[int, int] = (640, 480), lores_size: tuple[int, int] = (320, 240),
                 fps: float = 15.0, camera_num: int = 0, timeout_s: float | None = None):
        self.main_size = tuple(main_size)
        self.lores_size = tuple(lores_size)
        self.fps = fps
        self.camera_num = camera_num
        self.timeout_s = timeout_s
        self.camera = None
        self.sensor_mode: dict | None = None  # the mode chosen at the last open (logged by the caller)
        self._index = 0
        self._first = True
        self._lores_wh: tuple[int, int] = self.lores_size  # type: ignore[assignment]

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(picamera2_import_error(exc)) from None
        try:
            camera = Picamera2(self.camera_num)
        except IndexError as exc:
            raise SourceError(f"no Pi camera {self.camera_num} ({exc})") from None
        except RuntimeError as exc:
            cause = f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)
            hint = "; is another program using it? (sudo systemctl stop face-emotion)" if "busy" in cause else ""
            raise SourceError(f"cannot open Pi camera {self.camera_num} ({cause}){hint}") from None
        try:
            frame_us = int(1_000_000 / self.fps)
            self.sensor_mode = full_field_mode(camera.sensor_modes, self.fps)
            sensor = {} if self.sensor_mode is None else {"output_size": tuple(self.sensor_mode["size"]),
                                                          "bit_depth": self.sensor_mode.get("bit_depth")}
            config = camera.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},  # RGB888 is BGR byte order, as OpenCV wants
                lores={"size": self.lores_size, "format": "YUV420"},
                sensor={k: v for k, v in sensor.items() if v is not None},
                controls={"FrameDurationLimits": (frame_us, frame_us)},
            )
            camera.configure(config)
            lores = camera.stream_configuration("lores")
            self._lores_wh = tuple(lores["size"])  # libcamera may align the size
            camera.start()
        except Exception as exc:
            camera.close()
            raise SourceError(f"cannot start the Pi camera ({exc})") from None
        self.camera = camera
        self._first = True

    def read(self) -> Frame | None:
        if self.camera is None:
            raise SourceError("source is not open")
        lores_w, lores_h = self._lores_wh
        wait = self.timeout_s if self.timeout_s is not None else read_timeout_s(self.fps, self._first)
        try:
            with self.camera.captured_request(wait=wait) as request:
                main = request.make_array("main")
                yuv = request.make_array("lores")  # (h * 3 / 2, stride): Y plane on top, stride-padded
            gray = np.ascontiguousarray(yuv[:lores_h, :lores_w])
        except Exception as exc:  # libcamera reports a vanished camera as assorted errors or a timeout
            raise CameraLost(f"Pi camera stopped delivering frames ({type(exc).__name__}: {exc})") from None
        scale = (main.shape[1] / float(lores_w), main.shape[0] / float(lores_h))
        frame = Frame(main, gray, self._index, time.monotonic(), "picamera2", box_scale=scale)
        self._index += 1
        self._first = False
        return frame

    def close(self) -> None:
        """Cancel queued capture jobs, then close (which stops the camera). Never blocks on a hung camera.

        After a ``captured_request`` timeout the capture job stays queued; a
        plain ``stop()`` is queued behind it and waits for a frame that never
        comes. ``cancel_all_and_flush()`` drops the stale job first, as
        picamera2's own tests/wait_cancel_test.py does, and ``close()`` stops
        the preview's event loop before stopping the camera directly.
        """
        if self.camera is not None:
            camera, self.camera = self.camera, None
            try:
                camera.cancel_all_and_flush()
            finally:
                camera.close()


def make_source(camera: CameraSettings) -> FrameSource:
    """The frame source the ``[camera]`` section describes (not opened yet)."""
    if camera.source == "picamera2":
        return Picamera2Source((camera.width, camera.height), (camera.lores_width, camera.lores_height), camera.fps)
    if camera.source == "opencv":
        return OpenCVSource(camera.device, camera.width, camera.height, camera.fps)
    return ImageSource([camera.path], loop=camera.loop, fit=(camera.width, camera.height))
