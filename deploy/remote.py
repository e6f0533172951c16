"""The steps run on a target, each one shell script over one ssh call.

Scripts are POSIX sh (the Pi's /bin/sh is dash), print ``KEY=value`` lines for
results and ``ERROR: ...`` for the one line the user sees when a step fails.
Privileged commands go through the configurable sudo prefix (``sudo -n`` by
default, so a sudo that wants a password fails fast instead of hanging).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from deploy.errors import DeployError
from deploy.fake_system import RECORDER, install_script
from deploy.layout import CAMERA_PACKAGE, PICAMERA2_MIN, RELEASE_ID_RE, SERVICE, SERVICE_GROUPS, SERVICE_USER, Layout
from deploy.ssh import Target, parse_keys

q = shlex.quote


def _check_release_id(release_id: str) -> str:
    # Release ids end up in `rm -rf` and symlink targets: never pass anything else.
    if not RELEASE_ID_RE.match(release_id):
        raise DeployError(f"not a release id: {release_id!r}")
    return release_id


@dataclass(frozen=True)
class Remote:
    """One target with its layout: the building blocks of deploy, rollback and status."""

    target: Target
    layout: Layout
    sudo: str = "sudo -n"
    fake: bool = False

    # -- plumbing -----------------------------------------------------------------

    def _prelude(self) -> str:
        lay = self.layout
        lines = [
            "set -eu",
            "umask 022",
            f"SUDO={q(self.sudo)}",
            f"SERVICE={q(SERVICE)}",
            f"ROOT={q(lay.root)}",
            f"RELEASES={q(lay.releases)}",
            f"CURRENT={q(lay.current)}",
            f"CONFIG={q(lay.config)}",
            f"CONFIG_DIR={q(lay.config_dir)}",
            f"UNIT={q(lay.unit)}",
            'die() { echo "ERROR: $*" >&2; exit 1; }',
            "last() { printf '%s\\n' \"$1\" | sed '/^[[:space:]]*$/d' | tail -n 1; }",
        ]
        if self.fake:
            lines.append(f'PATH={q(lay.fake_dir + "/bin")}:"$PATH"; export PATH')
        return "\n".join(lines) + "\n"

    def run(self, body: str, *, stdin: bytes | None = None, timeout: float | None = None) -> dict[str, str]:
        return parse_keys(self.target.run(self._prelude() + body, stdin=stdin, timeout=timeout))

    # -- steps --------------------------------------------------------------------

    def install_fake_system(self, answers: dict[str, str]) -> None:
        """Put the recorder in place of sudo/apt/systemd tools (tests without a Pi)."""
        self.target.run(install_script(self.layout, answers), stdin=RECORDER.encode())

    def preflight(self, min_free_mb: int) -> dict[str, str]:
        """ssh works, a 64-bit userspace with python3 >= 3.11, sudo without password, enough disk, config parses."""
        values = self.run(
            f"""
command -v python3 >/dev/null 2>&1 || die "python3 not found on the target"
facts=$(python3 -c '{_FACTS}' 2>&1) || die "python3 does not run on the target: $(last "$facts")"
printf '%s\\n' "$facts"
echo "DPKG_ARCH=$(dpkg --print-architecture 2>/dev/null || true)"
command -v systemctl >/dev/null 2>&1 || die "systemctl not found: the target does not run systemd"
$SUDO true </dev/null >/dev/null 2>&1 \\
    || die "sudo needs a password for $(id -un): allow passwordless sudo or pass --sudo ''"
d=$ROOT
while [ ! -d "$d" ]; do d=$(dirname "$d"); done
free_kb=$(df -Pk "$d" | awk 'NR == 2 {{ print $4 }}')
[ "$free_kb" -ge {min_free_mb * 1024} ] || die "only $((free_kb / 1024)) MB free on $d, need {min_free_mb} MB"
if $SUDO test -e "$CONFIG" </dev/null; then
    $SUDO cat "$CONFIG" </dev/null | python3 -c '
import sys
try:
    import tomllib
except ImportError:
    sys.exit(0)
try:
    tomllib.loads(sys.stdin.read())
