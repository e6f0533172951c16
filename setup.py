"""Build hooks: ship the device's models inside the ``edge`` package (``edge/_models``).

Everything else is declared in ``pyproject.toml``. ``pip install .`` and wheels get
``models/``'s shipped files copied into ``edge/_models`` at build time: the TFLite
models, ``manifest.json``, the Haar cascade, detector models and licences, i.e. every
file at the top of ``models/`` but the float ``.keras`` training models, plus any file
the manifest names elsewhere. Whatever is in ``models/`` when the wheel is built is what
ships. Editable installs and checkouts read ``models/`` in place
(:func:`edge.manifest.default_models_dir`), so nothing is copied into the source tree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
MODELS = "models"
PACKAGED = Path("edge") / "_models"
LEFT_OUT = (".keras", ".tmp")  # float training models (TensorFlow only) and half-written files


def _named_files(value: object) -> list[str]:
    """Every string under a ``file`` key anywhere in the manifest."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "file" and isinstance(v, str)] + [
            f for v in value.values() for f in _named_files(v)]
    if isinstance(value, list):
        return [f for v in value for f in _named_files(v)]
    return []


def model_files(root: Path = ROOT) -> list[str]:
    """Paths relative to ``models/`` that ship."""
    models = root / MODELS
    if not (models / "manifest.json").is_file():
        raise SystemExit(f"{models}/manifest.json missing: a wheel without models would not run")
    top = [p.name for p in models.iterdir()
           if p.is_file() and not p.name.startswith(".") and not p.name.endswith(LEFT_OUT)]
    named = _named_files(json.loads((models / "manifest.json").read_text()))
    return sorted(set(top) | {n for n in named if (models / n).is_file() and not n.endswith(LEFT_OUT)})


class BuildPyWithModels(build_py):
    """``build_py`` that also copies the shipped models into ``edge/_models`` of the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout's models/ is read in place
        source = Path(self.get_package_dir("edge")).resolve().parent / MODELS  # a checkout or an unpacked sdist
        packaged = Path(self.build_lib) / PACKAGED
        shutil.rmtree(packaged, ignore_errors=True)  # a reused build/ must not keep models since removed
        for name in model_files(source.parent):
            target = Path(self.build_lib) / PACKAGED / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target)


class SdistWithModels(sdist):
    """An sdist carries the same model files (under ``models/``), so a wheel built from it has them too."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        for name in model_files():
            target = Path(base_dir) / MODELS / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / MODELS / name, target)


setup(cmdclass={"build_py": BuildPyWithModels, "sdist": SdistWithModels})
