"""Conversion end to end on a freshly built mini-Xception, the manifest it writes, and bad input."""

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


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "quantize", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    from train_host.models import mini_xception
    from train_host.tfquiet import import_keras

    import_keras()
    folder = tmp_path_factory.mktemp("quantize")
    model = mini_xception((48, 48, 1), 7, blur_sigma=1.0)  # untrained, with the frozen input blur
    model.save(folder / "tiny.keras")
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", x=varied_faces(350, 48, 3), y=np.arange(350) % 7)
    np.savez(folder / "test.npz", x=varied_faces(70, 48, 4), y=rng.integers(0, 7, 70))
    np.savez(folder / "few.npz", x=varied_faces(50, 48, 5), y=np.arange(50) % 7)
    return {"model": folder / "tiny.keras", "calib": folder / "calib.npz", "test": folder / "test.npz",
            "few": folder / "few.npz", "folder": folder}


@pytest.fixture(scope="module")
def converted(inputs) -> Path:
    out = inputs["folder"] / "models"
    proc = run(str(inputs["model"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"]), "--out",
               str(out), "--name", "emotion_tiny", "--calib-count", "300", "--bench-runs", "20", "--force")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "argmax agreement" in proc.stdout
    return out


def test_int8_model_has_int8_io_and_the_expected_quantization(converted):
    from edge.frame.runtime import make_interpreter

    interpreter = make_interpreter(str(converted / "emotion_tiny_int8.tflite"))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert list(inp["shape"]) == [1, 48, 48, 1]
    scale, zero_point = inp["quantization"]
    assert scale == pytest.approx(2 / 255, rel=0.02) and abs(zero_point) <= 1  # [-1, 1] mapped onto int8
    out_scale, _ = out["quantization"]
    assert out_scale == pytest.approx(1 / 256, rel=0.05)  # softmax output
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops  # full-integer graph, no float islands
    assert (converted / "emotion_tiny_float32.tflite").stat().st_size > 2 * (
        converted / "emotion_tiny_int8.tflite").stat().st_size


def test_manifest_records_what_the_device_checks(converted):
    from edge.frame.manifest import Manifest, sha256_file

    manifest = Manifest.load(converted)
    entry = manifest.select("emotion", "int8")
    assert entry.sha256 == sha256_file(converted / entry.file)
    assert entry.bytes == (converted / entry.file).stat().st_size
    assert entry.input.dtype == "int8" and (entry.input.height, entry.input.width) == (48, 48)
    assert entry.preprocessing.scale == pytest.approx(2 / 255) and entry.preprocessing.offset == -1.0
    assert entry.accuracy[0]["file"] == "test.npz" and 0 <= entry.accuracy[0]["accuracy"] <= 1
    assert entry.provenance["calibration"]["faces"] == 300
    assert entry.provenance["calibration"]["classes"] == list(range(7))
    assert entry.provenance["float_sha256"]
    assert entry.provenance["command"].startswith("python -m quantize ") and "--calib" in entry.provenance["command"]
    assert manifest.detector["sha256"] == sha256_file(converted / "haarcascade_frontalface_default.xml")
    report = json.loads((converted / "reports" / "emotion_tiny_quantize.json").read_text())
    assert {"keras", "float32", "int8"} <= set(report["bytes"])
    assert set(report["latency"]["int8"]) == {"threads_1", "threads_2"}


def test_the_device_refuses_a_tampered_converted_model(converted, tmp_path):
    import shutil

    from edge.frame.classifier import Classifier
    from edge.frame.manifest import Manifest, ModelError

    copy = tmp_path / "m"
    shutil.copytree(converted, copy)
    path = copy / "emotion_tiny_int8.tflite"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    manifest = Manifest.load(copy)
    with pytest.raises(ModelError, match="emotion_tiny_int8.tflite"):
        Classifier.from_manifest(manifest, manifest.select("emotion", "int8"))


def test_bad_input_is_one_line_and_leaves_existing_models_untouched(inputs, converted, tmp_path):
    before = {p.name: p.read_bytes() for p in converted.glob("*.tflite")}
    cases = [
        ([str(inputs["calib"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"])],
         "unknown model type"),
        ([str(inputs["model"]), "--calib", str(inputs["few"]), "--test", str(inputs["test"])],
         "calibration needs at least 300"),
        ([str(inputs["model"]), "--calib", str(tmp_path / "missing.npz"), "--test", str(inputs["test"])],
         "no such file"),
        ([str(inputs["model"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"]), "--calib-count",
          "10"], "below the minimum"),
    ]
    for args, message in cases:
        proc = run(*args, "--out", str(converted))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in converted.glob("*.tflite")} == before
    assert not list(converted.glob(".*.tflite*"))  # no temp files left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_output_folder_is_one_line(inputs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = run(str(inputs["model"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"]), "--out",
               str(locked / "models"))
    assert proc.returncode == 2 and "not writable" in proc.stderr


def test_an_output_path_that_is_a_file_is_one_line(inputs, tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file, not a folder")
    proc = run(str(inputs["model"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"]), "--out",
               str(blocker))
    assert proc.returncode == 2 and "is not a folder" in proc.stderr


def _published_copy(converted: Path, folder: Path, figure: float) -> Path:
    """A copy of the converted models whose manifest claims ``figure`` for both variants on test.npz."""
    import shutil

    out = folder / "published"
    shutil.copytree(converted, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["models"]:
        for row in entry["accuracy"]:
            row["accuracy"] = figure
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_a_less_accurate_model_does_not_replace_the_published_one_without_force(inputs, converted, tmp_path):
    out = _published_copy(converted, tmp_path, 0.99)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    proc = run(str(inputs["model"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"]), "--out",
               str(out), "--name", "emotion_tiny", "--calib-count", "300", "--bench-runs", "20")
    assert proc.returncode == 1, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if "less accurate than the models it would replace" in x)
    measured = json.loads((converted / "manifest.json").read_text())["models"]
    int8 = next(m for m in measured if m["name"] == "emotion_tiny_int8")["accuracy"][0]["accuracy"]
    assert f"emotion_tiny_int8 {100 * int8:.2f}% on test.npz vs 99.00% in {out / 'manifest.json'}" in line
    assert line.startswith("error:") and "(--force replaces them)" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_only_a_lower_figure_on_the_same_test_file_counts_as_worse(converted, tmp_path):
    from quantize.publish import worse_than_published

    published = json.loads((converted / "manifest.json").read_text())["models"]
    int8 = next(m for m in published if m["name"] == "emotion_tiny_int8")["accuracy"][0]["accuracy"]
    flip = next(a["accuracy"] for a in next(m for m in published if m["name"] == "emotion_tiny_int8")["accuracy"]
                if a.get("flip_average"))
    figures = {"test": {"source": "/data/test.npz"}, "accuracy": {"keras": 0.0, "int8": int8},
               "flip_average": {"accuracy": {"keras": 0.0, "int8": flip}}}
    assert worse_than_published(converted, "emotion_tiny", figures) == []  # the same figure replaces
    figures["accuracy"]["int8"] = int8 - 0.01
    assert [w.split()[0] for w in worse_than_published(converted, "emotion_tiny", figures)] == ["emotion_tiny_int8"]
    figures["accuracy"]["int8"], figures["flip_average"]["accuracy"]["int8"] = int8, flip - 0.01
    worse = worse_than_published(converted, "emotion_tiny", figures)  # mirror-averaged against mirror-averaged
    assert len(worse) == 1 and "mirror-averaged" in worse[0]
    figures["flip_average"]["accuracy"]["int8"] = flip
    assert worse_than_published(converted, "emotion_other", figures) == []  # replaces nothing
    figures["test"]["source"] = "/data/another_split.npz"
    assert worse_than_published(converted, "emotion_tiny", figures) == []  # not the same split
    assert worse_than_published(tmp_path, "emotion_tiny", figures) == []  # no manifest yet


def test_a_warm_started_run_records_the_run_it_started_from(tmp_path):
    """--init chains: the manifest names the parent run (and its parent), not just the last piece."""
    from quantize.publish import _run_info

    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for folder, init in ((first, None), (second, first / "last.keras"), (third, second / "last.keras")):
        folder.mkdir()
        (folder / "last.keras").write_bytes(folder.name.encode())
        (folder / "run.json").write_text(json.dumps({"epochs": len(folder.name), "init": init and str(init),
                                                     "command": f"train {folder.name}"}))
    info = _run_info(third / "last.keras")
    assert info["command"] == "train third" and info["init"] == str(second / "last.keras")
    parent = info["init_run"]
    assert parent["command"] == "train second" and parent["init_run"]["command"] == "train first"
    assert "init_run" not in parent["init_run"]
    from edge.frame.manifest import sha256_file

    assert parent["sha256"] == sha256_file(second / "last.keras")


def test_a_run_started_from_a_shipped_model_records_that_model_s_training(tmp_path, models_dir):
    """Warm-starting from models/*.keras: the shipped entry's own training run is carried over."""
    import shutil

    from edge.frame.manifest import Manifest
    from quantize.publish import _run_info

    shipped = tmp_path / "models"
    shutil.copytree(models_dir, shipped)
    entry = Manifest.load(shipped).select("gender", "int8")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.keras").write_bytes(b"x")
    init = shipped / entry.provenance["float_model"]
    (run / "run.json").write_text(json.dumps({"init": str(init), "command": "train warm"}))
    parent = _run_info(run / "last.keras")["init_run"]
    assert parent["shipped_as"] == entry.name
    shipped_run = entry.provenance["training_run"]
    assert shipped_run and all(parent[key] == value for key, value in shipped_run.items())


def _activation_steps(flatbuffer: bytes) -> dict[int, float]:
    """int8 step of every activation tensor (one scale, no buffer) of a converted model, by tensor index."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    return {i: float(t.quantization.scale[0]) for i, t in enumerate(graph.tensors)
            if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale) == 1
            and len(model.buffers[t.buffer].data if model.buffers[t.buffer].data is not None else []) == 0
            and i not in set(graph.inputs)}


def test_percentile_ranges_give_finer_int8_steps_than_min_max(inputs):
    from quantize.convert import convert
    from train_host.tfquiet import import_keras

    model = import_keras().models.load_model(inputs["model"], compile=False)
    calibration = np.load(inputs["calib"])["x"][:300]
    minmax = _activation_steps(convert(model, calibration))
    p99 = _activation_steps(convert(model, calibration, range_percentile=99.0))
    assert minmax.keys() == p99.keys() and len(minmax) > 20
    finer = [i for i in minmax if p99[i] < minmax[i] * 0.999]
    coarser = [i for i in minmax if p99[i] > minmax[i] * 1.001]
    assert not coarser  # a percentile of the per-face extremes never exceeds their max
    assert len(finer) > len(minmax) // 2  # and on real-looking faces most ranges shrink


def test_flip_average_ships_the_mirror_averaged_figures(inputs, tmp_path):
    from edge.frame.manifest import Manifest

    out = tmp_path / "models"
    proc = run(str(inputs["model"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"]), "--out",
               str(out), "--name", "emotion_tiny", "--calib-count", "300", "--bench-runs", "20", "--force",
               "--flip-average", "--range-percentile", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mirror-averaged as shipped" in proc.stdout and "**the mode this model ships in**" in proc.stdout
    report = json.loads((out / "reports" / "emotion_tiny_quantize.json").read_text())
    assert report["shipped_flip_average"] is True and report["range_percentile"] == 100
    entry = Manifest.load(out).select("emotion", "int8")
    assert entry.flip_average
    single = [a for a in entry.accuracy if not a.get("flip_average")]
    mirrored = [a for a in entry.accuracy if a.get("flip_average")]
    assert [a["accuracy"] for a in single] == [report["accuracy"]["int8"]]
    assert [a["accuracy"] for a in mirrored] == [report["flip_average"]["accuracy"]["int8"]]
    assert entry.accuracy[0].get("flip_average")  # the shipped mode's figure comes first
    assert report["flip_average"]["confusion"]["int8"]
    assert (out / "runs" / "emotion_tiny" / "confusion_int8.png").is_file()
    assert "activation ranges" not in entry.provenance["converter"]  # 100 = the converter's own min/max


def test_a_percentile_outside_the_range_is_one_line(inputs, tmp_path):
    for value in ("50", "101", "lots"):
        proc = run(str(inputs["model"]), "--calib", str(inputs["calib"]), "--test", str(inputs["test"]), "--out",
                   str(tmp_path), "--range-percentile", value)
        assert proc.returncode == 2 and "--range-percentile" in proc.stderr and "Traceback" not in proc.stderr