except tomllib.TOMLDecodeError as exc:
    print(f"ERROR: {{sys.argv[1]}} is not valid TOML ({{exc}}): fix it first, nothing was changed", file=sys.stderr)
    sys.exit(1)
' "$CONFIG"
fi
echo "PYTHON=$(python3 -V 2>&1)"
echo "FREE_MB=$((free_kb / 1024))"
pc=$(dpkg-query -W --showformat='${{db:Status-Status}} ${{Version}}' {q(CAMERA_PACKAGE)} </dev/null 2>/dev/null) \
    || pc=""
case $pc in "installed "*) echo "PICAMERA2=${{pc#installed }}" ;; esac
"""
        )
        problem = platform_problem(values) or picamera2_problem(values.get("PICAMERA2", ""))
        if problem:
            raise DeployError(problem)
        return values

    def ensure_apt(self, packages: tuple[str, ...], release_mb: int = 0) -> list[str]:
        """Install the missing apt packages; return those that were missing.

        Refuses (one line, nothing installed) when the packages apt would add,
        with their dependencies, do not fit next to ``release_mb`` on /:
        measured from apt's own Installed-Size and Size fields.
        """
        if not packages:
            return []
        values = self.run(
            f"""
missing=""
for p in {" ".join(q(p) for p in packages)}; do
    st=$(dpkg-query -W --showformat='${{db:Status-Status}}' "$p" </dev/null 2>/dev/null) || st=""
    [ "$st" = installed ] || missing="$missing $p"
done
echo "MISSING=$missing"
[ -n "$missing" ] || exit 0
APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"
$APT update -q </dev/null >/dev/null 2>&1 || true
# What apt would install (the missing packages and their dependencies): unpacked size plus the downloaded
# .debs it keeps in /var/cache/apt/archives, against the free space on / (a full disk mid-install breaks dpkg).
new=$(apt-get install -s -q --no-install-recommends $missing </dev/null 2>/dev/null \\
    | awk '/^Inst /{{print $2}}') || true
if [ -n "$new" ]; then
    need_kb=$(apt-cache show --no-all-versions $new </dev/null 2>/dev/null \\
        | awk '/^Installed-Size:/{{i += $2}} /^Size:/{{s += $2}} END {{printf "%d", i + s / 1024}}')
    free_kb=$(df -Pk / | awk 'NR == 2 {{ print $4 }}')
    echo "APT_NEED_MB=$((need_kb / 1024))"
    echo "APT_PACKAGE_COUNT=$(printf '%s\\n' $new | wc -l)"
    [ "$free_kb" -ge $((need_kb + {release_mb * 1024})) ] || die "not enough disk for apt:" \\
        "$(printf '%s\\n' $new | wc -l) packages need $((need_kb / 1024)) MB plus {release_mb} MB for the release," \\
        "only $((free_kb / 1024)) MB free on /; nothing was installed"
fi
if ! out=$($APT install -y -q --no-install-recommends $missing </dev/null 2>&1); then
    cam={q(CAMERA_PACKAGE)}
    case "$missing " in
        *" $cam "*)
            if printf '%s\\n' "$out" | grep -Eq "Unable to locate package $cam|'?$cam'? has no installation candidate"
            then
                die "no camera stack: $cam is not installable here" \\
                    "(needs Raspberry Pi OS Bookworm or newer); nothing changed"
            fi ;;
    esac
    err=$(printf '%s\\n' "$out" | grep '^E:' | tail -n 1) || true
    die "apt-get install failed: ${{err:-$(last "$out")}}"
