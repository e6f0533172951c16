"""What Home Assistant should show for our MQTT discovery, and where what it shows differs (``make ha-check``).

Pure functions over plain data, so they are unit-tested without Home
Assistant (tests/test_ha_entities.py): the expectations come from the very
discovery configs the daemon publishes (:func:`edge.outputs.mqtt.discovery_configs`),
the observations are Home Assistant's ``/api/states`` list and its device and
entity registries (websocket ``config/device_registry/list`` and
``config/entity_registry/list``). Each check returns a list of one-line
problems; empty means Home Assistant shows what we announced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

UNAVAILABLE = "unavailable"


def slugify(text: str) -> str:
    """Home Assistant's entity id slug for ASCII text: lower case, runs of anything else as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@dataclass(frozen=True)
class Expected:
    """One entity as our discovery config announces it."""

    discovery_id: str  # "<component> <node id> <object id>": how Home Assistant's MQTT log names the config
    entity_id: str  # <component>.<slug of "device name entity name">: HA's rule for entities with a device
    friendly_name: str  # "<device name> <entity name>"
    unique_id: str
    device_identifier: str
    options: tuple[str, ...] | None  # enum sensors and binary sensors: the states it may show
    numeric: bool  # a sensor with a unit or a state class: the state is a number (or "unknown")
    attributes: tuple[str, ...]  # keys json_attributes_template puts on the entity
    unit: str | None
    device_class: str | None
    icon: str | None


def attribute_keys(template: str) -> tuple[str, ...]:
    """The keys of a ``json_attributes_template`` such as ``{{ {'confidence': value_json.x} | tojson }}``."""
    return tuple(re.findall(r"['\"](\w+)['\"]\s*:", template))


def expected_entities(configs: dict[str, dict[str, Any]]) -> list[Expected]:
    """One :class:`Expected` per discovery config (topic -> config), in announcement order."""
    found = []
    for topic, config in configs.items():
        _, component, node, object_id, _ = topic.split("/")
        device = config["device"]
        friendly = f"{device['name']} {config['name']}"
        if component == "binary_sensor":
            options: tuple[str, ...] | None = ("on", "off")
        else:
            options = tuple(config["options"]) if "options" in config else None
        found.append(Expected(
            discovery_id=f"{component} {node} {object_id}",
            entity_id=f"{component}.{slugify(friendly)}", friendly_name=friendly, unique_id=config["unique_id"],
            device_identifier=device["identifiers"][0], options=options,
            numeric=options is None and ("unit_of_measurement" in config or "state_class" in config),
            attributes=attribute_keys(config.get("json_attributes_template", "")),
            unit=config.get("unit_of_measurement"), device_class=config.get("device_class"),
            icon=config.get("icon")))
    return found


def by_entity_id(states: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["entity_id"]: s for s in states}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_timestamp(state: str) -> bool:
    """An ISO time such as an image entity's state ("2025-04-30T10:00:00.123456+00:00"); False for "unknown"."""
    try:
        datetime.fromisoformat(state)
    except ValueError:
        return False
    return True


def is_positive(state: str) -> bool:
    """A numeric state above 0 ("1", "4.8"); False for "0", "unknown", "unavailable"."""
    return _is_number(state) and float(state) > 0


def state_problems(expected: list[Expected], states: list[dict[str, Any]], available: bool = True) -> list[str]:
    """Entities missing or shown otherwise than announced; ``available`` False: each must be ``unavailable``."""
    shown = by_entity_id(states)
    problems = []
    for want in expected:
        state = shown.get(want.entity_id)
        if state is None:
            same = [s["entity_id"] for s in states if s["attributes"].get("friendly_name") == want.friendly_name]
            problems.append(f"{want.entity_id}: missing" + (f" (HA named it {', '.join(same)})" if same else ""))
            continue
        value, attrs = state["state"], state["attributes"]
        if not available:
            if value != UNAVAILABLE:
                problems.append(f"{want.entity_id}: {value!r}, expected unavailable")
            continue
        if value == UNAVAILABLE:
            problems.append(f"{want.entity_id}: unavailable while the daemon runs")
        elif want.options is not None and value not in want.options:
            problems.append(f"{want.entity_id}: state {value!r} is not one of {', '.join(want.options)}")
        elif want.numeric and not (_is_number(value) or value == "unknown"):
            problems.append(f"{want.entity_id}: state {value!r} is not a number")
        if attrs.get("friendly_name") != want.friendly_name:
            problems.append(f"{want.entity_id}: friendly name {attrs.get('friendly_name')!r}, "
                            f"expected {want.friendly_name!r}")
        for key, wanted in (("unit_of_measurement", want.unit), ("device_class", want.device_class),
                            ("icon", want.icon)):
            if attrs.get(key) != wanted:
                problems.append(f"{want.entity_id}: {key} {attrs.get(key)!r}, expected {wanted!r}")
        if want.options and "options" in attrs and list(attrs["options"]) != list(want.options):
            problems.append(f"{want.entity_id}: options {attrs['options']}, expected {list(want.options)}")
        missing = [k for k in want.attributes if k not in attrs]
        if missing:
            problems.append(f"{want.entity_id}: attributes {', '.join(missing)} missing")
    return problems


