"""Command-line options generated from the settings dataclasses, so a setting is declared once.

Every field of :class:`~edge.frame.pipeline.ModelSettings` and
:class:`~edge.detectors.DetectorSettings` (its ``blazeface`` table included)
gets a flag: ``detector.min_size`` is ``--min-size``,
``detector.blazeface.score_threshold`` is ``--blazeface-score-threshold``;
two keep their historical names (``--models`` for ``models.dir``, ``--detector``
for ``detector.backend``). The default shown in ``--help`` is the dataclass's;
a flag not given is left out of the mapping, so the dataclass default applies,
and the values go through :func:`~edge.settings.from_mapping`, so the CLI
validates exactly as the TOML config does. ``python -m edge analyze``, the
bench and every bench row share them; a bench row receives its settings as one
JSON mapping (:func:`settings_from_json`), never re-parsed from argv.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from typing import Any

from edge.detectors import DetectorSettings
from edge.frame.pipeline import ModelSettings
from edge.settings import from_mapping

SECTIONS: dict[str, type] = {"models": ModelSettings, "detector": DetectorSettings}
RENAMED = {"models.dir": "--models", "detector.backend": "--detector"}
HELP = {
    "models.dir": "models folder with manifest.json (default: models/)",
    "models.variant": "int8 (default), float32 or a model name",
    "models.threads": "classifier threads",
    "models.flip_average": "also classify each face's mirror image and average (a second invoke per face); "
                           "auto = as each model's manifest entry ships it",
    "detector.backend": "face detector backend (blazeface: MediaPipe's BlazeFace, see [detector.blazeface] in "
                        "edge/config.example.toml)",
    "detector.full_scan_every": "videos/cameras: whole-frame scan every N frames, around known faces in between "
                                "(1 = every frame)",
    "detector.scale_factor": "Haar: image pyramid step",
    "detector.min_neighbors": "Haar: overlapping hits needed to keep a face",
    "detector.min_size": "smallest face side in pixels",
    "detector.equalize": "Haar: contrast equalisation before detection",
    "detector.clahe_clip": "Haar: CLAHE clip limit (with --equalize clahe)",
    "detector.detect_width": "detect on a copy scaled to this width (0 = full resolution)",
    "detector.roi_margin": "streams: around a known face, search this fraction of its size on each side",
}
PREFIX = "settings."  # argparse dests: settings.detector.min_size, never clashing with a command's own options


@dataclasses.dataclass(frozen=True)
class Option:
    """One settings field as a flag: its dotted key, flag, argparse type or choices, and default."""

    key: str  # models.threads, detector.blazeface.model
    flag: str
    kind: Any
    default: Any

    @property
    def dest(self) -> str:
        return PREFIX + self.key


def _flag(key: str) -> str:
    if key in RENAMED:
        return RENAMED[key]
    rest = key.partition(".")[2]
    return "--" + rest.replace(".", "-").replace("_", "-")


def _options(cls: type, key: str, instance: Any) -> list[Option]:
    hints = typing.get_type_hints(cls)
    out: list[Option] = []
    for f in dataclasses.fields(cls):
        tp, default, sub = hints[f.name], getattr(instance, f.name), f"{key}.{f.name}"
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += _options(tp, sub, default)
        else:
            out.append(Option(sub, _flag(sub), tp, default))
    return out


def options() -> list[Option]:
    """Every settings field of :data:`SECTIONS` as an :class:`Option`, nested tables flattened."""
    return [o for name, cls in SECTIONS.items() for o in _options(cls, name, cls())]


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Add a flag per settings field (defaults and choices from the dataclasses) to ``parser``."""
    group = parser.add_argument_group("model and detector settings (the [models] and [detector] config keys)")
    for o in options():
        help_text = HELP.get(o.key, f"[{o.key.rsplit('.', 1)[0]}] {o.key.rsplit('.', 1)[1]}")
        if o.kind is bool:
            group.add_argument(o.flag, dest=o.dest, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{help_text} (default {'on' if o.default else 'off'})")
            continue
        choices = typing.get_args(o.kind) if typing.get_origin(o.kind) is typing.Literal else None
        # choices are checked by from_mapping, as for the TOML: one line naming the key, not argparse's usage
        group.add_argument(o.flag, dest=o.dest, type=str if choices else o.kind, default=None,
                           metavar="|".join(choices) if choices else o.key.rsplit(".", 1)[1].upper(),
                           help=f"{help_text} (default {o.default!r})" if o.default != "" else help_text)


def settings_mapping(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The flags given on the command line as config sections (``{"detector": {"min_size": 40}}``)."""
    out: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for o in options():
        value = getattr(args, o.dest, None)
        if value is None:
            continue
        *tables, leaf = o.key.split(".")
        node = out
        for table in tables:
            node = node.setdefault(table, {})
        node[leaf] = value
    return out


def settings_of(mapping: dict[str, dict[str, Any]]) -> tuple[ModelSettings, DetectorSettings]:
    """Validated settings from config sections; a bad value raises ``ConfigError`` naming the key."""
    return (from_mapping(ModelSettings, mapping.get("models"), "models"),
            from_mapping(DetectorSettings, mapping.get("detector"), "detector"))


def settings_from(args: argparse.Namespace) -> tuple[ModelSettings, DetectorSettings]:
    """Validated settings from parsed options."""
    return settings_of(settings_mapping(args))


def settings_to_json(models: ModelSettings, detector: DetectorSettings) -> str:
    """All of a row's settings as one JSON mapping, for :func:`settings_from_json` in another process."""
    return json.dumps({"models": dataclasses.asdict(models), "detector": dataclasses.asdict(detector)})


def settings_from_json(text: str) -> tuple[ModelSettings, DetectorSettings]:
    """The inverse of :func:`settings_to_json`, validated through ``from_mapping``."""
    return settings_of(json.loads(text))
