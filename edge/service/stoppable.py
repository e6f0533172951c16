"""A frame read that a stop request does not have to wait for.

A signal handler in Python only runs between bytecodes, so SIGTERM used to
wait for a multi-second image decode (11.5 s for a 12000x9000 JPEG, past the
unit's 5 s kill). Files are now decoded reduced, but a slow SD card or a Pi
under load can still stretch one decode; so the daemon reads files in a
helper thread and stops waiting as soon as it is asked to stop. The thread is
a daemon thread: the process exits without joining it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any


class Interrupted(Exception):
    """The stop event was set while a read was still running."""


class StoppableRead:
    """``read(source)``: ``source.read()`` in one long-lived daemon thread, abandoned when ``stop`` is set.

    One thread for the whole run, not one per frame: no thread start per
    frame, and glibc does not hand out a malloc arena to thread after thread.
    """

    def __init__(self, stop: threading.Event, poll_s: float = 0.05):
        self.stop = stop
        self.poll_s = poll_s
        self.busy = False  # a read was abandoned and may still be running: do not close the source under it
        self._jobs: queue.SimpleQueue[tuple[Any, dict[str, Any], threading.Event]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def read(self, source: Any) -> Any:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="frame-read", daemon=True)
            self._thread.start()
        box: dict[str, Any] = {}
        done = threading.Event()
        self._jobs.put((source, box, done))
        while not done.wait(self.poll_s):
            if self.stop.is_set():
                self.busy = True
                raise Interrupted
        if "error" in box:
            raise box["error"]
        return box["frame"]

    def _work(self) -> None:
        while True:
            source, box, done = self._jobs.get()
            try:
                box["frame"] = source.read()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread in read()
                box["error"] = exc
            finally:
                done.set()
