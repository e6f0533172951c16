"""make pi-boot's parts that run without root or qemu (deploy/pi_boot*.py).

The booted guests themselves need root, qemu-system-x86, debootstrap (``make pi-boot``, opt-in in CI);
here: the config it gives the service loads as the daemon loads it, and the deploy's apt list for a
Debian guest is the Pi's less what only the Raspberry Pi archive has.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.layout import APT_PACKAGES
from deploy.pi_boot import GUEST_APT, LIVE_PORT, STEPS, guest_config, main, release_line, select_steps, steps_for
from deploy.pi_boot_picamera2 import (
    cam_cameras,
    check_config,
    check_verdict,
    floor_verdict,
    frames_fact,
    libcamera_errors,
    libcamera_version,
    pipeline_handlers,
)
from edge.service.config import load_config


def test_the_guest_config_loads_as_the_daemon_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(guest_config("/srv/pi-boot/faces.avi", "a" * 32, loop=True))
    config = load_config(path)
    assert (config.camera.source, config.camera.device, config.camera.loop) == ("opencv", "/srv/pi-boot/faces.avi",
                                                                                True)
    live, mqtt = config.outputs.live_view, config.outputs.mqtt
    assert live.enabled and live.host == "127.0.0.1" and live.port == LIVE_PORT and live.token == "a" * 32
    assert mqtt.enabled and mqtt.host == "127.0.0.1" and mqtt.discovery
    assert not config.outputs.leds.enabled


def test_a_debian_guest_gets_the_pis_apt_list_less_the_raspberry_pi_archive() -> None:
    assert set(APT_PACKAGES) - set(GUEST_APT) == {"python3-picamera2", "python3-lgpio"}
    assert [p for p in APT_PACKAGES if p in GUEST_APT] == list(GUEST_APT)


# -- --steps and the opt-in picamera2 step (deploy/pi_boot_picamera2.py) --------------------------------------------

RECORDED = Path(__file__).parent / "pi_boot"  # real output from a booted Trixie guest (libcamera 0.4.0-7)


def test_steps_selects_in_run_order_and_opt_in_steps_come_last() -> None:
    assert select_steps(None) == STEPS and "picamera2" not in [name for name, _ in STEPS]
    names = [name for name, _ in select_steps("picamera2,deploy, camera")]
    assert names == ["camera", "deploy", "picamera2"]


def test_an_unknown_step_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="unknown step.*wifi.*steps: camera, deploy"):
        select_steps("camera,wifi")
    assert main(["--steps", "wifi"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--steps: unknown step(s) wifi" in err


def test_the_picamera2_step_runs_on_trixie_only() -> None:
    steps = select_steps("camera,picamera2")
    assert [n for n, _ in steps_for("trixie", steps)[0]] == ["camera", "picamera2"]
    kept, left_out = steps_for("bookworm", steps)
    assert [n for n, _ in kept] == ["camera"] and left_out == ["picamera2"]


def test_cam_l_with_the_debug_log_names_version_handlers_and_no_camera_without_a_config() -> None:
    text = (RECORDED / "trixie-cam-l-debug.txt").read_text()
    assert "\x1b[" in text  # as recorded: libcamera colours its log
    assert libcamera_version(text) == "v0.4.0"
    assert pipeline_handlers(text) == ["ipu3", "simple", "uvcvideo", "vimc", "virtual"]
    assert cam_cameras(text) == []  # vivid's /dev/media0 is there, but no handler matches it


def test_cam_l_lists_the_virtual_camera_once_its_config_is_there() -> None:
    text = (RECORDED / "trixie-cam-l-virtual.txt").read_text()
    assert cam_cameras(text) == ["1: Internal front camera (Virtual0)"]
    with pytest.raises(ValueError, match="Available cameras"):
        cam_cameras("cam: command not found")


def test_the_check_verdicts() -> None:
    line = ("picamera2 0.3.18 is older than 0.3.20, which the camera source needs (captured_request(wait=), "
            "cancel_all_and_flush()); upgrade it: sudo apt update && sudo apt install --only-upgrade "
            "python3-picamera2")
    assert floor_verdict(2, f"error: {line}\n") == f"refused: {line}"
    assert floor_verdict(0, "") == "accepted"
    assert floor_verdict(0, "warning: camera: something\n") == "accepted"
    assert floor_verdict(2, "error: models: no such folder\n").startswith("check exit 2: error: models")
    assert floor_verdict(1, "Traceback (most recent call last):\nNameError: x\n").startswith("check exit 1")


def test_the_frames_fact_from_the_read_script_result() -> None:
    result = {"open_s": 3.2, "frames": 30, "fps": 7.5, "sizes": ["main 640x480, gray 320x240"]}
    wanted = "30 frames (main 640x480, gray 320x240), 7.5 fps"
    assert frames_fact("noise\nRESULT " + json.dumps(result) + "\n") == wanted
    failed = {"frames": 0, "error": "SourceError: cannot start the Pi camera (x)"}
    assert frames_fact("RESULT " + json.dumps(failed)) == "0 frames, then SourceError: cannot start the Pi camera (x)"
    assert frames_fact("Traceback\nImportError: no picamera2").startswith("no result: Traceback")


def test_the_check_config_is_a_picamera2_config_the_daemon_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(check_config())
    config = load_config(path)
    assert config.camera.source == "picamera2"
    assert not (config.outputs.live_view.enabled or config.outputs.mqtt.enabled or config.outputs.leds.enabled)


def test_a_partial_run_line_names_only_what_ran() -> None:
    facts = {"boot_s": "170", "deploy_s": "420", "picamera2": "picamera2: Debian libcamera v0.4.0 ...",
             "total_s": "900"}
    line = release_line("trixie", ["boot", "camera", "deploy", "picamera2"], 4, facts, "tcg, image cached")
    assert line == ("trixie: 4/4 steps passed (tcg, image cached), boot 170 s, deploy 420 s; "
                    "picamera2: Debian libcamera v0.4.0 ...; total 900 s")
    assert "None" not in line


def test_a_full_run_line_is_the_one_deploy_readme_quotes() -> None:
    quoted = next(line for line in (Path(__file__).parent.parent / "deploy" / "README.md").read_text().splitlines()
                  if line.startswith("bookworm: 13/13 steps passed"))
    facts = {"boot_s": "149", "deploy_s": "445", "ready_s": "18.9", "first_frame_ms": "1241", "camera_frames": "161",
             "camera_ms": "23.2", "video_frames": "104", "video_ms": "441.3", "events": "5", "peak_rss": "182 MB",
             "exposure": "1.4 OK", "watchdog_s": "67", "reboot_s": "172", "vanish": "unbind (rmmod: in use)",
             "total_s": "1979"}
    assert release_line("bookworm", ["boot"] + [name for name, _ in STEPS], len(STEPS) + 1, facts,
                        "tcg, image cached") == quoted


def test_the_deployed_check_refuses_the_real_old_picamera2_and_accepts_the_new_one() -> None:
    old = check_verdict((RECORDED / "trixie-check-picamera2-0.3.18.txt").read_text())
    assert old == ("refused: picamera2 0.3.18 is older than 0.3.20, which the camera source needs "
                   "(captured_request(wait=), cancel_all_and_flush()); upgrade it: sudo apt update && "
                   "sudo apt install --only-upgrade python3-picamera2")
    assert check_verdict((RECORDED / "trixie-check-picamera2-0.3.38.txt").read_text()) == "accepted"
    assert check_verdict("Traceback (most recent call last):").startswith("no exit status")


def test_picamera2source_on_the_virtual_camera_names_libcamera_s_refusal() -> None:
    text = (RECORDED / "trixie-picamera2source-virtual.txt").read_text()
    assert libcamera_errors(text) == ["Virtual: Requested stream role not supported: Raw"]
    assert frames_fact(text) == ("0 frames, then SourceError: cannot open Pi camera 0 (Camera __init__ sequence did "
                                 "not complete.: 'NoneType' object has no attribute 'at') "
                                 "(libcamera: Virtual: Requested stream role not supported: Raw)")
