"""The deploy tool against a real OpenSSH server on loopback, with this machine as the "Pi".

Real: sshd and ssh with throwaway keys, the wheel build, ``python3 -m venv
--system-site-packages``, ``pip install --no-deps`` of the wheel, the tar upload,
the symlink switch and pruning. Replaced (``--fake-system``) only what cannot run
here: sudo, apt-get, dpkg-query, useradd, systemctl, journalctl, by a recorder
that logs each call and answers as the test says. Everything lands under a
per-host ``--prefix`` in the test's temp dir.

Needs the Debian packages openssh-server and openssh-client (skipped without sshd).
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.actions import HostResult
from deploy.bundle import make_release_id, select_models
from deploy.errors import DeployError
from deploy.fake_system import parse_answers
from deploy.layout import RELEASE_ID_RE
from deploy.remote import picamera2_problem, platform_problem, previous_release, releases_to_prune
from deploy.report import format_table, next_steps
from deploy.ssh import SshOptions, check_host, explain_ssh_failure

REPO = Path(__file__).resolve().parent.parent
SSHD = Path("/usr/sbin/sshd")
OLD_RELEASES = ("20200101T000000Z-aaaaaaa", "20200102T000000Z-bbbbbbb", "20200103T000000Z-ccccccc")


# --------------------------------------------------------------------------- pure logic


def test_release_id_is_utc_timestamp_and_sha() -> None:
    rid = make_release_id("ab12cd3", dt.datetime(2026, 11, 28, 11, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert rid == "20261128T101500Z-ab12cd3"
    assert RELEASE_ID_RE.match(rid)


def test_prune_keeps_newest_and_never_current() -> None:
    rels = ["20260101T000000Z-a", "20260102T000000Z-b", "20260103T000000Z-c", "20260104T000000Z-d"]
    assert releases_to_prune(rels, rels[-1], 3) == [rels[0]]
    assert releases_to_prune(rels, rels[0], 3) == []  # rolled back to the oldest: it stays
    assert releases_to_prune(rels, rels[-1], 1) == rels[:3]
    assert previous_release(rels, rels[2]) == rels[1]
    assert previous_release(rels, rels[0]) is None


def test_ssh_failures_become_one_line() -> None:
    assert explain_ssh_failure("ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n").startswith(
        "unreachable: connection refused"
    )
    assert explain_ssh_failure("root@127.0.0.1: Permission denied (publickey).\r\n").startswith("ssh login refused")
    line = explain_ssh_failure("/x/cfg: line 1: Bad configuration option: hostnme\n/x/cfg: terminating, 1 bad ...\n")
    assert line == "ssh config error: /x/cfg: line 1: Bad configuration option: hostnme"


def test_ssh_always_batch_mode_with_timeout() -> None:
    argv = SshOptions(config_file="/c", identity="/k", port=2222, connect_timeout=4).argv()
    assert argv[0] == "ssh"
    assert "BatchMode=yes" in argv and "ConnectTimeout=4" in argv
    assert argv[argv.index("-F") + 1] == "/c" and argv[argv.index("-p") + 1] == "2222"


@pytest.mark.parametrize("host", ["-oProxyCommand=touch /tmp/x", "pi;rm", "pi one", ""])
def test_hosts_that_could_inject_are_refused(host: str) -> None:
    with pytest.raises(DeployError):
        check_host(host)


@pytest.mark.parametrize("option", ["StrictHostKeyChecking=accept-new", "User pi", "userknownhostsfile = /k",
                                    "ProxyJump=admin@bastion:2222,gw", "ConnectTimeout=5", "ProxyJump=none"])
def test_the_ssh_options_a_deploy_needs_are_allowed(option: str) -> None:
    from deploy.cli import _check_ssh_option

    _check_ssh_option(option)  # no DeployError


def test_no_host_string_becomes_an_ssh_option() -> None:
    """Every host goes after ``--`` in ssh's argv, and one that starts with - is refused before that."""
    argv = [*SshOptions(extra=("User=pi",)).argv(), "--", check_host("pi@pi1.lan")]
    assert argv[argv.index("--") + 1:] == ["pi@pi1.lan"] and "-oPKCS11Provider=x" not in argv
    for host in ("-oPKCS11Provider=./evil.so", "-o", "--", "pi@-oProxyCommand=x"):
        with pytest.raises(DeployError):
            check_host(host)


