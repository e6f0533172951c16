"""Docs that cannot drift from the code: every ``python -m`` command and ``--flag`` quoted in README.md and docs/.

A command line quoted in a code block or a code span (``python -m edge.bench --hold 15``,
``face-emotion analyze ... --json``) must name a module of this repository and use only
options its argparse parser has. A flag quoted on its own (`` `--limit N` ``) must exist
in the parser of the CLI the page is about (docs/bench.md: ``edge.bench``), or for the
README in at least one of the repository's CLIs. Parsers come from the module's
``build_parser()`` where it has one, else they are caught as ``main([])`` builds them.
"""

from __future__ import annotations

import argparse
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "edge" / "outputs" / "README.md",
        ROOT / "deploy" / "README.md", ROOT / "samples" / "README.md"]
OURS = ("edge", "quantize", "train_host", "deploy")
EDGE_COMMANDS = {"analyze": "edge.analyze", "bench": "edge.bench", "run": "edge.service.daemon",
                 "check": "edge.service.daemon",
                 "config": "edge.service.config_command"}
TOP_LEVEL = {"--version", "-V", "--help", "-h"}  # face-emotion's own options, before any command (edge.__main__)
PAGE_CLI = {"docs/bench.md": "edge.bench"}  # a page about one CLI: its bare flags belong to that CLI
OTHER_TOOLS = {"--system-site-packages", "--no-build-isolation"}  # quoted flags of other programs (venv, pip)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"(?:python3? -m|\.venv/bin/python -m|\$\(PY\) -m) ([\w.]+)|face-emotion\b(?![/-])")


class _Caught(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


@cache
def parser_of(module: str) -> argparse.ArgumentParser:
    """The argparse parser of ``python -m module``."""
    if module == "deploy":
        module = "deploy.cli"  # deploy/__main__.py runs on import
    mod = importlib.import_module(module)
    if hasattr(mod, "build_parser"):
        return mod.build_parser()
    if not hasattr(mod, "main") and not hasattr(mod, "parse_args"):
        mod = importlib.import_module(module + ".__main__")
    original = argparse.ArgumentParser.parse_known_args

    def catch(self, *args, **kwargs):
        raise _Caught(self)

    argparse.ArgumentParser.parse_known_args = catch
    try:
        (getattr(mod, "parse_args", None) or mod.main)([])
    except _Caught as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise AssertionError(f"{module}: main([]) built no parser")


def options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of a parser and of its sub-commands."""
    found = {s for action in parser._actions for s in action.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= options(sub)
    return found


def quoted(text: str) -> list[str]:
    """Code: each line of the fenced blocks (continuations joined) and each inline code span."""
    pieces = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        pieces += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    pieces += re.findall(r"`([^`\n]+)`", prose)
    return pieces


def commands(piece: str) -> list[tuple[str, str]]:
    """(module, rest of the command) for each of our CLIs invoked in a piece of code."""
    found = []
    for match in COMMAND.finditer(piece):
        rest = re.split(r"\s(?:\||;|&&|#)|\|", piece[match.end():])[0]
        module = match.group(1) or "edge"
        if module.split(".")[0] not in OURS:
            continue
        if module == "edge":
            first = rest.split()[0].strip("`") if rest.split() else ""
            if first in TOP_LEVEL:
                continue
            module = EDGE_COMMANDS.get(first, "edge.service.daemon")
        found.append((module, rest))
    return found


def drift(page: Path) -> list[str]:
    """What a page quotes that the code does not have."""
    problems = []
    everything = set().union(*(options(parser_of(m)) for m in (
        "edge.service.daemon", "edge.analyze", "edge.bench", "edge.service.config_command", "quantize",
        "quantize.verify",
        "train_host.train", "train_host.evaluate", "train_host.compare", "train_host.visualize", "train_host.rebuild",
        "train_host.calibrate", "train_host.joint", "quantize.joint", "deploy", "deploy.pi_check", "deploy.pi_boot")))
    for piece in quoted(page.read_text()):
        invoked = commands(piece)
        for module, rest in invoked:
            try:
                known = options(parser_of(module))
            except ModuleNotFoundError:
                problems.append(f"{page.name}: `{piece}`: no module {module}")
                continue
            problems += [f"{page.name}: `{piece}`: {module} has no {flag}" for flag in FLAG.findall(rest)
                         if flag not in known]
        if not invoked and piece.lstrip().startswith("--"):
            cli = PAGE_CLI.get(f"{page.parent.name}/{page.name}")
            known = options(parser_of(cli)) if cli else everything
            problems += [f"{page.name}: `{piece}`: {cli or 'no CLI'} has no {flag}" for flag in FLAG.findall(piece)
                         if flag not in known | OTHER_TOOLS]
    return problems


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_quoted_command_and_flag_exists(page):
    assert drift(page) == []


def test_the_checker_catches_drift(tmp_path):
    page = tmp_path / "docs" / "bench.md"
    page.parent.mkdir()
    page.write_text("Run `python -m edge.bench --hold 15 --no-such-flag` or\n\n```sh\n"
                    "python -m edge analyze x.jpg \\\n    --json --colour\npython -m edge.nosuch --x\n```\n\n"
                    "| `--frames N` | ok |\n| `--gone` | no |\n")
    assert drift(page) == [
        "bench.md: `python -m edge analyze x.jpg      --json --colour`: edge.analyze has no --colour",
        "bench.md: `python -m edge.nosuch --x`: no module edge.nosuch",
        "bench.md: `python -m edge.bench --hold 15 --no-such-flag`: edge.bench has no --no-such-flag",
        "bench.md: `--gone`: edge.bench has no --gone",
    ]


def test_train_help_shows_every_default():
    from train_host.train import DEFAULTS

    parser = parser_of("train_host.train")
    for action in parser._actions:
        fixed = action.default is not None and action.default is not False and action.dest != "help"
        if action.option_strings and (fixed or action.dest in DEFAULTS["emotion"]):
            assert "default" in (action.help or ""), f"--help shows no default for {action.option_strings[0]}"
    text = " ".join(parser.format_help().split())
    epochs = ", ".join(f"{task} {values['epochs']}" for task, values in DEFAULTS.items())
    assert f"--epochs EPOCHS (default: {epochs})" in text
