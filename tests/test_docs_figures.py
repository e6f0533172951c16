"""The generated figure blocks of README.md and docs/*.md are what their stored JSON renders (tools/docs_figures.py).

Fast and without ../shared: it renders docs/figures/*.json, runs nothing.
A hand edit inside a block, a JSON updated without ``--from-json``, or a
marker without its partner fails here with the command that fixes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import docs_figures as figures

ROOT = Path(__file__).resolve().parents[1]


def test_every_block_is_what_its_json_renders():
    assert figures.differences() == []


def test_the_docs_carry_every_block_and_every_figure_has_its_json():
    text = "".join(path.read_text() for path in figures.doc_files())
    used = {name for name, _ in figures.BLOCK.findall(text)}
    assert used == set(figures.BLOCKS), f"blocks defined but quoted nowhere: {set(figures.BLOCKS) - used}"
    for name in figures.FIGURES:
        assert (figures.FIGURES_DIR / f"{name}.json").is_file(), f"run: python -m tools.docs_figures --only {name}"


def test_a_hand_edit_or_a_changed_json_is_caught(tmp_path):
    doc = tmp_path / "doc.md"
    good = (f"The models are <!-- figures:models-weights -->"
            f"{figures.render_weights(figures.load_figure('models'))}<!-- /figures:models-weights -->.\n")
    doc.write_text(good)
    assert figures.differences([doc]) == []
    doc.write_text(good.replace(" kB and", " KB and", 1))  # a hand edit inside the block
    assert [line for line in figures.differences([doc]) if "'models-weights' differs" in line]
    doc.write_text(good)
    stored = tmp_path / "figures"
    stored.mkdir()
    models = figures.load_figure("models")
    models["models"][0]["bytes"] += 5000  # a new model, the docs not re-rendered
    (stored / "models.json").write_text(json.dumps(models))
    assert [line for line in figures.differences([doc], stored) if "differs" in line]
    new, missing = figures.rerender(good, stored)
    assert missing == [] and figures.differences([doc], stored) and new != good


def test_markers_that_do_not_pair_up_or_name_no_block_are_reported():
    assert figures.marker_problems("<!-- figures:models-weights -->x") == [
        "<!-- figures:models-weights --> is never closed"]
    assert figures.marker_problems("<!-- figures:nope -->x<!-- /figures:nope -->")[0].startswith(
        "unknown block 'nope'")
    assert "does not pair up" in figures.marker_problems("x<!-- /figures:models-weights -->")[0]


def test_the_models_figure_is_the_models_on_disk():
    """The cheap producer, run here: a model replaced in models/ without regenerating the figures fails."""
    produced = figures.produce_models(Path("unused"))
    for model in produced["models"]:
        assert model["bytes"] == (ROOT / "models" / model["file"]).stat().st_size
    assert produced == figures.load_figure("models"), "models/ changed: python -m tools.docs_figures --only models"


def test_the_models_table_says_which_figure_is_mirror_averaged_and_puts_the_shipped_one_first():
    def entry(accuracy: float, flip: bool) -> dict:
        return {"dataset": "FER-2013", "split": "PublicTest", "faces": 3589, "subset": "all", "accuracy": accuracy,
                "flip_average": flip}

    models = {"models": [
        {"file": "e.tflite", "input": "64x64", "bytes": 1024, "flip_average": True,
         "accuracy": [entry(0.64, False), entry(0.65, True)]},
        {"file": "g.tflite", "input": "64x64", "bytes": 1024, "flip_average": False,
         "accuracy": [entry(0.91, False), entry(0.92, True)]},
    ]}
    rows = figures.render_models_table(models).strip().splitlines()[2:]
    assert "65.00% on FER-2013 PublicTest (3,589 faces, mirror-averaged, as shipped); 64.00% on FER-2013 PublicTest " \
           "(3,589 faces, one invoke)" in rows[0]
    assert "91.00% on FER-2013 PublicTest (3,589 faces); 92.00% on FER-2013 PublicTest (3,589 faces, " \
           "mirror-averaged)" in rows[1]


def test_the_label_figures_read_analyze_output():
    line = "x.mp4: 275 frames, 212 faces, 7 tracks, 5 emotion label changes (0.71 per track-second)"
    match = figures.LABEL_LINE.search(line)
    assert match is not None and match.groups() == ("275", "212", "7", "5", "0.71")


def test_check_from_json_and_list_on_the_command_line(tmp_path):
    run = [sys.executable, "-m", "tools.docs_figures"]
    done = subprocess.run([*run, "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    listing = subprocess.run([*run, "--list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "bench-stream (timing: only with --only): python -m edge.bench --hold 15" in listing
    bad = subprocess.run([*run, "--only", "nosuch"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --only: unknown figure(s) nosuch")


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.skipif(not (figures.SHARED / "media" / "videos").is_dir(), reason="needs ../shared/media")
def test_the_stored_label_figures_are_what_analyze_prints_now(tmp_path):
    """The short clip (275 frames, twice): its committed label figures are what the current code prints."""
    clip = "hamilton_short_clip.mp4"
    now = figures.produce_labels(tmp_path, (clip,))
    assert now["videos"][clip] == figures.load_figure("labels")["videos"][clip], (
        "the label figures changed: python -m tools.docs_figures --only labels")


def test_the_bench_figures_name_the_default_and_the_previous_release_rows_as_the_bench_labels_them():
    from edge.bench.__main__ import Variant, parse_variants
    from edge.detectors import DetectorSettings
    from edge.frame.pipeline import ModelSettings

    rows = parse_variants(figures.BENCH_VARIANTS, Variant(ModelSettings(), DetectorSettings()))
    assert rows[0].shipped and rows[0].threads == figures.DEFAULT_THREADS == ModelSettings().threads
    assert rows[-1].label == figures.PREVIOUS_RELEASE and not rows[-1].shipped
    assert rows[-1].settings("")[0].joint is False and rows[0].settings("")[0].joint is True
