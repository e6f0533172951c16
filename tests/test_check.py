"""``python -m edge --check`` lists what the service would use and catches missing files; --help; no GPIO on a PC."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.outputs.leds import is_raspberry_pi

ROOT = Path(__file__).resolve().parent.parent


def edge(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(env or os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def config(tmp_path: Path, camera: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f"[camera]\n{camera}\n")
    return str(path)


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_check_lists_source_models_detector_and_outputs(samples, tmp_path):
    proc = edge("--check", "--config", config(tmp_path, f'source = "images"\npath = "{samples}"'))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(":", 1) for line in proc.stdout.splitlines() if line[:1].isalpha() and ":" in line)
    images = len([p for p in samples.iterdir() if p.suffix in (".jpg", ".png")])
    assert lines["source"].strip() == f"images {samples} ({images} file(s))"
    assert "joint_mini_xception_int8.tflite (joint: both tasks in one invoke)" in lines["models"]
    assert lines["detector"].strip().startswith("blazeface: ") and "face_detection_full_range_int8.tflite" in (
        lines["detector"])  # the default detector
    assert "event log -> stdout" in lines["outputs"]
    assert "LEDs (rgb, BCM pins [17, 27, 22]" in proc.stdout
    assert proc.stdout.rstrip().endswith(": OK") and errors(proc) == []
    paper = Path(config(tmp_path, f'source = "images"\npath = "{samples}"'))
    paper.write_text(paper.read_text() + '[detector]\nbackend = "haar"\n')
    proc = edge("--check", "--config", str(paper))
    assert proc.returncode == 0, proc.stderr
    detector = next(line for line in proc.stdout.splitlines() if line.startswith("detector:"))
    assert detector.startswith("detector: haar: ") and "haarcascade_frontalface_default.xml" in detector


@pytest.mark.parametrize("camera, message", [
    ('source = "images"\npath = "/no/such/folder"', "camera.path: /no/such/folder: no such file or folder"),
    ('source = "opencv"\ndevice = "/no/such/clip.mp4"', "camera.device: /no/such/clip.mp4: no such video file"),
])
def test_check_refuses_a_missing_video_or_image_folder_in_one_line(tmp_path, camera, message):
    proc = edge("--check", "--config", config(tmp_path, camera))
    assert proc.returncode == 2
    assert errors(proc) == [f"error: {message}"]
    assert "OK" not in proc.stdout


def test_check_names_an_empty_image_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = edge("check", "--config", config(tmp_path, f'source = "images"\npath = "{tmp_path / "empty"}"'))
    assert proc.returncode == 2 and errors(proc) == [f"error: camera.path: {tmp_path / 'empty'}: no image files there"]


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["check", "--help"]])
def test_help_mentions_analyze_and_run(args):
    proc = edge(*args)
    assert proc.returncode == 0
    for command in ("analyze", "run", "bench", "check"):
        assert f"  {command} " in proc.stdout


@pytest.mark.skipif(is_raspberry_pi(), reason="a Raspberry Pi has GPIO")
def test_on_a_pc_the_default_leds_say_no_gpio_in_one_line(samples, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    proc = edge("--config", config(tmp_path, f'source = "images"\npath = "{samples / "astronaut.jpg"}"'),
                "--frames", "1", env=env)
    assert proc.returncode == 0, proc.stderr
    gpio = [line for line in proc.stderr.splitlines() if "GPIO" in line or "gpiozero" in line]
    assert len(gpio) == 1 and gpio[0].endswith("WARNING LEDs: no GPIO here, LEDs off")
    assert "PinFactoryFallback" not in proc.stderr and " ERROR " not in proc.stderr


def test_a_raspberry_pi_is_told_by_its_device_tree_model(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    assert is_raspberry_pi(model)
    model.write_bytes(b"Some x86 board\x00")
    assert not is_raspberry_pi(model)
    assert not is_raspberry_pi(tmp_path / "absent")


def test_missing_camera_hardware_is_a_warning_not_a_failure(tmp_path):
    proc = edge("--check", "--config", config(tmp_path, 'source = "opencv"\ndevice = "97"'))
    assert proc.returncode == 0 and errors(proc) == []
    assert "warning: camera.device: /dev/video97 does not exist (no camera?)" in proc.stderr.splitlines()


def test_check_names_the_blazeface_models_it_would_load(samples, tmp_path):
    import json

    proc = edge("--check", "--config", config(tmp_path, f'source = "images"\npath = "{samples}"\n[detector]\n'
                                                        'backend = "blazeface"'))
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("detector:"))
    from edge.detectors import BlazeFaceSettings

    detectors = json.loads((ROOT / "models" / "manifest.json").read_text())["detectors"]
    loaded = {detectors[BlazeFaceSettings().entry]["file"], detectors["blazeface_short"]["file"]}
    assert line.startswith("detector: blazeface: ") and all(f"/{f}" in line for f in loaded)
    others = {d["file"] for d in detectors.values()} - loaded  # MediaPipe's float full-range file: not loaded
    assert others and not any(f"/{f}" in line for f in others)


def test_check_warns_when_the_config_turns_off_the_averaging_a_model_ships_with(samples, tmp_path, mirrored_models):
    models = mirrored_models(lambda entry: entry["task"] == "emotion")
    # the two single-task files: each task's averaging on its own (the joint file averages both heads together)
    base = f'[camera]\nsource = "images"\npath = "{samples}"\n[models]\ndir = "{models}"\njoint = false\n'
    for setting, warned in (("auto", False), ("none", True)):
        path = tmp_path / f"{setting}.toml"
        path.write_text(base + f'flip_average = "{setting}"\n')
        proc = edge("--check", "--config", str(path))
        assert proc.returncode == 0 and errors(proc) == [], proc.stderr
        assert ("mirror-averaged: emotion)" in proc.stdout) is not warned
        warning = [line for line in proc.stderr.splitlines() if "turns off the mirror averaging" in line]
        assert len(warning) == int(warned)


@pytest.mark.parametrize("prefix, message", [
    ("$SYS/face-emotion", "outputs.mqtt.topic_prefix: '$SYS/face-emotion' must not start with $"),
    ("x" * 70000, "outputs.mqtt.topic_prefix: 70000 bytes; at most 128"),
])
def test_check_refuses_an_mqtt_topic_prefix_no_subscriber_would_see(tmp_path, prefix, message):
    path = tmp_path / "config.toml"
    path.write_text(f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\ntopic_prefix = "{prefix}"\n')
    proc = edge("--check", "--config", str(path))
    assert proc.returncode == 2
    assert len(errors(proc)) == 1 and message in errors(proc)[0]


def test_a_device_node_is_a_camera_not_a_missing_video_file(tmp_path):
    """``device = "/dev/video0"`` used to be "no such video file" (exit 2); it is a V4L2 camera, even unplugged."""
    from edge.inputs.sources import OpenCVSource, SourceError

    missing = "/dev/video97"  # no such camera here: a warning, as for device = "97"
    proc = edge("--check", "--config", config(tmp_path, f'source = "opencv"\ndevice = "{missing}"'))
    assert proc.returncode == 0, proc.stderr
    assert f"OpenCV camera {missing} ({missing})" in proc.stdout
    assert f"warning: camera.device: {missing} does not exist (no camera?)" in proc.stderr
    source = OpenCVSource(missing)
    assert source.live and not source.is_file  # tracking and smoothing as for a camera; no end of file
    with pytest.raises(SourceError, match=f"^cannot open camera {missing}$"):
        source.open()
    from edge.inputs.sources import camera_index

    link = tmp_path / "by-id-usb-camera"  # as in /dev/v4l/by-id/: opened by the index it resolves to
    link.symlink_to("/dev/video5")
    assert camera_index(str(link)) == 5 and camera_index("/dev/video12") == 12 and camera_index("3") == 3


@pytest.mark.parametrize("command", [["--check"], ["run"], ["check"]])
def test_a_config_that_is_a_folder_or_a_fifo_is_one_line(tmp_path, command):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    for path, message in ((tmp_path, "is a folder; give the config file"), (fifo, "not a regular file")):
        proc = edge(*command, "--config", str(path))
        assert proc.returncode == 2, proc.stderr
        assert errors(proc) == [f"error: {path}: {message}" + (f" (e.g. {path / 'config.toml'})" if path == tmp_path
                                                              else "")], proc.stderr


def test_check_warns_when_a_config_with_a_secret_is_world_readable(tmp_path, samples):
    path = tmp_path / "config.toml"
    path.write_text(f'[camera]\nsource = "images"\npath = "{samples}"\n\n'
                    '[outputs.live_view]\ntoken = "0123456789abcdef0123"\n')
    warning = (f"warning: {path} holds the live view's token and every user can read it: "
               f"sudo chgrp face-emotion {path} && sudo chmod 640 {path}")
    path.chmod(0o644)  # what the deploy used to install
    proc = edge("--check", "--config", str(path))
    assert proc.returncode == 0 and warning in proc.stderr.splitlines(), proc.stderr
    path.chmod(0o640)
    proc = edge("--check", "--config", str(path))
    assert proc.returncode == 0 and "every user can read it" not in proc.stderr, proc.stderr


def test_check_names_the_module_a_picamera2_cannot_import(tmp_path):
    """picamera2 installed without one of its own dependencies (PiDNG in a Trixie guest): no traceback, no "OK"
    for the camera, and the line names the missing module rather than calling picamera2 missing."""
    package = tmp_path / "site" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import pidng_gone_for_this_test\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(ROOT), str(tmp_path / "site"))))
    proc = subprocess.run([sys.executable, "-m", "edge", "check", "--config", config(tmp_path, 'source = "picamera2"')],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert ("warning: camera: picamera2 is installed but cannot be imported: it needs 'pidng_gone_for_this_test'"
            in proc.stdout + proc.stderr), proc.stdout + proc.stderr
