"""Run one action on several hosts in parallel threads, with host-prefixed output."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from deploy.actions import HostResult, Log

HostAction = Callable[[str, Log], HostResult]


def run_hosts(
    hosts: list[str], action: HostAction, *, jobs: int, out: TextIO | None = None, debug: bool = False
) -> list[HostResult]:
    """Results in host order. Threads suit this: each host's time is spent waiting on ssh."""
    stream = out or sys.stdout
    lock = threading.Lock()

    def logger(host: str) -> Log:
        def log(message: str) -> None:
            with lock:
                print(f"[{host}] {message}", file=stream, flush=True)

        return log

    def one(host: str) -> HostResult:
        try:
            return action(host, logger(host))
        except Exception as exc:  # a bug, not a host problem: keep the other hosts going
            if debug:
                with lock:
                    traceback.print_exc()
            return HostResult(host, False, "-", f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)")

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(hosts)))) as pool:
        return list(pool.map(one, hosts))
