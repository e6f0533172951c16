"""Face detectors behind one interface: ``haar`` (the paper's, the default) and ``blazeface`` (MediaPipe's).

:func:`make_detector` builds the backend the ``[detector]`` settings name from
the files ``models/manifest.json`` lists and checks;
:class:`~edge.detectors.schedule.ScanSchedule` decides, frame by frame, between
a whole-frame scan and a search near the tracked faces for any of them.
"""

from __future__ import annotations

from edge.detectors.base import Box, Detector, FaceBox, crop_box
from edge.detectors.schedule import ScanSchedule
from edge.detectors.settings import BACKENDS, BlazeFaceSettings, DetectorSettings
from edge.frame.manifest import Manifest, ModelError

__all__ = ["BACKENDS", "BlazeFaceSettings", "Box", "Detector", "DetectorSettings", "FaceBox", "ScanSchedule",
           "crop_box", "make_detector"]


def make_detector(settings: DetectorSettings, manifest: Manifest) -> Detector:
    """The detector ``settings.backend`` names, its model files verified against ``manifest``."""
    if settings.backend == "haar":
        from edge.detectors.haar import HaarDetector

        return HaarDetector(manifest.cascade_path(), settings)
    if settings.backend == "blazeface":
        from edge.detectors.blazeface import BlazeFaceDetector

        return BlazeFaceDetector.from_manifest(manifest, settings.blazeface)
    raise ModelError(f"unknown detector backend {settings.backend!r} (known: {', '.join(BACKENDS)})")
