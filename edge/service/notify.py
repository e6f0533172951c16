"""Talk to systemd: READY=1, WATCHDOG=1, STATUS=..., STOPPING=1.

Uses systemd-python's ``systemd.daemon.notify`` when installed (apt
``python3-systemd`` on the Pi); otherwise writes the same datagram to
``$NOTIFY_SOCKET`` itself. Outside systemd (no socket) every call is a no-op.
WATCHDOG=1 is sent by the frame loop (a hung camera read stops the pings and
systemd restarts the service) and during the bounded waits between camera
retries; EXTEND_TIMEOUT_USEC extends the start timeout before READY=1.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

SYSLOG_IDENTIFIER = "face-emotion"  # the journal's name for the service's log lines and face events


def under_systemd(env: Mapping[str, str]) -> bool:
    """True when systemd started us (it sets INVOCATION_ID, and JOURNAL_STREAM for journal-bound stdio)."""
    return bool(env.get("INVOCATION_ID") or env.get("JOURNAL_STREAM"))


def load_journal(env: Mapping[str, str]) -> Any:
    """``systemd.journal`` when running under systemd and python3-systemd is installed, else None.

    The one place that decides: the service's log handler (:func:`edge.service.daemon.setup_logging`) and the
    event log's structured entries (:mod:`edge.outputs.eventlog`) both ask here.
    """
    if not under_systemd(env):
        return None
    try:
        import systemd.journal
    except ImportError:
        return None
    return systemd.journal


def _systemd_notify() -> Callable[[str], bool] | None:
    try:
        import systemd.daemon  # (not `from systemd import daemon`: mypy reads the repo's systemd/ folder as it)
    except ImportError:
        return None
    notify: Callable[[str], bool] = systemd.daemon.notify
    return notify


class Notifier:
    """sd_notify for the daemon."""

    def __init__(self, use_systemd_python: bool = True):
        self.socket_path = os.environ.get("NOTIFY_SOCKET", "")
        self._library = _systemd_notify() if use_systemd_python else None
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.socket_path)

    @property
    def backend(self) -> str:
        if not self.enabled:
            return "none"
        return "systemd-python" if self._library is not None else "socket"

    def notify(self, message: str) -> bool:
        """Send one state string; False when not under systemd or the send failed."""
        if not self.enabled:
            return False
        if self._library is not None:
            return bool(self._library(message))
        address = self.socket_path
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message.encode(), address)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """WatchdogSec in seconds, from ``$WATCHDOG_USEC`` (set by systemd for this process), or None."""
        raw = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if not raw.isdigit() or int(raw) <= 0 or (pid.isdigit() and int(pid) != os.getpid()):
            return None
        return int(raw) / 1e6

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more of the current timeout (start-up, before READY=1)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
