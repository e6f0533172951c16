"""Dataset loaders, each on small files written in that format, and clear errors for bad data."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.facecrops import varied_faces
from train_host.data import DataError, detect_format, load, load_train_val

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def faces():
    return varied_faces(40, 48)


def test_npz_with_ages_and_races(tmp_path, faces):
    path = tmp_path / "set.npz"
    np.savez(path, x=faces, y=np.arange(40) % 2, age=np.arange(40) + 5, race=np.arange(40) % 5)
    got = load(path, "gender")
    assert got.x.shape == (40, 48, 48) and got.y.tolist() == (np.arange(40) % 2).tolist()
    assert got.age is not None and got.race is not None


def test_fer_csv_keeps_usage_splits(tmp_path, faces):
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for i, face in enumerate(faces):
            usage = "Training" if i < 30 else ("PublicTest" if i < 35 else "PrivateTest")
            writer.writerow([i % 7, " ".join(map(str, face.ravel())), usage])
    train, val = load_train_val(path, "emotion", (48, 48))
    assert (len(train), len(val)) == (30, 5)
    assert np.array_equal(train.x[3], faces[3]) and train.y[3] == 3
    assert len(load(path, "emotion", split="PrivateTest")) == 5


def test_image_folder_tree_with_label_names(tmp_path, faces):
    for i, face in enumerate(faces[:14]):
        folder = tmp_path / ("happy" if i % 2 else "sad")
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), face)
    got = load(tmp_path, "emotion")
    assert detect_format(tmp_path) == "image-folder"
    assert sorted(set(got.y.tolist())) == [3, 4] and len(got) == 14


def test_utkface_gender_is_flipped_to_our_order(tmp_path, faces):
    for i, face in enumerate(faces[:10]):
        utk_gender = i % 2  # UTKFace: 0 = male
        big = cv2.resize(face, (200, 200))
        cv2.imwrite(str(tmp_path / f"{20 + i}_{utk_gender}_{i % 5}_2017010{i}.jpg.chip.jpg"), big)
    got = load(tmp_path, "gender", size=(64, 64))
    assert got.x.shape == (10, 64, 64)
    order = np.argsort(got.names)
    assert got.y[order].tolist() == [1 - (i % 2) for i in range(10)]  # ours: 1 = man
    assert got.age[order].tolist() == [20 + i for i in range(10)]


def test_imdb_wiki_drops_nan_gender_low_scores_and_second_faces(tmp_path, faces):
    from scipy.io import savemat

    paths, genders, scores, second = [], [], [], []
    for i, face in enumerate(faces[:8]):
        rel = f"0{i % 2}/nm000{i}_rm{i}_1970-01-01_2000.jpg"
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / rel), cv2.resize(face, (120, 120)))
        paths.append(rel)
        genders.append(np.nan if i == 0 else float(i % 2))  # 0 = female in IMDB-WIKI
        scores.append(1.0 if i == 1 else 4.5)  # face_score below 3 is dropped
        second.append(2.0 if i == 2 else np.nan)  # a second face is dropped
    record = {"full_path": np.array([[p] for p in paths], dtype=object).T,
              "gender": np.array([genders]), "face_score": np.array([scores]),
              "second_face_score": np.array([second])}
    savemat(tmp_path / "imdb.mat", {"imdb": record})
    got = load(tmp_path / "imdb.mat", "gender")
    assert len(got) == 5  # 8 - NaN gender - low score - second face
    assert got.y.tolist() == [i % 2 for i in range(3, 8)]


@pytest.mark.parametrize("make, message", [
    (lambda p, f: p / "nothing_here", "no such file or folder"),
    (lambda p, f: (p / "data.txt").write_text("x") and p / "data.txt", "unknown dataset format"),
    (lambda p, f: np.savez(p / "bad.npz", x=f, y=np.full(len(f), 9)) or p / "bad.npz", "labels outside 0..6"),
    (lambda p, f: np.savez(p / "empty.npz", x=f[:0], y=np.zeros(0)) or p / "empty.npz", "no faces"),
    (lambda p, f: np.savez(p / "tiny.npz", x=f[:, :8, :8], y=np.zeros(len(f))) or p / "tiny.npz",
     "need at least 16x16"),
    (lambda p, f: np.savez(p / "nox.npz", images=f, y=np.zeros(len(f))) or p / "nox.npz", "missing array 'x'"),
])
def test_bad_data_is_one_clear_error(tmp_path, faces, make, message):
    path = make(tmp_path, faces)
    with pytest.raises(DataError, match=message):
        load(path, "emotion")


def test_the_commands_turn_bad_data_into_one_line_and_exit_2(tmp_path, faces):
    np.savez(tmp_path / "bad.npz", x=faces, y=np.full(len(faces), 9))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for module, args in (("train_host.train", ["emotion", "--data", str(tmp_path / "bad.npz"), "--out", str(tmp_path)]),
                         ("train_host.evaluate", ["--model", str(tmp_path / "none.keras"), "--data", str(tmp_path)])):
        proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


def test_age_bands_cover_every_age_once_and_give_infants_their_own():
    from train_host.evaluate import AGE_BANDS, group_breakdown

    assert all(sum(lo <= age <= hi for lo, hi in AGE_BANDS) == 1 for age in range(117))
    ages = np.arange(0, 117)
    y = np.zeros_like(ages)
    pred = (ages <= 2).astype(ages.dtype)  # wrong on infants only
    bands = group_breakdown(y, pred, ages, None)["age"]
    assert bands["0-2"] == {"accuracy": 0.0, "samples": 3, "correct": 0}
    assert all(cell["accuracy"] == 1.0 for name, cell in bands.items() if name != "0-2")


def test_group_accuracy_is_printed_from_the_counts_not_rounded_twice():
    from train_host.evaluate import format_report, group_breakdown

    ages = np.full(328, 30, dtype=np.int64)
    y = np.zeros(328, dtype=np.int64)
    pred = np.r_[np.zeros(194), np.ones(134)].astype(np.int64)  # 194 of 328 = 59.146%
    groups = group_breakdown(y, pred, ages, None)
    assert groups["age"]["30-44"]["accuracy"] == 0.5915
    result = {"model": "m", "data": "d", "samples": 328, "accuracy": 0.5915, "per_class": {}, "age": groups["age"]}
    assert "30-44:  59.1% (328 faces)" in [line.strip() for line in format_report(result, []).splitlines()]


def test_class_recall_is_printed_from_the_confusion_counts_not_rounded_twice():
    from train_host.evaluate import format_report, metrics

    y = np.zeros(328, dtype=np.int64)
    probs = np.zeros((328, 2))
    probs[np.arange(328), np.r_[np.zeros(194), np.ones(134)].astype(np.int64)] = 1.0
    result = metrics(y, probs, ["woman", "man"]) | {"model": "m", "data": "d"}
    assert result["per_class"]["woman"]["recall"] == 0.5915
    woman = next(line for line in format_report(result, ["woman", "man"]).splitlines() if "woman" in line)
    assert woman.split()[2] == "59.1%"
