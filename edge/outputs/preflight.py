"""Will each enabled output start? Its library and what it talks to, checked before the service runs.

``face-emotion check`` used to list the outputs and say OK: MQTT without
paho-mqtt passed, then logged an error at run time. Here each enabled output
gets one :class:`Verdict`: its library imports (paho-mqtt, gpiozero,
picamera2 or an OpenCV with a GUI), and what it needs is there: the broker
accepts a TCP connection within :data:`CONNECT_TIMEOUT_S`, the LED pins are
GPIO pins of the 40-pin header, the screen exists, the live view's port is
free, the event log's folder is writable. Nothing is claimed for longer than
the check (no pin is driven, no camera opened). A machine without GPIO is a
warning, as it is at run time (the same config is checked on a PC before it
goes to the Pi); everything else that would fail is an error.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from edge.outputs.display import DisplayOutput, DisplaySettings
from edge.outputs.leds import INSTALL_HINT as GPIO_HINT
from edge.outputs.leds import LedSettings, is_raspberry_pi

if TYPE_CHECKING:  # settings reach here inside OutputsSettings; only their types are named
    from edge.outputs.eventlog import EventLogSettings
    from edge.outputs.liveview import LiveViewSettings
    from edge.outputs.mqtt import MqttSettings
    from edge.outputs.registry import OutputsSettings

CONNECT_TIMEOUT_S = 3.0
BCM_PINS = range(0, 28)  # GPIO0..GPIO27: the 40-pin header of every Raspberry Pi since the B+
PAHO_HINT = "pip install 'pi-face-emotion[mqtt]', or apt install python3-paho-mqtt"
PICAMERA2_HINT = "on a Pi: sudo apt install python3-picamera2"


@dataclass(frozen=True)
class Verdict:
    """One output: what it is, and the problem (None = it will start), which may be only a warning."""

    what: str
    problem: str | None = None
    warning: bool = False  # it will not work here, as expected (no GPIO on a PC), and the service goes on

    @property
    def failed(self) -> bool:
        return self.problem is not None and not self.warning

    @property
    def state(self) -> str:
        """``ok``, ``FAILS: why`` or ``warning: why``."""
        return "ok" if self.problem is None else f"{'warning' if self.warning else 'FAILS'}: {self.problem}"


def importable(module: str) -> str | None:
    """None when ``module`` imports, else why not (one line)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return None


def event_log(settings: EventLogSettings) -> Verdict:
    if not settings.path:
        return Verdict("event log -> stdout (the journal under systemd)")
    path = Path(settings.path)
    what = f"event log -> {path}"
    if path.is_dir():
        return Verdict(what, f"{path} is a folder; give a file")
    target = path if path.exists() else path.parent
    if not target.exists():
        return Verdict(what, f"folder {target} does not exist")
    if not os.access(target, os.W_OK):
        return Verdict(what, f"{target} is not writable by this user")
    return Verdict(what)


def leds(settings: LedSettings) -> Verdict:
    pins = settings.rgb_pins if settings.layout == "rgb" else tuple(settings.emotion_pins.values())
    gender = tuple(settings.gender_pins.values())
    what = f"LEDs ({settings.layout}, BCM pins {list(pins)}, gender {list(gender)})"
    bad = [pin for pin in (*pins, *gender) if pin not in BCM_PINS]
    if bad:
        return Verdict(what, f"BCM pin(s) {bad} do not exist (GPIO {BCM_PINS.start}..{BCM_PINS.stop - 1})")
    if not os.environ.get("GPIOZERO_PIN_FACTORY") and not is_raspberry_pi():
        return Verdict(what, "no GPIO here, LEDs off", warning=True)
    missing = importable("gpiozero")
    if missing:
        return Verdict(what, f"gpiozero is not installed ({GPIO_HINT}): {missing}")
    if not os.environ.get("GPIOZERO_PIN_FACTORY") and not any(Path("/dev").glob("gpiochip*")):
        return Verdict(what, "no /dev/gpiochip* device (is the GPIO driver loaded?)")
    return Verdict(what)


