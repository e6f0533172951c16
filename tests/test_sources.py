"""Frame sources: image folders, OpenCV video files, and picamera2 (against a faithful fake)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from edge.inputs.sources import (
    BadImage,
    CameraLost,
    CameraSettings,
    ImageSource,
    OpenCVSource,
    Picamera2Source,
    SourceError,
    full_field_mode,
    make_source,
    read_timeout_s,
)


def test_image_folder_yields_independent_frames_in_name_order(samples):
    source = ImageSource([samples])
    source.open()
    frames = list(source)
    names = sorted(p.name for p in samples.iterdir() if p.suffix in (".jpg", ".png"))
    assert [f.path.split("/")[-1] for f in frames] == names
    assert all(f.independent and f.gray.ndim == 2 for f in frames)


def test_an_unreadable_image_raises_bad_image_and_the_source_moves_on(samples, tmp_path):
    broken = tmp_path / "a_broken.png"
    broken.write_bytes(b"garbage")
    source = ImageSource([broken, samples / "astronaut.jpg"])
    with pytest.raises(BadImage, match="a_broken.png: not a readable image"):
        source.read()
    assert source.read().path.endswith("astronaut.jpg")
    assert source.read() is None


def test_video_file_ends_with_none(pan_video):
    source = OpenCVSource(str(pan_video))
    source.open()
    assert source.frame_rate == pytest.approx(15.0)
    assert sum(1 for _ in source) == 45
    assert source.read() is None
    source.close()


def test_a_video_gives_the_same_faces_however_fast_it_is_processed(pan_video, pipeline_factory, monkeypatch):
    """A video file's frames carry media time, so tracks and smoothing follow the clip, not the CPU.

    The pipeline's clock is made to run 7 ms and 350 ms per frame (a PC, and the daemon under qemu):
    with wall-clock timestamps the slow run dropped tracks after 2 missed frames instead of 10, and
    with them the search near those faces, so other faces were found.
    """
    import edge.frame.pipeline

    def faces(seconds_per_clock_read: float) -> list:
        clock = iter(np.arange(1, 100_000) * seconds_per_clock_read)
        monkeypatch.setattr(edge.frame.pipeline, "_now", lambda: float(next(clock)))
        source = OpenCVSource(str(pan_video))
        source.open()
        pipeline = pipeline_factory()
        frames = list(source)
        source.close()
        assert [f.timestamp for f in frames] == pytest.approx([f.index / 15.0 for f in frames])
        return [[(f.box, f.track, f.emotion, f.gender) for f in pipeline.process_frame(frame).faces]
                for frame in frames]

    fast = faces(0.001)
    assert sum(map(len, fast)) >= 45  # faces found and tracked through the pan
    assert faces(0.05) == fast


@pytest.mark.parametrize("device, message", [("missing.mp4", "no such video file"), ("97", "cannot open camera 97")])
def test_a_source_that_cannot_open_says_so(device, message):
    with pytest.raises(SourceError, match=message):
        OpenCVSource(device).open()


def test_picamera2_gray_frame_is_the_lores_y_plane_of_the_same_request(fake_picamera2, samples):
    scene = cv2.imread(str(samples / "two_people.jpg"))
    fake_picamera2.SCENE = scene
    source = Picamera2Source(main_size=(640, 480), lores_size=(300, 226), fps=15)  # 300 px rows pad to 320
    source.open()
    camera = fake_picamera2.INSTANCES[0]
    assert camera.stream_configuration("lores")["stride"] == 320
    frame = source.read()
    assert frame.image.shape == (480, 640, 3)
    assert frame.gray.shape == (226, 300) and frame.gray.flags["C_CONTIGUOUS"]
    expected_y = cv2.cvtColor(cv2.resize(scene, (300, 226), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2YUV_I420)
    assert np.array_equal(frame.gray, expected_y[:226])  # the Y plane, without the stride padding
    assert frame.box_scale == pytest.approx((640 / 300, 480 / 226))
    assert camera.camera_config["controls"]["FrameDurationLimits"] == (66666, 66666)
    source.close()
    assert camera.closed


def test_picamera2_boxes_are_mapped_to_the_display_stream(fake_picamera2, samples, pipeline_factory):
    fake_picamera2.SCENE = cv2.imread(str(samples / "two_people.jpg"))
    source = Picamera2Source(main_size=(1280, 720), lores_size=(640, 360))
    source.open()
    frame = source.read()
    result = pipeline_factory().process_frame(frame)
    source.close()
    assert len(result.faces) == 2
    assert (result.width, result.height) == (1280, 720)
    direct = pipeline_factory().process(cv2.resize(fake_picamera2.SCENE, (1280, 720)), independent=True)
    for face in result.faces:
        nearest = min(direct.faces, key=lambda f: abs(f.box[0] - face.box[0]))
        assert abs(nearest.box[0] - face.box[0]) < 30 and abs(nearest.box[2] - face.box[2]) < 40


def test_a_camera_unplugged_mid_stream_is_reported_as_camera_lost(fake_picamera2):
    fake_picamera2.FAIL_AFTER = 2
    source = Picamera2Source(timeout_s=0.2)
    source.open()
    source.read()
    source.read()
    with pytest.raises(CameraLost, match=r"stopped delivering frames \(TimeoutError"):
        source.read()
    source.close()


def test_a_hung_camera_times_out_as_camera_lost(fake_picamera2):
    source = Picamera2Source(timeout_s=0.2)
    source.open()
    fake_picamera2.HANG.set()
    with pytest.raises(CameraLost):
        source.read()
    source.close()


def _finishes(call, within_s: float = 3.0) -> bool:
    """Run ``call`` in a thread; True when it returned within ``within_s`` (a hang must fail, not block the suite)."""
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(within_s)
    return not worker.is_alive()


def test_close_after_a_capture_timeout_does_not_hang(fake_picamera2):
    source = Picamera2Source(timeout_s=0.2)
    source.open()
    camera = fake_picamera2.INSTANCES[0]
    fake_picamera2.HANG.set()  # stays set: the camera never delivers again
    with pytest.raises(CameraLost):
        source.read()
    assert _finishes(source.close)
    assert camera.closed and source.camera is None
    source.open()  # the camera is free again: the reopen the daemon relies on
    assert fake_picamera2.INSTANCES[1].started
    source.close()


def test_the_fake_reproduces_the_hang_that_stop_before_close_had(fake_picamera2):
    """Upstream's stop() queues behind the timed-out capture job; without that the test above proves nothing."""
    source = Picamera2Source(timeout_s=0.2)
    source.open()
    camera = fake_picamera2.INSTANCES[0]
    fake_picamera2.HANG.set()
    with pytest.raises(CameraLost):
        source.read()
    stopper = threading.Thread(target=camera.stop, daemon=True)
    stopper.start()
    stopper.join(0.5)
    assert stopper.is_alive()  # blocked behind the stale capture job
    camera.cancel_all_and_flush()  # what close() now does first
    stopper.join(3)
    assert not stopper.is_alive() and not camera.started