fi
"""
        )
        return values.get("MISSING", "").split()

    def ensure_user(self) -> bool:
        """Create the service's system user when missing; True if it was created."""
        values = self.run(
            f"""
USER_NAME={q(SERVICE_USER)}
groups=""
for g in {" ".join(q(g) for g in SERVICE_GROUPS)}; do
    if getent group "$g" >/dev/null 2>&1; then groups="${{groups:+$groups,}}$g"; fi
done
if id -u "$USER_NAME" >/dev/null 2>&1; then
    # A group that appeared since (gpio after raspberrypi-sys-mods): the unit relies on membership, not on
    # SupplementaryGroups=, which fails the start where a named group does not exist.
    for g in $(printf '%s' "$groups" | tr ',' ' '); do
        id -nG "$USER_NAME" | tr ' ' '\\n' | grep -qx "$g" && continue
        out=$($SUDO usermod -a -G "$g" "$USER_NAME" </dev/null 2>&1) || die "usermod -a -G $g failed: $(last "$out")"
    done
    echo USER=present
    exit 0
fi
set -- --system --no-create-home --shell /usr/sbin/nologin
if getent group "$USER_NAME" >/dev/null 2>&1; then set -- "$@" --gid "$USER_NAME"; else set -- "$@" --user-group; fi
if [ -n "$groups" ]; then set -- "$@" --groups "$groups"; fi
out=$($SUDO useradd "$@" "$USER_NAME" </dev/null 2>&1) || die "useradd $USER_NAME failed: $(last "$out")"
echo USER=created
"""
        )
        return values.get("USER") == "created"

    def create_release(
        self, release_id: str, bundle: bytes, wheel_name: str, pip_packages: tuple[str, ...], pip_args: tuple[str, ...]
    ) -> str:
        """Unpack the bundle into a new release dir, build its venv, install the example config.

        Returns ``installed`` when the example became /etc/.../config.toml, ``kept``
        when a config was already there (it is never overwritten). A failure
        removes the half-made release dir.
        """
        _check_release_id(release_id)
        extra = ""
        if pip_packages:
            cmd = shlex.join(["install", "-q", *pip_args, *pip_packages])
            what = " ".join(pip_packages)
            # apt's numpy must stay: without the pin pip may pull numpy 2 for a dependency (ai-edge-litert ->
            # ml_dtypes >= 0.6 on Bookworm), and apt's OpenCV and picamera2, built for numpy 1, then fail to import.
            extra = (
                'pin=$("$REL/venv/bin/python" -c "import numpy; print(\'numpy==\' + numpy.__version__)" 2>/dev/null)'
                ' || pin=""\n'
                'echo "NUMPY_PIN=$pin"\n'
                f'out=$(vpip {cmd} $pin 2>&1) || die "pip install {what} failed: $(last "$out")"\n'
            )
        values = self.run(
            f"""
REL="$RELEASES/"{q(release_id)}
[ ! -e "$REL" ] || die "release {release_id} already exists on the target"
$SUDO mkdir -p "$RELEASES" </dev/null
$SUDO mkdir "$REL" </dev/null
finished=0
trap '[ "$finished" = 1 ] || $SUDO rm -rf "$REL" </dev/null' EXIT
$SUDO tar -xf - --no-same-owner -C "$REL" || die "could not unpack the release into $REL"
vpip() {{
    $SUDO env PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \\
        "$REL/venv/bin/pip" "$@" </dev/null
}}
out=$($SUDO python3 -m venv --system-site-packages "$REL/venv" </dev/null 2>&1) \\
    || die "python3 -m venv failed (python3-venv missing?): $(last "$out")"
out=$(vpip install -q --no-deps "$REL/wheels/"{q(wheel_name)} 2>&1) \\
    || die "pip install of the wheel failed: $(last "$out")"
{extra}$SUDO mkdir -p "$CONFIG_DIR" </dev/null
if $SUDO test -e "$CONFIG" </dev/null; then
    echo CONFIG=kept
else
    # 0640 root:<service group>: the README puts the MQTT password and the live view's token in there
    $SUDO install -m 0640 "$REL/config.example.toml" "$CONFIG" </dev/null
    if getent group {q(SERVICE_USER)} >/dev/null 2>&1; then
        $SUDO chgrp {q(SERVICE_USER)} "$CONFIG" </dev/null || die "chgrp {SERVICE_USER} $CONFIG failed"
    fi
    echo CONFIG=installed
fi
finished=1
""",
            stdin=bundle,
        )
        return values.get("CONFIG", "")

    def install_unit(self, release_id: str) -> bool:
        """Install the release's unit file, daemon-reload, enable; False if the release has none."""
        values = self.run(
            f"""
SRC="$RELEASES/"{q(_check_release_id(release_id))}"/$SERVICE.service"
if [ ! -f "$SRC" ]; then echo UNIT=none; exit 0; fi
$SUDO mkdir -p "$(dirname "$UNIT")" </dev/null
$SUDO install -m 0644 "$SRC" "$UNIT" </dev/null
out=$($SUDO systemctl daemon-reload </dev/null 2>&1) || die "systemctl daemon-reload failed: $(last "$out")"
out=$($SUDO systemctl enable "$SERVICE" </dev/null 2>&1) || die "systemctl enable $SERVICE failed: $(last "$out")"
echo UNIT=installed
"""
        )
        return values.get("UNIT") == "installed"

    def switch(self, release_id: str) -> None:
        """Point ``current`` at the release: a temp symlink renamed over it (atomic)."""
        rid = q(_check_release_id(release_id))
        self.run(
            f"""
[ -d "$RELEASES/"{rid} ] || die "release {release_id} not found on the target"
tmp="$ROOT/.current.$$"
$SUDO ln -sfn "releases/"{rid} "$tmp" </dev/null
$SUDO mv -Tf "$tmp" "$CURRENT" </dev/null || {{ $SUDO rm -f "$tmp" </dev/null; die "could not switch current"; }}
"""
        )

    def restart_and_check(self, timeout: int, settle: int) -> tuple[str, str]:
        """Restart and wait until ``is-active`` says active and stays so for ``settle`` s.

        With Type=notify, ``active`` only comes after the daemon's READY=1. Returns
        (final state, epoch second of the restart, for the journal).
        """
        values = self.run(
            f"""
start=$(date +%s)
echo "SINCE=$start"
deadline=$((start + {timeout}))
$SUDO systemctl reset-failed "$SERVICE" </dev/null >/dev/null 2>&1 || true
$SUDO timeout {timeout} systemctl restart "$SERVICE" </dev/null >/dev/null 2>&1 || true
state=$(systemctl is-active "$SERVICE" </dev/null 2>/dev/null) || true
while [ "$state" != active ] && [ "$state" != failed ] && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 1
    state=$(systemctl is-active "$SERVICE" </dev/null 2>/dev/null) || true
done
if [ "$state" = active ]; then
    pid=$(systemctl show -p MainPID --value "$SERVICE" </dev/null 2>/dev/null) || true
    stable_until=$(($(date +%s) + {settle}))
    while [ "$(date +%s)" -lt "$stable_until" ]; do
        sleep 1
        state=$(systemctl is-active "$SERVICE" </dev/null 2>/dev/null) || true
        [ "$state" = active ] || break
        now=$(systemctl show -p MainPID --value "$SERVICE" </dev/null 2>/dev/null) || true
        if [ "$now" != "$pid" ]; then state="restarting (main pid changed)"; break; fi
    done
fi
echo "STATE=${{state:-unknown}}"
echo "STATUS_TEXT=$(systemctl show -p StatusText --value "$SERVICE" </dev/null 2>/dev/null || true)"
""",
            timeout=2 * timeout + settle + 60,
        )
        return health_state(values, timeout), values.get("SINCE", "")

    def journal_tail(self, since: str, lines: int = 15) -> list[str]:
        """The service's last journal lines since ``since`` (epoch seconds), best effort."""
        since_opt = f"--since @{int(since)}" if since.isdigit() else ""
        out = self.target.run(
            self._prelude()
            + f'$SUDO journalctl -u "$SERVICE" --no-pager -o cat -n {lines} {since_opt} </dev/null 2>/dev/null'
            + " || true\n"
        )
        return [line for line in out.splitlines() if line.strip()]

    def releases(self) -> tuple[str, list[str]]:
        """(current release id or '', all release ids oldest first)."""
        values = self.run(
            """
cur=$(readlink "$CURRENT" 2>/dev/null) || cur=""
echo "CURRENT=${cur##*/}"
if [ -d "$RELEASES" ]; then echo "RELEASES=$(ls -1 "$RELEASES" | tr '\\n' ' ')"; fi
"""
        )
        found = sorted(r for r in values.get("RELEASES", "").split() if RELEASE_ID_RE.match(r))
        return values.get("CURRENT", ""), found

    def remove_releases(self, release_ids: list[str]) -> None:
        """Delete release dirs (ids are checked, never arbitrary paths)."""
        if release_ids:
            names = " ".join(q(_check_release_id(r)) for r in release_ids)
            self.run(f'cd "$RELEASES"\n$SUDO rm -rf -- {names} </dev/null\n')

    def status(self) -> dict[str, str]:
        """is-active, selected ``systemctl show`` properties, current release, last latency log line."""
        return self.run(
            """
echo "ACTIVE=$(systemctl is-active "$SERVICE" </dev/null 2>/dev/null || true)"
systemctl show "$SERVICE" -p SubState -p MainPID -p NRestarts -p StatusText </dev/null 2>/dev/null \\
    | sed 's/^/SHOW_/' || true
cur=$(readlink "$CURRENT" 2>/dev/null) || cur=""
echo "CURRENT=${cur##*/}"
line=$($SUDO journalctl -u "$SERVICE" --no-pager -o short-iso -n 5000 </dev/null 2>/dev/null \\
    | grep latency | tail -n 1) || true
echo "LATENCY=$line"
"""
        )


