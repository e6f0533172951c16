"""The one small interface every output implements.

The pipeline hands each output the frame it processed and the
:class:`~edge.frame.results.FrameResult`; an output never reaches back into the
pipeline. To add your own (MQTT, a buzzer, a webhook), subclass :class:`Output`
and implement the three methods; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.frame.results import FrameResult


class OutputError(RuntimeError):
    """An output that cannot start or keep running (pin busy, no display, port in use).

    The daemon logs the one-line message, drops that output and keeps running.
    """


class Output:
    """Base class: ``start`` once, ``update`` per frame, ``close`` once (idempotent)."""

    name = "output"

    def start(self) -> None:
        """Acquire hardware or sockets; raise :class:`OutputError` with a clear message on failure."""

    def describe(self, running: Mapping[str, str]) -> None:
        """What the service runs (``source``, ``emotion_model``, ``gender_model``, ``detector``), once after start.

        Only outputs that show it (the live view's page) need to act; a key may be missing.
        """

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        """React to one processed frame. Must be quick: it runs in the frame loop."""
        raise NotImplementedError

    def close(self) -> None:
        """Release everything and leave hardware in a safe state (LEDs off). Safe to call twice."""

    def camera_reopened(self, camera: object) -> None:
        """The source lost its camera and opened a new one (``camera``: the new Picamera2, or None).

        Only outputs that hold the camera (the display's overlay) need to act;
        raise :class:`OutputError` when they cannot follow.
        """

    def __enter__(self) -> Output:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
