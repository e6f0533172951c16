"""``make pi-boot``'s opt-in ``picamera2`` step (Trixie): real picamera2 releases beside Debian's libcamera.

A Pi owner's picamera2 comes from the Raspberry Pi archive, which a Debian
guest does not have; what Debian Trixie has is upstream libcamera 0.4 with its
Python bindings (``python3-libcamera``) and ``cam`` (``libcamera-tools``).
This step installs those, lists the cameras and the pipeline handlers the
package was built with (``cam -l`` with the camera manager's debug log), then
pip-installs a real old picamera2 (0.3.18, the newest below the 0.3.20 floor
on PyPI; 0.3.19 was never published there) and the newest one into a
``--system-site-packages`` venv and runs the *deployed* release's
``face-emotion check`` on a picamera2 config against each: the old one must
be refused with the one line, the new one accepted.

picamera2 on PyPI depends on PiDNG, simplejpeg, python-prctl, av, ... ; the
step installs them ``--no-deps``, only what ``import picamera2`` needs:
Debian's python3-pil, python3-piexif, python3-prctl and python3-av, and from
PyPI simplejpeg (a wheel), v4l2-python3 (0.3.18) / videodev2 (newer) (pure
Python) and PiDNG (an sdist with a C extension: gcc, python3-dev and Debian's setuptools to build).

Debian builds libcamera's ``virtual`` pipeline handler, which makes a test
pattern camera once ``/usr/share/libcamera/pipeline/virtual/virtual.yaml``
describes one (Debian ships none), so the step writes one and, when ``cam -l``
then lists a camera, reads frames from it through ``Picamera2Source`` with the
new picamera2. Its buffers come from a dma-buf heap (``/dev/dma_heap/system``,
root only on Debian), so that read runs as root.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Protocol

OLD = "0.3.18"  # PyPI has 0.3.18, then 0.3.21: the newest release below the 0.3.20 floor
LIBCAMERA_APT = ("python3-libcamera", "libcamera-tools")
IMPORT_APT = ("python3-pil", "python3-piexif", "python3-prctl", "python3-av", "gcc", "libc6-dev", "python3-dev",
              "python3-setuptools")
IMPORT_PIP = ("simplejpeg", "v4l2-python3", "videodev2", "pidng")
VENV = "/tmp/pi-boot-picamera2"  # the user's, as a Pi owner's own venv would be
RELEASE = "/opt/face-emotion/current"
VIRTUAL_YAML_PATH = "/usr/share/libcamera/pipeline/virtual/virtual.yaml"
VIRTUAL_YAML = """%YAML 1.1
---
"Virtual0":
  supported_formats:
  - width: 640
    height: 480
    frame_rates:
    - 15
    - 30
  test_pattern: "bars"
  location: "CameraLocationFront"
  model: "Virtual Video Device"
"""
FRAMES = 30
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Shell(Protocol):
    def sh(self, script: str, timeout: float = 120, check: bool = True) -> str: ...


def check_config() -> str:
    """A config whose source is the Pi camera, with nothing else enabled: what ``face-emotion check`` judges."""
    return """[camera]
source = "picamera2"

[outputs.leds]
enabled = false

[outputs.live_view]
enabled = false

[outputs.mqtt]
enabled = false
"""


def plain(text: str) -> str:
    return _ANSI.sub("", text)


def cam_cameras(output: str) -> list[str]:
    """The camera lines ``cam -l`` prints under "Available cameras:" (``1: Internal front camera (Virtual0)``)."""
    lines = plain(output).splitlines()
    if "Available cameras:" not in lines:
        raise ValueError("no 'Available cameras:' line in cam -l's output")
    after = lines[lines.index("Available cameras:") + 1:]
    return [line.strip() for line in after if re.match(r"\s*\d+: ", line)]


def pipeline_handlers(debug_log: str) -> list[str]:
    """The handlers libcamera was built with: the camera manager's "Found registered pipeline handler" lines."""
    return re.findall(r"Found registered pipeline handler '([^']+)'", plain(debug_log))


def libcamera_version(log: str) -> str:
    """'v0.4.0' from the camera manager's ``libcamera v0.4.0`` line ('?' without one)."""
    found = re.search(r"\blibcamera (v\d+\.\d+\.\d+\S*)", plain(log))
    return found.group(1) if found else "?"


def floor_verdict(exit_code: int, stderr: str) -> str:
    """'refused: <the line>' or 'accepted' from ``face-emotion check``'s exit and stderr; else what went wrong."""
    lines = [line for line in plain(stderr).splitlines() if "picamera2" in line and line.startswith("error:")]
    if exit_code == 2 and len(lines) == 1:
        return "refused: " + lines[0].removeprefix("error: ")
    if exit_code == 0 and not lines:
        return "accepted"
    tail = " | ".join(line for line in stderr.splitlines()[-3:] if line.strip())
    return f"check exit {exit_code}: {tail or 'no output'}"


