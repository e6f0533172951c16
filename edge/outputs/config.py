"""The ``[outputs]`` config sections and :func:`build_outputs`, which turns them into running outputs.

Only dataclasses live at module level: ``edge.config`` imports this file to
parse the TOML, and that must not pull in gpiozero, an HTTP server or a GUI.
The output modules are imported inside :func:`build_outputs`, when one is
actually enabled.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.labels import EMOTION_LABELS, GENDER_LABELS
from edge.outputs.base import Output, OutputError
from edge.settings import ConfigError

LOG = logging.getLogger("edge.outputs")
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

# The RGB LED's colour per emotion; a [outputs.leds.colors] table overrides single entries.
DEFAULT_COLORS: dict[str, str] = {
    "angry": "#ff0000",  # red
    "disgust": "#00ff00",  # green
    "fear": "#8000ff",  # purple
    "happy": "#ffff00",  # yellow
    "sad": "#0000ff",  # blue
    "surprise": "#ff8000",  # orange
    "neutral": "#ffffff",  # white
}
# BCM numbers; chosen so that no default pin collides with another default or with I2C/SPI/UART.
DEFAULT_RGB_PINS = (17, 27, 22)
DEFAULT_GENDER_PINS: dict[str, int] = {"woman": 5, "man": 6}
DEFAULT_EMOTION_PINS: dict[str, int] = {
    "angry": 12, "disgust": 16, "fear": 20, "happy": 21, "sad": 26, "surprise": 19, "neutral": 13,
}


def parse_colour(text: str) -> tuple[float, float, float]:
    """``"#ff8000"`` -> ``(1.0, 0.502, 0.0)``, the 0..1 values gpiozero's RGBLED takes."""
    return tuple(int(text[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


def _check_labels(table: dict[str, Any], known: tuple[str, ...], key: str, what: str) -> None:
    for name in table:
        if name not in known:
            raise ConfigError(f"{key}.{name}: unknown {what} (known: {', '.join(known)})")


@dataclass(frozen=True)
class LedSettings:
    """``[outputs.leds]``: LEDs on GPIO pins (BCM numbers) through gpiozero."""

    enabled: bool = True
    layout: Literal["rgb", "board"] = "rgb"  # rgb: one RGB LED for the emotion; board: one LED per emotion
    rgb_pins: tuple[int, int, int] = DEFAULT_RGB_PINS  # red, green, blue of the RGB LED (layout "rgb")
    emotion_pins: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_EMOTION_PINS))  # layout "board"
    gender_pins: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_GENDER_PINS))  # {} = none wired
    colors: dict[str, str] = field(default_factory=dict)  # overrides of DEFAULT_COLORS, "#rrggbb"
    bands: int = 4  # confidence is shown in this many brightness steps; pins change only between steps
    off_after_s: float = 2.0  # all LEDs off after this long without a face
    active_high: bool = True  # false for common-anode RGB LEDs / LEDs wired to 3V3

    def validate(self) -> None:
        _check_labels(self.emotion_pins, EMOTION_LABELS, "emotion_pins", "emotion")
        _check_labels(self.gender_pins, GENDER_LABELS, "gender_pins", "gender")
        _check_labels(self.colors, EMOTION_LABELS, "colors", "emotion")
        for name, value in self.colors.items():
            if not HEX_COLOUR.match(value):
                raise ConfigError(f"colors.{name}: expected a colour like \"#ffcc00\", got {value!r}")
        if not 1 <= self.bands <= 16:
            raise ConfigError(f"bands: {self.bands} is outside 1..16")
        if self.off_after_s < 0:
            raise ConfigError(f"off_after_s: {self.off_after_s} must not be negative")
        if self.layout == "board" and not self.emotion_pins:
            raise ConfigError("emotion_pins: the \"board\" layout needs at least one emotion pin")
        seen: dict[int, str] = {}
        for key, pin in self.pins().items():
            if pin < 0:
                raise ConfigError(f"{key}: pin {pin} must not be negative")
            if pin in seen:
                raise ConfigError(f"{key}: pin {pin} is already used by {seen[pin]}")
            seen[pin] = key

    def pins(self) -> dict[str, int]:
        """Every pin the chosen layout drives, keyed by its config name (``rgb_pins[0]``, ``gender_pins.man``)."""
        used: dict[str, int] = {}
        if self.layout == "rgb":
            used.update({f"rgb_pins[{i}]": pin for i, pin in enumerate(self.rgb_pins)})
        else:
            used.update({f"emotion_pins.{name}": pin for name, pin in self.emotion_pins.items()})
        used.update({f"gender_pins.{name}": pin for name, pin in self.gender_pins.items()})
        return used

    def colour_map(self) -> dict[str, tuple[float, float, float]]:
        """Every emotion's RGB colour (0..1 per channel): the defaults with the configured overrides."""
        return {name: parse_colour(value) for name, value in (DEFAULT_COLORS | self.colors).items()}


