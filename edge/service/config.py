"""The service's TOML config: every section a validated dataclass, and where the file is looked for.

:func:`find_config` looks in ``--config``, ``$FACE_EMOTION_CONFIG``,
``$XDG_CONFIG_HOME/face-emotion/config.toml`` (``~/.config`` when unset) and
``/etc/face-emotion/config.toml``, in that order: a user tries it on a laptop
without root, the Pi's service passes ``--config /etc/...`` (systemd unit).
``edge/config.example.toml`` documents every key (``face-emotion config
--example`` prints it, from a wheel too). Unknown keys and bad values stop the
service with one line naming the key, e.g. ``config.toml: camera.fps: expected
a number, got 'fast'``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge.detectors import DetectorSettings
from edge.frame.pipeline import ModelSettings
from edge.frame.tracking import SmoothingSettings
from edge.inputs.sources import CameraSettings
from edge.outputs.registry import OutputsSettings
from edge.settings import ConfigError, from_mapping

DEFAULT_CONFIG = Path("/etc/face-emotion/config.toml")
EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config.example.toml"  # package data: in the wheel too
ENV_VAR = "FACE_EMOTION_CONFIG"
EXAMPLE_HINT = "face-emotion config --example > config.toml"


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


def user_config(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/face-emotion/config.toml``; ``~/.config`` when unset or not absolute (XDG spec)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):
        home = env.get("HOME") or str(Path.home())
        base = os.path.join(home, ".config")
    return Path(base) / "face-emotion" / "config.toml"


def search_path(env: Mapping[str, str] | None = None) -> list[tuple[str, Path | None]]:
    """Where :func:`find_config` looks after ``--config``, in order: (how it is named, the path or None if unset)."""
    env = os.environ if env is None else env
    return [(f"${ENV_VAR}", Path(env[ENV_VAR]) if env.get(ENV_VAR) else None),
            ("user", user_config(env)), ("system", DEFAULT_CONFIG)]


def find_config(explicit: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The config file to use: ``explicit`` (``--config``), else ``$FACE_EMOTION_CONFIG``, else the first that
    exists of the user's and the system's. A file named explicitly (option or variable) is used even when it is
    missing, so :func:`load_config` says so rather than another file being read; with none found, one line that
    lists where it looked and how to write one."""
    if explicit:
        return Path(explicit)
    places = search_path(env)
    named = places[0][1]
    if named is not None:
        return named
    for _, path in places[1:]:
        if path is not None and path.exists():
            return path
    looked = ", ".join(str(path) for _, path in places[1:] if path is not None)
    raise ConfigError(f"no config file: looked in ${ENV_VAR} (unset), {looked}; write one with `{EXAMPLE_HINT}` "
                      "(and pass --config, or move it to one of those), or try `face-emotion run --source 0` "
                      "for a webcam at the defaults")


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
        raise ConfigError(f"{path}: no such config file (`face-emotion config --example > {path}` writes the "
                          "example there)") from None
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
