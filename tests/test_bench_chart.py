"""The bench chart: a total at the end of every bar, room for the longest one, no absolute path in the title."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")


def row(label: str, detect: float, emotion: float, default: bool = False) -> dict:
    stages = {"detect": {"mean": detect}, "emotion": {"mean": emotion}, "total": {"mean": detect + emotion}}
    return {"label": label, "stages": stages, "default": default}


def test_bars_carry_their_totals_and_the_title_no_home_path(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from edge.bench.report import write_chart

    source = tmp_path / "photos"
    monkeypatch.chdir(tmp_path)
    report = {"input": {"source": str(source), "description": f"7 images from {source}, letterboxed to 640x480"},
              "variants": [row("int8 t1 full", 30.0, 1.5, default=True), row("int8 t1 w320", 9.0, 1.25)]}
    texts, titles, limits = [], [], []
    original_text, original_title, original_save = Axes.text, Axes.set_title, Figure.savefig

    def record_text(self, x, y, s, *args, **kwargs):
        texts.append((x, s))
        return original_text(self, x, y, s, *args, **kwargs)

    def record_save(self, *args, **kwargs):
        limits.append(self.axes[0].get_xlim())
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "text", record_text)
    def record_title(self, title, *args, **kwargs):
        titles.append(title)
        return original_title(self, title, *args, **kwargs)

    monkeypatch.setattr(Axes, "set_title", record_title)
    monkeypatch.setattr(Figure, "savefig", record_save)
    assert write_chart(report, tmp_path / "chart.png") is None
    assert (tmp_path / "chart.png").stat().st_size > 1000
    assert sorted(s for _, s in texts) == ["10.2 ms", "31.5 ms"]
    assert max(x for x, _ in texts) < limits[0][1]  # the longest total is inside the plot
    assert titles == ["edge.bench: 7 images from photos, letterboxed to 640x480"]
    assert str(tmp_path) not in titles[0] and os.sep + "photos" not in titles[0]


def test_a_source_outside_the_working_folder_is_shown_by_name(tmp_path, monkeypatch):
    from edge.bench.report import chart_title

    monkeypatch.chdir(tmp_path)
    elsewhere = Path("/srv/data/media")
    assert chart_title({"source": str(elsewhere), "description": f"3 frames of a video from {elsewhere}"}) == \
        "3 frames of a video from media"
    assert chart_title({"source": "camera", "description": "100 camera frames from camera"}) == \
        "100 camera frames from camera"