@dataclass(frozen=True)
class DisplaySettings:
    """``[outputs.display]``: annotated frames on the Pi's screen."""

    enabled: bool = False
    mode: Literal["auto", "overlay", "window"] = "auto"  # auto: overlay with picamera2, else an OpenCV window
    preview: Literal["auto", "drm", "qtgl"] = "auto"  # overlay: auto = qtgl on a desktop, drm on the console
    window_name: str = "face-emotion"
    show_stats: bool = True  # fps and latency in the top-left corner

    def validate(self) -> None:
        if not self.window_name:
            raise ConfigError("window_name: must not be empty")


@dataclass(frozen=True)
class LiveViewSettings:
    """``[outputs.live_view]``: a small HTTP server with an MJPEG stream and live statistics (off by default)."""

    enabled: bool = False
    host: str = "127.0.0.1"  # "0.0.0.0" makes it reachable from the network: anyone there can watch
    port: int = 8080  # 0 = any free port (logged)
    max_fps: float = 5.0  # the stream's frame-rate ceiling; JPEG encoding costs CPU only while someone watches
    jpeg_quality: int = 80
    stats_window: int = 100  # frames the median latencies and fps are computed over
    hostnames: list[str] = field(default_factory=list)  # names the browser may use besides IPs, localhost, ours
    token: str = ""  # required as ?token=, or as the basic-auth password, when set (for host = "0.0.0.0")

    def validate(self) -> None:
        if not self.host:
            raise ConfigError("host: must not be empty")
        for name in self.hostnames:
            if not name or any(c in name for c in " /:@?#[]"):
                raise ConfigError(f"hostnames: {name!r} is not a host name")
        if self.token and (len(self.token) < 16 or not self.token.isascii() or not self.token.isprintable()):
            raise ConfigError("token: use at least 16 printable ASCII characters (e.g. `openssl rand -hex 16`)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is outside 0..65535")
        if not 0 < self.max_fps <= 60:
            raise ConfigError(f"max_fps: {self.max_fps} is outside 0..60")
        if not 10 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality: {self.jpeg_quality} is outside 10..100")
        if not 2 <= self.stats_window <= 10000:
            raise ConfigError(f"stats_window: {self.stats_window} is outside 2..10000")


@dataclass(frozen=True)
class EventLogSettings:
    """``[outputs.event_log]``: one JSON line per label change, new track and lost track."""

    enabled: bool = True
    path: str = ""  # "" = stdout (the journal under systemd); a file is appended to
    journal: bool = True  # under systemd, also send structured entries with systemd.journal.send
    lost_after_s: float = 1.0  # a track unseen this long is reported lost (keep >= smoothing.max_missed_s)
    save_faces_dir: str = ""  # opt-in: save a face crop (JPEG) on every label change; "" = never

    def validate(self) -> None:
        if self.lost_after_s < 0:
            raise ConfigError(f"lost_after_s: {self.lost_after_s} must not be negative")


