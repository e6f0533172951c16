"""Resumable training: a checkpoint of everything a run needs to go on, written after every epoch.

``RUN/resume.keras`` is the training graph with its optimizer state (Adam's
moments and step count), ``RUN/resume.json`` the settings the run started
with, the next epoch, the learning rate and the state of the callbacks that
carry state across epochs (best checkpoint, LR plateau, early stopping).
``python -m train_host.train ... --resume RUN`` reloads both and continues
with the same schedule; the batch order and augmentation are functions of
``(seed, epoch)`` (``train_host.sequence``), so the resumed epochs see the
same batches an uninterrupted run would have. Both files are written to a
temporary name and renamed, so a run killed mid-write keeps the previous
epoch's checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from train_host.data import DataError

MODEL_FILE = "resume.keras"
STATE_FILE = "resume.json"
# Settings that define what is trained; a resume must not change them.
IDENTITY_KEYS = ("task", "model", "size", "num_classes")
# Callback attributes that persist across epochs, per callback class name.
CALLBACK_STATE = {
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
    "EarlyStopping": ("wait", "best"),
    "BestCanonicalCheckpoint": ("best", "best_epoch"),
}


def _plain(value):
    """JSON-safe copy of a callback attribute (numpy scalars and infinities included)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return value
    return value if value == value and abs(value) != float("inf") else str(value)


def _unplain(value):
    return float(value) if isinstance(value, str) and value in ("inf", "-inf", "nan") else value


def load_state(run: Path) -> dict:
    """The saved state of ``run``; one-line :class:`DataError` when it is not a resumable run."""
    state_path, model_path = run / STATE_FILE, run / MODEL_FILE
    if not run.is_dir():
        raise DataError(f"--resume {run}: no such run folder")
    if not state_path.is_file() or not model_path.is_file():
        raise DataError(f"--resume {run}: no {STATE_FILE}/{MODEL_FILE} there (not a run of this trainer, "
                        "or it stopped before its first epoch ended)")
    try:
        state = json.loads(state_path.read_text())
        state["settings"], state["next_epoch"]  # noqa: B018 - presence check
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"--resume {run}: {STATE_FILE} is unreadable or incomplete") from None
    return state


def check_same_run(state: dict, settings: dict, run: Path) -> None:
    """Refuse to resume with settings that define another model (task, architecture, size, classes).

    ``settings`` holds only what the command gave explicitly; what it leaves out comes from the run.
    """
    saved = state["settings"]
    for key in IDENTITY_KEYS:
        if key in saved and key in settings and saved[key] != settings[key]:
            raise DataError(f"--resume {run}: that run trains {key}={saved.get(key)!r}, this command asks for "
                            f"{settings.get(key)!r}")


def load_model(run: Path):
    """The training graph with its optimizer state."""
    try:
        return keras.models.load_model(run / MODEL_FILE)
    except Exception as exc:  # Keras raises many types for a damaged file
        raise DataError(f"--resume {run}: {MODEL_FILE} cannot be loaded ({str(exc).splitlines()[0][:160]})") from None


class SaveResumeState(keras.callbacks.Callback):
    """After every epoch: the training model with its optimizer, and the callbacks' state."""

    def __init__(self, run: Path, settings: dict, stateful: list[keras.callbacks.Callback]):
        super().__init__()
        self.run = Path(run)
        self.settings = settings
        self.stateful = stateful

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        callbacks = {}
        for callback in self.stateful:
            name = type(callback).__name__
            callbacks[name] = {n: _plain(getattr(callback, n)) for n in CALLBACK_STATE.get(name, ())
                               if hasattr(callback, n)}
        state = {"settings": self.settings, "next_epoch": epoch + 1, "callbacks": callbacks,
                 "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))}
        tmp_model = self.run / (MODEL_FILE + ".tmp.keras")
        self.model.save(tmp_model)
        os.replace(tmp_model, self.run / MODEL_FILE)
        tmp_state = self.run / (STATE_FILE + ".tmp")
        tmp_state.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp_state, self.run / STATE_FILE)


class RestoreCallbackState(keras.callbacks.Callback):
    """Put saved callback state back after the callbacks reset themselves in ``on_train_begin``.

    Must come after the callbacks it restores in the callback list.
    """

    def __init__(self, saved: dict, stateful: list[keras.callbacks.Callback]):
        super().__init__()
        self.saved = saved
        self.stateful = stateful

    def on_train_begin(self, logs: dict | None = None) -> None:
        for callback in self.stateful:
            for name, value in self.saved.get(type(callback).__name__, {}).items():
                setattr(callback, name, _unplain(value))
