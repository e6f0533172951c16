"""Confidence calibration (issue 30): the manifest's temperature reaches the device's printed probabilities.

The shipped models run on real face crops cut from the committed samples; the
fit and the metrics are checked on inputs whose answer is known by construction.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from facecrops import varied_faces

from edge.frame.calibration import apply_temperature
from edge.frame.classifier import Classifier
from edge.frame.manifest import Manifest, ModelError
from edge.frame.pipeline import ModelSettings, Pipeline
from train_host.calibration import ece, fit_temperature, nll, reliability

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return varied_faces(24, size=64, seed=3)


@pytest.fixture
def models_with(models_dir, tmp_path):
    """A copy of the shipped models whose manifest entries get ``changes(entry)`` (the model files untouched)."""
    made = iter(range(10))

    def make(changes) -> Path:
        target = tmp_path / f"models{next(made)}"
        shutil.copytree(models_dir, target, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
        raw = json.loads((target / "manifest.json").read_text())
        for entry in raw["models"]:
            changes(entry)
        (target / "manifest.json").write_text(json.dumps(raw))
        return target

    return make


def test_temperature_is_softmax_of_log_probabilities_over_t_and_keeps_the_order():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=200).astype(np.float32)
    probs[:20, 1] = 0.0  # int8 outputs round small classes to exactly 0
    probs /= probs.sum(axis=1, keepdims=True)
    for t in (0.5, 0.85, 2.0):
        shown = apply_temperature(probs, t)
        logits = np.log(np.maximum(probs, 1e-30)) / t
        expected = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
        assert np.allclose(shown, expected, atol=1e-5)
        assert np.array_equal(shown.argmax(axis=1), probs.argmax(axis=1))
        assert np.allclose(shown.sum(axis=1), 1.0, atol=1e-5)
        assert (shown[:20, 1] == 0).all()
    assert (apply_temperature(probs, 0.5).max(axis=1) > probs.max(axis=1)).all()  # T < 1 sharpens
    assert (apply_temperature(probs, 2.0).max(axis=1) < probs.max(axis=1)).all()  # T > 1 softens


def test_a_tiny_temperature_does_not_underflow_to_an_empty_row():
    probs = np.array([[0.02, 0.01, 0.97], [1e-3, 2e-3, 0.997]], dtype=np.float32)
    shown = apply_temperature(probs, 0.01)
    assert np.allclose(shown.sum(axis=1), 1.0) and np.array_equal(shown.argmax(axis=1), [2, 2])


def test_ece_and_nll_on_a_hand_counted_example():
    # Two faces at 0.95 (one right) and two at 0.65 (both right): bins 9 and 6.
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.35, 0.65]])
    y = np.array([0, 1, 1, 1])
    assert ece(probs, y) == pytest.approx(0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.65))
    assert nll(probs, y) == pytest.approx(-(np.log(0.95) + np.log(0.05) + 2 * np.log(0.65)) / 4)
    rows = reliability(probs, y)
    assert [r["faces"] for r in rows] == [0, 0, 0, 0, 0, 0, 2, 0, 0, 2]


def test_the_fit_recovers_the_temperature_that_made_the_probabilities_too_soft():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.0, size=(20000, 7))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(7, p=p) for p in true])
    printed = apply_temperature(true, 1 / 0.8)  # a model that prints softened probabilities: T = 0.8 undoes it
    temperature = fit_temperature(printed, y)
    assert temperature == pytest.approx(0.8, abs=0.03)
    assert ece(apply_temperature(printed, temperature), y) < ece(printed, y) / 2


def test_the_shipped_manifest_records_a_fitted_temperature_for_every_classifier(models_dir):
    for entry in Manifest.load(models_dir).models:
        fit = entry.temperature_fit
        assert 0.5 < entry.temperature < 1.0, entry.name  # both models print too-soft confidences
        assert fit["model_sha256_16"] == entry.sha256[:16] and fit["faces"] > 1000 and fit["flip_average"] == (
            entry.flip_average)
        assert fit["test"]["ece_after"] <= 0.02 < fit["test"]["ece_before"]
        assert fit["test"].get("out_of_fold", {"ece_after": 0})["ece_after"] <= 0.02


def test_the_classifier_prints_the_manifests_sharper_probabilities_with_the_same_label(models_with, faces):
    uncalibrated = Manifest.load(models_with(lambda e: [e.pop("temperature", None), e.pop("temperature_fit", None)]))
    calibrated = Manifest.load(models_with(lambda e: e.update(temperature=0.85)))
    for task in ("emotion", "gender"):
        plain = Classifier.from_manifest(uncalibrated, uncalibrated.select(task), flip_average=True)
        sharp = Classifier.from_manifest(calibrated, calibrated.select(task), flip_average=True)
        assert (plain.temperature, sharp.temperature) == (1.0, 0.85)  # no field: T = 1
        before, after = plain.predict(faces), sharp.predict(faces)
        assert np.array_equal(before.argmax(axis=1), after.argmax(axis=1))
        assert (after.max(axis=1) >= before.max(axis=1) - 1e-6).all() and (after.max(axis=1) > before.max(axis=1)).any()
        # applied after the mirror averaging, as it was fitted
        assert np.allclose(after, apply_temperature(before, 0.85), atol=1e-5)


def test_the_pipeline_reads_each_tasks_temperature_from_the_manifest(models_with):
    models = models_with(lambda e: e.update(temperature=0.7 if e["task"] == "emotion" else 0.9))
    pipeline = Pipeline.from_models(ModelSettings(dir=str(models)), track=False)
    assert (pipeline.emotion.temperature, pipeline.gender.temperature) == (0.7, 0.9)


@pytest.mark.parametrize("bad", [0, -0.5, "0.8", True, None, float("inf")])
def test_a_temperature_that_is_not_a_positive_number_is_refused_in_one_line(models_with, bad):
    def spoil(entry):
        if entry["task"] == "emotion":
            entry["temperature"] = bad

    models = models_with(spoil)
    if bad == float("inf"):  # json.dumps writes Infinity, which json.loads reads back as inf
        assert "Infinity" in (models / "manifest.json").read_text()
    with pytest.raises(ModelError, match=r"temperature of emotion_mini_xception_\w+\.tflite is .*, expected a number "
                                         r"greater than 0$"):
        Manifest.load(models)


def test_the_device_cli_refuses_a_bad_temperature_with_one_line(models_with, samples):
    models = models_with(lambda e: e.update(temperature=-1))
    run = subprocess.run([sys.executable, "-m", "edge", "analyze", str(samples / "biden.jpg"), "--models", str(models)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "temperature of" in run.stderr and "expected a number greater than 0" in run.stderr


def test_evaluate_reports_ece_and_nll_and_the_temperature_keeps_the_accuracy(tmp_path, models_with, faces):
    from train_host.evaluate import main

    models_dir = models_with(lambda e: e.update(temperature=0.8))
    labels = Classifier.from_manifest(Manifest.load(models_dir), Manifest.load(models_dir).select("gender")).predict(
        faces).argmax(axis=1)
    labels[::4] = 1 - labels[::4]  # a quarter wrong, so neither confidence nor accuracy is trivially 1
    data = tmp_path / "faces_test.npz"
    np.savez(data, x=faces, y=labels.astype(np.uint8))
    results = {}
    for name, extra in (("shipped", []), ("raw", ["--temperature", "1"])):
        out = tmp_path / f"{name}.json"
        assert main(["--model", str(models_dir / "gender_mini_xception_int8.tflite"), "--data", str(data),
                     "--json", str(out), "--plots", str(tmp_path / name)] + extra) == 0
        assert (tmp_path / name / "reliability_gender_mini_xception_int8.png").stat().st_size > 10_000
        results[name] = json.loads(out.read_text())
    shipped, raw = results["shipped"], results["raw"]
    assert raw["temperature"] == 1.0 and shipped["temperature"] == 0.8  # the manifest's, unless told otherwise
    assert shipped["accuracy"] == raw["accuracy"] == 0.75 and shipped["confusion"] == raw["confusion"]
    assert shipped["nll"] != raw["nll"] and 0 <= shipped["ece"] <= 1 and 0 <= raw["ece"] <= 1
    # the calibrated run also reports the same answers before calibration; T = 1 has nothing to compare
    assert {k: shipped["uncalibrated"][k] for k in ("ece", "nll")} == {k: raw[k] for k in ("ece", "nll")}
    assert "uncalibrated" not in raw
    assert main(["--model", str(models_dir / "gender_mini_xception_int8.tflite"), "--data", str(data),
                 "--temperature", "0"]) == 2


def test_calibrate_fits_and_records_a_temperature_per_entry(tmp_path, models_with, faces, capsys):
    from train_host.calibrate import main

    models = models_with(lambda e: [e.pop("temperature", None), e.pop("temperature_fit", None)])
    manifest = Manifest.load(models)
    labels = Classifier.from_manifest(manifest, manifest.select("gender")).predict(faces).argmax(axis=1)
    labels[::3] = 1 - labels[::3]
    data = tmp_path / "faces_test.npz"
    np.savez(data, x=faces, y=labels.astype(np.uint8))
    assert main(["--models", str(models), "--task", "gender", "--data", str(data), "--holdout", "1.5"]) == 2
    assert "--holdout: 1.5 is outside 0..1" in capsys.readouterr().err
    assert main(["--models", str(models), "--task", "gender", "--data", str(data), "--rows", "test-duplicates"]) == 2
    assert "needs a publictest_dup column" in capsys.readouterr().err
    assert main(["--models", str(models), "--task", "gender", "--data", str(data), "--compare-vector"]) == 0
    assert "one T per class" not in capsys.readouterr().out  # no --test: nothing to compare on
    assert main(["--models", str(models), "--task", "gender", "--data", str(data), "--test", str(data),
                 "--folds", "2", "--write"]) == 0
    after = Manifest.load(models)
    for entry in after.models:
        if entry.task == "emotion":
            assert entry.temperature == 1.0 and not entry.temperature_fit  # another task: untouched
            continue
        fit = entry.temperature_fit
        assert entry.temperature != 1.0 and fit["faces"] == len(faces) and fit["model_sha256_16"] == entry.sha256[:16]
        assert fit["test"]["out_of_fold"]["folds"] == 2 and fit["command"].startswith("python -m train_host.calibrate")
        assert fit["fit"]["nll_after"] <= fit["fit"]["nll_before"]  # the fit minimises exactly this
    assert "recorded in" in capsys.readouterr().out


def test_verify_holds_a_calibrated_entry_to_the_ece_it_recorded(tmp_path, models_with, faces, capsys):
    from quantize.verify import main

    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "faces_test.npz", x=faces, y=(np.arange(len(faces)) % 2).astype(np.uint8))

    def calibrated(recorded: float):
        def change(entry):
            entry["temperature"], entry["temperature_fit"] = 0.8, {}
            if entry["name"] == "gender_mini_xception_int8":
                entry["temperature_fit"] = {"test": {"data": "somewhere/faces_test.npz", "ece_after": recorded}}
        return models_with(change)

    assert main(["--models", str(calibrated(1.0)), "--data", str(data)]) == 0  # an ECE can only be below 100%
    line = next(x for x in capsys.readouterr().out.splitlines() if "ECE" in x)
    measured = float(line.split()[4].rstrip("%")) / 100
    assert line.startswith("gender_mini_xception_int8.tflite") and line.endswith("ok")
    assert main(["--models", str(calibrated(measured - 0.004)), "--data", str(data)]) == 0  # within 0.5 pp
    assert main(["--models", str(calibrated(measured - 0.01)), "--data", str(data)]) == 1
    assert "FAIL (more than 0.5 pp above)" in capsys.readouterr().out
