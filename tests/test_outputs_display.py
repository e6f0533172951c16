"""Display output: the no-screen messages, and the picamera2 overlay / OpenCV window paths with real results.

No screen exists here, so the overlay is checked against a small camera fake
that keeps picamera2's rule (one preview event loop at a time; ``start()``
already runs a NullPreview), and the window path against recorded cv2 calls.
"""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
import pytest

from edge.frame.annotate import GENDER_COLORS_BGR, annotate
from edge.outputs.base import OutputError
from edge.outputs.display import DisplayOutput, DisplaySettings, overlay_rgba
from edge.outputs.registry import OutputsSettings, build_outputs
from tests.conftest import Clock

OPENCV_HAS_GUI = "GUI:                           NONE" not in cv2.getBuildInformation()


class FakeCamera:
    """What DisplayOutput uses of Picamera2, with its one-event-loop rule."""

    def __init__(self, fail: str | None = None):
        self.preview: str | None = "NULL"  # camera.start() without a preview runs a NullPreview
        self.fail = fail
        self.overlays: list[np.ndarray | None] = []

    def start_preview(self, preview=False) -> None:
        if self.preview is not None:
            raise RuntimeError("An event loop is already running")
        if preview and self.fail:
            raise RuntimeError(self.fail)
        self.preview = preview if preview else "NULL"

    def stop_preview(self) -> None:
        if self.preview is None:
            raise RuntimeError("No preview specified.")
        self.preview = None

    def set_overlay(self, overlay) -> None:
        self.overlays.append(None if overlay is None else overlay.copy())


@pytest.fixture(scope="module")
def astronaut(pipeline_factory, samples):
    pipeline = pipeline_factory()
    image = cv2.imread(str(samples / "astronaut.jpg"))
    for i in range(3):
        result = pipeline.process(image, now=i / 15)
    assert result.largest is not None
    return image, result


@pytest.fixture
def drm(tmp_path):
    folder = tmp_path / "dri"
    folder.mkdir()
    (folder / "card0").touch()
    return folder


@pytest.fixture
def no_drm(tmp_path):
    folder = tmp_path / "no-dri"
    folder.mkdir()
    return folder


def test_no_screen_for_a_window_is_one_clear_line(no_drm):
    output = DisplayOutput(DisplaySettings(enabled=True), env={}, dri_dir=no_drm)
    with pytest.raises(OutputError) as error:
        output.start()
    assert str(error.value) == ("display: no screen for a window (DISPLAY and WAYLAND_DISPLAY are unset); "
                                "enable [outputs.live_view] to watch from a browser instead")


def test_no_screen_and_no_drm_with_the_pi_camera(no_drm, fake_picamera2):
    camera = FakeCamera()
    output = DisplayOutput(DisplaySettings(enabled=True), camera=camera, env={}, dri_dir=no_drm)
    with pytest.raises(OutputError, match=r"^display: no screen \(DISPLAY and WAYLAND_DISPLAY are unset and there "
                                          r"is no DRM device in .*no-dri\); enable \[outputs.live_view\]"):
        output.start()
    assert camera.preview == "NULL" and camera.overlays == []  # the camera keeps running untouched


@pytest.mark.skipif(OPENCV_HAS_GUI, reason="this OpenCV has GUI support; the headless message cannot occur")
def test_headless_opencv_is_reported_even_with_a_display_variable(no_drm):
    output = DisplayOutput(DisplaySettings(enabled=True), env={"DISPLAY": ":0"}, dri_dir=no_drm)
    with pytest.raises(OutputError) as error:
        output.start()
    assert str(error.value).startswith("display: this OpenCV has no GUI support (the opencv-python-headless wheel)")
    assert "\n" not in str(error.value)


