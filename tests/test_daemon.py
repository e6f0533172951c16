"""The service: config validation, systemd notify over a real datagram socket, watchdog, camera loss, SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from edge.frame.pipeline import ModelSettings
from edge.inputs.sources import CameraLost, FrameSource, ImageSource, SourceError
from edge.outputs.eventlog import EventLogSettings
from edge.outputs.leds import LedSettings
from edge.outputs.registry import OutputsSettings
from edge.service.config import EXAMPLE_CONFIG, CameraSettings, Config, ServiceSettings, load_config
from edge.service.daemon import EXIT_CAMERA, EXIT_CONFIG, EXIT_OK, Daemon
from edge.service.notify import Notifier

ROOT = Path(__file__).resolve().parent.parent


def undocumented(table: dict, cls, prefix: str = "") -> list[str]:
    """Config keys of dataclass ``cls`` missing from the TOML ``table`` (recursing into sections)."""
    missing = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if f.name not in table:
            missing.append(key)
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            missing += undocumented(table[f.name], type(default), key + ".")
    return missing


def test_the_example_config_documents_every_key_and_loads():
    assert undocumented(tomllib.loads(EXAMPLE_CONFIG.read_text()), Config) == []
    assert load_config(EXAMPLE_CONFIG) == Config()  # the example shows the defaults


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for _, m in self.messages if m.startswith(prefix)) >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    sock = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    yield sock
    sock.close()


def write_config(path: Path, video: Path, events: Path) -> Path:
    path.write_text(f"""
[camera]
source = "opencv"
device = "{video}"
loop = true
fps = 30.0

[models]
dir = "{ROOT / 'models'}"

[service]
stats_interval_s = 0.5

[outputs.leds]
enabled = false

