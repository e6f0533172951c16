"""Training and evaluation end to end on a tiny set of real faces (plumbing, not accuracy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.facecrops import varied_faces

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A folder with train/test npz files of real faces, gender labels, ages and races."""
    folder = tmp_path_factory.mktemp("data")
    for name, count, seed in (("tiny_train.npz", 96, 1), ("tiny_test.npz", 32, 2)):
        rng = np.random.default_rng(seed)
        np.savez(folder / name, x=varied_faces(count, 64, seed), y=rng.integers(0, 2, count),
                 age=rng.integers(5, 80, count), race=rng.integers(0, 5, count))
    return folder


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    proc = run("train_host.train", "gender", "--data", str(dataset), "--out", str(out), "--epochs", "2",
               "--size", "48", "--batch", "16", "--verbose", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "parameters at 48x48x1" in proc.stdout
    return out


def test_a_run_leaves_checkpoints_log_curves_and_provenance(trained):
    for name in ("best.keras", "last.keras", "log.csv", "curves.png", "run.json"):
        assert (trained / name).is_file(), name
    run_json = json.loads((trained / "run.json").read_text())
    assert run_json["epochs_run"] == 2 and run_json["parameters"] > 40_000
    assert run_json["input"] == [48, 48, 1] and run_json["labels"] == ["woman", "man"]
    assert run_json["input_blur_sigma"] == 0.0  # train and validation are equally sharp here
    assert len((trained / "log.csv").read_text().splitlines()) == 3


def test_evaluate_prints_per_class_figures_groups_and_a_confusion_matrix(trained, dataset, tmp_path):
    proc = run("train_host.evaluate", "--model", str(trained / "best.keras"), "--data", str(dataset),
               "--json", str(tmp_path / "eval.json"), "--plots", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["samples"] == 32 and result["task"] == "gender"
    assert set(result["per_class"]) == {"woman", "man"}
    assert sum(c["samples"] for c in result["age"].values()) == 32
    assert set(result["race"]) == {"White", "Black", "Asian", "Indian", "Others"}
    assert "adults only" in proc.stdout
    assert (tmp_path / "confusion_best.png").stat().st_size > 1000
    assert np.array(result["confusion"]).sum() == 32


def test_a_blurred_training_set_gets_a_blur_matched_model(dataset, tmp_path):
    import cv2

    with np.load(dataset / "tiny_train.npz") as data:
        blurred = np.stack([cv2.GaussianBlur(face, (0, 0), 2.5) for face in data["x"]])
        np.savez(tmp_path / "blurry_train.npz", x=blurred, y=data["y"])
    with np.load(dataset / "tiny_test.npz") as data:
        np.savez(tmp_path / "sharp_test.npz", x=data["x"], y=data["y"])
    out = tmp_path / "run"
    proc = run("train_host.train", "gender", "--data", str(tmp_path), "--out", str(out), "--epochs", "1",
               "--val", "dataset", "--verbose", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the training faces are blurred" in proc.stdout
    sigma = json.loads((out / "run.json").read_text())["input_blur_sigma"]
    assert 1.8 < sigma < 3.2


def test_evaluate_through_the_detector_recuts_faces_as_the_device_does(trained, dataset, tmp_path):
    proc = run("train_host.evaluate", "--model", str(trained / "best.keras"), "--data", str(dataset),
               "--through-detector", "0.2", "--json", str(tmp_path / "eval.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "eval.json").read_text())
    found = result["through_detector"]["faces_found"]
    assert result["through_detector"]["chips"] == 32 and 0 < found <= 32
    assert result["samples"] == found  # figures are on the faces Haar found


def test_init_starts_from_a_trained_models_weights_and_refuses_another_architecture(trained, dataset, tmp_path,
                                                                                   models_dir):
    from train_host.tfquiet import import_keras

    out = tmp_path / "finetune"
    # Learning rate 0: the convolution kernels must come out exactly as the checkpoint had them.
    proc = run("train_host.train", "gender", "--data", str(dataset), "--out", str(out), "--epochs", "1",
               "--size", "48", "--batch", "16", "--lr", "0", "--verbose", "0", "--init", str(trained / "best.keras"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    keras = import_keras()
    before = keras.models.load_model(trained / "best.keras", compile=False)
    after = keras.models.load_model(out / "best.keras", compile=False)
    for name in ("stem_conv1", "stem_conv2"):
        np.testing.assert_array_equal(before.get_layer(name).get_weights()[0], after.get_layer(name).get_weights()[0])
    assert json.loads((out / "run.json").read_text())["init"] == str(trained / "best.keras")
    # The shipped emotion model has 7 outputs: it cannot seed a 2-class gender model.
    proc = run("train_host.train", "gender", "--data", str(dataset), "--out", str(tmp_path / "bad"), "--epochs", "1",
               "--size", "48", "--verbose", "0", "--init", str(models_dir / "emotion_mini_xception.keras"))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "--init" in lines[0] and "class count" in lines[0] and "Traceback" not in proc.stderr


def test_a_run_stopped_and_resumed_ends_where_an_uninterrupted_run_ends(dataset, tmp_path):
    from train_host.tfquiet import import_keras

    common = ("gender", "--data", str(dataset), "--size", "32", "--batch", "16", "--epochs", "3",
              "--schedule", "cosine", "--verbose", "0", "--cutout", "0.2", "--mixup", "0.2", "--class-balance", "0.5",
              "--age-balance", "0.5")
    whole = run("train_host.train", *common, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = run("train_host.train", *common, "--out", str(tmp_path / "pieces"), "--stop-after", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((tmp_path / "pieces" / "run.json").read_text())["complete"] is False
    rest = run("train_host.train", "gender", "--resume", str(tmp_path / "pieces"), "--verbose", "0")
    assert rest.returncode == 0, rest.stderr[-2000:]
    assert "resuming" in rest.stdout and "at epoch 2 of 3" in rest.stdout
    summary = json.loads((tmp_path / "pieces" / "run.json").read_text())
    assert summary["complete"] is True and summary["epochs_run"] == 3 and summary["pieces"] == 2
    assert summary["augment"]["cutout"] == 0.2 and summary["augment"]["mixup"] == 0.2
    assert summary["class_balance"]["power"] == 0.5 and summary["age_balance"] == 0.5
    # the commit each piece started from, the first one as the run's
    assert len(summary["piece_commits"]) == 2 and summary["commit"] == summary["piece_commits"][0]
    # Same batches, same optimizer state, same schedule: the weights agree up to float round-off (oneDNN's
    # multi-threaded sums are not bit-reproducible, so runs differ by ~1e-3 even without a resume).
    keras = import_keras()
    a = keras.models.load_model(tmp_path / "whole" / "last.keras", compile=False)
    b = keras.models.load_model(tmp_path / "pieces" / "last.keras", compile=False)
    for layer in ("stem_conv1", "b4_sep2", "class_conv"):
        np.testing.assert_allclose(a.get_layer(layer).get_weights()[0], b.get_layer(layer).get_weights()[0],
                                   atol=1e-2)
    log_whole = (tmp_path / "whole" / "log.csv").read_text().splitlines()
    log_pieces = (tmp_path / "pieces" / "log.csv").read_text().splitlines()
    assert len(log_whole) == len(log_pieces) == 4


@pytest.mark.parametrize("extra, message", [
    (("--resume", "RUN_OF_OTHER_TASK"), "task="),
    (("--resume", "NOT_A_RUN"), "no resume.json"),
    (("--ferplus-weight", "0.5"), "ferplus_votes"),
    (("--stop-after", "0"), "--stop-after 0"),
    (("--teacher", "EMOTION_MODEL"), "7 classes, this task has 2"),
    (("--teacher", "PAPER_MODEL"), "not a teacher"),
    (("--teacher", "NOT_A_RUN"), "--teacher"),
    (("--teacher", "TRAINED", "--teacher-weight", "1.5"), "--teacher-weight 1.5"),
    (("--temperature", "2"), "need --teacher"),
    (("--cutout", "1"), "--cutout 1.0"),
    (("--mixup", "-0.2"), "--mixup -0.2"),
    (("--class-balance", "-1"), "--class-balance -1.0"),
    (("--age-balance", "-1"), "--age-balance -1.0"),
    (("--resume", "SAME_TASK_RUN", "--age-balance", "0.5"), "trained with --age-balance 0.0"),
    (("--mixup", "nan"), "--mixup nan"),
    (("--resume", "SAME_TASK_RUN", "--mixup", "0.2"), "trained with --mixup 0.0"),
])
def test_bad_resume_folders_and_missing_votes_are_one_line(trained, dataset, tmp_path, extra, message):
    (tmp_path / "not_a_run").mkdir()
    paper = tmp_path / "gender_mini_XCEPTION.21-0.95.hdf5"  # the paper's published file name, never a teacher
    paper.write_bytes((trained / "best.keras").read_bytes())
    paths = {"RUN_OF_OTHER_TASK": str(trained), "NOT_A_RUN": str(tmp_path / "not_a_run"),
             "EMOTION_MODEL": str(ROOT / "models" / "emotion_mini_xception.keras"), "PAPER_MODEL": str(paper),
             "TRAINED": str(trained / "best.keras"), "SAME_TASK_RUN": str(trained)}
    args = [paths.get(a, a) for a in extra]
    task = "emotion" if "RUN_OF_OTHER_TASK" in extra else "gender"  # `trained` is a gender run
    proc = run("train_host.train", task, "--data", str(dataset), "--out", str(tmp_path / "new"), *args,
               "--verbose", "0")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr[-800:]


def test_distillation_blends_the_mirror_averaged_teacher_into_the_targets(trained, dataset, tmp_path):
    from train_host.data import load
    from train_host.distill import blend, teacher_probabilities
    from train_host.evaluate import load_model

    faces = load(dataset / "tiny_train.npz", "gender", split="train")
    teacher = trained / "best.keras"
    probs = teacher_probabilities([teacher], faces, 2)
    model = load_model(teacher)
    mirrored = np.ascontiguousarray(faces.x[:, :, ::-1])
    np.testing.assert_allclose(probs, (model.predict(faces.x) + model.predict(mirrored)) / 2, atol=1e-5)
    mirror = faces.subset(np.arange(len(faces)))
    mirror.x = mirrored
    np.testing.assert_allclose(teacher_probabilities([teacher], mirror, 2), probs, atol=1e-5)  # a mirror: same target
    soft = teacher_probabilities([teacher], faces, 2, temperature=4.0)
    assert (np.abs(soft - 0.5) <= np.abs(probs - 0.5) + 1e-6).all()  # a higher temperature only softens
    assert (soft.argmax(1) == probs.argmax(1)).all()
    onehot = np.eye(2, dtype=np.float32)[faces.y]
    np.testing.assert_allclose(blend(onehot, probs, 0.25), 0.75 * onehot + 0.25 * probs, atol=1e-6)


def test_a_distilled_run_records_its_teacher(trained, dataset, tmp_path):
    out = tmp_path / "student"
    proc = run("train_host.train", "gender", "--data", str(dataset), "--out", str(out), "--epochs", "1",
               "--size", "32", "--batch", "16", "--verbose", "0", "--teacher", str(trained / "best.keras"),
               "--teacher-weight", "0.7", "--temperature", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "distillation: teacher accuracy" in proc.stdout
    teacher = json.loads((out / "run.json").read_text())["teacher"]
    assert teacher["weight"] == 0.7 and teacher["temperature"] == 2.0 and teacher["mirror_averaged"]
    assert teacher["models"][0]["path"] == str(trained / "best.keras") and len(teacher["models"][0]["sha256"]) == 64


def test_evaluate_scores_a_model_as_its_manifest_ships_it_unless_told(dataset, tmp_path, mirrored_models):
    models = mirrored_models(lambda entry: entry["file"] == "gender_mini_xception_int8.tflite")
    model = str(models / "gender_mini_xception_int8.tflite")
    results = {}
    for flag in ((), ("--no-flip-average",), ("--flip-average",)):
        out = tmp_path / f"{len(flag)}{flag[0][2:5] if flag else ''}.json"
        proc = run("train_host.evaluate", "--model", model, "--data", str(dataset), *flag, "--json", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[flag] = json.loads(out.read_text())
        assert ("averaged with its mirror image" in proc.stdout) == results[flag]["flip_average"]
    assert results[()]["flip_average"] and not results[("--no-flip-average",)]["flip_average"]
    assert results[()]["accuracy"] == results[("--flip-average",)]["accuracy"]


def test_a_distilled_run_refuses_a_changed_teacher_on_resume(trained, dataset, tmp_path):
    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes((trained / "best.keras").read_bytes())
    out = tmp_path / "student"
    proc = run("train_host.train", "gender", "--data", str(dataset), "--out", str(out), "--epochs", "2",
               "--size", "32", "--batch", "16", "--verbose", "0", "--teacher", str(teacher), "--stop-after", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    teacher.write_bytes((trained / "last.keras").read_bytes())  # another model under the same name
    proc = run("train_host.train", "gender", "--resume", str(out), "--verbose", "0")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "has changed since the run started" in lines[0], proc.stderr[-800:]


def test_a_run_without_a_teacher_cannot_gain_one_on_resume(trained, dataset, tmp_path):
    out = tmp_path / "plain"
    proc = run("train_host.train", "gender", "--data", str(dataset), "--out", str(out), "--epochs", "2",
               "--size", "32", "--batch", "16", "--verbose", "0", "--stop-after", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run("train_host.train", "gender", "--resume", str(out), "--verbose", "0", "--teacher",
               str(trained / "best.keras"))
    assert proc.returncode == 2 and "keeps its targets" in proc.stderr and "Traceback" not in proc.stderr
