"""The commands of ``python -m edge``, in one table.

Both the top-level help (:mod:`edge.__main__`) and the service's ``--help``
(:mod:`edge.service.daemon`) list them; kept apart from both so that neither imports
the other (the entry point sits above the daemon, never below it).
"""

COMMANDS = {
    "run": "the service: camera -> faces -> LEDs, screen, browser or log (default when no command is given)",
    "analyze": "photos, folders and videos: labels per face, --json, --annotate OUT",
    "bench": "per-stage milliseconds per frame, our variants next to the paper's pipeline and fer",
    "check": "list the source, models, detector and outputs the service would use, and check them",
    "config": "where the config file is looked for; --example prints the documented example",
}
