"""train_host.count_faces: the README's media table; its Haar column is paper mode, not the default detector."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_haar_column_runs_haar_even_though_blazeface_is_the_default(tmp_path, capsys):
    """On the coins Haar puts 6 boxes at their own size and 8 at 640x480 (the README's table); BlazeFace none.
    Since BlazeFace became the default the column built from DetectorSettings() had silently become BlazeFace."""
    from train_host.count_faces import main

    for name in ("coins.png", "biden.jpg"):
        shutil.copy(ROOT / "samples" / name, tmp_path / name)
    (tmp_path / "manifest.csv").write_text("file,kind,expected_faces\ncoins.png,negative,0\nbiden.jpg,positive,1\n")
    assert main(["--media", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    false_faces = dict(zip(header, (cell.strip() for cell in lines[-1].strip("|").split("|"))))
    assert false_faces["haar native"] == "6" and false_faces["haar 640x480"] == "8"
    assert false_faces["blazeface native"] == false_faces["blazeface 640x480"] == "0"
