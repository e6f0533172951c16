"""BlazeFace float -> int8: the graph surgery, the calibrated model's faces, the manifest entry, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bench.frames import letterbox
from edge.detectors.blazeface import BlazeFaceModel, BoxMapping
from edge.frame.manifest import Manifest, sha256_file
from edge.frame.runtime import make_interpreter
from edge.frame.tracking import iou

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
pytestmark = pytest.mark.slow


def op_names(path: Path) -> list[str]:
    interpreter = make_interpreter(str(path), 1)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def xywh(box: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) -> (x, y, w, h), as :func:`edge.frame.tracking.iou` takes boxes."""
    return float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])


def sample_frames() -> list[np.ndarray]:
    photos = [cv2.imread(str(p)) for p in sorted(SAMPLES.glob("*.*g"))]
    return [frame for photo in photos for frame in (photo, letterbox(photo, (640, 480)))]


def test_the_float32_graph_gives_the_float16_models_outputs_with_relus_fused(tmp_path):
    from quantize.detector import float32_graph

    source = ROOT / "models" / "face_detection_short_range.tflite"
    target = tmp_path / "short_f32.tflite"
    target.write_bytes(float32_graph(source.read_bytes()))
    ops = op_names(target)
    assert "RELU" not in ops and "DEQUANTIZE" not in ops and "RELU" in op_names(source)
    a = BlazeFaceModel(source, [8, 16, 16, 16], 2, BoxMapping())
    b = BlazeFaceModel(target, [8, 16, 16, 16], 2, BoxMapping())
    for frame in sample_frames():
        a.raw(frame, 0.5, 0.3)
        b.raw(frame, 0.5, 0.3)
        for index in (a._boxes, a._scores):  # float16 -> float32 is exact; fusing changes no arithmetic
            np.testing.assert_allclose(b.interpreter.get_tensor(index), a.interpreter.get_tensor(index),
                                       rtol=1e-4, atol=1e-3)


def test_the_int8_model_finds_the_float_models_faces_in_one_delegated_graph(tmp_path):
    from quantize.detector import device_inputs, quantize

    source = ROOT / "models" / "face_detection_full_range.tflite"  # the model the device ships as int8
    frames = sample_frames()
    inputs = device_inputs(source, iter(frames), [4], 1)
    assert inputs.shape == (len(frames), 192, 192, 3) and inputs.min() >= -1 and inputs.max() <= 1
    target = tmp_path / "full_int8.tflite"
    target.write_bytes(quantize(source.read_bytes(), inputs))
    ops = op_names(target)
    # one XNNPACK partition: an unfused int8 RELU would split the graph and run slower than float
    assert ops.count("DELEGATE") == 1 and "RELU" not in ops
    assert target.stat().st_size < 0.8 * source.stat().st_size
    float_model = BlazeFaceModel(source, [4], 1, BoxMapping())
    int8_model = BlazeFaceModel(target, [4], 1, BoxMapping())
    found = 0
    for frame in frames:
        want, got = float_model.raw(frame, 0.5, 0.3), int8_model.raw(frame, 0.5, 0.3)
        assert len(got[0]) == len(want[0])
        for box, score in zip(*want):
            matched = [i for i, other in enumerate(got[0]) if iou(xywh(box), xywh(other)) > 0.8]
            assert matched and abs(got[1][matched[0]] - score) < 0.1
        found += len(want[0])
    assert found >= 5


