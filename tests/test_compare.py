"""train_host.compare: our shipped models and a published Keras model, same faces, one table."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.facecrops import varied_faces

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs the host extras (Keras)")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from train_host.tfquiet import import_keras

    keras = import_keras()
    root = tmp_path_factory.mktemp("compare")
    data = root / "data" / "utkface"
    data.mkdir(parents=True)
    rng = np.random.default_rng(3)
    n = 40
    np.savez(data / "utkface_gender_gray64_test.npz", x=varied_faces(n, size=64, seed=5),
             y=rng.integers(0, 2, n), age=rng.integers(5, 70, n), race=rng.integers(0, 5, n))
    anchors = root / "anchors"
    anchors.mkdir()
    inputs = keras.Input((64, 64, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    paper = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    paper.save(anchors / "gender_mini_XCEPTION.h5")
    (anchors / "gender_mini_XCEPTION.h5").rename(anchors / "gender_mini_XCEPTION.00-0.50.hdf5")
    return root, data


def test_every_model_on_chips_adults_and_through_the_detector(setup, models_dir, capsys):
    from train_host.compare import main
    from train_host.data import load
    from train_host.evaluate import evaluate, load_model

    root, data = setup
    out = root / "rows.json"
    assert main(["--models", str(models_dir), "--data", str(root / "data"), "--anchors", str(root / "anchors"),
                 "--tasks", "gender", "--margins", "0,0.2", "--json", str(out),
                 "--markdown", str(root / "t.md")]) == 0
    rows = json.loads(out.read_text())
    models = list(dict.fromkeys(r["model"] for r in rows))
    assert models == ["ours int8", "ours int8 joint file (mirror-averaged, as shipped)",
                      "ours int8 joint file, one invoke", "ours float32", "paper (published Keras)"]
    assert {r["subset"] for r in rows} == {"chips", "adults", "detector m0", "detector m0.2"}
    faces = load(data / "utkface_gender_gray64_test.npz", "gender", split="test")
    adults = int((faces.age >= 18).sum())
    for r in rows:
        assert r["of"] == 40 and 0 <= r["faces"] <= 40
        assert r["accuracy"] is None or 0 <= r["accuracy"] <= 1
        if r["subset"] == "adults":
            assert r["faces"] == adults
    # The chips figure is exactly what train_host.evaluate reports for the same file.
    int8 = next(r for r in rows if r["model"] == "ours int8" and r["subset"] == "chips")
    direct = evaluate(load_model(int8["file"]), faces, ("woman", "man"))["accuracy"]
    assert int8["accuracy"] == direct
    table = capsys.readouterr().out
    assert "| paper (published Keras) | 64x64 |" in table and "detector m0.2" in table
    assert (root / "t.md").read_text() == table


def test_a_model_shipped_mirror_averaged_is_scored_so_and_once_plain(setup, mirrored_models, tmp_path):
    from train_host.compare import main
    from train_host.data import load
    from train_host.evaluate import evaluate, load_model

    root, data = setup
    models = mirrored_models(lambda entry: entry["task"] == "gender" and entry["variant"] == "int8")
    out = tmp_path / "rows.json"
    assert main(["--models", str(models), "--data", str(root / "data"), "--tasks", "gender", "--margins", "",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert list(dict.fromkeys(r["model"] for r in rows)) == [
        "ours int8 (mirror-averaged, as shipped)", "ours int8, one invoke",
        "ours int8 joint file (mirror-averaged, as shipped)", "ours int8 joint file, one invoke", "ours float32"]
    faces = load(data / "utkface_gender_gray64_test.npz", "gender", split="test")
    chips = {r["model"]: r["accuracy"] for r in rows if r["subset"] == "chips"}
    model = load_model(models / "gender_mini_xception_int8.tflite")
    assert chips["ours int8 (mirror-averaged, as shipped)"] == evaluate(model, faces, ("woman", "man"),
                                                                          flip_average=True)["accuracy"]
    assert chips["ours int8, one invoke"] == evaluate(model, faces, ("woman", "man"))["accuracy"]
    joint = load_model(models / "joint_mini_xception_int8.tflite", ("woman", "man"))  # the gender head
    assert chips["ours int8 joint file, one invoke"] == evaluate(joint, faces, ("woman", "man"))["accuracy"]


@pytest.mark.parametrize("args, message", [
    (["--anchors", "/no/such/folder"], "--anchors"),
    (["--margins", "wide"], "--margins"),
    (["--tasks", "age"], "unknown task"),
])
def test_bad_input_is_one_line_and_exit_2(setup, models_dir, capsys, args, message):
    from train_host.compare import main

    root, _ = setup
    assert main(["--models", str(models_dir), "--data", str(root / "data"), "--tasks", "gender", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_missing_test_file_is_named(setup, models_dir, tmp_path, capsys):
    from train_host.compare import main

    assert main(["--models", str(models_dir), "--data", str(tmp_path), "--tasks", "emotion"]) == 2
    assert "fer2013_PublicTest.npz" in capsys.readouterr().err


def test_quick_is_one_margin_with_phases_and_a_bar(setup, models_dir, capsys):
    from train_host.compare import main

    root, _ = setup
    out = root / "quick.json"
    assert main(["--models", str(models_dir), "--data", str(root / "data"), "--anchors", str(root / "anchors"),
                 "--tasks", "gender", "--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {r["subset"] for r in rows} == {"chips", "adults", "detector m0"}
    err = capsys.readouterr().err
    # 5 contenders (the joint file's gender head twice) x (chips, adults, m0) plus one re-cut: all take 64x64 faces
    assert "[1/16]" in err and "[16/16] gender / paper (published Keras) / detector m0" in err
    assert "100%" in err and "steps" in err.splitlines()[-1]
    assert main(["--models", str(models_dir), "--data", str(root / "data"), "--tasks", "gender", "--quick",
                 "--margins", "0.2", "--json", str(out)]) == 0
    assert {r["subset"] for r in json.loads(out.read_text())} == {"chips", "adults", "detector m0.2"}
