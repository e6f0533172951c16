"""Soak run of the MQTT output: the service publishing to a local Mosquitto that is restarted mid-run.

    python tests/mqtt_soak.py --seconds 600 --restarts 2 --down 15
    python tests/mqtt_soak.py --seconds 180 --restarts 0 --no-mqtt     # the same without the output

Starts a real mosquitto on a free loopback port and the daemon (``edge.service.daemon.Daemon``,
in a thread of this process, outputs built from the config as the service does) on a
looping pan video of ``samples/two_people.jpg`` paced to 15 fps, with only the MQTT
output enabled. The broker is stopped ``--restarts`` times for ``--down`` seconds at
evenly spaced moments. Printed: frames per second before, during and after the
outages; the time each frame spent in the MQTT output's ``update()`` (what the frame
loop pays for it) per phase; the process's RSS; the messages a subscriber received;
and the output's own sent/dropped/reconnect counters from its last health message
(published when it closes). Not a test: figures for the notes, nothing asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from conftest import SAMPLES, write_pan_video  # noqa: E402
from test_outputs_mqtt import Broker, Subscriber, mqtt_section, write_config  # noqa: E402

from edge.service.config import load_config  # noqa: E402
from edge.service.daemon import Daemon, setup_logging  # noqa: E402
from edge.service.notify import Notifier  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--down", type=float, default=15.0, help="seconds the broker stays away each time")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--no-mqtt", action="store_true", help="baseline: the same run with the output disabled")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mqtt-soak-"))
    video = write_pan_video(work / "pan.mp4", SAMPLES / "two_people.jpg")
    broker = Broker(work).start()
    config = write_config(work / "config.toml", video,
                          mqtt_section(broker.port, health_interval_s=5.0, enabled=not args.no_mqtt))
    setup_logging("INFO")
    daemon = Daemon(load_config(config), Notifier())
    assert daemon.start() == 0
    phase = ["before"]
    update_ms: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for output in daemon.outputs or []:
        if output.name == "MQTT":
            real_update = output.update

            def timed(frame, result, real_update=real_update):
                started = time.perf_counter()
                real_update(frame, result)
                update_ms[phase[0]].append((time.perf_counter() - started) * 1e3)

            output.update = timed
    loop = threading.Thread(target=daemon.loop, name="frame-loop", daemon=True)
    loop.start()
    subscribers = [Subscriber(broker.port)]
    start = time.monotonic()
    pending = [args.seconds * (i + 1) / (args.restarts + 1) for i in range(args.restarts)]
    samples: list[dict] = []
    last_frames, last_t, down_until = daemon.stats.frames, start, None
    while (now := time.monotonic()) - start < args.seconds:
        if pending and now - start >= pending[0] and down_until is None:
            pending.pop(0)
            broker.stop()
            phase[0], down_until = "during", now + args.down
            print(f"{now - start:6.1f} s  broker stopped", flush=True)
        if down_until is not None and now >= down_until:
            broker.start()
            subscribers.append(Subscriber(broker.port))
            phase[0], down_until = "after", None
            print(f"{time.monotonic() - start:6.1f} s  broker started again", flush=True)
        time.sleep(args.sample if down_until is None else min(args.sample, max(0.1, down_until - now)))
        frames, t = daemon.stats.frames, time.monotonic()
        samples.append({"fps": (frames - last_frames) / (t - last_t), "phase": phase[0],
                        "rss_mib": round(rss_mib(), 1)})
        last_frames, last_t = frames, t
    daemon.request_stop()
    loop.join(30)
    daemon.shutdown()  # closes the output: last events, final health, "offline"
    time.sleep(1.0)
    health = subscribers[-1].json_on("testpi/health")
    by_kind: dict[str, int] = {}
    for sub in subscribers:
        for topic, _, _ in sub.messages:
            kind = "discovery" if topic.startswith("homeassistant/") else topic.rsplit("/", 1)[-1]
            by_kind[kind] = by_kind.get(kind, 0) + 1
        sub.close()
    broker.stop()

    def fps(name: str) -> float | None:
        values = [s["fps"] for s in samples if s["phase"] == name]
        return round(statistics.median(values), 2) if values else None

    def cost(values: list[float]) -> dict | None:
        if not values:
            return None
        ordered = sorted(values)
        return {"frames": len(values), "median_ms": round(statistics.median(values), 3),
                "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 3), "max_ms": round(ordered[-1], 3)}

    rss = [s["rss_mib"] for s in samples]
    summary = {
        "seconds": args.seconds, "mqtt": not args.no_mqtt, "broker_restarts": args.restarts, "down_s": args.down,
        "frames": daemon.stats.frames,
        "fps_median": {name: fps(name) for name in ("before", "during", "after")},
        "mqtt_update_per_frame": {name: cost(values) for name, values in update_ms.items()},
        "rss_mib": {"first": rss[0], "max": max(rss), "last": rss[-1],
                    "every_60s": rss[::max(1, round(60 / args.sample))],
                    "peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
        "received_by_subscribers": sum(by_kind.values()), "received_by_kind": by_kind,
        "last_health": health[-1] if health else None,
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