def test_fake_answers_are_checked() -> None:
    assert parse_answers(["is-active=failed"]) == {"is-active": "failed"}
    with pytest.raises(DeployError, match="bad --fake-answer"):
        parse_answers(["is-activ=failed"])


def test_models_are_filtered_by_type(tmp_path: Path) -> None:
    for name in ("a.tflite", "b.xml", "manifest.json", "notes.txt", "other.json"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in select_models(tmp_path)] == ["a.tflite", "b.xml", "manifest.json"]
    with pytest.raises(DeployError, match="models directory not found"):
        select_models(tmp_path / "missing")


def test_table_has_a_row_per_host() -> None:
    table = format_table([HostResult("pi1", True, "20261128T101500Z-ab12cd3"), HostResult("pi2", False, "-", "why")])
    lines = table.splitlines()
    assert lines[0].split() == ["HOST", "RELEASE", "RESULT", "REASON"]
    assert lines[1].split() == ["pi1", "20261128T101500Z-ab12cd3", "ok"]
    assert lines[2].split() == ["pi2", "-", "failed", "why"]


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy"], "no host given"),
        (["status", "pi", "--fake-system"], "--fake-system needs --prefix"),
        (["status", "pi", "--prefix", "relative/dir"], "--prefix must be an absolute path"),
        (["status", "pi", "--timeout", "0"], "--timeout must be at least 1"),
        (["rollback", "pi", "--bogus"], "unrecognized arguments"),
        (["status", "pi", "--sudo", "sudo; rm -rf /"], "--sudo must be plain words"),
        (["status", "-oProxyCommand=touch /tmp/x", "127.0.0.1"], "--ssh-option 'ProxyCommand' is not one the deploy"),
        (["status", "-o", "PKCS11Provider=./evil.so", "127.0.0.1"], "--ssh-option 'PKCS11Provider' is not one the"),
        (["status", "-o", "SecurityKeyProvider ./evil.so", "127.0.0.1"], "--ssh-option 'SecurityKeyProvider' is not"),
        (["status", "-o", "pkcs11provider = ./evil.so", "127.0.0.1"], "--ssh-option 'pkcs11provider' is not one"),
        (["status", "-o", "Match exec \"touch /tmp/x\"", "127.0.0.1"], "--ssh-option 'Match' is not one the deploy"),
        (["status", "-o", "ProxyJump=-oProxyCommand=touch", "127.0.0.1"], "not a valid host name: '-oProxyCommand"),
        (["status", "-o", "User=pi\nProxyCommand=touch /tmp/x", "127.0.0.1"], "has control characters"),
        (["status", "--", "-oProxyCommand=touch /tmp/x"], "not a valid host name: '-oProxyCommand=touch'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = _cli(*args, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("target", ["deploy", "rollback", "status"])
@pytest.mark.parametrize("pi", ["nohost.invalid;touch {canary}", "$$(touch {canary})", "`touch {canary}`",
                                "-oProxyCommand=touch {canary}", "x' ; touch {canary} ; '",
                                "$(shell touch {canary})localhost", "${{shell touch {canary}}}localhost"])
@pytest.mark.parametrize("via", ["command line", "environment"])
def test_make_never_lets_a_host_reach_a_shell_and_fails_when_the_deploy_fails(tmp_path, target, pi, via) -> None:
    """Not the shell, and not make either: make used to expand $(shell ...) in PI while exporting it."""
    canary = tmp_path / "pwned"
    host = pi.format(canary=canary)
    args, env = (["PI=" + host], dict(os.environ)) if via == "command line" else ([], dict(os.environ, PI=host))
    proc = subprocess.run(["make", "--no-print-directory", target, *args, f"PYTHON={sys.executable}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert not canary.exists(), proc.stdout + proc.stderr
    assert proc.returncode != 0 and "deploy: error:" in proc.stderr, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- real sshd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path


@dataclass(frozen=True)
class Lab:
    """The sshd, the client config with host aliases, and where each host's sandbox lives."""

    root: Path
    ssh_config: Path
    models: Path
    example_config: Path
    extra_wheels: Path

    def prefix(self, host: str) -> Path:
        return self.root / "targets" / host

    def install_root(self, host: str) -> Path:
        return self.prefix(host) / "opt" / "face-emotion"

    def releases(self, host: str) -> list[str]:
        d = self.install_root(host) / "releases"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def current(self, host: str) -> str:
        return os.readlink(self.install_root(host) / "current")

    def calls(self, host: str) -> list[str]:
        log = self.prefix(host) / "fake-system" / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def config(self, host: str) -> Path:
        return self.prefix(host) / "etc" / "face-emotion" / "config.toml"

    def deploy(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        common = [
            "--ssh-config", str(self.ssh_config),
            "--prefix", str(self.root / "targets" / "{host}"),
            "--fake-system",
            "--timeout", "20",
            "--settle", "1",
            "--connect-timeout", "5",
        ]  # fmt: skip
        if command == "deploy":
            common += ["--models", str(self.models), "--example-config", str(self.example_config)]
            # The extra pip package comes from a local wheel dir: no network in tests.
            common += ["--pip-packages", "fe-extra-dummy", "--pip-arg=--no-index"]
            common += [f"--pip-arg=--find-links={self.extra_wheels}"]
        proc = _cli(command, *args, *common)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc


def _dummy_wheel(dest: Path) -> Path:
    """A minimal pure-Python wheel (what pip needs: module, METADATA, WHEEL, RECORD)."""
    files = {
        "fe_extra_dummy/__init__.py": b"VALUE = 42\n",
        "fe_extra_dummy-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fe-extra-dummy\nVersion: 1.0\n",
        "fe_extra_dummy-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("fe_extra_dummy-1.0.dist-info/RECORD,,")
    files["fe_extra_dummy-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / "fe_extra_dummy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("needs /usr/sbin/sshd, ssh and ssh-keygen (apt-get install openssh-server openssh-client)")
    root = tmp_path_factory.mktemp("deploy")
    host_key = _keygen(root / "host_key")
    client_key = _keygen(root / "client_key")
    wrong_key = _keygen(root / "wrong_key")
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    port, dead_port = _free_port(), _free_port()
    (root / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel ERROR
"""
    )
    if os.geteuid() == 0:
        # sshd started as root insists on its privilege separation dir (systemd makes it on a normal host).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (root / "sshd.log").open("wb")
    sshd = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=log)
    user = getpass.getuser()
    common = f"""  HostName 127.0.0.1
  User {user}
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile {root}/known_hosts
  LogLevel ERROR
"""
    (root / "ssh_config").write_text(
        f"Host pi-a pi-b pi-c\n  Port {port}\n  IdentityFile {client_key}\n{common}"
        f"Host pi-wrongkey\n  Port {port}\n  IdentityFile {wrong_key}\n{common}"
        f"Host pi-dead\n  Port {dead_port}\n  IdentityFile {client_key}\n{common}"
    )
    models = root / "models"
    (models / "sub").mkdir(parents=True)
    for name in ("emotion.tflite", "gender.tflite", "haarcascade_frontalface_default.xml", "manifest.json"):
        (models / name).write_text(f"model {name}\n")
    (models / "README.txt").write_text("not a model\n")
    (models / "sub" / "nested.tflite").write_text("not top level\n")
    example = REPO / "edge" / "config.example.toml"
    if not example.is_file():  # the lead writes it; until then a placeholder stands in
        example = root / "config.example.toml"
        example.write_text("# placeholder example config\n[camera]\nwidth = 640\n")
    lab = Lab(root, root / "ssh_config", models, example, root / "extra-wheels")
    _dummy_wheel(lab.extra_wheels)
    try:
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(
                ["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", "pi-a", "true"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode == 0:
                break
            if sshd.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"test sshd did not accept us: {probe.stderr}\n{(root / 'sshd.log').read_text()}")
            time.sleep(0.2)
        yield lab
    finally:
        sshd.send_signal(signal.SIGTERM)
        try:
            sshd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sshd.kill()
        log.close()


def _seed_old_releases(lab: Lab, host: str) -> None:
    """Three older releases (as an earlier deploy would have left) so one real deploy must prune."""
    releases = lab.install_root(host) / "releases"
    for rid in OLD_RELEASES:
        (releases / rid).mkdir(parents=True)
        (releases / rid / "RELEASE").write_text(rid + "\n")
    os.symlink(f"releases/{OLD_RELEASES[-1]}", lab.install_root(host) / "current")


def _new_release(before: list[str], after: list[str]) -> str:
    (new,) = sorted(set(after) - set(before))
    return new


@pytest.fixture(scope="module")
def first(lab: Lab) -> tuple[subprocess.CompletedProcess[str], str]:
    """A first real deploy to pi-a, which has three old releases: wheel built here."""
    _seed_old_releases(lab, "pi-a")
    before = lab.releases("pi-a")
    proc = lab.deploy("deploy", "pi-a")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, _new_release(before, lab.releases("pi-a"))


@pytest.fixture(scope="module")
def wheel(lab: Lab, first) -> Path:
    """The wheel the first deploy built, reused (``--wheel``) so later deploys skip the build."""
    (path,) = (lab.install_root("pi-a") / "releases" / first[1] / "wheels").glob("*.whl")
    return path


@pytest.fixture(scope="module")
def second(lab: Lab, first, wheel: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """A second deploy after the user edited their config."""
    lab.config("pi-a").write_text("# edited by the user\n[camera]\nwidth = 320\n")
    time.sleep(1.1)  # release ids have one-second resolution
    before = lab.releases("pi-a")
    proc = lab.deploy("deploy", "pi-a", "--wheel", str(wheel))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, _new_release(before, lab.releases("pi-a"))


def test_first_deploy_installs_a_complete_release(lab: Lab, first) -> None:
    proc, rid = first
    assert RELEASE_ID_RE.match(rid)
    rel = lab.install_root("pi-a") / "releases" / rid
    # Models: only *.tflite, *.xml, manifest.json from the top of models/.
    assert sorted(p.name for p in (rel / "models").iterdir()) == [
        "emotion.tflite",
        "gender.tflite",
        "haarcascade_frontalface_default.xml",
        "manifest.json",
    ]
    assert (rel / "config.example.toml").read_bytes() == lab.example_config.read_bytes()
    # The venv: built with --system-site-packages, its python runs, the package and the extra pip package are in it.
    assert "include-system-site-packages = true" in (rel / "venv" / "pyvenv.cfg").read_text()
    probe = subprocess.run(
        [
            str(rel / "venv" / "bin" / "python"),
            "-c",
            "import importlib.util as u, importlib.metadata as m, fe_extra_dummy;"
            "print(u.find_spec('edge').origin); print(m.version('pi-face-emotion')); print(fe_extra_dummy.VALUE)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=rel,  # not the repo: `edge` must come from the venv
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    origin, version, value = probe.stdout.split()
    assert origin.startswith(str(rel / "venv")) and origin.endswith("edge/__init__.py")
    assert version and value == "42"


def test_first_deploy_installs_unit_and_config_and_switches(lab: Lab, first) -> None:
    proc, rid = first
    prefix = lab.prefix("pi-a")
    unit = prefix / "etc" / "systemd" / "system" / "face-emotion.service"
    assert unit.read_bytes() == (REPO / "systemd" / "face-emotion.service").read_bytes()
    assert lab.config("pi-a").read_bytes() == lab.example_config.read_bytes()
    assert stat.S_IMODE(lab.config("pi-a").stat().st_mode) == 0o640  # it may hold the MQTT password (was 0644)
    assert lab.current("pi-a") == f"releases/{rid}"
    calls = lab.calls("pi-a")
    assert "sudo -n systemctl daemon-reload" in calls
    assert "sudo -n systemctl enable face-emotion" in calls
    assert calls.count("systemctl restart face-emotion") == 1
    assert not any(c.startswith("apt-get") for c in calls), "all apt packages present: no apt-get"
    assert any(c.startswith("dpkg-query") and c.endswith("python3-picamera2") for c in calls)
    useradd = next(c for c in calls if c.startswith("sudo -n useradd"))
    assert "--system" in useradd and "--shell /usr/sbin/nologin" in useradd and useradd.endswith(" face-emotion")
    assert proc.stdout.strip().splitlines()[-1].split() == ["pi-a", rid, "ok", "config", "installed"]


def test_first_deploy_prunes_to_three_releases(lab: Lab, first) -> None:
    _, rid = first
    assert lab.releases("pi-a") == [*OLD_RELEASES[1:], rid]


def test_second_deploy_keeps_the_users_config(lab: Lab, first, second) -> None:
    proc, rid = second
    assert lab.config("pi-a").read_text().startswith("# edited by the user")
    assert "existing one kept" in proc.stdout
    assert lab.current("pi-a") == f"releases/{rid}"
    assert lab.releases("pi-a") == [OLD_RELEASES[2], first[1], rid]


@pytest.fixture(scope="module")
def failed(lab: Lab, second, wheel: Path) -> subprocess.CompletedProcess[str]:
    """A deploy whose new release never becomes active (the recorder says 'failed' for it)."""
    time.sleep(1.1)
    restarts = lab.calls("pi-a").count("systemctl restart face-emotion")
    proc = lab.deploy(
        "deploy",
        "pi-a",
        "--wheel",
        str(wheel),
        "--fake-answer",
        "newest-release=failed",
        "--fake-answer",
        "journal=edge: camera not found (no /dev/video0)",
    )
    assert lab.calls("pi-a").count("systemctl restart face-emotion") == restarts + 2
    return proc


def test_failed_health_check_rolls_back(lab: Lab, second, failed) -> None:
    _, good = second
    assert failed.returncode == 1
    assert lab.current("pi-a") == f"releases/{good}"
    assert lab.releases("pi-a")[-1] == good, "the broken release is removed"
    assert "edge: camera not found (no /dev/video0)" in failed.stdout, "last journal lines are shown"
    row = failed.stdout.strip().splitlines()[-1]
    assert row.split()[:3] == ["pi-a", good, "failed"] and f"rolled back to {good}" in row


def test_a_service_that_keeps_restarting_fails_the_health_check_and_rolls_back(lab: Lab, second, failed,
                                                                                  wheel: Path) -> None:
    # systemd restarts a crashing service so fast that is-active keeps saying "active": only the
    # main PID changing during the settle time shows the crash loop.
    current, releases = lab.current("pi-a"), lab.releases("pi-a")
    time.sleep(1.1)
    proc = lab.deploy("deploy", "pi-a", "--wheel", str(wheel), "--fake-answer", "restarting=yes")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("pi-a ")]
    assert "restarting (main pid changed)" in row and f"rolled back to {current.split('/')[-1]}" in row, row
    assert lab.current("pi-a") == current and lab.releases("pi-a") == releases


@pytest.fixture(scope="module")
def rolled_back(lab: Lab, first, failed) -> subprocess.CompletedProcess[str]:
    return lab.deploy("rollback", "pi-a")


def test_rollback_command_goes_to_previous_release(lab: Lab, first, rolled_back) -> None:
    assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
    assert lab.current("pi-a") == f"releases/{first[1]}"
    unit = lab.prefix("pi-a") / "etc" / "systemd" / "system" / "face-emotion.service"
    assert unit.is_file()


def test_status_shows_state_release_and_latency_line(lab: Lab, first, rolled_back) -> None:
    proc = lab.deploy("status", "pi-a")
    assert proc.returncode == 0
    assert "[pi-a] active (running)" in proc.stdout
    assert "last latency line: fps 8.0 latency 45 ms" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].split() == ["pi-a", first[1], "ok"]
    down = lab.deploy("status", "pi-a", "--fake-answer", "is-active=failed")
    assert down.returncode == 1 and "service is failed" in down.stdout


def _unchanged(lab: Lab, host: str, proc: subprocess.CompletedProcess[str], current: str, releases: list[str]) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert lab.current(host) == current
    assert lab.releases(host) == releases


def test_pi_without_camera_stack_changes_nothing(lab: Lab, rolled_back, wheel: Path) -> None:
    current, releases = lab.current("pi-a"), lab.releases("pi-a")
    restarts = lab.calls("pi-a").count("systemctl restart face-emotion")
    proc = lab.deploy(
        "deploy",
        "pi-a",
        "--wheel",
        str(wheel),
        "--fake-answer",
        "missing=python3-picamera2 python3-lgpio",
        "--fake-answer",
        "uninstallable=python3-picamera2",
    )
    _unchanged(lab, "pi-a", proc, current, releases)
    assert "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends" in "\n".join(
        lab.calls("pi-a")
    )
    assert lab.calls("pi-a").count("systemctl restart face-emotion") == restarts
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("pi-a ")]
    assert "no camera stack: python3-picamera2 is not installable here" in row


def test_a_pi_with_picamera2_older_than_0_3_20_is_refused_in_preflight(lab: Lab, rolled_back, wheel: Path) -> None:
    current, releases = lab.current("pi-a"), lab.releases("pi-a")
    calls = len(lab.calls("pi-a"))
    proc = lab.deploy("deploy", "pi-a", "--wheel", str(wheel), "--fake-answer", "version=0.3.19-1")
    _unchanged(lab, "pi-a", proc, current, releases)
    assert not any("apt-get" in call for call in lab.calls("pi-a")[calls:])  # stopped before apt
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("pi-a ")]
    assert ("python3-picamera2 0.3.19-1 on the target is older than 0.3.20, which the camera source needs: "
            "sudo apt update && sudo apt install --only-upgrade python3-picamera2") in row


def test_a_release_that_never_sends_ready_is_named_and_rolled_back(lab: Lab, rolled_back, wheel: Path) -> None:
    """A camera that opens but never delivers: the unit stays 'activating' (READY=1 follows the first frame)."""
    current, releases = lab.current("pi-a"), lab.releases("pi-a")
    time.sleep(1.1)
    proc = lab.deploy("deploy", "pi-a", "--wheel", str(wheel), "--fake-answer",
                      "newest-release=activating", "--fake-answer",
                      "status=waiting for the first frame from the opencv source")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("pi-a ")]
    assert re.search(r"service is activating \(no READY=1, i\.e\. no frame processed, within \d+ s; daemon status: "
                     r"waiting for the first frame from the opencv source\) after restart", row), row
    assert f"rolled back to {current.split('/')[-1]}" in row
    assert lab.current("pi-a") == current and lab.releases("pi-a") == releases


def test_the_deploy_and_the_daemon_share_the_picamera2_floor() -> None:
    from deploy.layout import PICAMERA2_MIN
    from edge.inputs.picamera2_version import MIN_PICAMERA2

    assert PICAMERA2_MIN == MIN_PICAMERA2
    assert picamera2_problem("") is None and picamera2_problem("0.3.20-1") is None
    assert picamera2_problem("1:0.3.31-1~bpo12+1") is None
    assert "0.3.12-2 on the target is older than 0.3.20" in (picamera2_problem("0.3.12-2") or "")


def test_broken_config_on_the_pi_changes_nothing(lab: Lab, rolled_back, wheel: Path) -> None:
    current, releases = lab.current("pi-a"), lab.releases("pi-a")
    good = lab.config("pi-a").read_text()
    lab.config("pi-a").write_text("[camera\nwidth = \n")
    try:
        proc = lab.deploy("deploy", "pi-a", "--wheel", str(wheel))
    finally:
        lab.config("pi-a").write_text(good)
    _unchanged(lab, "pi-a", proc, current, releases)
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("pi-a ")]
    assert "is not valid TOML" in row and "nothing was changed" in row


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("pi-dead", "unreachable: connection refused"),
        ("pi-wrongkey", "ssh login refused: key not accepted"),
    ],
)
def test_unreachable_or_refused_host_is_one_clear_line(lab: Lab, wheel: Path, host: str, reason: str) -> None:
    proc = lab.deploy("deploy", host, "--wheel", str(wheel))
    assert proc.returncode == 1
    rows = [line for line in proc.stdout.splitlines() if line.startswith(f"{host} ")]
    assert len(rows) == 1 and reason in rows[0], proc.stdout
    assert not [line for line in proc.stdout.splitlines() if line.startswith(f"[{host}]")], "no half-done steps"
    assert proc.stderr == ""


def test_broken_ssh_config_is_one_clear_line(lab: Lab, tmp_path: Path) -> None:
    bad = tmp_path / "ssh_config"
    bad.write_text("Host pi-a\n  HostNmae 127.0.0.1\n")
    proc = _cli("status", "pi-a", "--ssh-config", str(bad), timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("pi-a ")]
    assert "ssh config error" in row and "line 2: bad configuration option: hostnmae" in row.lower()


def test_parallel_deploy_gives_a_table(lab: Lab, wheel: Path) -> None:
    # As make passes PI="pi-b pi-c": one word per host; an unreachable one does not stop the others.
    proc = lab.deploy("deploy", "pi-b pi-c", "pi-dead", "--wheel", str(wheel))
    assert proc.returncode == 1
    table = proc.stdout[proc.stdout.index("HOST") :].splitlines()
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"pi-b", "pi-c", "pi-dead"}
    for host in ("pi-b", "pi-c"):
        (rid,) = lab.releases(host)
        assert rows[host][1:3] == [rid, "ok"]
        assert lab.current(host) == f"releases/{rid}"
        assert (lab.install_root(host) / "releases" / rid / "venv" / "bin" / "python").exists()
    assert rows["pi-dead"][1:3] == ["-", "failed"]
    assert re.search(r"unreachable: connection refused", " ".join(rows["pi-dead"]))


# --------------------------------------------------------------------------- Pi readiness (issue 14)


@pytest.mark.parametrize(
    "facts, message",
    [
        ({"PY": "3.11.2", "BITS": "32", "MACHINE": "aarch64", "DPKG_ARCH": "armhf"},
         "32-bit userspace on the target (armhf): install 64-bit Raspberry Pi OS (arm64)"),  # 64-bit kernel
        ({"PY": "3.11.2", "BITS": "32", "MACHINE": "armv7l", "DPKG_ARCH": ""},
         "32-bit userspace on the target (armv7l)"),
        ({"PY": "3.9.2", "BITS": "64", "MACHINE": "aarch64", "DPKG_ARCH": "arm64"},
         "python3 on the target is 3.9.2, needs 3.11 or newer"),
        ({"PY": "3.11.2", "BITS": "64", "MACHINE": "aarch64", "DPKG_ARCH": "arm64"}, None),
        ({"PY": "3.13.5", "BITS": "64", "MACHINE": "x86_64", "DPKG_ARCH": "amd64"}, None),
    ],
)
def test_preflight_refuses_32_bit_and_old_python_in_one_line(facts: dict[str, str], message: str | None) -> None:
    problem = platform_problem(facts)
    assert (problem is None) if message is None else (problem.startswith(message) and "\n" not in problem)


def test_next_steps_stop_the_service_before_a_hand_run_with_the_release_python() -> None:
    text = next_steps([HostResult("pi-b", False), HostResult("pi-a", True, "r1")])
    lines = text.splitlines()
    assert lines[0] == "Try it on the Pi (ssh pi-a):"
    stop = next(i for i, line in enumerate(lines) if "sudo systemctl stop face-emotion" in line)
    bench = next(i for i, line in enumerate(lines) if " bench --source camera" in line)
    assert stop < bench and lines[bench].strip().startswith("/opt/face-emotion/current/venv/bin/face-emotion bench")
    assert "sudo systemctl start face-emotion" in lines[-1]
    assert next_steps([HostResult("pi-b", False)]) == ""


def _wheel(dest: Path, name: str, version: str, requires: tuple[str, ...] = (), module: bytes = b"") -> Path:
    """A minimal pure-Python wheel ``name==version`` with ``Requires-Dist`` lines."""
    dist = name.replace("-", "_")
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {f"{dist}/__init__.py": module or f"__version__ = {version!r}\n".encode(),
             f"{dist}-{version}.dist-info/METADATA": meta.encode(),
             f"{dist}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
             b"Tag: py3-none-any\n"}
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for n, d in files.items()] + [f"{dist}-{version}.dist-info/RECORD,,"]
    files[f"{dist}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return path


def test_the_release_venv_keeps_the_systems_numpy(lab: Lab, wheel: Path, tmp_path: Path) -> None:
    """As on Bookworm: a pip package whose newest version needs a newer numpy (ml_dtypes 0.6 -> numpy 2).

    Without the pin pip installs that numpy into the venv over apt's, and apt's OpenCV and picamera2
    fail to import; with it pip picks the older version that works with the system's numpy.
    """
    system_numpy = subprocess.run(["python3", "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                                  text=True, check=False).stdout.strip()
    if not system_numpy:
        pytest.skip("the system python3 has no numpy (apt-get install python3-numpy)")
    wheels = tmp_path / "wheels"
    _wheel(wheels, "numpy", "99.0")
    _wheel(wheels, "fe-numpy-hungry", "1.0", ("numpy>=99",))
    _wheel(wheels, "fe-numpy-hungry", "0.9")
    time.sleep(1.1)
    before = lab.releases("pi-b")
    proc = _cli("deploy", "pi-b", "--wheel", str(wheel), "--ssh-config", str(lab.ssh_config),
                "--prefix", str(lab.root / "targets" / "{host}"), "--fake-system", "--timeout", "20", "--settle", "1",
                "--models", str(lab.models), "--example-config", str(lab.example_config),
                "--pip-packages", "fe-numpy-hungry", "--pip-arg=--no-index", f"--pip-arg=--find-links={wheels}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    venv = lab.install_root("pi-b") / "releases" / _new_release(before, lab.releases("pi-b")) / "venv" / "bin"
    out = subprocess.run([str(venv / "python"), "-c", "import numpy, fe_numpy_hungry; "
                          "print(numpy.__version__, fe_numpy_hungry.__version__)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [system_numpy, "0.9"]


@pytest.mark.skipif(shutil.which("python3") is None, reason="no python3 on PATH")
def test_the_wheel_builds_with_the_python3_that_make_deploy_uses(tmp_path: Path) -> None:
    """`make deploy` runs python3 from PATH: with setuptools < 70.1 and no `wheel` package (this machine's
    python3) --no-build-isolation failed with "invalid command 'bdist_wheel'"."""
    code = ("import sys; from pathlib import Path; from deploy.bundle import build_wheel; "
            "print(build_wheel(Path(sys.argv[1]), Path(sys.argv[2])).name)")
    proc = subprocess.run(["python3", "-c", code, str(REPO), str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=600, check=False)
    if "has no pip" in proc.stderr:
        pytest.skip("python3 on PATH has no pip")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(".whl")
