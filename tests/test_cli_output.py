"""What the commands print besides their results: no runtime notice, progress only on a terminal, a version,
and a quiet end in a closed pipe (``face-emotion --help | head -1``)."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from edge.analyze import Progress
from edge.frame.runtime import make_interpreter, quiet_notices

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
EDGE = [sys.executable, "-m", "edge"]


def edge(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300, **kwargs)


# -- the TFLite runtime's INFO line --------------------------------------------------------------------------

def test_no_xnnpack_notice_on_a_command(samples):
    proc = edge("analyze", str(samples / "two_people.jpg"))
    assert proc.returncode == 0, proc.stderr
    assert "XNNPACK" not in proc.stderr and "INFO:" not in proc.stderr
    assert proc.stderr == ""


def test_the_runtime_notice_is_dropped_and_its_errors_kept(capfd, models_dir):
    with quiet_notices():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"ERROR: Didn't find op for builtin opcode 'FOO'\nWARNING: something to know\n")
        os.write(2, b"a line of ours\n")
    interpreter = make_interpreter(str(models_dir / "gender_mini_xception_int8.tflite"))
    assert interpreter.get_input_details()  # a working interpreter came out of the quiet block
    err = capfd.readouterr().err
    assert "XNNPACK" not in err
    assert err.splitlines() == ["ERROR: Didn't find op for builtin opcode 'FOO'", "WARNING: something to know",
                                "a line of ours"]


def test_a_bad_model_still_says_why(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes((ROOT / "models" / "gender_mini_xception_int8.tflite").read_bytes()[:3000])
    code = f"from edge.frame.runtime import make_interpreter\nmake_interpreter({str(bad)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 1 and "not a valid Flatbuffer" in proc.stderr


# -- --version -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    proc = edge(flag)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith(f"face-emotion {expected}")


# -- a closed pipe ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["analyze", "--help"], ["config", "--example"],
                                  ["--version"], ["analyze", "samples"]])
def test_output_into_a_closed_pipe_ends_quietly(args):
    """The reader is gone before the command writes (as `head` after its first line): no traceback."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([*EDGE, *args], stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV,
                              timeout=300)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert proc.returncode in (0, 141)  # 141 as `yes | head` (argparse's --help swallows the error itself: 0)


def test_help_into_head_in_a_shell():
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} -m edge --help | head -1"],
                          capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert proc.stdout.startswith("usage: face-emotion") and proc.stdout.count("\n") == 1
    assert proc.stderr == ""


# -- analyze's progress ----------------------------------------------------------------------------------------

def run_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """(status, stdout, what the terminal on stderr showed): stderr is a pseudo-terminal, stdout a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*EDGE, *args], stdout=subprocess.PIPE, stderr=slave, text=True, cwd=ROOT, env=ENV)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    out = proc.communicate(timeout=60)[0]
    os.close(master)
    return proc.returncode, out, shown.decode(errors="replace")


def test_analyze_shows_video_progress_on_a_terminal(pan_video):
    status, out, shown = run_on_a_terminal(["analyze", str(pan_video)])
    assert status == 0, shown
    assert f"{pan_video}: frame 1/45" in shown and f"{pan_video}: frame 45/45" in shown
    assert "\r" in shown and "/45" not in out  # the results on stdout carry no progress
    assert f"{pan_video}: 45 frames" in out


def test_analyze_is_quiet_in_a_pipe_and_with_q(pan_video):
    proc = edge("analyze", str(pan_video))
    assert proc.returncode == 0 and "frame 1/" not in proc.stderr and "\r" not in proc.stderr
    status, out, shown = run_on_a_terminal(["analyze", "-q", str(pan_video)])
    assert status == 0 and "frame 1/" not in shown and f"{pan_video}: 45 frames" in out


def test_progress_is_throttled_and_cleared():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    now = [0.0]
    stream = Tty()
    progress = Progress(stream, clock=lambda: now[0])
    for frame in range(1, 101):
        now[0] = frame * 0.01
        progress.update("clip.mp4", frame, 100)
    progress.clear()
    shown = stream.getvalue()
    assert shown.count("\r\033[K") == 7  # frame 1, every 0.2 s (20 frames) after, the last, then the clearing
    assert shown.endswith("clip.mp4: frame 100/100\r\033[K")
    piped = io.StringIO()
    Progress(piped).update("clip.mp4", 1, 100)
    assert piped.getvalue() == ""


@pytest.mark.parametrize("command", ["run", "check", "analyze", "config"])
def test_each_command_names_itself_in_its_usage(command):
    proc = edge(command, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: face-emotion {command} ")
