"""Fault injection (issue 15): a full disk, a corrupt video, failing --annotate, a vanishing source, huge photos.

Everything here is real: ``/dev/full`` and a real per-process file-size limit
(RLIMIT_FSIZE, what a nearly full SD card looks like to a writer), damaged
files on disk, the daemon as its own process with a real notify socket,
SIGTERM/SIGHUP, files deleted under it. Nothing under test is mocked.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SAMPLES, write_pan_video
from test_daemon import NotifySocket

from edge.inputs.sources import BadImage, ImageSource, OpenCVSource
from edge.service.daemon import EXIT_CAMERA, EXIT_OK

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
UNIT_KILL_S = 5.0  # TimeoutStopSec of systemd/face-emotion.service: past this systemd SIGKILLs us


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def config(tmp_path: Path, camera: str, event_log: str = "", **service) -> Path:
    """A daemon config: the given [camera] body, LEDs off, the event log where asked."""
    path = tmp_path / "config.toml"
    events = f'path = "{event_log}"\njournal = false' if event_log else "enabled = false"
    path.write_text(f"""
[camera]
{textwrap.dedent(camera).strip()}

[models]
dir = "{MODELS}"

[service]
stats_interval_s = {service.get('stats_interval_s', 0.5)}

[outputs.leds]
enabled = false

