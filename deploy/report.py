"""The per-host result table printed at the end of every command."""

from __future__ import annotations

from collections.abc import Sequence

from deploy.actions import HostResult
from deploy.layout import SERVICE, Layout

HEADER = ("HOST", "RELEASE", "RESULT", "REASON")


def format_table(results: Sequence[HostResult]) -> str:
    """Plain fixed-width columns: readable in a terminal and easy to grep in CI logs."""
    rows = [HEADER] + [(r.host, r.release or "-", "ok" if r.ok else "failed", r.reason) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
             for row in rows]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def next_steps(results: Sequence[HostResult], layout: Layout | None = None) -> str:
    """What to try on a Pi that took the release: watch the service, or stop it and run by hand.

    Hand runs use the release venv (``current/venv``), the only Python that
    sees apt's picamera2 and the pip-installed ai-edge-litert together, and
    need the service stopped first: it holds the camera.
    """
    ok = [r.host for r in results if r.ok]
    if not ok:
        return ""
    lay = layout or Layout()
    exe = f"{lay.current}/venv/bin/face-emotion"
    models = f"{lay.current}/models"
    return "\n".join([
        f"Try it on the Pi (ssh {ok[0]}):",
        f"  systemctl status {SERVICE}; journalctl -u {SERVICE} -f   # the service; a latency line every 30 s",
        f"  sudo systemctl stop {SERVICE}                             # it holds the camera; then, by hand:",
        f"  {exe} bench --source camera --models {models} --baselines none --no-chart",
        f"  {exe} run --config {lay.config} --models {models} --frames 300",
        f"  sudo systemctl start {SERVICE}",
    ])