def test_read_timeout_follows_the_frame_rate(fake_picamera2):
    assert read_timeout_s(15) == pytest.approx(1 + 2 / 15)
    assert read_timeout_s(0.5) == pytest.approx(5.0) and read_timeout_s(0.5, first=True) == pytest.approx(9.0)
    # one frame every 2 s: the service's fixed 1 s timeout lost it on every read
    source = make_source(CameraSettings(source="picamera2", fps=0.5))
    source.open()
    assert fake_picamera2.INSTANCES[0].camera_config["controls"]["FrameDurationLimits"] == (2_000_000, 2_000_000)
    assert source.read().index == 0
    source.close()


def test_the_sensor_runs_in_its_full_field_mode(fake_picamera2):
    camera = fake_picamera2.Picamera2()
    camera.configure(camera.create_video_configuration(main={"size": (640, 480), "format": "RGB888"}))
    cropped = camera.camera_config["sensor"]["output_size"]
    camera.close()
    assert cropped == (640, 480)  # what libcamera picks by itself on Camera Module v2: a centre crop

    source = Picamera2Source(main_size=(640, 480), fps=15)
    source.open()
    config = fake_picamera2.INSTANCES[1].camera_config
    mode = next(m for m in fake_picamera2.SENSOR_MODES if m["size"] == config["sensor"]["output_size"])
    assert mode["crop_limits"] == (0, 0, 3280, 2464) and mode["size"] == (1640, 1232)
    assert config["raw"]["size"] == (1640, 1232) and source.sensor_mode["size"] == (1640, 1232)
    source.close()


