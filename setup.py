"""Build hooks: ship the device's models inside the ``edge`` package (``edge/_models``).

Everything else is declared in ``pyproject.toml``. ``pip install .`` and wheels get
``models/``'s shipped files copied into ``edge/_models`` at build time: the TFLite
models, ``manifest.json``, the Haar cascade, detector models and licences, i.e. every
file at the top of ``models/`` but the float ``.keras`` training models, plus any file
the manifest names elsewhere. Whatever is in ``models/`` when the wheel is built is what
ships. Editable installs and checkouts read ``models/`` in place
(:func:`edge.frame.manifest.default_models_dir`), so nothing is copied into the source tree.

A few of ``samples/`` (:data:`SHIPPED_SAMPLES`, about 390 KB, with their rows of
``manifest.csv``) ship as ``edge/_samples``: the default input of ``face-emotion bench``
when there is no checkout, so the bench runs right after ``pip install``.
"""

from __future__ import annotations

import csv
import io
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
SAMPLES = "samples"
PACKAGED_SAMPLES = Path("edge") / "_samples"
# two faces to find (a portrait, a 720p frame) and two pictures with none (a cat; coins that fool Haar)
SHIPPED_SAMPLES = ("astronaut.jpg", "obama_720p.jpg", "chelsea.jpg", "coins.png")


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


def sample_manifest(root: Path = ROOT) -> str:
    """``samples/manifest.csv`` cut to the shipped samples' rows (the bench reads the expected face counts)."""
    rows = list(csv.reader(io.StringIO((root / SAMPLES / "manifest.csv").read_text())))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([rows[0]] + [r for r in rows[1:] if r and r[0] in SHIPPED_SAMPLES])
    return out.getvalue()


def copy_samples(root: Path, target: Path) -> None:
    """The shipped samples and their manifest rows into ``target``."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in (*SHIPPED_SAMPLES, "README.md"):  # the README names each picture's source and licence
        shutil.copyfile(root / SAMPLES / name, target / name)
    (target / "manifest.csv").write_text(sample_manifest(root))


class BuildPyWithModels(build_py):
    """``build_py`` that also copies the shipped models (``edge/_models``) and sample photos (``edge/_samples``)."""

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
        copy_samples(source.parent, Path(self.build_lib) / PACKAGED_SAMPLES)


class SdistWithModels(sdist):
    """An sdist carries the same model files (under ``models/``), so a wheel built from it has them too."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        for name in model_files():
            target = Path(base_dir) / MODELS / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / MODELS / name, target)
        for name in (*SHIPPED_SAMPLES, "manifest.csv", "README.md"):
            (Path(base_dir) / SAMPLES).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / SAMPLES / name, Path(base_dir) / SAMPLES / name)


setup(cmdclass={"build_py": BuildPyWithModels, "sdist": SdistWithModels})
