"""A frame read that a stop request does not have to wait for.

A signal handler in Python only runs between bytecodes, so SIGTERM used to
wait for a multi-second image decode (11.5 s for a 12000x9000 JPEG, past the
unit's 5 s kill). Files are now decoded reduced, but a slow SD card or a Pi
under load can still stretch one decode; so the daemon reads files in a
helper thread and stops waiting as soon as it is asked to stop. The thread is
a daemon thread: the process exits without joining it.
"""

from __future__ import annotations

import threading
from typing import Any


class Interrupted(Exception):
    """The stop event was set while a read was still running."""


class StoppableRead:
    """``read(source)``: ``source.read()`` in a daemon thread, abandoned when ``stop`` is set."""

    def __init__(self, stop: threading.Event, poll_s: float = 0.05):
        self.stop = stop
        self.poll_s = poll_s
        self.busy = False  # a read was abandoned and may still be running: do not close the source under it

    def read(self, source: Any) -> Any:
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["frame"] = source.read()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="frame-read", daemon=True).start()
        while not done.wait(self.poll_s):
            if self.stop.is_set():
                self.busy = True
                raise Interrupted
        if "error" in box:
            raise box["error"]
        return box["frame"]
