"""The per-host result table printed at the end of every command."""

from __future__ import annotations

from collections.abc import Sequence

from deploy.actions import HostResult

HEADER = ("HOST", "RELEASE", "RESULT", "REASON")


def format_table(results: Sequence[HostResult]) -> str:
    """Plain fixed-width columns: readable in a terminal and easy to grep in CI logs."""
    rows = [HEADER] + [(r.host, r.release or "-", "ok" if r.ok else "failed", r.reason) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
             for row in rows]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)
