"""Soak run of the service with every network output on: RSS, threads and open files over time.

    python tests/daemon_soak.py --seconds 300

Starts a real mosquitto on a free loopback port and ``python -m edge run`` (a looping pan video of
``samples/two_people.jpg`` at 15 fps; the live view with a token, MQTT to that broker, the event log to a
file) under ``prlimit --nofile=4096`` as the unit sets it. A page-like client polls ``/status.json`` and
``/frame.jpg`` every 0.5 s throughout. Prints the daemon's RSS, threads and open files 15 s after the start
and every 60 s, and the difference at the end. Not a test: figures for the notes (issue 28), nothing asserted.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from conftest import SAMPLES, write_pan_video  # noqa: E402
from liveview_flood import TOKEN, free_port, proc_figures  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args()
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    work = Path(tempfile.mkdtemp(prefix="daemon-soak-"))
    video = write_pan_video(work / "pan.mp4", SAMPLES / "two_people.jpg")
    live, broker_port = free_port(), free_port()
    (work / "mosquitto.conf").write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n"
                                         f"persistence false\nuser {getpass.getuser()}\n")
    events = work / "events.jsonl"
    config = work / "config.toml"
    config.write_text(f'[camera]\nsource = "opencv"\ndevice = "{video}"\nloop = true\nfps = 15.0\n'
                      f'[models]\ndir = "{args.repo / "models"}"\n[service]\nstats_interval_s = 30.0\n'
                      f'[outputs.leds]\nenabled = false\n[outputs.event_log]\npath = "{events}"\njournal = false\n'
                      f'[outputs.live_view]\nenabled = true\nport = {live}\ntoken = "{TOKEN}"\n'
                      f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker_port}\n'
                      "health_interval_s = 5.0\n")
    broker = subprocess.Popen([mosquitto, "-c", str(work / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    with open(work / "daemon.log", "w") as out:
        proc = subprocess.Popen(["prlimit", "--nofile=4096", sys.executable, "-m", "edge", "run", "--config",
                                 str(config)], cwd=args.repo, env=dict(os.environ, PYTHONPATH=str(args.repo)),
                                stdout=out, stderr=subprocess.STDOUT)
    stop, polls = threading.Event(), [0, 0]

    def page() -> None:
        seq = 0
        base = f"http://127.0.0.1:{live}"
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"{base}/status.json?token={TOKEN}", timeout=5) as response:
                    response.read()
                with urllib.request.urlopen(f"{base}/frame.jpg?after={seq}&token={TOKEN}", timeout=15) as response:
                    seq = int(response.headers.get("X-Frame-Seq") or seq)
                    response.read()
                polls[0] += 1
            except OSError:
                polls[1] += 1
            time.sleep(0.5)

    def show(tag: str) -> tuple[int, int, int]:
        fds, threads, rss = proc_figures(proc.pid)
        print(f"{tag:>8}: RSS {rss} MB, threads {threads}, open files {fds}", flush=True)
        return fds, threads, rss

    try:
        time.sleep(10)
        threading.Thread(target=page, daemon=True).start()
        time.sleep(5)
        first, start = show("t=15s"), time.monotonic()
        last = first
        while time.monotonic() - start < args.seconds:
            time.sleep(min(60.0, args.seconds - (time.monotonic() - start)))
            last = show(f"t=+{time.monotonic() - start:.0f}s")
        stop.set()
        lines = len(events.read_text().splitlines()) if events.exists() else 0
        print(f"after {args.seconds:.0f} s: RSS {last[2] - first[2]:+d} MB, threads {last[1] - first[1]:+d}, open "
              f"files {last[0] - first[0]:+d}; page polls ok {polls[0]}, failed {polls[1]}; alive "
              f"{proc.poll() is None}; {lines} event lines")
    finally:
        stop.set()
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
        broker.terminate()
        broker.wait(10)
    print(f"daemon exit status {proc.returncode} (log: {work / 'daemon.log'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
