"""A bounded connection flood of the live view, with its token set, against ``python -m edge run`` on loopback.

    python tests/liveview_flood.py --connections 1000 --hold 20 --nofile 1024
    python tests/liveview_flood.py --repo /tmp/old-checkout      # the same against another tree's code

Starts the daemon (a looping pan video of ``samples/two_people.jpg`` at 15 fps, the live view on a free
127.0.0.1 port with a token, no other output) under ``prlimit --nofile`` (1024: systemd's default soft
limit, the one the daemon once died at) with a real NOTIFY_SOCKET. Then opens ``--connections``
connections: half never finish their headers (the token in the URL, one more byte a second), half are
authenticated ``/stream.mjpg`` viewers that never read. Holds them ``--hold`` seconds and prints, each
second, the daemon's open descriptors, threads, RSS and whether a real request gets through; the watchdog
pings (one per processed frame) per second before, during and after; whether the daemon is still alive.
Not a test: figures for the notes (issue 28), nothing asserted. Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from conftest import SAMPLES, write_pan_video  # noqa: E402

TOKEN = "0123456789abcdef0123"


class Notify:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: READY=1 and the times of WATCHDOG=1."""

    def __init__(self, path: Path):
        self.path, self.pings, self.ready = path, [], threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.splitlines():
                if line == "WATCHDOG=1":
                    self.pings.append(time.monotonic())
                elif line == "READY=1":
                    self.ready.set()

    def rate(self, start: float, end: float) -> float:
        return sum(1 for t in self.pings if start <= t <= end) / max(end - start, 1e-9)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_figures(pid: int) -> tuple[int, int, int]:
    """(open descriptors, threads, RSS in MB) of a process; -1s once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return (len(os.listdir(f"/proc/{pid}/fd")), int(status.split("Threads:")[1].split()[0]),
                int(status.split("VmRSS:")[1].split()[0]) // 1024)
    except (FileNotFoundError, ProcessLookupError):
        return -1, -1, -1


def status_code(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json?token={TOKEN}", timeout=5) as response:
            return str(response.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except OSError as error:
        return type(error).__name__


def quiet_window(tag: str, notify: Notify, proc: subprocess.Popen, port: int) -> str:
    """Frames per second over the next 10 s, then the daemon's descriptors, threads, RSS and a real request."""
    start = time.monotonic()
    time.sleep(10)
    fds, threads, rss = proc_figures(proc.pid)
    return (f"{tag}: {notify.rate(start, time.monotonic()):.1f} frames/s, fds {fds}, threads {threads}, "
            f"RSS {rss} MB, a real request: {status_code(port)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the flood is held")
    parser.add_argument("--nofile", type=int, default=1024, help="the daemon's descriptor limit")
    args = parser.parse_args()
    if not 1 <= args.connections <= 5000 or not 1 <= args.hold <= 120:
        parser.error("bounded: 1..5000 connections, 1..120 s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 256), hard))
    work = Path(tempfile.mkdtemp(prefix="liveview-flood-"))
    video = write_pan_video(work / "pan.mp4", SAMPLES / "two_people.jpg")
    port = free_port()
    config = work / "config.toml"
    config.write_text(f'[camera]\nsource = "opencv"\ndevice = "{video}"\nloop = true\nfps = 15.0\n'
                      f'[models]\ndir = "{args.repo / "models"}"\n[service]\nstats_interval_s = 5.0\n'
                      '[outputs.leds]\nenabled = false\n[outputs.event_log]\nenabled = false\n'
                      f'[outputs.live_view]\nenabled = true\nport = {port}\ntoken = "{TOKEN}"\n')
    notify = Notify(work / "notify.sock")
    log = work / "daemon.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["prlimit", f"--nofile={args.nofile}", sys.executable, "-m", "edge", "run",
                                 "--config", str(config)], cwd=args.repo, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(args.repo), NOTIFY_SOCKET=str(notify.path)))
    try:
        if not notify.ready.wait(120):
            print(f"no READY=1; see {log}")
            return 1
        time.sleep(2)
        print(quiet_window("before", notify, proc, port))
        clients, refused, flood_start = [], 0, time.monotonic()
        for i in range(args.connections):
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                if i % 2:  # a viewer that never reads
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    client.sendall(f"GET /stream.mjpg?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                else:  # headers that never end
                    client.sendall(f"GET /status.json?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
                clients.append(client)
            except OSError:
                refused += 1
        print(f"opened {len(clients)} of {args.connections} connections in {time.monotonic() - flood_start:.1f} s "
              f"({refused} failed at connect)")
        peak = [0, 0]
        hold_start = time.monotonic()
        while time.monotonic() - hold_start < args.hold:
            for client in clients[0::2]:
                with contextlib.suppress(OSError):
                    client.send(b"X")
            fds, threads, rss = proc_figures(proc.pid)
            peak = [max(peak[0], fds), max(peak[1], threads)]
            print(f"  t+{time.monotonic() - hold_start:4.0f} s: alive {proc.poll() is None}, fds {fds}, "
                  f"threads {threads}, RSS {rss} MB, a real request: {status_code(port)}", flush=True)
            time.sleep(1.0)
        during = notify.rate(flood_start, time.monotonic())
        cut = 0
        for client in clients:
            client.setblocking(False)
            try:
                while client.recv(65536):
                    pass
                cut += 1
            except BlockingIOError:
                pass
            except OSError:
                cut += 1
            client.close()
        print(f"during: {during:.1f} frames/s, peak fds {peak[0]}, peak threads {peak[1]}; {cut} of {len(clients)} "
              "connections closed by the daemon")
        time.sleep(12)
        print(quiet_window("after", notify, proc, port) + f", alive {proc.poll() is None}")
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
    print(f"daemon exit status {proc.returncode} (log: {log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
