"""``python -m edge analyze PATH... [--json] [--annotate OUT]``: images, folders and videos.

Images (and the images of a folder) are independent photos: no tracking or
smoothing across them. A video is a stream: faces keep track ids and labels
are smoothed within it. ``--json`` prints one JSON object per image or video
frame; ``--annotate`` writes the picture or video with boxes (blue = man,
red = woman) and labels. A video shows its progress (``frame 120/1972``) on
stderr when that is a terminal, never in a pipe or a log, nor with ``-q``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TextIO

import cv2
import numpy as np

from edge.cli import add_settings_options, settings_from
from edge.frame.annotate import annotate
from edge.frame.manifest import ModelError
from edge.frame.pipeline import Pipeline
from edge.frame.results import FrameResult
from edge.frame.runtime import RuntimeMissing
from edge.frame.stats import ANALYSIS_STAGES, PIPELINE_STAGES
from edge.frame.tracking import SmoothingSettings
from edge.inputs.imagefile import ANALYZE_FIT
from edge.inputs.sources import BadImage, ImageSource, OpenCVSource, SourceError, expand_paths, is_video
from edge.videowriter import (
    CODECS,
    NO_H264,
    VideoFormat,
    VideoWriterError,
    Writer,
    choose_format,
    h264_available,
    open_writer,
)

# Photos larger than this are decoded reduced (JPEG: libjpeg DCT scaling) and scaled to fit, so a 108-megapixel
# photo never needs its full-size pixels in memory; boxes are printed in the photo's own pixels.
MAX_IMAGE_SIZE = ANALYZE_FIT


def describe(result: FrameResult, path: str) -> str:
    """One human-readable line per frame."""
    faces = "; ".join(
        f"[{', '.join(map(str, f.box))}] {f.emotion} {f.emotion_confidence:.2f}, {f.gender} {f.gender_confidence:.2f}"
        for f in result.faces) or "no face"
    t = result.timings_ms
    timing = " ".join(f"{k} {t[k]:.1f}" for k in (*ANALYSIS_STAGES, "total"))
    return f"{path}: {len(result.faces)} face(s): {faces}  | ms: {timing}"


class Progress:
    """``path: frame 120/1972`` rewritten in place on a terminal, at most every ``interval_s``; cleared at the end.

    Off (every call a no-op) when ``stream`` is not a terminal: a pipe, a file
    or the journal gets no carriage returns.
    """

    def __init__(self, stream: TextIO, enabled: bool = True, interval_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.interval_s = interval_s
        self.clock = clock
        self._shown: float | None = None

    def update(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if self._shown is not None and now - self._shown < self.interval_s and done != total:
            return
        self._shown = now
        of = f"/{total}" if total > 0 else ""
        self.stream.write(f"\r\033[K{label}: frame {done}{of}")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self._shown is not None:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self._shown = None


class Analyzer:
    """Runs the pipeline over paths and writes what the options ask for."""

    def __init__(self, pipeline: Pipeline, as_json: bool, annotate_to: Path | None, many: bool,
                 progress: Progress | None = None, video_codec: str = "auto"):
        self.pipeline = pipeline
        self.progress = progress or Progress(sys.stderr, enabled=False)
        self.video_codec = video_codec
        self.as_json = as_json
        self.annotate_to = annotate_to
        self.many = many
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.errors = 0
        self.annotated = 0  # annotated files written
        self._video_out = Path()  # where the open video writer writes
        self._video_format: VideoFormat | None = None

    def _to_folder(self) -> bool:
        """Annotated copies go into a folder (several inputs, an existing folder, a name without suffix)."""
        assert self.annotate_to is not None
        return self.many or self.annotate_to.is_dir() or not self.annotate_to.suffix

    def _out_path(self, source: Path, suffix: str | None = None) -> Path | None:
        """Where the annotated copy of ``source`` goes; None (and one error line) when the folder cannot be made."""
        assert self.annotate_to is not None
        name = f"{source.stem}_annotated{suffix or source.suffix}"
        folder = self._to_folder()
        target = self.annotate_to if folder else self.annotate_to.parent
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, read-only disk: this input's copy only
            self.error(f"{source}: cannot write the annotated copy: cannot create folder {target} "
                       f"({exc.strerror or exc})")
            return None
        return self.annotate_to / name if folder else self.annotate_to

    def _record(self, result: FrameResult) -> None:
        for key, value in result.timings_ms.items():
            self.timings[key].append(value)

    def images(self, paths: list[Path]) -> None:
        source = ImageSource(paths, fit=MAX_IMAGE_SIZE)
        while True:
            try:
                frame = source.read()
            except BadImage as exc:
                self.error(str(exc))
                continue
            if frame is None:
                return
            result = self.pipeline.process_frame(frame)
            self._record(result)
            reported = result.in_size(*frame.original) if frame.original else result  # the photo's own pixels
            print(reported.to_json(frame.path) if self.as_json else describe(reported, str(frame.path)))
            if self.annotate_to is not None:
                out = self._out_path(Path(str(frame.path)), ".png" if Path(str(frame.path)).suffix.lower()
                                     in (".pgm", ".ppm", ".tif", ".tiff") else None)
                if out is not None:
                    self._write_picture(out, annotate(frame.image, result))

    def _write_picture(self, out: Path, image: np.ndarray) -> None:
        try:
            written = cv2.imwrite(str(out), image)
        except cv2.error:  # e.g. an extension OpenCV has no writer for
            written = False
        if written:
            self.annotated += 1
        else:
            self.error(f"{out}: could not write the annotated picture")

    def video(self, path: Path) -> None:
        source = OpenCVSource(str(path))
        try:
            source.open()
        except SourceError as exc:
            self.error(str(exc))
            return
        self.pipeline.reset()
        writer = None
        written = 0  # frames handed to the annotated video's writer
        frames = faces = 0
        changes = 0
        last: dict[int, str] = {}
        track_frames: dict[int, int] = defaultdict(int)
        total = int(source.capture.get(cv2.CAP_PROP_FRAME_COUNT)) if source.capture is not None else 0
        try:
            fps = source.frame_rate
            start = None
            for frame in source:
                now = frame.timestamp  # media time (the source's), so smoothing follows the clip, not the CPU
                result = self.pipeline.process(frame.image, frame.gray, now=now)
                start = start if start is not None else now
                self._record(result)
                frames += 1
                self.progress.update(str(path), frames, total)
                faces += len(result.faces)
                for face in result.faces:
                    if face.track is None:
                        continue
                    if last.get(face.track, face.emotion) != face.emotion:
                        changes += 1
                    last[face.track] = face.emotion
                    track_frames[face.track] += 1
                if self.as_json:
                    print(result.to_json(str(path)))
                if self.annotate_to is not None and writer is not False:
                    image = annotate(frame.image, result)
                    if writer is None:
                        writer = self._open_writer(path, fps, image.shape)
                    if writer:
                        writer.write(image)
                        written += 1
        finally:
            self.progress.clear()
            source.close()
            if writer:
                writer.release()
                self._check_video(path, self._video_out, written)
                if self._video_format is not None and not self.as_json:
                    self._say_format(self._video_out, self._video_format)
        if source.skipped:
            self.error(f"{path}: {source.skipped} damaged frame(s) could not be decoded and were skipped")
        if frames == 0:
            self.error(f"{path}: no frames could be read")
        elif not self.as_json:
            track_seconds = sum(track_frames.values()) / fps
            rate = changes / track_seconds if track_seconds else 0.0
            print(f"{path}: {frames} frames, {faces} faces, {len(last)} tracks, {changes} emotion label changes "
                  f"({rate:.2f} per track-second)")

    def _open_writer(self, path: Path, fps: float, shape: tuple[int, ...]) -> Writer | Literal[False]:
        """An opened writer for the annotated copy (see :mod:`edge.videowriter`), or False after one error line."""
        named = None if self._to_folder() else self.annotate_to.suffix if self.annotate_to else None
        try:
            fmt = choose_format(self.video_codec, named, h264_available())
        except VideoWriterError as exc:
            self.error(f"{exc}; {path} is analysed without its annotated copy")
            return False
        out = self._out_path(path, fmt.suffix)
        if out is None:
            return False
        try:
            writer = open_writer(out, fmt, fps, (shape[1], shape[0]))
        except VideoWriterError as exc:
            self.error(f"{exc}; {path} is analysed without its annotated copy")
            return False
        self._video_out, self._video_format = out, fmt
        return writer

    @staticmethod
    def _say_format(out: Path, fmt: VideoFormat) -> None:
        """Which format the annotated video is in, and whether a browser plays it (users open it in one)."""
        plays = "plays in browsers" if fmt.browser else "does not play in browsers: " + NO_H264.replace(
            "no H.264 encoder here", "for H.264") + ", or name it .webm"
        print(f"annotated video {out}: {fmt.description} ({plays})")

    def _check_video(self, path: Path, out: Path, written: int) -> None:
        """Count the annotated video as written only if it plays back with every frame.

        OpenCV's VideoWriter reports nothing from ``write()`` or ``release()``: on a full disk it once left
        a file that would not play while the command said "annotated output in ..." and exited 0. Reading
        the finished file back is the check it offers.
        """
        capture = cv2.VideoCapture(str(out))
        found = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        if found == written:
            self.annotated += 1
            return
        what = f"holds {found} of the {written} frames" if found else "does not play"
        self.error(f"{out}: the annotated copy of {path} {what} (a write failed: disk full?)")

    def error(self, message: str) -> None:
        self.errors += 1
        print(f"error: {message}", file=sys.stderr)

    def summary(self) -> str:
        keys = [k for k in (*PIPELINE_STAGES, "total") if self.timings.get(k)]
        parts = [f"{k} {statistics.median(self.timings[k]):.2f}" for k in keys]
        return f"median ms per frame over {len(self.timings.get('total', []))} frame(s): " + ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="face-emotion analyze", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="image files, folders or video files")
    parser.add_argument("--json", action="store_true", help="one JSON object per image or video frame")
    parser.add_argument("--annotate", metavar="OUT", help="write annotated pictures/videos (a folder for several)")
    parser.add_argument("--video-codec", choices=CODECS, default="auto",
                        help="annotated videos: auto = H.264 MP4 when an ffmpeg with an H.264 encoder is here "
                             "(pip install imageio-ffmpeg), else VP8 WebM; both play in browsers")
    parser.add_argument("--no-smoothing", action="store_true", help="raw labels in videos (tracks kept)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress line for videos (shown only when stderr is a terminal)")
    add_settings_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        models, detector = settings_from(args)
        smoothing = SmoothingSettings(enabled=not args.no_smoothing)
        pipeline = Pipeline.from_models(models, detector, smoothing)
    except (ModelError, RuntimeMissing, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = expand_paths(args.paths)
    if not files:
        print("error: no images or videos in " + ", ".join(args.paths), file=sys.stderr)
        return 2
    annotate_to = Path(args.annotate) if args.annotate else None
    if annotate_to is not None and args.video_codec == "h264" and not h264_available():
        print(f"error: --video-codec h264: {NO_H264}", file=sys.stderr)
        return 2
    # --json to the same terminal: the objects themselves show the progress, a status line would garble them
    show = not args.quiet and not (args.json and sys.stdout.isatty())
    analyzer = Analyzer(pipeline, args.json, annotate_to, many=len(files) > 1, progress=Progress(sys.stderr, show),
                        video_codec=args.video_codec)
    try:
        images = [f for f in files if not is_video(f)]
        if images:
            analyzer.images(images)
        for video in (f for f in files if is_video(f)):
            analyzer.video(video)
    except KeyboardInterrupt:
        return 130
    if not args.json and analyzer.timings:
        print(analyzer.summary())
    if annotate_to is not None and not args.json and analyzer.annotated:
        print(f"annotated output in {annotate_to}")
    return 1 if analyzer.errors else 0
