"""LEDs that show the smoothed emotion and gender of the largest face, through gpiozero.

Layout ``rgb`` (default): one RGB LED (PWM) whose colour is the emotion's
colour from the config and whose brightness follows the confidence, plus one
LED each for woman and man. Layout ``board``: one LED per emotion, the current
one lit (brightness again following the confidence), plus the gender LEDs.

The confidence is quantised into ``bands`` brightness steps, and pins are
written only when the shown state (label, gender, band) changes: a stable
label costs no GPIO writes at all, and a confidence hovering on a band edge
does not flicker (a small margin keeps the current band). With no face for
``off_after_s`` everything goes dark; a face missed for a frame or two keeps
the LEDs as they were.

gpiozero is imported in :meth:`LedOutput.start`, so this module imports on
any machine; where there is no Raspberry Pi (and ``GPIOZERO_PIN_FACTORY``
names no factory) the output says "no GPIO here, LEDs off" once and stays
out. The pin factory is gpiozero's choice (``GPIOZERO_PIN_FACTORY``;
lgpio on a Pi 5 / Bookworm) unless one is injected (tests use gpiozero's
``MockFactory``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
from edge.frame.results import FrameResult
from edge.outputs.base import Output, OutputError
from edge.settings import ConfigError

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

BAND_MARGIN = 0.03  # how far past a band edge the confidence must move before the brightness changes
INSTALL_HINT = "on a Pi: sudo apt install python3-gpiozero python3-lgpio"


class NoGpio(OutputError):
    """Not a Raspberry Pi and no pin factory asked for: expected on a PC, so logged as a warning."""

    level = logging.WARNING
    continuing = ""  # the message already says what happens


def is_raspberry_pi(model_file: Path = Path("/proc/device-tree/model")) -> bool:
    """True on a Raspberry Pi (its device-tree model names it); gpiozero's pin factories need one."""
    try:
        return "raspberry pi" in model_file.read_text(errors="replace").lower()
    except OSError:
        return False


def confidence_band(confidence: float, bands: int, current: int | None = None) -> int:
    """The brightness step 1..``bands`` for ``confidence``: ``ceil(confidence * bands)``, clamped.

    With ``current`` given, that band is kept while the confidence stays
    within :data:`BAND_MARGIN` of it, so noise on a band edge does not toggle pins.
    """
    band = min(bands, max(1, math.ceil(confidence * bands)))
    if current is not None and band != current and 1 <= current <= bands:
        low, high = (current - 1) / bands, current / bands
        if low - BAND_MARGIN <= confidence <= high + BAND_MARGIN:
            return current
    return band


@dataclass(frozen=True)
class LedState:
    """What the LEDs show; pins are written only when this changes."""

    emotion: str | None = None
    band: int = 0  # 0 = dark
    gender: str | None = None


OFF = LedState()


