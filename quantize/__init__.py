"""Keras -> TFLite (float32 and full-integer int8), parity and size reports, and the model manifest."""
