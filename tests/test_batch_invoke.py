"""The batch-2 measurement (issue 30, item 2): one [2, 64, 64, 1] invoke gives the two batch-1 answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.batch_invoke import main, measure

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.mark.parametrize("variant", ["int8", "float32"])
def test_a_batch_of_the_face_and_its_mirror_gives_the_same_outputs_as_two_invokes(variant):
    result = measure(MODELS / f"emotion_mini_xception_{variant}.tflite", rounds=40, threads=1)
    assert result["identical_outputs"] == 40
    for way in ("two_invokes", "batch2"):  # measured and printed, not asserted as a speed
        assert result[way]["median_ms"] > 0


def test_bad_arguments_are_one_line(capsys):
    assert main(["--model", "nowhere.tflite"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
