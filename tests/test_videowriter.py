"""Annotated videos users can open in a browser: the format chosen, what is said about it, and Chromium playing it.

The browser tests load the written file into a ``<video>`` element of a real
headless Chromium (tests/chromium.py) and read back what the element reports:
its decoded width and duration, or its error code when it cannot play it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edge import analyze, videowriter
from edge.videowriter import VideoWriterError, choose_format
from tests.conftest import wait_for
from tests.test_analyze_cli import run

needs_h264 = pytest.mark.skipif(not videowriter.h264_available(),
                                reason="no ffmpeg with an H.264 encoder (pip install imageio-ffmpeg)")


def fourcc(path: Path) -> str:
    capture = cv2.VideoCapture(str(path))
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert frames > 0, f"{path} does not play back in OpenCV"
    return code.to_bytes(4, "little").decode("latin-1").lower()


def play_in_chromium(browser, video: Path) -> dict:
    """What a browser's <video> makes of ``video``: its size and duration once loaded, or its error code."""
    page = video.parent / f"{video.stem}.html"
    page.write_text(f'<!doctype html><video id="v" muted preload="auto" src="{video.name}"></video>')
    tab = browser(page.as_uri())
    state = """(() => { const v = document.getElementById("v"); if (!v) return null;
        return JSON.stringify({ready: v.readyState, width: v.videoWidth, height: v.videoHeight,
                               duration: v.duration, error: v.error ? v.error.code : null}); })()"""

    def settled():
        raw = tab.evaluate(state)  # None while the page itself is still loading
        found = json.loads(raw) if raw else {"error": None, "ready": 0}
        return found if found["error"] is not None or found["ready"] >= 2 else None

    try:
        return wait_for(settled, f"chromium to load or refuse {video.name}")
    finally:
        tab.close()


@pytest.mark.parametrize(("codec", "suffix", "available", "expected"), [
    ("auto", None, True, "h264"),       # a folder: the best that plays in a browser
    ("auto", None, False, "vp8"),       # ... VP8 WebM when no H.264 encoder is here
    ("auto", ".webm", True, "vp8"),     # a named file: its suffix decides
    ("auto", ".avi", True, "mjpg"),
    ("auto", ".mp4", True, "h264"),
    ("auto", ".MP4", False, "mpeg4"),   # the name the user asked for, said not to play in browsers
    ("vp8", ".mp4", True, "vp8"),       # an explicit codec wins over the suffix
])
def test_the_format_follows_the_codec_the_name_and_what_is_installed(codec, suffix, available, expected):
    assert choose_format(codec, suffix, available).codec == expected


@pytest.mark.parametrize(("codec", "suffix", "available", "message"), [
    ("h264", None, False, "pip install imageio-ffmpeg"),
    ("auto", ".gif", True, "no video format for '.gif'"),
    ("theora", None, True, "unknown video codec"),
])
def test_a_format_that_cannot_be_written_says_what_to_do(codec, suffix, available, message):
    with pytest.raises(VideoWriterError, match=message):
        choose_format(codec, suffix, available)


@needs_h264
def test_an_annotated_video_is_h264_mp4_and_plays_in_chromium(pan_video, tmp_path, browser):
    proc = run(str(pan_video), "--annotate", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "pan_annotated.mp4"
    assert f"annotated video {out}: H.264 MP4 (plays in browsers)" in proc.stdout
    assert fourcc(out) in ("avc1", "h264")
    played = play_in_chromium(browser, out)
    assert played["error"] is None and (played["width"], played["height"]) == (640, 480), played
    assert played["duration"] == pytest.approx(45 / 15.0, abs=0.2)


def test_vp8_webm_plays_in_chromium_and_mpeg4_does_not(pan_video, tmp_path, browser):
    """The fallback plays; the format written before this change (mp4v) is refused: why the default moved."""
    webm = run(str(pan_video), "--annotate", str(tmp_path / "a"), "--video-codec", "vp8")
    assert webm.returncode == 0, webm.stderr
    assert fourcc(tmp_path / "a" / "pan_annotated.webm") == "vp80"
    assert play_in_chromium(browser, tmp_path / "a" / "pan_annotated.webm")["width"] == 640

    mpeg4 = run(str(pan_video), "--annotate", str(tmp_path / "b" / "clip.mp4"), "--video-codec", "mpeg4")
    assert mpeg4.returncode == 0, mpeg4.stderr
    assert "MPEG-4 Part 2 MP4 (does not play in browsers" in mpeg4.stdout
    assert play_in_chromium(browser, tmp_path / "b" / "clip.mp4")["error"] == 4  # MEDIA_ERR_SRC_NOT_SUPPORTED


def test_without_an_h264_encoder_a_folder_gets_webm_and_asking_for_h264_is_one_line(
        pan_video, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(videowriter, "ffmpeg_binary", lambda: None)
    monkeypatch.setattr(analyze, "h264_available", lambda: False)
    assert analyze.main([str(pan_video), "--annotate", str(tmp_path)]) == 0
    assert "VP8 WebM (plays in browsers)" in capsys.readouterr().out
    assert fourcc(tmp_path / "pan_annotated.webm") == "vp80"

    assert analyze.main([str(pan_video), "--annotate", str(tmp_path / "x"), "--video-codec", "h264"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --video-codec h264: no H.264 encoder here"), err


@needs_h264
def test_an_ffmpeg_that_dies_mid_video_is_reported_not_counted(pan_video, tmp_path, monkeypatch, capsys):
    """ffmpeg gone (killed, disk full): the writer marks itself failed and the read-back check says so."""
    real_open = videowriter.open_writer

    def open_then_kill(*args, **kwargs):
        writer = real_open(*args, **kwargs)
        writer.process.kill()
        writer.process.wait()
        return writer

    monkeypatch.setattr(analyze, "open_writer", open_then_kill)
    assert analyze.main([str(pan_video), "--annotate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "the annotated copy of" in err and "does not play" in err

