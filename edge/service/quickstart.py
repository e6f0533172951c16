"""``face-emotion run --source 0|clip.mp4|folder [--live-view [[HOST:]PORT]] [--mqtt HOST[:PORT]]``.

Trying the service should not start with writing TOML: these flags set the
camera, the live view and MQTT from the command line, every other setting
keeps its default (or the ``--config`` file's, when one is given too). Each
value goes through the section's own ``validate``, so a flag is checked
exactly as the same key in the file. A live view opened to the network
(a host other than loopback) without a token gets a fresh random one: the
URL to open, token included, is printed once at start.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import socket
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from edge.inputs.sources import IMAGE_SUFFIXES, CameraSettings, is_device_path, is_video
from edge.service.config import Config
from edge.settings import ConfigError

if TYPE_CHECKING:  # the sections are reached through Config; only their types are named here
    from edge.outputs.liveview import LiveViewSettings
    from edge.outputs.mqtt import MqttSettings

Section = TypeVar("Section", CameraSettings, "LiveViewSettings", "MqttSettings")


def add_quickstart_options(parser: argparse.ArgumentParser) -> None:
    """The three flags that make a config file optional."""
    group = parser.add_argument_group("without a config file (the other settings at their defaults, or --config's)")
    group.add_argument("--source", metavar="0|VIDEO|FOLDER",
                       help="a camera (an index such as 0 or a /dev/video node), a video file, or an image file or "
                            "folder; without --config no config file is read")
    group.add_argument("--live-view", nargs="?", const="", metavar="[HOST:]PORT",
                       help="serve the live view in a browser (default 127.0.0.1:8080; a host other than loopback "
                            "gets a random token, printed in the URL to open)")
    group.add_argument("--mqtt", metavar="HOST[:PORT]",
                       help="publish to this MQTT broker (port 1883 unless given; Home Assistant discovery on)")


def wanted(args: argparse.Namespace) -> bool:
    """True when the command line alone says what to run (no config file needed)."""
    return args.source is not None


def camera_from(text: str, base: CameraSettings) -> CameraSettings:
    """``[camera]`` for ``--source``: digits or /dev/... a camera, a video file, else images (a file or folder)."""
    if text.isdigit() or is_device_path(text):
        camera = replace(base, source="opencv", device=text)
    else:
        path = Path(text)
        if not path.exists():
            raise ConfigError(f"--source {text}: no such file or folder (a camera is a number such as 0, or a "
                              "/dev/video node)")
        if path.is_file() and is_video(path):
            camera = replace(base, source="opencv", device=text)
        elif path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            camera = replace(base, source="images", path=text)
        else:
            raise ConfigError(f"--source {text}: not a video, an image or a folder (video: "
                              f"{', '.join(s.lstrip('.') for s in ('.mp4', '.avi', '.mkv', '.webm', '.mov'))}...)")
    return _valid(camera, "--source")


def _host_port(text: str, flag: str, host: str, port: int) -> tuple[str, int]:
    """``PORT``, ``HOST`` or ``HOST:PORT`` (``[v6]:PORT``) over the given defaults."""
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host, text = inside, rest.lstrip(":")
    elif text.count(":") == 1 or text.isdigit():
        name, _, text = text.rpartition(":")
        host = name or host
    elif text:
        host, text = text, ""
    if text:
        if not text.isdigit() or not 0 <= int(text) <= 65535:
            raise ConfigError(f"{flag}: {text!r} is not a port number")
        port = int(text)
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def live_view_from(text: str, base: LiveViewSettings) -> tuple[LiveViewSettings, bool]:
    """``[outputs.live_view]`` for ``--live-view``, and whether a token was made for it (to show in the URL)."""
    host, port = _host_port(text, "--live-view", base.host, base.port)
    made = not is_loopback(host) and not base.token
    token = secrets.token_hex(16) if made else base.token
    return _valid(replace(base, enabled=True, host=host, port=port, token=token), "--live-view"), made


def mqtt_from(text: str, base: MqttSettings) -> MqttSettings:
    """``[outputs.mqtt]`` for ``--mqtt``: enabled, this broker."""
    host, port = _host_port(text, "--mqtt", base.host, base.port)
    if not host:
        raise ConfigError("--mqtt: give the broker's host name or address")
    return _valid(replace(base, enabled=True, host=host, port=port), "--mqtt")


def _valid(section: Section, flag: str) -> Section:
    try:
        section.validate()
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    return section


def apply(config: Config, args: argparse.Namespace) -> tuple[Config, bool]:
    """``config`` with the flags given; True when a live-view token was made (the URL printed carries it)."""
    made = False
    if args.source is not None:
        config = replace(config, camera=camera_from(args.source, config.camera))
    outputs = config.outputs
    if args.live_view is not None:
        live_view, made = live_view_from(args.live_view, outputs.live_view)
        outputs = replace(outputs, live_view=live_view)
    if args.mqtt is not None:
        outputs = replace(outputs, mqtt=mqtt_from(args.mqtt, outputs.mqtt))
    return replace(config, outputs=outputs), made


def browser_url(settings: LiveViewSettings, port: int, with_token: bool) -> str:
    """The address to open: this machine's name for a wildcard bind, the token appended when asked."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    host = f"[{host}]" if ":" in host else host
    query = f"?token={settings.token}" if with_token and settings.token else ""
    return f"http://{host}:{port}/{query}"