def test_write_adds_an_int8_entry_the_device_loads(tmp_path, capsys):
    from quantize.detector import main

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("*.keras", "runs", "reports",
                                                                           "face_detection_*_int8.tflite"))
    body = json.loads((models / "manifest.json").read_text())
    body["detectors"] = {k: v for k, v in body["detectors"].items() if not k.endswith("_int8")}
    (models / "manifest.json").write_text(json.dumps(body, indent=2) + "\n")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in sample_frames():
        writer.write(letterbox(frame, (640, 480)))
    writer.release()
    assert main(["--detector", "blazeface_short", "--models", str(models), "--videos", str(video),
                 "--video-step", "1", "--write"]) == 0
    entry = Manifest.load(models).detector_entry("blazeface_short_int8")
    float_entry = Manifest.load(models).detector_entry("blazeface_short")
    assert entry["file"] == "face_detection_short_range_int8.tflite"
    assert entry["sha256"] == sha256_file(models / entry["file"])
    assert entry["anchors"] == float_entry["anchors"] and entry["box_mapping"] == float_entry["box_mapping"]
    assert entry["calibration"]["frames"] == len(sample_frames()) and "--video-step 1" in entry["command"]
    from edge.detectors.blazeface import load_model

    model = load_model(Manifest.load(models), "blazeface_short_int8")  # checked against its new entry
    assert len(model.run(cv2.imread(str(SAMPLES / "two_people.jpg")), 0.5, 0.3)) == 2
    assert "calling-thread CPU: int8" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--detector", "blazeface_full_int8"], "not a float BlazeFace entry"),
    (["--detector", "nope"], "nope"),
    (["--detector", "blazeface_short", "--videos", "/no/such/video.mp4"], "no video files"),
    (["--detector", "blazeface_short"], "no calibration frames"),
    (["--detector", "blazeface_short", "--video-step", "0"], "--video-step"),
    (["--detector", "blazeface_full", "--videos", str(SAMPLES)], "a trial run needs another --out"),
    (["--detector", "blazeface_short", "--out", "/tmp/elsewhere/x.tflite", "--write"], "--write needs the int8 file"),
])
def test_bad_input_is_one_line(args, words, capsys):
    from quantize.detector import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and words in err


def test_the_int8_graph_at_other_shapes_is_rebuilt_byte_for_byte_and_lists_itself_in_the_manifest(tmp_path):
    """The shipped 160x192 file is what the command makes; the original refuses that shape at run time; a
    shape written with --write is loaded by the device next to the square one and finds the same faces."""
    from edge.detectors.blazeface import load_model
    from quantize.detector_shapes import main, reshape_graph

    source = ROOT / "models" / "face_detection_full_range_int8.tflite"
    shipped = ROOT / "models" / "face_detection_full_range_int8_160x192.tflite"
    assert reshape_graph(source.read_bytes(), 160, 192) == shipped.read_bytes()
    original = make_interpreter(str(source), 1)
    with pytest.raises(RuntimeError, match="reshape"):
        original.resize_tensor_input(original.get_input_details()[0]["index"], [1, 160, 192, 3])
        original.allocate_tensors()
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
    assert main(["--shapes", "224x224", "--models", str(models), "--write"]) == 0
    manifest = Manifest.load(models)
    graphs = manifest.detector_entry("blazeface_full_int8")["graphs"]
    assert [(g["height"], g["width"]) for g in graphs] == [(160, 192), (192, 160), (224, 224)]
    assert graphs[2]["sha256"] == sha256_file(models / "face_detection_full_range_int8_224x224.tflite")
    model = load_model(manifest, "blazeface_full_int8")
    photo = cv2.imread(str(SAMPLES / "two_people.jpg"))
    assert model.reshaped(224, 224).interpreter.get_input_details()[0]["shape"].tolist() == [1, 224, 224, 3]
    square = load_model(manifest, "blazeface_full_int8", graphs=False)
    for frame in (photo, letterbox(photo, (640, 480))):
        want, got = square.raw(frame, 0.5, 0.3), model.raw(frame, 0.5, 0.3)
        assert len(got[0]) == len(want[0]) == 2


@pytest.mark.parametrize("args, words", [
    (["--shapes", "100x192"], "multiple of 32"),
    (["--shapes", "160by192"], "expected HEIGHTxWIDTH"),
    (["--detector", "nope"], "nope"),
])
def test_bad_shapes_are_one_line(args, words, tmp_path, capsys):
    from quantize.detector_shapes import main

    assert main(args + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and words in err
