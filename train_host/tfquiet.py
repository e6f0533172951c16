"""Import TensorFlow/Keras without its start-up chatter.

TensorFlow 2.21 prints absl INFO lines ("oneDNN custom operations are on",
"All log messages before absl::InitializeLog() ...") from C++ at import time,
and ``TF_CPP_MIN_LOG_LEVEL`` no longer silences them. Users of our commands
should see our one-line messages, so stderr (file descriptor 2) is pointed at
/dev/null for the duration of the import only. Python exceptions still
propagate; set ``TF_CPP_MIN_LOG_LEVEL=0`` to see everything.
"""

from __future__ import annotations

import os
import sys


def import_keras():
    """``import keras`` (and TensorFlow under it) quietly; returns the module.

    Also registers this project's custom layers, which saved models need to load.
    """
    if "keras" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") == "0":
        import keras

        import train_host.models  # noqa: F401  (registers ReflectPad2D)

        return keras
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras
        import tensorflow  # noqa: F401  (the backend; its kernels print on first load)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import train_host.models  # noqa: F401  (registers ReflectPad2D)

    return keras
