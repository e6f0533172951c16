"""One trunk, two heads: the shipped emotion network with a gender branch on its features (issue 30, item 2).

    python -m train_host.joint train --data ../shared/data/utkface --tap 2 --epochs 6 --out out/joint/b2
    python -m quantize.joint out/joint/b2/last.keras --emotion-calib ../shared/data/fer2013/fer2013_Training.npz \\
        --gender-calib ../shared/data/utkface/utkface_gender_gray64_train.npz --out out/joint/b2
    python -m train_host.joint report --joint out/joint/b2/joint_int8.tflite --data ../shared/data

The device runs two networks per face: the emotion model twice (the face and its
mirror image) and the gender model once. The joint model has one input and two
outputs: the shipped emotion network unchanged (its layers copied and frozen, so
its float output is the shipped model's, bit for bit) and a gender branch that
taps the emotion trunk after residual block ``--tap`` (``b{tap}_add``) and
continues with the gender model's blocks ``tap + 1`` to 4 and its head (layers
``gender_*``, started from the shipped gender model's weights). Only the branch
trains, on UTKFace with the shipped gender run's recipe (label smoothing 0.1,
zoom 0.2, shift 0.1, the same 10% holdout, seed 1234). One joint invoke then
answers both tasks; two (the mirror pair) give both tasks mirror-averaged.

``train`` saves the paper's graph of the joint model after every epoch
(``last.keras``, ``best.keras`` by holdout accuracy, ``log.csv``, ``state.json``);
``--resume`` continues a stopped run from its last epoch (the cosine schedule
continues; the optimizer's moments start again). ``report`` scores an int8 joint
file against the two shipped int8 files: accuracy one invoke and mirror-averaged,
bare invoke time at 1 and 2 threads, and the classifier cost per face.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from train_host.augment import AugmentConfig

GENDER_PREFIX = "gender_"
GENDER_OUTPUT = "gender"
BLOCKS = 4
# The shipped gender run's augmentation (models/manifest.json: gender64z, --zoom 0.2 --shift 0.1).
GENDER_AUGMENT = AugmentConfig(rotation_deg=10, zoom=0.2, shift=0.1, flip=True, brightness=0.1, contrast=0.25)
HOLDOUT_SEED = 1234  # the shipped gender run's seed: the same 10% of UTKFace train is held out


def limit_threads(threads: int = 1) -> None:
    """TensorFlow on ``threads`` threads (call before TensorFlow runs anything)."""
    from train_host.tfquiet import import_keras

    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    import_keras()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised: the environment variables above were in time or not
        pass


def build_joint(emotion: Any, gender: Any, tap: int) -> Any:
    """One input, two outputs (emotion probabilities, gender probabilities) from two mini-Xceptions.

    ``emotion``'s layers are reused as they are and frozen (its output is the
    joint model's first output); the gender branch starts at ``b{tap}_add`` of
    the emotion trunk, has ``gender``'s blocks ``tap + 1``..4 and head, named
    ``gender_*``, and starts from ``gender``'s weights.
    """
    from train_host.models import class_head, residual_block
    from train_host.tfquiet import import_keras

    keras = import_keras()
    if not 1 <= tap < BLOCKS:
        raise ValueError(f"tap {tap}: the branch must start after block 1, 2 or 3")
    x = emotion.get_layer(f"b{tap}_add").output
    for b in range(tap + 1, BLOCKS + 1):
        x = residual_block(x, b, int(gender.get_layer(f"b{b}_sep2").filters), prefix=GENDER_PREFIX)
    classes = int(gender.get_layer("class_conv").filters)
    out = class_head(x, classes, prefix=GENDER_PREFIX, output_name=GENDER_OUTPUT)
    for layer in emotion.layers:
        layer.trainable = False
    joint = keras.Model(emotion.inputs[0], [emotion.outputs[0], out], name=f"joint_b{tap}")
    for layer in branch_layers(joint):
        if layer.weights:
            layer.set_weights(gender.get_layer(layer.name[len(GENDER_PREFIX):]).get_weights())
    return joint


def branch_layers(joint: Any) -> list[Any]:
    """The gender branch's layers (everything the joint model adds to the emotion network)."""
    return [layer for layer in joint.layers if layer.name.startswith(GENDER_PREFIX) or layer.name == GENDER_OUTPUT]


# --- training ----------------------------------------------------------------------------------------