def summary(facts: dict[str, str]) -> str:
    """The step's one line: libcamera, handlers, cameras, the two verdicts (short), frames."""
    def short(verdict: str) -> str:
        return "refused" if verdict.startswith("refused: ") else verdict

    f = facts
    return (f"picamera2: Debian libcamera {f.get('libcamera', '?')} (pipelines {f.get('pipelines', '?')}); "
            f"cam -l: {f.get('cameras', '?')}; picamera2 {f.get('old', OLD)} {short(f.get('old_check', '?'))}, "
            f"{f.get('new', '?')} {short(f.get('new_check', '?'))}; import picamera2 ({f.get('new', '?')}): "
            f"{f.get('new_import', '?')}; "
            f"Picamera2Source on the virtual camera: {f.get('frames', 'not run')}")


_READ_FRAMES = """
import importlib, json, time
for name in ("edge.inputs.sources", "edge.camera", "edge.camera.picamera2"):
    try:
        Picamera2Source = importlib.import_module(name).Picamera2Source
        break
    except (ImportError, AttributeError):
        continue
source = Picamera2Source((640, 480), (320, 240), fps=15.0, timeout_s=60.0)
started = time.monotonic()
result = {}
try:
    source.open()
    result["open_s"] = round(time.monotonic() - started, 1)
    sizes = set()
    first = time.monotonic()
    for _ in range(FRAMES):
        frame = source.read()
        (h, w), (gh, gw) = frame.image.shape[:2], frame.gray.shape[:2]
        sizes.add(f"main {w}x{h}, gray {gw}x{gh}")
        result["frames"] = result.get("frames", 0) + 1
    result["fps"] = round((result["frames"] - 1) / max(time.monotonic() - first, 1e-6), 1)
    result["sizes"] = sorted(sizes)
except Exception as exc:
    result["error"] = f"{type(exc).__name__}: {exc}"
finally:
    try:
        source.close()
    except Exception as exc:
        result["close_error"] = f"{type(exc).__name__}: {exc}"
print("RESULT " + json.dumps(result))
""".replace("FRAMES", str(FRAMES))


# kms++'s Python bindings, which picamera2's DRM preview imports (so ``import picamera2`` does) and which only the
# Raspberry Pi archive packages (python3-kms++; PyPI's rpi-kms is an sdist that builds kms++ with meson). The frame
# source never opens a preview; with this placeholder beside it the read gets as far as libcamera lets it.
PYKMS_PLACEHOLDER = '''"""A placeholder for kms++'s pykms: picamera2's DRM preview imports it; none of it is used."""


class _Names(type):
    def __getattr__(cls, name):
        return name


class PixelFormat(metaclass=_Names):
    pass


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"pykms.{name}: a placeholder, kms++'s Python bindings are not installed")
'''


def libcamera_errors(output: str) -> list[str]:
    """libcamera's ERROR log lines, as 'Virtual: Requested stream role not supported: Raw'."""
    found = re.findall(r"\bERROR\s+(\w+)\s+\S+\.cpp:\d+\s+(.*)", plain(output))
    return [f"{where}: {text.strip()}" for where, text in found]


def frames_fact(output: str) -> str:
    """'30 frames (main 640x480, gray 320x240), 4.1 fps' from the read's RESULT line, or its error."""
    errors = libcamera_errors(output)
    said = f" (libcamera: {'; '.join(dict.fromkeys(errors))})" if errors else ""
    found = re.search(r"^RESULT (\{.*\})$", output, re.MULTILINE)
    if not found:
        tail = " | ".join(line for line in output.strip().splitlines()[-3:])
        return f"no result: {tail or 'no output'}"
    result = json.loads(found.group(1))
    got = f"{result.get('frames', 0)} frames"
    if result.get("sizes"):
        got += f" ({'; '.join(result['sizes'])}), {result.get('fps')} fps"
    if result.get("error"):
        got += f", then {result['error']}"
    if result.get("close_error"):
        got += f"; close: {result['close_error']}"
    return got + said


def _pip(version: str) -> str:
    spec = f"picamera2=={version}" if version else "picamera2"
    return f"{VENV}/bin/pip install -q --no-deps --upgrade {spec} 2>&1 | tail -n 3"


def _check(python_path: str) -> str:
    """The deployed release's ``face-emotion check`` with the venv's site-packages (the picamera2 under test)."""
    return (f"PYTHONPATH={python_path} {RELEASE}/venv/bin/face-emotion check --config /tmp/picamera2.toml "
            f"--models {RELEASE}/models >/tmp/check.out 2>/tmp/check.err; echo EXIT=$?; cat /tmp/check.err")


