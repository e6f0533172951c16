"""Screenshot of the live view page served by the real daemon on a real video (docs/pictures/liveview.png).

    PYTHONPATH=. python docs/pictures/liveview_screenshot.py [VIDEO_OR_IMAGES] [OUT.png]

Starts ``python -m edge`` with a throwaway config (the video looped as the
source, only the live view on, a free port), waits until the daemon has
processed frames, opens the page in headless Chromium over the DevTools
protocol, waits for the stream and a few status updates and saves the page as
a PNG, reduced to 256 colours and at most 1000 px wide so the committed file
stays small. The default input is the simplefr dinner-table clip of ../shared/media, else
the committed samples/ photos. Needs /usr/bin/chromium and websocket-client,
like tests/test_outputs_liveview.py, whose DevTools driver this reuses.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.chromium import DevTools, chromium_binary, free_port  # noqa: E402
from tests.conftest import wait_for  # noqa: E402

VIDEO = ROOT.parent / "shared" / "media" / "videos" / "simplefr_video2_720p.mp4"


def config_text(source: Path, port: int) -> str:
    camera = (f'source = "opencv"\ndevice = "{source}"' if source.is_file() and source.suffix == ".mp4"
              else f'source = "images"\npath = "{source}"')
    return (f"[camera]\n{camera}\nloop = true\nwidth = 1280\nheight = 720\nfps = 15.0\n\n"
            "[outputs.leds]\nenabled = false\n\n[outputs.event_log]\nenabled = false\n\n"
            f"[outputs.live_view]\nenabled = true\nport = {port}\nmax_fps = 5.0\n")


def status(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def main(source: Path, out: Path) -> None:
    from PIL import Image

    binary = chromium_binary()
    if binary is None:
        sys.exit("error: no chromium (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        port, devtools_port = free_port(), free_port()
        config = Path(tmp) / "config.toml"
        config.write_text(config_text(source, port))
        daemon = subprocess.Popen([sys.executable, "-m", "edge", "--config", str(config)], cwd=ROOT,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
        browser = None
        try:
            wait_for(lambda: (s := status(port)) and s["frames"] > 10, "the daemon's first frames", 120)
            url = f"http://127.0.0.1:{port}/"
            browser = subprocess.Popen(
                [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", "--window-size=1100,1000", "--no-first-run", f"--user-data-dir={tmp}/profile",
                 f"--remote-debugging-port={devtools_port}", "--remote-allow-origins=*", url],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, HOME=tmp))

            def target():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=2) as r:
                        return next((t for t in json.load(r) if t.get("type") == "page"), None)
                except OSError:
                    return None

            page = DevTools(wait_for(target, "chromium's page", 60)["webSocketDebuggerUrl"])
            wait_for(lambda: page.evaluate("document.getElementById('stream').naturalWidth > 0 && "
                                           "(window.statusUpdates || 0) >= 4 && "
                                           "document.querySelectorAll('#faces tr').length > 0"),
                     "the stream, a face in the table and four status updates", 120)
            height = page.evaluate("document.documentElement.scrollHeight")
            page.next_id += 1
            page.socket.send(json.dumps({"id": page.next_id, "method": "Page.captureScreenshot", "params": {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1100, "height": height, "scale": 1}}}))
            while (message := json.loads(page.socket.recv())).get("id") != page.next_id:
                pass
            page.close()
        finally:
            for process in (browser, daemon):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=20)
    image = Image.open(io.BytesIO(base64.b64decode(message["result"]["data"]))).convert("RGB")
    if image.width > 1000:
        image = image.resize((1000, round(image.height * 1000 / image.width)), Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)
    print(f"{out}: {image.width}x{image.height}, {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else (VIDEO if VIDEO.is_file() else ROOT / "samples"),
         Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "pictures" / "liveview.png")
