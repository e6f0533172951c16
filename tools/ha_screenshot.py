"""Home Assistant's default dashboard as a PNG, from headless Chromium (``make ha-check`` ``--screenshot``).

The browser gets in through the ``trusted_networks`` provider (127.0.0.1,
one user, ``allow_bypass_login``), so no password is typed. The frontend is a
tree of web components, so "rendered" is read through their shadow roots:
the screenshot is taken once the page's text names every device we expect.
Reuses the DevTools driver of tests/test_outputs_liveview.py, as
docs/pictures/liveview_screenshot.py does.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tools.ha_core import CheckError, free_port, stop_process, wait_for

WIDTH, HEIGHT = 1280, 900
# Every text of the page, shadow roots included: what a person sees, for the "rendered" test.
DEEP_TEXT = """(() => { const out = []; const walk = (node) => {
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.children || []) walk(child);
  if (node.nodeType === 1 && !node.children.length && node.textContent.trim()) out.push(node.textContent.trim());
}; walk(document.documentElement); return out.join("\\n"); })()"""


def dashboard_screenshot(url: str, out: Path, names: list[str], wait_s: float = 120,
                         refuse: tuple[str, ...] = ()) -> str:
    """Save the dashboard at ``url`` once its text shows each of ``names`` and none of ``refuse`` (such as Home
    Assistant's "Entity not available"); one line saying what was written."""
    from PIL import Image

    from tests.test_outputs_liveview import DevTools, chromium_binary

    binary = chromium_binary()
    if binary is None:
        raise CheckError("--screenshot needs chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        browser = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--window-size={WIDTH},{HEIGHT}", "--no-first-run", "--disable-background-networking",
             f"--user-data-dir={tmp}/profile", f"--remote-debugging-port={port}", "--remote-allow-origins=*",
             f"{url}/lovelace/0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, HOME=tmp))
        try:
            def target():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                        return next((t for t in json.load(r) if t.get("type") == "page"), None)
                except OSError:
                    return None

            page = DevTools(wait_for(target, "chromium's page", 60)["webSocketDebuggerUrl"])
            text = ""

            def shown() -> bool:
                nonlocal text
                text = page.evaluate(DEEP_TEXT) or ""
                return all(name in text for name in names) and not any(bad in text for bad in refuse)

            try:
                wait_for(shown, "the dashboard to show our devices", wait_s, 1.0)
            except CheckError as exc:
                raise CheckError(f"{exc}; the page shows: {' | '.join(text.splitlines()[:40])}") from None
            time.sleep(3)  # icons and state colours settle after the text
            page.next_id += 1
            page.socket.send(json.dumps({"id": page.next_id, "method": "Page.captureScreenshot",
                                         "params": {"format": "png"}}))
            while (message := json.loads(page.socket.recv())).get("id") != page.next_id:
                pass
            page.close()
        finally:
            stop_process(browser)
    image = Image.open(io.BytesIO(base64.b64decode(message["result"]["data"]))).convert("RGB")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)
    return f"ha-check: dashboard screenshot {out}: {image.width}x{image.height}, {out.stat().st_size:,} bytes"
