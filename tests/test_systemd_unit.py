"""The unit file: systemd accepts it as-is, it is hardened, and it keeps the contract.

Needs the Debian package ``systemd`` for ``systemd-analyze`` (skipped without it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "face-emotion.service"
EXEC_START = (
    "/opt/face-emotion/current/venv/bin/python -m edge run "
    "--config /etc/face-emotion/config.toml --models /opt/face-emotion/current/models"
)
MAX_EXPOSURE = 2.5

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze missing (apt-get install systemd)")


def _settings(text: str) -> dict[str, list[str]]:
    """key -> values in file order (repeated keys such as DeviceAllow= collect)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy whose ExecStart binary exists here.

    The real binary only exists on a Pi after a deploy, and verify rightly reports
    a missing ExecStart binary; everything else (User= included) is kept as is.
    """
    copy = tmp_path / "face-emotion.service"
    copy.write_text(
        unit_text.replace("ExecStart=/opt/face-emotion/current/venv/bin/python", f"ExecStart={sys.executable}")
    )
    return subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, cwd=tmp_path, check=False)


def test_unit_keeps_the_contract() -> None:
    s = _settings(UNIT.read_text())
    assert s["ExecStart"] == [EXEC_START]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "on-failure",
        "User": "face-emotion",
        "Group": "face-emotion",
        "SupplementaryGroups": "video",
        "RuntimeDirectory": "face-emotion",
        "WorkingDirectory": "/run/face-emotion",
        "DevicePolicy": "closed",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
        "IPAddressDeny": "any",
        "IPAddressAllow": "localhost",
        "WantedBy": "multi-user.target",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    assert {"LG_WD=/run/face-emotion", "GPIOZERO_PIN_FACTORY=lgpio", "PYTHONUNBUFFERED=1"} <= set(s["Environment"])
    for key in ("WatchdogSec", "RestartSec", "StartLimitIntervalSec", "StartLimitBurst", "TimeoutStopSec"):
        assert s.get(key), key
    stop = s["TimeoutStopSec"][0]
    assert int(stop.removesuffix("s")) <= 10, "the daemon stops within 2 s; do not wait long"
    # The camera and GPIO devices stay reachable: no PrivateDevices, explicit device classes.
    assert "PrivateDevices" not in s
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {"char-video4linux", "char-media", "char-dma_heap", "char-gpiochip", "char-drm"} <= allowed
    assert "char-vchiq" not in allowed  # no such device class on current kernels (libcamera does not use VCHIQ)
    assert "AF_NETLINK" in s["RestrictAddressFamilies"][0]
    # ProcSubset=pid would hide /proc/cpuinfo and /proc/device-tree (gpiozero board detection).
    assert "ProcSubset" not in s


GROUP_MASTER = Path("/usr/share/base-passwd/group.master")


@pytest.mark.skipif(not GROUP_MASTER.is_file(), reason="needs Debian's base-passwd group list")
def test_descriptors_and_tasks_are_limited_with_room_above_the_live_views_cap() -> None:
    """A flood once took the default 1,024 descriptors; the unit states its own limits, well above what
    the daemon needs with the live view's connection cap (32) and far below the machine's."""
    s = _settings(UNIT.read_text())
    assert int(s["LimitNOFILE"][-1]) >= 4096
    assert 128 <= int(s["TasksMax"][-1]) <= 1024


def test_supplementary_groups_exist_on_every_debian() -> None:
    """A group named in SupplementaryGroups= that does not exist fails every start (216/GROUP): gpio did."""
    static = {line.split(":")[0] for line in GROUP_MASTER.read_text().splitlines() if line.strip()}
    groups = _settings(UNIT.read_text())["SupplementaryGroups"][0].split()
    assert groups and set(groups) <= static, set(groups) - static


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    proc = _verify(UNIT.read_text(), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).strip() == ""


@needs_analyze
def test_verify_harness_reports_mistakes(tmp_path: Path) -> None:
    """Guards the test above: a misspelt key in an otherwise identical copy is reported."""
    proc = _verify(UNIT.read_text().replace("UMask=", "UMsk="), tmp_path)
    assert "UMsk" in proc.stdout + proc.stderr


@needs_analyze
def test_security_exposure_is_low() -> None:
    proc = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security: overall exposure {exposure}")
    assert exposure <= MAX_EXPOSURE
