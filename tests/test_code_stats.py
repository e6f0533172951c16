"""tools/code_stats.py: the figures an issue's closing note quotes, from the same graph the architecture test reads."""

from __future__ import annotations

from pathlib import Path

from tools.code_stats import functions, main

ROOT = Path(__file__).resolve().parent.parent


def test_function_lengths_count_from_def_to_the_last_line_methods_by_class():
    found = dict((name, lines) for lines, name in functions(ROOT / "edge" / "frame" / "stats.py"))
    assert found["edge.frame.stats:stats_text"] == 5  # def, a two-line docstring, two statements
    assert found["edge.frame.stats:LatencyStats.__init__"] == 4


def test_the_report_names_circles_upward_imports_and_the_largest_pieces(capsys):
    assert main(["--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:3] == ["import circles: 0", "upward imports: 0"]  # what tests/test_architecture.py enforces
    longest = [line for line in lines if line.startswith("edge/: longest functions: ")]
    assert len(longest) == 1 and longest[0].count(", ") == 1  # --top 2
