"""The latency figures: the corner text and the stage names every part reads."""

from __future__ import annotations

from edge.bench import report
from edge.frame.stats import PIPELINE_STAGES, STAGES, LatencyStats, stats_text


def test_stats_text_lives_with_the_stats():
    stats = LatencyStats()
    assert stats_text(stats) == "0.0 fps"
    for i, total in enumerate((38.0, 40.2, 90.0)):
        stats.add({"total": total}, stamp=i * 0.1)
    assert stats_text(stats) == "10.0 fps  40 ms"


def test_the_stage_names_are_one_tuple():
    """The service, the bench's table and the pipeline (tests/test_pipeline.py) use the names in one order."""
    header = report.timing_table({"variants": []}).splitlines()[1].split()
    assert header[1:header.index("|")] == ["capture", *PIPELINE_STAGES]  # a bench row has no outputs stage
    stats = LatencyStats()
    stats.add({stage: 1.0 for stage in (*STAGES, "total")}, stamp=0.0)
    assert [part.split()[0] for part in stats.summary().split(": ", 1)[1].split("; ")[0].split(", ")] == list(STAGES)
