"""At most one log line per period for a repeating problem, with a count of the ones held back.

An image folder emptied under a looping service once gave ~40,000 warning
lines a second; the journal (and the SD card behind it) should get one line,
then ``... (N more like this in the last 10 s)`` at most every period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttle:
    """``log(message)``: emit now if the period has passed since the last line, else count it."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, period_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger, self.level, self.period_s, self.clock = logger, level, period_s, clock
        self._last = float("-inf")
        self.held = 0  # lines held back since the last one logged

    def log(self, message: str) -> bool:
        """Log ``message`` (returns True) or hold it back (False)."""
        now = self.clock()
        if now - self._last < self.period_s:
            self.held += 1
            return False
        more = f" ({self.held} more like this in the last {self.period_s:.0f} s)" if self.held else ""
        self.logger.log(self.level, "%s%s", message, more)
        self._last, self.held = now, 0
        return True
