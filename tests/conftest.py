"""Shared fixtures: repository paths, committed samples, the shipped models and a test video."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
MODELS = ROOT / "models"
FAKES = Path(__file__).resolve().parent / "fakes"
SHARED = ROOT.parent / "shared"


class Clock:
    """A hand-driven monotonic clock for outputs that take ``clock=``: set ``.t``, the output reads it."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def tracked(pipeline, path, frames: int = 3, start: float = 0.0):
    """[(image, result)] for a photo tracked over a few frames at 15 fps (the pipeline reset first)."""
    image = cv2.imread(str(path))
    pipeline.reset()
    return [(image, pipeline.process(image, now=start + i / 15)) for i in range(frames)]


def run_photo(pipeline, path, frames: int = 3, start: float = 0.0):
    """(image, last FrameResult) after tracking the photo for a few frames at 15 fps."""
    return tracked(pipeline, path, frames, start)[-1]


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


@pytest.fixture(scope="session")
def face_crops(samples, models_dir):
    """Real face crops from four sample portraits (Haar boxes), cut as the device cuts them for emotion."""
    import cv2

    from edge.detectors.haar import HaarDetector
    from edge.frame.classifier import Classifier
    from edge.frame.manifest import Manifest
    from edge.frame.preprocess import crop_face, to_gray

    manifest = Manifest.load(models_dir)
    detector = HaarDetector(manifest.cascade_path())
    clf = Classifier.from_manifest(manifest, manifest.select("emotion", "int8"))
    crops = []
    for name in ("astronaut.jpg", "two_people.jpg", "obama_720p.jpg", "biden.jpg"):
        gray = to_gray(cv2.imread(str(samples / name)))
        crops += [crop_face(gray, box, clf.crop) for box in detector.detect(gray)]
    return crops


@pytest.fixture(scope="session")
def pipeline_factory():
    """Build pipelines on the shipped models (int8 by default)."""
    from edge.frame.pipeline import ModelSettings, Pipeline

    def build(**kwargs):
        models = kwargs.pop("models", ModelSettings(dir=str(MODELS)))
        return Pipeline.from_models(models, **kwargs)

    return build


@pytest.fixture
def fake_picamera2(monkeypatch):
    """Put the picamera2 fake on the import path (a Pi camera cannot run here)."""
    monkeypatch.syspath_prepend(str(FAKES))
    sys.modules.pop("picamera2", None)
    import picamera2

    picamera2.reset()
    yield picamera2
    picamera2.reset()
    sys.modules.pop("picamera2", None)


def write_pan_video(path: Path, image_path: Path, frames: int = 45, fps: float = 15.0,
                    size: tuple[int, int] = (640, 480)) -> Path:
    """A short video panning slowly across a real photo: faces move, so tracks must follow them."""
    image = cv2.imread(str(image_path))
    height, width = size[1], size[0]
    scale = max(width / image.shape[1], height / image.shape[0]) * 1.15
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    max_dx, max_dy = big.shape[1] - width, big.shape[0] - height
    for i in range(frames):
        t = i / max(frames - 1, 1)
        x, y = int(round(max_dx * t)), int(round(max_dy * (0.5 + 0.5 * np.sin(np.pi * t)) * 0.5))
        writer.write(np.ascontiguousarray(big[y:y + height, x:x + width]))
    writer.release()
    return path


@pytest.fixture(scope="session")
def pan_video(tmp_path_factory) -> Path:
    return write_pan_video(tmp_path_factory.mktemp("video") / "pan.mp4", SAMPLES / "two_people.jpg")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line naming the tests skipped for missing system packages and how to install them.

    A fresh machine without sshd, mosquitto or chromium would otherwise be green with whole areas
    (deploy, MQTT, the browser test) not run; `.ci/run` installs them all.
    """
    import re

    packages: set[str] = set()
    count = 0
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        found = re.search(r"apt-get install ([a-z0-9.+ -]+)", reason)
        if found:
            count += 1
            packages.update(found.group(1).split())
    if count:
        terminalreporter.write_line(
            f"{count} test(s) skipped for missing system packages; to run them: "
            f"sudo apt-get install -y {' '.join(sorted(packages))} (or .ci/run installs everything)",
            yellow=True, bold=True)


@pytest.fixture
def mirrored_models(models_dir, tmp_path):
    """A copy of the shipped models whose manifest ships the entries ``which(entry)`` picks mirror-averaged.

    As ``python -m quantize --flip-average`` records it; the classifier files themselves are the shipped ones.
    """
    import json
    import shutil

    def make(which) -> Path:
        target = tmp_path / "mirrored_models"
        shutil.copytree(models_dir, target, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
        manifest = json.loads((target / "manifest.json").read_text())
        for entry in manifest["models"]:
            entry["flip_average"] = bool(which(entry))
        (target / "manifest.json").write_text(json.dumps(manifest))
        return target

    return make


WAIT_S = 20.0  # an upper bound for conditions to come true, not a timing assertion


def wait_for(condition, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def browser(tmp_path):
    """``open_page(url) -> DevTools`` on a real headless Chromium (tests/chromium.py); skipped without one."""
    from tests.chromium import Chromium, chromium_binary

    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium (Debian: apt-get install chromium)")
    pytest.importorskip("websocket", reason="pip install websocket-client to drive chromium")
    chromium = Chromium(binary, tmp_path)
    yield chromium.open_page
    chromium.close()
