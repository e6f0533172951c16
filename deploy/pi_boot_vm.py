"""One booted guest for ``make pi-boot``: qemu-system-x86_64 with systemd as PID 1, reached over loopback ssh.

The accelerator is found by a short boot, never assumed: on these machines
``/dev/kvm`` exists and ``KVM_CREATE_VM`` succeeds, yet a KVM guest spins
without printing a line, so KVM counts only when its kernel prints its banner
within a few seconds; otherwise TCG (emulation: slow, sized for in the timeouts).
Every forwarded port listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

_CONNECT_FAILURE = re.compile(r"Connection (timed out|refused|reset|closed)|banner exchange|kex_exchange")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _qemu_base(where: Path, accel: str, memory_mb: int) -> list[str]:
    return ["qemu-system-x86_64", "-accel", accel, "-cpu", "max", "-m", str(memory_mb), "-smp", "2",
            "-kernel", str(where / "vmlinuz"), "-initrd", str(where / "initrd.img"),
            "-display", "none", "-monitor", "none"]


def detect_accel(where: Path, seconds: float = 12.0) -> str:
    """``kvm`` when a KVM guest prints its kernel banner within ``seconds``, else ``tcg``."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    console = where / "kvm-probe.log"
    console.unlink(missing_ok=True)
    argv = _qemu_base(where, "kvm", 256) + ["-append", "console=ttyS0 panic=-1", "-serial", f"file:{console}",
                                            "-no-reboot"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    found = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if console.is_file() and "Linux version" in console.read_text(errors="replace"):
                found = True
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    return "kvm" if found else "tcg"


@dataclass
class Guest:
    """A running guest booted from a copy-on-write overlay of a cached base image."""

    where: Path  # <cache>/<release>: base.img, vmlinuz, initrd.img
    key: Path
    accel: str = "tcg"
    user: str = "pi"
    ssh_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def console(self) -> Path:
        return self.where / "console.log"

    def start(self) -> None:
        overlay = self.where / "run.qcow2"
        overlay.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.where / "base.img"), "-F", "raw",
                        str(overlay)], check=True)
        self.console.write_text("")
        argv = _qemu_base(self.where, self.accel, 2048) + [
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0",
            "-drive", f"file={overlay},format=qcow2,if=virtio",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=n0", "-serial", f"file:{self.console}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def ssh_options(self) -> list[str]:
        config = self.key.parent / "ssh_config"  # empty: not the user's own config (the deploy wants a file)
        if not config.is_file():
            config.write_text("")
        return ["-F", str(config), "-i", str(self.key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=30"]

    def ssh(self, script: str, timeout: float = 120, check: bool = True) -> str:
        """Run ``script`` with sh in the guest as the user; stdout (a failure raises with stderr's last lines)."""
        argv = ["ssh", *self.ssh_options(), f"{self.user}@127.0.0.1", "sh -c " + shlex.quote(script)]
        for attempt in range(4):
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"timed out after {timeout:.0f} s: {script.splitlines()[0][:80]}") from None
            # 255: ssh itself failed (an emulated guest on a busy host can miss the banner deadline): again.
            if proc.returncode != 255 or attempt == 3 or not _CONNECT_FAILURE.search(proc.stderr):
                break
            time.sleep(5)
        if check and proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"exit {proc.returncode}: {tail}")
        return proc.stdout

    def wait_for_ssh(self, timeout: float) -> float:
        """Seconds until ssh logs in (the guest's multi-user target has sshd up)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"qemu exited ({self.proc.returncode}); console: {self.console}")
            try:
                self.ssh("true", timeout=60)
                return time.monotonic() - started
            except RuntimeError:
                time.sleep(2)
        raise RuntimeError(f"no ssh login within {timeout:.0f} s; console: {self.console}")

    def forward(self, local_port: int, guest_port: int) -> subprocess.Popen:
        """``ssh -L 127.0.0.1:local:127.0.0.1:guest``: a loopback-only service of the guest, reachable here."""
        argv = ["ssh", *self.ssh_options(), "-N", "-L", f"127.0.0.1:{local_port}:127.0.0.1:{guest_port}",
                f"{self.user}@127.0.0.1"]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
