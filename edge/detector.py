"""Compatibility import: the detectors live in :mod:`edge.detectors` (``haar``, ``blazeface``)."""

from edge.detectors.haar import HaarDetector
from edge.detectors.settings import DetectorSettings

__all__ = ["DetectorSettings", "HaarDetector"]
