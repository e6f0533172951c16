"""The TFLite interpreter, from ``ai_edge_litert`` (preferred) or ``tflite_runtime``.

Never TensorFlow: the Pi image has neither the room nor the need for it.
``tflite-runtime`` is only a fallback: 2.14 is the last release, it needs
numpy<2 and its int8 kernels are 7-15x slower than ai-edge-litert's.

The runtime's C++ logger writes ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.`` to stderr the first time a process allocates tensors, on
every command. No setting reaches that logger: ``TF_CPP_MIN_LOG_LEVEL=3``
(before the import) leaves the line in place with ai-edge-litert 2.3, and the
Python API has no severity option. So :func:`quiet_notices` points file
descriptor 2 at a temporary file while an interpreter is made and copies back
everything but the runtime's ``INFO:`` lines: its warnings and errors, and
whatever else was written meanwhile, still reach stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
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


NOTICE = b"INFO: "  # the runtime's informational lines (TFLITE_LOG_INFO); WARNING: and ERROR: pass


@contextlib.contextmanager
def quiet_notices() -> Iterator[None]:
    """Drop the TFLite runtime's ``INFO:`` lines written to stderr (fd 2) inside the block; keep the rest."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr at all: nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not line.startswith(NOTICE)]
            if kept:
                os.write(2, b"".join(kept))


def make_interpreter(model_path: str, num_threads: int = 1) -> Any:
    """A ready (tensors allocated) interpreter for ``model_path``, without the runtime's INFO notice."""
    interpreter_cls, _ = interpreter_class()
    with quiet_notices():
        interpreter = interpreter_cls(model_path=str(model_path), num_threads=int(num_threads))
        interpreter.allocate_tensors()
    return interpreter
