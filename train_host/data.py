"""Dataset loaders for the formats users actually have.

Every loader returns a :class:`FaceSet`: 8-bit grayscale faces ``x`` (N, H, W),
integer labels ``y`` in the project's label order (``edge.frame.labels``) and, when
the source has them, ``age`` and ``race`` for per-group breakdowns.

Formats:
- our ``.npz`` (``x``, ``y``, optional ``age``/``race``/``names``), or a folder of them;
- the original Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``);
- an image-folder tree, one subfolder per class (label names or indices);
- UTKFace files ``age_gender_race_datetime.jpg`` (UTKFace gender 0 = male; ours 0 = woman);
- IMDB-WIKI (``imdb.mat``/``wiki.mat`` and the crop folders; gender 0 = female).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.frame.labels import LABELS_BY_TASK
from edge.frame.preprocess import resize_face

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".tif", ".tiff")
UNKNOWN_RACE = 255
ADULT_AGE_DEFAULT = 18
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")
# Age bands (inclusive) of the per-band figures (train_host.evaluate) and of --age-balance (train_host.targets).
# Infants (0-2) have a band of their own: folded into 0-12 they hid how differently 3-12-year-olds score
# (the gender model shipped in November 2026: about 60% on infants, 77% on ages 3-12; see the README).
AGE_BANDS = ((0, 2), (3, 12), (13, 17), (18, 29), (30, 44), (45, 59), (60, 200))


class DataError(ValueError):
    """A dataset that cannot be used; the message is one line for the user."""


@dataclass
class FaceSet:
    """Faces and labels of one split."""

    x: np.ndarray
    y: np.ndarray
    source: str
    age: np.ndarray | None = None
    race: np.ndarray | None = None
    names: np.ndarray | None = field(default=None, repr=False)
    # FER+ crowd votes (N, 10) in FER+ order, 255 where FER+ has none; see ferplus_targets().
    ferplus_votes: np.ndarray | None = field(default=None, repr=False)
    # True for rows that copy an image of the dataset's test split (FER-2013 Training vs PublicTest).
    test_dup: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: np.ndarray) -> FaceSet:
        """The faces at ``index`` (a boolean mask or integer indices)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return FaceSet(self.x[index], self.y[index], self.source, pick(self.age), pick(self.race), pick(self.names),
                       pick(self.ferplus_votes), pick(self.test_dup))

    def validate(self, task: str) -> FaceSet:
        """Check shapes and label range for ``task``; raise :class:`DataError` naming the problem."""
        num_classes = len(LABELS_BY_TASK[task])
        if len(self) == 0:
            raise DataError(f"{self.source}: no faces")
        if self.x.ndim != 3 or self.x.shape[0] != len(self):
            raise DataError(f"{self.source}: x has shape {self.x.shape}, expected (N, H, W) with N = {len(self)}")
        if self.x.dtype != np.uint8:
            raise DataError(f"{self.source}: x is {self.x.dtype}, expected uint8 pixels")
        if self.x.shape[1] < 16 or self.x.shape[2] < 16:
            raise DataError(f"{self.source}: images are {self.x.shape[2]}x{self.x.shape[1]}, need at least 16x16")
        bad = (self.y < 0) | (self.y >= num_classes)
        if bad.any():
            raise DataError(
                f"{self.source}: {int(bad.sum())} labels outside 0..{num_classes - 1} for {task} "
                f"(e.g. {int(self.y[bad][0])})"
            )
        return self


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return image


def read_gray(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """Read an image file as 8-bit gray, resized to ``size`` (h, w) when given."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        image = (image.astype(np.uint16) >> 8).astype(np.uint8)
    image = _gray(image)
    return resize_face(image, size) if size else image


def _stack(images: Sequence[np.ndarray], source: str) -> np.ndarray:
    if not images:
        raise DataError(f"{source}: no faces")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{source}: images differ in size ({len(shapes)} sizes); pass --size to resize them")
    return np.stack(images).astype(np.uint8)


# --- npz ---------------------------------------------------------------------------------------------


def load_npz(path: Path) -> FaceSet:
    """Our ``.npz``: ``x`` uint8 (N, H, W) or (N, H, W, 1), ``y``; optional ``age``, ``race``, ``names``."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz ({exc})") from None
    with data:
        for key in ("x", "y"):
            if key not in data.files:
                raise DataError(f"{path}: missing array '{key}' (has {', '.join(data.files) or 'nothing'})")
        x = data["x"]
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        optional = {k: data[k] if k in data.files else None for k in ("age", "race", "names", "ferplus_votes")}
        optional["test_dup"] = data["publictest_dup"].astype(bool) if "publictest_dup" in data.files else None
        return FaceSet(x, data["y"].astype(np.int64), str(path), **optional)


# --- Kaggle fer2013.csv ------------------------------------------------------------------------------

FER_USAGES = ("Training", "PublicTest", "PrivateTest")


