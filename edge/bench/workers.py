"""The bench's row processes, and the rounds in which they take turns.

Each row (one of our settings or a baseline) is a child process that loads
its pipeline, warms up and then answers ``run N`` / ``done`` on its stdin
(:func:`edge.bench.loop.serve`). The rows are started one after another (so
no timed frame overlaps another row's start-up) and then given their frames in
``rounds`` short chunks, in turn: a background job or a Pi's thermal
throttling then slows every row alike instead of whichever row happened to run
at the time.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 600.0  # TensorFlow's import plus the warm-up on a slow machine
CHUNK_TIMEOUT_S, PER_FRAME_TIMEOUT_S = 120.0, 30.0


class RowProcess:
    """One row's child process and its line protocol; ``final`` holds the row's JSON (or why it failed)."""

    def __init__(self, label: str, command: list[str], env: dict[str, str], cwd: Path):
        self.label = label
        self.final: dict[str, Any] | None = None
        self._buffer = b""
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child; read on failure
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, cwd=cwd)

    @property
    def live(self) -> bool:
        return self.final is None

    def _fail(self, why: str | None = None) -> None:
        """Stop the child; the row's error is ``why`` or the last line it wrote to stderr."""
        self.close()
        self.final = {"error": why or self.last_error_line()}

    def last_error_line(self) -> str:
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else f"exit status {self.proc.poll()}"

    def _message(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON line from the child; None if it ended (or timed out: then it is stopped)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer or not self._buffer.lstrip().startswith(b"{"):
            if b"\n" in self._buffer:  # a library printed to stdout: skip the line
                self._buffer = self._buffer.split(b"\n", 1)[1]
                continue
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                self._fail(f"no answer within {timeout:.0f} s")
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _send(self, text: str) -> bool:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def start(self) -> None:
        """Wait for ``ready``; a row that cannot run says why at once (``available: false``) or fails."""
        message = self._message(START_TIMEOUT_S)
        if not self.live:
            return
        if message is None:
            self._fail()
        elif not message.get("ready"):
            self.final = message
            self.close()

    def run(self, frames: int) -> None:
        if not self.live:
            return
        message = self._message(CHUNK_TIMEOUT_S + PER_FRAME_TIMEOUT_S * frames) if self._send(f"run {frames}") else None
        if self.live and (message is None or message.get("ok") != frames):
            self._fail()

    def finish(self) -> None:
        if not self.live:
            return
        message = self._message(START_TIMEOUT_S) if self._send("done") else None
        if self.live:
            if message is None:
                self._fail()
            else:
                self.final = message
                self.close()

    def close(self) -> None:
        """Let the child exit (or stop it) and release its pipes."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def chunks(frames: int, rounds: int) -> list[int]:
    """``frames`` split into ``rounds`` near-equal chunks (no empty ones)."""
    rounds = max(1, min(rounds, frames))
    base, extra = divmod(frames, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def run_rows(rows: list[tuple[str, list[str]]], frames: int, rounds: int, env: dict[str, str],
             cwd: Path) -> list[dict[str, Any]]:
    """Start each row in turn, then give them their frames round by round; each row's final JSON."""
    procs: list[RowProcess] = []
    try:
        for label, command in rows:
            print(f"bench: starting {label}", file=sys.stderr, flush=True)
            proc = RowProcess(label, command, env, cwd)
            procs.append(proc)
            proc.start()
        plan = chunks(frames, rounds)
        for number, size in enumerate(plan, 1):
            print(f"bench: round {number}/{len(plan)} ({size} frames per row)", file=sys.stderr, flush=True)
            for proc in procs:
                proc.run(size)
        for proc in procs:
            proc.finish()
    finally:
        for proc in procs:
            if proc.live:
                proc.final = {"error": "interrupted"}
                proc.proc.kill()
                proc.close()
    return [proc.final or {"error": "no result"} for proc in procs]
