"""make pi-check's comparison of the emulated Pi's analyze output with this machine's (deploy/pi_check.py).

The emulated run itself needs root, debootstrap and qemu-user (``make pi-check``); what it concludes
from the two outputs is checked here on real analyze output of samples/, and its videos and frame
digests are made here as the check makes them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.errors import DeployError
from deploy.pi_check import (
    DIGESTS_PY,
    MJPG_VIDEO,
    VIDEO,
    analyze_rows,
    compare,
    compare_decoding,
    daemon_config,
    iou,
    make_video,
    pan_frames,
)
from tests.conftest import MODELS, SAMPLES


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "edge", "analyze", str(SAMPLES / "two_people.jpg"),
                           str(SAMPLES / "astronaut.jpg"), "--json", "--models", str(MODELS)],
                          capture_output=True, text=True, check=True)
    parsed = analyze_rows(proc.stdout)
    assert sum(len(r["faces"]) for r in parsed) >= 3
    return parsed


def test_the_same_output_compares_equal(rows) -> None:
    faces = sum(len(r["faces"]) for r in rows)
    assert compare(rows, copy.deepcopy(rows), "samples") == (f"{faces} faces, labels equal, box IoU >= 1.00, "
                                                             "scores within 0.000")


def test_a_box_a_few_pixels_off_passes_and_one_far_off_names_the_picture(rows) -> None:
    assert iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
    other = copy.deepcopy(rows)
    other[0]["faces"][0]["box"][0] += 3
    box = other[0]["faces"][0]["box"]
    assert f"box IoU >= {(box[2] - 3) / (box[2] + 3):.2f}" in compare(rows, other, "samples")
    other[0]["faces"][0]["box"][0] += 20
    with pytest.raises(DeployError, match=r"samples two_people.jpg frame 0: box .* \(IoU 0\.\d\d\)"):
        compare(rows, other, "samples")


def test_a_different_label_or_a_missing_face_fails(rows) -> None:
    other = copy.deepcopy(rows)
    face = other[1]["faces"][0]
    face["gender"] = "man" if face["gender"] == "woman" else "woman"
    with pytest.raises(DeployError, match=r"astronaut.jpg frame 1: .*here"):
        compare(rows, other, "samples")
    other = copy.deepcopy(rows)
    other[0]["faces"].pop()
    with pytest.raises(DeployError, match=r"faces, \d+ on this machine"):
        compare(rows, other, "samples")


def test_the_daemon_config_is_a_valid_service_config(tmp_path) -> None:
    from edge.service.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(daemon_config("/root/pi-check/pan.avi"))
    config = load_config(path)
    assert (config.camera.source, config.camera.device) == ("opencv", "/root/pi-check/pan.avi")
    assert not config.outputs.leds.enabled


def test_a_label_may_flip_only_between_two_labels_both_runs_score_as_a_near_tie(rows) -> None:
    ref, other = copy.deepcopy(rows), copy.deepcopy(rows)
    a, b = ref[0]["faces"][0], other[0]["faces"][0]
    first, second = sorted(a["emotion_scores"], key=a["emotion_scores"].get, reverse=True)[:2]
    for face, winner, loser in ((a, first, second), (b, second, first)):
        face["emotion_scores"][winner], face["emotion_scores"][loser] = 0.40, 0.38  # as int8 rounding does
        face["emotion"] = winner
    assert "labels equal but 1 near-tie(s)" in compare(ref, other, "samples")
    b["emotion_scores"][second] = 0.60  # a clear winner on one side: a real difference
    with pytest.raises(DeployError, match="two_people.jpg frame 0"):
        compare(ref, other, "samples")


def test_a_video_frame_with_another_face_count_fails_naming_the_frame(rows) -> None:
    """Both sides decode the lossless video to the same pixels, so one differing frame is a real difference."""
    for row in rows:
        row["path"] = "pan.avi"
    other = copy.deepcopy(rows)
    other[1]["faces"].pop()
    with pytest.raises(DeployError, match=r"video pan.avi frame 1: \d+ faces, \d+ on this machine"):
        compare(rows, other, "video")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """The check's two videos, 6 frames each, made as make pi-check makes them."""
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder / VIDEO, SAMPLES / "two_people.jpg", 6)
    make_video(folder / MJPG_VIDEO, SAMPLES / "two_people.jpg", 6, "MJPG")
    return folder


def digests(folder: Path) -> dict[str, list[str]]:
    """DIGESTS_PY run as the check runs it in the root (here with this machine's Python)."""
    proc = subprocess.run([sys.executable, "-c", DIGESTS_PY, VIDEO, MJPG_VIDEO], capture_output=True, text=True,
                          check=True, cwd=folder)
    return json.loads(proc.stdout)


def test_the_video_compared_is_lossless_and_the_mjpg_one_is_not(videos) -> None:
    written = [hashlib.md5(frame.tobytes()).hexdigest() for frame in pan_frames(SAMPLES / "two_people.jpg", 6)]
    decoded = digests(videos)
    assert decoded[VIDEO] == written  # FFV1: the exact pixels written, so every platform sees them
    assert len(decoded[MJPG_VIDEO]) == 6
    assert not set(decoded[MJPG_VIDEO]) & set(written)  # MJPG: lossy, its pixels are the decoder's


def test_decoding_judged_lossless_strictly_and_mjpg_reported(videos) -> None:
    reference = digests(videos)
    assert compare_decoding(reference, copy.deepcopy(reference)) == (
        "FFV1 decoded identically, MJPG differently in 0/6 frames")
    arm = copy.deepcopy(reference)
    arm[MJPG_VIDEO] = [d[::-1] for d in arm[MJPG_VIDEO]]  # as on arm64: every MJPG frame decodes differently
    assert compare_decoding(reference, arm) == "FFV1 decoded identically, MJPG differently in 6/6 frames"
    arm[VIDEO] = arm[VIDEO][:5]
    with pytest.raises(DeployError, match=r"pan.avi \(lossless\) decodes to other pixels .* in 1/6 frames"):
        compare_decoding(reference, arm)
