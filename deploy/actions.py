"""What ``deploy``, ``rollback`` and ``status`` do on one host, built from remote steps.

Each returns a :class:`HostResult` instead of raising, so one bad host never
stops the others, and every failure keeps (or restores) the release that was
running before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deploy.bundle import Bundle
from deploy.errors import DeployError
from deploy.remote import Remote, previous_release, releases_to_prune

Log = Callable[[str], None]


@dataclass(frozen=True)
class HostResult:
    """One row of the final table."""

    host: str
    ok: bool
    release: str = "-"
    reason: str = ""


@dataclass(frozen=True)
class Health:
    """How long to wait for READY=1 (is-active == active) and how long it must then hold."""

    timeout: int = 90
    settle: int = 5


@dataclass(frozen=True)
class DeploySettings:
    apt_packages: tuple[str, ...]
    pip_packages: tuple[str, ...]
    pip_args: tuple[str, ...]
    keep: int
    min_free_mb: int
    health: Health


def _log_journal(remote: Remote, since: str, log: Log) -> None:
    lines = remote.journal_tail(since)
    if lines:
        log("last journal lines:")
    for line in lines:
        log(f"  | {line}")


def activate(remote: Remote, release: str, fallback: str | None, health: Health, log: Log) -> tuple[bool, str]:
    """Make ``release`` the running one; if it does not come up, go back to ``fallback``.

    Returns (ok, reason). The unit file travels with each release, so going back
    also restores the unit that release was deployed with.
    """
    switched = False
    try:
        remote.install_unit(release)
        remote.switch(release)
        switched = True
        log(f"current -> {release}; restarting, waiting up to {health.timeout} s for active")
        state, since = remote.restart_and_check(health.timeout, health.settle)
    except DeployError as exc:
        if not switched or fallback is None:
            raise
        state, since = f"not checked ({exc})", ""
    if state == "active":
        log(f"{release} is active")
        return True, ""
    log(f"{release} did not come up: {state}")
    if since:
        _log_journal(remote, since, log)
    if fallback is None:
        return False, f"service is {state} after restart (no previous release to go back to)"
    log(f"rolling back to {fallback}")
    remote.install_unit(fallback)
    remote.switch(fallback)
    back_state, _ = remote.restart_and_check(health.timeout, health.settle)
    log(f"{fallback} is {back_state}")
    return False, f"service is {state} after restart; rolled back to {fallback} ({back_state})"


def deploy_host(remote: Remote, bundle: Bundle, settings: DeploySettings, log: Log) -> HostResult:
    """Preflight, apt, user, new release, activate (health-checked), prune."""
    host = remote.target.host
    running = "-"
    try:
        pre = remote.preflight(settings.min_free_mb)
        log(f"preflight ok: {pre.get('PYTHON', 'python3')}, {pre.get('FREE_MB', '?')} MB free")
        current, releases = remote.releases()
        running = current or "-"
        missing = remote.ensure_apt(settings.apt_packages, settings.min_free_mb)
        log(f"apt: installed {' '.join(missing)}" if missing else "apt: all packages present")
        if remote.ensure_user():
            log("created system user face-emotion")
        log(f"creating release {bundle.release_id} (venv, wheel, {len(bundle.model_files)} model files)")
        config = remote.create_release(
            bundle.release_id, bundle.data, bundle.wheel_name, settings.pip_packages, settings.pip_args
        )
        log("config: example installed" if config == "installed" else "config: existing one kept")
        fallback = current if current in releases else None
        ok, reason = activate(remote, bundle.release_id, fallback, settings.health, log)
        if not ok:
            if fallback is not None:
                remote.remove_releases([bundle.release_id])
            return HostResult(host, False, fallback or bundle.release_id, reason)
        current, releases = remote.releases()
        pruned = releases_to_prune(releases, current, settings.keep)
        remote.remove_releases(pruned)
        if pruned:
            log(f"pruned {' '.join(pruned)}")
        return HostResult(host, True, bundle.release_id, f"config {config}" if config else "")
    except DeployError as exc:
        return HostResult(host, False, running, str(exc))


def rollback_host(remote: Remote, health: Health, log: Log) -> HostResult:
    """Switch to the release before the current one; back to the current one if it fails."""
    host = remote.target.host
    current = "-"
    try:
        current, releases = remote.releases()
        if current not in releases:
            raise DeployError("no current release on this host: deploy first")
        target = previous_release(releases, current)
        if target is None:
            raise DeployError(f"no release older than {current} to roll back to")
        ok, reason = activate(remote, target, current, health, log)
        return HostResult(host, ok, target if ok else current, reason)
    except DeployError as exc:
        return HostResult(host, False, current or "-", str(exc))


def status_host(remote: Remote, log: Log) -> HostResult:
    """Service state, current release and the last journal line with ``latency``."""
    host = remote.target.host
    try:
        values = remote.status()
    except DeployError as exc:
        return HostResult(host, False, "-", str(exc))
    active = values.get("ACTIVE", "") or "unknown"
    sub = values.get("SHOW_SubState", "")
    log(
        f"{active} ({sub or '?'}), main pid {values.get('SHOW_MainPID', '?')}, "
        f"restarts {values.get('SHOW_NRestarts', '?')}"
    )
    if values.get("SHOW_StatusText"):
        log(f"status: {values['SHOW_StatusText']}")
    log(f"last latency line: {values.get('LATENCY') or '(none in the journal)'}")
    reason = "" if active == "active" else f"service is {active}"
    return HostResult(host, active == "active", values.get("CURRENT") or "-", reason)
