"""Output sinks fed with every processed frame (LEDs, display, live view, event log, your own)."""

from edge.outputs.base import Output, OutputError

__all__ = ["Output", "OutputError"]
