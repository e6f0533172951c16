"""``models/manifest.json``: the contract between the host that makes models and the device.

For each shipped model it records the task, file, sha256, size, labels in
output order, the input spec (shape, dtype, quantization), the preprocessing
(crop margin, ``x = pixel * scale + offset``), measured accuracy and provenance.
The device refuses a model whose bytes or input spec disagree with it.

A joint model (one trunk, two heads: one file with an emotion and a gender
output, ``train_host.joint``) is listed once per task, both entries naming the
same file with ``"outputs": 2``; each entry's labels say which output it reads
(the output with as many classes), so its accuracy, calibration and ``make
eval`` promises are kept per task as for any other entry, and the device runs
one invoke per crop for both (:meth:`Manifest.select_pair`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.frame.calibration import valid_temperature
from edge.frame.labels import LABELS_BY_TASK

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


class ModelError(RuntimeError):
    """A model or manifest that must not be used; the message names the file."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    """What the model's input tensor must be."""

    height: int
    width: int
    channels: int
    dtype: str  # "int8" | "float32"
    scale: float = 0.0  # quantization; 0 for float inputs
    zero_point: int = 0


@dataclass(frozen=True)
class Preprocessing:
    """How a detector box becomes the float input: margin, then ``pixel * scale + offset``."""

    crop_margin: float
    scale: float
    offset: float
    color: str = "gray"


@dataclass(frozen=True)
class ModelEntry:
    """One shipped model as the manifest describes it."""

    name: str
    task: str
    variant: str
    file: str
    sha256: str
    bytes: int
    labels: tuple[str, ...]
    input: InputSpec
    preprocessing: Preprocessing
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    default: bool = False
    # Measured and meant to run with mirror averaging (each face and its mirror image, probabilities
    # averaged): the device does so unless ``[models] flip_average`` says otherwise.
    flip_average: bool = False
    # Confidence calibration: the printed probabilities are ``softmax(log p / temperature)`` of what the model
    # (mirror-averaged where ``flip_average``) outputs; 1 (no field) leaves them as they are. ``temperature_fit``
    # says how it was fitted (data, faces, ECE/NLL before and after), written by ``train_host.calibrate``.
    temperature: float = 1.0
    temperature_fit: dict[str, Any] = field(default_factory=dict)
    # How many outputs the file has: 1, or 2 for a joint model listed once per task (see the module docstring).
    outputs: int = 1

    @property
    def joint(self) -> bool:
        """One head of a multi-output file: its other task's entry names the same file."""
        return self.outputs > 1

    @staticmethod
    def from_json(raw: dict[str, Any], where: str) -> ModelEntry:
        try:
            entry = ModelEntry(
                name=str(raw["name"]), task=str(raw["task"]), variant=str(raw["variant"]), file=str(raw["file"]),
                sha256=str(raw["sha256"]), bytes=int(raw["bytes"]), labels=tuple(raw["labels"]),
                input=InputSpec(**raw["input"]), preprocessing=Preprocessing(**raw["preprocessing"]),
                accuracy=list(raw.get("accuracy", [])), provenance=dict(raw.get("provenance", {})),
                default=bool(raw.get("default", False)), flip_average=raw.get("flip_average", False),
                temperature=raw.get("temperature", 1.0), temperature_fit=dict(raw.get("temperature_fit") or {}),
                outputs=raw.get("outputs", 1),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: malformed model entry ({exc})") from None
        if not isinstance(entry.flip_average, bool):
            raise ModelError(f"{where}: flip_average of {entry.file} is {entry.flip_average!r}, expected true or false")
        if valid_temperature(entry.temperature) is None:
            raise ModelError(f"{where}: temperature of {entry.file} is {entry.temperature!r}, "
                             "expected a number greater than 0")
        if isinstance(entry.outputs, bool) or not isinstance(entry.outputs, int) or entry.outputs < 1:
            raise ModelError(f"{where}: outputs of {entry.file} is {entry.outputs!r}, expected a whole number >= 1")
        if entry.task not in LABELS_BY_TASK:
            raise ModelError(f"{where}: unknown task {entry.task!r} for {entry.file}")
        if entry.labels != LABELS_BY_TASK[entry.task]:
            raise ModelError(f"{where}: labels of {entry.file} are {list(entry.labels)}, "
                             f"expected {list(LABELS_BY_TASK[entry.task])}")
        return entry

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "task": self.task, "variant": self.variant, "file": self.file,
            "sha256": self.sha256, "bytes": self.bytes, "labels": list(self.labels),
            "input": self.input.__dict__, "preprocessing": self.preprocessing.__dict__,
            "accuracy": self.accuracy, "provenance": self.provenance, "default": self.default,
            "flip_average": self.flip_average,
        } | ({"temperature": self.temperature, "temperature_fit": self.temperature_fit}
             if self.temperature != 1.0 or self.temperature_fit else {}) | (
            {"outputs": self.outputs} if self.joint else {})


