"""Soak run of the MQTT output: the daemon publishing to a local Mosquitto that is restarted mid-run.

    python tests/mqtt_soak.py --seconds 600 --restarts 2 --down 15

Starts a real mosquitto on a free loopback port and ``python -m edge run`` on
a looping pan video of ``samples/two_people.jpg`` (paced to 15 fps) with the
MQTT output, stops the broker ``--restarts`` times for ``--down`` seconds at
evenly spaced moments, and prints what it measured: frames per second from the
daemon's watchdog pings (one per processed frame) before, during and after the
outages, the daemon's RSS, the messages a subscriber received, and the
output's own sent/dropped/reconnect counters from its last health message
(published on SIGTERM). Not a test: figures for the notes, nothing asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from conftest import SAMPLES, write_pan_video  # noqa: E402
from test_outputs_mqtt import ROOT, Broker, Notify, Subscriber, mqtt_section, write_config  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--down", type=float, default=15.0, help="seconds the broker stays away each time")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mqtt-soak-"))
    video = write_pan_video(work / "pan.mp4", SAMPLES / "two_people.jpg")
    broker = Broker(work).start()
    config = write_config(work / "config.toml", video, mqtt_section(broker.port, health_interval_s=5.0))
    notify = Notify(work / "notify.sock")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(notify.path))
    stderr = open(work / "edge.stderr", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr)
    while not notify.seen("READY=1"):
        if proc.poll() is not None:
            print((work / "edge.stderr").read_text())
            return 1
        time.sleep(0.1)
    subscribers = [Subscriber(broker.port)]
    start = time.monotonic()
    outages = [(args.seconds * (i + 1) / (args.restarts + 1), args.down) for i in range(args.restarts)]
    samples: list[dict] = []
    last_pings, last_t = notify.pings(), start
    down_until = None
    pending = list(outages)
    while (now := time.monotonic()) - start < args.seconds:
        elapsed = now - start
        if pending and elapsed >= pending[0][0] and down_until is None:
            broker.stop()
            down_until = now + pending.pop(0)[1]
            print(f"{elapsed:6.1f} s  broker stopped", flush=True)
        if down_until is not None and now >= down_until:
            broker.start()
            subscribers.append(Subscriber(broker.port))
            down_until = None
            print(f"{time.monotonic() - start:6.1f} s  broker started again", flush=True)
        time.sleep(args.sample if down_until is None else min(args.sample, max(0.1, down_until - now)))
        pings, t = notify.pings(), time.monotonic()
        phase = "during" if down_until is not None else (
            "before" if len(pending) == args.restarts else "after")
        samples.append({"t": round(t - start, 1), "fps": (pings - last_pings) / (t - last_t), "phase": phase,
                        "rss_mib": round(rss_mib(proc.pid), 1)})
        last_pings, last_t = pings, t
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    time.sleep(1.0)
    last = subscribers[-1]
    health = last.json_on("testpi/health")
    received = sum(len(s.messages) for s in subscribers)
    by_kind: dict[str, int] = {}
    for sub in subscribers:
        for topic, _, _ in sub.messages:
            kind = "discovery" if topic.startswith("homeassistant/") else topic.rsplit("/", 1)[-1]
            by_kind[kind] = by_kind.get(kind, 0) + 1
    for sub in subscribers:
        sub.close()
    broker.stop()
    stderr.close()

    def fps(phase: str) -> float | None:
        values = [s["fps"] for s in samples if s["phase"] == phase]
        return round(statistics.median(values), 2) if values else None

    rss = [s["rss_mib"] for s in samples]
    summary = {
        "seconds": args.seconds, "broker_restarts": args.restarts, "down_s": args.down,
        "frames": notify.pings(), "exit_status": proc.returncode,
        "fps_median": {"before": fps("before"), "during": fps("during"), "after": fps("after")},
        "rss_mib": {"first": rss[0], "max": max(rss), "last": rss[-1]},
        "received_by_subscribers": received, "received_by_kind": by_kind,
        "last_health": health[-1] if health else None,
        "mqtt_log_lines": [line for line in (work / "edge.stderr").read_text().splitlines() if "mqtt" in line],
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
