"""The shipped joint model on the device: one file, one invoke per crop, both tasks (issue 30, item 2).

Real faces from the samples, the shipped files; the joint file's emotion head
is the shipped emotion file's network and ranges, so its outputs must be that
file's bit for bit.
"""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edge.frame.classifier import Classifier
from edge.frame.manifest import Manifest, ModelError
from edge.frame.pipeline import ModelSettings, Pipeline
from edge.settings import ConfigError, from_mapping


@pytest.fixture(scope="module")
def manifest(models_dir):
    return Manifest.load(models_dir)


@pytest.fixture(scope="module")
def faces(face_crops):
    """Real face crops from the samples (Haar boxes: the emotion mapping is the box itself)."""
    assert len(face_crops) >= 4
    return face_crops


class CountingInterpreter:
    """An interpreter that counts its invokes (everything else passes through)."""

    def __init__(self, inner):
        self.inner, self.invokes = inner, 0

    def invoke(self):
        self.invokes += 1
        return self.inner.invoke()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def count_invokes(classifier: Classifier) -> list[CountingInterpreter]:
    """Wrap every interpreter the classifier (and any classifier sharing them) will use, now and later."""
    for size in (1, 2, 4, 8):
        classifier._interpreter(size)
    wrapped = {size: CountingInterpreter(interpreter) for size, interpreter in classifier._batched.items()}
    classifier._batched.update(wrapped)
    return list(wrapped.values())


def test_the_default_pair_is_the_joint_file_and_each_task_alone_is_its_own_file(manifest):
    emotion, gender = manifest.select_pair("int8")
    assert emotion.joint and gender.joint and emotion.file == gender.file
    assert (emotion.task, gender.task) == ("emotion", "gender")
    assert emotion.flip_average and gender.flip_average
    alone = manifest.select_pair("int8", joint=False)
    assert [e.name for e in alone] == [manifest.select(t, "int8").name for t in ("emotion", "gender")]
    assert not any(e.joint for e in alone)
    # no joint float32 file: that variant keeps its two files whatever [models] joint says
    assert not any(e.joint for e in manifest.select_pair("float32", joint=True))


def test_the_joint_emotion_head_is_the_shipped_emotion_file_bit_for_bit(manifest, faces):
    emotion_entry, gender_entry = manifest.select_pair("int8")
    joint_emotion = Classifier.from_manifest(manifest, emotion_entry, flip_average=True)
    joint_gender = Classifier.from_manifest(manifest, gender_entry, flip_average=True, share_with=joint_emotion)
    shipped = Classifier.from_manifest(manifest, manifest.select("emotion", "int8"), flip_average=True)
    assert joint_emotion.temperature == pytest.approx(shipped.temperature, abs=0.01)
    e_probs, g_probs = joint_emotion.predict_pair(joint_gender, faces)
    shipped_raw = Classifier(shipped.path, shipped.labels, shipped.crop, flip_average=True).predict(faces)
    joint_raw = Classifier(joint_emotion.path, joint_emotion.labels, joint_emotion.crop,
                           flip_average=True).predict(faces)
    np.testing.assert_array_equal(joint_raw, shipped_raw)  # before any temperature: the same network, same ranges
    assert e_probs.shape == (len(faces), 7) and g_probs.shape == (len(faces), 2)
    np.testing.assert_allclose(g_probs.sum(axis=1), 1.0, atol=1e-5)
    separate_gender = Classifier.from_manifest(manifest, manifest.select("gender", "int8"), flip_average=True)
    agree = (separate_gender.predict(faces).argmax(1) == g_probs.argmax(1)).mean()
    assert agree >= 0.75, f"the joint gender head agrees with the shipped gender file on {agree:.0%} of real faces"


def test_one_invoke_answers_both_heads_with_what_each_would_answer_alone(manifest, faces):
    emotion_entry, gender_entry = manifest.select_pair("int8")
    emotion = Classifier.from_manifest(manifest, emotion_entry, num_threads=2, flip_average=True)
    gender = Classifier.from_manifest(manifest, gender_entry, num_threads=2, flip_average=True, share_with=emotion)
    assert emotion.shares_invokes(gender) and gender.shares_invokes(emotion)
    alone = emotion.predict(faces), gender.predict(faces)
    counters = count_invokes(emotion)
    together = emotion.predict_pair(gender, faces[:4])
    assert sum(c.invokes for c in counters) == 1  # 4 faces and their mirror images: one batch-8 invoke
    np.testing.assert_array_equal(together[0], alone[0][:4])
    np.testing.assert_array_equal(together[1], alone[1][:4])
    views = ["plain", "mirror", "both", "plain"]
    e_views, g_views = emotion.predict_pair(gender, faces[:4], views)
    np.testing.assert_array_equal(e_views, emotion.predict(faces[:4], views))
    np.testing.assert_array_equal(g_views, gender.predict(faces[:4], views))


def test_a_classifier_of_another_file_cannot_share(manifest):
    emotion = Classifier.from_manifest(manifest, manifest.select("emotion", "int8"))
    with pytest.raises(ValueError, match="same file"):
        Classifier.from_manifest(manifest, manifest.select("gender", "int8"), share_with=emotion)
    gender = Classifier.from_manifest(manifest, manifest.select("gender", "int8"))
    assert not emotion.shares_invokes(gender)
    with pytest.raises(ValueError, match="does not read another output"):
        emotion.predict_pair(gender, [np.zeros((64, 64), np.uint8)])


