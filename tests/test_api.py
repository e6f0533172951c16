"""The Python API (edge.api) used exactly as docs/api.md and the README show it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import FaceAnalyzer, analyze_image
from edge.api import BadImage, Face, ImageResult
from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
from edge.settings import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer()


def python_blocks(markdown: Path, section: str | None = None) -> list[str]:
    """The ```python blocks of a Markdown file (only under the heading ``section`` when given)."""
    text = markdown.read_text()
    if section is not None:
        match = re.search(rf"^#+ {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
        text = match.group(1) if match else ""
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_snippet(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_the_documented_photo_snippet_runs_and_prints_the_faces():
    snippet = python_blocks(ROOT / "docs" / "api.md")[0]
    proc = run_snippet(snippet, ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3  # two faces, then the JSON
    assert all(re.match(r"\(\d+, \d+, \d+, \d+\) \w+ [01]\.\d+ (man|woman) [01]\.\d+$", line) for line in lines[:2])
    assert len(json.loads(lines[2])["faces"]) == 2


def test_the_documented_stream_snippet_tracks_faces_in_a_video(pan_video, tmp_path):
    snippet = python_blocks(ROOT / "docs" / "api.md")[1]
    (tmp_path / "clip.mp4").symlink_to(pan_video)
    proc = run_snippet(snippet, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert len(rows) > 45  # 45 frames, usually two faces each
    assert all(r[0].isdigit() and r[1] in EMOTION_LABELS and r[2] in GENDER_LABELS for r in rows)
    assert len({r[0] for r in rows}) <= 4  # a handful of tracks, not a new id per frame


def test_the_readme_python_api_section_runs_when_present():
    blocks = python_blocks(ROOT / "README.md", "Python API")
    if not blocks:
        pytest.skip("README.md has no 'Python API' section yet")
    proc = run_snippet(blocks[0], ROOT)
    assert proc.returncode == 0, proc.stderr


def test_photos_are_independent_of_what_was_analysed_before(analyzer, samples):
    analyzer.analyze_image(samples / "two_people.jpg")
    result = analyzer.analyze_image(samples / "astronaut.jpg")
    assert len(result.faces) == 1 and result.faces[0].track is None
    assert result.to_dict()["faces"] == FaceAnalyzer().analyze_image(samples / "astronaut.jpg").to_dict()["faces"]


def test_typed_results_and_json(analyzer, samples):
    result = analyzer.analyze_image(str(samples / "two_people.jpg"))
    assert isinstance(result, ImageResult) and all(isinstance(f, Face) for f in result.faces)
    assert (result.width, result.height) == (1126, 661) and result.path == str(samples / "two_people.jpg")
    assert len(result.faces) == 2
    for face in result.faces:
        assert face.emotion == max(face.emotion_scores, key=face.emotion_scores.get)
        assert face.gender_confidence == max(face.gender_scores.values())
        assert json.loads(face.to_json()) == face.to_dict()
    assert result.largest is max(result.faces, key=lambda f: f.box[2] * f.box[3])
    assert json.loads(result.to_json(indent=2)) == result.to_dict()
    assert result.timings_ms["total"] >= result.timings_ms["detect"] > 0


def test_the_json_is_what_the_cli_prints_for_the_same_photo(analyzer, samples):
    photo = samples / "obama_720p.jpg"
    proc = subprocess.run([sys.executable, "-m", "edge", "analyze", str(photo), "--json"], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    api = analyzer.analyze_image(str(photo)).to_dict()
    assert api["faces"] == cli["faces"] and api["path"] == cli["path"] and api["frame"] == cli["frame"]


def test_arrays_bgr_or_gray_give_the_same_faces_as_the_file(analyzer, samples):
    """A BGR array is the file, exactly; a gray one (BlazeFace then sees three equal channels) finds the same
    faces, boxes within a few pixels, the same gender."""
    from edge.frame.tracking import iou

    path = samples / "two_people.jpg"
    from_file = analyzer.analyze_image(path)
    bgr = cv2.imread(str(path))
    result = analyzer.analyze_image(bgr)
    assert result.path is None
    assert [f.to_dict() for f in result.faces] == [f.to_dict() for f in from_file.faces]
    gray = analyzer.analyze_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert len(gray.faces) == len(from_file.faces) == 2
    for face, want in zip(gray.faces, from_file.faces):
        assert iou(face.box, want.box) > 0.9 and face.gender == want.gender


def test_the_module_level_shortcut_uses_the_shipped_models(samples):
    assert len(analyze_image(samples / "two_people.jpg").faces) == 2


def test_a_stream_keeps_track_ids_and_frame_numbers(analyzer, pan_video):
    capture = cv2.VideoCapture(str(pan_video))
    results = []
    with analyzer.stream(fps=15) as stream:
        ok, frame = capture.read()
        while ok:
            results.append(stream.analyze(frame))
            ok, frame = capture.read()
    assert [r.frame for r in results] == list(range(45))
    ids = [f.track for r in results for f in r.faces]
    assert ids and all(isinstance(t, int) for t in ids)
    assert len(set(ids)) <= 4
    video = list(analyzer.analyze_video(pan_video))
    assert [r.to_dict()["faces"] for r in video] == [r.to_dict()["faces"] for r in results]
    assert analyzer.analyze_image(frame_of(pan_video)).faces[0].track is None  # photos stay untracked


def frame_of(video: Path) -> np.ndarray:
    ok, frame = cv2.VideoCapture(str(video)).read()
    assert ok
    return frame


@pytest.mark.parametrize("bad, message", [
    ("no/such/photo.jpg", "no/such/photo.jpg: no such file"),
    (Path(__file__), "test_api.py: not a readable image"),
    (np.zeros((0, 0), np.uint8), "image array"),
    (42, "expected a file path or a numpy image, got int"),
])
def test_bad_images_raise_one_clear_line(analyzer, bad, message):
    with pytest.raises(BadImage) as info:
        analyzer.analyze_image(bad)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_models_folder_names_it(tmp_path):
    from edge.frame.manifest import ModelError

    with pytest.raises(ModelError, match=str(tmp_path)):
        FaceAnalyzer(models=tmp_path)


def test_the_detector_backend_can_be_picked_by_name(analyzer, samples):
    from edge.frame.tracking import iou
    from edge.settings import ConfigError

    haar = analyzer.analyze_image(samples / "two_people.jpg")
    blaze = FaceAnalyzer(backend="blazeface").analyze_image(samples / "two_people.jpg")
    assert len(blaze.faces) == len(haar.faces) == 2
    for face in haar.faces:  # the same two people, boxes mapped onto Haar-like squares
        assert max(iou(face.box, other.box) for other in blaze.faces) > 0.7
    cli = subprocess.run([sys.executable, "-m", "edge", "analyze", str(samples / "two_people.jpg"), "--json",
                          "--detector", "blazeface"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["faces"] == blaze.to_dict()["faces"]  # BlazeFace sees the colour photo here too
    with pytest.raises(ConfigError, match="unknown detector 'yolo'"):
        FaceAnalyzer(backend="yolo")


def _as(image: np.ndarray, kind: str) -> np.ndarray:
    """The photo as float32 in 0..1 with one NaN pixel, or as 16-bit (what a camera pipeline or a TIFF may give)."""
    if kind == "float32 with a NaN":
        out = image.astype(np.float32) / 255.0
        out[0, 0, 0] = np.nan
        return out
    return image.astype(np.uint16) * 257


@pytest.mark.parametrize("kind", ["float32 with a NaN", "uint16"])
@pytest.mark.parametrize("backend", ["haar", "blazeface"])
def test_float_nan_and_16_bit_frames_follow_one_conversion_rule_in_photos_and_streams(samples, kind, backend):
    """Before: one NaN pixel gave 0 faces and a RuntimeWarning; BlazeFace's stream.analyze raised ValueError on
    float and 16-bit frames that analyze_image accepted."""
    import warnings

    analyzer = FaceAnalyzer(backend=backend)
    photo = cv2.imread(str(samples / "two_people.jpg"))
    reference = photo.copy()
    reference[0, 0, 0] = 0 if kind.startswith("float") else reference[0, 0, 0]  # the rule: NaN counts as black
    expected = [f.box for f in analyzer.analyze_image(reference).faces]
    assert expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from the cast fails the test
        boxes = [f.box for f in analyzer.analyze_image(_as(photo, kind)).faces]
        with analyzer.stream(fps=15) as stream:
            streamed = [f.box for f in stream.analyze(_as(photo, kind)).faces]
    assert boxes == expected  # the 8-bit BGR picture it converts to, whatever the pixel type
    assert streamed == expected


def test_mirror_averaging_is_a_setting_of_the_api_as_of_the_config_file(samples):
    """flip_average="none" is one invoke per face: its scores differ from the shipped mirror-averaged ones."""
    single = FaceAnalyzer(flip_average="none").analyze_image(samples / "astronaut.jpg").largest
    both = FaceAnalyzer(flip_average="both").analyze_image(samples / "astronaut.jpg").largest
    assert single.box == both.box
    assert single.emotion_scores != both.emotion_scores and single.gender_scores != both.gender_scores
    with pytest.raises(ConfigError, match="flip_average"):
        FaceAnalyzer(flip_average="sideways")
