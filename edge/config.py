"""The service's TOML config: every section a validated dataclass.

Default path ``/etc/face-emotion/config.toml``; ``edge/config.example.toml``
documents every key. Unknown keys and bad values stop the service with one
line naming the key, e.g. ``config.toml: camera.fps: expected a number, got 'fast'``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge.detectors import DetectorSettings
from edge.outputs.registry import OutputsSettings
from edge.pipeline import ModelSettings
from edge.settings import ConfigError, from_mapping
from edge.tracking import SmoothingSettings

DEFAULT_CONFIG = Path("/etc/face-emotion/config.toml")
EXAMPLE_CONFIG = Path(__file__).with_name("config.example.toml")
# Camera retries are bounded: each wait is at most 30 s (doubling from retry_backoff_s), so 10 retries wait at
# most ~3 minutes; the daemon feeds the watchdog while it waits, and then exits 3 for systemd to restart it.
MAX_RETRIES, MAX_BACKOFF_S = 10, 30.0


@dataclass(frozen=True)
class CameraSettings:
    """The ``[camera]`` section: where frames come from."""

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


@dataclass(frozen=True)
class ServiceSettings:
    """The ``[service]`` section."""

    stats_interval_s: float = 30.0  # how often the latency line is logged and STATUS= updated
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def validate(self) -> None:
        if self.stats_interval_s <= 0:
            raise ConfigError(f"stats_interval_s: {self.stats_interval_s} must be positive")


@dataclass(frozen=True)
class Config:
    """The whole config file."""

    camera: CameraSettings = field(default_factory=CameraSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    smoothing: SmoothingSettings = field(default_factory=SmoothingSettings)
    outputs: OutputsSettings = field(default_factory=OutputsSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)

    def validate(self) -> None:
        """Rules between sections."""
        events, tracks = self.outputs.event_log, self.smoothing
        if events.enabled and events.lost_after_s < tracks.max_missed_s:
            # a shorter wait reports a track lost while the tracker still holds it: lost, then the same id again
            raise ConfigError(f"outputs.event_log.lost_after_s: {events.lost_after_s} must be at least "
                              f"smoothing.max_missed_s ({tracks.max_missed_s})")


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the config file (e.g. {path / 'config.toml'})")
    if path.exists() and not path.is_file():  # a FIFO or a device would block the read or never end
        raise ConfigError(f"{path}: not a regular file")
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (copy {EXAMPLE_CONFIG.name} there)") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return from_mapping(Config, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
