"""Class labels in model output order, exactly the paper's strings.

Training (``train_host``), conversion (``quantize``) and the device all read
these lists, so an index means the same class everywhere.
"""

EMOTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDER_LABELS: tuple[str, ...] = ("woman", "man")

LABELS_BY_TASK: dict[str, tuple[str, ...]] = {"emotion": EMOTION_LABELS, "gender": GENDER_LABELS}
TASKS: tuple[str, ...] = tuple(LABELS_BY_TASK)
