"""Annotated videos that play in a browser: H.264 MP4 through an ffmpeg binary when one is at hand, else VP8 WebM.

What the codecs cost and where they play was measured, not assumed (``python -m edge.videowriter`` prints it for
the machine it runs on). The OpenCV pip wheel (4.14, x86-64 and aarch64) carries FFmpeg with **no software H.264
encoder**: ``avc1`` only reaches ``h264_v4l2m2m``, which needs a hardware encoder device, so it does not open on
a PC. What the wheel does write:

- ``mp4v`` (MPEG-4 Part 2 in .mp4): fast (~4 ms per 640x360 frame) but Chrome and Firefox refuse to play it;
- ``MJPG`` in .avi: fast, large, and no browser plays AVI;
- ``VP80`` in .webm: plays in every current browser, ~60 ms per 640x360 frame (VP9: ~300 ms).

An ffmpeg binary with ``libx264`` writes H.264 at a few ms per frame into an MP4 every browser plays: the one
``pip install imageio-ffmpeg`` ships (the ``video`` extra; x86-64 and aarch64 wheels), or Debian's ``ffmpeg``
on PATH. So ``auto`` takes H.264 through such a binary when there is one, else VP8 WebM through OpenCV, and the
caller says which in its output.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


class VideoWriterError(Exception):
    """No writer for the asked format here: the message says what to install or choose instead."""


@dataclass(frozen=True)
class VideoFormat:
    """A codec in its container, and whether a browser's ``<video>`` plays it."""

    codec: str  # the --video-codec name
    suffix: str
    description: str
    browser: bool


FORMATS = {
    "h264": VideoFormat("h264", ".mp4", "H.264 MP4", True),
    "vp8": VideoFormat("vp8", ".webm", "VP8 WebM", True),
    "mpeg4": VideoFormat("mpeg4", ".mp4", "MPEG-4 Part 2 MP4", False),
    "mjpg": VideoFormat("mjpg", ".avi", "Motion-JPEG AVI", False),
}
CODECS = ("auto", *FORMATS)
FOURCC = {"vp8": "VP80", "mpeg4": "mp4v", "mjpg": "MJPG"}  # through OpenCV's own FFmpeg
# A named output file's suffix picks the format under ``auto``; .mp4 prefers H.264 (see choose_format).
BY_SUFFIX = {".webm": "vp8", ".avi": "mjpg", ".mp4": "h264", ".m4v": "h264", ".mov": "h264"}
# Software first; the Pi 4's hardware encoder (v4l2m2m) where a binary was built with it.
H264_ENCODERS = ("libx264", "libopenh264", "h264_v4l2m2m")
NO_H264 = ("no H.264 encoder here (OpenCV's pip wheel has none): pip install imageio-ffmpeg "
           "(the video extra) or apt install ffmpeg")


def ffmpeg_binary() -> str | None:
    """imageio-ffmpeg's bundled binary (pip), else an ``ffmpeg`` on PATH, else None."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return shutil.which("ffmpeg")
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # the package without its binary (an unsupported platform)
        return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=4)
def h264_encoder(binary: str | None) -> str | None:
    """The first H.264 encoder in :data:`H264_ENCODERS` that ``binary`` lists, or None."""
    if binary is None:
        return None
    try:
        listed = subprocess.run([binary, "-hide_banner", "-encoders"], capture_output=True, text=True,
                                timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = {line.split()[1] for line in listed.splitlines() if len(line.split()) > 1}
    return next((name for name in H264_ENCODERS if name in names), None)


def choose_format(codec: str, named_suffix: str | None, h264_available: bool) -> VideoFormat:
    """The format to write: ``codec`` as asked, or under ``auto`` the best that plays in a browser.

    ``named_suffix`` is the suffix of an output file the user named (None for a folder): ``.webm`` means VP8,
    ``.avi`` Motion-JPEG, ``.mp4`` H.264, falling back to MPEG-4 Part 2 in the name the user asked for when no
    H.264 encoder is here (the caller says it will not play in a browser).
    """
    if codec not in CODECS:
        raise VideoWriterError(f"unknown video codec {codec!r}: choose one of {', '.join(CODECS)}")
    if codec == "h264" and not h264_available:
        raise VideoWriterError(NO_H264)
    if codec != "auto":
        return FORMATS[codec]
    wanted = BY_SUFFIX.get((named_suffix or "").lower())
    if named_suffix is None:
        wanted = "h264" if h264_available else "vp8"
    elif wanted is None:
        raise VideoWriterError(f"no video format for {named_suffix!r} files: name the output .mp4, .webm or .avi")
    if wanted == "h264" and not h264_available:
        return FORMATS["mpeg4"]
    return FORMATS[wanted]


class Writer(Protocol):
    """OpenCV's ``VideoWriter`` calls that the annotated-video writer uses; :class:`FfmpegWriter` has them too."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def write(self, image: np.ndarray) -> None: ...

    def release(self) -> None: ...


