"""The TFLite classifier wrapper and the manifest contract: the device refuses what does not match."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from edge.frame.calibration import apply_temperature
from edge.frame.classifier import Classifier
from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
from edge.frame.manifest import Manifest, ModelError
from edge.frame.pipeline import ModelSettings, Pipeline


@pytest.fixture(scope="module")
def manifest(models_dir):
    return Manifest.load(models_dir)


@pytest.fixture(scope="module")
def faces(face_crops):
    """Real face crops from the samples, cut as the device cuts them."""
    return face_crops


@pytest.fixture
def models_copy(models_dir, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(models_dir, target, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
    return target


def test_manifest_lists_int8_and_float_models_for_both_tasks(manifest):
    for task, labels in (("emotion", EMOTION_LABELS), ("gender", GENDER_LABELS)):
        int8 = manifest.select(task, "int8")
        assert int8.input.dtype == "int8" and int8.labels == labels and int8.default
        assert manifest.select(task).name == int8.name  # int8 is what the device uses by default
        assert manifest.select(task, "float32").input.dtype == "float32"


@pytest.mark.parametrize("task", ["emotion", "gender"])
def test_probabilities_for_real_faces(manifest, faces, task):
    clf = Classifier.from_manifest(manifest, manifest.select(task, "int8"))
    probs = clf.predict(faces)
    assert probs.shape == (len(faces), len(clf.labels))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


@pytest.mark.parametrize("task", ["emotion", "gender"])
def test_int8_follows_the_float_model_on_real_faces(manifest, faces, task):
    int8 = Classifier.from_manifest(manifest, manifest.select(task, "int8")).predict(faces)
    float32 = Classifier.from_manifest(manifest, manifest.select(task, "float32")).predict(faces)
    assert np.abs(int8 - float32).mean() < 0.05


def test_int8_input_comes_from_the_models_own_quantization(manifest, faces):
    clf = Classifier.from_manifest(manifest, manifest.select("emotion", "int8"))
    tensor = clf.prepare(faces[0])
    assert tensor.dtype == np.int8 and tensor.shape == clf.input_shape
    x = faces[0].astype(np.float64) * clf.crop.scale + clf.crop.offset
    expected = np.clip(np.round(x / clf.input_scale) + clf.input_zero_point, -128, 127)
    assert np.array_equal(tensor.reshape(faces[0].shape), expected)


def _loaded_entry(raw: dict, task: str, joint: bool) -> dict:
    """The raw manifest entry of ``task`` the pipeline loads (int8; the joint file's head, or the task's own file)."""
    return next(m for m in raw["models"] if m["task"] == task and m["variant"] == "int8"
                and (m.get("outputs", 1) > 1) == joint)


@pytest.mark.parametrize("joint", [True, False])
def test_a_tampered_model_is_refused_naming_the_file(models_copy, joint):
    entry = Manifest.load(models_copy).select_pair("int8", joint)[0]
    assert entry.joint == joint
    path = models_copy / entry.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"{entry.file}.*does not match the manifest"):
        Pipeline.from_models(ModelSettings(dir=str(models_copy), joint=joint))


@pytest.mark.parametrize("joint", [True, False])
def test_an_input_spec_that_disagrees_with_the_manifest_is_refused(models_copy, joint):
    raw = json.loads((models_copy / "manifest.json").read_text())
    entry = _loaded_entry(raw, "gender", joint)
    entry["input"]["zero_point"] += 3
    (models_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=f"{entry['file']}: input .* does not match the manifest"):
        Pipeline.from_models(ModelSettings(dir=str(models_copy), joint=joint))


@pytest.mark.parametrize("joint", [True, False])
def test_a_corrupt_model_with_a_matching_checksum_is_refused(models_copy, joint):
    import hashlib

    raw = json.loads((models_copy / "manifest.json").read_text())
    entry = _loaded_entry(raw, "emotion", joint)
    garbage = b"TFL3" + bytes(range(256)) * 8
    (models_copy / entry["file"]).write_bytes(garbage)
    entry["sha256"] = hashlib.sha256(garbage).hexdigest()
    (models_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="not a loadable TFLite model"):
        Pipeline.from_models(ModelSettings(dir=str(models_copy), joint=joint))


def test_a_missing_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(ModelError, match="no model manifest"):
        Pipeline.from_models(ModelSettings(dir=str(tmp_path)))


def test_threads_setting_reaches_the_interpreter(manifest, faces):
    one = Classifier.from_manifest(manifest, manifest.select("gender", "int8"), num_threads=1)
    two = Classifier.from_manifest(manifest, manifest.select("gender", "int8"), num_threads=2)
    assert (one.num_threads, two.num_threads) == (1, 2)
    assert np.allclose(one.predict(faces), two.predict(faces), atol=1e-6)


def test_flip_averaging_averages_the_face_and_its_mirror_image(manifest, faces):
    entry = manifest.select("emotion", "int8")
    plain = Classifier.from_manifest(manifest, dataclasses.replace(entry, temperature=1.0))
    flipped = Classifier.from_manifest(manifest, entry, flip_average=True)
    mirrors = [np.ascontiguousarray(face[:, ::-1]) for face in faces]
    # the two answers averaged, then read through the manifest's temperature (fitted on averaged answers)
    expected = apply_temperature((plain.predict(faces) + plain.predict(mirrors)) / 2, entry.temperature)
    assert np.allclose(flipped.predict(faces), expected, atol=1e-6)
    assert np.allclose(flipped.predict(faces), flipped.predict(mirrors), atol=1e-6)  # a mirror scores the same
    assert not np.allclose(plain.predict(faces), plain.predict(mirrors), atol=1e-3)  # which the plain model does not


@pytest.mark.parametrize("setting, flips", [("none", (False, False)), ("emotion", (True, False)),
                                            ("gender", (False, True)), ("both", (True, True))])
def test_the_flip_average_setting_picks_the_classifiers(models_dir, setting, flips):
    # per task with the two single-task files; the joint file: tests/test_joint_device.py
    pipeline = Pipeline.from_models(ModelSettings(dir=str(models_dir), flip_average=setting, joint=False),
                                    track=False)
    assert (pipeline.emotion.flip_average, pipeline.gender.flip_average) == flips


@pytest.mark.parametrize("setting, flips", [("auto", (True, False)), ("none", (False, False)),
                                            ("gender", (False, True))])
def test_auto_flip_averaging_follows_the_manifest_and_the_config_overrides_it(mirrored_models, setting, flips):
    models = mirrored_models(lambda entry: entry["task"] == "emotion")
    pipeline = Pipeline.from_models(ModelSettings(dir=str(models), flip_average=setting, joint=False), track=False)
    assert (pipeline.emotion.flip_average, pipeline.gender.flip_average) == flips


def test_a_manifest_flip_average_that_is_not_a_boolean_is_refused(models_copy):
    manifest = json.loads((models_copy / "manifest.json").read_text())
    manifest["models"][0]["flip_average"] = "false"  # a string would read as true
    (models_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="flip_average of .* is 'false', expected true or false"):
        Manifest.load(models_copy)


def test_an_unknown_flip_average_value_is_one_line():
    from edge.settings import ConfigError, from_mapping

    with pytest.raises(ConfigError, match=r"models.flip_average: expected one of 'auto', 'none', 'emotion'"):
        from_mapping(ModelSettings, {"flip_average": "yes"}, "models")


def test_views_score_the_crop_its_mirror_image_or_both(manifest, faces):
    entry = manifest.select("emotion", "int8")
    clf = Classifier.from_manifest(manifest, entry, flip_average=True)
    face, mirror = faces[0], np.ascontiguousarray(faces[0][:, ::-1])
    plain = clf.predict([face], ["plain"])[0]
    assert np.allclose(clf.predict([face], ["mirror"])[0], clf.predict([mirror], ["plain"])[0], atol=1e-6)
    assert not np.allclose(plain, clf.predict([face], ["mirror"])[0], atol=1e-3)
    # "both" averages the two views' probabilities, then reads them through the temperature
    raw = Classifier.from_manifest(manifest, dataclasses.replace(entry, temperature=1.0))
    expected = apply_temperature((raw.predict([face])[0] + raw.predict([mirror])[0]) / 2, entry.temperature)
    assert np.allclose(clf.predict([face], ["both"])[0], expected, atol=1e-6)
    assert np.allclose(clf.predict([face])[0], expected, atol=1e-6)  # a flip-averaging classifier's default


def test_a_crowd_goes_through_few_invokes_with_each_faces_own_answer(manifest, faces):
    """Eleven faces (22 crops with their mirror images) run as batches of 8, 8, 4 and 2, each face's answer
    the one it gets alone; the batch interpreters are kept for the next frame."""
    crowd = (faces * 4)[:11]
    clf = Classifier.from_manifest(manifest, manifest.select("emotion", "int8"), num_threads=2, flip_average=True)
    alone = np.stack([clf.predict_one(face) for face in crowd])
    together = clf.predict(crowd)
    assert together.shape == (11, len(EMOTION_LABELS))
    assert np.allclose(together, alone, atol=1e-6)
    assert set(clf._batched) == {1, 2, 4, 8}  # 2 made at load (flip averaging), the others on first use
    mixed = clf.predict(crowd[:3], ["plain", "both", "mirror"])
    assert np.allclose(mixed[1], alone[1], atol=1e-6)


def test_views_that_do_not_fit_the_faces_are_refused(manifest, faces):
    clf = Classifier.from_manifest(manifest, manifest.select("gender", "int8"))
    with pytest.raises(ValueError, match="2 views for 1 faces"):
        clf.predict(faces[:1], ["plain", "plain"])
    with pytest.raises(ValueError, match="view 'sideways' is not one of plain, mirror, both"):
        clf.predict(faces[:1], ["sideways"])  # type: ignore[list-item]


def test_an_unknown_stream_flip_value_is_one_line():
    from edge.settings import ConfigError, from_mapping

    with pytest.raises(ConfigError, match=r"models.stream_flip: expected one of 'alternate', 'both', got 'sometimes'"):
        from_mapping(ModelSettings, {"stream_flip": "sometimes"}, "models")