def test_a_joint_file_with_no_output_for_the_labels_is_refused_in_one_line(manifest):
    entry = manifest.select("emotion", "int8", joint=True)
    with pytest.raises(ModelError, match=r"2 outputs of (7, 2|2, 7) classes; expected exactly one with 3") as err:
        Classifier(str(manifest.path_of(entry)), ("a", "b", "c"), Classifier.from_manifest(manifest, entry).crop)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("outputs", [0, "two", True, 1.5])
def test_a_bad_outputs_field_is_refused(models_dir, tmp_path, outputs):
    target = tmp_path / "models"
    shutil.copytree(models_dir, target, ignore=shutil.ignore_patterns("*.keras", "runs", "reports", "*.tflite"))
    raw = json.loads((target / "manifest.json").read_text())
    next(m for m in raw["models"] if m.get("outputs"))["outputs"] = outputs
    (target / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="outputs of joint_mini_xception_int8.tflite is"):
        Manifest.load(target)


def test_the_pipeline_crops_once_and_invokes_once_per_frame_for_both_tasks(models_dir, samples):
    frame = cv2.imread(str(samples / "two_people.jpg"))
    joint = Pipeline.from_models(ModelSettings(dir=str(models_dir)), track=False)
    separate = Pipeline.from_models(ModelSettings(dir=str(models_dir), joint=False), track=False)
    assert joint.joint and joint.emotion.path == joint.gender.path
    assert not separate.joint and separate.emotion.path != separate.gender.path
    counters = count_invokes(joint.emotion)
    result = joint.process(frame, independent=True)
    faces = len(result.faces)
    assert faces == 2
    assert sum(c.invokes for c in counters) == 1  # two faces and their mirror images: one batch-4 invoke
    reference = separate.process(frame, independent=True)
    assert [f.box for f in result.faces] == [f.box for f in reference.faces]
    for mine, theirs in zip(result.faces, reference.faces):
        # the same crop (emotion's box mapping) through the same emotion network: the same probabilities
        assert mine.emotion_scores == pytest.approx(theirs.emotion_scores, abs=0.02)
        assert mine.emotion == theirs.emotion
        assert mine.gender == theirs.gender
    assert result.timings_ms["gender"] < result.timings_ms["emotion"]


def test_joint_is_a_config_key(models_dir):
    assert from_mapping(ModelSettings, {"joint": False}, "models").joint is False
    assert ModelSettings().joint is True
    with pytest.raises(ConfigError, match="models.joint"):
        from_mapping(ModelSettings, {"joint": "sometimes"}, "models")


def test_the_host_tools_read_the_head_their_labels_name(manifest, faces):
    """``make eval``, ``calibrate`` and ``evaluate --task`` load a joint file per entry: the labels pick the head,
    and with them its manifest entry's mirror averaging and temperature."""
    from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
    from train_host.evaluate import load_model

    emotion_entry, gender_entry = manifest.select_pair("int8")
    path = manifest.path_of(emotion_entry)
    as_gender, as_emotion, unnamed = load_model(path, GENDER_LABELS), load_model(path, EMOTION_LABELS), load_model(path)
    assert (as_gender.num_classes, as_emotion.num_classes, unnamed.num_classes) == (2, 7, 7)
    assert as_gender.temperature == gender_entry.temperature != as_emotion.temperature == emotion_entry.temperature
    crops = np.stack([cv2.resize(face, as_gender.size) for face in faces])
    shared = Classifier.from_manifest(manifest, emotion_entry, flip_average=True)
    gender = Classifier.from_manifest(manifest, gender_entry, flip_average=True, share_with=shared)
    raw = Classifier(str(path), GENDER_LABELS, gender.crop)  # one invoke, no temperature: what .predict means
    np.testing.assert_array_equal(as_gender.predict(crops), raw.predict(list(crops)))
    np.testing.assert_allclose(as_gender.predict_as_shipped(crops), gender.predict(list(crops)), atol=1e-6)


@pytest.mark.parametrize("flip, mirrored", [("none", False), ("emotion", True), ("gender", True), ("both", True)])
def test_a_flip_setting_for_one_task_keeps_the_joint_file_at_one_invoke(models_dir, samples, flip, mirrored):
    """Both heads score the same crops: a mirror image asked for by either is averaged into both, never a second
    set of invokes (nor a second crop with gender's mapping)."""
    pipeline = Pipeline.from_models(ModelSettings(dir=str(models_dir), flip_average=flip), track=False)
    assert pipeline.joint and pipeline.emotion.flip_average == pipeline.gender.flip_average == mirrored
    counters = count_invokes(pipeline.emotion)
    assert len(pipeline.process(cv2.imread(str(samples / "biden.jpg")), independent=True).faces) == 1
    assert sum(c.invokes for c in counters) == 1
    assert [size for size, c in pipeline.emotion._batched.items() if c.invokes] == [2 if mirrored else 1]
