"""``make pi-check``: the deploy's real install steps in arm64 Debian Bookworm and Trixie, under qemu-user.

No Pi is needed: ``debootstrap`` builds a minimal arm64 root filesystem per
release (cached), and every step of ``make deploy`` that runs on a Pi runs in
it, through the same :class:`deploy.remote.Remote` code with a chroot in place
of ssh: preflight, apt (the same packages), the service user, the release
(the same ``--system-site-packages`` venv and the same pip command, real
ai-edge-litert from PyPI), the unit, the switch. Then, with the release's own
Python, ``face-emotion analyze`` on samples/ and on a panning video, compared
face by face with the same commands on this machine, the daemon on that video
for a few hundred frames, and the bench as the README tells a Pi user to run it.

The video is lossless (FFV1), and the check first proves that it decodes to
this machine's pixels, frame by frame. The same pan as MJPG decodes differently
on arm64 in every frame (up to 3 levels in 71% of the values, the same with
Debian's FFmpeg on x86 as with pip's): x86 converts its YUV to BGR with SIMD
code that rounds differently from FFmpeg's C code, which arm64 matches in 99.9%
of the values. A face at the detection threshold is then found on one machine
only (104 of 200 MJPG frames had another face count). The MJPG difference is
reported, not failed; the pipeline itself is compared on equal input, strictly.

One line per release: versions, frames, ms per frame (emulated, so a
functional check, not a speed figure). A failure names the release and the step.
What cannot run here: systemd as PID 1 (the health check after restart),
the camera, and apt's python3-picamera2/python3-lgpio, which only the Raspberry
Pi archive has (reported as skipped when it is unreachable).

Needs root, ``debootstrap`` and ``qemu-user-static`` with binfmt_misc (``F``
flag, so the chroot needs no copy of qemu). Caches under ``PI_CHECK_CACHE``
(default ``~/.cache/face-emotion/pi-check``): ``<release>/base`` (debootstrap,
reused until ``--rebuild``) and ``<release>/root`` (the "Pi", reused like a Pi
that is deployed to again; ``--fresh`` starts it over from base).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from deploy import bundle as bundle_mod
from deploy.errors import DeployError
from deploy.layout import APT_PACKAGES, MIN_FREE_MB, PIP_PACKAGES, Layout
from deploy.remote import Remote, releases_to_prune
from deploy.ssh import explain_script_failure

REPO = Path(__file__).resolve().parent.parent
RELEASES = ("bookworm", "trixie")
MIRROR = "http://deb.debian.org/debian"
# What Raspberry Pi OS Lite has that minbase lacks and the deploy relies on (python3, systemctl, TLS for pip).
BASE_PACKAGES = ("python3", "systemd", "ca-certificates")
QEMU_CPU = "cortex-a72"  # the Raspberry Pi 4's core, so XNNPACK picks the kernels a Pi 4 runs
WORK = "/root/pi-check"  # inside the root filesystem: samples, the video, the daemon's config
FRAMES = 200
VIDEO = "pan.avi"  # FFV1, lossless: decodes to the same pixels everywhere; the video compared face by face
MJPG_VIDEO = "pan-mjpg.avi"  # the same pan as MJPG: only how many frames decode differently is reported
# On equal pixels the boxes have been identical (photos and the lossless video, Bookworm and Trixie); the 5 px
# (IoU 0.86) seen before came from the MJPG video's different decoding. Overlap, not pixels, scales with the face.
BOX_MIN_IOU = 0.85
TIE = 0.05  # a label may differ only between two labels both runs score this close (int8 rounding on ARM)

# In a private mount namespace: /proc and /dev for the chroot; gone when the command ends. Not /sys: it
# describes this machine's x86 CPUs, and XNNPACK's cpuinfo, reading it under qemu, crashes in
# allocate_tensors (segfault); without it cpuinfo falls back to /proc/cpuinfo and says so on stderr.
_ENTER = (
    'r=$1; s=$2; mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" '
    '&& exec chroot "$r" /bin/sh -c "$s"'
)


class StepFailed(Exception):
    """One line: which release, which step, why."""


@dataclass(frozen=True)
class ChrootTarget:
    """Runs deploy scripts in an arm64 root filesystem: the same interface as :class:`deploy.ssh.Target`."""

    root: Path
    host: str

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None) -> str:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "QEMU_CPU": QEMU_CPU, "DEBIAN_FRONTEND": "noninteractive",
               "SYSTEMD_OFFLINE": "1"}  # systemctl: no bus in a chroot (daemon-reload is skipped, enable works)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER, "pi-check", str(self.root),
                script]
        try:
            proc = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout, env=env,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"timed out after {timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise DeployError(explain_script_failure(proc.stderr.decode("utf-8", "replace"), proc.returncode))
        return proc.stdout.decode("utf-8", "replace")


@dataclass
class Outcome:
    release: str
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    facts: dict[str, str] = field(default_factory=dict)


@contextmanager
def step(outcome: Outcome, name: str, log: Callable[[str], None]) -> Iterator[None]:
    """Time a step; any failure becomes StepFailed naming the release and the step."""
    log(f"[{outcome.release}] {name} ...")
    start = time.monotonic()
    try:
        yield
    except StepFailed:
        raise
    except (DeployError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        raise StepFailed(f"{outcome.release}: step '{name}' failed: {exc}") from None
    outcome.steps[name] = time.monotonic() - start
    log(f"[{outcome.release}] {name}: {outcome.steps[name]:.0f} s")


def run_logged(argv: list[str], log_path: Path) -> None:
    with log_path.open("ab") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        raise DeployError(f"{argv[0]} exit {proc.returncode}: {lines[-1] if lines else ''} (log: {log_path})")


def ensure_base(release: str, cache: Path, rebuild: bool) -> bool:
    """debootstrap an arm64 minbase root once; True when it was built now."""
    base = cache / release / "base"
    if base.is_dir() and not rebuild:
        return False
    tmp = cache / release / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    (cache / "logs").mkdir(parents=True, exist_ok=True)
    run_logged(["debootstrap", "--arch=arm64", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
                release, str(tmp), MIRROR], cache / "logs" / f"debootstrap-{release}.log")
    tmp.rename(base)
    return True


def prepare_root(release: str, cache: Path, fresh: bool) -> tuple[Path, bool]:
    """The "Pi": a copy of base, kept between runs unless ``fresh``. Returns (root, made now)."""
    root = cache / release / "root"
    made = fresh or not (root / "etc" / "os-release").is_file()
    if made:
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(cache / release / "base"), str(root)], check=True)
    # Name resolution, and this site's own CAs (a TLS-inspecting proxy): what a Pi on this network would have.
    shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
    # Appended to the bundle directly: update-ca-certificates under qemu takes minutes (an openssl per cert).
    bundle = root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    for ca in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")):
        shutil.copy2(ca, root / "usr" / "local" / "share" / "ca-certificates" / ca.name)
        pem = ca.read_text()
        if bundle.is_file() and pem.strip() not in bundle.read_text():
            with bundle.open("a") as out:
                out.write("\n" + pem)
    return root, made


def available_packages(target: ChrootTarget, packages: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(installable, not in this archive) after apt-get update."""
    out = target.run(
        "apt-get update -q >/dev/null 2>&1 || { echo 'ERROR: apt-get update failed' >&2; exit 1; }\n"
        + "for p in " + " ".join(packages) + "; do\n"
        + '  if apt-cache show --no-all-versions "$p" 2>/dev/null | grep -q "^Package:"; then echo "OK=$p";'
        + ' else echo "NO=$p"; fi\ndone\n',
        timeout=1800,
    )
    ok = [line[3:] for line in out.splitlines() if line.startswith("OK=")]
    missing = [line[3:] for line in out.splitlines() if line.startswith("NO=")]
    return ok, missing


