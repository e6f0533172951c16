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
from edge.sources import CameraSettings
from edge.tracking import SmoothingSettings

DEFAULT_CONFIG = Path("/etc/face-emotion/config.toml")
EXAMPLE_CONFIG = Path(__file__).with_name("config.example.toml")


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
