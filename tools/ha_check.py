"""``make ha-check``: our MQTT discovery read by a real Home Assistant core, and what it shows checked.

    python -m tools.ha_check [--video PATH] [--screenshot PNG] [--card-screenshot PNG] [--json OUT] [--keep DIR]

Starts Mosquitto and Home Assistant (tools/ha_core.py: its own cached Python
3.13 venv, no onboarding, the MQTT broker added through the config flow) on
loopback, then two daemons (``python -m edge run``, client ids
``ha-check-pi1`` and ``ha-check-pi2``) on a video with ``[outputs.mqtt]`` on,
and checks through Home Assistant's REST and websocket APIs
(tools/ha_entities.py) that

1. every entity our discovery announces exists with the intended entity id,
   friendly name, unit, device class, icon, a state among the announced
   options, and the score attributes; each Pi is one device (name, maker,
   model, software version) holding exactly its entities: two daemons, two devices;
2. SIGKILL of one daemon makes its entities ``unavailable`` (the last will)
   and leaves the other Pi's alone; a restart brings them back;
3. the cleanup (the daemon started with ``enabled = false`` and the host
   kept) removes that Pi's entities from the states and the entity registry;
4. the second Pi runs with ``publish_images`` (the annotated frame): its
   image entity has the time of an image as its state, and Home Assistant's
   image proxy serves a JPEG that decodes.

It prints one line per entity as Home Assistant shows it and the seconds
Home Assistant took to come up; on a failure, the Home Assistant log lines
about our configs. ``--screenshot`` saves Home Assistant's default dashboard
(headless Chromium) with both Pis' entities; ``--card-screenshot`` then makes the dashboard card of
docs/home-assistant.md (for the second Pi) the dashboard and saves it, once
Home Assistant renders every row of it (no "Entity not available"). Exit 0 when everything holds, 1
when a check fails, 2 when something it needs is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import ha_entities as he
from tools.ha_core import DEFAULT_CACHE, CheckError, HomeAssistant, Mosquitto, ensure_venv, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "media" / "videos" / "simplefr_video2_720p.mp4"  # faces in most frames
PIS = ("ha-check-pi1", "ha-check-pi2")
IMAGES = {"ha-check-pi2": "frame"}  # publish_images on the second Pi: its image entity shows the annotated frame
CARD_DOC = ROOT / "docs" / "home-assistant.md"  # its first YAML block: the dashboard card
WAIT_S = 120.0  # upper bound for Home Assistant to reflect an MQTT message on a loaded 2-core machine


def daemon_config(video: Path, port: int, client_id: str, enabled: bool = True, image: str = "") -> str:
    """The daemon's TOML: the video (or photo folder) looped at 5 fps, only the MQTT output (``image``: with
    publish_images and that image_content, one image per 2 s at most)."""
    camera = (f'source = "opencv"\ndevice = "{video}"' if video.is_file()
              else f'source = "images"\npath = "{video}"')
    return (f"[camera]\n{camera}\nloop = true\nfps = 5.0\n\n[models]\ndir = \"{ROOT / 'models'}\"\n\n"
            "[outputs.leds]\nenabled = false\n\n[outputs.event_log]\nenabled = false\n\n"
            f"[outputs.mqtt]\nenabled = {json.dumps(enabled)}\nhost = \"127.0.0.1\"\nport = {port}\n"
            f"client_id = \"{client_id}\"\nhealth_interval_s = 2.0\n"
            + (f'publish_images = true\nimage_content = "{image}"\nimage_interval_s = 2.0\n' if image else ""))


class Daemon:
    """``python -m edge run`` with one client id; its stderr in the work folder."""

    def __init__(self, folder: Path, video: Path, port: int, client_id: str, enabled: bool = True):
        self.client_id = client_id
        tag = f"{client_id}{'' if enabled else '-cleanup'}"
        config = folder / f"{tag}.toml"
        config.write_text(daemon_config(video, port, client_id, enabled, IMAGES.get(client_id, "")))
        self.stderr = folder / f"{tag}.stderr"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        with open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class Pi:
    client_id: str
    device: dict[str, Any]
    origin: dict[str, Any]
    expected: list[he.Expected]

    def entity_id(self, key: str) -> str:
        """The entity id of our entity ``key`` (faces, emotion, fps...), by its unique id."""
        return next(e.entity_id for e in self.expected if e.unique_id.endswith(f"_{key}"))


def announced(client_id: str) -> Pi:
    """What our discovery announces for this client id: the same function the daemon publishes with."""
    from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
    from edge.outputs.mqtt import MqttSettings, Topics, discovery_configs

    configs = discovery_configs(Topics(MqttSettings(), client_id), {"emotion": EMOTION_LABELS,
                                                                    "gender": GENDER_LABELS},
                                image=IMAGES.get(client_id, ""))
    first = next(iter(configs.values()))
    return Pi(client_id, first["device"], first["origin"], he.expected_entities(configs))


class Checker:
    """The scenario of the module docstring against one Home Assistant, failures kept as lines."""

    def __init__(self, ha: HomeAssistant, folder: Path, video: Path, mqtt_port: int, python: Path):
        self.ha, self.folder, self.video, self.mqtt_port = ha, folder, video, mqtt_port
        self.python = python  # Home Assistant's venv: it has PyYAML, for the docs' card
        self.pis = [announced(c) for c in PIS]
        self.daemons: dict[str, Daemon] = {}
        self.problems: list[str] = []
        self.picture_lines: list[str] = []

    def start(self, client_id: str, enabled: bool = True) -> Daemon:
        daemon = Daemon(self.folder, self.video, self.mqtt_port, client_id, enabled)
        self.daemons[client_id + ("" if enabled else "-cleanup")] = daemon
        return daemon

    def settle(self, what: str, problems: Any) -> list[str]:
        """Wait until ``problems()`` is empty; on timeout, record its last lines under ``what``."""
        last: list[str] = []

        def clean() -> bool:
            last[:] = problems()
            return not last

        try:
            wait_for(clean, what, WAIT_S, 1.0)
        except CheckError as exc:
            self.problems += [f"{what}: {exc}"] + [f"  {line}" for line in last]
        return last

    def state(self, entity_id: str) -> str:
        return he.by_entity_id(self.ha.states()).get(entity_id, {}).get("state", "(missing)")

    def live(self, pis: list[Pi], available: bool = True) -> list[str]:
        states = self.ha.states()
        return [p for pi in pis for p in he.state_problems(pi.expected, states, available)]

    def pictures(self) -> list[str]:
        """What Home Assistant serves for each image entity (its image proxy): a JPEG of the frame, with a time."""
        import cv2
        import numpy as np

        problems = []
        for pi in self.pis:
            if pi.client_id not in IMAGES:
                continue
            entity_id = pi.entity_id("image")
            if not he.is_timestamp(self.state(entity_id)):
                problems.append(f"{entity_id}: state {self.state(entity_id)!r}, expected the time of an image")
                continue
            data = self.ha.get_bytes(f"/api/image_proxy/{entity_id}")
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
            if image is None:
                problems.append(f"{entity_id}: the image proxy gave {len(data)} bytes that are not a JPEG")
            else:
                self.picture_lines.append(f"{entity_id}: {len(data)} bytes of JPEG, {image.shape[1]}x"
                                          f"{image.shape[0]}, state {self.state(entity_id)}")
        return problems

    def devices(self) -> list[str]:
        devices, entities = self.ha.registries()
        return [p for pi in self.pis for p in he.device_problems(pi.expected, pi.device, devices, entities)]

    def removed(self, pi: Pi) -> list[str]:
        devices, entities = self.ha.registries()
        return he.removed_problems(pi.expected, self.ha.states(), entities, devices)

    def show_card(self, out: Path) -> None:
        """docs/home-assistant.md's dashboard card, for the second Pi, as Home Assistant's dashboard; a PNG."""
        from tools.ha_screenshot import dashboard_screenshot

        client_id = PIS[1]
        card = he.dashboard_card(CARD_DOC.read_text(), client_id, IMAGES[client_id])
        problems = he.card_problems(card, announced(client_id).expected)
        if problems:
            self.problems += [f"{CARD_DOC.name}: {p}" for p in problems]
            return
        as_json = subprocess.run([str(self.python), "-c", "import json, sys, yaml; "
                                  "print(json.dumps(yaml.safe_load(sys.stdin.read())))"],
                                 input=card, capture_output=True, text=True, check=True).stdout
        view = {"title": client_id, "cards": [json.loads(as_json)]}
        self.ha.ws({"type": "lovelace/config/save", "config": {"title": "face-emotion", "views": [view]}})
        print(dashboard_screenshot(self.ha.url, out, ["In view", "Emotion confidence", "Gender confidence"],
                                   refuse=("not available", "not found", "Configuration error")))

    def run(self, screenshot: Path | None, card_screenshot: Path | None = None) -> list[str]:
        for pi in self.pis:
            self.start(pi.client_id)
        first, second = self.pis
        self.settle("both Pis' entities with live states", lambda: self.live(self.pis))
        if self.problems:  # Home Assistant refused or renamed something: the log lines say why, the rest would wait
            return self.problems
        self.settle("one device per Pi with its entities", self.devices)
        self.settle("each config logged with our origin", lambda: [
            p for pi in self.pis for p in he.origin_problems(pi.expected, pi.origin, self.ha.log_text())])
        self.settle("no repair issues from the MQTT integration",
                    lambda: he.repair_problems(self.ha.ws({"type": "repairs/list_issues"})[0]["issues"]))
        self.settle("a face seen and health with frames on both Pis (faces and frame rate above 0)", lambda: [
            f"{entity_id}: {state}" for entity_id, state in ((pi.entity_id(k), self.state(pi.entity_id(k)))
                                                             for pi in self.pis for k in ("faces", "fps"))
            if not he.is_positive(state)])
        self.settle("the image entity's picture, a JPEG of the annotated frame, through Home Assistant",
                    self.pictures)
        self.snapshot = self.record("live")
        if self.problems:  # what follows builds on live entities: stop here rather than time out step by step
            return self.problems
        if screenshot is not None:
            from tools.ha_screenshot import dashboard_screenshot

            print(dashboard_screenshot(self.ha.url, screenshot, [pi.device["name"] for pi in self.pis]))
        if card_screenshot is not None:
            self.show_card(card_screenshot)
        self.daemons[first.client_id].kill()
        self.settle(f"{first.client_id} unavailable after SIGKILL (last will)",
                    lambda: self.live([first], available=False))
        self.record("killed")
        self.settle(f"{second.client_id} still available", lambda: self.live([second]))
        self.start(first.client_id)
        self.settle(f"{first.client_id} back after a restart", lambda: self.live([first]))
        self.daemons[first.client_id].stop()
        self.start(first.client_id, enabled=False)
        self.settle(f"{first.client_id} removed by the cleanup (enabled = false)", lambda: self.removed(first))
        self.record("after-cleanup")
        self.settle(f"{second.client_id} untouched by the other Pi's cleanup", lambda: self.live([second]))
        return self.problems

    def record(self, moment: str) -> dict[str, Any]:
        """Home Assistant's states and registries now; also written to the work folder (--keep)."""
        devices, entities = self.ha.registries()
        snapshot = {"states": self.ha.states(), "devices": devices, "entities": entities}
        (self.folder / f"ha-{moment}.json").write_text(json.dumps(snapshot, indent=1))
        return snapshot

    def stop(self) -> None:
        for daemon in self.daemons.values():
            daemon.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ha_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VIDEO if VIDEO.is_file() else ROOT / "samples",
                        help="video or photo folder the daemons loop (default: ../shared's simplefr clip, "
                             "else samples/)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG", help="save the default dashboard here")
    parser.add_argument("--card-screenshot", type=Path, metavar="PNG",
                        help="save docs/home-assistant.md's dashboard card, for the second Pi, here")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the entity table and timings as JSON")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep Home Assistant's folder and logs here")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("HA_CHECK_CACHE") or DEFAULT_CACHE),
                        help="where the Home Assistant venv is kept between runs (HA_CHECK_CACHE)")
    args = parser.parse_args(argv)
    if not args.video.exists():
        print(f"error: --video {args.video} does not exist", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        python, install_s = ensure_venv(args.cache)
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="ha-check-")) if args.keep is None else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    broker = ha = checker = None
    up_s, version = None, None
    try:
        broker = Mosquitto(folder)
        ha = HomeAssistant(python, folder / "config", frontend=args.screenshot is not None or
                           args.card_screenshot is not None)
        up_s = ha.wait_running()
        version = ha.request("GET", "/api/config")["version"]
        print(f"ha-check: Home Assistant {version} up in {up_s:.1f} s "
              f"({ha.url}); venv {'cached' if not install_s else f'made in {install_s:.0f} s'}", flush=True)
        ha.add_mqtt(broker.port)
        checker = Checker(ha, folder, args.video, broker.port, python)
        problems = checker.run(args.screenshot, args.card_screenshot)
    except CheckError as exc:
        problems = [str(exc)]
    except OSError as exc:  # Home Assistant's API went away mid-check (it crashed or was killed)
        problems = [f"lost Home Assistant's API: {exc}"]
    finally:
        if checker is not None:
            checker.stop()
        log = ha.log_text() if ha is not None else ""
        for thing in (ha, broker):
            if thing is not None:
                thing.stop()
    snapshot = getattr(checker, "snapshot", None)
    rows = he.table_rows([e for pi in checker.pis for e in pi.expected], snapshot["states"]) if snapshot else []
    for line in he.table_lines(rows):
        print(line)
    for line in (checker.picture_lines[-1:] if checker is not None else []):
        print(line)
    total_s = time.monotonic() - started
    if args.json:
        devices = [{k: d.get(k) for k in ("name", "manufacturer", "model", "sw_version")}
                   for d in (snapshot or {}).get("devices", []) if d.get("manufacturer") == "pi-face-emotion"]
        args.json.write_text(json.dumps({
            "command": "python -m tools.ha_check " + " ".join(argv if argv is not None else sys.argv[1:]),
            "home_assistant": version, "entities": rows, "devices": devices,
            "ha_up_s": None if up_s is None else round(up_s, 1), "install_s": round(install_s),
            "total_s": round(total_s)}, indent=1) + "\n")
    if problems:
        print("ha-check: FAILED", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        print("Home Assistant's log lines about our configs:", file=sys.stderr)
        for line in he.log_lines_about_us(log):
            print(f"  {line}", file=sys.stderr)
        print(f"(everything is in {folder})", file=sys.stderr)
        return 1
    print(f"ha-check: OK: {sum(len(p.expected) for p in checker.pis)} entities on {len(PIS)} devices as announced, "
          f"unavailable on the last will, back on restart, removed by the cleanup; {total_s:.0f} s in all")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
