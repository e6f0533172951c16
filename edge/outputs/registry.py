"""The ``[outputs]`` config section and :func:`build_outputs`: which outputs exist and how each is made.

Each output module owns its settings dataclass (``LedSettings`` in
:mod:`edge.outputs.leds`, ...) and imports only the standard library, NumPy
and OpenCV at module level (gpiozero, paho-mqtt and the Qt/DRM preview are
imported when an output starts), so ``edge.service.config`` can parse the TOML through
this module without touching hardware. Adding an output is one module, one
field in :class:`OutputsSettings`, one line in :data:`FACTORIES` and a TOML
section in ``edge/config.example.toml``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.outputs import display, eventlog, leds, liveview, mqtt
from edge.outputs.base import Output, OutputError
from edge.outputs.display import DisplaySettings
from edge.outputs.eventlog import EventLogSettings
from edge.outputs.leds import LedSettings
from edge.outputs.liveview import LiveViewSettings
from edge.outputs.mqtt import MqttSettings

LOG = logging.getLogger("edge.outputs")


@dataclass(frozen=True)
class OutputsSettings:
    """``[outputs]``: one sub-table per output."""

    leds: LedSettings = field(default_factory=LedSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    live_view: LiveViewSettings = field(default_factory=LiveViewSettings)
    event_log: EventLogSettings = field(default_factory=EventLogSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)


# (name in log lines, [outputs] key, constructor from its settings and the camera), cheapest first; the classes
# are looked up when called, so a test (or a plug-in) can put a subclass in their module
FACTORIES: tuple[tuple[str, str, Callable[[Any, Any], Output]], ...] = (
    ("event log", "event_log", lambda settings, camera: eventlog.EventLogOutput(settings)),
    ("LEDs", "leds", lambda settings, camera: leds.LedOutput(settings)),
    ("live view", "live_view", lambda settings, camera: liveview.LiveViewOutput(settings)),
    ("display", "display", lambda settings, camera: display.DisplayOutput(settings, camera=camera)),
    ("MQTT", "mqtt", lambda settings, camera: mqtt.MqttOutput(settings)),
)


def build_outputs(settings: OutputsSettings, camera: Any = None,
                  log: logging.Logger = LOG) -> list[Output]:
    """Construct and start every enabled output; one that cannot start is logged and left out.

    ``camera`` is the source's ``Picamera2`` object (or None): the display
    draws on its preview. A failing output never stops the others or the
    daemon: the Pi keeps detecting with whatever outputs work.
    """
    outputs: list[Output] = []
    if not settings.mqtt.enabled and settings.mqtt.host and settings.mqtt.discovery_cleanup:
        mqtt.start_cleanup(settings.mqtt, log)  # in the background: removes the Home Assistant entities it announced
    for name, key, make in FACTORIES:
        section = getattr(settings, key)
        if not section.enabled:
            continue
        output: Output | None = None
        try:
            output = make(section, camera)
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
