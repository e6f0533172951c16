"""The service: camera -> pipeline -> outputs, with systemd notify, watchdog and camera retries.

    python -m edge [run] [--config /etc/face-emotion/config.toml] [--models DIR]
    face-emotion run --source 0|clip.mp4|folder [--live-view] [--mqtt HOST]   (no config file)

Start-up: config, models (manifest check), camera, outputs; READY=1 only once
the first frame has been processed, so ``active`` means frames are flowing (a
camera that opens but never delivers keeps the unit ``activating`` until
TimeoutStartSec, and the deploy's health check names that). The frame loop
sends WATCHDOG=1 after every processed frame: a camera that hangs in a read
stops the pings and systemd restarts the service. A lost camera is reopened
with exponential backoff; the waits between attempts are bounded (config) and
keep the watchdog fed (and, before READY, extend the start timeout), since
waiting is not hanging; after ``camera.retries`` failed attempts the daemon
exits with status 3 for ``Restart=on-failure``, never by the watchdog's SIGABRT. A video
or image folder that vanishes (or stops yielding frames) under ``loop = true``
takes the same path; unreadable images are skipped with rate-limited warnings.
An output that fails is logged once and dropped; the frame loop, the other
outputs and the watchdog go on. SIGTERM, SIGINT or SIGHUP stops it within
about a second, outputs off and camera released (SIGHUP does not reload the
config: restart the unit for that).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.commands import COMMANDS
from edge.frame.manifest import ModelError
from edge.frame.pipeline import Pipeline
from edge.frame.results import FrameResult
from edge.frame.runtime import RuntimeMissing
from edge.frame.stats import LatencyStats
from edge.inputs.picamera2_version import picamera2_problem
from edge.inputs.sources import BadImage, CameraLost, FrameSource, SourceError, make_source
from edge.outputs.base import Output
from edge.outputs.group import Outputs
from edge.outputs.registry import build_outputs
from edge.service.config import ENV_VAR, Config, find_config, load_config
from edge.service.logthrottle import Throttle
from edge.service.notify import SYSLOG_IDENTIFIER, Notifier, load_journal
from edge.service.quickstart import add_quickstart_options, apply, browser_url, wanted
from edge.service.stoppable import Interrupted, StoppableRead
from edge.settings import ConfigError

log = logging.getLogger("face-emotion")

EXIT_OK, EXIT_CONFIG, EXIT_CAMERA = 0, 2, 3
# Start-up time allowed for one camera open after a back-off wait, added to EXTEND_TIMEOUT_USEC before READY.
OPEN_ALLOWANCE_S = 30.0


def setup_logging(level: str) -> None:
    """Journal under systemd (when systemd-python is there), stderr otherwise."""
    journal = load_journal(os.environ)
    handler: logging.Handler
    if journal is not None:
        handler = journal.JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class Daemon:
    """One run of the service. ``source`` and ``outputs`` may be injected (tests, bench)."""

    def __init__(self, config: Config, notifier: Notifier | None = None, source: FrameSource | None = None,
                 outputs: list[Output] | None = None, max_frames: int | None = None, show_token: bool = False):
        self.config = config
        self.notifier = notifier or Notifier()
        self.source = source or make_source(config.camera)
        self.show_token = show_token  # the live view's URL is printed with its token (one made for this run)
        self.outputs = None if outputs is None else Outputs(outputs, log)
        self.max_frames = max_frames
        self.stats = LatencyStats()
        self.stop_event = threading.Event()
        self.pipeline: Pipeline | None = None
        self._attempt = 0  # the attempt that last opened the source (0 = at once)
        self._reader = StoppableRead(self.stop_event)  # files: SIGTERM need not wait for a slow decode
        self._ready = False  # READY=1 sent (after the first processed frame)

    def request_stop(self, *_: object) -> None:
        """Signal handler: finish the current frame, then shut down."""
        self.stop_event.set()

    def _open_with_retries(self, reason: str, spent: int = 0) -> bool:
        """Open the source, retrying with exponential backoff; False when it never came up.

        ``spent``: attempts this outage has used already. A source that opens
        but is lost again before its first frame (a folder of only broken
        images, an empty video) continues the count instead of starting over,
        so it too ends in the exit for systemd rather than a silent spin.
        """
        cam = self.config.camera
        if spent > cam.retries:
            log.error("%s: no frame since it was last reopened; giving up after %d attempt(s)", reason, spent)
            return False
        for attempt in range(spent, cam.retries + 1):
            if attempt:
                delay = min(cam.retry_backoff_s * 2 ** (attempt - 1), 30.0)
                self.notifier.status(f"camera unavailable, retry {attempt}/{cam.retries}")
                if self._back_off(delay):
                    return False
            try:
                self.source.open()
            except SourceError as exc:
                self.source.close()
                if attempt == cam.retries:
                    log.error("%s: %s; giving up after %d attempt(s)", reason, exc, attempt + 1)
                    return False
                log.warning("%s: %s; retrying in %.1f s (%d/%d)", reason, exc,
                            min(cam.retry_backoff_s * 2 ** attempt, 30.0), attempt + 1, cam.retries)
                continue
            if attempt:
                log.info("camera back after %d attempt(s)", attempt)
            self._attempt = attempt
            self._follow_camera()
            return True
        return False

    def _back_off(self, delay: float) -> bool:
        """Wait ``delay`` s between camera attempts, feeding the watchdog; True when asked to stop.

        Waiting for a camera is not a hang: it is bounded by the config
        (``camera.retries``, each wait at most 30 s). WATCHDOG=1 goes out at
        least every half watchdog interval while waiting, and before READY
        EXTEND_TIMEOUT_USEC moves the start timeout past this wait and the
        next open, so neither timer turns the clean exit 3 into a kill.
        """
        if not self._ready:
            self.notifier.extend_timeout(delay + OPEN_ALLOWANCE_S)
        interval = self.notifier.watchdog_interval()
        slice_s = delay if interval is None else max(0.01, interval / 2)
        left = delay
        while left > 0:
            self.notifier.watchdog()
            step = min(slice_s, left)
            if self.stop_event.wait(step):
                return True
            left -= step
        self.notifier.watchdog()
        return False

    def start(self) -> int:
        """Models, camera, outputs. Returns an exit status (0 = running); READY=1 follows the first frame."""
        cfg = self.config
        if cfg.camera.source == "picamera2":
            problem = picamera2_problem()
            if problem:
                log.error("%s", problem)
                return EXIT_CONFIG
        try:
            self.pipeline = Pipeline.from_models(cfg.models, cfg.detector, cfg.smoothing)
        except (ModelError, RuntimeMissing) as exc:
            log.error("%s", exc)
            return EXIT_CONFIG
        if not self._open_with_retries("cannot open the camera"):
            return EXIT_CAMERA if not self.stop_event.is_set() else EXIT_OK
        if self.outputs is None:
            self.outputs = Outputs(build_outputs(cfg.outputs, camera=getattr(self.source, "camera", None), log=log),
                                   log)
        self.outputs.describe(self.running())
        self._announce_live_view()
        models = f"{self.pipeline.emotion.path}, {self.pipeline.gender.path}"
        log.info("started: %s source, models %s, %d output(s), notify via %s; READY=1 after the first frame",
                 self.source.name, models, len(self.outputs), self.notifier.backend)
        self.notifier.status(f"waiting for the first frame from the {self.source.name} source")
        return EXIT_OK

    def _announce_live_view(self) -> None:
        """The address to open in a browser, when it differs from the one the live view logs: with the token
        made for this run (which nobody else knows), or this machine's name for a wildcard address."""
        assert self.outputs is not None
        for output in self.outputs:
            settings = getattr(output, "settings", None)
            if output.name == "live view" and settings is not None:
                url = browser_url(settings, int(getattr(output, "port", settings.port)), self.show_token)
                if url != getattr(output, "url", url):
                    log.info("live view: open %s in a browser", url)

    def _first_frame_done(self, seconds: float) -> None:
        """READY=1: frames are flowing (what ``systemctl is-active`` and the deploy's health check mean)."""
        self._ready = True
        log.info("ready: first frame processed in %.0f ms", seconds * 1e3)
        self.notifier.ready(f"running, {self.source.name} source")

    def running(self) -> dict[str, str]:
        """Source, model files and detector backend in words, for outputs that show them (the live view)."""
        from edge.service.check import source_line

        assert self.pipeline is not None
        detector = self.config.detector
        backend: str = detector.backend
        if backend == "blazeface":
            words = {"full": "full range, int8", "full_float32": "full range, float32", "short": "short range"}
            small = ", small faces" if detector.blazeface.small_faces else ""
            backend = f"blazeface ({words.get(detector.blazeface.model, detector.blazeface.model)}{small})"
        else:
            backend = "haar (paper mode)"
        return {"source": source_line(self.config)[0], "emotion_model": Path(self.pipeline.emotion.path).name,
                "gender_model": Path(self.pipeline.gender.path).name, "detector": backend}

    def run(self) -> int:
        """Start, loop until stopped or the input ends, clean up; returns the exit status."""
        status = self.start()
        try:
            if status == EXIT_OK and not self.stop_event.is_set():
                status = self.loop()
        finally:
            self.shutdown()
        return status

    def loop(self) -> int:
        assert self.pipeline is not None
        interval = self.config.service.stats_interval_s
        next_stats = time.monotonic() + interval
        pace = 0.0 if getattr(self.source, "live", False) else 1.0 / self.config.camera.fps
        frames = 0
        since_open = 0  # frames since the source was last (re)opened
        bad_images = Throttle(log)
        skipped_reported = 0
        while not self.stop_event.is_set():
            started = time.perf_counter()
            try:
                frame = self.source.read() if self.source.live else self._reader.read(self.source)
            except Interrupted:
                break
            except BadImage as exc:
                bad_images.log(str(exc))
                if pace:  # a folder of broken files must not spin the CPU or flood the journal
                    self.stop_event.wait(pace)
                continue
            except CameraLost as exc:
                log.error("%s", exc)
                self.source.close()
                spent = 0 if since_open else self._attempt + 1
                if not self._open_with_retries("camera lost", spent):
                    return EXIT_OK if self.stop_event.is_set() else EXIT_CAMERA
                since_open = 0
                self.pipeline.reset()
                continue
            if frame is None:
                if not self.config.camera.loop:
                    log.info("input ended after %d frame(s)", frames)
                    return EXIT_OK
                self.source.close()  # start over; a file deleted meanwhile takes the retry path
                spent = 0 if since_open else self._attempt + 1
                if not self._open_with_retries("cannot reopen the input", spent):
                    return EXIT_OK if self.stop_event.is_set() else EXIT_CAMERA
                since_open = 0
                self.pipeline.reset()
                continue
            since_open += 1
            captured = time.perf_counter()
            result = self.pipeline.process_frame(frame)
            outputs_start = time.perf_counter()
            self._update_outputs(frame.image, result)
            done = time.perf_counter()
            if not self._ready:
                self._first_frame_done(done - started)
            self.notifier.watchdog()  # per frame; a read that hangs stops the pings (back-off waits feed it too)
            timings = dict(result.timings_ms, capture=(captured - started) * 1e3,
                           outputs=(done - outputs_start) * 1e3, frame=(done - started) * 1e3)
            self.stats.add(timings)
            frames += 1
            if time.monotonic() >= next_stats:
                log.info("%s", self.stats.summary())
                skipped = getattr(self.source, "skipped", 0)
                if skipped > skipped_reported:
                    log.warning("%d undecodable video frame(s) skipped so far", skipped)
                    skipped_reported = skipped
                self.notifier.status(self.stats.status())
                next_stats = time.monotonic() + interval
            if self.max_frames and frames >= self.max_frames:
                return EXIT_OK
            if pace:
                self.stop_event.wait(max(0.0, pace - (time.perf_counter() - started)))
        return EXIT_OK

    def _update_outputs(self, image: np.ndarray, result: FrameResult) -> None:
        if self.outputs is not None:
            self.outputs.update(image, result)

    def _follow_camera(self) -> None:
        """After a reopen, outputs that draw through the camera (the display overlay) move to the new one."""
        if self.outputs is not None:
            self.outputs.camera_reopened(getattr(self.source, "camera", None))

    def shutdown(self) -> None:
        """Outputs off, camera released, systemd told."""
        self.notifier.stopping()
        if self.outputs is not None:
            self.outputs.close()
        if self._reader.busy:  # a decode still runs in its thread; the process exits without it
            log.info("stopped during a frame read; not waiting for it")
        else:
            self.source.close()
        if self.stats.frames:
            log.info("stopped after %d frame(s); %s", self.stats.frames, self.stats.summary())
        self.notifier.close()


