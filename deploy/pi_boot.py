"""``make pi-boot``: the service under real systemd in booted Debian Bookworm and Trixie guests.

For each release: build (or reuse) the cached disk image (deploy/pi_boot_image.py),
boot it with qemu-system-x86_64 (deploy/pi_boot_vm.py), then from this machine
over a forwarded loopback ssh port run the real ``make deploy PI=pi@127.0.0.1``
(preflight, apt, the venv with the numpy pin, the unit, the health check) and
check from inside the guest what only a booted system shows: the hardened unit
starts the service on a real V4L2 camera (``vivid``) and reports READY=1 only
after the first frame; frames flow; the journal has no sandbox denial; MQTT
reaches the guest's Mosquitto with Home Assistant discovery; the live view
answers through a forwarded port with its token; a SIGSTOPped process is
restarted by the watchdog; a broken release is rolled back; a video with faces
gives labels; the service comes back after a reboot; and a camera that
vanishes ends in a clean exit 3, never SIGABRT. One line per release; a
failure names the release, the step and the journal lines.

The deploy's apt set is the Pi's less the two packages only the Raspberry Pi
archive has (python3-picamera2, python3-lgpio): ``--apt-packages``. Needs root
(debootstrap, mount namespaces), ``qemu-system-x86``, ``debootstrap``,
``e2fsprogs``, ``qemu-utils``.

    make pi-boot                                 # both releases
    make pi-boot PI_BOOT_ARGS="--release bookworm"
    make pi-boot PI_BOOT_ARGS="--steps camera,deploy,picamera2"  # a subset; picamera2 is opt-in, Trixie only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy import pi_boot_picamera2
from deploy.layout import APT_PACKAGES
from deploy.pi_boot_image import build_image, host_key
from deploy.pi_boot_vm import Guest, detect_accel, free_port

REPO = Path(__file__).resolve().parent.parent
RELEASES = ("bookworm", "trixie")
ONLY_IN_RPI_ARCHIVE = ("python3-picamera2", "python3-lgpio")
GUEST_APT = tuple(p for p in APT_PACKAGES if p not in ONLY_IN_RPI_ARCHIVE)
LIVE_PORT = 8080
MEDIA = "/srv/pi-boot"
DENIAL = re.compile(r"EPERM|EACCES|SIGSYS|Operation not permitted|Permission denied|status=31/SYS")
EVENT = re.compile(r"\b(track_new|label_change)\b")  # the event log's journal entries (and JSON lines)
HEALTH_TIMEOUT = 300  # the deploy's --timeout: an emulated guest loads models and the first frame slowly


def default_cache() -> Path:
    return Path(os.environ.get("PI_BOOT_CACHE") or Path.home() / ".cache" / "face-emotion" / "pi-boot")


def guest_config(device: str, token: str, loop: bool = False) -> str:
    """The Pi's /etc/face-emotion/config.toml: the camera (or a video), MQTT to the local broker, the live view."""
    return f"""[camera]
source = "opencv"
device = "{device}"
fps = 15.0
loop = {str(loop).lower()}

[outputs.leds]
enabled = false

[outputs.live_view]
enabled = true
port = {LIVE_PORT}
token = "{token}"

[outputs.mqtt]
enabled = true
host = "127.0.0.1"
client_id = "pi-boot"

[service]
stats_interval_s = 10.0
"""


class StepFailed(Exception):
    def __init__(self, step: str, reason: str, journal: list[str]):
        super().__init__(reason)
        self.step, self.reason, self.journal = step, reason, journal