def check_verdict(output: str) -> str:
    found = re.search(r"^EXIT=(\d+)$", output, re.MULTILINE)
    if not found:
        return f"no exit status: {output.strip()[-200:]}"
    return floor_verdict(int(found.group(1)), output[found.end():])


def run_step(run: Shell, facts: dict[str, str], log: list[str]) -> None:
    """The step itself; ``facts`` gets libcamera, pipelines, cameras, old/new (+ _check) and frames."""
    def sh(script: str, timeout: float = 1800, check: bool = True) -> str:
        out = run.sh(script, timeout=timeout, check=check)
        log.append(f"$ {script}\n{out}")
        return out

    if not sh(f"test -x {RELEASE}/venv/bin/face-emotion && echo yes", check=False).strip():
        raise RuntimeError(f"no deployed release at {RELEASE}: run the deploy step first (--steps camera,deploy,...)")
    # The release is what is checked, not the running service: stopped, it leaves the emulated CPU to apt and pip.
    sh("sudo systemctl stop face-emotion")
    apt = "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
    sh(f"{apt} {' '.join(LIBCAMERA_APT)} >/tmp/apt-libcamera.log 2>&1 || {{ tail -n 5 /tmp/apt-libcamera.log; "
       "exit 1; }")
    sh(f"printf '%s' {shlex.quote(VIRTUAL_YAML)} | sudo tee /tmp/virtual.yaml >/dev/null")
    before = sh("sudo env LIBCAMERA_LOG_LEVELS='*:DEBUG' cam -l 2>&1", timeout=300)  # root: vivid's media device too
    facts["libcamera"] = libcamera_version(before)
    facts["pipelines"] = ",".join(pipeline_handlers(before)) or "none"
    facts["cameras_without_config"] = "; ".join(cam_cameras(before)) or "none"
    if "virtual" in facts["pipelines"].split(","):
        sh(f"sudo mkdir -p {VIRTUAL_YAML_PATH.rsplit('/', 1)[0]} && sudo install -m 0644 /tmp/virtual.yaml "
           f"{VIRTUAL_YAML_PATH}")
    listed = sh("sudo cam -l 2>&1", timeout=300)
    cameras = cam_cameras(listed)
    facts["cameras"] = "; ".join(cameras) or "none"
    sh(f"{apt} {' '.join(IMPORT_APT)} >/tmp/apt-import.log 2>&1 || {{ tail -n 5 /tmp/apt-import.log; exit 1; }}")
    sh(f"python3 -m venv --system-site-packages {VENV}")
    failed = []
    for package in IMPORT_PIP:  # one by one: pip installs all or nothing, and PiDNG is built here
        # Debian's setuptools builds PiDNG: pip's isolated build env failed here once ("cannot import name
        # 'setup' from 'setuptools' (unknown location)").
        out = sh(f"cd / && {VENV}/bin/pip install -q --no-deps --no-build-isolation {package} >/tmp/pip.log 2>&1; "
                 "echo PIP=$?; "
                 "grep -iE '^error|error:' /tmp/pip.log | head -n 5", timeout=1800, check=False)
        if "PIP=0" not in out:
            failed.append(f"{package} ({' | '.join(out.split('PIP=', 1)[-1].splitlines()[1:3])})")
    facts["import_pip"] = "; ".join(failed) if failed else "all installed"
    sh(f"printf '%s' {shlex.quote(check_config())} > /tmp/picamera2.toml")
    site = sh(f"{VENV}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'").strip()
    for key, version in (("old", OLD), ("new", "")):
        sh(_pip(version))
        facts[key] = sh(f"{VENV}/bin/python -c 'import importlib.metadata as m; print(m.version(\"picamera2\"))'"
                        ).strip()
        imported = sh(f"{VENV}/bin/python -c 'import picamera2; print(\"IMPORT=ok\")' 2>&1 | tail -n 1", check=False)
        facts[f"{key}_import"] = "ok" if "IMPORT=ok" in imported else imported.strip()
        facts[f"{key}_check"] = check_verdict(sh(_check(site), timeout=600, check=False))
    if not cameras:
        facts["frames"] = "not run (cam -l lists no camera)"
        return
    shim = ""
    if "pykms" in facts["new_import"]:
        sh(f"mkdir -p {VENV}/shim && printf '%s' {shlex.quote(PYKMS_PLACEHOLDER)} > {VENV}/shim/pykms.py")
        shim = f"{VENV}/shim:"
    script = shlex.quote(_READ_FRAMES)
    out = sh(f"cd /tmp && sudo PYTHONPATH={shim}{site} {RELEASE}/venv/bin/python -c {script} 2>&1 | tail -n 20",
             timeout=900, check=False)
    facts["frames"] = frames_fact(out) + (" (with a placeholder pykms)" if shim else "")
