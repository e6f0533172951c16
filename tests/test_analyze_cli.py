"""``python -m edge analyze``: JSON per frame, annotated output, clear errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "edge", "analyze", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_json_has_one_object_per_image(samples):
    proc = run(str(samples), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    images = sorted(p.name for p in samples.iterdir() if p.suffix in (".jpg", ".png"))
    assert sorted(Path(o["path"]).name for o in lines) == images
    by_name = {Path(o["path"]).name: o for o in lines}
    assert len(by_name["two_people.jpg"]["faces"]) == 2
    assert by_name["chelsea.jpg"]["faces"] == []
    face = by_name["astronaut.jpg"]["faces"][0]
    assert face["track"] is None and len(face["box"]) == 4
    assert face["gender"] in face["gender_scores"] and face["emotion"] in face["emotion_scores"]


def test_annotate_writes_pictures_with_gender_coloured_boxes(samples, tmp_path):
    proc = run(str(samples / "two_people.jpg"), str(samples / "astronaut.jpg"), "--annotate", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "median ms per frame" in proc.stdout
    out = cv2.imread(str(tmp_path / "two_people_annotated.jpg"))
    original = cv2.imread(str(samples / "two_people.jpg"))
    assert out.shape == original.shape
    changed = np.abs(out.astype(int) - original).sum(axis=2) > 60
    assert changed.any()
    drawn = out[changed]
    blue = (drawn[:, 0] > 200) & (drawn[:, 2] < 60)
    red = (drawn[:, 2] > 200) & (drawn[:, 0] < 60)
    assert blue.sum() + red.sum() > 100  # boxes are pure blue (man) or pure red (woman)


def test_video_gives_per_frame_json_with_tracks_and_an_annotated_video(pan_video, tmp_path):
    out = tmp_path / "pan_out.mp4"
    proc = run(str(pan_video), "--json", "--annotate", str(out))
    assert proc.returncode == 0, proc.stderr
    frames = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [f["frame"] for f in frames] == list(range(45))
    tracked = [face["track"] for f in frames for face in f["faces"]]
    assert tracked and all(isinstance(t, int) for t in tracked)
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 45


def test_a_corrupt_image_is_reported_and_the_rest_still_analysed(samples, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    proc = run(str(bad), str(samples / "astronaut.jpg"))
    assert proc.returncode == 1
    assert "broken.jpg: not a readable image" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "astronaut.jpg: 1 face(s)" in proc.stdout


def test_missing_inputs_and_models_give_one_line(tmp_path):
    proc = run(str(tmp_path / "nope.jpg"))
    assert proc.returncode == 1 and "nope.jpg: no such file" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(str(tmp_path), "--models", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "no model manifest" in proc.stderr


def test_a_video_that_cannot_be_opened_is_an_error_not_a_crash(tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"not a video at all")
    proc = run(str(fake))
    assert proc.returncode == 1
    assert "clip.mp4" in proc.stderr and "Traceback" not in proc.stderr