@dataclass(frozen=True)
class MqttSettings:
    """``[outputs.mqtt]``: state, events, health and Home Assistant discovery to an MQTT broker (off by default)."""

    enabled: bool = False
    host: str = ""  # the broker; an IP address needs no DNS (the hardened unit only allows what IPAddressAllow= lists)
    port: int = 1883  # 8883 is the usual TLS port
    username: str = ""
    password: str = ""  # or password_file (one line, readable by the service user); not both
    password_file: str = ""
    tls: bool = False
    tls_ca: str = ""  # CA certificate file (PEM); "" = the system's CAs
    tls_cert: str = ""  # client certificate (PEM) for brokers that require one, with tls_key
    tls_key: str = ""
    client_id: str = ""  # "" = the host name; also names the device in topics and in Home Assistant
    topic_prefix: str = "face-emotion"  # topics are <topic_prefix>/<client id>/state, /events, /health, /availability
    qos: int = 1
    retain: bool = True  # retain state and health (availability and discovery are always retained)
    keepalive_s: int = 60
    max_state_rate: float = 2.0  # state messages per second at most (only sent when faces or labels change)
    health_interval_s: float = 15.0
    queue_size: int = 1000  # events waiting while the broker is away; the oldest are dropped (and counted)
    publish_images: bool = False  # opt-in: a JPEG of the face on every new track and label change (.../image)
    discovery: bool = True  # Home Assistant discovery configs (retained); false removes them on connect
    discovery_prefix: str = "homeassistant"
    discovery_cleanup: bool = True  # with enabled = false and a host: remove this device's entities at start

    def validate(self) -> None:
        if self.enabled and not self.host:
            raise ConfigError("host: the MQTT output needs the broker's host name or address")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is outside 1..65535")
        if self.password and self.password_file:
            raise ConfigError("password_file: give password or password_file, not both")
        if (self.password or self.password_file) and not self.username:
            raise ConfigError("username: a password needs a username")
        if (self.tls_ca or self.tls_cert or self.tls_key) and not self.tls:
            raise ConfigError("tls: tls_ca/tls_cert/tls_key are set but tls = false")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_key: a client certificate needs both tls_cert and tls_key")
        for key in ("topic_prefix", "discovery_prefix", "client_id"):
            value = getattr(self, key)
            if any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
                raise ConfigError(f"{key}: {value!r} must not contain + # or a NUL, nor start or end with /")
        if not self.topic_prefix or not self.discovery_prefix:
            raise ConfigError("topic_prefix/discovery_prefix: must not be empty")
        if "/" in self.client_id:
            raise ConfigError(f"client_id: {self.client_id!r} must not contain /")
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"qos: {self.qos} is not 0, 1 or 2")
        if not 5 <= self.keepalive_s <= 3600:
            raise ConfigError(f"keepalive_s: {self.keepalive_s} is outside 5..3600")
        if not 0 < self.max_state_rate <= 50:
            raise ConfigError(f"max_state_rate: {self.max_state_rate} is outside 0..50")
        if not 1 <= self.health_interval_s <= 3600:
            raise ConfigError(f"health_interval_s: {self.health_interval_s} is outside 1..3600")
        if not 10 <= self.queue_size <= 100000:
            raise ConfigError(f"queue_size: {self.queue_size} is outside 10..100000")


@dataclass(frozen=True)
class OutputsSettings:
    """``[outputs]``: one sub-table per output."""

    leds: LedSettings = field(default_factory=LedSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    live_view: LiveViewSettings = field(default_factory=LiveViewSettings)
    event_log: EventLogSettings = field(default_factory=EventLogSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)


def _factories(settings: OutputsSettings, camera: Any) -> list[tuple[str, Callable[[], Output]]]:
    """(name, constructor) for each enabled output, cheapest first; modules imported only when enabled."""
    made: list[tuple[str, Callable[[], Output]]] = []
    if settings.event_log.enabled:
        from edge.outputs.eventlog import EventLogOutput

        made.append(("event log", lambda: EventLogOutput(settings.event_log)))
    if settings.leds.enabled:
        from edge.outputs.leds import LedOutput

        made.append(("LEDs", lambda: LedOutput(settings.leds)))
    if settings.live_view.enabled:
        from edge.outputs.liveview import LiveViewOutput

        made.append(("live view", lambda: LiveViewOutput(settings.live_view)))
    if settings.display.enabled:
        from edge.outputs.display import DisplayOutput

        made.append(("display", lambda: DisplayOutput(settings.display, camera=camera)))
    if settings.mqtt.enabled:
        from edge.outputs.mqtt import MqttOutput

        made.append(("MQTT", lambda: MqttOutput(settings.mqtt)))
    return made


def build_outputs(settings: OutputsSettings, camera: Any = None,
                  log: logging.Logger = LOG) -> list[Output]:
    """Construct and start every enabled output; one that cannot start is logged and left out.

    ``camera`` is the source's ``Picamera2`` object (or None): the display
    draws on its preview. A failing output never stops the others or the
    daemon: the Pi keeps detecting with whatever outputs work.
    """
    outputs: list[Output] = []
    if not settings.mqtt.enabled and settings.mqtt.host and settings.mqtt.discovery_cleanup:
        from edge.outputs.mqtt import start_cleanup

        start_cleanup(settings.mqtt, log)  # in the background: removes the Home Assistant entities it announced
    for name, make in _factories(settings, camera):
        output: Output | None = None
        try:
            output = make()
            output.start()
        except OutputError as exc:  # NoGpio on a PC is a warning whose message says it all
            log.log(getattr(exc, "level", logging.ERROR), "%s%s", exc, getattr(exc, "continuing",
                                                                          "; continuing without it"))
        except Exception as exc:  # a bug in one output must not keep the service down
            log.exception("%s: could not start (%s); continuing without it", name, exc)
        else:
            outputs.append(output)
            continue
        if output is not None:
            with contextlib.suppress(Exception):  # best effort; the start error was logged
                output.close()
    return outputs