[outputs.event_log]
{events}
""")
    return path


def looping(source: str, where: Path) -> str:
    """A [camera] body: ``where`` played in a loop, a short retry budget (3 attempts, 0.2 s then 0.4 s)."""
    key = "device" if source == "opencv" else "path"
    return f'source = "{source}"\n{key} = "{where}"\nloop = true\nfps = 30.0\nretries = 2\nretry_backoff_s = 0.2'


def start_daemon(config_path: Path, notify: NotifySocket, preexec=None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(notify.path))
    return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)


def pings(notify: NotifySocket) -> int:
    return sum(1 for _, m in notify.messages if m == "WATCHDOG=1")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[float, str]:
    """Send ``sig``; (seconds until the process ended, its stderr)."""
    proc.send_signal(sig)
    sent = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - sent, stderr


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# -- 1. a write error in the event log --------------------------------------------------------------------------------

def test_an_event_log_on_a_full_device_never_stops_the_frames_or_the_watchdog(tmp_path, notify, pan_video):
    proc = start_daemon(config(tmp_path, f'source = "opencv"\ndevice = "{pan_video}"\nloop = true\nfps = 30.0',
                               event_log="/dev/full"), notify)
    try:
        assert notify.wait_for("READY=1"), "no READY=1"
        assert notify.wait_for("WATCHDOG=1", count=60), "the frame loop stopped"  # > one pass of the clip
        assert proc.poll() is None, "the daemon died"
    finally:
        stopped_in, stderr = stop(proc)
    assert proc.returncode == EXIT_OK, stderr
    no_traceback(stderr)
    # logged once for the whole outage, not once per event; the unwritten lines are counted at the end
    assert stderr.count("event log: cannot write /dev/full (No space left on device)") == 1, stderr
    assert "line(s) could not be written before closing" in stderr
    print(f"stopped {stopped_in:.2f} s after SIGTERM")


def test_a_file_size_limit_mid_run_leaves_whole_lines_and_the_daemon_running(tmp_path, notify, pan_video):
    events = tmp_path / "events.jsonl"
    limit = 700  # bytes: two or three events fit, then a write stops half-way (EFBIG, like ENOSPC)

    def small_disk() -> None:  # in the child only: RLIMIT_FSIZE is per process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    proc = start_daemon(config(tmp_path, f'source = "opencv"\ndevice = "{pan_video}"\nloop = true\nfps = 30.0',
                               event_log=str(events)), notify, preexec=small_disk)
    try:
        assert notify.wait_for("READY=1"), "no READY=1"
        assert notify.wait_for("WATCHDOG=1", count=100), "the frame loop stopped"  # two passes: many events
        assert proc.poll() is None, "the daemon died"
    finally:
        _, stderr = stop(proc)
    assert proc.returncode == EXIT_OK, stderr
    no_traceback(stderr)
    assert stderr.count("event log: cannot write") == 1, stderr
    text = events.read_text()
    assert 0 < len(text) <= limit and text.endswith("\n")
    for line in text.splitlines():  # no half line was left behind by the write that hit the limit
        json.loads(line)


def test_the_log_writes_the_held_lines_once_space_is_back(tmp_path):
    """A real file with a real size limit, raised again: the held lines follow in order, whole."""
    script = textwrap.dedent(f"""
        import json, logging, resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        from edge.outputs.appendlog import AppendLog
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        now = [0.0]
        log = AppendLog(path={str(tmp_path / 'events.jsonl')!r}, clock=lambda: now[0], backoff_s=1.0)
        log.open()
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, resource.RLIM_INFINITY))
        for i in range(20):
            log.write(json.dumps({{"event": "label_change", "n": i, "pad": "x" * 60}}))
            now[0] += 0.1
        held = len(log.pending)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        now[0] += 60
        log.write(json.dumps({{"event": "label_change", "n": 20, "pad": ""}}))
        print(held, len(log.pending), log.close())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    held, pending, lost = map(int, proc.stdout.split())
    assert held > 10 and pending == 0 and lost == 0
    numbers = [json.loads(line)["n"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert numbers == list(range(21))
    assert proc.stderr.count("cannot write") == 1 and "writing again after" in proc.stderr, proc.stderr


# -- 2. a corrupt frame in a video ------------------------------------------------------------------------------------

def corrupt_copy(video: Path, dest: Path, flips: int = 2000, seed: int = 15) -> Path:
    """``video`` with ``flips`` random bytes changed in its middle half (the issue's recipe)."""
    data = bytearray(video.read_bytes())
    rng = random.Random(seed)
    for _ in range(flips):
        data[rng.randrange(len(data) // 4, 3 * len(data) // 4)] = rng.randrange(256)
    dest.write_bytes(bytes(data))
    return dest


def decodable(video: Path) -> tuple[int, int | None]:
    """OpenCV on its own, reading until 100 reads in a row fail: (frames that decode, good frames before the
    first failed read, None when no read failed before the last good frame)."""
    capture = cv2.VideoCapture(str(video))
    good, failed_in_a_row, first_failure = 0, 0, None
    while failed_in_a_row < 100:
        ok, _ = capture.read()
        if ok:
            if failed_in_a_row and first_failure is None:
                first_failure = good
            good, failed_in_a_row = good + 1, 0
        else:
            failed_in_a_row += 1
    capture.release()
    return good, first_failure


def test_a_damaged_stretch_of_video_is_skipped_and_reported_not_the_end(tmp_path, pan_video):
    video = corrupt_copy(pan_video, tmp_path / "corrupt.mp4")
    good, first_failure = decodable(video)
    assert first_failure is not None and first_failure < good, "the recipe must damage a frame mid-video"
    source = OpenCVSource(str(video))
    source.open()
    stamps = [frame.timestamp for frame in source]
    assert len(stamps) == good  # every decodable frame, past the damage
    assert source.skipped >= 1
    # media time keeps counting the skipped frames (the last ones lost, if any, come after the last stamp)
    assert stamps[0] == 0.0 and (good - 1) / source.frame_rate < stamps[-1]
    assert stamps[-1] <= (good - 1 + source.skipped) / source.frame_rate + 1e-9
    source.close()
    proc = subprocess.run([sys.executable, "-m", "edge", "analyze", str(video)], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    no_traceback(proc.stderr)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{video}: {good} frames," in proc.stdout
    assert f"error: {video}: {source.skipped} damaged frame(s) could not be decoded and were skipped" in proc.stderr


def zeroed_copy(dest: Path, frames: int = 275, zeroed: int = 400_000) -> Path:
    """A pan video of ``frames`` frames with ``zeroed`` bytes set to 0 a third into the file (the issue's recipe,
    scaled to this video's bitrate): a gap of some 95 frames that do not decode, more than 50 reads in a row."""
    video = write_pan_video(dest.with_name("clean.mp4"), SAMPLES / "two_people.jpg", frames=frames)
    data = bytearray(video.read_bytes())
    start = len(data) // 3
    data[start:start + zeroed] = bytes(zeroed)
    dest.write_bytes(bytes(data))
    return dest


def opencv_alone(video: Path) -> tuple[int, int, int]:
    """(frames OpenCV decodes reading on for as many failed reads as the file has frames, the longest run of
    failed reads between two decoded frames, the container's frame count)."""
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    good = run = longest = 0
    while run <= total:
        ok, _ = capture.read()
        good, longest, run = (good + 1, max(longest, run), 0) if ok else (good, longest, run + 1)
    capture.release()
    return good, longest, total


def test_a_zeroed_stretch_longer_than_50_reads_is_read_past_counted_and_fails_the_exit(tmp_path):
    video = zeroed_copy(tmp_path / "zeroed.mp4")
    good, gap, total = opencv_alone(video)
    assert gap > 50 and good < total, "the recipe must make a gap longer than the old 50-read limit"
    source = OpenCVSource(str(video))
    source.open()
    frames = sum(1 for _ in source)
    print(f"{total} frames in the container, OpenCV alone decodes {good} (a gap of {gap}); "
          f"the source: {frames} analysed, {source.skipped} skipped")
    assert frames == good  # before: 86 of 275, and 0 skipped
    assert source.skipped >= gap and frames + source.skipped <= total
    source.close()
    source.open()  # loop = true reopens the file: the whole file plays again, not only up to the damage
    assert sum(1 for _ in source) == good
    source.close()
    proc = analyze(str(video))
    no_traceback(proc.stderr)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{video}: {good} frames," in proc.stdout
    assert "damaged frame(s) could not be decoded and were skipped" in proc.stderr


def test_the_service_plays_a_damaged_video_whole_in_a_loop_and_says_what_it_skipped(tmp_path, notify):
    video = zeroed_copy(tmp_path / "zeroed.mp4", frames=200)
    good, gap, _ = opencv_alone(video)
    path = config(tmp_path, f'source = "opencv"\ndevice = "{video}"\nloop = true\nfps = 120.0', stats_interval_s=0.2)
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:  # a file, not a pipe: FFmpeg's lines about the damage would fill a pipe
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(path)], stderr=stderr,
                                env=dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(notify.path)))
        try:
            assert notify.wait_for("READY=1"), "no READY=1"
            alive = notify.wait_for("WATCHDOG=1", count=good + 20, timeout=120)  # past the end: a second pass
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    text = log.read_text()
    no_traceback(text)
    assert alive and proc.returncode == EXIT_OK, text[-3000:]
    assert f"{gap} undecodable video frame(s) skipped so far" in text, text[-3000:]  # before: never said


# -- 3. --annotate failures --------------------------------------------------------------------------------------------

def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", "analyze", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)


def test_an_annotate_folder_that_cannot_be_made_costs_one_line_per_input_and_no_analysis(tmp_path, samples,
                                                                                         pan_video):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    for target in (blocker, blocker / "sub"):  # the folder is a file; the folder's parent is a file
        proc = analyze(str(samples / "astronaut.jpg"), str(samples / "two_people.jpg"), str(pan_video),
                       "--annotate", str(target))
        no_traceback(proc.stderr)
        assert proc.returncode == 1
        errors = proc.stderr.strip().splitlines()
        assert len([e for e in errors if e.startswith("error:")]) == 3, proc.stderr
        assert all("cannot create folder" in e for e in errors if e.startswith("error:"))
        assert "astronaut.jpg: 1 face(s)" in proc.stdout and "two_people.jpg: 2 face(s)" in proc.stdout
        assert f"{pan_video}: 45 frames" in proc.stdout  # still analysed
        assert "annotated output in" not in proc.stdout


def test_a_video_writer_that_does_not_open_is_reported_and_the_video_still_analysed(tmp_path, pan_video):
    out = Path("/proc/face-emotion-annotated.mp4")  # nobody, root included, can create a file in /proc
    proc = analyze(str(pan_video), "--annotate", str(out))
    no_traceback(proc.stderr)
    assert proc.returncode == 1
    assert f"error: {out}: cannot open a video writer there" in proc.stderr
    assert f"{pan_video}: 45 frames" in proc.stdout and "annotated output in" not in proc.stdout


def test_an_annotated_video_cut_short_by_a_full_disk_is_an_error_not_output(tmp_path, pan_video):
    """RLIMIT_FSIZE is what a nearly full SD card looks like to a writer: the MP4 stops part-way and its
    index is never written. Before: "annotated output in ...", exit 0, for a file that does not play."""
    limit = 64 * 1024  # the 45 annotated frames take several times this

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    out = tmp_path / "annotated.mp4"
    proc = subprocess.run([sys.executable, "-m", "edge", "analyze", str(pan_video), "--annotate", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=300, preexec_fn=small_disk)
    no_traceback(proc.stderr)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: {out}: the annotated copy of {pan_video} does not play (a write failed: disk full?)" \
        in proc.stderr, proc.stderr
    assert f"{pan_video}: 45 frames" in proc.stdout and "annotated output in" not in proc.stdout
    ok = analyze(str(pan_video), "--annotate", str(tmp_path / "fine.mp4"))  # with room: written and counted
    assert ok.returncode == 0 and "annotated output in" in ok.stdout, ok.stderr


# -- 4. a source that disappears under loop = true -------------------------------------------------------------------

def test_a_deleted_video_takes_the_retry_path_then_exits_for_systemd(tmp_path, notify, pan_video):
    video = tmp_path / "clip.mp4"
    video.write_bytes(pan_video.read_bytes())
    proc = start_daemon(config(tmp_path, looping("opencv", video)), notify)
    try:
        assert notify.wait_for("WATCHDOG=1", count=5), "not running"
        video.unlink()  # the open file plays to its end; the reopen finds nothing
        proc.wait(timeout=60)
    finally:
        _, stderr = stop(proc) if proc.poll() is None else (0.0, proc.stderr.read())
    no_traceback(stderr)
    assert proc.returncode == EXIT_CAMERA, stderr
    assert stderr.count("no such video file; retrying in") == 2
    assert "no such video file; giving up after 3 attempt(s)" in stderr


def test_an_emptied_image_folder_is_paced_rate_limited_and_ends_in_the_retry_path(tmp_path, notify, samples):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.jpg", "two_people.jpg"):
        (folder / name).write_bytes((samples / name).read_bytes())
    proc = start_daemon(config(tmp_path, looping("images", folder)), notify)
    try:
        assert notify.wait_for("WATCHDOG=1", count=5), "not running"
        for image in folder.iterdir():
            image.unlink()
        proc.wait(timeout=60)
    finally:
        _, stderr = stop(proc) if proc.poll() is None else (0.0, proc.stderr.read())
    no_traceback(stderr)
    assert proc.returncode == EXIT_CAMERA, stderr
    assert len(stderr.splitlines()) < 30, stderr  # was ~40,000 lines a second
    assert f"no image files in {folder}; giving up after 3 attempt(s)" in stderr


def test_a_folder_of_only_broken_images_ends_in_the_retry_path_instead_of_spinning(tmp_path, notify):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    proc = start_daemon(config(tmp_path, looping("images", folder)), notify)
    try:
        proc.wait(timeout=60)
    finally:
        _, stderr = stop(proc) if proc.poll() is None else (0.0, proc.stderr.read())
    no_traceback(stderr)
    assert proc.returncode == EXIT_CAMERA, stderr
    assert "could be read" in stderr and "giving up" in stderr
    assert len(stderr.splitlines()) < 30, stderr
    # Never READY (no frame was processed); WATCHDOG=1 only around the 2 bounded back-off waits (issue 26).
    assert not any(m == "READY=1" for _, m in notify.messages)
    assert pings(notify) <= 2 * 2


# -- 5. huge photos ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """A real 12000x9000 JPEG (108 megapixels), the issue's example."""
    photo = cv2.imread(str(ROOT / "samples" / "two_people.jpg"))
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    assert cv2.imwrite(str(path), cv2.resize(photo, (12000, 9000), interpolation=cv2.INTER_LINEAR))
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height``: the decoder would allocate it all."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_huge_jpeg_is_decoded_reduced_to_the_configured_frame_size(huge_jpeg):
    source = ImageSource([huge_jpeg], fit=(640, 480))
    frame = source.read()
    assert frame.image.shape == (480, 640, 3) and frame.gray.shape == (480, 640)
    script = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from edge.inputs.imagefile import read_image; "
              "peak = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) // 1024; "
              "before = peak(); "
              f"started = time.perf_counter(); image = read_image({str(huge_jpeg)!r}, (640, 480)); "
              "print(time.perf_counter() - started, before, peak())")
    took, before, after = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                         timeout=120).stdout.split()
    print(f"12000x9000 JPEG to 640x480: {float(took):.2f} s, peak RSS (VmHWM) {before} MB after imports, {after} MB "
          "after the decode (a full decode needs 324 MB for the pixels alone)")
    assert int(after) - int(before) < 160  # the full-size pixels alone are 324 MB


def test_the_api_decodes_a_huge_photo_reduced_as_the_cli_does_and_both_give_boxes_in_its_own_pixels(huge_jpeg):
    """Before: the API decoded 12000x9000 at full size (3.6 GB peak RSS: a 2 GB Pi dies), while the CLI's --json
    gave boxes in its downscaled frame with no size ([2802,331,751,751] against the API's [8214,964,2197,2197])."""
    script = (f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); from edge import analyze_image; "
              "peak = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) // 1024; "
              f"result = analyze_image({str(huge_jpeg)!r}); "
              "print(json.dumps({'peak_mb': peak(), 'width': result.width, 'height': result.height, "
              "'boxes': [list(face.box) for face in result.faces]}))")
    api = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                    timeout=300).stdout.splitlines()[-1])
    cli = analyze(str(huge_jpeg), "--json")
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout.splitlines()[0])
    print(f"API on the 12000x9000 JPEG: peak RSS {api['peak_mb']} MB, {len(api['boxes'])} face(s), "
          f"largest box {max(api['boxes'], key=lambda b: b[2] * b[3], default=None)}")
    assert api["peak_mb"] < 1024  # before: 3.6 GB
    assert (api["width"], api["height"]) == (printed["width"], printed["height"]) == (12000, 9000)
    assert api["boxes"] == [face["box"] for face in printed["faces"]] and api["boxes"]
    x, y, w, h = max(api["boxes"], key=lambda b: b[2] * b[3])
    assert w > 1000 and x + w <= 12000 and y + h <= 9000  # a face of the photo in its own pixels, not 4096's


