"""On-device face emotion and gender recognition (camera -> Haar -> two int8 CNNs).

This package runs on a Raspberry Pi with numpy, OpenCV and a TFLite interpreter
(``ai_edge_litert`` or ``tflite_runtime``). It must never import TensorFlow.
"""

__version__ = "0.1.0"
