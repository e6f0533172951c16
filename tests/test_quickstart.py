"""Trying the service without writing TOML: ``run --source``, ``config --example``, and where the config is looked for.

The commands run as a user would run them, as processes with their own HOME,
XDG_CONFIG_HOME and FACE_EMOTION_CONFIG, on the committed photos and a short
video made from one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge.inputs.sources import CameraSettings
from edge.service.config import DEFAULT_CONFIG, EXAMPLE_CONFIG, Config, find_config, load_config, user_config
from edge.service.quickstart import browser_url, camera_from, live_view_from, mqtt_from
from edge.settings import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_CONFIG = DEFAULT_CONFIG.exists()  # a machine with the service installed: the last fallback is there
no_system_config = pytest.mark.skipif(SYSTEM_CONFIG, reason=f"{DEFAULT_CONFIG} exists on this machine")


def edge(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 300):
    """``python -m edge ARGS`` as a user whose home is ``home`` (no config of this machine's user leaks in)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "FACE_EMOTION_CONFIG")}
    full = dict(clean, HOME=str(home), PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=home,
                          env=full, timeout=timeout)


def images_config(path: Path, samples: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[camera]\nsource = "images"\npath = "{samples}"\n')
    return path


# -- run --source: the service on a video, a folder or a camera, no file ----------------------------------------

def test_run_on_a_video_without_any_config(pan_video, tmp_path):
    proc = edge("run", "--source", str(pan_video), "--frames", "12", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "started: opencv source" in proc.stderr and "stopped after 12 frame(s)" in proc.stderr
    assert '"event": "track_new"' in proc.stdout  # the default event log: the faces of the video, as JSON lines


def test_run_on_a_folder_with_the_live_view_says_where_to_look(samples, tmp_path):
    proc = edge("run", "--source", str(samples), "--live-view", "127.0.0.1:0", "--frames", "3", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "started: images source" in proc.stderr and "stopped after 3 frame(s)" in proc.stderr
    urls = [line for line in proc.stderr.splitlines() if "live view on http://127.0.0.1:" in line]
    assert len(urls) == 1 and not urls[0].endswith(":0/")  # the port actually bound


def test_source_zero_is_the_first_camera(tmp_path):
    proc = edge("check", "--source", "0", home=tmp_path)
    assert "source:   OpenCV camera 0 (/dev/video0) 640x480" in proc.stdout, proc.stderr
    assert "config:   none (the defaults and the command line)" in proc.stdout


@pytest.mark.parametrize("source, message", [
    ("/no/such/clip.mp4", "error: --source /no/such/clip.mp4: no such file or folder"),
    (str(ROOT / "README.md"), f"error: --source {ROOT / 'README.md'}: not a video, an image or a folder"),
])
def test_a_bad_source_is_one_line(tmp_path, source, message):
    proc = edge("run", "--source", source, home=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


def test_source_mapping(samples, pan_video):
    base = CameraSettings()
    assert camera_from("0", base) == CameraSettings(source="opencv", device="0")
    assert camera_from("/dev/video2", base).device == "/dev/video2"
    assert camera_from(str(pan_video), base) == CameraSettings(source="opencv", device=str(pan_video))
    assert camera_from(str(samples), base) == CameraSettings(source="images", path=str(samples))
    assert camera_from(str(samples / "astronaut.jpg"), base).source == "images"
    with pytest.raises(ConfigError, match="--source"):
        camera_from(str(ROOT / "README.md"), base)


def test_live_view_and_mqtt_flags():
    settings, made = live_view_from("", Config().outputs.live_view)
    assert settings.enabled and (settings.host, settings.port, settings.token, made) == ("127.0.0.1", 8080, "", False)
    assert browser_url(settings, 8080, with_token=True) == "http://127.0.0.1:8080/"
    settings, made = live_view_from("8081", Config().outputs.live_view)
    assert (settings.host, settings.port) == ("127.0.0.1", 8081)
    settings, made = live_view_from("0.0.0.0:8090", Config().outputs.live_view)  # to the network: a token, shown
    assert made and len(settings.token) == 32 and (settings.host, settings.port) == ("0.0.0.0", 8090)
    url = browser_url(settings, 8090, with_token=True)
    assert url.endswith(f":8090/?token={settings.token}") and "0.0.0.0" not in url
    again, _ = live_view_from("0.0.0.0:8090", Config().outputs.live_view)
    assert again.token != settings.token  # random per run
    mqtt = mqtt_from("broker.lan", Config().outputs.mqtt)
    assert mqtt.enabled and (mqtt.host, mqtt.port) == ("broker.lan", 1883)
    assert (mqtt_from("127.0.0.1:1884", Config().outputs.mqtt).port) == 1884
    with pytest.raises(ConfigError, match="--mqtt: 'x' is not a port number"):
        mqtt_from("h:x", Config().outputs.mqtt)
    with pytest.raises(ConfigError, match="--live-view: .70000. is not a port number"):
        live_view_from("70000", Config().outputs.live_view)


def test_flags_override_a_config_file(samples, tmp_path, pan_video):
    config = images_config(tmp_path / "c.toml", samples)
    proc = edge("check", "--config", str(config), "--source", str(pan_video), "--mqtt", "127.0.0.1:1", home=tmp_path)
    assert f"config:   {config}" in proc.stdout
    assert f"source:   video file {pan_video}" in proc.stdout
    assert "MQTT to 127.0.0.1:1" in proc.stdout


# -- where the config file is looked for ----------------------------------------------------------------------

def test_the_search_order(tmp_path, monkeypatch):
    monkeypatch.setattr("edge.service.config.DEFAULT_CONFIG", tmp_path / "etc" / "config.toml")
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    env = {"HOME": str(home)}
    with pytest.raises(ConfigError) as none:
        find_config(None, env)
    message = str(none.value)
    assert "\n" not in message and "face-emotion config --example" in message
    for place in ("$FACE_EMOTION_CONFIG", str(home / ".config/face-emotion/config.toml"), str(tmp_path / "etc")):
        assert place in message
    system = tmp_path / "etc" / "config.toml"
    system.parent.mkdir()
    system.write_text("")
    assert find_config(None, env) == system
    mine = home / ".config" / "face-emotion" / "config.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text("")
    assert find_config(None, env) == mine
    assert find_config(None, dict(env, XDG_CONFIG_HOME="relative/ignored")) == mine  # XDG: absolute paths only
    assert find_config(None, dict(env, XDG_CONFIG_HOME=str(xdg))) == system  # XDG moves the user's file
    assert user_config(dict(env, XDG_CONFIG_HOME=str(xdg))) == xdg / "face-emotion" / "config.toml"
    named = tmp_path / "named.toml"  # the variable wins, even before the file exists (then load says so)
    assert find_config(None, dict(env, FACE_EMOTION_CONFIG=str(named))) == named
    assert find_config("given.toml", dict(env, FACE_EMOTION_CONFIG=str(named))) == Path("given.toml")


@no_system_config
def test_no_config_anywhere_is_one_line_naming_the_places(tmp_path):
    proc = edge("run", home=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: no config file: looked in $FACE_EMOTION_CONFIG (unset), "
                               f"{tmp_path}/.config/face-emotion/config.toml, /etc/face-emotion/config.toml")
    assert "face-emotion config --example" in lines[0]
    assert edge("check", home=tmp_path).stderr == proc.stderr


def test_the_user_config_is_found_and_the_variable_wins(samples, tmp_path):
    xdg = tmp_path / "xdg"
    mine = images_config(xdg / "face-emotion" / "config.toml", samples)
    proc = edge("check", home=tmp_path, env={"XDG_CONFIG_HOME": str(xdg)})
    assert proc.returncode == 0, proc.stderr
    assert f"config:   {mine}" in proc.stdout and proc.stdout.rstrip().endswith(f"{mine}: OK")
    home_config = images_config(tmp_path / ".config" / "face-emotion" / "config.toml", samples)
    assert f"config:   {home_config}" in edge("check", home=tmp_path).stdout  # ~/.config without XDG_CONFIG_HOME
    other = images_config(tmp_path / "other.toml", samples)
    proc = edge("check", home=tmp_path, env={"XDG_CONFIG_HOME": str(xdg), "FACE_EMOTION_CONFIG": str(other)})
    assert f"config:   {other}" in proc.stdout
    proc = edge("check", home=tmp_path, env={"FACE_EMOTION_CONFIG": str(tmp_path / "missing.toml")})
    assert proc.returncode == 2 and f"{tmp_path / 'missing.toml'}: no such config file" in proc.stderr
    assert "face-emotion config --example >" in proc.stderr


# -- face-emotion config ----------------------------------------------------------------------------------------

def test_config_example_prints_the_documented_defaults(tmp_path):
    proc = edge("config", "--example", home=tmp_path)
    assert proc.returncode == 0 and proc.stdout == EXAMPLE_CONFIG.read_text()
    written = tmp_path / "config.toml"
    written.write_text(proc.stdout)
    assert load_config(written) == Config()
    assert tomllib.loads(proc.stdout)


def test_config_shows_the_search_and_the_file_used(samples, tmp_path):
    proc = edge("config", home=tmp_path)
    assert proc.returncode == 0
    assert f"{tmp_path}/.config/face-emotion/config.toml  (not there)" in proc.stdout
    assert "$FACE_EMOTION_CONFIG  (unset)" in proc.stdout
    mine = images_config(tmp_path / ".config" / "face-emotion" / "config.toml", samples)
    proc = edge("config", home=tmp_path)
    assert f"{mine}  (used)" in proc.stdout
    assert edge("config", "--path", home=tmp_path).stdout.strip() == str(mine)
