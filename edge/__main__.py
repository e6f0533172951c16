"""``face-emotion`` / ``python -m edge``: the service and the command-line tools, one command each.

    face-emotion [run] [--config FILE] [--models DIR] [--frames N]   the service (the default command)
    face-emotion run --source 0|VIDEO|FOLDER [--live-view] [--mqtt HOST]   the same without a config file
    face-emotion analyze PATH... [--json] [--annotate OUT] [-q]       photos, folders and videos
    face-emotion bench [--source DIR|VIDEO|camera] [--hold N]         where the time of a frame goes
    face-emotion check [--config FILE | --source ...]                 what the service would use, checked
    face-emotion config [--example | --path]                          where the config is, the example
    face-emotion --version

Output into a closed pipe (``face-emotion --help | head -1``) ends the
command quietly with status 141, as ``yes | head`` does, not with a
BrokenPipeError traceback.
"""

from __future__ import annotations

import os
import sys

from edge.commands import COMMANDS

PACKAGE = "pi-face-emotion"
EXIT_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE


def usage() -> str:
    """The top-level help: every command, then how to get a command's options."""
    rows = "\n".join(f"  {name:<9} {text}" for name, text in COMMANDS.items())
    return (f"usage: face-emotion [COMMAND] [OPTIONS]   (or: python -m edge [COMMAND] [OPTIONS])\n\n"
            f"On-device face emotion and gender recognition.\n\ncommands:\n{rows}\n\n"
            "`face-emotion COMMAND --help` lists a command's options; without a command the options are run's.\n"
            "Try it: `face-emotion run --source 0 --live-view` (a webcam, shown in the browser).\n"
            "`face-emotion --version` prints the version.\n"
            "Python: `from edge import FaceAnalyzer` (docs/api.md).\n")


def version() -> str:
    """The installed distribution's version; from pyproject.toml for a checkout run without installing."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"]) + " (not installed)"
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def dispatch(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command in ("-h", "--help"):
        print(usage())
        return 0
    if command in ("-V", "--version"):
        print(f"face-emotion {version()}")
        return 0
    if command == "analyze":
        from edge.analyze import main as analyze

        return analyze(argv[1:])
    if command == "bench":
        from edge.bench.__main__ import main as bench

        return bench(argv[1:])
    if command == "config":
        from edge.service.config_command import main as config

        return config(argv[1:])
    from edge.service.daemon import main as daemon

    if command == "check":
        return daemon([*argv[1:], "--check"], prog="face-emotion check")
    return daemon(argv[1:] if command == "run" else argv)


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            status = dispatch(list(sys.argv[1:] if argv is None else argv))
        finally:  # argparse's --help and errors leave through SystemExit: their text is flushed here too
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more can be written. Point stdout at /dev/null so the
        # interpreter's own flush at exit does not raise again, and leave as a SIGPIPE'd process would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    return status


if __name__ == "__main__":
    sys.exit(main())
