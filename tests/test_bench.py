"""``python -m edge.bench``: the report's contents, the baselines' rows, clear failures; no wall-clock thresholds."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bench.__main__ import BenchError, Variant, parse_variants
from edge.bench.floor import count_macs, op_macs
from edge.bench.frames import leading_count, letterbox, read_manifest, recall
from edge.detectors import DetectorSettings
from edge.frame.pipeline import ModelSettings

ROOT = Path(__file__).resolve().parent.parent
PAPER_MODELS = ROOT.parent / "shared" / "anchors" / "oarriaga"
STAGES = ("capture", "convert", "detect", "crop", "emotion", "gender", "track", "total")
VARIANTS = "int8:2:0,int8:1:320:det=haar,float32:2:0"


def bench(*args: str, path: str = str(ROOT)) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.run([sys.executable, "-m", "edge.bench", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = bench("--frames", "6", "--warmup", "1", "--variants", VARIANTS, "--baselines", "none",
                 "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), out, proc.stdout


def test_every_requested_variant_has_stage_statistics_and_resources(report):
    data, _, _ = report
    rows = {row["label"]: row for row in data["variants"]}
    assert set(rows) == {"int8 t2 blazeface dt2", "int8 t1 haar w320", "float32 t2 blazeface dt2"}
    for row in rows.values():
        for stage in STAGES:
            stats = row["stages"][stage]
            assert stats["median"] >= 0 and stats["p90"] >= stats["median"] and stats["p99"] >= stats["p90"]
        assert row["frames"] == 6 and row["fps"] > 0 and row["cpu_percent"] > 0 and row["peak_rss_mb"] > 10
        assert row["model_bytes"] == sum(m["bytes"] for m in row["models"].values()) > 0
        assert all(m["macs"] > 0 and m["invoke_ms"] > 0 for m in row["models"].values())
        # Mirror-averaged as the manifest ships them (config "auto"): int8 is the joint file (both tasks in one
        # invoke, counted once, the face and its mirror image); float32 has no joint file, so its two files run.
        invokes = {t: m["invokes_per_face"] for t, m in row["models"].items()}
        assert invokes == ({"joint": 2} if row["variant"] == "int8" else {"emotion": 2, "gender": 1})
        assert row["paper_ratio"] == pytest.approx(220.0 / row["stages"]["total"]["median"])
    paper = rows["int8 t1 haar w320"]
    assert paper["threads"]["classifier"] == 1 and paper["detect_width"] == 320
    assert paper["detector"]["backend"] == "haar"
    assert rows["int8 t2 blazeface dt2"]["default"] and not rows["float32 t2 blazeface dt2"]["default"]
    assert rows["int8 t2 blazeface dt2"]["detector"]["backend"] == "blazeface"
    # the whole-frame model's interpreter threads, a product choice: in the label and in the row's JSON
    assert rows["int8 t2 blazeface dt2"]["threads"]["detector"] == 2 == rows["int8 t2 blazeface dt2"][
        "detector"]["blazeface"]["threads"]
    assert paper["threads"]["detector"] == 1  # Haar: OpenCV's threads
    assert rows["float32 t2 blazeface dt2"]["model_bytes"] > rows["int8 t2 blazeface dt2"]["model_bytes"]
    assert data["machine"]["runtime"] in ("ai_edge_litert", "tflite_runtime") and data["machine"]["cpu_model"]


def test_recall_is_scored_against_the_samples_manifest(report):
    data, _, _ = report
    names = [Path(n).name for n in data["input"]["names"]]
    expected = dict(zip(names, data["input"]["expected"]))
    assert expected == {"astronaut.jpg": 1, "biden.jpg": 1, "camera.png": 1, "chelsea.jpg": 0, "coins.png": 0,
                        "obama_720p.jpg": 1, "two_people.jpg": 2}
    assert data["input"]["size"] == [640, 480]
    for row in data["variants"] + data["detector_reference"]:
        rec = row["recall"]
        assert rec["expected"] == 6 and rec["negatives"] == 2 and rec["images"] == 7
        assert rec["recall"] == pytest.approx(rec["found"] / 6) and 0 <= rec["recall"] <= 1
        assert len(row["faces_per_distinct_frame"]) == 7
    assert {r["label"] for r in data["detector_reference"]} == {"cascade 1.1/5/min30", "cascade 1.3/5"}


def test_floor_ratios_table_and_chart(report):
    data, out, stdout = report
    measured = data["peak"]["int8"]["macs_per_s"] is not None  # None where the runtime has no flatbuffer schema
    for row in data["variants"]:
        assert row["floor"]["macs"] == sum(m["macs"] * m["invokes_per_face"] for m in row["models"].values())
        assert 0 < row["floor"]["percent_of_peak"] < 100 if measured else row["floor"]["percent_of_peak"] is None
    base = data["ratios"]
    assert base["base_label"] == "int8 t2 blazeface dt2"
    assert base["vs_paper_published"]["ratio"] == pytest.approx(220.0 / base["base_total_ms"])
    assert base["vs_paper_measured"]["ratio"] is None and base["vs_fer_measured"]["ratio"] is None
    assert "Per-stage time" in stdout and "int8 t1 haar w320" in stdout and "seconds is the only sensible" in stdout
    if importlib.util.find_spec("matplotlib") is not None:
        chart = out.with_suffix(".png")
        assert data["chart"] == str(chart) and cv2.imread(str(chart)) is not None
    else:
        assert "chart skipped" in stdout


@pytest.mark.slow
@pytest.mark.shared
def test_paper_and_fer_baselines_run_on_the_same_frames(tmp_path):
    if not PAPER_MODELS.is_dir():
        pytest.skip(f"{PAPER_MODELS} is absent")
    if importlib.util.find_spec("keras") is None:
        pytest.skip("Keras/TensorFlow not installed (host extras)")
    out = tmp_path / "b.json"
    proc = bench("--frames", "3", "--warmup", "1", "--variants", "int8:1:0", "--baselines", "paper,fer",
                 "--paper-models", str(PAPER_MODELS), "--json", str(out), "--no-chart")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    rows = {row["name"]: row for row in data["baselines"]}
    paper = rows["paper"]
    assert paper["available"], paper.get("reason")
    assert paper["frames"] == 3 and paper["stages"]["total"]["median"] > 0 and paper["peak_rss_mb"] > 0
    assert paper["stages"]["emotion"]["median"] >= 0 and paper["recall"]["expected"] == 6
    ours = data["variants"][0]["stages"]["total"]["median"]
    ratio = data["ratios"]["vs_paper_measured"]["ratio"]
    assert ratio == pytest.approx(paper["stages"]["total"]["median"] / ours)
    fer = rows["fer"]
    if fer["available"]:
        assert fer["stages"]["total"]["median"] > 0 and data["ratios"]["vs_fer_measured"]["ratio"] > 0
    else:
        assert fer["reason"] and f"not available ({fer['reason']}" in proc.stdout


def test_a_video_is_a_stream_and_a_camera_records_its_capture_time(pan_video, tmp_path):
    out = tmp_path / "video.json"
    proc = bench("--source", str(pan_video), "--frames", "4", "--warmup", "1", "--variants", "int8:1:0",
                 "--baselines", "none", "--json", str(out), "--no-chart")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["input"]["kind"] == "video" and data["input"]["frames_distinct"] == 4
    row = data["variants"][0]
    assert "recall" not in row and row["faces_per_frame"] > 0 and row["stages"]["track"]["median"] >= 0
    fakes = os.pathsep.join((str(ROOT), str(ROOT / "tests" / "fakes")))  # the picamera2 fake: a grey scene
    proc = bench("--source", "camera", "--frames", "3", "--warmup", "1", "--variants", "int8:1:320",
                 "--baselines", "none", "--json", str(out), "--no-chart", path=fakes)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["input"]["kind"] == "camera" and data["input"]["size"] == [640, 480]
    assert data["camera_capture"]["median"] >= 0 and data["variants"][0]["frames"] == 3


def test_held_images_are_one_stream_and_recall_scores_each_scene_once(tmp_path):
    out = tmp_path / "held.json"
    # 9 frames per scene: more than full_scan_every (8), so every scene gets a full scan even when the
    # previous one left nobody to track (then the stream waits for the periodic scan, as a camera would).
    proc = bench("--hold", "9", "--frames", "2", "--warmup", "1", "--variants", "int8:1:0", "--baselines", "none",
                 "--json", str(out), "--no-chart")
    assert proc.returncode == 0, proc.stderr
    assert "--frames raised to 63" in proc.stderr
    data = json.loads(out.read_text())
    assert data["input"]["kind"] == "held" and data["input"]["frames_distinct"] == 63
    names = [Path(n).name for n in data["input"]["names"]]
    assert names[:9] == ["astronaut.jpg"] * 9 and names[9] == "biden.jpg"
    row = data["variants"][0]
    assert row["frames"] == 63 and row["stages"]["track"]["median"] >= 0
    rec = row["recall"]
    assert rec["images"] == 7 and rec["expected"] == 6 and rec["negatives"] == 2  # the last frame of each scene
    counts = row["faces_per_distinct_frame"]
    expected = data["input"]["expected"]
    # Holding a scene never loses the face a person counts there (the first frame is a full scan).
    for scene in range(7):
        assert counts[9 * scene + 8] >= min(1, expected[9 * scene + 8]), names[9 * scene]


def test_a_missing_paper_models_folder_is_a_row_not_a_failure(tmp_path):
    frames = tmp_path / "f.npy"
    np.save(frames, np.zeros((1, 48, 64, 3), np.uint8))
    proc = subprocess.run([sys.executable, "-m", "train_host.baselines", "--which", "paper", "--frames-file",
                           str(frames), "--paper-models", str(tmp_path / "none")], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["available"] is False and "fer2013_mini_XCEPTION" in row["reason"]


@pytest.mark.parametrize("args", [("--source", "/no/such/folder"), ("--models", "/no/such/models"),
                                  ("--variants", "int8:one:0"), ("--variants", "int8:1:0:eq=flat")])
def test_bad_input_is_one_line_and_exit_2(args):
    proc = bench(*args, "--frames", "1", "--baselines", "none", "--no-chart")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "XNNPACK" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr


def test_helpers_count_parse_and_letterbox(models_dir):
    assert op_macs("CONV_2D", [1, 62, 62, 8], [8, 3, 3, 1]) == 62 * 62 * 8 * 9
    assert op_macs("DEPTHWISE_CONV_2D", [1, 30, 30, 16], [1, 3, 3, 16]) == 30 * 30 * 16 * 9
    assert op_macs("FULLY_CONNECTED", [1, 7], [7, 64]) == 7 * 64
    macs = count_macs(models_dir / "emotion_mini_xception_int8.tflite")
    assert macs["total"] == macs["CONV_2D"] + macs["DEPTHWISE_CONV_2D"] + macs["FULLY_CONNECTED"] > 1_000_000
    assert [leading_count(t) for t in ("2", "1 (partial)", "1 (profile, occluded)", "1-2 per frame", "")] == [
        2, 1, 1, None, None]
    tall = letterbox(np.full((200, 100, 3), 255, np.uint8), (640, 480))
    assert tall.shape == (480, 640, 3) and tall[:, :200].max() == 0 and tall[:, 320].min() == 255
    assert recall([2, 0, 3], [1, 0, 2]) == {"recall": 1.0, "found": 3, "expected": 3, "false_faces": 0,
                                           "negatives": 1, "extra_faces": 2, "images": 3}
    assert math.isclose(recall([0], [2])["recall"], 0.0)
    assert read_manifest(ROOT / "samples" / "manifest.csv")["two_people.jpg"] == 2
    base = Variant(ModelSettings(), DetectorSettings())
    assert [v.label for v in parse_variants("default", base)] == [
        "int8 t2 blazeface dt2", "int8 t2 blazeface dt2 small", "int8 t2 haar", "int8 t2 haar sf1.3 n3 min40",
        "int8 t2 haar w320", "float32 t2 blazeface dt2", "int8 t1 blazeface dt2", "int8 t4 blazeface dt2"]
    assert len(parse_variants("all", base)) == 18 and base.shipped  # 2 precisions x 3 threads x 3 detectors
    tuned = parse_variants("int8:1:0:det=haar:sf=1.3:n=3:eq=hist,int8:2:0", base)
    assert [v.label for v in tuned] == ["int8 t1 haar sf1.3 n3 eq=hist", "int8 t2 blazeface dt2"]
    assert tuned[0].detector == DetectorSettings(backend="haar", scale_factor=1.3, min_neighbors=3, equalize="hist")
    assert not tuned[0].shipped and tuned[1].shipped
    # a spec is parsed into the settings the row's process runs: ModelSettings and DetectorSettings, no copy
    floats = parse_variants("float32:2:320:det=haar:flip=gender", Variant(ModelSettings(dir="m"), DetectorSettings()))
    assert floats == [Variant(ModelSettings(dir="m", variant="float32", threads=2, flip_average="gender"),
                              DetectorSettings(backend="haar", detect_width=320))]
    small = parse_variants("int8:2:0:small=1", base)[0]
    assert small.label == "int8 t2 blazeface dt2 small" and small.detector.blazeface.small_faces and not small.shipped
    blaze = parse_variants("int8:2:0:det=blazeface", base)[0]
    assert blaze.label == "int8 t2 blazeface dt2" and blaze.detector == DetectorSettings(backend="blazeface")
    assert blaze.shipped  # BlazeFace is the default detector
    other = parse_variants("int8:1:0:det=blazeface:bm=full_float32,int8:1:0:det=blazeface:bm=short", base)
    assert [v.label for v in other] == ["int8 t1 blazeface dt2 full_float32", "int8 t1 blazeface dt2 short"]
    assert other[0].settings("")[1].blazeface == replace(DetectorSettings().blazeface, model="full_float32")
    with pytest.raises(BenchError, match="model: expected one of"):
        parse_variants("int8:1:0:det=blazeface:bm=huge", base)
    with pytest.raises(BenchError, match="bm=, small=, ns=, ag=, dt= and nt= are BlazeFace keys; add det=blazeface"):
        parse_variants("int8:1:0:det=haar:bm=full_float32", base)  # a Haar row: the key would be ignored
    near = parse_variants("int8:1:0:ns=80:ag=0:dt=1:nt=1,int8:2:0:ns=128:ag=1:dt=2:nt=2", base)
    assert [v.label for v in near] == ["int8 t1 blazeface dt1 ns80 nt1 square", "int8 t2 blazeface dt2"]
    assert near[0].settings("")[1].blazeface == replace(DetectorSettings().blazeface, near_side=80,
                                                        aspect_graphs=False, threads=1, near_threads=1)
    assert near[1].shipped and not near[0].shipped
    with pytest.raises(BenchError, match="near_side: 90 is not a multiple of 16"):
        parse_variants("int8:1:0:ns=90", base)
    flip = parse_variants("int8:1:0:det=haar:flip=emotion,int8:1:0:det=blazeface:flip=both", base)
    assert [v.label for v in flip] == ["int8 t1 haar flip=emotion", "int8 t1 blazeface dt2 flip=both"]
    assert flip[0].settings("")[0].flip_average == "emotion" and not flip[0].shipped
    with pytest.raises(BenchError, match="flip_average: expected one of"):
        parse_variants("int8:1:0:flip=yes", base)
    every = parse_variants("int8:2:0:sflip=both", base)[0]  # streams: both views on every frame
    assert every.label == "int8 t2 blazeface dt2 sflip=both" and not every.shipped
    assert every.settings("")[0].stream_flip == "both"
    with pytest.raises(BenchError, match="stream_flip: expected one of 'alternate', 'both'"):
        parse_variants("int8:2:0:sflip=odd", base)
