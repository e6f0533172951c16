"""``face-emotion config [--example | --path]``: where the config file is looked for, and the example to start from.

    face-emotion config                       the places run and check look, in order, and which one is used
    face-emotion config --example > FILE      the documented example (every key at its default)
    face-emotion config --path                the file run and check would read (exit 2 when there is none)

The example is package data (``edge/config.example.toml``), so this works
from an installed wheel, where the file sits inside site-packages.
"""

from __future__ import annotations

import argparse
import sys

from edge.service.config import EXAMPLE_CONFIG, find_config, search_path, user_config
from edge.settings import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="face-emotion config", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--example", action="store_true", help="print the example config (every key documented)")
    which.add_argument("--path", action="store_true", help="print the config file run and check would read")
    return parser


def where() -> str:
    """The search order with what exists, and the file that wins."""
    try:
        used = str(find_config())
    except ConfigError:
        used = ""
    lines = ["run and check read the first of (after --config FILE):"]
    for name, path in search_path():
        state = "unset" if path is None else "used" if str(path) == used else (
            "found" if path.exists() else "not there")
        lines.append(f"  {name:<21} {f'{path}  ({state})' if path is not None else f'({state})'}")
    if not used:
        mine = user_config()
        lines.append(f"none found; to start from the example: mkdir -p {mine.parent} && "
                     f"face-emotion config --example > {mine}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.example:
        sys.stdout.write(EXAMPLE_CONFIG.read_text())
        return 0
    if args.path:
        try:
            print(find_config())
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    print(where())
    return 0