class LedOutput(Output):
    """The LED output; see the module docstring for the layouts."""

    name = "LEDs"

    def __init__(self, settings: LedSettings | None = None, pin_factory: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings or LedSettings()
        self.pin_factory = pin_factory
        self.clock = clock
        self.colours = self.settings.colour_map()
        self.state = OFF
        self.writes = 0  # state changes applied to the pins (for tests and debugging)
        self._last_face: float | None = None
        self._rgb: Any = None
        self._emotion_leds: dict[str, Any] = {}
        self._gender_leds: dict[str, Any] = {}
        self._devices: list[Any] = []

    # -- start / close -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.pin_factory is None and not os.environ.get("GPIOZERO_PIN_FACTORY") and not is_raspberry_pi():
            # gpiozero would try four pin factories, warn about each and fail: say it once, not as an error
            raise NoGpio("LEDs: no GPIO here, LEDs off")
        try:
            import gpiozero
        except ImportError:
            raise OutputError(f"LEDs: gpiozero is not installed ({INSTALL_HINT})") from None
        s = self.settings
        kw = {"pin_factory": self.pin_factory} if self.pin_factory is not None else {}
        try:
            if s.layout == "rgb":
                self._rgb = self._claim(
                    "rgb_pins", s.rgb_pins, lambda: gpiozero.RGBLED(*s.rgb_pins, active_high=s.active_high, **kw))
            else:
                for emotion, pin in s.emotion_pins.items():
                    self._emotion_leds[emotion] = self._claim(
                        f"emotion_pins.{emotion}", (pin,),
                        partial(gpiozero.PWMLED, pin, active_high=s.active_high, **kw))
            for gender, pin in s.gender_pins.items():
                self._gender_leds[gender] = self._claim(
                    f"gender_pins.{gender}", (pin,), partial(gpiozero.LED, pin, active_high=s.active_high, **kw))
        except OutputError:
            self.close()
            raise
        self.state = OFF

    def _claim(self, key: str, pins: tuple[int, ...], make: Callable[[], Any]) -> Any:
        """Create one gpiozero device, turning its failure into one clear :class:`OutputError`."""
        failure: Exception | None = None
        try:
            device = make()
        except Exception as exc:  # gpiozero raises its own classes, lgpio plain errors ("GPIO busy")
            failure = exc
        else:
            self._devices.append(device)
            return device
        if len(pins) == 1:
            raise OutputError(explain_pin_error(failure, key, pins[0])) from None
        index = self._culprit(pins, failure)
        if index is None:
            raise OutputError(explain_pin_error(failure, key, pins)) from None
        raise OutputError(explain_pin_error(failure, f"{key}[{index}]", pins[index])) from None

    def _culprit(self, pins: tuple[int, ...], failure: Exception) -> int | None:
        """Which pin (index) of a multi-pin device (the RGB LED) failed, by trying each one alone."""
        import gpiozero

        kw = {"pin_factory": self.pin_factory} if self.pin_factory is not None else {}
        for index, pin in enumerate(pins):
            try:
                probe = gpiozero.PWMLED(pin, **kw)
            except Exception as exc:
                if type(exc) is type(failure):
                    return index
                continue
            probe.close()
        return None

    def close(self) -> None:
        """All LEDs off, devices closed (pins released). Safe to call twice."""
        for device in self._devices:
            with contextlib.suppress(Exception):  # keep switching the others off
                device.off()
            with contextlib.suppress(Exception):
                device.close()
        self._devices.clear()
        self._rgb = None
        self._emotion_leds.clear()
        self._gender_leds.clear()
        self.state = OFF

    # -- per frame -----------------------------------------------------------------------------------

    def target(self, result: FrameResult) -> LedState | None:
        """The state to show for ``result``; None = keep the current one (a face missed only briefly)."""
        now = self.clock()
        face = result.largest
        if face is None:
            if self._last_face is not None and now - self._last_face < self.settings.off_after_s:
                return None
            return OFF
        self._last_face = now
        current = self.state.band if face.emotion == self.state.emotion else None
        band = confidence_band(face.emotion_confidence, self.settings.bands, current)
        return LedState(face.emotion, band, face.gender)

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        if not self._devices:
            return
        state = self.target(result)
        if state is None or state == self.state:
            return
        self._apply(self.state, state)
        self.state = state
        self.writes += 1

    def _apply(self, old: LedState, new: LedState) -> None:
        """Write only the devices whose value differs between ``old`` and ``new``."""
        level = new.band / self.settings.bands
        if self._rgb is not None and (old.emotion, old.band) != (new.emotion, new.band):
            colour = self.colours.get(new.emotion or "", (0.0, 0.0, 0.0))
            self._rgb.color = tuple(channel * level for channel in colour)
        if self._emotion_leds:
            old_level = old.band / self.settings.bands
            for emotion, led in self._emotion_leds.items():
                before = old_level if emotion == old.emotion else 0.0
                after = level if emotion == new.emotion else 0.0
                if after != before:
                    led.value = after
        for gender, led in self._gender_leds.items():
            if (gender == old.gender) != (gender == new.gender):
                led.value = 1 if gender == new.gender else 0


def explain_pin_error(exc: Exception, key: str, pin: int | tuple[int, ...]) -> str:
    """One line for a device that could not be created on ``pin`` (config key ``key``)."""
    from gpiozero import exc as gz

    where = f"pin {pin} ({key})" if isinstance(pin, int) else f"pins {list(pin)} ({key})"
    if isinstance(exc, gz.BadPinFactory):
        return ("LEDs: no GPIO access: gpiozero found no pin factory (not a Raspberry Pi, or lgpio missing: "
                f"{INSTALL_HINT}; GPIOZERO_PIN_FACTORY picks one)")
    if isinstance(exc, gz.GPIOPinInUse) or "busy" in str(exc).lower():
        return f"LEDs: {where} is already in use (by another output, device or program)"
    if isinstance(exc, gz.PinInvalidPin):
        return f"LEDs: {where} is not a valid GPIO pin on this board (use BCM numbers, e.g. 17 for GPIO17)"
    if isinstance(exc, gz.PinPWMUnsupported):
        return f"LEDs: {where} cannot do PWM with this pin factory (use lgpio: GPIOZERO_PIN_FACTORY=lgpio)"
    if isinstance(exc, PermissionError) or "permission" in str(exc).lower():
        return f"LEDs: no permission to use {where}: run as a user in the gpio group"
    return f"LEDs: cannot use {where}: {type(exc).__name__}: {exc}"
