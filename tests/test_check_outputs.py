"""``face-emotion check`` says OK only for outputs that will start: each enabled output's library and peer, one line.

MQTT against a real mosquitto on loopback (the MQTT tests' fixture) and a
closed port; a missing paho-mqtt or gpiozero is a package on the path that
fails to import, as an absent one does; the live view's port is taken by a
real listening socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_outputs_mqtt import broker, free_port, needs_paho  # noqa: F401 -- broker: a real mosquitto on loopback

from edge.outputs.leds import is_raspberry_pi
from edge.outputs.preflight import opencv_gui

ROOT = Path(__file__).resolve().parent.parent


def check(tmp_path: Path, toml: str = "", env: dict[str, str] | None = None, pythonpath: Path | None = None,
          leds: str = "enabled = false") -> subprocess.CompletedProcess:
    """``check`` on the sample photos with the LEDs off (unless ``leds`` says otherwise) and ``toml`` added."""
    config = tmp_path / "config.toml"
    config.write_text(f'[camera]\nsource = "images"\npath = "{ROOT / "samples"}"\n[outputs.leds]\n{leds}\n{toml}')
    paths = [str(pythonpath)] if pythonpath else []
    full = dict({k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")},
                PYTHONPATH=os.pathsep.join([*paths, str(ROOT)]), **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "edge", "check", "--config", str(config)], capture_output=True,
                          text=True, cwd=ROOT, env=full, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def output_line(proc: subprocess.CompletedProcess, start: str) -> str:
    lines = [line.removeprefix("outputs:").strip() for line in proc.stdout.splitlines()]
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, proc.stdout
    return found[0]


def missing_module(tmp_path: Path, name: str) -> Path:
    """A folder to put first on PYTHONPATH in which ``import name`` fails as it does when it is not installed."""
    folder = tmp_path / "without"
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", "
                                               f"name={name!r})\n")
    return folder


@needs_paho
def test_mqtt_with_a_broker_listening_is_ok(tmp_path, broker):  # noqa: F811
    proc = check(tmp_path, f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n')
    assert proc.returncode == 0, proc.stderr
    assert output_line(proc, "MQTT") == f"MQTT to 127.0.0.1:{broker.port}: ok"
    assert proc.stdout.rstrip().endswith(": OK")


@needs_paho
def test_mqtt_to_a_closed_port_fails(tmp_path):
    port = free_port()  # bound and released: nothing listens there
    proc = check(tmp_path, f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n')
    assert proc.returncode == 2
    assert output_line(proc, "MQTT").startswith(f"MQTT to 127.0.0.1:{port}: FAILS: cannot connect to the broker at "
                                                f"127.0.0.1:{port} (Connection refused)")
    assert f"error: MQTT to 127.0.0.1:{port}: cannot connect" in proc.stderr
    assert not proc.stdout.rstrip().endswith("OK")


def test_mqtt_without_paho_fails_before_the_broker_is_tried(tmp_path):
    proc = check(tmp_path, '[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\n',
                 pythonpath=missing_module(tmp_path, "paho"))
    assert proc.returncode == 2
    assert "MQTT to 127.0.0.1:1883: FAILS: paho-mqtt is not installed (pip install 'pi-face-emotion[mqtt]'" in (
        output_line(proc, "MQTT"))


def test_mqtt_with_an_unreadable_password_file_fails(tmp_path):
    proc = check(tmp_path, '[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nusername = "u"\n'
                           f'password_file = "{tmp_path / "nope"}"\n')
    assert proc.returncode == 2 and f"password_file {tmp_path / 'nope'} is missing" in output_line(proc, "MQTT")


def test_led_pins_outside_the_header_fail_on_any_machine(tmp_path):
    proc = check(tmp_path, leds="enabled = true\nrgb_pins = [17, 27, 40]")
    assert proc.returncode == 2
    assert "FAILS: BCM pin(s) [40] do not exist (GPIO 0..27)" in output_line(proc, "LEDs")


@pytest.mark.skipif(is_raspberry_pi(), reason="a Raspberry Pi has GPIO")
def test_leds_without_gpio_are_a_warning_and_without_gpiozero_a_failure(tmp_path):
    plain = check(tmp_path, leds="enabled = true", env={"GPIOZERO_PIN_FACTORY": ""})
    assert plain.returncode == 0 and output_line(plain, "LEDs").endswith(": warning: no GPIO here, LEDs off")
    mock = check(tmp_path, leds="enabled = true", env={"GPIOZERO_PIN_FACTORY": "mock"},
                 pythonpath=missing_module(tmp_path, "gpiozero"))
    assert mock.returncode == 2 and "FAILS: gpiozero is not installed" in output_line(mock, "LEDs")


def test_live_view_on_a_port_in_use_fails(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = check(tmp_path, f"[outputs.live_view]\nenabled = true\nport = {port}\n")
    assert proc.returncode == 2
    assert output_line(proc, "live view") == (f"live view on http://127.0.0.1:{port}/: FAILS: port {port} on "
                                              "127.0.0.1 is in use (by the running service? stop it to test this "
                                              "config)")
    free = check(tmp_path, f"[outputs.live_view]\nenabled = true\nport = {free_port()}\n")
    assert free.returncode == 0 and output_line(free, "live view").endswith(": ok")


def test_display_without_a_screen_fails(tmp_path):
    proc = check(tmp_path, "[outputs.display]\nenabled = true\n")
    assert proc.returncode == 2
    assert output_line(proc, "display") == ("display (OpenCV window): FAILS: no screen for a window (DISPLAY and "
                                            "WAYLAND_DISPLAY are unset)")


@pytest.mark.skipif(opencv_gui() != "NONE", reason="this OpenCV has a GUI")
def test_display_with_a_headless_opencv_fails_even_with_a_desktop(tmp_path):
    proc = check(tmp_path, "[outputs.display]\nenabled = true\n", env={"DISPLAY": ":99"})
    assert proc.returncode == 2 and "FAILS: this OpenCV has no GUI support" in output_line(proc, "display")


def test_event_log_into_a_missing_folder_fails(tmp_path):
    proc = check(tmp_path, f'[outputs.event_log]\npath = "{tmp_path / "no" / "events.jsonl"}"\n')
    assert proc.returncode == 2
    assert output_line(proc, "event log") == (f"event log -> {tmp_path / 'no' / 'events.jsonl'}: FAILS: folder "
                                              f"{tmp_path / 'no'} does not exist")
    fine = check(tmp_path, f'[outputs.event_log]\npath = "{tmp_path / "events.jsonl"}"\n')
    assert fine.returncode == 0 and output_line(fine, "event log").endswith(": ok")
