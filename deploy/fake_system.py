"""``--fake-system``: stand-ins for the system tools a non-Pi test machine lacks.

Only what cannot run there is replaced: ``sudo``, ``apt-get``, ``dpkg-query``,
``useradd``, ``systemctl`` and ``journalctl``. One recorder script answers for all
of them (by the name it is called under), appends each call to ``calls.log`` and
answers from files in ``answers/`` that the deploy writes from ``--fake-answer``.
Everything else (ssh, venv, pip, tar, the symlink switch) stays real.
"""

from __future__ import annotations

import shlex

from deploy.errors import DeployError
from deploy.layout import Layout

FAKE_TOOLS = ("sudo", "systemctl", "journalctl", "apt-get", "dpkg-query", "useradd", "usermod")

# answer key -> what it changes (shown by --help and in errors).
ANSWER_KEYS = {
    "is-active": "state systemctl reports (default: active)",
    "newest-release": "state reported while current is the newest release (a broken new release)",
    "missing": "space-separated apt packages dpkg-query reports as not installed",
    "uninstallable": "space-separated apt packages apt-get cannot find",
    "journal": "text journalctl prints",
    "status": "StatusText of systemctl show",
    "version": "version dpkg-query reports for installed packages when asked (default 0.3.31-1)",
    "restarting": "any value: while current is the newest release, MainPID changes at every query (a crash loop)",
}

RECORDER = r"""#!/bin/sh
# face-emotion deploy recorder: stands in for the system tool it is named after
# (see deploy/fake_system.py). Logs every call, answers from ../answers/.
set -u
tool=${0##*/}
here=$(cd "$(dirname "$0")/.." && pwd)
printf '%s\n' "$tool $*" >> "$here/calls.log"
answer() { if [ -f "$here/answers/$1" ]; then cat "$here/answers/$1"; else printf '%s' "$2"; fi; }
listed() { case " $(answer "$1" '') " in *" $2 "*) return 0 ;; esac; return 1; }

state() {
    if [ -f "$here/answers/newest-release" ]; then
        root=$(cat "$here/root")
        cur=$(readlink "$root/current" 2>/dev/null || true)
        newest=$(ls -1 "$root/releases" 2>/dev/null | sort | tail -n 1)
        if [ -n "$newest" ] && [ "${cur##*/}" = "$newest" ]; then answer newest-release ''; return; fi
    fi
    answer is-active active
}

on_newest() {
    root=$(cat "$here/root")
    cur=$(readlink "$root/current" 2>/dev/null || true)
    newest=$(ls -1 "$root/releases" 2>/dev/null | sort | tail -n 1)
    [ -n "$newest" ] && [ "${cur##*/}" = "$newest" ]
}

show() {
    s=$(state)
    value=0
    props=""
    while [ $# -gt 0 ]; do
        case $1 in
            --value) value=1 ;;
            -p) shift; props="$props $(printf '%s' "$1" | tr ',' ' ')" ;;
            --property=*) props="$props $(printf '%s' "${1#--property=}" | tr ',' ' ')" ;;
        esac
        shift
    done
    [ -n "$props" ] || props="ActiveState SubState MainPID NRestarts StatusText"
    for p in $props; do
        case $p in
            ActiveState) v=$s ;;
            SubState) if [ "$s" = active ]; then v=running; else v=$s; fi ;;
            MainPID) if [ "$s" != active ]; then v=0
                     elif [ -f "$here/answers/restarting" ] && on_newest; then
                         n=$(( $(cat "$here/pid-count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$here/pid-count"
                         v=$((4242 + n))
                     else v=4242; fi ;;
            NRestarts) v=0 ;;
            StatusText) v=$(answer status 'fps 8.0, latency 45 ms') ;;
            *) v= ;;
        esac
        if [ "$value" = 1 ]; then printf '%s\n' "$v"; else printf '%s=%s\n' "$p" "$v"; fi
    done
}

case $tool in
    sudo)
        while [ $# -gt 0 ]; do case $1 in -*) shift ;; *) break ;; esac; done
        exec "$@" ;;
    systemctl)
        for a in "$@"; do
            case $a in
                is-active) s=$(state); printf '%s\n' "$s"; [ "$s" = active ]; exit ;;
                show) shift; show "$@"; exit 0 ;;
                -*) ;;
                *) exit 0 ;;
            esac
        done
        exit 0 ;;
    journalctl)
        answer journal 'face-emotion started
fps 8.0 latency 45 ms (detect 20 ms, classify 25 ms)'
        echo ;;
    dpkg-query)
        rc=0
        case "$*" in *'${Version}'*) version=" $(answer version 0.3.31-1)" ;; *) version="" ;; esac
        for a in "$@"; do
            case $a in -*) continue ;; esac
            if listed missing "$a"; then echo "dpkg-query: no packages found matching $a" >&2; rc=1
            else printf 'installed%s' "$version"; fi
        done
        exit $rc ;;
    apt-get)
        for a in "$@"; do
            if listed uninstallable "$a"; then echo "E: Unable to locate package $a" >&2; exit 100; fi
        done
        exit 0 ;;
    useradd|usermod)
        exit 0 ;;
    *)
        echo "recorder: unknown tool $tool" >&2; exit 127 ;;
esac
"""


def parse_answers(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings from the command line, keys checked against ANSWER_KEYS."""
    answers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in ANSWER_KEYS:
            raise DeployError(f"bad --fake-answer {item!r}: use KEY=VALUE with KEY one of {', '.join(ANSWER_KEYS)}")
        answers[key] = value
    return answers


def install_script(layout: Layout, answers: dict[str, str]) -> str:
    """Shell script (recorder on stdin) that puts the recorder and answers on the target."""
    fake = shlex.quote(layout.fake_dir)
    lines = [
        "set -eu",
        f"FAKE={fake}",
        'mkdir -p "$FAKE/bin"',
        'cat > "$FAKE/bin/recorder"',
        'chmod 0755 "$FAKE/bin/recorder"',
        *(f'ln -sfn recorder "$FAKE/bin/{tool}"' for tool in FAKE_TOOLS),
        'rm -rf "$FAKE/answers"',
        'mkdir -p "$FAKE/answers"',
        'touch "$FAKE/calls.log"',
        f"printf '%s\\n' {shlex.quote(layout.root)} > \"$FAKE/root\"",
        *(f"printf '%s' {shlex.quote(value)} > \"$FAKE/answers/{key}\"" for key, value in answers.items()),
    ]
    return "\n".join(lines) + "\n"