class FfmpegWriter:
    """OpenCV's ``VideoWriter`` calls (``write``, ``release``, ``isOpened``) over an ffmpeg process's stdin.

    Raw BGR frames go in; ffmpeg writes H.264 (yuv420p, what browsers decode; odd sizes padded by a pixel) with
    the index at the front (``+faststart``) so a browser starts playing before the whole file arrives. A write
    that fails (ffmpeg gone, disk full) marks the writer failed instead of raising mid-video; the caller's
    read-back check reports it.
    """

    def __init__(self, binary: str, encoder: str, path: Path, fps: float, size: tuple[int, int]):
        self.size = size
        self.failed = False
        width, height = size
        command = [binary, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                   "-s", f"{width}x{height}", "-r", f"{fps:.6g}", "-i", "-", "-an",
                   "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", encoder, "-pix_fmt", "yuv420p",
                   "-movflags", "+faststart"]
        if encoder == "libx264":
            command += ["-preset", "veryfast", "-crf", "23"]
        self.process: subprocess.Popen | None = subprocess.Popen(
            [*command, str(path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.errors = b""

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name, so either writer serves the same caller
        return self.process is not None and self.process.poll() is None

    def write(self, image: np.ndarray) -> None:
        if self.failed or self.process is None or self.process.stdin is None:
            return
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        try:
            self.process.stdin.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        except (BrokenPipeError, OSError):
            self.failed = True

    def release(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            self.failed = True
        self.errors = process.stderr.read() if process.stderr is not None else b""
        if process.wait() != 0:
            self.failed = True


def open_writer(path: Path, fmt: VideoFormat, fps: float, size: tuple[int, int]) -> Writer:
    """An opened writer for ``fmt`` at ``path`` (OpenCV's interface), or raise :class:`VideoWriterError`."""
    if fmt.codec == "h264":
        binary = ffmpeg_binary()
        encoder = h264_encoder(binary)
        if binary is None or encoder is None:
            raise VideoWriterError(NO_H264)
        try:  # ffmpeg would start and only fail once frames arrive: find out now, as OpenCV's writer does
            path.open("ab").close()
        except OSError as exc:
            raise VideoWriterError(f"{path}: cannot open a video writer there ({exc.strerror or exc})") from None
        writer: Writer = FfmpegWriter(binary, encoder, path, fps, size)
    else:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*FOURCC[fmt.codec]), fps, size)
    if not writer.isOpened():
        writer.release()
        raise VideoWriterError(f"{path}: cannot open a video writer there ({fmt.description})")
    return writer


def h264_available() -> bool:
    return h264_encoder(ffmpeg_binary()) is not None


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="python -m edge.videowriter",
                                   description="which annotated-video formats this machine writes, and their cost")


def main(argv: list[str] | None = None) -> int:
    """Print, for this machine, which formats open and what a 640x360 frame costs in each."""
    import tempfile
    import time

    build_parser().parse_args(argv)

    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (0, 0), 3) for _ in range(30)]
    print(f"ffmpeg binary: {ffmpeg_binary() or 'none'}; H.264 encoder: {h264_encoder(ffmpeg_binary()) or 'none'}")
    with tempfile.TemporaryDirectory() as folder:
        for fmt in FORMATS.values():
            out = Path(folder) / f"probe{fmt.suffix}"
            start = time.perf_counter()
            try:
                writer = open_writer(out, fmt, 25.0, (640, 360))
            except VideoWriterError as exc:
                print(f"{fmt.description:<20} not available: {exc}")
                continue
            for frame in frames:
                writer.write(frame)
            writer.release()
            ms = (time.perf_counter() - start) * 1000 / len(frames)
            print(f"{fmt.description:<20} {ms:6.1f} ms per 640x360 frame, "
                  f"{'plays' if fmt.browser else 'does not play'} in browsers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
