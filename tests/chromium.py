"""A real headless Chromium for the tests that must see what a browser does (the live view, annotated videos).

Debian's /usr/bin/chromium, driven over the DevTools protocol with pip's
websocket-client; a test that needs it is skipped, with the reason, when
either is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

from tests.conftest import wait_for


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DevTools:
    """The few DevTools-protocol calls the test needs, over websocket-client."""

    def __init__(self, url: str):
        import websocket

        self.socket = websocket.create_connection(url, timeout=10, suppress_origin=True)
        self.next_id = 0

    def evaluate(self, expression: str):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": "Runtime.evaluate",
                                     "params": {"expression": expression, "returnByValue": True}}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                return message["result"]["result"].get("value")

    def close(self) -> None:
        self.socket.close()


class Chromium:
    """Headless Chromium processes opened on pages, each with its DevTools connection; ``close`` ends them all."""

    def __init__(self, binary: str, tmp_path: Path):
        self.binary = binary
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen] = []

    def open_page(self, url: str) -> DevTools:
        binary, tmp_path = self.binary, self.tmp_path
        port = free_port()
        log = open(tmp_path / "chromium.log", "wb")  # noqa: SIM115 - closed with the process below
        process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
             "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
             "--autoplay-policy=no-user-gesture-required", "--allow-file-access-from-files",
             f"--user-data-dir={tmp_path / f'profile-{len(self.processes)}'}", f"--remote-debugging-port={port}",
             "--remote-allow-origins=*", url],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HOME=str(tmp_path)))
        log.close()
        self.processes.append(process)

        def page_target():
            if process.poll() is not None:
                raise AssertionError(f"chromium exited: {Path(tmp_path / 'chromium.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    targets = json.load(response)
            except OSError:
                return None
            return next((t for t in targets if t.get("type") == "page" and t.get("url", "").startswith(url)), None)

        target = wait_for(page_target, "chromium's DevTools page target")
        return DevTools(target["webSocketDebuggerUrl"])

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