def live_view(settings: LiveViewSettings) -> Verdict:
    host, port = settings.host, settings.port
    what = f"live view on http://{f'[{host}]' if ':' in host else host}:{port}/"
    problem = _bind_problem(host, port)
    if problem:
        return Verdict(what, problem)
    if not _is_loopback(host) and not settings.token:
        return Verdict(what, "reachable from the network without a token; anyone there can watch (set "
                             "[outputs.live_view] token)", warning=True)
    return Verdict(what)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _bind_problem(host: str, port: int) -> str | None:
    """Can the live view listen there? Bound and released at once, with the server's SO_REUSEADDR."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host} ({exc.strerror or exc})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (by the running service? stop it to test this config)"
            return f"cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None


def display(settings: DisplaySettings, camera_source: str) -> Verdict:
    """As :meth:`DisplayOutput.start` decides: the picamera2 overlay, or an OpenCV window."""
    probe = DisplayOutput(settings)
    overlay = camera_source == "picamera2" and settings.mode in ("auto", "overlay")
    if settings.mode == "overlay" and camera_source != "picamera2":
        return Verdict("display (overlay)", 'mode "overlay" needs the picamera2 source')
    if overlay:
        kind: str = settings.preview
        if kind == "auto":
            kind = "qtgl" if probe._desktop() else "drm" if probe._drm() else ""
        what = f"display (picamera2 {kind or 'preview'} overlay)"
        if not kind or (kind == "qtgl" and not probe._desktop()) or (kind == "drm" and not probe._drm()):
            return Verdict(what, f"no screen for the {kind or 'preview'} overlay (no DISPLAY/"
                                 "WAYLAND_DISPLAY desktop, or no /dev/dri/card* for drm)")
        missing = importable("picamera2")
        return Verdict(what, f"picamera2 is not installed ({PICAMERA2_HINT})" if missing else None)
    what = "display (OpenCV window)"
    if not probe._desktop():
        return Verdict(what, "no screen for a window (DISPLAY and WAYLAND_DISPLAY are unset)")
    if opencv_gui() == "NONE":
        return Verdict(what, "this OpenCV has no GUI support (the opencv-python-headless wheel); on a Pi "
                             "install python3-opencv with apt")
    return Verdict(what)


def opencv_gui() -> str:
    """The GUI backend OpenCV was built with (``NONE`` in the headless wheels), from its build information."""
    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name.strip() == "GUI":
            return value.strip() or "NONE"
    return "unknown"


def mqtt(settings: MqttSettings, timeout_s: float = CONNECT_TIMEOUT_S) -> Verdict:
    what = f"MQTT to {settings.host}:{settings.port}" + (" (TLS)" if settings.tls else "")
    missing = importable("paho.mqtt.client")
    if missing:
        return Verdict(what, f"paho-mqtt is not installed ({PAHO_HINT}): {missing}")
    for key in ("password_file", "tls_ca", "tls_cert", "tls_key"):
        name = getattr(settings, key)
        if name and not os.access(name, os.R_OK):
            return Verdict(what, f"{key} {name} is missing or not readable by this user")
    try:
        with contextlib.closing(socket.create_connection((settings.host, settings.port), timeout=timeout_s)):
            pass
    except socket.gaierror as exc:
        return Verdict(what, f"cannot resolve the broker {settings.host} ({exc.strerror or exc})")
    except TimeoutError:
        return Verdict(what, f"no answer from the broker at {settings.host}:{settings.port} within "
                             f"{timeout_s:g} s")
    except OSError as exc:
        return Verdict(what, f"cannot connect to the broker at {settings.host}:{settings.port} "
                             f"({exc.strerror or exc})")
    return Verdict(what)


def check_outputs(settings: OutputsSettings, camera_source: str) -> list[Verdict]:
    """A verdict per enabled output, in the order the service starts them."""
    verdicts = []
    if settings.event_log.enabled:
        verdicts.append(event_log(settings.event_log))
    if settings.leds.enabled:
        verdicts.append(leds(settings.leds))
    if settings.live_view.enabled:
        verdicts.append(live_view(settings.live_view))
    if settings.display.enabled:
        verdicts.append(display(settings.display, camera_source))
    if settings.mqtt.enabled:
        verdicts.append(mqtt(settings.mqtt))
    return verdicts
