"""What the commands print besides their results: no runtime notice on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge.runtime import make_interpreter, quiet_notices

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
    code = f"from edge.runtime import make_interpreter\nmake_interpreter({str(bad)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 1 and "not a valid Flatbuffer" in proc.stderr