def gender_splits(data: str, seed: int = HOLDOUT_SEED, limit: int | None = None) -> tuple[Any, Any]:
    """UTKFace train minus the shipped run's 10% holdout, and that holdout (as ``train_host.train`` splits it)."""
    from train_host.data import load_train_val, random_split

    train, _test = load_train_val(data, "gender", size=None, seed=seed)
    train, val = random_split(train, 0.1, seed)
    if limit:
        rng = np.random.default_rng(seed)
        train = train.subset(rng.permutation(len(train))[:limit])
        val = val.subset(rng.permutation(len(val))[: max(limit // 4, 32)])
    return train, val


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Fit the gender branch; the paper's graph of the joint model is saved after every epoch."""
    from train_host.models import mini_xception
    from train_host.sequence import AugmentedFaces, canonical_copy
    from train_host.targets import training_targets
    from train_host.tfquiet import import_keras
    from train_host.train import cosine_lr

    limit_threads(args.threads)
    keras = import_keras()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if args.resume and state_path.is_file() else None
    if state is not None:
        for key in ("tap", "epochs", "lr", "batch", "seed", "emotion", "gender", "data", "label_smoothing",
                    "teacher", "teacher_weight"):
            setattr(args, key, state["settings"].get(key, getattr(args, key)))
    keras.utils.set_random_seed(args.seed)
    emotion = keras.models.load_model(args.emotion, compile=False)
    gender = keras.models.load_model(args.gender, compile=False)
    canonical = build_joint(emotion, gender, args.tap)
    # Training graph: the trunk with the residual subsampling split (train_host.train's oneDNN work-around).
    trunk = canonical_copy(emotion, mini_xception(emotion.input_shape[1:], int(emotion.output_shape[-1]),
                                                  subsample_residual=True))
    joint = build_joint(trunk, gender, args.tap)
    start = 0
    if state is not None:
        canonical_copy(keras.models.load_model(out / "last.keras", compile=False), joint)
        start = int(state["next_epoch"])
        print(f"resuming {out} at epoch {start + 1} of {args.epochs}", flush=True)
    model = keras.Model(joint.inputs[0], joint.outputs[1])
    model.compile(optimizer=keras.optimizers.Adam(args.lr),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
                  metrics=["accuracy"])
    train_set, val_set = gender_splits(args.data, HOLDOUT_SEED, args.limit)  # --seed: shuffling, augmentation
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"joint b{args.tap}: {joint.count_params():,} parameters, {trainable:,} trainable (the gender branch); "
          f"{len(train_set)} training faces, {len(val_set)} held out", flush=True)
    size = tuple(emotion.input_shape[1:3])
    targets = training_targets(train_set, 2, 0.0)
    if args.teacher:
        from train_host.distill import blend, teacher_probabilities

        teacher = teacher_probabilities([args.teacher], train_set, 2)
        print(f"distillation: {args.teacher} (mirror-averaged, {100 * (teacher.argmax(1) == train_set.y).mean():.2f}% "
              f"on the training faces) blended in with weight {args.teacher_weight}", flush=True)
        targets = blend(targets, teacher, args.teacher_weight)
    train_seq = AugmentedFaces(train_set, targets, size, args.batch, GENDER_AUGMENT,
                               seed=args.seed, shuffle=True, start_epoch=start)
    val_seq = AugmentedFaces(val_set, training_targets(val_set, 2, 0.0), size, 256, None, seed=args.seed,
                             shuffle=False)
    settings = {key: getattr(args, key) for key in ("tap", "epochs", "lr", "batch", "seed", "emotion", "gender",
                                                    "data", "label_smoothing", "teacher", "teacher_weight")}
    best = state["best"] if state is not None else -1.0
    begin = time.time()

    def save(epoch: int, logs: dict[str, Any] | None) -> None:
        nonlocal best
        canonical_copy(joint, canonical)
        tmp = out / "last.tmp.keras"
        canonical.save(tmp)
        os.replace(tmp, out / "last.keras")
        val_accuracy = float((logs or {}).get("val_accuracy", 0.0))
        if val_accuracy > best:
            best = val_accuracy
            canonical.save(tmp)
            os.replace(tmp, out / "best.keras")
        seconds = (state or {}).get("seconds", 0.0) + time.time() - begin
        state_path.write_text(json.dumps({"settings": settings, "next_epoch": epoch + 1, "best": best,
                                          "seconds": round(seconds, 1)}, indent=2) + "\n")

    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch: cosine_lr(args.lr, epoch, args.epochs)),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=state is not None),
        keras.callbacks.LambdaCallback(on_epoch_end=save),
    ]
    if args.stop_after:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: setattr(
            model, "stop_training", e + 1 - start >= args.stop_after)))
    model.fit(train_seq, validation_data=val_seq, epochs=args.epochs, initial_epoch=start, callbacks=callbacks,
              verbose=args.verbose)
    summary = json.loads(state_path.read_text()) if state_path.is_file() else {}
    print(f"saved {out / 'last.keras'} (holdout best {best:.4f}); {summary.get('seconds', 0):.0f} s of training",
          flush=True)
    return summary


