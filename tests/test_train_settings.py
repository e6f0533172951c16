"""A training run's settings resolved from the command line, before any data is read (no TensorFlow here)."""

from __future__ import annotations

import dataclasses

import pytest

from train_host.data import DataError
from train_host.train import parse_args
from train_host.train_settings import INVOCATION_KEYS, TrainSettings, resolve


def test_resolve_fills_the_defaults_and_leaves_the_command_line_alone():
    args = parse_args(["gender", "--data", "faces", "--out", "run", "--zoom", "0.2", "--stop-after", "3"])
    parsed = dict(vars(args))
    settings, state = resolve(args)
    assert vars(args) == parsed and state is None  # resolved into a new object, args as parsed
    assert (settings.model, settings.size, settings.epochs, settings.cutout, settings.mixup) == (
        "mini_xception", 64, 60, 0.0, 0.0)
    assert settings.patience is None and settings.early_stop_patience == 15 and settings.plateau_patience == 5
    assert settings.augment.zoom == 0.2 and settings.augment.shift == 0.08  # the command's zoom, gender's shift
    stored = settings.stored()
    assert set(stored) == set(parsed) - set(INVOCATION_KEYS) | {"num_classes"}  # what resume.json keeps
    assert stored["num_classes"] == 2 and "stop_after" not in stored
    assert {f.name for f in dataclasses.fields(TrainSettings)} >= set(parsed)  # every option has its field


@pytest.mark.parametrize("argv, message", [
    (["emotion", "--out", "run"], "--data and --out are required"),
    (["emotion", "--data", "d", "--out", "o", "--size", "8"], "--size 8 is too small"),
    (["emotion", "--data", "d", "--out", "o", "--batch", "0"], "--batch 0: expected a whole number"),
    (["emotion", "--data", "d", "--out", "o", "--temperature", "2"], "need --teacher"),
    (["emotion", "--data", "d", "--out", "o", "--cutout", "1"], "--cutout 1.0"),
])
def test_resolve_refuses_bad_options_in_one_line(argv, message):
    with pytest.raises(DataError, match=message):
        resolve(parse_args(argv))
