"""The docs' other claims that drifted once, each checked against what it describes.

tests/test_docs.py holds the quoted commands and flags to the parsers. This file holds the rest of that
class of drift, each found in a page a user reads:

- a settings table (``| Key | Default | ...`` under a heading naming ``[outputs.live_view]``) lists exactly
  the fields of that section's settings dataclass, with its defaults (the live view's table once lacked
  ``token`` and ``hostnames`` and said ``0.0.0.0`` meant no password);
- a Makefile quoted in a page is the Makefile's (deploy/README.md once showed an old one);
- a repository path a page or ``.ci/run`` points at exists;
- pages speak to users: no "figures in the closing note", which only the team ever saw;
- ``FaceAnalyzer`` takes every model setting the config file has (the README said so when it lacked one).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing

import pytest

from edge.service.config import Config
from tests.test_docs import DOCS, ROOT

HEADING = re.compile(r"^#+ [^\n]*`\[([a-z_.]+)\]`[^\n]*$", re.M)
TABLE_HEAD = re.compile(r"^\| *Key *\| *Default *\|", re.M | re.I)
ROW = re.compile(r"^\| *`([a-z_]+)` *\| *([^|]*?) *\|", re.M)
TOP_DIRS = ("edge", "docs", "deploy", "tools", "tests", "models", "samples", "train_host", "quantize", "systemd",
            ".ci")
DIRS = "|".join(re.escape(d) for d in TOP_DIRS)
PATH = re.compile(rf"(?<![\w./~-])((?:{DIRS})/[\w./-]*[\w-]\.(?:md|py|toml|json|png|jpg|service|sh|html|txt))\b")
NOT_FOR_USERS = ("closing note",)


def section_class(path: str) -> type:
    """The settings dataclass of a dotted config section (``outputs.live_view`` -> LiveViewSettings)."""
    cls: type = Config
    for part in path.split("."):
        hints = typing.get_type_hints(cls)
        if part not in hints or not dataclasses.is_dataclass(hints[part]):
            raise KeyError(f"[{path}] is not a section of the config")
        cls = hints[part]
    return cls


def toml(value: object) -> str:
    """A default as the TOML in the docs writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def settings_tables(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(key, default cell)]) for each ``| Key | Default |`` table under a heading naming a section."""
    headings = list(HEADING.finditer(text))
    tables = []
    for heading, following in zip(headings, [*headings[1:], None]):
        body = text[heading.end():following.start() if following else len(text)]
        body = body[:m.start()] if (m := re.search(r"^#", body, re.M)) else body  # up to any next heading
        head = TABLE_HEAD.search(body)
        if head:
            table = body[head.start():].split("\n\n")[0]
            tables.append((heading.group(1), ROW.findall(table)))
    return tables


def table_drift(page_name: str, text: str) -> list[str]:
    problems = []
    for section, rows in settings_tables(text):
        cls = section_class(section)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        documented = [key for key, _ in rows]
        problems += [f"{page_name} [{section}]: `{key}` is not a setting" for key in documented if key not in fields]
        problems += [f"{page_name} [{section}]: the table lacks `{key}`" for key in fields if key not in documented]
        defaults = cls()
        for key, cell in rows:
            single = re.fullmatch(r"`([^`]*)`", cell)
            if key in fields and single and single.group(1) != toml(getattr(defaults, key)):
                problems.append(f"{page_name} [{section}]: `{key}` default {single.group(1)} in the table, "
                                f"{toml(getattr(defaults, key))} in {cls.__name__}")
    return problems


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_settings_table_lists_the_sections_fields_and_defaults(page):
    assert table_drift(page.relative_to(ROOT).as_posix(), page.read_text()) == []


def test_the_table_checker_catches_a_missing_key_a_wrong_default_and_an_unknown_key():
    page = ("## Live view: `[outputs.live_view]`\n\nText.\n\n| Key | Default | Meaning |\n|---|---|---|\n"
            "| `enabled` | `true` | |\n| `colour` | `1` | |\n")
    problems = table_drift("x.md", page)
    assert "x.md [outputs.live_view]: `enabled` default true in the table, false in LiveViewSettings" in problems
    assert "x.md [outputs.live_view]: `colour` is not a setting" in problems
    assert "x.md [outputs.live_view]: the table lacks `token`" in problems


def quoted_makefiles(text: str) -> list[str]:
    return re.findall(r"```make\n(.*?)```", text, re.S)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_quoted_makefile_is_the_repositorys(page):
    makefile = {line.rstrip() for line in (ROOT / "Makefile").read_text().splitlines()}
    for block in quoted_makefiles(page.read_text()):
        stale = [line for line in block.splitlines() if line.strip() and line.rstrip() not in makefile]
        assert stale == [], f"{page.name} quotes Makefile lines the Makefile does not have"


def pointed_at(text: str) -> set[str]:
    return {match.group(1) for match in PATH.finditer(text)}


@pytest.mark.parametrize("page", [*DOCS, ROOT / ".ci" / "run", ROOT / "Makefile"],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_path_a_page_points_at_exists(page):
    missing = sorted(path for path in pointed_at(page.read_text()) if not (ROOT / path).exists())
    assert missing == []


def test_the_path_checker_finds_paths_in_prose_and_code():
    text = "see deploy/README.md (timings), `docs/pictures/demo.jpg`, ../shared/media/x.jpg and out/demo/a.png"
    assert pointed_at(text) == {"deploy/README.md", "docs/pictures/demo.jpg"}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pages_speak_to_users_not_to_the_team(page):
    text = page.read_text().lower()
    assert [words for words in NOT_FOR_USERS if words in text] == []


def test_face_analyzer_takes_every_model_setting_of_the_config_file():
    from edge import FaceAnalyzer

    parameters = set(inspect.signature(FaceAnalyzer).parameters)
    fields = {"models" if f.name == "dir" else f.name for f in dataclasses.fields(section_class("models"))}
    assert sorted(fields - parameters) == []


def test_the_docs_say_what_face_analyzer_takes():
    """docs/api.md's signature line is the real one."""
    from edge import FaceAnalyzer

    line = re.search(r"`FaceAnalyzer\((.*?)\)`", (ROOT / "docs" / "api.md").read_text(), re.S).group(1)
    signature = str(inspect.signature(FaceAnalyzer)).strip("()")
    documented = [part.split("=")[0].strip() for part in line.split(",")]
    assert documented == [part.split(":")[0].split("=")[0].strip() for part in signature.split(", ")]