def load_fer_csv(path: Path, usage: str | None = None) -> FaceSet:
    """The original Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``), optionally one ``Usage`` only."""
    xs: list[np.ndarray] = []
    ys: list[int] = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected emotion,pixels,Usage")
        for line, row in enumerate(reader, start=2):
            if usage is not None and row.get("Usage") != usage:
                continue
            pixels = np.array(row["pixels"].split(), dtype=np.int64)
            side = int(round(np.sqrt(pixels.size)))
            if side * side != pixels.size or pixels.size == 0:
                raise DataError(f"{path}:{line}: {pixels.size} pixels is not a square image")
            if pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"{path}:{line}: pixel values outside 0..255")
            xs.append(pixels.reshape(side, side).astype(np.uint8))
            ys.append(int(row["emotion"]))
    name = f"{path}[{usage}]" if usage else str(path)
    return FaceSet(_stack(xs, name), np.array(ys, dtype=np.int64), name)


# --- image-folder tree -------------------------------------------------------------------------------


def _class_index(folder: str, labels: Sequence[str]) -> int | None:
    name = folder.lower()
    if name in labels:
        return labels.index(name)
    aliases = {"female": "woman", "women": "woman", "male": "man", "men": "man", "surprised": "surprise",
               "fearful": "fear", "disgusted": "disgust"}
    if aliases.get(name) in labels:
        return labels.index(aliases[name])
    if name.isdigit() and int(name) < len(labels):
        return int(name)
    return None


def load_image_folder(path: Path, task: str, size: tuple[int, int] | None = None) -> FaceSet:
    """A tree with one subfolder per class, named by label (``happy``) or index (``3``)."""
    labels = LABELS_BY_TASK[task]
    xs: list[np.ndarray] = []
    ys: list[int] = []
    names: list[str] = []
    subfolders = sorted(p for p in path.iterdir() if p.is_dir())
    unknown = [p.name for p in subfolders if _class_index(p.name, labels) is None]
    if unknown:
        raise DataError(f"{path}: subfolder(s) {', '.join(unknown)} are not {task} classes ({', '.join(labels)})")
    for folder in subfolders:
        label = _class_index(folder.name, labels)
        assert label is not None  # every unknown folder was refused above
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                xs.append(read_gray(file, size))
                ys.append(label)
                names.append(f"{folder.name}/{file.name}")
    return FaceSet(_stack(xs, str(path)), np.array(ys, dtype=np.int64), str(path), names=np.array(names))


# --- UTKFace -----------------------------------------------------------------------------------------

UTK_NAME = re.compile(r"^(\d+)_(\d)_(\d)_\d+")


def load_utkface(path: Path, size: tuple[int, int] | None = (64, 64)) -> FaceSet:
    """UTKFace files ``age_gender_race_datetime.jpg[.chip.jpg]``; UTK gender 0 = male -> our 1 = man."""
    xs, ys, ages, races, names = [], [], [], [], []
    for file in sorted(path.rglob("*")):
        match = UTK_NAME.match(file.name)
        if not match or file.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        age, gender, race = (int(g) for g in match.groups())
        if gender not in (0, 1):
            continue
        xs.append(read_gray(file, size))
        ys.append(1 - gender)
        ages.append(age)
        races.append(race if race < len(RACE_NAMES) else UNKNOWN_RACE)
        names.append(file.name)
    if not xs:
        raise DataError(f"{path}: no UTKFace files named age_gender_race_datetime.jpg")
    return FaceSet(
        _stack(xs, str(path)), np.array(ys, dtype=np.int64), str(path),
        age=np.array(ages, dtype=np.int64), race=np.array(races, dtype=np.int64), names=np.array(names),
    )


# --- IMDB-WIKI ---------------------------------------------------------------------------------------

MIN_FACE_SCORE = 3.0  # the paper's code keeps faces scoring above 3 with no second face


def load_imdb_wiki(mat_path: Path, size: tuple[int, int] | None = (64, 64), limit: int | None = None) -> FaceSet:
    """IMDB-WIKI metadata (``imdb.mat``/``wiki.mat``) with its crop folder beside it.

    Gender 0 = female in the metadata, which is already our 0 = woman. Drops NaN
    gender, face scores below 3 and images with a second face, as the paper's code did.
    """
    from scipy.io import loadmat

    try:
        meta = loadmat(str(mat_path))
    except (OSError, ValueError) as exc:
        raise DataError(f"{mat_path}: not a readable .mat file ({exc})") from None
    key = mat_path.stem  # 'imdb' or 'wiki'
    if key not in meta:
        raise DataError(f"{mat_path}: no '{key}' struct inside (is this imdb.mat or wiki.mat?)")
    record = meta[key][0, 0]
    full_path = [str(p[0]) for p in record["full_path"][0]]
    gender = record["gender"][0].astype(np.float64)
    score = record["face_score"][0].astype(np.float64)
    second = record["second_face_score"][0].astype(np.float64)
    keep = ~np.isnan(gender) & (score > MIN_FACE_SCORE) & np.isnan(second)
    root = mat_path.parent
    xs, ys, names = [], [], []
    for index in np.flatnonzero(keep):
        file = root / full_path[index]
        if not file.exists():
            continue
        xs.append(read_gray(file, size))
        ys.append(int(gender[index]))
        names.append(full_path[index])
        if limit and len(xs) >= limit:
            break
    if not xs:
        raise DataError(f"{mat_path}: no usable faces (crop files missing next to it, or all filtered out)")
    return FaceSet(_stack(xs, str(mat_path)), np.array(ys, dtype=np.int64), str(mat_path), names=np.array(names))