# Facts the preflight reads from the target's python3 (any python3 can run this line).
_FACTS = (
    'import platform, struct, sys; print("PY=%d.%d.%d" % sys.version_info[:3]); '
    'print("BITS=%d" % (struct.calcsize("P") * 8)); print("MACHINE=" + platform.machine())'
)
MIN_PYTHON = (3, 11)


def platform_problem(values: dict[str, str]) -> str | None:
    """Why the target cannot run a release (one line), or None.

    A 32-bit userspace is refused even on a 64-bit kernel (Raspberry Pi OS
    32-bit on a Pi 4/5 reports ``uname -m`` = aarch64): ai-edge-litert has no
    32-bit ARM wheels (tflite-runtime's last, 2.14, has armv7l wheels only up to
    Python 3.11, with int8 kernels 7-15x slower; not supported). The project
    needs Python 3.11+.
    """
    bits, arch = values.get("BITS", ""), values.get("DPKG_ARCH") or values.get("MACHINE", "?")
    if bits == "32" or arch in ("armhf", "armel", "i386") or arch.startswith("armv"):
        return (f"32-bit userspace on the target ({arch}): install 64-bit Raspberry Pi OS (arm64); "
                "ai-edge-litert has no 32-bit ARM wheels")
    version = values.get("PY", "")
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return f"could not read the python3 version on the target ({version!r})"
    if (major, minor) < MIN_PYTHON:
        return (f"python3 on the target is {version}, needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer "
                "(Raspberry Pi OS Bookworm or Trixie)")
    return None