def du_mb(path: Path) -> int:
    out = subprocess.run(["du", "-sxm", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def pan_frames(image: Path, frames: int, width: int = 640, height: int = 480) -> Iterator:
    """A slow pan across a real photo, there and back: BGR frames of ``width`` x ``height``."""
    import cv2

    picture = cv2.imread(str(image))
    scale = max(width / picture.shape[1], height / picture.shape[0]) * 1.15
    big = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    span_x, span_y = big.shape[1] - width, big.shape[0] - height
    for i in range(frames):
        t = 0.5 - 0.5 * abs(1 - 2 * i / max(1, frames - 1))  # there and back
        x, y = int(span_x * t), int(span_y * t / 2)
        yield big[y : y + height, x : x + width]


def make_video(path: Path, image: Path, frames: int, fourcc: str = "FFV1") -> None:
    """:func:`pan_frames` as a 15 fps video: FFV1 (lossless) or MJPG, both read by any OpenCV with FFmpeg."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 15.0, (640, 480))
    if not writer.isOpened():
        raise DeployError(f"this machine's OpenCV cannot write a {fourcc} video ({path.name}): it needs FFmpeg")
    for frame in pan_frames(image, frames):
        writer.write(frame)
    writer.release()


def daemon_config(video: str) -> str:
    """The video as the camera; outputs that need hardware off; events to a file."""
    return f"""[camera]
source = "opencv"
device = "{video}"
fps = 15.0

[outputs.leds]
enabled = false

[outputs.event_log]
enabled = true
path = "{WORK}/events.jsonl"
journal = false

[service]
stats_interval_s = 1000
"""


# md5 of every decoded frame, per video: run by this machine's Python and by the release's in the root.
DIGESTS_PY = """
import hashlib, json, sys, cv2
digests = {}
for path in sys.argv[1:]:
    capture, sums = cv2.VideoCapture(path), []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        sums.append(hashlib.md5(image.tobytes()).hexdigest())
    capture.release()
    digests[path] = sums
print(json.dumps(digests))
"""


def compare_decoding(reference: dict[str, list[str]], other: dict[str, list[str]]) -> str:
    """The lossless video must decode to this machine's pixels, else DeployError; MJPG's differences are counted.

    Without equal pixels the video comparison would measure the decoder, not the pipeline: on arm64
    FFmpeg's YUV-to-BGR conversion rounds differently from x86's SIMD one (see the module docstring).
    """
    def differing(name: str) -> tuple[int, int]:
        ref, got = reference[name], other.get(name, [])
        return sum(a != b for a, b in zip(ref, got)) + abs(len(ref) - len(got)), len(ref)

    lossless, total = differing(VIDEO)
    if lossless:
        raise DeployError(f"{VIDEO} (lossless) decodes to other pixels than on this machine in {lossless}/{total} "
                          "frames: the video would not be compared on the same input")
    mjpg, total = differing(MJPG_VIDEO)
    return f"FFV1 decoded identically, MJPG differently in {mjpg}/{total} frames"


def analyze_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def iou(a: list[int], b: list[int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - w * h
    return w * h / union if union else 1.0


def _near_tie(ref: dict, got: dict, key: str) -> bool:
    """Both runs score the two labels within TIE of each other: int8 kernels round differently on ARM."""
    a, b = ref[key], got[key]
    return all(abs(face[f"{key}_scores"][a] - face[f"{key}_scores"][b]) <= TIE for face in (ref, got))


def _compare_frame(ref: dict, got: dict, where: str) -> tuple[int, int, float, float]:
    """(faces, near-ties, worst IoU, largest score difference) of one frame, or DeployError."""
    if len(ref["faces"]) != len(got["faces"]):
        raise DeployError(f"{where}: {len(got['faces'])} faces, {len(ref['faces'])} on this machine")
    ties, worst, score_diff = 0, 1.0, 0.0
    for a, b in zip(ref["faces"], got["faces"], strict=True):
        for key in ("emotion", "gender"):
            if a[key] != b[key]:
                if not _near_tie(a, b, key):
                    raise DeployError(f"{where}: {b['emotion']}/{b['gender']}, here {a['emotion']}/{a['gender']}")
                ties += 1
            score_diff = max(score_diff, *(abs(a[f"{key}_scores"][k] - b[f"{key}_scores"][k])
                                           for k in a[f"{key}_scores"]))
        overlap = iou(a["box"], b["box"])
        worst = min(worst, overlap)
        if overlap < BOX_MIN_IOU:
            raise DeployError(f"{where}: box {b['box']}, here {a['box']} (IoU {overlap:.2f})")
    return len(ref["faces"]), ties, worst, score_diff


def compare(reference: list[dict], other: list[dict], what: str) -> str:
    """Same faces, same labels, boxes overlapping (IoU >= BOX_MIN_IOU); a one-line summary or DeployError.

    x86 and ARM run different int8 kernels, so scores differ by a few quantization steps (up to
    about 0.04 seen, smoothing included); a label may then flip only between two labels both runs
    score within TIE. Every frame must have the same faces: both sides see the same pixels.
    """
    if len(reference) != len(other):
        raise DeployError(f"{what}: {len(other)} results, {len(reference)} on this machine")
    faces = ties = 0
    score_diff, worst = 0.0, 1.0
    for ref, got in zip(reference, other, strict=True):
        where = f"{what} {Path(str(ref.get('path', ''))).name} frame {ref.get('frame')}"
        n, t, w, d = _compare_frame(ref, got, where)
        faces, ties, worst, score_diff = faces + n, ties + t, min(worst, w), max(score_diff, d)
    flipped = f" but {ties} near-tie(s)" if ties else ""
    return f"{faces} faces, labels equal{flipped}, box IoU >= {worst:.2f}, scores within {score_diff:.3f}"


class Reference(NamedTuple):
    """This machine's answers: analyze on samples/ and on the video, and the videos' decoded-frame digests."""

    samples: list[dict]
    video: list[dict]
    digests: dict[str, list[str]]


def reference_run(work: Path) -> Reference:
    """``analyze --json`` on samples/ and the video, and the frame digests, with this machine's Python (x86)."""
    def run(what: str, *argv: str) -> str:
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=False, cwd=work)
        if proc.returncode != 0:
            raise DeployError(f"{what} on this machine failed: {proc.stderr.strip().splitlines()[-1:]}")
        return proc.stdout

    def analyze(path: str) -> list[dict]:
        return analyze_rows(run("analyze", "-m", "edge", "analyze", path, "--json", "--models", str(REPO / "models")))

    digests = json.loads(run("decoding the videos", "-c", DIGESTS_PY, VIDEO, MJPG_VIDEO))
    return Reference(analyze("samples"), analyze(VIDEO), digests)


def check_release(release: str, cache: Path, the_bundle: bundle_mod.Bundle, reference: Reference,
                  args: argparse.Namespace, log: Callable[[str], None]) -> Outcome:
    outcome = Outcome(release)
    started = time.monotonic()
    with step(outcome, "debootstrap", log):
        outcome.facts["base"] = "built" if ensure_base(release, cache, args.rebuild) else "cached"
    with step(outcome, "root filesystem", log):
        root, made = prepare_root(release, cache, args.fresh)
        outcome.facts["root"] = "fresh" if made else "reused"
    target = ChrootTarget(root, release)
    remote = Remote(target, Layout(), sudo="")
    lay = remote.layout
    with step(outcome, "preflight", log):
        pre = remote.preflight(MIN_FREE_MB)
        outcome.facts["python"] = pre.get("PY", "?")
    with step(outcome, "apt-get update", log):
        packages, skipped = available_packages(target, APT_PACKAGES)
        outcome.facts["skipped"] = " ".join(skipped)
    with step(outcome, "apt", log):
        before = du_mb(root)
        missing = remote.ensure_apt(tuple(packages), MIN_FREE_MB)
        outcome.facts["apt_mb"] = str(du_mb(root) - before)
        outcome.facts["apt_missing"] = str(len(missing))
    with step(outcome, "user", log):
        remote.ensure_user()
    with step(outcome, "release", log):
        remote.create_release(the_bundle.release_id, the_bundle.data, the_bundle.wheel_name, PIP_PACKAGES, ())
        outcome.facts["release_mb"] = str(du_mb(root / lay.release(the_bundle.release_id).lstrip("/")))
    with step(outcome, "unit", log):
        remote.install_unit(the_bundle.release_id)
        remote.switch(the_bundle.release_id)
        current, releases = remote.releases()
        remote.remove_releases(releases_to_prune(releases, current, 3))
    venv = f"{lay.current}/venv/bin"
    with step(outcome, "versions", log):
        out = target.run(f"""{venv}/python -c '
import importlib.metadata as md, numpy, cv2
print("NUMPY=" + numpy.__version__); print("OPENCV=" + cv2.__version__)
print("LITERT=" + md.version("ai-edge-litert"))
import ai_edge_litert.interpreter
'""")
        outcome.facts.update(dict(line.split("=", 1) for line in out.splitlines() if "=" in line))
    work = root / WORK.lstrip("/")
    with step(outcome, "copy inputs", log):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(args.scratch / "samples", work / "samples")
        for name in (VIDEO, MJPG_VIDEO):
            shutil.copy2(args.scratch / name, work / name)
        (work / "config.toml").write_text(daemon_config(f"{WORK}/{VIDEO}"))
    models = f"{lay.current}/models"
    with step(outcome, "decode", log):
        out = target.run(f"cd {WORK} && {venv}/python -c {shlex.quote(DIGESTS_PY)} {VIDEO} {MJPG_VIDEO}",
                         timeout=3600)
        outcome.facts["decode"] = compare_decoding(reference.digests, json.loads(out))
    with step(outcome, "analyze samples", log):
        rows = analyze_rows(target.run(f"cd {WORK} && {venv}/face-emotion analyze samples --json --models {models}",
                                       timeout=3600))
        outcome.facts["samples"] = compare(reference.samples, rows, "samples")
    with step(outcome, "analyze video", log):
        rows = analyze_rows(target.run(f"cd {WORK} && {venv}/face-emotion analyze {VIDEO} --json --models {models}",
                                       timeout=3600))
        outcome.facts["video"] = compare(reference.video, rows, "video")
        outcome.facts["video_frames"] = str(len(rows))
    with step(outcome, "daemon", log):
        t0 = time.monotonic()
        out = target.run(f"cd {WORK} && {venv}/face-emotion run --config {WORK}/config.toml --models {models} "
                         f"--frames {FRAMES} 2>&1; echo EXIT=$?", timeout=3600)
        elapsed = time.monotonic() - t0
        code = out.rsplit("EXIT=", 1)[-1].strip()
        done = [line for line in out.splitlines() if "stopped after" in line or "input ended after" in line]
        if code != "0" or not done:
            raise DeployError(f"exit {code}: {[line for line in out.splitlines() if line.strip()][-1:]}")
        frames = int(done[-1].split(" after ")[1].split()[0])
        frame_ms = [p for p in done[-1].split(", ") if p.startswith("frame ")]
        outcome.facts["daemon_frames"] = str(frames)
        outcome.facts["ms_per_frame"] = (frame_ms[0].split()[1] if frame_ms
                                         else f"{elapsed * 1000 / max(frames, 1):.0f}")
    with step(outcome, "bench", log):
        target.run(f"cd {WORK} && {venv}/face-emotion bench --source samples --models {models} --frames 9 "
                   "--warmup 1 --rounds 1 --baselines none --no-chart >/dev/null", timeout=3600)
    outcome.facts["total_s"] = f"{time.monotonic() - started:.0f}"
    return outcome


def line_for(outcome: Outcome) -> str:
    f = outcome.facts
    skipped = f" (not in Debian's archive, skipped: {f['skipped']})" if f.get("skipped") else ""
    return (f"{outcome.release}: ok  python {f.get('python')}  numpy {f.get('NUMPY')}  OpenCV {f.get('OPENCV')}  "
            f"ai-edge-litert {f.get('LITERT')}  |  analyze samples: {f.get('samples')}  |  video "
            f"{f.get('video_frames')} frames: {f.get('video')} ({f.get('decode')})  |  daemon: "
            f"{f.get('daemon_frames')} frames, "
            f"{f.get('ms_per_frame')} ms/frame (emulated)  |  apt +{f.get('apt_mb')} MB, release "
            f"{f.get('release_mb')} MB  |  {f.get('total_s')} s (base {f.get('base')}, root {f.get('root')})"
            f"{skipped}")


def preconditions() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mount): run as root or with sudo"
    for tool, package in (("debootstrap", "debootstrap"), ("unshare", "util-linux"), ("chroot", "coreutils")):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install {package}"
    if not Path("/usr/bin/qemu-aarch64-static").exists():
        return "qemu-aarch64-static not found: apt-get install qemu-user-static"
    status = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not status.is_file():
        return ("arm64 binaries cannot run here: no qemu-aarch64 binfmt_misc entry (mount -t binfmt_misc "
                "binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64)")
    text = status.read_text()
    if not text.startswith("enabled") or "flags: " not in text or "F" not in text.split("flags: ")[1].split()[0]:
        return "the qemu-aarch64 binfmt entry is disabled or lacks the F flag (update-binfmts --enable qemu-aarch64)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.pi_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("releases", nargs="*", default=list(RELEASES), help="Debian releases (default: both)")
    parser.add_argument("--fresh", action="store_true", help="start each root over from the cached base (cold apt)")
    parser.add_argument("--rebuild", action="store_true", help="debootstrap the bases again (implies --fresh)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PI_CHECK_CACHE", Path.home() / ".cache" / "face-emotion" / "pi-check")))
    parser.add_argument("--quiet", action="store_true", help="only the result lines")
    args = parser.parse_args(argv)
    args.fresh = args.fresh or args.rebuild
    bad = [r for r in args.releases if r not in RELEASES]
    if bad:
        print(f"pi-check: error: unknown release {bad[0]!r} (known: {', '.join(RELEASES)})", file=sys.stderr)
        return 2
    problem = preconditions()
    if problem:
        print(f"pi-check: error: {problem}", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pi-check-") as tmp:
        args.scratch = Path(tmp)
        try:
            log("building the wheel and the release bundle (as make deploy does) ...")
            wheel = bundle_mod.build_wheel(REPO, args.scratch)
            the_bundle = bundle_mod.make_bundle(
                release_id=bundle_mod.make_release_id(bundle_mod.git_short_sha(REPO)), wheel=wheel,
                models_dir=REPO / "models", example_config=REPO / "edge" / "config.example.toml",
                unit_file=REPO / "systemd" / "face-emotion.service")
            shutil.copytree(REPO / "samples", args.scratch / "samples")
            make_video(args.scratch / VIDEO, REPO / "samples" / "two_people.jpg", FRAMES)
            make_video(args.scratch / MJPG_VIDEO, REPO / "samples" / "two_people.jpg", FRAMES, "MJPG")
            log("reference run on this machine (analyze samples/ and the video, frame digests) ...")
            reference = reference_run(args.scratch)
        except DeployError as exc:
            print(f"pi-check: this machine: {exc}", file=sys.stderr)
            return 1
        failed = 0
        for release in args.releases:
            try:
                print(line_for(check_release(release, args.cache, the_bundle, reference, args, log)), flush=True)
            except StepFailed as exc:
                failed += 1
                print(f"{exc}", flush=True)
    log(f"pi-check: {len(args.releases) - failed}/{len(args.releases)} ok in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
