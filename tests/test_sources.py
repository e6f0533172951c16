"""Frame sources: image folders, OpenCV video files, and picamera2 (against a faithful fake)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.sources import BadImage, CameraLost, ImageSource, OpenCVSource, Picamera2Source, SourceError


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
    source = Picamera2Source()
    source.open()
    source.read()
    source.read()
    with pytest.raises(CameraLost, match="stopped delivering frames"):
        source.read()
    source.close()


def test_a_hung_camera_times_out_as_camera_lost(fake_picamera2):
    source = Picamera2Source(timeout_s=0.2)
    source.open()
    fake_picamera2.HANG.set()
    with pytest.raises(CameraLost):
        source.read()
    source.close()


def test_no_pi_camera_is_a_clear_error(fake_picamera2):
    fake_picamera2.CAMERAS = 0
    with pytest.raises(SourceError, match="no Pi camera 0"):
        Picamera2Source().open()
