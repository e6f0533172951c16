"""Command line: ``python -m deploy {deploy,rollback,status} HOST... [options]``.

Checks every option up front and turns bad input into one ``deploy: error:``
line with exit status 2; host failures become rows of the result table and
exit status 1. Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from deploy import actions, bundle, fake_system
from deploy.errors import DeployError
from deploy.layout import APT_PACKAGES, KEEP_RELEASES, MIN_FREE_MB, PIP_PACKAGES, Layout
from deploy.remote import Remote
from deploy.report import format_table, next_steps
from deploy.runner import run_hosts
from deploy.ssh import SshOptions, Target, check_host

REPO = Path(__file__).resolve().parent.parent
_SUDO_RE = re.compile(r"^[A-Za-z0-9_./ -]*$")
_PREFIX_RE = re.compile(r"^/[A-Za-z0-9_./{}-]*$")
# The ssh -o options a deploy may need, and only those: a deny-list of options that run a local command missed
# the ones that load code (PKCS11Provider, SecurityKeyProvider), and options may come from a script or fleet
# list rather than the user's fingers. Anything else belongs in an ssh config file, passed with -F.
SSH_OPTIONS_ALLOWED = frozenset(name.lower() for name in (
    "User", "Port", "IdentityFile", "IdentitiesOnly", "CertificateFile", "PubkeyAuthentication",
    "PreferredAuthentications", "StrictHostKeyChecking", "UserKnownHostsFile", "GlobalKnownHostsFile",
    "HostKeyAlias", "HostKeyAlgorithms", "CheckHostIP", "UpdateHostKeys", "HashKnownHosts", "VerifyHostKeyDNS",
    "ConnectTimeout", "ConnectionAttempts", "ServerAliveInterval", "ServerAliveCountMax", "TCPKeepAlive",
    "Compression", "AddressFamily", "LogLevel", "Ciphers", "MACs", "KexAlgorithms", "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes", "ProxyJump",
))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"deploy: error: {message} (see python -m deploy --help)\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="[user@]host or ssh-config alias; several allowed")
    ssh = parser.add_argument_group("ssh")
    ssh.add_argument("-F", "--ssh-config", help="ssh config file (default: your ~/.ssh/config)")
    ssh.add_argument("-i", "--identity", help="private key file (default: from your ssh config/agent)")
    ssh.add_argument("-p", "--port", type=int, help="ssh port (default: from your ssh config, else 22)")
    ssh.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option")
    ssh.add_argument("--connect-timeout", type=int, default=10, metavar="S", help="ssh ConnectTimeout (default 10)")
    target = parser.add_argument_group("target")
    target.add_argument(
        "--sudo",
        default="sudo -n",
        help="prefix for privileged commands (default 'sudo -n'; '' when logging in as root)",
    )
    target.add_argument(
        "--prefix",
        default="",
        help="sandbox: put /opt and /etc paths under this directory on the target; {host} is replaced by the host",
    )
    target.add_argument(
        "--fake-system",
        action="store_true",
        help="tests: replace sudo, apt-get, dpkg-query, useradd, systemctl, journalctl by a recorder (needs --prefix)",
    )
    target.add_argument(
        "--fake-answer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recorder answer; keys: " + "; ".join(f"{k}: {v}" for k, v in fake_system.ANSWER_KEYS.items()),
    )
    target.add_argument("--timeout", type=int, default=90, metavar="S", help="health check: wait for active (90)")
    target.add_argument("--settle", type=int, default=5, metavar="S", help="health check: must stay active (5)")
    parser.add_argument("-j", "--jobs", type=int, default=8, help="hosts handled at once (default 8)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m deploy", description="Deploy the face-emotion service to Raspberry Pis over ssh.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    dep = sub.add_parser("deploy", help="build, install a new release, switch, restart, health-check")
    _common(dep)
    dep.add_argument("--repo", type=Path, default=REPO, help="repository to build (default: this one)")
    dep.add_argument("--wheel", type=Path, help="use this wheel instead of building one")
    dep.add_argument("--models", type=Path, help="models directory (default: REPO/models)")
    dep.add_argument("--example-config", type=Path, help="example config (default: REPO/edge/config.example.toml)")
    dep.add_argument("--unit", type=Path, help="systemd unit (default: REPO/systemd/face-emotion.service)")
    dep.add_argument(
        "--apt-packages",
        default=" ".join(APT_PACKAGES),
        help="space-separated apt packages the target needs (default: the Pi's camera stack and the rest, "
             f"'{' '.join(APT_PACKAGES)}'); e.g. without python3-picamera2 python3-lgpio for a Debian box with a "
             "USB camera",
    )
    dep.add_argument(
        "--pip-packages",
        default=" ".join(PIP_PACKAGES),
        help=f"space-separated pip packages for the release venv (default '{' '.join(PIP_PACKAGES)}'; '' for none)",
    )
    dep.add_argument(
        "--pip-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for that pip install, e.g. --pip-arg=--no-index --pip-arg=--find-links=/srv/wheels",
    )
    dep.add_argument("--keep", type=int, default=KEEP_RELEASES, help=f"releases kept (default {KEEP_RELEASES})")
    dep.add_argument("--min-free-mb", type=int, default=MIN_FREE_MB,
                     help=f"free disk for the release, apt's packages aside (default {MIN_FREE_MB})")
    _common(sub.add_parser("rollback", help="switch to the previous release, restart, health-check"))
    _common(sub.add_parser("status", help="service state, current release, last latency log line"))
    return parser


def _split_hosts(raw: list[str]) -> list[str]:
    hosts: list[str] = []
    for item in raw:
        for host in re.split(r"[\s,]+", item.strip()):
            if host and host not in hosts:
                hosts.append(check_host(host))
    if not hosts:
        raise DeployError("no host given: e.g. make deploy PI=raspberrypi.local")
    return hosts


def _check_options(args: argparse.Namespace) -> None:
    if not _SUDO_RE.match(args.sudo):
        raise DeployError(f"--sudo must be plain words, got {args.sudo!r}")
    if args.prefix and (not _PREFIX_RE.match(args.prefix) or ".." in args.prefix.split("/")):
        raise DeployError(f"--prefix must be an absolute path of plain characters, got {args.prefix!r}")
    for option in args.ssh_option:
        _check_ssh_option(option)
    if args.fake_system and not args.prefix:
        raise DeployError("--fake-system needs --prefix (it must never touch a real system)")
    if args.fake_answer and not args.fake_system:
        raise DeployError("--fake-answer only makes sense with --fake-system")
    for name in ("timeout", "connect_timeout", "jobs"):
        if getattr(args, name) < 1:
            raise DeployError(f"--{name.replace('_', '-')} must be at least 1")
    if args.settle < 0:
        raise DeployError("--settle must not be negative")
    if args.port is not None and not 0 < args.port < 65536:
        raise DeployError(f"--port out of range: {args.port}")
    for flag, path in (("--ssh-config", args.ssh_config), ("--identity", args.identity)):
        if path and not Path(path).is_file():
            raise DeployError(f"{flag} file not found: {path}")
    if args.command == "deploy" and args.keep < 1:
        raise DeployError("--keep must be at least 1")


def _check_ssh_option(option: str) -> None:
    """An allowed ``Key=value`` (or ``Key value``) for ``ssh -o``; ProxyJump's hops must be host names."""
    if not option.isprintable():  # a newline would start another config line inside ssh
        raise DeployError(f"--ssh-option {option!r} has control characters")
    found = re.match(r"\s*([A-Za-z0-9]*)\s*(?:=|\s)\s*(.*)$", option, re.DOTALL)
    key, value = (found.group(1), found.group(2).strip()) if found else (option.strip(), "")
    if key.lower() not in SSH_OPTIONS_ALLOWED:
        raise DeployError(f"--ssh-option {key or option!r} is not one the deploy allows (it takes "
                          "User, Port, IdentityFile, host-key and timeout options, ProxyJump...); put it in an "
                          "ssh config file (-F) if you mean it")
    if key.lower() == "proxyjump" and value.lower() != "none":
        for hop in value.split(","):
            check_host(re.sub(r":\d+$", "", hop.strip()))


