"""make ha-check's checks (tools/ha_entities.py) on what a real Home Assistant 2025.4.4 returned.

tests/ha_check/ holds Home Assistant's own answers, saved by ``python -m
tools.ha_check --keep DIR`` as DIR/ha-live.json, ha-killed.json and
ha-after-cleanup.json (``/api/states`` and the device and entity registries,
unedited), and log lines of two runs: ours accepted (``home-assistant.log``:
its "Found new component" and WARNING lines) and a run whose origin block
lacked its name (``refused-origin.log``: its lines above DEBUG). The expectations come from the discovery configs
the daemon publishes today, so a change to the discovery that Home Assistant
would show differently fails here, without Home Assistant installed; the real
check is ``make ha-check``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from edge import __version__
from tools import ha_entities as he
from tools.ha_check import PIS, announced

RECORDED = Path(__file__).parent / "ha_check"


def recorded(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def pis():
    return [announced(client_id) for client_id in PIS]


def test_our_discovery_matches_what_home_assistant_showed(pis):
    live = recorded("live")
    for pi in pis:
        assert he.state_problems(pi.expected, live["states"]) == []
        assert he.device_problems(pi.expected, pi.device, live["devices"], live["entities"]) == []
    ids = {e.entity_id for pi in pis for e in pi.expected}
    assert len(ids) == 13 and ids <= {s["entity_id"] for s in live["states"]}
    emotion = he.by_entity_id(live["states"])[pis[0].entity_id("emotion")]
    assert set(emotion["attributes"]) >= {"confidence", "track", "options"}


def test_the_second_pi_has_an_image_entity_whose_state_is_the_time_of_its_last_image(pis):
    """make ha-check runs ha-check-pi2 with publish_images (the annotated frame); the first Pi has no image."""
    live = he.by_entity_id(recorded("live")["states"])
    image = live[pis[1].entity_id("image")]
    assert image["entity_id"] == "image.face_emotion_ha_check_pi2_last_frame"
    assert he.is_timestamp(image["state"]) and not he.is_timestamp("unknown")
    assert image["attributes"]["entity_picture"].startswith("/api/image_proxy/image.face_emotion_ha_check_pi2_")
    assert not [e for e in pis[0].expected if e.entity_id.startswith("image.")]


def test_a_renamed_entity_a_wrong_state_and_a_lost_attribute_are_named(pis):
    states = copy.deepcopy(recorded("live")["states"])
    shown = he.by_entity_id(states)
    pi = pis[0]
    shown[pi.entity_id("faces")]["entity_id"] = "sensor.faces"  # HA derived another id: same friendly name
    shown[pi.entity_id("gender")]["state"] = "female"
    del shown[pi.entity_id("emotion")]["attributes"]["confidence"]
    shown[pi.entity_id("latency")]["attributes"]["unit_of_measurement"] = "s"
    problems = he.state_problems(pi.expected, states)
    assert problems == [
        f"{pi.entity_id('faces')}: missing (HA named it sensor.faces)",
        f"{pi.entity_id('emotion')}: attributes confidence missing",
        f"{pi.entity_id('gender')}: state 'female' is not one of woman, man, none",
        f"{pi.entity_id('latency')}: unit_of_measurement 's', expected 'ms'",
    ]


def test_the_last_will_makes_one_pi_unavailable_and_leaves_the_other(pis):
    killed = recorded("killed")["states"]
    first, second = pis
    assert he.state_problems(first.expected, killed, available=False) == []
    assert he.state_problems(second.expected, killed) == []
    still = he.state_problems(second.expected, killed, available=False)
    assert len(still) == 7 and all("expected unavailable" in line for line in still)
    live_says = he.state_problems(first.expected, recorded("live")["states"], available=False)
    assert len(live_says) == 6


def test_the_cleanup_removed_one_pi_its_device_and_nothing_else(pis):
    after = recorded("after-cleanup")
    first, second = pis
    assert he.removed_problems(first.expected, after["states"], after["entities"], after["devices"]) == []
    assert he.state_problems(second.expected, after["states"]) == []
    live = recorded("live")
    before = he.removed_problems(first.expected, live["states"], live["entities"], live["devices"])
    assert len(before) == 7 and before[-1] == f"device {first.device['name']}: still registered after the cleanup"


def test_two_client_ids_are_two_devices_and_a_wrong_version_is_named(pis):
    live = recorded("live")
    devices = [d for d in live["devices"] if d["manufacturer"] == "pi-face-emotion"]
    assert sorted(d["name"] for d in devices) == [pi.device["name"] for pi in pis]
    older = copy.deepcopy(live["devices"])
    for device in older:
        device["sw_version"] = "0.0.9"
    pi = pis[0]
    assert he.device_problems(pi.expected, pi.device, older, live["entities"]) == [
        f"device {pi.device['identifiers'][0]}: sw_version '0.0.9', expected '{__version__}'"]
    assert he.device_problems(pi.expected, pi.device, live["devices"] * 2, live["entities"]) == [
        f"device {pi.device['identifiers'][0]}: 2 devices in the registry, expected 1"]


def test_the_origin_is_found_in_the_log_and_a_refused_one_is_shown(pis):
    accepted = (RECORDED / "home-assistant.log").read_text()
    refused = (RECORDED / "refused-origin.log").read_text()
    for pi in pis:
        assert he.origin_problems(pi.expected, pi.origin, accepted) == []
        assert len(he.origin_problems(pi.expected, pi.origin, refused)) == len(pi.expected)  # 6, 7 with the image
    lines = he.log_lines_about_us(refused)
    assert len(lines) == 12 and all("Unable to parse origin information" in line for line in lines)
    assert not any("aiohttp_fast_zlib" in line for line in lines)


def test_the_table_has_one_line_per_entity_with_state_unit_and_attributes(pis):
    rows = he.table_rows(pis[0].expected, recorded("live")["states"])
    assert [r["entity_id"] for r in rows] == [e.entity_id for e in pis[0].expected]
    by_id = {r["entity_id"]: r for r in rows}
    assert by_id[pis[0].entity_id("fps")]["unit"] == "fps"
    assert set(by_id[pis[0].entity_id("gender")]["attributes"]) == {"confidence", "track"}
    lines = he.table_lines(rows)
    assert len(lines) == 6 and lines[3].split()[0] == pis[0].entity_id("fps")


def test_repairs_of_the_mqtt_integration_are_reported():
    issues = [{"domain": "mqtt", "issue_id": "deprecated_x", "translation_key": "deprecated_yaml",
               "translation_placeholders": {"x": 1}}, {"domain": "backup", "issue_id": "y"}]
    assert he.repair_problems(issues) == ["repair issue mqtt.deprecated_x: deprecated_yaml {'x': 1}"]


@pytest.mark.parametrize("text, slug", [
    ("face-emotion ha-check-pi1 Frame rate", "face_emotion_ha_check_pi1_frame_rate"),
    ("face-emotion kitchen.pi Someone in view", "face_emotion_kitchen_pi_someone_in_view")])
def test_slugify_as_home_assistant_derives_entity_ids(text, slug):
    assert he.slugify(text) == slug


def test_the_docs_dashboard_card_names_only_entities_our_discovery_announces():
    """docs/home-assistant.md's card, for its example client id and for ha-check's second Pi (make ha-check
    --card-screenshot renders it in Home Assistant): a renamed entity would show "Entity not available"."""
    from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
    from edge.outputs.mqtt import MqttSettings, Topics, discovery_configs

    page = (Path(__file__).resolve().parent.parent / "docs" / "home-assistant.md").read_text()
    card = he.dashboard_card(page)
    labels = {"emotion": EMOTION_LABELS, "gender": GENDER_LABELS}
    kitchen = he.expected_entities(discovery_configs(Topics(MqttSettings(), "kitchen"), labels, image="face"))
    assert he.card_problems(card, kitchen) == []
    assert "image.face_emotion_kitchen_last_face" in card and "sensor.face_emotion_kitchen_emotion" in card
    assert he.card_problems(card.replace("_someone_in_view", "_someone"), kitchen) == [
        "the card names binary_sensor.face_emotion_kitchen_someone, which our discovery does not announce"]
    pi2 = announced("ha-check-pi2")
    assert he.card_problems(he.dashboard_card(page, "ha-check-pi2", "frame"), pi2.expected) == []