def removed_problems(expected: list[Expected], states: list[dict[str, Any]], entities: list[dict[str, Any]],
                     devices: list[dict[str, Any]]) -> list[str]:
    """Entities still in the states or the entity registry, or their device still registered, after our cleanup."""
    shown = by_entity_id(states)
    registered = {e["entity_id"] for e in entities}
    problems = [f"{want.entity_id}: still {'shown' if want.entity_id in shown else 'registered'} after the cleanup"
                for want in expected if want.entity_id in shown or want.entity_id in registered]
    identifiers = {want.device_identifier for want in expected}
    problems += [f"device {d.get('name')}: still registered after the cleanup" for d in devices
                 if any(list(i) in [["mqtt", x] for x in identifiers] for i in d.get("identifiers", []))]
    return problems


def device_problems(expected: list[Expected], config_device: dict[str, Any], devices: list[dict[str, Any]],
                    entities: list[dict[str, Any]]) -> list[str]:
    """One device per Pi with the announced name, model, maker and version, holding exactly our entities."""
    identifier = config_device["identifiers"][0]
    mine = [d for d in devices if ["mqtt", identifier] in [list(i) for i in d.get("identifiers", [])]]
    if len(mine) != 1:
        return [f"device {identifier}: {len(mine)} devices in the registry, expected 1"]
    device = mine[0]
    problems = []
    for key, registry_key in (("name", "name"), ("model", "model"), ("manufacturer", "manufacturer"),
                              ("sw_version", "sw_version")):
        if device.get(registry_key) != config_device[key]:
            problems.append(f"device {identifier}: {registry_key} {device.get(registry_key)!r}, "
                            f"expected {config_device[key]!r}")
    on_device = {e["entity_id"] for e in entities if e.get("device_id") == device["id"]}
    wanted = {want.entity_id for want in expected}
    if on_device != wanted:
        problems.append(f"device {identifier}: holds {sorted(on_device)}, expected {sorted(wanted)}")
    return problems


def origin_problems(expected: list[Expected], origin: dict[str, Any], log_text: str) -> list[str]:
    """Each config must have reached Home Assistant with our ``origin``: its MQTT debug log names it.

    Home Assistant validates the origin block and drops a config whose block
    is invalid (one warning); a valid one is logged as "Found new component:
    <component> <node> <object> from external application <name>, version: <sw_version>".
    """
    tail = f" from external application {origin.get('name')}" + (
        f", version: {origin['sw_version']}" if origin.get("sw_version") else "")
    return [f"{want.entity_id}: no 'Found new component: {want.discovery_id}{tail}' in Home Assistant's log"
            for want in expected if f"Found new component: {want.discovery_id}{tail}" not in log_text]


def repair_problems(issues: list[dict[str, Any]]) -> list[str]:
    """Repairs Home Assistant raised for its MQTT integration (deprecated or refused options)."""
    return [f"repair issue {i.get('domain')}.{i.get('issue_id')}: {i.get('translation_key')} "
            f"{i.get('translation_placeholders') or ''}".rstrip()
            for i in issues if i.get("domain") == "mqtt"]


def table_rows(expected: list[Expected], states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entity as Home Assistant shows it: entity id, friendly name, state, unit, our attributes."""
    shown = by_entity_id(states)
    rows = []
    for want in expected:
        state = shown.get(want.entity_id, {"state": "(missing)", "attributes": {}})
        attrs = state["attributes"]
        rows.append({"entity_id": want.entity_id, "name": attrs.get("friendly_name", ""), "state": state["state"],
                     "unit": attrs.get("unit_of_measurement", ""),
                     "attributes": {k: attrs[k] for k in want.attributes if k in attrs}})
    return rows


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per entity for the terminal."""
    lines = []
    for row in rows:
        value = f"{row['state']} {row['unit']}".strip()
        extra = ", ".join(f"{k}={v}" for k, v in row["attributes"].items())
        lines.append(f"{row['entity_id']:<56} {row['name']:<42} {value:<10} {extra}".rstrip())
    return lines


def dashboard_card(page: str, client_id: str = "kitchen", image: str = "face") -> str:
    """The first YAML block of docs/home-assistant.md (the dashboard card) with its entity ids made those of
    ``client_id`` (the page's example is "kitchen") and its image entity that of ``image`` ("face"/"frame")."""
    block = re.search(r"```yaml\n(.*?)```", page, re.S)
    if block is None:
        raise ValueError("no ```yaml block (the dashboard card)")
    card = block.group(1).replace("face_emotion_kitchen_", f"{slugify('face-emotion ' + client_id)}_")
    return card.replace("_last_face", f"_last_{image}")


def card_problems(card: str, expected: list[Expected]) -> list[str]:
    """Entity ids the card names that our discovery does not announce (a card that would show "not found")."""
    ours = {e.entity_id for e in expected}
    named = list(dict.fromkeys(re.findall(r"\b(?:sensor|binary_sensor|image)\.[a-z0-9_]+", card)))
    return [f"the card names {entity_id}, which our discovery does not announce" for entity_id in named
            if entity_id not in ours] + ([] if named else ["the card names no entity"])


OUR_LOG = re.compile(r"face.emotion|homeassistant/(sensor|binary_sensor|image)/", re.I)
MQTT_TROUBLE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b.*components\.mqtt")


def log_lines_about_us(log_text: str, limit: int = 60) -> list[str]:
    """Home Assistant's log lines naming our ids or topics, and its MQTT integration's warnings and errors."""
    lines = [line for line in log_text.splitlines()
             if MQTT_TROUBLE.search(line) or (OUR_LOG.search(line) and not re.search(r"\bDEBUG\b", line))]
    return lines[-limit:]
