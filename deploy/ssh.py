"""Run shell scripts on a target with the system's OpenSSH client.

Uses the user's own ssh config and keys; nothing is stored. ``BatchMode=yes``
makes a wrong key fail at once instead of prompting for a password, and ssh's
own failures (exit status 255) are turned into one line that says what to fix.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field

from deploy.errors import DeployError

# A host as ssh takes it: [user@]name, an ssh-config alias or an IPv6 literal.
# No leading '-', so a host can never be read by ssh as an option.
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9_\[][A-Za-z0-9._:%\[\]-]*$")

# (pattern in ssh's stderr, message); first match wins.
_SSH_FAILURES = (
    ("Could not resolve hostname", "unreachable: cannot resolve the host name"),
    ("Connection refused", "unreachable: connection refused (is sshd running, right port?)"),
    ("timed out", "unreachable: connection timed out"),
    ("No route to host", "unreachable: no route to host"),
    ("Network is unreachable", "unreachable: network is unreachable"),
    ("Permission denied", "ssh login refused: key not accepted (wrong key or user? no password prompts are used)"),
    ("Too many authentication failures", "ssh login refused: too many keys offered (set IdentitiesOnly/IdentityFile)"),
    ("Host key verification failed", "ssh host key verification failed: unknown or changed host key (see known_hosts)"),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "ssh host key changed: check ~/.ssh/known_hosts"),
    ("Bad configuration option", "ssh config error"),
    ("bad configuration option", "ssh config error"),
    ("Can't open user config file", "ssh config error"),
    ("Connection closed", "unreachable: connection closed by the host"),
    ("Connection reset", "unreachable: connection reset by the host"),
)


def check_host(host: str) -> str:
    """Return ``host`` if ssh can take it as a destination, else raise DeployError."""
    if not _HOST_RE.match(host):
        raise DeployError(f"not a valid host name: {host!r}")
    return host


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def explain_ssh_failure(stderr: str) -> str:
    """One line that says why ssh itself (not the remote command) failed."""
    for needle, message in _SSH_FAILURES:
        if needle in stderr:
            if message == "ssh config error":  # name the offending line, not ssh's "terminating" summary
                line = next(line for line in stderr.splitlines() if needle in line)
                return f"ssh config error: {line.strip()}"
            return message
    return f"ssh failed: {_last_line(stderr) or 'no message (exit status 255)'}"


def explain_script_failure(stderr: str, returncode: int) -> str:
    """The remote script's own ``ERROR:`` line, or its last stderr line."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("ERROR: "):
            return line[len("ERROR: ") :].strip()
    return _last_line(stderr) or f"remote command failed with exit status {returncode}"


@dataclass(frozen=True)
class SshOptions:
    """How to reach targets: passed to every ssh call unchanged."""

    config_file: str | None = None
    identity: str | None = None
    port: int | None = None
    connect_timeout: int = 10
    extra: tuple[str, ...] = field(default_factory=tuple)

    def argv(self) -> list[str]:
        args = [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
        ]  # fmt: skip
        if self.config_file:
            args += ["-F", self.config_file]
        if self.identity:
            args += ["-i", self.identity]
        if self.port:
            args += ["-p", str(self.port)]
        for option in self.extra:
            args += ["-o", option]
        return args


@dataclass(frozen=True)
class Target:
    """One host and the way to reach it."""

    host: str
    ssh: SshOptions

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float | None = None) -> str:
        """Run ``script`` with ``sh -c`` on the host; return its stdout.

        The script travels as an argument, never on stdin, so that commands in
        it which read stdin cannot swallow it; stdin is free for data (a tar).
        Raises DeployError with one line on any failure.
        """
        argv = [*self.ssh.argv(), "--", self.host, "sh -c " + shlex.quote(script)]
        try:
            proc = subprocess.run(
                argv,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise DeployError("ssh not found: install the OpenSSH client") from exc
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"remote step timed out after {timeout:.0f} s") from exc
        stdout = proc.stdout.decode("utf-8", "replace")
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 255:
            raise DeployError(explain_ssh_failure(stderr))
        if proc.returncode != 0:
            raise DeployError(explain_script_failure(stderr, proc.returncode))
        return stdout


def parse_keys(stdout: str) -> dict[str, str]:
    """``KEY=value`` lines printed by a remote script, as a dict (last one wins)."""
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            values[key] = value
    return values