@pytest.mark.parametrize("fps, size", [(4, (1000, 750)), (8, (2000, 1500)), (20, (2000, 1500))])
def test_full_field_mode_prefers_the_smallest_full_mode_that_keeps_up(fps, size):
    modes = [{"size": (640, 480), "fps": 90, "crop_limits": (680, 512, 1280, 960), "bit_depth": 10},
             {"size": (1000, 750), "fps": 5, "crop_limits": (0, 0, 2000, 1500), "bit_depth": 10},
             {"size": (2000, 1500), "fps": 10, "crop_limits": (0, 0, 2000, 1500), "bit_depth": 10}]
    assert full_field_mode(modes, fps)["size"] == size  # at 20 fps none keeps up: the fastest full one
    assert full_field_mode([{"format": "YUYV"}], 15) is None  # a USB camera: no modes to choose from


@pytest.mark.parametrize("platform, stride", [("vc4", 320), ("pisp", 384)])
def test_lores_rows_are_padded_as_the_platform_pads_them(fake_picamera2, samples, platform, stride):
    fake_picamera2.PLATFORM = platform
    scene = cv2.imread(str(samples / "two_people.jpg"))
    fake_picamera2.SCENE = scene
    source = Picamera2Source(main_size=(500, 376), lores_size=(300, 226))
    source.open()
    camera = fake_picamera2.INSTANCES[0]
    assert camera.stream_configuration("lores")["stride"] == stride
    assert camera.stream_configuration("main")["stride"] == (1504 if platform == "vc4" else 1536)
    frame = source.read()
    expected_y = cv2.cvtColor(cv2.resize(scene, (300, 226), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2YUV_I420)
    assert np.array_equal(frame.gray, expected_y[:226])
    assert frame.image.shape == (376, 500, 3)
    source.close()


def test_a_camera_held_by_another_program_says_so(fake_picamera2):
    fake_picamera2.BUSY.add(0)  # the service is running
    with pytest.raises(SourceError) as error:
        Picamera2Source().open()
    assert str(error.value) == ("cannot open Pi camera 0 (Camera __init__ sequence did not complete.: Failed to "
                                "acquire camera: Device or resource busy); is another program using it? "
                                "(sudo systemctl stop face-emotion)")


def test_no_pi_camera_is_a_clear_error(fake_picamera2):
    fake_picamera2.CAMERAS = 0
    with pytest.raises(SourceError, match="no Pi camera 0"):
        Picamera2Source().open()


@pytest.mark.parametrize(("package", "message"), [
    (None, "picamera2 is not installed (on a Pi: sudo apt install python3-picamera2)"),
    ("import pidng_gone_for_this_test\n", "picamera2 is installed but cannot be imported: it needs "
                                          "'pidng_gone_for_this_test', which is missing"),
])
def test_a_picamera2_that_cannot_be_imported_says_which_module_is_missing(tmp_path, monkeypatch, package, message):
    """As in a booted Trixie guest: picamera2 from PyPI without PiDNG was reported as "not installed"."""
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)  # no picamera2 at all: import raises ImportError
    if package is not None:
        (tmp_path / "picamera2").mkdir()
        (tmp_path / "picamera2" / "__init__.py").write_text(package)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "picamera2")
    with pytest.raises(SourceError) as caught:
        Picamera2Source((640, 480), (320, 240), 15.0).open()
    assert str(caught.value).startswith(message)