def picamera2_problem(installed: str) -> str | None:
    """Why the target's python3-picamera2 (its dpkg version, '' when not installed) cannot run the service."""
    if not installed:
        return None  # apt installs the current one
    numbers = tuple(int(n) for n in re.findall(r"\d+", installed.split(":")[-1].split("-")[0])[:3])
    if numbers >= PICAMERA2_MIN:
        return None
    floor = ".".join(str(n) for n in PICAMERA2_MIN)
    return (f"python3-picamera2 {installed} on the target is older than {floor}, which the camera source needs: "
            f"sudo apt update && sudo apt install --only-upgrade python3-picamera2 (on the Pi); nothing changed")


def health_state(values: dict[str, str], timeout: int) -> str:
    """The health check's verdict in words: ``active``, or the state with why (READY=1 never came, daemon status)."""
    state = values.get("STATE", "") or "unknown"
    if state == "active":
        return state
    why = [f"no READY=1, i.e. no frame processed, within {timeout} s"] if state == "activating" else []
    if values.get("STATUS_TEXT"):
        why.append(f"daemon status: {values['STATUS_TEXT']}")
    return f"{state} ({'; '.join(why)})" if why else state


def releases_to_prune(releases: list[str], current: str, keep: int) -> list[str]:
    """Release ids beyond the newest ``keep``, never the current one."""
    newest_first = sorted(releases, reverse=True)
    return sorted(r for r in newest_first[keep:] if r != current)


def previous_release(releases: list[str], current: str) -> str | None:
    """The newest release older than ``current`` (what a rollback goes back to)."""
    older = [r for r in sorted(releases) if r < current]
    return older[-1] if older else None
