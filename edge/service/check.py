"""``python -m edge --check`` / ``face-emotion check``: what the service would use, and whether it is there.

Lists the frame source, the models, the detector and the outputs of a config,
and checks what can be checked without taking the hardware away from a
running service: files and folders exist, models match the manifest, the
camera's library or device node is present, and each enabled output's library
and peer (:mod:`edge.outputs.preflight`: the MQTT broker answers, the LED pins
exist, a screen is there, the live view's port is free), one line each. A missing file
(video, image folder, model) is an error: one line on stderr and exit 2, so a
typo in ``camera.path`` is caught here instead of being retried like a lost
camera at run time. Missing hardware (no Pi camera library, no
``/dev/videoN``) is a warning line: a camera may be plugged in later, and the
same config is checked on a PC before it goes to the Pi.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path

from edge.frame.manifest import Manifest, ModelError, default_models_dir
from edge.frame.runtime import RuntimeMissing
from edge.inputs.picamera2_version import picamera2_problem
from edge.inputs.sources import IMAGE_SUFFIXES, expand_paths, is_device_path, is_video, picamera2_import_error
from edge.outputs.preflight import check_outputs
from edge.service.config import Config


def source_line(config: Config) -> tuple[str, str | None]:
    """(what the source is, the problem with it or None); hardware problems start with "warning:"."""
    cam = config.camera
    if cam.source == "picamera2":
        what = f"picamera2 camera {cam.width}x{cam.height} (detection on {cam.lores_width}x{cam.lores_height})"
        if importlib.util.find_spec("picamera2") is None:
            return what, "warning: camera: picamera2 is not installed (on a Pi: sudo apt install python3-picamera2)"
        try:  # a version that passes the floor may still not import (a dependency pip did not bring)
            import picamera2  # noqa: F401
        except ImportError as exc:
            return what, f"warning: camera: {picamera2_import_error(exc)}"
        return what, picamera2_problem()
    if cam.source == "opencv":
        if cam.device.isdigit() or is_device_path(cam.device):
            node = Path(f"/dev/video{cam.device}" if cam.device.isdigit() else cam.device)
            what = f"OpenCV camera {cam.device} ({node}) {cam.width}x{cam.height}"
            return what, None if node.exists() else f"warning: camera.device: {node} does not exist (no camera?)"
        path = Path(cam.device)
        what = f"video file {path}" + (" (looped)" if cam.loop else "")
        if not path.is_file():
            return what, f"camera.device: {path}: no such video file"
        return what, None if is_video(path) else f"camera.device: {path}: not a video file name"
    path = Path(cam.path)
    images = [p for p in expand_paths([path]) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    what = f"images {path} ({len(images)} file(s))" + (" (looped)" if cam.loop else "")
    if not path.exists():
        return what, f"camera.path: {path}: no such file or folder"
    return what, None if images else f"camera.path: {path}: no image files there"


def detector_line(config: Config, manifest: Manifest) -> str:
    """The detector backend and the file it loads."""
    settings = config.detector
    backend = settings.backend
    if backend == "haar":
        file = str(manifest.cascade_path())
        knobs = f"scale {settings.scale_factor}, min_neighbors {settings.min_neighbors}, min_size {settings.min_size}"
    else:  # blazeface: the whole-frame model, plus the short-range one for searches near faces and fallback
        blaze = settings.blazeface
        names = dict.fromkeys([blaze.entry, "blazeface_short"])
        file = ", ".join(str(manifest.root / str(manifest.detectors.get(n, {}).get("file", n))) for n in names)
        knobs = f"model {blaze.model}, score {blaze.score_threshold}" + (
            f", short-range fallback at {blaze.fallback_threshold}" if blaze.fallback else "") + (
            ", small faces: four tiles per full scan" if blaze.small_faces else "")
    scan = f"full scan every {settings.full_scan_every} frame(s) in streams"
    return f"{backend}: {file} ({', '.join(k for k in (knobs, scan) if k)})"


def secrets_line(config: Config, config_path: str) -> str | None:
    """A warning when a config that holds a secret (MQTT password, live-view token) is readable by every user."""
    out = config.outputs
    secrets = [name for name, value in (("the MQTT password", getattr(getattr(out, "mqtt", None), "password", "")),
                                        ("the live view's token", out.live_view.token)) if value]
    try:
        mode = os.stat(config_path).st_mode if config_path else 0
    except OSError:
        return None
    if not secrets or not mode & stat.S_IROTH:
        return None
    return (f"warning: {config_path} holds {' and '.join(secrets)} and every user can read it: "
            f"sudo chgrp face-emotion {config_path} && sudo chmod 640 {config_path}")


def check(config: Config, config_path: str) -> int:
    """Print what ``config`` would use; return 0 when everything is there, 2 otherwise."""
    from edge.frame.pipeline import Pipeline

    problems: list[str] = []
    print(f"config:   {config_path or 'none (the defaults and the command line)'}")
    source, problem = source_line(config)
    print(f"source:   {source}")
    problems += [problem] if problem else []
    models_dir = Path(config.models.dir) if config.models.dir else default_models_dir()
    try:
        pipeline = Pipeline.from_models(config.models, config.detector, config.smoothing)
        mirrored = [task for task, c in (("emotion", pipeline.emotion), ("gender", pipeline.gender)) if c.flip_average]
        files = (f"{pipeline.emotion.path} (joint: both tasks in one invoke)" if pipeline.joint
                 else f"{pipeline.emotion.path}, {pipeline.gender.path}")
        print(f"models:   {files} (sha256 as in {models_dir}/manifest.json, "
              f"{config.models.threads} thread(s); mirror-averaged: {', '.join(mirrored) or 'none'})")
        manifest = Manifest.load(models_dir)
        print(f"detector: {detector_line(config, manifest)}")
        entries = manifest.select_pair(config.models.variant, config.models.joint)
        for classifier, entry in zip((pipeline.emotion, pipeline.gender), entries):
            if entry.flip_average and not classifier.flip_average:
                problems.append(f"warning: models.flip_average = {config.models.flip_average!r} turns off the "
                                f"mirror averaging {entry.file} ships with; its manifest figures assume it "
                                "(\"auto\" keeps it)")
    except (ModelError, RuntimeMissing) as exc:
        print(f"models:   {models_dir}")
        problems.append(str(exc))
    verdicts = check_outputs(config.outputs, config.camera.source)
    for index, verdict in enumerate(verdicts):  # one line each; a failure is repeated on stderr as an error
        print(f"{'outputs:' if index == 0 else '':<9} {verdict.what}: {verdict.state}")
        problems += [f"{verdict.what}: {verdict.problem}"] if verdict.failed else []
    if not verdicts:
        print("outputs:  none enabled")
    problems += [warning] if (warning := secrets_line(config, config_path)) else []
    errors = [p for p in problems if not p.startswith("warning:")]
    for problem in problems:
        print(problem if problem.startswith("warning:") else f"error: {problem}", file=sys.stderr)
    if not errors:
        print(f"{config_path or 'the command line'}: OK")
    return 2 if errors else 0
