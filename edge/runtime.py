"""The TFLite interpreter, from ``ai_edge_litert`` (preferred) or ``tflite_runtime``.

Never TensorFlow: the Pi image has neither the room nor the need for it.
``tflite-runtime`` is only a fallback: 2.14 is the last release, it needs
numpy<2 and its int8 kernels are 7-15x slower than ai-edge-litert's.
"""

from __future__ import annotations

from typing import Any


class RuntimeMissing(ImportError):
    """No TFLite interpreter package is installed."""


def interpreter_class() -> tuple[type, str]:
    """Return (Interpreter class, package name), preferring ai_edge_litert."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        raise RuntimeMissing(
            "no TFLite runtime: pip install ai-edge-litert (or, as a slower fallback, tflite-runtime)"
        ) from None


def make_interpreter(model_path: str, num_threads: int = 1) -> Any:
    """A ready (tensors allocated) interpreter for ``model_path``."""
    interpreter_cls, _ = interpreter_class()
    interpreter = interpreter_cls(model_path=str(model_path), num_threads=int(num_threads))
    interpreter.allocate_tensors()
    return interpreter