def _remote_for(host: str, args: argparse.Namespace) -> Remote:
    ssh = SshOptions(args.ssh_config, args.identity, args.port, args.connect_timeout, tuple(args.ssh_option))
    prefix = args.prefix.replace("{host}", re.sub(r"[^A-Za-z0-9_.-]", "_", host)) if args.prefix else ""
    return Remote(Target(host, ssh), Layout(prefix.rstrip("/")), args.sudo, args.fake_system)


def _make_bundle(args: argparse.Namespace, workdir: Path) -> bundle.Bundle:
    repo = args.repo.resolve()
    release_id = bundle.make_release_id(bundle.git_short_sha(repo))
    if args.wheel:
        wheel = args.wheel
    else:
        print(f"building wheel from {repo} ...", flush=True)
        wheel = bundle.build_wheel(repo, workdir)
    return bundle.make_bundle(
        release_id=release_id,
        wheel=wheel,
        models_dir=args.models or repo / "models",
        example_config=args.example_config or repo / "edge" / "config.example.toml",
        unit_file=args.unit or repo / "systemd" / "face-emotion.service",
    )


def _run(args: argparse.Namespace) -> int:
    hosts = _split_hosts(args.hosts)
    _check_options(args)
    answers = fake_system.parse_answers(args.fake_answer)
    health = actions.Health(args.timeout, args.settle)

    def prepare(host: str) -> Remote:
        remote = _remote_for(host, args)
        if args.fake_system:
            remote.install_fake_system(answers)
        return remote

    with tempfile.TemporaryDirectory(prefix="face-emotion-deploy-") as tmp:
        if args.command == "deploy":
            the_bundle = _make_bundle(args, Path(tmp))
            settings = actions.DeploySettings(
                apt_packages=tuple(args.apt_packages.split()),
                pip_packages=tuple(args.pip_packages.split()),
                pip_args=tuple(args.pip_arg),
                keep=args.keep,
                min_free_mb=args.min_free_mb,
                health=health,
            )
            print(f"release {the_bundle.release_id} -> {', '.join(hosts)}", flush=True)

            def action(host: str, log: actions.Log) -> actions.HostResult:
                try:
                    remote = prepare(host)
                except DeployError as exc:
                    return actions.HostResult(host, False, "-", str(exc))
                return actions.deploy_host(remote, the_bundle, settings, log)

        elif args.command == "rollback":

            def action(host: str, log: actions.Log) -> actions.HostResult:
                try:
                    remote = prepare(host)
                except DeployError as exc:
                    return actions.HostResult(host, False, "-", str(exc))
                return actions.rollback_host(remote, health, log)

        else:

            def action(host: str, log: actions.Log) -> actions.HostResult:
                try:
                    remote = prepare(host)
                except DeployError as exc:
                    return actions.HostResult(host, False, "-", str(exc))
                return actions.status_host(remote, log)

        results = run_hosts(hosts, action, jobs=args.jobs, debug=args.debug)
    print()
    print(format_table(results), flush=True)
    if args.command == "deploy" and not args.fake_system and any(r.ok for r in results):
        print("\n" + next_steps(results), flush=True)
    return 0 if all(r.ok for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except DeployError as exc:
        print(f"deploy: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deploy: interrupted", file=sys.stderr)
        return 130