# --- int8 files: accuracy and time --------------------------------------------------------------------


class Int8Runner:
    """Run a full-int8 TFLite file (one gray input, one or more softmax outputs) on uint8 faces, in batches."""

    def __init__(self, path: str | Path, threads: int = 1, batch: int = 1):
        from edge.frame.preprocess import PIXEL_OFFSET, PIXEL_SCALE, quantize_lut
        from edge.frame.runtime import make_interpreter

        self.path = Path(path)
        self.interpreter = make_interpreter(str(path), threads)
        self.input = self.interpreter.get_input_details()[0]
        self.size = (int(self.input["shape"][1]), int(self.input["shape"][2]))
        if batch != 1:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.size, 1])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
        self.batch = batch
        scale, zero = self.input["quantization"]
        self.lut = quantize_lut(PIXEL_SCALE, PIXEL_OFFSET, scale, int(zero))
        # Outputs by class count (names are stripped from the shipped files): {classes: detail}.
        self.outputs = {int(d["shape"][-1]): d for d in self.interpreter.get_output_details()}

    def predict(self, faces: np.ndarray, classes: int) -> np.ndarray:
        """Probabilities (N, classes) for uint8 faces already at the input size."""
        detail = self.outputs[classes]
        scale, zero = detail["quantization"]
        result = np.empty((len(faces), classes), np.float32)
        for start in range(0, len(faces), self.batch):
            chunk = self.lut[faces[start:start + self.batch]][..., None]
            filled = len(chunk)
            if filled < self.batch:
                chunk = np.concatenate([chunk, np.zeros((self.batch - filled, *chunk.shape[1:]), chunk.dtype)])
            self.interpreter.set_tensor(self.input["index"], chunk)
            self.interpreter.invoke()
            q = self.interpreter.get_tensor(detail["index"])[:filled].astype(np.float32)
            result[start:start + filled] = np.clip((q - zero) * scale, 0.0, None)
        # Each invoke's probabilities sum to 1 before any averaging, as edge.frame.classifier reads them.
        return result / np.maximum(result.sum(axis=1, keepdims=True), 1e-12)

    def accuracy(self, faces: np.ndarray, labels: np.ndarray, classes: int) -> dict[str, float]:
        """Accuracy with one invoke and mirror-averaged (the face and its mirror image, probabilities averaged)."""
        one = self.predict(faces, classes)
        mirror = self.predict(np.ascontiguousarray(faces[:, :, ::-1]), classes)
        return {"one": round(float((one.argmax(1) == labels).mean()), 4),
                "mirror": round(float(((one + mirror).argmax(1) == labels).mean()), 4)}


