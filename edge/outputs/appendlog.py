"""An append-only line log that survives a full disk: whole lines or nothing, held in memory and retried.

Python's buffered files turn ``ENOSPC`` into a broken half line and then fail
again on ``close()`` (the unflushed buffer is retried), which is how a full SD
card used to kill the service. Here every line goes to the file descriptor in
one ``os.write`` loop; a write that fails half-way is cut back off the file
(``ftruncate`` to the size before it), so the file only ever holds whole JSON
lines. Lines that cannot be written wait in a bounded queue (the oldest are
dropped and counted beyond ``max_pending``) and the writer retries with
exponential backoff, logging once when it starts failing and once when it
writes again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)


class AppendLog:
    """Lines appended to a file path (or written to a text stream such as stdout), failure-tolerant."""

    def __init__(self, path: str | None = None, stream: TextIO | None = None, what: str = "event log",
                 clock: Callable[[], float] = time.monotonic, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 max_pending: int = 1000):
        if (path is None) == (stream is None):
            raise ValueError("AppendLog needs a path or a stream")
        self.path, self.stream, self.what = path, stream, what
        self.clock = clock
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.pending: deque[str] = deque()
        self.max_pending = max_pending
        self.dropped = 0  # lines lost because the queue was full (reported when writing works again)
        self.failures = 0  # failed write attempts in the current outage
        self._retry_at = 0.0
        self._fd: int | None = None

    def open(self) -> None:
        """Open the file for appending; OSError when it cannot be opened at all."""
        if self.path is not None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def write(self, line: str) -> None:
        """Queue one line (without its newline) and write what the backoff allows; never raises OSError."""
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
        self.pending.append(line)
        if self.clock() >= self._retry_at:
            self.flush()

    def flush(self) -> bool:
        """Write the queued lines now; True when nothing is left waiting."""
        while self.pending:
            try:
                self._write_line(self.pending[0] + "\n")
            except OSError as exc:
                self._failed(exc)
                return False
            self.pending.popleft()
        if self.failing:
            lost = f", {self.dropped} dropped (queue full)" if self.dropped else ""
            log.warning("%s: writing again after %d failed attempt(s)%s", self.what, self.failures, lost)
            self.failures, self.dropped = 0, 0
        return True

    def _failed(self, exc: OSError) -> None:
        delay = min(self.backoff_s * 2 ** self.failures, self.max_backoff_s)
        if not self.failing:  # one line per outage, not one per event
            log.warning("%s: cannot write %s (%s); holding up to %d line(s) in memory, retrying with backoff",
                        self.what, self.path or "the stream", os.strerror(exc.errno) if exc.errno else exc,
                        self.max_pending)
        self.failures += 1
        self._retry_at = self.clock() + delay

    def _write_line(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()
            return
        if self._fd is None:
            raise OSError(errno.EBADF, f"{self.what} is not open")
        data = text.encode("utf-8")
        start = self._size()
        written = 0
        try:
            while written < len(data):
                n = os.write(self._fd, data[written:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
        except OSError:
            if written and start is not None:
                self._cut(start)  # no half lines: the file keeps only whole JSON objects
            raise

    def _size(self) -> int | None:
        """The file's size before a write (None for a device such as /dev/full)."""
        try:
            st = os.fstat(self._fd)  # type: ignore[arg-type]
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _cut(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)  # type: ignore[arg-type]
        except OSError as exc:
            log.warning("%s: could not remove a partly written line (%s)", self.what, exc)

    def close(self) -> int:
        """One last write attempt, then close; returns how many lines were never written. Never raises."""
        with contextlib.suppress(OSError, ValueError):  # a closed stream: nothing more to do
            if self.pending:
                self.flush()
        left = len(self.pending) + self.dropped
        if left:
            log.warning("%s: %d line(s) could not be written before closing", self.what, left)
        self.pending.clear()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        return left
