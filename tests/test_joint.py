"""The joint emotion + gender model (train_host.joint): built from two tiny random mini-Xceptions, no data."""

from __future__ import annotations

import numpy as np
import pytest

TINY = {"widths": (4, 8, 8, 8), "stem": 4}


@pytest.fixture(scope="module")
def sources():
    from train_host.models import mini_xception
    from train_host.tfquiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(3)
    emotion = mini_xception((32, 32, 1), 7, **TINY)
    gender = mini_xception((32, 32, 1), 2, **TINY)
    rng = np.random.default_rng(0)
    for model in (emotion, gender):  # non-trivial batch-norm statistics, different in each model
        for layer in model.layers:
            if layer.__class__.__name__ == "BatchNormalization":
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                                   rng.normal(0, 0.1, mean.shape), var * rng.uniform(0.5, 2.0, var.shape)])
    faces = rng.uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32)
    return emotion, gender, faces


@pytest.mark.parametrize("tap", [1, 2, 3])
def test_the_emotion_output_is_the_emotion_model_and_the_branch_has_the_gender_weights(sources, tap):
    from train_host.joint import branch_layers, build_joint

    emotion, gender, faces = sources
    expected_emotion = np.asarray(emotion(faces, training=False))
    joint = build_joint(emotion, gender, tap)
    emotion_out, gender_out = (np.asarray(o) for o in joint(faces, training=False))
    np.testing.assert_array_equal(emotion_out, expected_emotion)
    assert gender_out.shape == (5, 2)
    np.testing.assert_allclose(gender_out.sum(axis=1), 1.0, rtol=1e-5)

    branch = branch_layers(joint)
    names = {layer.name for layer in branch}
    assert {f"gender_b{b}_add" for b in range(tap + 1, 5)} <= names
    assert not any(name.startswith(f"gender_b{tap}_") for name in names)  # block tap and below are shared
    copied = 0
    for layer in (layer for layer in branch if layer.weights):
        for mine, theirs in zip(layer.get_weights(), gender.get_layer(layer.name[len("gender_"):]).get_weights(),
                                strict=True):
            np.testing.assert_array_equal(mine, theirs)
            copied += 1
    assert copied > 0
    assert all(layer.trainable for layer in branch)
    assert not any(layer.trainable for layer in emotion.layers)
    trainable = {id(w) for w in joint.trainable_weights}
    assert trainable == {id(w) for layer in branch for w in layer.trainable_weights}


def test_the_tap_must_leave_a_block_for_the_branch(sources):
    from train_host.joint import build_joint

    emotion, gender, _ = sources
    for tap in (0, 4):
        with pytest.raises(ValueError, match="tap"):
            build_joint(emotion, gender, tap)


@pytest.mark.slow
def test_the_int8_joint_file_has_two_outputs_and_its_emotion_half_is_the_emotion_files(sources, tmp_path):
    """``--ranges split``: the emotion output of the joint int8 file equals that of the emotion model's own
    int8 file calibrated on the same faces at the same percentile (what ``python -m quantize`` ships)."""
    from quantize.convert import convert
    from quantize.joint import convert_joint
    from tests.facecrops import varied_faces
    from train_host.joint import Int8Runner, build_joint

    emotion, gender, _ = sources
    joint = build_joint(emotion, gender, 2)
    emotion_faces, gender_faces = varied_faces(60, 32, 1), varied_faces(60, 32, 2)
    (tmp_path / "joint.tflite").write_bytes(convert_joint(joint, emotion_faces, gender_faces))
    (tmp_path / "emotion.tflite").write_bytes(convert(emotion, emotion_faces, range_percentile=99.5))
    both = Int8Runner(tmp_path / "joint.tflite")
    alone = Int8Runner(tmp_path / "emotion.tflite")
    assert sorted(both.outputs) == [2, 7]
    faces = varied_faces(20, 32, 3)
    np.testing.assert_array_equal(both.predict(faces, 7), alone.predict(faces, 7))
    assert both.predict(faces, 2).shape == (20, 2)


@pytest.mark.slow
def test_a_converted_joint_file_is_published_once_per_head_and_the_device_runs_it(sources, tmp_path, models_dir):
    """quantize.joint then quantize.publish_joint into a copy of the models folder: two entries naming one file,
    figures measured through the device's classifier, and a pipeline that answers both tasks in one invoke."""
    import json
    import shutil

    from edge.frame.manifest import Manifest
    from edge.frame.pipeline import ModelSettings, Pipeline
    from quantize import joint as quantize_joint
    from quantize import publish_joint
    from tests.facecrops import varied_faces
    from train_host.joint import build_joint

    emotion, gender, _ = sources
    folder = tmp_path / "run"
    folder.mkdir()
    build_joint(emotion, gender, 2).save(folder / "last.keras")
    data = tmp_path / "data"
    (data / "fer2013").mkdir(parents=True)
    (data / "utkface").mkdir()
    np.savez(data / "fer2013" / "calib.npz", x=varied_faces(70, 48, 1), y=np.arange(70) % 7)
    np.savez(data / "utkface" / "calib.npz", x=varied_faces(40, 48, 2), y=np.arange(40) % 2)
    np.savez(data / "fer2013" / "fer2013_PublicTest.npz", x=varied_faces(35, 48, 3), y=np.arange(35) % 7)
    np.savez(data / "utkface" / "utkface_gender_gray64_test.npz", x=varied_faces(30, 48, 4), y=np.arange(30) % 2,
             age=np.arange(30) * 2)
    assert quantize_joint.main([str(folder / "last.keras"), "--emotion-calib", str(data / "fer2013" / "calib.npz"),
                                "--gender-calib", str(data / "utkface" / "calib.npz"), "--count", "28",
                                "--out", str(folder)]) == 0
    record = json.loads((folder / "joint_int8.json").read_text())
    assert record["command"].startswith("python -m quantize.joint") and record["ranges"] == "split"
    out = tmp_path / "models"
    shutil.copytree(models_dir, out, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
    for entry in [m for m in Manifest.load(out).models if m.joint]:  # this test's own joint file replaces it
        (out / entry.file).unlink(missing_ok=True)
    args = [str(folder / "last.keras"), "--tflite", str(folder / "joint_int8.tflite"), "--data", str(data),
            "--out", str(out)]
    assert publish_joint.main(args) == 0
    manifest = Manifest.load(out)
    emotion_entry, gender_entry = manifest.select_pair("int8")
    assert emotion_entry.file == gender_entry.file == "joint_mini_xception_int8.tflite"
    assert emotion_entry.outputs == gender_entry.outputs == 2 and emotion_entry.flip_average
    assert emotion_entry.input.height == 32 and emotion_entry.provenance["command"] == record["command"]
    subsets = [(a["subset"], a.get("flip_average", False), a["faces"]) for a in gender_entry.accuracy]
    assert subsets == [("all", True, 30), ("adults", True, 21), ("all", False, 30), ("adults", False, 21)]
    assert all(0 <= a["accuracy"] <= 1 for a in emotion_entry.accuracy + gender_entry.accuracy)
    assert (out / "runs" / "joint_mini_xception" / "confusion_gender.png").is_file()
    pipeline = Pipeline.from_models(ModelSettings(dir=str(out)), track=False)
    assert pipeline.joint and pipeline.emotion.size == (32, 32)
    # a .keras that is not the one the file was converted from: refused in one line, the manifest untouched
    other = tmp_path / "other.keras"
    build_joint(emotion, gender, 3).save(other)
    before = (out / "manifest.json").read_text()
    assert publish_joint.main([str(other), *args[1:]]) == 2
    assert (out / "manifest.json").read_text() == before
