"""Settings on the command line: every field has a flag, and a flag reaches the bench row that runs it.

The fields are walked here independently of :mod:`edge.cli`, so a field the
generator skipped, a flag ``python -m edge analyze`` lacks, or a setting a bench
row does not receive (the lost ``--full-scan-every``) fails a test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from edge import analyze
from edge.bench import __main__ as bench
from edge.bench import row as bench_run
from edge.cli import settings_from, settings_from_json
from edge.detectors import DetectorSettings
from edge.frame.pipeline import ModelSettings
from edge.settings import ConfigError, from_mapping

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {"models": ModelSettings, "detector": DetectorSettings}


def fields(cls: type, key: str) -> list[tuple[str, Any, Any]]:
    """(dotted key, type, default) of every leaf field of a settings dataclass, nested tables flattened."""
    hints, instance, out = typing.get_type_hints(cls), cls(), []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += fields(hints[f.name], f"{key}.{f.name}")
        else:
            out.append((f"{key}.{f.name}", hints[f.name], getattr(instance, f.name)))
    return out


LEAVES = [leaf for name, cls in SECTIONS.items() for leaf in fields(cls, name)]


def nested(key: str, value: Any) -> dict[str, Any]:
    *tables, leaf = key.split(".")
    out: dict[str, Any] = {leaf: value}
    for table in reversed(tables[1:]):
        out = {table: out}
    return out


def other_value(key: str, tp: Any, default: Any) -> Any:
    """A value unlike the default that the section's own validation accepts."""
    if tp is bool:
        candidates: list[Any] = [not default]
    elif typing.get_origin(tp) is typing.Literal:
        candidates = [c for c in typing.get_args(tp) if c != default]
    elif tp is int:
        candidates = [default + 1, default + 64, default - 1]
    elif tp is float:
        candidates = [round(default * 1.2, 3), round(default + 0.1, 3), round(default - 0.1, 3)]
    else:
        candidates = ["float32" if default == "int8" else "/tmp/models"]
    section = SECTIONS[key.split(".")[0]]
    for value in candidates:
        try:
            from_mapping(section, nested(key, value))
        except ConfigError:
            continue
        return value
    raise AssertionError(f"no valid non-default value for {key}")


def flag_for(parser, key: str) -> str:
    actions = [a for a in parser._actions if a.dest == f"settings.{key}"]
    assert actions, f"{key} has no command-line flag"
    return actions[0].option_strings[0]


def argv_for(flag: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [flag] if value else ["--no-" + flag[2:]]
    return [flag, str(value)]


def expected(key: str, value: Any) -> tuple[ModelSettings, DetectorSettings]:
    sections: dict[str, Any] = {name: {} for name in SECTIONS}
    sections[key.split(".")[0]] = nested(key, value)
    return (from_mapping(ModelSettings, sections["models"]), from_mapping(DetectorSettings, sections["detector"]))


def row_settings(argv: list[str]) -> tuple[ModelSettings, DetectorSettings]:
    """What the bench's first row would run with: its command as ``edge.bench.row`` parses it."""
    args = bench.parse_args([*argv, "--baselines", "none"])
    command = bench.variant_command(bench.variants_of(args)[0], args, Path("frames.npy"), stream=True)
    assert command[1:3] == ["-m", "edge.bench.row"]
    models, detector = settings_from_json(bench_run.parse_args(command[3:]).settings)
    return dataclasses.replace(models, dir=""), detector  # the bench fills in the default models folder


@pytest.mark.parametrize("key,tp,default", LEAVES, ids=[leaf[0] for leaf in LEAVES])
def test_every_setting_has_a_flag_in_analyze_and_reaches_a_bench_row(key, tp, default):
    value = other_value(key, tp, default)
    want = expected(key, value)
    argv = argv_for(flag_for(analyze.build_parser(), key), value)
    assert settings_from(analyze.build_parser().parse_args(["x.jpg", *argv])) == want
    if key == "models.dir":
        args = bench.parse_args([*argv, "--baselines", "none"])
        assert bench.variant_command(bench.variants_of(args)[0], args, Path("f.npy"), False)[-1].count(value) == 1
        return
    assert row_settings(argv) == want


def test_no_flag_given_means_the_dataclass_defaults():
    assert settings_from(analyze.build_parser().parse_args(["x.jpg"])) == (ModelSettings(), DetectorSettings())
    assert row_settings([]) == (ModelSettings(), DetectorSettings())


def test_a_bad_flag_value_is_one_line_naming_the_key():
    proc = subprocess.run([sys.executable, "-m", "edge", "analyze", str(ROOT / "samples"), "--roi-margin", "9"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: detector.roi_margin: 9.0 is outside 0.1..2.0"]


def test_full_scan_every_reaches_the_timed_row(tmp_path):
    """The bug this module exists for: the report said full_scan_every=1 while the row ran with 8."""
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "edge.bench", "--full-scan-every", "1", "--variants", "int8:1:0",
                           "--frames", "2", "--warmup", "0", "--rounds", "1", "--baselines", "none", "--no-chart",
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())["variants"][0]
    assert row["detector"]["full_scan_every"] == 1 and row["full_scan_every"] == 1