@pytest.mark.parametrize("width, height, message", [
    (100000, 100000, "100000x100000 is 10000 megapixels"),
    (6000, 5000, "6000x5000 is 30 megapixels, more than the 25"),
])
def test_absurd_sizes_are_refused_from_the_header_before_decoding(tmp_path, width, height, message):
    path = png_header_only(tmp_path / "bomb.png", width, height)
    with pytest.raises(BadImage, match=message):
        ImageSource([path]).read()
    proc = analyze(str(path))
    no_traceback(proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "refused" in errors[0], proc.stderr


def test_a_truncated_jpeg_is_reported_as_damaged(tmp_path, samples):
    data = (samples / "astronaut.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    assert cv2.imread(str(truncated)) is not None  # OpenCV alone takes it for a good picture
    with pytest.raises(BadImage, match="damaged JPEG"):
        ImageSource([truncated]).read()
    proc = analyze(str(truncated), str(samples / "astronaut.jpg"))
    assert proc.returncode == 1 and "truncated.jpg: damaged JPEG (truncated" in proc.stderr
    assert "astronaut.jpg: 1 face(s)" in proc.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_daemon_stops_promptly_on_a_huge_photo(tmp_path, notify, huge_jpeg, sig):
    proc = start_daemon(config(tmp_path, f'source = "images"\npath = "{huge_jpeg}"\nloop = true\nfps = 30.0'),
                        notify)
    try:
        assert notify.wait_for("READY=1"), "no READY=1"
        assert notify.wait_for("WATCHDOG=1", count=2), "no frames from the huge photo"
    finally:
        stopped_in, stderr = stop(proc, sig)
    no_traceback(stderr)
    assert proc.returncode == EXIT_OK, stderr
    assert any(m == "STOPPING=1" for _, m in notify.messages)  # a clean stop, also for SIGHUP
    ready = next(t for t, m in notify.messages if m == "READY=1")
    first = next(t for t, m in notify.messages if m == "WATCHDOG=1")
    print(f"{signal.Signals(sig).name}: stopped {stopped_in:.2f} s after the signal; first ping "
          f"{first - ready:.2f} s after READY")
    assert stopped_in < UNIT_KILL_S


def test_sigterm_during_a_slow_decode_does_not_wait_for_it(tmp_path, notify):
    """A 24-megapixel PNG (no reduced decoding for PNG) takes seconds; the stop must not wait for it."""
    gradient = np.linspace(0, 255, 6000, dtype=np.uint8)
    image = np.dstack([np.tile(gradient, (4000, 1))] * 3)
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    proc = start_daemon(config(tmp_path, f'source = "images"\npath = "{path}"\nloop = true\nfps = 30.0'), notify)
    try:
        assert notify.wait_for("READY=1"), "no READY=1"
        time.sleep(0.2)
    finally:
        stopped_in, stderr = stop(proc)
    no_traceback(stderr)
    assert proc.returncode == EXIT_OK, stderr
    print(f"stopped {stopped_in:.2f} s after SIGTERM during a 24 MP PNG decode")
    assert stopped_in < UNIT_KILL_S



@pytest.mark.parametrize("name", ["photo.jpg", "clip.mp4"])
def test_a_fifo_given_by_name_is_refused_and_the_next_file_analysed(tmp_path, samples, name):
    """In a folder a FIFO is skipped; named directly it used to block analyze for ever (open waits for a writer)."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    try:
        proc = subprocess.run([sys.executable, "-m", "edge", "analyze", str(fifo), str(samples / "astronaut.jpg")],
                              capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"analyze blocked on the FIFO {fifo}")
    no_traceback(proc.stderr)
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {fifo}: not a regular file" + (" (a FIFO, device or socket); refused" if name.endswith("jpg") else "")]
    assert "astronaut.jpg: 1 face(s)" in proc.stdout
    with pytest.raises(BadImage, match="not a regular file"):
        from edge.api import analyze_image
        analyze_image(fifo)