# --- dispatch ----------------------------------------------------------------------------------------


def find_data(root: Path, name: str) -> Path | None:
    """The dataset file called ``name`` anywhere under ``root`` (manifests name files, not their folders)."""
    if (root / name).is_file():
        return root / name
    return next(iter(sorted(root.rglob(name))), None)


def detect_format(path: Path) -> str:
    """Name the format of ``path``: npz, npz-dir, fer-csv, image-folder, utkface or imdb-wiki."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz":
            return "npz"
        if suffix == ".csv":
            return "fer-csv"
        if suffix == ".mat":
            return "imdb-wiki"
        raise DataError(f"{path}: unknown dataset format '{suffix}' (use .npz, fer2013.csv, a .mat or a folder)")
    if any(path.glob("*.npz")):
        return "npz-dir"
    if any(path.glob("*.mat")):
        return "imdb-wiki-dir"
    if any(path.glob("*.csv")):
        return "csv-dir"
    if any(UTK_NAME.match(p.name) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        return "utkface"
    if any(p.is_dir() for p in path.iterdir()):
        return "image-folder"
    raise DataError(f"{path}: no dataset found (no .npz, .csv, .mat, UTKFace files or class subfolders)")


def load(path: str | Path, task: str, size: tuple[int, int] | None = None, split: str | None = None) -> FaceSet:
    """Load one dataset file or folder for ``task``; ``split`` picks a FER ``Usage`` or a train/test file."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "npz":
        faces = load_npz(path)
    elif kind == "fer-csv":
        faces = load_fer_csv(path, split)
    elif kind == "imdb-wiki":
        faces = load_imdb_wiki(path, size or (64, 64))
    elif kind == "utkface":
        faces = load_utkface(path, size or (64, 64))
    elif kind in ("npz-dir", "csv-dir", "imdb-wiki-dir"):
        return load(pick_split_file(path, split or "test"), task, size, split)
    else:
        faces = load_image_folder(_split_folder(path, split), task, size)
    return faces.validate(task)


TRAIN_WORDS = ("train",)
VAL_WORDS = ("publictest", "val", "valid", "test")


def pick_split_file(folder: Path, split: str) -> Path:
    """In a folder of dataset files, the one for ``split`` ('train' or 'test')."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".npz", ".csv", ".mat"))
    if any(p.suffix.lower() in (".csv", ".mat") for p in files) and len(files) == 1:
        return files[0]
    words = TRAIN_WORDS if split.lower().startswith("train") else VAL_WORDS
    for word in words:
        for file in files:
            if word in file.stem.lower().replace("_", "").replace("-", "") and (
                word != "test" or "train" not in file.stem.lower()
            ):
                return file
    raise DataError(f"{folder}: no {split} file among {', '.join(p.name for p in files) or 'nothing'}")


def _split_folder(path: Path, split: str | None) -> Path:
    if split is None:
        return path
    wanted = TRAIN_WORDS if split.lower().startswith("train") else VAL_WORDS
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        if sub.name.lower() in wanted:
            return sub
    return path


def random_split(faces: FaceSet, fraction: float, seed: int) -> tuple[FaceSet, FaceSet]:
    """Stratified split: (1 - fraction) for training, ``fraction`` held out."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(faces), dtype=bool)
    for label in np.unique(faces.y):
        index = np.flatnonzero(faces.y == label)
        rng.shuffle(index)
        held[index[: int(round(len(index) * fraction))]] = True
    return faces.subset(~held), faces.subset(held)


def load_train_val(path: str | Path, task: str, size: tuple[int, int] | None, seed: int = 0,
                   val_fraction: float = 0.1) -> tuple[FaceSet, FaceSet]:
    """Training and validation splits from whatever ``path`` holds.

    A folder of split files (our npz) or a FER CSV gives the dataset's own
    splits; a single file or tree is split ``val_fraction`` off, stratified.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind in ("npz-dir", "csv-dir") or (kind == "fer-csv"):
        if kind == "fer-csv" or kind == "csv-dir":
            csv_path = path if kind == "fer-csv" else pick_split_file(path, "train")
            return (load(csv_path, task, size, "Training"), load(csv_path, task, size, "PublicTest"))
        return load(pick_split_file(path, "train"), task, size), load(pick_split_file(path, "test"), task, size)
    if kind == "image-folder" and {p.name.lower() for p in path.iterdir() if p.is_dir()} & {"train", "test", "val"}:
        return load(path, task, size, "train"), load(path, task, size, "test")
    return random_split(load(path, task, size), val_fraction, seed)