@dataclass
class Run:
    """One release's run: the guest, the timings and facts for its line."""

    release: str
    guest: Guest
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    passed: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    since: int = 0  # guest epoch second the current step's journal starts at

    def sh(self, script: str, timeout: float = 120, check: bool = True) -> str:
        return self.guest.ssh(script, timeout=timeout, check=check)

    def journal(self, since: int | None = None, lines: int = 400) -> list[str]:
        start = self.since if since is None else since
        out = self.sh(f"sudo journalctl -u face-emotion --no-pager -o short-monotonic -n {lines} --since @{start}",
                      check=False)
        return [line for line in out.splitlines() if line.strip() and not line.startswith("-- ")]

    def now(self) -> int:
        return int(self.sh("date +%s").strip())

    def show(self, *props: str) -> dict[str, str]:
        out = self.sh("systemctl show face-emotion " + " ".join(f"-p {p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_active(self, timeout: float, other_than_pid: str = "") -> dict[str, str]:
        """Poll until the service is active (with a main PID other than ``other_than_pid``)."""
        deadline = time.monotonic() + timeout
        state: dict[str, str] = {}
        while time.monotonic() < deadline:
            state = self.show("ActiveState", "MainPID", "NRestarts", "StatusText", "Result")
            if state.get("ActiveState") == "active" and state.get("MainPID") not in ("", "0", other_than_pid):
                return state
            time.sleep(3)
        raise RuntimeError(f"not active within {timeout:.0f} s: {state}")

    def write_root_file(self, path: str, text: str) -> None:
        self.sh(f"sudo mkdir -p {shlex.quote(os.path.dirname(path))} && "
                f"printf '%s' {shlex.quote(text)} | sudo tee {shlex.quote(path)} >/dev/null")


def make_deploy(run: Run, models: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The user's command: ``make deploy PI=pi@127.0.0.1`` with the guest's port and key in DEPLOY_ARGS."""
    args = [*run.guest.ssh_options()[:6], "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "--apt-packages", " ".join(GUEST_APT), "--timeout", str(HEALTH_TIMEOUT)]
    if models is not None:
        args += ["--models", str(models)]
    argv = ["make", "-C", str(REPO), "--no-print-directory", "deploy", f"PI={run.guest.user}@127.0.0.1",
            "DEPLOY_ARGS=" + shlex.join(args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)


# -- the steps, in order --------------------------------------------------------------------------------------------

def step_camera(run: Run) -> None:
    """vivid as the camera (also at every boot), the config a Pi owner writes, a video with faces for later."""
    run.sh("sudo modprobe vivid && echo vivid | sudo tee /etc/modules-load.d/vivid.conf >/dev/null "
           "&& test -c /dev/video0")
    run.write_root_file("/etc/face-emotion/config.toml", guest_config("0", run.token))
    video = run.facts["video_file"]
    scp = ["scp", "-q", *["-P" if o == "-p" else o for o in run.guest.ssh_options()], video,
           f"{run.guest.user}@127.0.0.1:/tmp/faces.avi"]
    subprocess.run(scp, check=True, capture_output=True, timeout=300)
    run.sh(f"sudo mkdir -p {MEDIA} && sudo install -m 0644 /tmp/faces.avi {MEDIA}/faces.avi")


def step_deploy(run: Run) -> None:
    started = time.monotonic()
    run.since = run.now()
    proc = make_deploy(run)
    run.facts["deploy_s"] = f"{time.monotonic() - started:.0f}"
    (run.guest.where / "deploy.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        raise RuntimeError(f"make deploy exit {proc.returncode}: {' | '.join(lines[-6:])}")
    release = re.search(r"creating release (\S+)", proc.stdout)
    run.facts["release"] = release.group(1) if release else "?"


def _journal_entry(run: Run, text: str) -> tuple[int, str] | None:
    """(boot-relative µs when journald got it, message) of the service's first entry containing ``text``."""
    out = run.sh(f"sudo journalctl -u face-emotion -o json --since @{run.since} --no-pager", check=False)
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if text in str(entry.get("MESSAGE", "")):
            return int(entry["__MONOTONIC_TIMESTAMP"]), str(entry["MESSAGE"])
    return None


def step_ready_after_frame(run: Run) -> None:
    """is-active, and READY=1 (the unit turning active) only after the first frame was processed.

    journald stamps an entry when it receives it, which can be a few ms after the READY=1 that the
    daemon sends right behind its log line, so the order of those two is not the evidence. The evidence:
    the unit turned active no earlier than the daemon's "started" line (camera open, outputs up) plus the
    time the daemon reports for its first frame (read and processed).
    """
    show = run.show("ActiveState", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    if show.get("ActiveState") != "active":
        raise RuntimeError(f"is-active: {show.get('ActiveState')}")
    started_line = _journal_entry(run, "started: ")
    first = _journal_entry(run, "ready: first frame processed in ")
    if started_line is None or first is None:
        raise RuntimeError("no 'started:' or 'ready: first frame processed' line in the journal")
    first_ms = float(re.search(r"processed in ([\d.]+) ms", first[1]).group(1))  # type: ignore[union-attr]
    started, active = int(show["ExecMainStartTimestampMonotonic"]), int(show["ActiveEnterTimestampMonotonic"])
    waited_ms = (active - started_line[0]) / 1e3
    if waited_ms < first_ms - 100:
        raise RuntimeError(f"READY {waited_ms:.0f} ms after the camera opened, the first frame took {first_ms:.0f} ms")
    run.facts["ready_s"] = f"{(active - started) / 1e6:.1f}"
    run.facts["first_frame_ms"] = f"{first_ms:.0f}"


def step_frames(run: Run) -> None:
    """A latency line (stats every 10 s) shows frames flowing through the hardened unit."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lines = [line for line in run.journal() if "latency (median of last" in line]
        if lines:
            found = re.search(r"frame ([\d.]+) ms.*?([\d.]+) fps", lines[-1])
            if found:
                run.facts["camera_ms"], run.facts["camera_fps"] = found.group(1), found.group(2)
            pid = run.show("MainPID")["MainPID"]
            peak = run.sh(f"sudo grep VmHWM /proc/{pid}/status", check=False).split()
            run.facts["peak_rss"] = f"{int(peak[1]) // 1024} MB" if len(peak) > 1 else "?"
            return
        time.sleep(5)
    raise RuntimeError("no latency line in the journal within 120 s")


def step_sandbox(run: Run) -> None:
    """No denial in the service's journal or the kernel's; the unit's exposure as systemd-analyze rates it."""
    denials = [line for line in run.journal(since=0, lines=5000) if DENIAL.search(line)]
    # AUDIT_SECCOMP (type=1326) records a seccomp kill or log; AppArmor denials name themselves.
    kernel = run.sh("sudo journalctl -k --no-pager -o cat | grep -E 'type=1326|audit.*seccomp|apparmor=\"DENIED\"' "
                    "|| true")
    if denials or kernel.strip():
        raise RuntimeError("denials: " + " | ".join(denials[:5] + kernel.strip().splitlines()[:5]))
    out = run.sh("systemd-analyze security face-emotion --no-pager 2>/dev/null | tail -n 1", check=False)
    found = re.search(r"exposure level for \S+: ([\d.]+) (\w+)", out)
    run.facts["exposure"] = f"{found.group(1)} {found.group(2)}" if found else "?"


def step_mqtt(run: Run) -> None:
    out = run.sh("timeout 60 mosquitto_sub -h 127.0.0.1 -t 'homeassistant/#' -v -C 3", timeout=90, check=False)
    topics = [line.split(" ", 1)[0] for line in out.splitlines() if line.startswith("homeassistant/")]
    if not topics:
        raise RuntimeError(f"no Home Assistant discovery message on the guest's Mosquitto: {out.strip()[:200]}")
    run.facts["mqtt"] = topics[0]


def step_live_view(run: Run) -> None:
    """Through ``ssh -L`` (the live view stays on the guest's loopback): 401 without the token, a JPEG with it."""
    port = free_port()
    tunnel = run.guest.forward(port, LIVE_PORT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/", timeout=10)
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(1)
                continue
            break
        if status != 401:
            raise RuntimeError(f"without the token the live view answered {status}, not 401")
        with urllib.request.urlopen(f"{base}/stream.mjpg?token={run.token}", timeout=60) as response:
            data = response.read(200_000)
        if b"\xff\xd8" not in data:
            raise RuntimeError("no JPEG in the first 200 kB of /stream.mjpg")
        run.facts["live_view"] = f"{len(data) // 1000} kB"
    finally:
        tunnel.kill()
        tunnel.wait()


def step_watchdog(run: Run) -> None:
    """SIGSTOP the main process: no WATCHDOG=1 for WatchdogSec, so systemd must kill and restart it."""
    run.since = run.now()
    before = run.show("MainPID", "NRestarts")
    run.sh(f"sudo kill -STOP {before['MainPID']}")
    started = time.monotonic()
    after = run.wait_active(240, other_than_pid=before["MainPID"])
    journal = run.journal()
    if not any("Watchdog timeout" in line for line in journal):
        raise RuntimeError("restarted, but not by the watchdog: " + " | ".join(journal[-5:]))
    run.facts["watchdog_s"] = f"{time.monotonic() - started:.0f}"
    run.facts["restarts"] = after.get("NRestarts", "?")


def step_rollback(run: Run) -> None:
    """A release whose model files are damaged (exit 2, no restart): the deploy must roll back to the running one."""
    good = run.facts["release"]
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        shutil.copytree(REPO / "models", models)
        for victim in models.glob("*.tflite"):  # every model: whichever the config uses is damaged
            victim.write_bytes(victim.read_bytes()[:1000])
        run.since = run.now()
        time.sleep(1.1)  # a new release id (UTC second)
        proc = make_deploy(run, models=models)
    (run.guest.where / "deploy-broken.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode == 0:
        raise RuntimeError("the broken release was reported as deployed")
    if f"rolled back to {good}" not in proc.stdout:
        raise RuntimeError("no rollback in the deploy's output: " + " | ".join(proc.stdout.splitlines()[-4:]))
    current = run.sh("readlink /opt/face-emotion/current").strip().rsplit("/", 1)[-1]
    if current != good:
        raise RuntimeError(f"current is {current}, not the good release {good}")
    run.wait_active(HEALTH_TIMEOUT)


def _stopped_line(run: Run) -> tuple[str, str]:
    """(frames, ms/frame) from the daemon's 'stopped after N frame(s)' line of this step."""
    for line in reversed(run.journal()):
        found = re.search(r"stopped after (\d+) frame\(s\);.*?frame ([\d.]+) ms", line)
        if found:
            return found.group(1), found.group(2)
    return "?", "?"


def step_video(run: Run) -> None:
    """A video with faces as the camera: labels flow (the event log's track_new/label_change entries in the journal)."""
    run.since = run.now()
    run.write_root_file("/etc/face-emotion/config.toml", guest_config(f"{MEDIA}/faces.avi", run.token, loop=True))
    run.sh("sudo systemctl restart face-emotion", timeout=HEALTH_TIMEOUT + 30)
    run.facts["camera_frames"], _ = _stopped_line(run)
    run.wait_active(HEALTH_TIMEOUT)
    deadline = time.monotonic() + 180
    labels: list[str] = []
    while time.monotonic() < deadline and len(labels) < 3:
        labels = [line for line in run.journal() if EVENT.search(line)]
        time.sleep(5)
    if not labels:
        raise RuntimeError("no face events from the video with faces")
    run.since = run.now()
    run.write_root_file("/etc/face-emotion/config.toml", guest_config("0", run.token))
    run.sh("sudo systemctl restart face-emotion", timeout=HEALTH_TIMEOUT + 30)
    frames, ms = _stopped_line(run)
    run.facts["video_frames"], run.facts["video_ms"] = frames, ms
    run.facts["events"] = str(len(labels))
    run.wait_active(HEALTH_TIMEOUT)


def step_reboot(run: Run) -> None:
    # Detached, so this ssh call returns before sshd goes down with the system.
    run.sh("sudo sh -c '(sleep 1; systemctl reboot) >/dev/null 2>&1 &'", timeout=60)
    time.sleep(10)
    run.facts["reboot_s"] = f"{run.guest.wait_for_ssh(600) + 10:.0f}"
    run.since = 0
    run.wait_active(HEALTH_TIMEOUT)


def step_camera_vanishes(run: Run) -> None:
    """The camera goes away under the running service: bounded retries, then exit 3 (not the watchdog's SIGABRT)."""
    run.since = run.now()
    out = run.sh("sudo rmmod vivid 2>&1 && echo RMMOD=ok || { echo vivid.0 | sudo tee "
                 "/sys/bus/platform/drivers/vivid/unbind >/dev/null && echo RMMOD=unbound; }")
    run.facts["vanish"] = "rmmod" if "RMMOD=ok" in out else "unbind (rmmod: in use)"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        journal = run.journal()
        if any("status=3/" in line for line in journal):
            break
        time.sleep(5)
    else:
        raise RuntimeError("no exit with status 3 within 180 s")
    bad = [line for line in journal if "ABRT" in line or "Watchdog timeout" in line or "core-dump" in line]
    if bad:
        raise RuntimeError("killed instead of exiting: " + " | ".join(bad[:3]))
    if run.facts["vanish"] != "rmmod":
        run.sh("sudo systemctl stop face-emotion; sudo rmmod vivid", check=False)


def step_picamera2(run: Run) -> None:
    """Real old and new picamera2 beside Debian's libcamera against the deployed floor check (pi_boot_picamera2)."""
    log: list[str] = []
    try:
        pi_boot_picamera2.run_step(run, run.facts, log)
    finally:
        (run.guest.where / "picamera2.log").write_text("\n".join(log))
    run.facts["picamera2"] = pi_boot_picamera2.summary(run.facts)
    problems = [f"{key} picamera2 {run.facts.get(key)}: {run.facts.get(f'{key}_check')}"
                for key, want in (("old", "refused: "), ("new", "accepted"))
                if not run.facts.get(f"{key}_check", "").startswith(want)]
    if problems:
        raise RuntimeError("; ".join(problems))


Step = tuple[str, Callable[[Run], None]]
STEPS: tuple[Step, ...] = (
    ("camera", step_camera), ("deploy", step_deploy), ("ready-after-frame", step_ready_after_frame),
    ("frames", step_frames), ("sandbox", step_sandbox), ("mqtt", step_mqtt), ("live-view", step_live_view),
    ("watchdog", step_watchdog), ("video", step_video), ("reboot", step_reboot), ("rollback", step_rollback),
    ("camera-vanishes", step_camera_vanishes),
)
# Run only when named in --steps, after the default ones, on these releases only.
OPT_IN: dict[str, tuple[Callable[[Run], None], tuple[str, ...]]] = {
    "picamera2": (step_picamera2, ("trixie",)),
}


def select_steps(names: str | None) -> tuple[Step, ...]:
    """The steps ``--steps a,b`` names, in run order (the default ones first); all default steps for None.

    Raises ValueError (one line) for a name that is not a step. The steps are
    not independent: most need ``deploy`` (and it the ``camera`` step's config)
    before them; that is the caller's choice, as with any subset.
    """
    if not names:
        return STEPS
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = [name for name, _ in STEPS] + list(OPT_IN)
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise ValueError(f"unknown step(s) {', '.join(unknown) or '(none given)'}; steps: {', '.join(known)}")
    return tuple(s for s in STEPS if s[0] in wanted) + tuple((n, OPT_IN[n][0]) for n in OPT_IN if n in wanted)


def steps_for(release: str, steps: tuple[Step, ...]) -> tuple[tuple[Step, ...], list[str]]:
    """(the steps that run on ``release``, the opt-in ones left out because they are for other releases)."""
    kept = tuple(s for s in steps if s[0] not in OPT_IN or release in OPT_IN[s[0]][1])
    return kept, [s[0] for s in steps if s not in kept]


def release_line(release: str, passed: list[str], total: int, facts: dict[str, str], where: str) -> str:
    """The release's one line: the facts the steps that ran have gathered (a full run names them all)."""
    f = facts
    start = [f"boot {f['boot_s']} s"] if "boot_s" in f else []
    start += [f"deploy {f['deploy_s']} s"] if "deploy_s" in f else []
    if "ready_s" in f:
        start.append(f"READY {f['ready_s']} s after start (first frame {f.get('first_frame_ms')} ms)")
    parts = [", ".join(start)] if start else []
    if "camera_frames" in f or "camera_ms" in f:
        parts.append(f"camera (vivid) {f.get('camera_frames')} frames, {f.get('camera_ms')} ms/frame")
    if "video_frames" in f:
        parts.append(f"video with faces {f['video_frames']} frames, {f.get('video_ms')} ms/frame, "
                     f"{f.get('events')} face events")
    optional = (("peak_rss", "peak RSS {}"), ("exposure", "exposure {}"), ("watchdog_s", "watchdog restart in {} s"),
                ("reboot_s", "reboot {} s"), ("vanish", "camera gone via {} -> exit 3"), ("picamera2", "{}"),
                ("left_out", "left out: {}"), ("total_s", "total {} s"))
    parts += [text.format(f[key]) for key, text in optional if key in f]
    return f"{release}: {len(passed)}/{total} steps passed ({where})" + (", " + "; ".join(parts) if parts else "")


def run_release(release: str, cache: Path, accel: str | None, video: Path, say: Callable[[str], None],
                steps: tuple[Step, ...] = STEPS) -> str:
    """Build or reuse the image, boot, run the steps; the release's line (raises StepFailed)."""
    started = time.monotonic()
    steps, left_out = steps_for(release, steps)
    built = build_image(release, cache, say)
    where = cache / release
    accel = accel or detect_accel(where)
    guest = Guest(where, host_key(cache), accel)
    run = Run(release, guest)
    run.facts["video_file"] = str(video)
    guest.start()
    try:
        try:
            boot = guest.wait_for_ssh(600)
        except RuntimeError as exc:
            raise StepFailed("boot", str(exc), guest.console.read_text(errors="replace").splitlines()[-15:]) from None
        say(f"{release}: booted ({accel}) in {boot:.0f} s")
        run.passed.append("boot")
        run.facts["boot_s"] = f"{boot:.0f}"
        for name, action in steps:
            say(f"{release}: {name} ...")
            try:
                action(run)
            except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
                journal: list[str] = []
                with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                    journal = run.journal(lines=15)
                facts = ", ".join(f"{k} {v}" for k, v in run.facts.items() if k != "video_file")
                raise StepFailed(name, f"{exc} (passed: {', '.join(run.passed)}; {facts})", journal) from None
            run.passed.append(name)
    finally:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError, OSError):
            journal = run.sh("sudo journalctl -u face-emotion --no-pager -o short-monotonic", timeout=120, check=False)
            (where / "journal.txt").write_text(journal)
        guest.stop()
    image = f"built in {built:.0f} s" if built else "cached"
    if left_out:
        run.facts["left_out"] = f"{', '.join(left_out)} (not for {release})"
    run.facts["total_s"] = f"{time.monotonic() - started:.0f}"
    return release_line(release, run.passed, len(steps) + 1, run.facts, f"{accel}, image {image}")


def preconditions() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap and mount namespaces)"
    missing = [t for t in ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "ssh", "make")
               if shutil.which(t) is None]
    if missing:
        return (f"missing {' '.join(missing)}: apt-get install qemu-system-x86 qemu-utils debootstrap e2fsprogs "
                "openssh-client make")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.pi_boot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", action="append", choices=RELEASES, help="only this release (repeatable)")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="images (default: $PI_BOOT_CACHE or "
                        "~/.cache/face-emotion/pi-boot)")
    parser.add_argument("--accel", choices=("kvm", "tcg"), help="skip the KVM probe")
    parser.add_argument("--steps", metavar="NAME[,NAME]", help="only these steps, in run order (default: all but "
                        f"the opt-in ones); steps: {', '.join([n for n, _ in STEPS] + list(OPT_IN))}; opt-in: "
                        + ", ".join(f"{n} ({'/'.join(r)} only)" for n, (_, r) in OPT_IN.items()))
    args = parser.parse_args(argv)
    try:
        steps = select_steps(args.steps)
    except ValueError as exc:
        print(f"pi-boot: --steps: {exc}", file=sys.stderr)
        return 2
    problem = preconditions()
    if problem:
        print(f"pi-boot: {problem}", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    video = args.cache / "faces.avi"
    if not video.is_file():
        from deploy.pi_check import make_video

        make_video(video, REPO / "samples" / "two_people.jpg", 150, "MJPG")

    def say(text: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {text}", flush=True)

    lines, failed = [], False
    # Without --release: the releases any selected step runs on (--steps picamera2 boots Trixie only).
    for release in args.release or [r for r in RELEASES if steps_for(r, steps)[0]]:
        try:
            lines.append(run_release(release, args.cache, args.accel, video, say, steps))
        except StepFailed as exc:
            failed = True
            lines.append(f"{release}: FAILED at step '{exc.step}': {exc.reason}")
            lines += [f"  | {line}" for line in exc.journal]
        except RuntimeError as exc:  # the image build
            failed = True
            lines.append(f"{release}: FAILED at step 'image': {exc}")
        print(lines[-1] if not lines[-1].startswith("  |") else "\n".join(lines[-16:]), flush=True)
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
