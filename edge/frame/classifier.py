"""One wrapper over the TFLite interpreter for both classifiers.

It reads the input/output quantization from the model itself, refuses a model
whose bytes or input spec disagree with the manifest, and turns uint8 face
crops into class probabilities. int8 inputs are produced with a 256-entry
lookup table (pixel -> int8), so the per-face cost on the Pi is one table
lookup, one ``invoke`` and a dequantize of a handful of outputs.

A joint model (one file, an emotion and a gender output) is loaded as two
classifiers, one per task, the second sharing the first's interpreters
(``share_with``); :meth:`Classifier.predict_pair` then scores a frame's crops
for both tasks in the same invokes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from edge.frame.calibration import apply_temperature, valid_temperature
from edge.frame.manifest import InputSpec, Manifest, ModelEntry, ModelError
from edge.frame.preprocess import CropSpec, normalize, quantize_lut, resize_face
from edge.frame.runtime import make_interpreter

_DTYPES = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32}
# What one face is scored on: the crop, its mirror image, or both averaged (test-time mirror averaging).
View = Literal["plain", "mirror", "both"]
VIEWS: tuple[str, ...] = ("plain", "mirror", "both")
# Batch sizes an interpreter is kept for: a frame's crops (and mirror images) go through one invoke per power of
# two in their count (7 = 4 + 2 + 1), so a Pi running a stream keeps at most four interpreters per model.
BATCH_SIZES = (8, 4, 2, 1)


class Classifier:
    """Classify uint8 gray face crops with one TFLite model.

    Build it with :meth:`from_manifest` so the file is checked first.
    """

    def __init__(self, model_path: str, labels: tuple[str, ...], crop: CropSpec, num_threads: int = 1,
                 expected_input: InputSpec | None = None, flip_average: bool = False, temperature: float = 1.0,
                 share_with: Classifier | None = None):
        self.path = str(model_path)
        self.flip_average = bool(flip_average)
        if valid_temperature(temperature) is None:
            raise ModelError(f"{self.path}: temperature {temperature!r} is not a number greater than 0")
        self.temperature = float(temperature)  # applied to the (averaged) probabilities: see edge.frame.calibration
        self.labels = tuple(labels)
        self.num_threads = int(num_threads)
        if share_with is not None and (share_with.path, share_with.num_threads) != (self.path, self.num_threads):
            raise ValueError(f"{self.path}: can share interpreters only with a classifier of the same file and "
                             f"threads, not {share_with.path} at {share_with.num_threads}")
        try:
            self.interpreter: Any = (share_with.interpreter if share_with
                                     else make_interpreter(self.path, self.num_threads))
        except ImportError:
            raise
        except Exception as exc:  # the runtime raises ValueError/RuntimeError for corrupt flatbuffers
            raise ModelError(f"{self.path}: not a loadable TFLite model ({str(exc).splitlines()[0]})") from None
        inp = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()
        if len(inp) != 1 or not out:
            raise ModelError(f"{self.path}: expected one input and at least one output, got {len(inp)} and {len(out)}")
        self._in = inp[0]
        self._out = self._output_for(out)
        shape = tuple(int(v) for v in self._in["shape"])
        if len(shape) != 4 or shape[0] != 1:
            raise ModelError(f"{self.path}: input shape {list(shape)} is not [1, height, width, channels]")
        self.input_shape = shape
        self.input_dtype = np.dtype(self._in["dtype"])
        self.input_scale, self.input_zero_point = (float(v) for v in self._in["quantization"])
        self.output_scale, self.output_zero_point = (float(v) for v in self._out["quantization"])
        if expected_input is not None:
            self._check_input(expected_input)
        # The manifest's crop size must match the tensor, whatever the manifest says.
        self.crop = CropSpec(size=(shape[1], shape[2]), margin=crop.margin, scale=crop.scale, offset=crop.offset)
        self._lut = None
        if self.input_dtype in (np.int8, np.uint8):
            if self.input_scale <= 0:
                raise ModelError(f"{self.path}: integer input without quantization parameters")
            lut = quantize_lut(crop.scale, crop.offset, self.input_scale, int(self.input_zero_point))
            self._lut = lut if self.input_dtype == np.int8 else (lut.astype(np.int16) + 128).astype(np.uint8)
        # Interpreters by batch size; a joint model's second classifier uses the first's (the same dict).
        self._batched: dict[int, Any] = share_with._batched if share_with else {1: self.interpreter}
        if self.flip_average:  # every face's pair is a batch of 2: made now, not in the first frame's time
            self._interpreter(2)

    def _output_for(self, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        """The output this classifier reads: the only one, or (a joint model) the one with one column per label.

        The converter strips the outputs' names, so a joint file's heads are told
        apart by their class counts (7 emotions, 2 genders).
        """
        matching = [o for o in outputs if int(o["shape"][-1]) == len(self.labels)]
        if len(outputs) == 1 and not matching:
            raise ModelError(f"{self.path}: {int(outputs[0]['shape'][-1])} outputs but {len(self.labels)} labels")
        if len(matching) != 1:
            counts = ", ".join(str(int(o["shape"][-1])) for o in outputs)
            raise ModelError(f"{self.path}: {len(outputs)} outputs of {counts} classes; expected exactly one with "
                             f"{len(self.labels)} for labels {', '.join(self.labels)}")
        return matching[0]

    def _check_input(self, spec: InputSpec) -> None:
        actual = InputSpec(self.input_shape[1], self.input_shape[2], self.input_shape[3], self.input_dtype.name,
                           self.input_scale, int(self.input_zero_point))
        same_shape = (actual.height, actual.width, actual.channels, actual.dtype) == (
            spec.height, spec.width, spec.channels, spec.dtype)
        same_quant = abs(actual.scale - spec.scale) <= 1e-6 * max(1.0, abs(spec.scale)) and (
            actual.zero_point == spec.zero_point)
        if not (same_shape and same_quant):
            raise ModelError(f"{self.path}: input {actual.__dict__} does not match the manifest {spec.__dict__}")

    @classmethod
    def from_manifest(cls, manifest: Manifest, entry: ModelEntry, num_threads: int = 1,
                      flip_average: bool = False, share_with: Classifier | None = None) -> Classifier:
        """Verify ``entry``'s sha256 and input spec, then load it with the entry's temperature.

        ``share_with``: the classifier of the joint model's other head (the
        same file), whose interpreters this one reads its output from.
        """
        path = manifest.verify(entry)
        crop = CropSpec(size=(entry.input.height, entry.input.width), margin=entry.preprocessing.crop_margin,
                        scale=entry.preprocessing.scale, offset=entry.preprocessing.offset)
        return cls(str(path), entry.labels, crop, num_threads, expected_input=entry.input, flip_average=flip_average,
                   temperature=entry.temperature, share_with=share_with)

    def shares_invokes(self, other: Classifier) -> bool:
        """Whether one invoke answers both: ``other`` reads another output of this classifier's interpreters,
        from the same input tensors (the same crop arithmetic)."""
        return other._batched is self._batched and other.crop == self.crop and (
            other._out["index"] != self._out["index"])

    @property
    def size(self) -> tuple[int, int]:
        return self.crop.size

    def prepare(self, face: np.ndarray) -> np.ndarray:
        """uint8 gray face -> the input tensor's dtype and layout (resized first if it is another size)."""
        if face.shape[:2] != self.crop.size:
            face = resize_face(face, self.crop.size)
        if self._lut is not None:
            return self._lut[face].reshape(self.input_shape)
        return normalize(face, self.crop.scale, self.crop.offset).reshape(self.input_shape)

    def predict_one(self, face: np.ndarray, view: View | None = None) -> np.ndarray:
        """Probabilities (float32, sums to 1) for one uint8 gray face: see :meth:`predict`."""
        return self.predict([face], None if view is None else [view])[0]

    def predict(self, faces: Sequence[np.ndarray] | np.ndarray, views: Sequence[View] | None = None) -> np.ndarray:
        """Probabilities for each uint8 gray face, shape (N, classes), read through the temperature after the
        averaging, as the manifest's fit measured them.

        ``views`` says per face what is scored: ``plain`` (the crop), ``mirror``
        (its mirror image) or ``both`` averaged; by default ``both`` when the
        classifier flip-averages, else ``plain``. A stream alternates ``plain``
        and ``mirror`` for a tracked face (the smoothing averages them, see
        :class:`~edge.frame.pipeline.Pipeline`). All crops of the call go
        through as few invokes as the batch sizes allow (:data:`BATCH_SIZES`):
        the mirror pair of one face is one batch-2 invoke, which a 2-thread
        interpreter splits between its threads.
        """
        return self._predict_heads([self], faces, views)[0]

    def predict_pair(self, other: Classifier, faces: Sequence[np.ndarray] | np.ndarray,
                     views: Sequence[View] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """This classifier's and ``other``'s probabilities for the same crops, in the same invokes (a joint model:
        :meth:`shares_invokes` must hold). Each is read through its own temperature; ``views`` as :meth:`predict`,
        the default following this classifier's ``flip_average``."""
        if not self.shares_invokes(other):
            raise ValueError(f"{other.path} does not read another output of {self.path}'s invokes")
        mine, theirs = self._predict_heads([self, other], faces, views)  # a list of two, as a pair
        return mine, theirs

    def _predict_heads(self, heads: Sequence[Classifier], faces: Sequence[np.ndarray] | np.ndarray,
                       views: Sequence[View] | None) -> list[np.ndarray]:
        """Per head, the (N, classes) probabilities of ``faces``: one set of invokes, each head reading its output."""
        if len(faces) == 0:
            return [np.zeros((0, len(head.labels)), dtype=np.float32) for head in heads]
        if views is None:
            views = ["both" if self.flip_average else "plain"] * len(faces)
        elif len(views) != len(faces):
            raise ValueError(f"{len(views)} views for {len(faces)} faces")
        tensors: list[np.ndarray] = []
        spans: list[tuple[int, int]] = []
        for face, view in zip(faces, views):
            if view not in VIEWS:
                raise ValueError(f"view {view!r} is not one of {', '.join(VIEWS)}")
            tensor = self.prepare(face)[0]
            start = len(tensors)
            if view != "mirror":
                tensors.append(tensor)
            if view != "plain":
                tensors.append(tensor[:, ::-1])
            spans.append((start, len(tensors)))
        scored = self._invoke_all(np.stack(tensors), heads)
        return [apply_temperature(np.stack([per_head[start:end].mean(axis=0) for start, end in spans])
                                  .astype(np.float32), head.temperature) for head, per_head in zip(heads, scored)]

    def _invoke_all(self, batch: np.ndarray, heads: Sequence[Classifier]) -> list[np.ndarray]:
        """Per head, normalised probabilities for each input tensor of ``batch`` (N, H, W, C), in batch-size
        chunks."""
        out: list[list[np.ndarray]] = [[] for _ in heads]
        done = 0
        while done < len(batch):
            size = next(b for b in BATCH_SIZES if b <= len(batch) - done)
            interpreter = self._interpreter(size)
            interpreter.set_tensor(self._in["index"], np.ascontiguousarray(batch[done:done + size]))
            interpreter.invoke()
            for per_head, head in zip(out, heads):
                per_head.append(head._read(interpreter))
            done += size
        return [np.concatenate(per_head) for per_head in out]

    def _interpreter(self, size: int) -> Any:
        """The interpreter whose input holds ``size`` crops (made on first use: resized and allocated)."""
        interpreter = self._batched.get(size)
        if interpreter is None:
            interpreter = make_interpreter(self.path, self.num_threads)
            interpreter.resize_tensor_input(self._in["index"], [size, *self.input_shape[1:]])
            interpreter.allocate_tensors()
            self._batched[size] = interpreter
        return interpreter

    def _read(self, interpreter: Any) -> np.ndarray:
        """This classifier's output of the last invoke, dequantized and normalised to sum to 1 per row."""
        raw = interpreter.get_tensor(self._out["index"])
        if self.output_scale > 0:
            probs = (raw.astype(np.float32) - self.output_zero_point) * self.output_scale
        else:
            probs = raw.astype(np.float32)
        probs = np.clip(probs, 0.0, None)
        total = probs.sum(axis=1, keepdims=True)
        uniform = np.full_like(probs, 1.0 / len(self.labels))
        return np.where(total > 0, probs / np.where(total > 0, total, 1.0), uniform)