def build_parser(prog: str = "face-emotion run") -> argparse.ArgumentParser:
    """The service's options (``python -m edge [run]``); the other commands are listed in the epilog."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands (face-emotion COMMAND --help):\n" + "\n".join(
            f"  {name:<9} {text}" for name, text in COMMANDS.items()))
    parser.add_argument("--config", metavar="FILE",
                        help=f"TOML config (default: ${ENV_VAR}, else ~/.config/face-emotion/config.toml, else "
                             "/etc/face-emotion/config.toml; `face-emotion config` shows which)")
    parser.add_argument("--models", help="models folder (overrides [models] dir)")
    parser.add_argument("--frames", type=int, help="stop after this many frames")
    parser.add_argument("--check", action="store_true",
                        help="list the source, models, detector and outputs this config uses, check they are "
                             "there and reachable, then exit (2 on any problem)")
    add_quickstart_options(parser)
    return parser


def configured(args: argparse.Namespace) -> tuple[Config, str, bool]:
    """(the config, the file it came from or "", whether a live-view token was made) for these options.

    ``--source`` without ``--config`` reads no file: the command line and the
    defaults say it all, so a config in ~/.config or /etc (the Pi's service,
    its MQTT and its port) cannot leak into a quick try. ``ConfigError`` for
    a bad file, a bad flag or no file found.
    """
    if args.config is None and wanted(args):
        config, path = Config(), ""
    else:
        path = str(find_config(args.config))
        config = load_config(path)
    config, made = apply(config, args)
    config.validate()
    return config, path, made


def main(argv: list[str] | None = None, prog: str = "face-emotion run") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        config, path, made = configured(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.models:
        config = replace(config, models=replace(config.models, dir=str(Path(args.models))))
    setup_logging(config.service.log_level)
    if args.check:
        from edge.service.check import check

        return EXIT_CONFIG if check(config, path) else EXIT_OK
    daemon = Daemon(config, max_frames=args.frames, show_token=made)
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    signal.signal(signal.SIGHUP, daemon.request_stop)  # a closed terminal or `kill -HUP`: stop cleanly, no reload
    status = daemon.run()
    if daemon._reader.busy:
        # A decode still runs in the reader thread: leave without the interpreter's and OpenCV's teardown,
        # which can pull OpenCV's thread pool from under it (std::terminate, SIGABRT and a core dump).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