def invoke_ms(paths: dict[str, Path], threads: int, repeats: int = 300, warmup: int = 30,
              batch2: tuple[str, ...] = ()) -> dict[str, float]:
    """Median ms of one bare ``invoke()`` per model, interleaved model by model over ``repeats`` rounds.

    Names in ``batch2`` are also timed with the input resized to two faces (key ``NAME@2``).
    """
    from edge.frame.runtime import make_interpreter

    interpreters = {}
    for name, path in paths.items():
        interpreters[name] = make_interpreter(str(path), threads)
        if name in batch2:
            two = make_interpreter(str(path), threads)
            detail = two.get_input_details()[0]
            two.resize_tensor_input(detail["index"], [2, *detail["shape"][1:]])
            two.allocate_tensors()
            interpreters[f"{name}@2"] = two
    rng = np.random.default_rng(0)
    for interpreter in interpreters.values():
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], rng.integers(-128, 128, detail["shape"]).astype(detail["dtype"]))
        for _ in range(warmup):
            interpreter.invoke()
    times: dict[str, list[float]] = {name: [] for name in interpreters}
    for _ in range(repeats):
        for name, interpreter in interpreters.items():
            begin = time.perf_counter()
            interpreter.invoke()
            times[name].append(time.perf_counter() - begin)
    return {name: round(1000 * float(np.median(values)), 4) for name, values in times.items()}


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy, size and time of the joint int8 file against the two shipped int8 files."""
    from train_host.augment import resize_batch
    from train_host.data import load

    data = Path(args.data)
    fer = load(data / "fer2013" / "fer2013_PublicTest.npz", "emotion")
    utk = load(data / "utkface" / "utkface_gender_gray64_test.npz", "gender")
    joint = Int8Runner(args.joint, batch=64)
    size = joint.size
    fer_x, utk_x = resize_batch(fer.x, size), resize_batch(utk.x, size)
    models = Path(args.models)
    shipped = {"emotion": models / "emotion_mini_xception_int8.tflite",
               "gender": models / "gender_mini_xception_int8.tflite"}
    result: dict[str, Any] = {
        "joint": str(args.joint),
        "kib": round(Path(args.joint).stat().st_size / 1024, 1),
        "emotion": joint.accuracy(fer_x, fer.y, 7),
        "gender": joint.accuracy(utk_x, utk.y, 2),
        "shipped": {"emotion": Int8Runner(shipped["emotion"], batch=64).accuracy(fer_x, fer.y, 7),
                    "gender": Int8Runner(shipped["gender"], batch=64).accuracy(utk_x, utk.y, 2),
                    "kib": {task: round(path.stat().st_size / 1024, 1) for task, path in shipped.items()}},
        "faces": {"emotion": len(fer), "gender": len(utk)},
    }
    print(f"accuracy: joint emotion {result['emotion']}, gender {result['gender']}; "
          f"shipped emotion {result['shipped']['emotion']}, gender {result['shipped']['gender']}", flush=True)
    timing = {}
    for threads in (1, 2):
        ms = invoke_ms({"joint": Path(args.joint), **shipped}, threads, args.repeats, batch2=("joint", "emotion"))
        timing[threads] = {
            "invoke_ms": ms,
            # Per face, both tasks, as each would run on the device (emotion mirror-averaged):
            "shipped_per_face_ms": round(2 * ms["emotion"] + ms["gender"], 4),
            "shipped_batch2_per_face_ms": round(ms["emotion@2"] + ms["gender"], 4),
            "joint_per_face_ms": round(2 * ms["joint"], 4),
            "joint_batch2_per_face_ms": round(ms["joint@2"], 4),
            # The joint file on the face, the shipped emotion file on its mirror image (their emotion outputs
            # agree when the joint file's emotion half is quantized as the emotion file: --ranges split).
            "joint_plus_emotion_per_face_ms": round(ms["joint"] + ms["emotion"], 4),
        }
        print(f"{threads} thread(s): {timing[threads]}", flush=True)
    result["timing"] = timing
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train_host.joint", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="fit the gender branch on the frozen emotion trunk")
    fit.add_argument("--data", default="../shared/data/utkface", help="UTKFace split files (train and test npz)")
    fit.add_argument("--emotion", default="models/emotion_mini_xception.keras")
    fit.add_argument("--gender", default="models/gender_mini_xception.keras")
    fit.add_argument("--tap", type=int, default=2, help="the branch starts after this emotion block (1-3)")
    fit.add_argument("--out", required=True)
    fit.add_argument("--epochs", type=int, default=6)
    fit.add_argument("--lr", type=float, default=1e-3, help="cosine decay from this to 0 over --epochs")
    fit.add_argument("--batch", type=int, default=64)
    fit.add_argument("--label-smoothing", type=float, default=0.1)
    fit.add_argument("--teacher", metavar="MODEL.keras",
                     help="distillation: blend this model's mirror-averaged probabilities on the training faces "
                          "into the targets (e.g. the shipped gender model)")
    fit.add_argument("--teacher-weight", type=float, default=0.5, help="with --teacher: its weight in the targets")
    fit.add_argument("--seed", type=int, default=HOLDOUT_SEED,
                     help="shuffling and augmentation (the holdout is always the shipped run's, seed 1234)")
    fit.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    fit.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this invocation")
    fit.add_argument("--limit", type=int, help="use only this many training faces (smoke tests)")
    fit.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras progress output")
    rep = commands.add_parser("report", help="accuracy, size and invoke time of an int8 joint file vs the shipped")
    rep.add_argument("--joint", required=True, help="the joint int8 .tflite (python -m quantize.joint)")
    rep.add_argument("--data", default="../shared/data", help="folder with fer2013/ and utkface/")
    rep.add_argument("--models", default="models", help="folder with the shipped int8 files")
    rep.add_argument("--repeats", type=int, default=300)
    rep.add_argument("--json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from train_host.data import DataError

    args = parse_args(argv)
    try:
        train(args) if args.command == "train" else report(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