@dataclass
class Manifest:
    """All models in a models folder, plus the detector cascade."""

    root: Path
    models: list[ModelEntry]
    detector: dict[str, Any]
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # TFLite face detectors (BlazeFace)

    @staticmethod
    def load(models_dir: str | Path) -> Manifest:
        root = Path(models_dir)
        path = root / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: no model manifest (run `python -m quantize ... --out {root}`)") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable manifest ({exc})") from None
        schema = raw.get("schema") if isinstance(raw, dict) else raw
        if schema != SCHEMA_VERSION:
            raise ModelError(f"{path}: unsupported manifest schema {schema!r} (expected {SCHEMA_VERSION})")
        for key, kind in (("models", list), ("detector", dict)):  # wrong shapes: one line, not a traceback
            if not isinstance(raw.get(key, kind()), kind):
                shape = "a list of model entries" if kind is list else "an object with the cascade's file and sha256"
                raise ModelError(f"{path}: \"{key}\" must be {shape}, got {raw[key]!r:.60}")
        if not all(isinstance(m, dict) for m in raw.get("models", [])):
            raise ModelError(f"{path}: \"models\" must be a list of model entries (objects)")
        models = [ModelEntry.from_json(m, str(path)) for m in raw.get("models", [])]
        detectors = raw.get("detectors", {})
        if not isinstance(detectors, dict) or not all(isinstance(v, dict) for v in detectors.values()):
            raise ModelError(f"{path}: \"detectors\" must map names to entries")
        return Manifest(root, models, dict(raw.get("detector", {})), detectors)

    def select(self, task: str, variant: str | None = None, joint: bool = False) -> ModelEntry:
        """The model for ``task``: the given variant, else the one marked default, else int8.

        A joint model's entry is chosen only when ``joint`` is set or ``variant``
        is its name; by default a task gets its own single-output file, as every
        per-task tool (box-mapping fits, detector accuracy) expects.
        """
        candidates = [m for m in self.models if m.task == task]
        if variant:
            candidates = [m for m in candidates if m.variant == variant or m.name == variant]
        if not (joint or any(m.name == variant for m in candidates)):
            candidates = [m for m in candidates if not m.joint]
        if not candidates:
            wanted = f"{variant} " if variant else ""
            raise ModelError(f"{self.root / MANIFEST_NAME}: no {wanted}{task} model listed")
        candidates.sort(key=lambda m: (m.joint != joint, not m.default, m.variant != "int8", m.name))
        return candidates[0]

    def select_pair(self, variant: str | None = None, joint: bool = True) -> tuple[ModelEntry, ModelEntry]:
        """The (emotion, gender) entries the device loads for ``variant``.

        With ``joint`` (the ``[models] joint`` default) and a joint model listed
        for the variant, both entries name that one file, which answers both
        tasks in one invoke per crop; otherwise (no joint model of this
        variant, e.g. float32) each task gets its own file.
        """
        if joint:
            emotion, gender = (self.select(task, variant, joint=True) for task in ("emotion", "gender"))
            if emotion.joint and gender.joint and emotion.file == gender.file:
                return emotion, gender
        emotion, gender = (self.select(task, variant) for task in ("emotion", "gender"))
        return emotion, gender

    def path_of(self, entry: ModelEntry) -> Path:
        return self.root / entry.file

    def verify(self, entry: ModelEntry) -> Path:
        """Check the file's bytes against the manifest; return its path."""
        path = self.path_of(entry)
        if not path.is_file():
            raise ModelError(f"{path}: model file missing")
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise ModelError(f"{path}: sha256 {actual[:12]}... does not match the manifest "
                             f"({entry.sha256[:12]}...); refusing a modified or corrupt model")
        return path

    def cascade_path(self) -> Path:
        """The Haar cascade XML shipped next to the models (checked when the manifest has its sha256)."""
        path = self.root / self.detector.get("file", "haarcascade_frontalface_default.xml")
        if not path.is_file():
            raise ModelError(f"{path}: Haar cascade missing")
        expected = self.detector.get("sha256")
        if expected and sha256_file(path) != expected:
            raise ModelError(f"{path}: sha256 does not match the manifest; refusing a modified cascade")
        return path

    def detector_entry(self, name: str) -> dict[str, Any]:
        """The ``detectors.<name>`` entry (a TFLite face detector)."""
        entry = self.detectors.get(name)
        if entry is None:
            listed = ", ".join(sorted(self.detectors)) or "none"
            raise ModelError(f"{self.root / MANIFEST_NAME}: no detector {name!r} listed (listed: {listed})")
        return entry

    def verify_detector(self, name: str) -> Path:
        """Check a detector model's bytes against its ``detectors`` entry; return its path."""
        return self.verify_detector_file(self.detector_entry(name))

    def verify_detector_file(self, entry: dict[str, Any]) -> Path:
        """Check the bytes of the file an entry names (``file``, ``sha256``); return its path."""
        path = self.root / str(entry.get("file", ""))
        if not entry.get("file") or not path.is_file():
            raise ModelError(f"{path}: detector model file missing")
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            raise ModelError(f"{path}: sha256 {actual[:12]}... does not match the manifest "
                             f"({str(entry.get('sha256'))[:12]}...); refusing a modified or corrupt model")
        return path

    def save(self, path: Path | None = None) -> Path:
        """Write the manifest atomically (temp file, then rename)."""
        target = path or self.root / MANIFEST_NAME
        body = {"schema": SCHEMA_VERSION, "detector": self.detector, "models": [m.to_json() for m in self.models]}
        if self.detectors:
            body["detectors"] = self.detectors
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        tmp.replace(target)
        return target


def default_models_dir() -> Path:
    """The models used when none are named: ``models/`` of a checkout, else those installed with the package.

    A checkout (running from the repository, or an editable install) reads its
    ``models/`` in place; a wheel or ``pip install .`` carries a copy in
    ``edge/_models`` (made at build time by ``setup.py``).
    """
    package = Path(__file__).resolve().parents[1]  # edge/, above edge/frame/
    checkout = package.parent / "models"
    if (package.parent / "pyproject.toml").is_file() and (checkout / MANIFEST_NAME).is_file():
        return checkout
    installed = package / "_models"
    return installed if (installed / MANIFEST_NAME).is_file() else checkout


def default_samples_dir() -> Path:
    """The sample photos: ``samples/`` of a checkout, else the few a wheel ships in ``edge/_samples``."""
    package = Path(__file__).resolve().parents[1]  # edge/, above edge/frame/
    if (package.parent / "pyproject.toml").is_file():
        return package.parent / "samples"
    return package / "_samples"
