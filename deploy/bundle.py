"""Build, on the PC, everything a release needs, as one tar streamed to each target.

The wheel is built once for all hosts; the tar holds the wheel, the models, the
example config and the unit file, owned by root with fixed modes so that what
lands on the Pi does not depend on the PC's user or umask.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import DeployError
from deploy.layout import MODEL_PATTERNS, RELEASE_ID_RE, SERVICE

# Files at the top of the repository that the wheel build reads.
_BUILD_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE", "MANIFEST.in")


@dataclass(frozen=True)
class Bundle:
    """What is sent to every host: the release id and the tar to unpack there."""

    release_id: str
    wheel_name: str
    model_files: tuple[str, ...]
    data: bytes


def git_short_sha(repo: Path) -> str:
    """Short sha of HEAD, or ``nogit`` when the tree has no git history."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=7", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return "nogit"
    sha = proc.stdout.strip().lower()
    return sha if proc.returncode == 0 and sha.isalnum() else "nogit"


def make_release_id(sha: str, now: dt.datetime | None = None) -> str:
    """``<UTC timestamp>-<sha>``: names sort in deploy order."""
    now = now or dt.datetime.now(dt.UTC)
    release_id = f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{sha}"
    if not RELEASE_ID_RE.match(release_id):
        raise DeployError(f"bad release id {release_id!r}")
    return release_id


def _copy_sources(repo: Path, dest: Path) -> None:
    """Copy what the build reads, so setuptools' build/ and egg-info never land in the repo.

    models/ too: setup.py packs the shipped models into the wheel (edge/_models)
    and refuses to build without them; the float .keras files never ship. And
    samples/: setup.py packs a few of them (edge/_samples, the bench's default input).
    """
    for name in _BUILD_FILES:
        if (repo / name).is_file():
            shutil.copy2(repo / name, dest / name)
    if (repo / "models").is_dir():
        shutil.copytree(repo / "models", dest / "models", ignore=shutil.ignore_patterns("*.keras", "runs", "reports"))
    if (repo / "samples").is_dir():
        shutil.copytree(repo / "samples", dest / "samples")
    for child in sorted(repo.iterdir()):
        if child.is_dir() and (child / "__init__.py").is_file() and not child.name.startswith("."):
            shutil.copytree(child, dest / child.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _can_build_wheels() -> bool:
    """Whether this Python's setuptools can build our wheel without pip's isolated build environment.

    setuptools 77 reads the licence as an SPDX expression (``license = "MIT"`` in pyproject.toml); older ones
    refuse that pyproject.toml, with or without the ``wheel`` package (which 70.1 and later no longer need).
    """
    try:
        from importlib.metadata import version

        major = int(version("setuptools").split(".")[0])
    except (ValueError, ImportError):
        return False
    return major >= 77


def build_wheel(repo: Path, out_dir: Path) -> Path:
    """Build the project's wheel with pip (no dependencies: numpy/OpenCV come from apt)."""
    if not (repo / "pyproject.toml").is_file():
        raise DeployError(f"no pyproject.toml in {repo}: run from the repository or pass --repo")
    if importlib.util.find_spec("pip") is None:
        raise DeployError(f"{sys.executable} has no pip: install python3-pip, or pass a built wheel with --wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(out_dir)]
    # Without setuptools 77 here, let pip fetch it into an isolated build environment (the SPDX licence).
    if importlib.util.find_spec("setuptools") is not None and _can_build_wheels():
        cmd.append("--no-build-isolation")
    with tempfile.TemporaryDirectory(prefix="face-emotion-src-") as src:
        _copy_sources(repo, Path(src))
        proc = subprocess.run([*cmd, src], capture_output=True, text=True, check=False)
    wheels = sorted(out_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        raise DeployError(f"wheel build failed: {lines[-1].strip() if lines else 'no wheel produced'}")
    return wheels[-1]


def select_models(models_dir: Path) -> list[Path]:
    """The release's model files: only *.tflite, *.xml and manifest.json, top level."""
    if not models_dir.is_dir():
        raise DeployError(f"models directory not found: {models_dir}")
    files = sorted({p for pattern in MODEL_PATTERNS for p in models_dir.glob(pattern) if p.is_file()})
    if not files:
        raise DeployError(f"no model files ({', '.join(MODEL_PATTERNS)}) in {models_dir}")
    return files


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DeployError(f"cannot read {what} {path}: {exc.strerror}") from exc


def make_bundle(
    *,
    release_id: str,
    wheel: Path,
    models_dir: Path,
    example_config: Path,
    unit_file: Path,
) -> Bundle:
    """Pack the release's files; layout matches what the remote release step expects."""
    if not example_config.is_file():
        raise DeployError(f"example config not found: {example_config} (pass --example-config)")
    if not unit_file.is_file():
        raise DeployError(f"unit file not found: {unit_file} (pass --unit)")
    if not wheel.is_file() or wheel.suffix != ".whl":
        raise DeployError(f"not a wheel file: {wheel}")
    models = select_models(models_dir)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_dir(tar, "wheels")
        _add(tar, f"wheels/{wheel.name}", _read(wheel, "wheel"))
        _add_dir(tar, "models")
        for path in models:
            _add(tar, f"models/{path.name}", _read(path, "model file"))
        _add(tar, "config.example.toml", _read(example_config, "example config"))
        _add(tar, f"{SERVICE}.service", _read(unit_file, "unit file"))
        _add(tar, "RELEASE", f"{release_id}\nwheel {wheel.name}\n".encode())
    return Bundle(release_id, wheel.name, tuple(p.name for p in models), buf.getvalue())
