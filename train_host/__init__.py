"""Host-side (PC) training and evaluation. TensorFlow/Keras lives here only."""

import os

# Quiet TensorFlow's start-up chatter; users still see warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
