"""The live view as an output: start the server, hand frames over while someone watches, close.

:meth:`LiveViewOutput.update` is the frame loop's side and never waits for the network.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from edge.frame.results import FrameResult
from edge.outputs.base import Output, OutputError
from edge.outputs.liveview.auth import host_names
from edge.outputs.liveview.handler import Handler
from edge.outputs.liveview.hub import WAIT_S, Hub
from edge.outputs.liveview.server import LiveViewServer
from edge.outputs.liveview.settings import LiveViewSettings

log = logging.getLogger(__name__)


class LiveViewOutput(Output):
    """Serves the live view; see the package docstring (:mod:`edge.outputs.liveview`)."""

    name = "live view"

    def __init__(self, settings: LiveViewSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or LiveViewSettings()
        self.clock = clock
        self.hub = Hub(self.settings.stats_window, self.settings.jpeg_quality, clock)
        self.server: LiveViewServer | None = None
        self.thread: threading.Thread | None = None
        self._interval = 1.0 / self.settings.max_fps
        self._last_handed: float | None = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the setting when that is 0)."""
        return self.server.server_port if self.server is not None else self.settings.port

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        host, port = self.settings.host, self.settings.port
        try:
            self.server = LiveViewServer((host, port), self.hub, Handler, host_names(self.settings),
                                         self.settings.token)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OutputError(f"live view: port {port} on {host} is in use") from None
            raise OutputError(f"live view: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": WAIT_S},
                                       name="live-view", daemon=True)
        self.thread.start()
        log.info("live view on %s", self.url)
        loopback = ipaddress.ip_address(host).is_loopback if _is_ip(host) else host == "localhost"
        if not loopback and not self.settings.token:
            log.warning("live view: reachable from the network without a token; anyone there can watch "
                        "(set [outputs.live_view] token)")

    def describe(self, running: Mapping[str, str]) -> None:
        """Show what the service runs: ``source``, ``emotion_model``, ``gender_model``, ``detector`` (any missing)."""
        with self.hub.cond:
            self.hub.running = {str(k): str(v) for k, v in running.items() if v}

    def update(self, frame: np.ndarray, result: FrameResult) -> None:
        now = self.clock()
        hand = self.hub.viewers > 0 and (self._last_handed is None or now - self._last_handed >= self._interval)
        if hand:
            self._last_handed = now
        self.hub.record(result, now, frame.copy() if hand else None)

    def close(self) -> None:
        """Stop serving: stream threads woken and cut, listener closed, server thread joined. Safe twice."""
        self.hub.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
