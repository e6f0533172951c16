"""Bootable Debian disk images for ``make pi-boot``: debootstrap, guest settings, ``mkfs.ext4 -d``, cached.

One image per release (Bookworm, Trixie), x86_64, built from Debian's own
packages: systemd as PID 1, openssh-server, the Debian kernel (its modules
include ``vivid``, the virtual V4L2 camera), sudo, python3, Mosquitto. The
heavy part of the deploy's apt set (python3-opencv and python3-numpy, ~200
packages) is installed into the image here, natively, because dpkg under an
emulated CPU takes many minutes; the rest of the deploy's apt set is left for
``make deploy`` to install inside the guest. Everything is kept in
``PI_BOOT_CACHE`` (default ``~/.cache/face-emotion/pi-boot``): a run boots a
copy-on-write overlay of ``<release>/base.img``, so the base stays pristine.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
INCLUDE = ("systemd", "systemd-sysv", "udev", "kmod", "linux-image-amd64", "dbus", "openssh-server", "sudo",
           "python3", "ca-certificates", "iproute2", "procps")
# Installed natively into the image (see the module docstring); the deploy finds them present.
PREINSTALLED = ("python3-opencv", "python3-numpy", "mosquitto", "mosquitto-clients")
USER = "pi"
DISK_SIZE = "8G"

_NETWORK = """[Match]
Name=en* eth*

[Network]
DHCP=ipv4
"""


def log_run(argv: list[str], log: Path, env: dict | None = None) -> None:
    """Run a build command with its output in ``log``; a failure names the command and its last line."""
    with log.open("ab") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, env=env)
    if proc.returncode:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
        raise RuntimeError(f"{argv[0]} exit {proc.returncode}: {lines[-1] if lines else ''} (log: {log})")


def chroot(root: Path, script: str, log: Path) -> None:
    """A shell script in the root, with /proc and /dev mounted in a private namespace (gone afterwards)."""
    enter = 'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && exec chroot "$1" /bin/sh -ec "$2"'
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive"}
    log_run(["unshare", "--mount", "--propagation", "private", "sh", "-c", enter, "pi-boot", str(root), script],
            log, env)


def host_key(cache: Path) -> Path:
    """The throwaway key the host logs in with (made once per cache)."""
    key = cache / "id_ed25519"
    if not key.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pi-boot", "-f", str(key)], check=True)
    return key


def configure_guest(root: Path, public_key: str) -> None:
    """What a freshly flashed Pi has: a user with passwordless sudo and our key, DHCP, DNS, this site's CAs."""
    (root / "etc" / "fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (root / "etc" / "hostname").write_text("pi-boot\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 pi-boot\n::1 localhost\n")
    (root / "etc" / "resolv.conf").unlink(missing_ok=True)
    shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")  # for apt in the chroot; the guest's comes last
    network = root / "etc" / "systemd" / "network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "50-dhcp.network").write_text(_NETWORK)
    sudoers = root / "etc" / "sudoers.d" / USER
    sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    # A TLS-inspecting proxy on this network: the guest trusts the same CAs as the host, as a Pi here would.
    bundle = root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    for ca in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")):
        shutil.copy2(ca, root / "usr" / "local" / "share" / "ca-certificates" / ca.name)
        pem = ca.read_text().strip()
        if bundle.is_file() and pem not in bundle.read_text():
            with bundle.open("a") as out:
                out.write("\n" + pem + "\n")
    home = root / "home" / USER / ".ssh"
    home.mkdir(parents=True, exist_ok=True)
    (home / "authorized_keys").write_text(public_key)


def build_image(release: str, cache: Path, say) -> float:
    """Make ``<cache>/<release>/base.img`` (+ kernel, initrd) unless it is there; seconds spent (0 = cached)."""
    where = cache / release
    image = where / "base.img"
    if image.is_file() and (where / "vmlinuz").is_file():
        return 0.0
    started = time.monotonic()
    where.mkdir(parents=True, exist_ok=True)
    logs = cache / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"build-{release}.log"
    log.write_text("")
    root = where / "root"
    if not (root / "etc" / "os-release").is_file():
        tmp = where / "root.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"{release}: debootstrap ...")
        log_run(["debootstrap", "--variant=minbase", "--include=" + ",".join(INCLUDE), release, str(tmp), MIRROR],
                log)
        tmp.rename(root)
    say(f"{release}: user, network, {' '.join(PREINSTALLED)} ...")
    key = host_key(cache)
    configure_guest(root, Path(str(key) + ".pub").read_text())
    chroot(root, f"""
id -u {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {USER}
chown -R {USER}:{USER} /home/{USER}
chmod 700 /home/{USER}/.ssh
systemctl enable systemd-networkd ssh >/dev/null
apt-get install -y -q --no-install-recommends {' '.join(PREINSTALLED)} >/dev/null
apt-get clean
""", log)
    (root / "etc" / "resolv.conf").write_text("nameserver 10.0.2.3\n")  # qemu's user-mode DNS
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"{release}: no kernel/initrd in {root / 'boot'} (log: {log})")
    shutil.copy2(kernels[-1], where / "vmlinuz")
    shutil.copy2(initrds[-1], where / "initrd.img")
    tmp_image = where / "base.img.tmp"
    tmp_image.unlink(missing_ok=True)
    say(f"{release}: mkfs.ext4 -d ...")
    log_run(["truncate", "-s", DISK_SIZE, str(tmp_image)], log)
    log_run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(tmp_image)], log)
    tmp_image.rename(image)
    return time.monotonic() - started
