"""On-device face emotion and gender recognition (camera -> Haar -> two int8 CNNs).

This package runs on a Raspberry Pi with numpy, OpenCV and a TFLite interpreter
(``ai_edge_litert`` or ``tflite_runtime``). It must never import TensorFlow.

The Python API (see :mod:`edge.api`)::

    from edge import FaceAnalyzer
    result = FaceAnalyzer().analyze_image("photo.jpg")
    print(result.to_json())
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("FaceAnalyzer", "Face", "ImageResult", "Stream", "analyze_image")


def __getattr__(name: str) -> Any:
    # Imported on first use: `python -m edge --help` and the service should not pay for OpenCV at import.
    if name in _API:
        from edge import api

        return getattr(api, name)
    raise AttributeError(f"module 'edge' has no attribute {name!r}")