def test_overlay_on_the_drm_preview_draws_boxes_on_a_transparent_canvas(astronaut, drm, fake_picamera2):
    image, result = astronaut
    face = result.largest
    camera, clock = FakeCamera(), Clock(10.0)
    output = DisplayOutput(DisplaySettings(enabled=True), camera=camera, env={}, dri_dir=drm, clock=clock)
    output.start()
    assert (output.mode, output.preview, camera.preview) == ("overlay", "drm", fake_picamera2.Preview.DRM)
    output.update(image, result)
    assert len(camera.overlays) == 1
    overlay = camera.overlays[0]
    assert overlay.shape == (image.shape[0], image.shape[1], 4) and overlay.dtype == np.uint8
    x, y, w, h = face.box
    edge = overlay[y + h // 2, x]
    assert edge[3] == 255
    assert tuple(edge[:3]) == tuple(reversed(GENDER_COLORS_BGR[face.gender]))  # RGBA, not BGR
    assert overlay[y + h // 2, x + w // 2, 3] == 0  # the camera image shows through the box
    assert overlay[image.shape[0] - 1, image.shape[1] - 1, 3] == 0
    assert overlay[:40, :120, 3].any(), "the fps/latency text in the top-left corner"
    assert (overlay[..., 3] > 0).mean() < 0.2  # mostly transparent


def test_overlay_is_redrawn_only_when_something_changed(astronaut, drm, fake_picamera2):
    image, result = astronaut
    camera, clock = FakeCamera(), Clock(10.0)
    output = DisplayOutput(DisplaySettings(enabled=True), camera=camera, env={}, dri_dir=drm, clock=clock)
    output.start()
    output.update(image, result)
    clock.t += 0.1
    output.update(image, result)  # same faces, stats text not due for a refresh yet
    assert len(camera.overlays) == 1
    clock.t += 1.0
    output.update(image, result)  # the fps/latency text refreshes
    assert len(camera.overlays) == 2
    moved = dataclasses.replace(result, faces=[dataclasses.replace(result.largest, box=(10, 10, 50, 50))])
    output.update(image, moved)
    assert len(camera.overlays) == 3
    assert camera.overlays[2][35, 10, 3] == 255  # the box's new left edge


def test_close_removes_the_overlay_and_gives_the_camera_its_null_preview_back(astronaut, drm, fake_picamera2):
    image, result = astronaut
    camera = FakeCamera()
    output = DisplayOutput(DisplaySettings(enabled=True), camera=camera, env={}, dri_dir=drm)
    output.start()
    output.update(image, result)
    output.close()
    assert camera.overlays[-1] is None
    assert camera.preview == "NULL"  # frames keep flowing if only the display was dropped
    output.close()
    output.update(image, result)
    assert camera.overlays[-1] is None


def test_qtgl_preview_on_a_desktop(astronaut, no_drm, fake_picamera2):
    camera = FakeCamera()
    output = DisplayOutput(DisplaySettings(enabled=True), camera=camera, env={"WAYLAND_DISPLAY": "wayland-1"},
                           dri_dir=no_drm)
    output.start()
    assert camera.preview == fake_picamera2.Preview.QTGL
    output.close()


def test_qtgl_forced_without_a_desktop_is_refused(drm, fake_picamera2):
    camera = FakeCamera()
    output = DisplayOutput(DisplaySettings(enabled=True, preview="qtgl"), camera=camera, env={}, dri_dir=drm)
    with pytest.raises(OutputError, match=r'^display: preview "qtgl" needs a desktop'):
        output.start()
    assert camera.preview == "NULL"


def test_a_preview_that_fails_to_start_leaves_the_camera_running(drm, fake_picamera2):
    camera = FakeCamera(fail="Failed to open DRM device: Permission denied")
    output = DisplayOutput(DisplaySettings(enabled=True), camera=camera, env={}, dri_dir=drm)
    with pytest.raises(OutputError) as error:
        output.start()
    assert str(error.value) == ("display: cannot start the picamera2 drm preview "
                                "(Failed to open DRM device: Permission denied)")
    assert camera.preview == "NULL"


def test_overlay_mode_needs_the_pi_camera(drm):
    with pytest.raises(OutputError, match=r'^display: mode "overlay" needs the picamera2 source'):
        DisplayOutput(DisplaySettings(enabled=True, mode="overlay"), env={"DISPLAY": ":0"}, dri_dir=drm).start()


@pytest.fixture
def cv2_gui(monkeypatch):
    """Record OpenCV's window calls (this OpenCV may have no GUI; the calls and their arguments are what matter)."""
    calls: list[tuple] = []
    monkeypatch.setattr(cv2, "namedWindow", lambda name, flags=0: calls.append(("namedWindow", name)))
    monkeypatch.setattr(cv2, "imshow", lambda name, image: calls.append(("imshow", name, image.copy())))
    monkeypatch.setattr(cv2, "waitKey", lambda delay=0: calls.append(("waitKey", delay)) or -1)
    monkeypatch.setattr(cv2, "destroyWindow", lambda name: calls.append(("destroyWindow", name)))
    return calls


def test_window_shows_the_annotated_frame_with_fps_and_latency(astronaut, no_drm, cv2_gui):
    image, result = astronaut
    clock = Clock(10.0)
    output = DisplayOutput(DisplaySettings(enabled=True), env={"DISPLAY": ":0"}, dri_dir=no_drm, clock=clock)
    output.start()
    assert output.mode == "window"
    output.update(image, result)
    clock.t += 1.0
    output.update(image, result)
    shown = [c for c in cv2_gui if c[0] == "imshow"]
    assert len(shown) == 2 and all(c[1] == "face-emotion" for c in shown)
    total = result.timings_ms["total"]
    assert np.array_equal(shown[0][2], annotate(image, result, f"0.0 fps  {total:.0f} ms"))
    assert np.array_equal(shown[1][2], annotate(image, result, f"1.0 fps  {total:.0f} ms"))  # 2 frames in 1 s
    assert [c[0] for c in cv2_gui].count("waitKey") == 2  # the GUI gets its event loop turn each frame
    output.close()
    assert ("destroyWindow", "face-emotion") in cv2_gui


def test_a_window_that_fails_mid_run_raises_output_error(astronaut, no_drm, cv2_gui, monkeypatch):
    image, result = astronaut
    output = DisplayOutput(DisplaySettings(enabled=True), env={"DISPLAY": ":0"}, dri_dir=no_drm)
    output.start()

    def broken(name, image):
        raise cv2.error("OpenCV(4.x) window.cpp:1: error: (-2:Unspecified error) Can't initialize GTK backend")

    monkeypatch.setattr(cv2, "imshow", broken)
    with pytest.raises(OutputError, match=r"^display: cannot open an OpenCV window \(OpenCV\(4.x\)"):
        output.update(image, result)


def test_overlay_rgba_matches_annotate_where_drawn(astronaut):
    image, result = astronaut
    rgba = overlay_rgba(image.shape, result, "5.0 fps  40 ms")
    drawn = annotate(np.zeros_like(image), result, "5.0 fps  40 ms")
    assert np.array_equal(rgba[..., :3], drawn[..., ::-1])
    assert np.array_equal(rgba[..., 3] > 0, drawn.max(axis=2) > 0)


def test_build_outputs_without_a_screen_keeps_the_other_outputs(astronaut, monkeypatch, caplog):
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "INVOCATION_ID", "JOURNAL_STREAM"):
        monkeypatch.delenv(key, raising=False)
    settings = OutputsSettings(leds=dataclasses.replace(OutputsSettings().leds, enabled=False),
                               display=DisplaySettings(enabled=True))
    with caplog.at_level(logging.ERROR, logger="test.outputs"):
        outputs = build_outputs(settings, log=logging.getLogger("test.outputs"))
    assert [o.name for o in outputs] == ["event log"]
    assert [r.getMessage() for r in caplog.records] == [
        "display: no screen for a window (DISPLAY and WAYLAND_DISPLAY are unset); "
        "enable [outputs.live_view] to watch from a browser instead; continuing without it"]
    for output in outputs:
        output.close()


def test_the_overlay_follows_the_camera_through_a_reopen(drm, fake_picamera2, monkeypatch, samples, caplog):
    """A lost camera is closed and a new Picamera2 opened; the display must draw on the new one's preview."""
    import edge.outputs.display
    from edge.frame.pipeline import ModelSettings
    from edge.inputs.sources import Picamera2Source
    from edge.outputs.eventlog import EventLogSettings
    from edge.outputs.leds import LedSettings
    from edge.service.config import CameraSettings, Config, ServiceSettings
    from edge.service.daemon import EXIT_OK, Daemon
    from edge.service.notify import Notifier
    from tests.conftest import MODELS

    class ScreenDisplay(DisplayOutput):  # the console with a DRM device, as on a Pi with a screen
        def __init__(self, settings, camera=None):
            super().__init__(settings, camera=camera, env={}, dri_dir=drm)

    monkeypatch.setattr(edge.outputs.display, "DisplayOutput", ScreenDisplay)
    fake_picamera2.SCENE = cv2.imread(str(samples / "astronaut.jpg"))
    fake_picamera2.FAIL_AFTER = 3  # every camera object delivers 3 frames, then none: lost, reopened
    config = Config(camera=CameraSettings(source="picamera2", retry_backoff_s=0.05),
                    models=ModelSettings(dir=str(MODELS)),
                    outputs=OutputsSettings(leds=LedSettings(enabled=False), event_log=EventLogSettings(enabled=False),
                                            display=DisplaySettings(enabled=True, show_stats=False)),
                    service=ServiceSettings(stats_interval_s=60))
    daemon = Daemon(config, Notifier(use_systemd_python=False), source=Picamera2Source(timeout_s=0.2), max_frames=7)
    with caplog.at_level(logging.INFO):
        assert daemon.run() == EXIT_OK
    cameras = fake_picamera2.INSTANCES
    assert len(cameras) == 3 and all(c.closed for c in cameras)
    assert [len(c.overlays) > 0 for c in cameras] == [True, True, True]  # drawn on each camera in turn
    assert [o.name for o in daemon.outputs] == ["display"]  # never dropped
    assert "continuing without it" not in caplog.text
