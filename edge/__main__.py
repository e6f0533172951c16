"""``python -m edge``: the service daemon; ``python -m edge analyze ...``: files on the command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "analyze":
        from edge.analyze import main as analyze

        return analyze(argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    from edge.daemon import main as daemon

    return daemon(argv)


if __name__ == "__main__":
    sys.exit(main())
