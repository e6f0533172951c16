"""The oldest picamera2 the Pi camera source works with, and the one line that says so.

``Picamera2Source`` reads with ``captured_request(wait=...)`` (so a hung camera
times out instead of blocking the frame loop) and releases the camera with
``cancel_all_and_flush()``. Both first appear in picamera2 0.3.20 (upstream
picamera2/picamera2.py: 0.3.19 has ``captured_request(self)`` without
arguments and no ``cancel_all_and_flush``). On 0.3.19 the first read fails
with a TypeError, the close after it with an AttributeError, and systemd
restarts the service forever; so ``--check``, the daemon and the deploy's
preflight refuse an older picamera2 up front. The deploy keeps its own copy
of the floor (``deploy/layout.py``: deploy imports nothing of edge); a test
keeps the two equal.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect

MIN_PICAMERA2 = (0, 3, 20)
UPGRADE = "sudo apt update && sudo apt install --only-upgrade python3-picamera2"


def parse_version(text: str) -> tuple[int, ...]:
    """(0, 3, 20) from '0.3.20', '0.3.20-1', '0.3.20.post1'; the leading numeric parts only."""
    parts: list[int] = []
    for piece in text.replace("-", ".").replace("+", ".").split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:
            break
    return tuple(parts)


def _floor() -> str:
    return ".".join(str(n) for n in MIN_PICAMERA2)


def picamera2_problem() -> str | None:
    """Why the installed picamera2 cannot run the Pi camera source (one line), or None.

    None also when picamera2 is not installed at all (that has its own message).
    The installed distribution's version decides; a picamera2 without
    metadata (a source checkout on the path) is judged by the two calls themselves.
    """
    if importlib.util.find_spec("picamera2") is None:
        return None
    try:
        version = importlib.metadata.version("picamera2")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    if version:
        if parse_version(version) >= MIN_PICAMERA2:
            return None
        found = f"picamera2 {version}"
    else:
        from picamera2 import Picamera2

        capture = getattr(Picamera2, "captured_request", None)
        has_wait = capture is not None and "wait" in inspect.signature(capture).parameters
        if has_wait and hasattr(Picamera2, "cancel_all_and_flush"):
            return None
        found = "this picamera2 (no version metadata)"
    return (f"{found} is older than {_floor()}, which the camera source needs (captured_request(wait=), "
            f"cancel_all_and_flush()); upgrade it: {UPGRADE}")