[outputs.event_log]
path = "{events}"
""")
    return path


def test_the_daemon_reports_ready_watchdog_status_and_stops_on_sigterm(tmp_path, notify_socket, pan_video):
    config = write_config(tmp_path / "config.toml", pan_video, tmp_path / "events.jsonl")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(notify_socket.path))
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert notify_socket.wait_for("READY=1"), "no READY=1"
        assert notify_socket.wait_for("WATCHDOG=1", count=10), "no repeated WATCHDOG=1"
        # the start-up STATUS lines ("waiting for the first frame", "running") come first; then the stats
        deadline = time.monotonic() + 60
        while not any(m.startswith("STATUS=") and "fps" in m for _, m in notify_socket.messages):
            assert time.monotonic() < deadline, "no STATUS= with the frame rate"
            time.sleep(0.05)
        ready_at = next(t for t, m in notify_socket.messages if m == "READY=1")
        first_ping = next(t for t, m in notify_socket.messages if m == "WATCHDOG=1")
        assert first_ping >= ready_at  # pings only once running
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=15)
        stopped_in = time.monotonic() - sent
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == EXIT_OK, stderr
    print(f"stopped {stopped_in:.2f} s after SIGTERM")
    assert stopped_in < 5.0  # the unit's TimeoutStopSec: later than this systemd kills us mid-cleanup
    assert any(m == "STOPPING=1" for _, m in notify_socket.messages)
    status = [m for _, m in notify_socket.messages if m.startswith("STATUS=") and "fps" in m]
    assert status and "ms/frame" in status[-1]
    assert "latency (median of last" in stderr and "faster than the paper's 0.22 s/frame" in stderr
    assert (tmp_path / "events.jsonl").read_text().count('"track_new"') >= 1


class HangingSource(FrameSource):
    """Real frames from a photo, then a read that never returns: a camera that hangs."""

    name = "hanging"
    live = True

    def __init__(self, image: Path, frames_before_hang: int):
        self.images = ImageSource([image], loop=True)
        self.left = frames_before_hang
        self.release = threading.Event()
        self.hung_at: float | None = None

    def read(self):
        if self.left == 0:
            self.hung_at = time.monotonic()
            self.release.wait(30)
            return None
        self.left -= 1
        frame = self.images.read()
        frame.independent = False
        return frame


def quiet_config(**camera) -> Config:
    return Config(camera=CameraSettings(**camera), models=ModelSettings(dir=str(ROOT / "models")),
                  outputs=OutputsSettings(leds=LedSettings(enabled=False), event_log=EventLogSettings(enabled=False)),
                  service=ServiceSettings(stats_interval_s=60))


def test_a_hung_camera_stops_the_watchdog_pings(samples, notify_socket):
    source = HangingSource(samples / "astronaut.jpg", frames_before_hang=5)
    daemon = Daemon(quiet_config(), Notifier(use_systemd_python=False), source=source, outputs=[])
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    assert notify_socket.wait_for("WATCHDOG=1", count=5)
    deadline = time.monotonic() + 10
    while source.hung_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.hung_at is not None
    time.sleep(0.5)  # let the datagrams sent before the hang arrive
    before = sum(1 for _, m in notify_socket.messages if m == "WATCHDOG=1")
    time.sleep(1.5)  # the frame loop is stuck in read(); nothing else may ping for it
    after = sum(1 for _, m in notify_socket.messages if m == "WATCHDOG=1")
    assert before == after == 5  # one ping per processed frame, none while the camera hangs
    daemon.request_stop()
    source.release.set()
    thread.join(10)


class UnpluggedCamera(FrameSource):
    """Delivers frames, then is lost; reopening fails ``fail_opens`` times before it works again."""

    name = "unplugged"
    live = True

    def __init__(self, image: Path, frames: int, fail_opens: int):
        self.images = ImageSource([image], loop=True)
        self.frames, self.fail_opens = frames, fail_opens
        self.opens = 0
        self.served = 0

    def open(self):
        self.opens += 1
        if self.opens > 1 and self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceError("no camera on /dev/video0")

    def read(self):
        if self.served == self.frames:
            self.served += 1
            raise CameraLost("camera stopped delivering frames")
        self.served += 1
        frame = self.images.read()
        frame.independent = False
        return frame


def test_a_lost_camera_is_retried_with_backoff_then_the_daemon_exits_for_systemd(samples):
    source = UnpluggedCamera(samples / "astronaut.jpg", frames=3, fail_opens=99)
    waits: list[float] = []
    daemon = Daemon(quiet_config(retries=3, retry_backoff_s=0.5), Notifier(), source=source, outputs=[])
    daemon.stop_event.wait = lambda delay: waits.append(delay) or False  # record the backoff, don't sleep
    assert daemon.run() == EXIT_CAMERA
    assert waits == [0.5, 1.0, 2.0]
    assert source.opens == 1 + 4


def test_a_camera_that_comes_back_keeps_the_service_running(samples):
    source = UnpluggedCamera(samples / "astronaut.jpg", frames=3, fail_opens=1)
    daemon = Daemon(quiet_config(retries=3, retry_backoff_s=0.01), Notifier(), source=source, outputs=[],
                    max_frames=8)
    assert daemon.run() == EXIT_OK
    assert daemon.stats.frames == 8 and source.opens == 3


def run_edge(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


@pytest.mark.parametrize("body, message", [
    ("[camera]\nfsp = 15\n", "camera.fsp: unknown key"),
    ("[camera]\nfps = \"fast\"\n", "camera.fps: expected a number, got 'fast'"),
    ("[detector]\nequalize = \"sharpen\"\n", "detector.equalize: expected one of"),
    ("[outputs.leds]\nrgb_pins = [17, 27]\n", "outputs.leds.rgb_pins: expected a list of 3 values"),
    ("[camera\nfps = 15\n", "not valid TOML"),
    ("[cameras]\n", "cameras: unknown key"),
    ("[service]\nstats_interval_s = nan\n", "service.stats_interval_s: expected a finite number, got nan"),
    ("[camera]\nretry_backoff_s = inf\n", "camera.retry_backoff_s: expected a finite number, got inf"),
    ("[smoothing]\nmax_missed_s = nan\n", "smoothing.max_missed_s: expected a finite number, got nan"),
    ("[outputs.event_log]\nlost_after_s = 0.5\n",
     "outputs.event_log.lost_after_s: 0.5 must be at least smoothing.max_missed_s (0.7)"),
])
def test_a_broken_config_is_one_line_naming_the_key(tmp_path, body, message):
    config = tmp_path / "config.toml"
    config.write_text(body)
    proc = run_edge("--config", str(config), "--check")
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("key, value, message", [
    ("detector", ["x"], '"detector" must be an object'),
    ("models", {"x": 1}, '"models" must be a list of model entries'),
    ("models", ["x"], '"models" must be a list of model entries'),
])
def test_a_manifest_of_the_wrong_shape_is_one_line(tmp_path, key, value, message):
    import json

    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    manifest[key] = value
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    proc = run_edge("--config", str(EXAMPLE_CONFIG), "--models", str(tmp_path), "--check")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_check_accepts_the_example_and_refuses_missing_models(tmp_path):
    assert run_edge("--config", str(EXAMPLE_CONFIG), "--check").returncode == 0
    proc = run_edge("--config", str(EXAMPLE_CONFIG), "--models", str(tmp_path), "--check")
    assert proc.returncode == 2 and "no model manifest" in proc.stderr
    proc = run_edge("--config", str(tmp_path / "missing.toml"))
    assert proc.returncode == 2 and "no such config file" in proc.stderr


def test_the_pi_camera_source_runs_through_the_daemon(fake_picamera2, samples):
    import cv2

    fake_picamera2.SCENE = cv2.imread(str(samples / "two_people.jpg"))
    daemon = Daemon(dataclasses.replace(quiet_config(), camera=CameraSettings(source="picamera2")), Notifier(),
                    outputs=[], max_frames=5)
    assert daemon.run() == EXIT_OK
    camera = fake_picamera2.INSTANCES[0]
    assert camera.requests == 5 and camera.closed  # released on the way out


# -- issue 26: the start-up path under systemd ---------------------------------------------------------------------

FAKES = ROOT / "tests" / "fakes"


def write_dist_info(site: Path, version: str) -> Path:
    """An installed picamera2 distribution's metadata, as pip or Debian's packaging leaves it next to the module."""
    info = site / f"picamera2-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: picamera2\nVersion: {version}\n")
    return site


@pytest.mark.parametrize("version, refused", [("0.3.19", True), ("0.3.20", False), ("0.3.31", False)])
def test_check_refuses_a_picamera2_older_than_0_3_20_in_one_line(tmp_path, version, refused):
    site = write_dist_info(tmp_path / "site", version)
    config = tmp_path / "config.toml"
    config.write_text(f'[camera]\nsource = "picamera2"\n\n[models]\ndir = "{ROOT / "models"}"\n')
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(FAKES), str(site)])}
    proc = subprocess.run([sys.executable, "-m", "edge", "--config", str(config), "--check"], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **env))
    if refused:
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if "picamera2" in line]
        assert lines == [f"error: picamera2 {version} is older than 0.3.20, which the camera source needs "
                         "(captured_request(wait=), cancel_all_and_flush()); upgrade it: sudo apt update && "
                         "sudo apt install --only-upgrade python3-picamera2"]
        assert "Traceback" not in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


def test_the_daemon_refuses_picamera2_0_3_19_instead_of_crash_looping(fake_picamera2, samples, monkeypatch, caplog):
    """Upstream 0.3.19: ``captured_request(self)`` takes no ``wait`` and there is no ``cancel_all_and_flush``."""
    import cv2

    def captured_request_0_3_19(self):  # the signature of v0.3.19's picamera2/picamera2.py
        raise AssertionError("never reached: the daemon must refuse this picamera2 first")

    monkeypatch.setattr(fake_picamera2.Picamera2, "captured_request", captured_request_0_3_19)
    monkeypatch.delattr(fake_picamera2.Picamera2, "cancel_all_and_flush")
    fake_picamera2.SCENE = cv2.imread(str(samples / "two_people.jpg"))
    daemon = Daemon(dataclasses.replace(quiet_config(), camera=CameraSettings(source="picamera2")),
                    Notifier(use_systemd_python=False), outputs=[], max_frames=3)
    with caplog.at_level("ERROR", logger="face-emotion"):
        assert daemon.run() == EXIT_CONFIG  # RestartPreventExitStatus=2: no restart loop
    assert "this picamera2 (no version metadata) is older than 0.3.20" in caplog.text
    assert "sudo apt install --only-upgrade python3-picamera2" in caplog.text
    assert fake_picamera2.INSTANCES == []  # the camera was never opened


class SlowFirstFrame(FrameSource):
    """A camera that opens at once but delivers its first frame only when the test says so."""

    name = "slow"
    live = True

    def __init__(self, image: Path):
        self.images = ImageSource([image], loop=True)
        self.go = threading.Event()
        self.delivered_at: float | None = None

    def read(self):
        self.go.wait(30)
        frame = self.images.read()
        frame.independent = False
        if self.delivered_at is None:
            self.delivered_at = time.monotonic()
        return frame


def test_ready_is_sent_only_after_the_first_frame_is_processed(samples, notify_socket):
    source = SlowFirstFrame(samples / "astronaut.jpg")
    daemon = Daemon(quiet_config(), Notifier(use_systemd_python=False), source=source, outputs=[], max_frames=3)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    assert notify_socket.wait_for("STATUS=waiting for the first frame", timeout=60)
    time.sleep(1.0)  # the camera is open, models loaded: still no READY while no frame has come
    assert not any(m == "READY=1" for _, m in notify_socket.messages)
    source.go.set()
    assert notify_socket.wait_for("READY=1", timeout=60)
    thread.join(30)
    ready_at = next(t for t, m in notify_socket.messages if m == "READY=1")
    first_ping = next(t for t, m in notify_socket.messages if m == "WATCHDOG=1")
    assert source.delivered_at is not None and first_ping >= ready_at >= source.delivered_at


class NeverOpens(FrameSource):
    """A camera that is not there at start-up: every open fails."""

    name = "absent"
    live = True

    def __init__(self):
        self.opens = 0

    def open(self):
        self.opens += 1
        raise SourceError("no camera on /dev/video0")

    def read(self):
        raise AssertionError("never opened")


def test_watchdog_is_fed_and_start_timeout_extended_while_backing_off(samples, notify_socket, monkeypatch):
    """WatchdogSec=1 s here; the back-off waits 1 + 2 s: pings must keep coming, then a clean exit 3."""
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    # Lost after 2 frames (after READY): only the watchdog applies.
    source = UnpluggedCamera(samples / "astronaut.jpg", frames=2, fail_opens=99)
    daemon = Daemon(quiet_config(retries=2, retry_backoff_s=1.0), Notifier(use_systemd_python=False), source=source,
                    outputs=[])
    started = time.monotonic()
    assert daemon.run() == EXIT_CAMERA
    ended = time.monotonic()
    time.sleep(0.3)
    pings = [t for t, m in notify_socket.messages if m == "WATCHDOG=1"]
    assert len(pings) >= 2 + 6, pings  # 2 frames, then at least every 0.5 s of the 3 s back-off
    backing_off = [t for t in pings[2:] if started <= t <= ended]
    gaps = [b - a for a, b in zip(backing_off, backing_off[1:])]
    print(f"largest gap between pings while backing off: {max(gaps):.2f} s (WatchdogSec 1 s)")
    assert max(gaps) < 1.0
    # Absent at start (before READY): the start timeout is extended before each wait, READY never sent.
    notify_socket.messages.clear()
    absent = NeverOpens()
    daemon = Daemon(quiet_config(retries=2, retry_backoff_s=0.05), Notifier(use_systemd_python=False), source=absent,
                    outputs=[])
    assert daemon.run() == EXIT_CAMERA and absent.opens == 3
    time.sleep(0.3)
    extends = [m for _, m in notify_socket.messages if m.startswith("EXTEND_TIMEOUT_USEC=")]
    assert extends == ["EXTEND_TIMEOUT_USEC=30050000", "EXTEND_TIMEOUT_USEC=30100000"]
    assert not any(m == "READY=1" for _, m in notify_socket.messages)


@pytest.mark.parametrize("camera", ["retries = 11", "retry_backoff_s = 31"])
def test_camera_retries_are_bounded(tmp_path, camera):
    config = tmp_path / "config.toml"
    config.write_text(f"[camera]\n{camera}\n")
    proc = run_edge("--config", str(config), "--check")
    assert proc.returncode == 2
    assert "camera.retries/retry_backoff_s: at most 10 retries and 30 s" in proc.stderr
