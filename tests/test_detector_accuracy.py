"""The per-task crop fit and the paired accuracy comparison, on real dataset chips where ../shared has them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from train_host import detector_accuracy, fit_box_mapping

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def test_mcnemar_p_is_the_two_sided_exact_binomial_of_the_discordant_pairs():
    assert detector_accuracy.mcnemar_p(0, 0) == 1.0
    assert detector_accuracy.mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert detector_accuracy.mcnemar_p(0, 10) == pytest.approx(2 / 1024)
    assert detector_accuracy.mcnemar_p(5, 5) == 1.0
    from scipy.stats import binomtest

    for right_only_one, right_only_other in ((143, 132), (86, 97), (3, 17), (40, 41)):
        expected = binomtest(right_only_one, right_only_one + right_only_other, 0.5).pvalue
        assert detector_accuracy.mcnemar_p(right_only_one, right_only_other) == pytest.approx(expected, rel=1e-9)


def need_data() -> None:
    if not (DATA / "utkface" / "utkface_gender_gray64_train.npz").is_file():
        pytest.skip(f"{DATA} is absent")


@pytest.mark.shared
def test_paired_counts_explain_the_accuracy_difference_on_the_faces_both_find(tmp_path, capsys):
    need_data()
    out = tmp_path / "acc.json"
    assert detector_accuracy.main(["--data", str(DATA), "--tasks", "gender", "--limit", "60",
                                   "--json", str(out)]) == 0
    result = json.loads(out.read_text())[0]
    both = result["both_found"]
    assert 0 < both <= 60
    haar = result["backends"]["haar"]["accuracy_on_both"]
    for row in ("blazeface", "blazeface pooled"):
        r = result["backends"][row]
        paired = r["paired"]
        gained = paired["right_only_via_blazeface"] - paired["right_only_via_haar"]
        assert r["accuracy_on_both"] - haar == pytest.approx(gained / both)
    assert "right only via BlazeFace" in capsys.readouterr().out


@pytest.mark.shared
def test_the_per_task_fit_writes_only_its_crops_into_the_manifest(models_dir, tmp_path, capsys):
    need_data()
    models = tmp_path / "models"
    shutil.copytree(models_dir, models, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
    body = json.loads((models / "manifest.json").read_text())
    for entry in body["detectors"].values():
        entry.pop("box_mapping_by_task", None)
    (models / "manifest.json").write_text(json.dumps(body, indent=2) + "\n")
    before = json.loads((models / "manifest.json").read_text())
    assert fit_box_mapping.main(["--data", str(DATA), "--per-task", "--tasks", "gender", "--chips", "25",
                                 "--models", str(models), "--write"]) == 0
    after = json.loads((models / "manifest.json").read_text())
    assert after["models"] == before["models"] and after["detector"] == before["detector"]
    for name in ("blazeface_full", "blazeface_short", "blazeface_full_int8"):
        fitted = after["detectors"][name].pop("box_mapping_by_task")
        assert set(fitted) == {"gender"}
        gender = fitted["gender"]
        assert abs(gender["scale"] - gender["geometric_scale"]) <= 0.17  # on the grid around the geometric scale
        assert "utkface train" in gender["fit"] and "--per-task" in gender["command"]
        assert after["detectors"][name] == before["detectors"][name]  # the pooled mapping is left alone
    assert "best agreement with the Haar crop" in capsys.readouterr().out


@pytest.mark.shared
def test_a_fit_of_one_detector_leaves_the_other_entries_alone(models_dir, tmp_path):
    need_data()
    models = tmp_path / "models"
    shutil.copytree(models_dir, models, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
    before = json.loads((models / "manifest.json").read_text())
    assert fit_box_mapping.main(["--data", str(DATA), "--per-task", "--tasks", "gender", "--chips", "25",
                                 "--models", str(models), "--detectors", "blazeface_full_int8", "--write"]) == 0
    after = json.loads((models / "manifest.json").read_text())
    for name in ("blazeface_full", "blazeface_short"):
        assert after["detectors"][name] == before["detectors"][name]
    fitted = after["detectors"]["blazeface_full_int8"]["box_mapping_by_task"]["gender"]
    assert "--detectors blazeface_full_int8" in fitted["command"] and "utkface train" in fitted["fit"]


def test_an_unknown_detector_to_fit_is_one_line(tmp_path, capsys):
    assert fit_box_mapping.main(["--detectors", "blazeface_full,blazeface_huge", "--per-task"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "blazeface_huge" in err and "blazeface_full_int8" in err
