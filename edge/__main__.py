"""``face-emotion`` / ``python -m edge``: the service and the command-line tools, one command each.

    face-emotion [run] [--config FILE] [--models DIR] [--frames N]   the service (the default command)
    face-emotion analyze PATH... [--json] [--annotate OUT]            photos, folders and videos
    face-emotion bench [--source DIR|VIDEO|camera] [--hold N]         where the time of a frame goes
    face-emotion check [--config FILE] [--models DIR]                 what the service would use, checked
"""

from __future__ import annotations

import sys

from edge.commands import COMMANDS


def usage() -> str:
    """The top-level help: every command, then how to get a command's options."""
    rows = "\n".join(f"  {name:<9} {text}" for name, text in COMMANDS.items())
    return (f"usage: face-emotion [COMMAND] [OPTIONS]   (or: python -m edge [COMMAND] [OPTIONS])\n\n"
            f"On-device face emotion and gender recognition.\n\ncommands:\n{rows}\n\n"
            "`face-emotion COMMAND --help` lists a command's options; without a command the options are run's.\n"
            "Python: `from edge import FaceAnalyzer` (docs/api.md).\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    if command in ("-h", "--help"):
        print(usage())
        return 0
    if command == "analyze":
        from edge.analyze import main as analyze

        return analyze(argv[1:])
    if command == "bench":
        from edge.bench.__main__ import main as bench

        return bench(argv[1:])
    if command == "check":
        argv = [*argv[1:], "--check"]
    elif command == "run":
        argv = argv[1:]
    from edge.daemon import main as daemon

    return daemon(argv)


if __name__ == "__main__":
    sys.exit(main())
