"""MQTT output against a real Mosquitto broker started on a free loopback port, fed real pipeline results.

Needs Debian's ``mosquitto`` (and ``mosquitto_passwd``, same package) and the
pip package paho-mqtt (the ``dev``/``mqtt`` extras); each test that needs a
broker is skipped with one line without them. The daemon tests run
``python -m edge run`` as a process on a short video of the committed photos,
with a real ``NOTIFY_SOCKET`` counting its watchdog pings.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from test_daemon import NotifySocket  # sibling test modules: pytest puts tests/ on sys.path
from test_outputs_liveview import wait_for as wait_until

from edge.outputs.mqtt import MqttSettings
from edge.outputs.registry import OutputsSettings, build_outputs
from edge.settings import ConfigError

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60.0  # an upper bound for conditions to come true on a loaded machine, not a timing assertion
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto missing (apt-get install mosquitto)")

try:
    import paho.mqtt.client as paho
except ImportError:  # pragma: no cover - the dev extra installs it
    paho = None
needs_paho = pytest.mark.skipif(paho is None, reason="paho-mqtt missing (pip install 'pi-face-emotion[mqtt]')")

# Home Assistant's MQTT integration, "MQTT Sensor" and "MQTT Binary sensor" configuration variables
# (home-assistant.io/integrations/sensor.mqtt/ and binary_sensor.mqtt/), and the device map's keys.
HA_COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "payload_available", "payload_not_available", "platform", "qos", "state_topic", "unique_id",
    "value_template",
}
HA_SENSOR = HA_COMMON | {"last_reset_value_template", "options", "suggested_display_precision", "state_class",
                         "unit_of_measurement"}
HA_BINARY_SENSOR = HA_COMMON | {"off_delay", "payload_off", "payload_on"}
# "MQTT Image" (home-assistant.io/integrations/image.mqtt/; homeassistant/components/mqtt/image.py 2025.4):
# no state topic; raw image bytes on image_topic (image_encoding only for "b64"), content_type defaults to image/jpeg
HA_IMAGE = (HA_COMMON - {"state_topic", "value_template", "device_class", "expire_after", "force_update"}) | {
    "content_type", "image_encoding", "image_topic", "url_template", "url_topic"}
HA_ORIGIN = {"name", "sw_version", "support_url"}  # the discovery "origin" map (name required)
HA_DEVICE = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
             "name", "serial_number", "suggested_area", "sw_version", "via_device"}
HA_SENSOR_DEVICE_CLASSES = {"enum", "duration", "temperature"}  # the ones used here, all documented
HA_BINARY_DEVICE_CLASSES = {"occupancy", "presence", "motion"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = WAIT_S):
    return wait_until(condition, what, timeout)


class Broker:
    """A real mosquitto on 127.0.0.1:<port>; stop() and start() again on the same port (a broker restart)."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: dict[str, Path] | None = None,
                 extra: tuple[str, ...] = ()):
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen | None = None
        # As root, mosquitto would switch to the "mosquitto" user, who cannot read pytest's private tmp dirs.
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}"]
        if users:
            passwd = folder / "passwd"
            passwd.touch()
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                               capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        lines += [f"{key} {path}" for key, path in (tls or {}).items()]  # cafile, certfile, keyfile
        lines += extra
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"

    def start(self) -> Broker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=open(self.log, "ab"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)

        def accepting() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(accepting, "mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto missing (apt-get install mosquitto)")
    made = Broker(tmp_path).start()
    yield made
    made.stop()


class Subscriber:
    """A paho client subscribed to ``#``: every message with its retain flag, in order of arrival."""

    def __init__(self, port: int):
        api = getattr(paho, "CallbackAPIVersion", None)
        self.client = paho.Client(api.VERSION2) if api else paho.Client()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload, bool(m.retain)))
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(WAIT_S), "subscriber could not subscribe"

    def on(self, suffix: str) -> list[bytes]:
        return [p for t, p, _ in list(self.messages) if t.endswith(suffix)]

    def json_on(self, suffix: str) -> list[dict]:
        return [json.loads(p) for p in self.on(suffix) if p]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscribe():
    made: list[Subscriber] = []

    def start(port: int) -> Subscriber:
        made.append(Subscriber(port))
        return made[-1]

    yield start
    for sub in made:
        sub.close()


def mqtt_section(port: int, **extra) -> str:
    keys = dict(enabled=True, host="127.0.0.1", port=port, client_id="testpi", health_interval_s=1.0) | extra
    return "[outputs.mqtt]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())


def write_config(path: Path, video: Path, mqtt: str) -> Path:
    path.write_text(f"""
[camera]
source = "opencv"
device = "{video}"
loop = true
fps = 15.0

[models]
dir = "{ROOT / 'models'}"

[outputs.leds]
enabled = false

[outputs.event_log]
enabled = false

{mqtt}""")
    return path


class Notify(NotifySocket):
    """test_daemon's real NOTIFY_SOCKET receiver, counting the WATCHDOG=1 pings (one per processed frame)."""

    def pings(self) -> int:
        return sum(1 for _, m in list(self.messages) if m == "WATCHDOG=1")

    def seen(self, message: str) -> bool:
        return any(m == message for _, m in list(self.messages))


class EdgeProcess:
    """``python -m edge run`` on a config, with stderr collected in a file and a notify socket."""

    def __init__(self, tmp_path: Path, config: Path):
        self.notify = Notify(tmp_path / "notify.sock")
        self.stderr_path = tmp_path / "edge.stderr"
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # keeps a paho 1.6 there
        env = dict(os.environ, PYTHONPATH=path, NOTIFY_SOCKET=str(self.notify.path))
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(self.stderr_path, "w"))  # noqa: SIM115

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def ready(self) -> None:
        wait_for(lambda: self.notify.seen("READY=1") or self.proc.poll() is not None, "READY=1")
        assert self.proc.poll() is None, self.stderr

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.notify.close()


@pytest.fixture
def edge_process(tmp_path):
    made: list[EdgeProcess] = []

    def start(config: Path) -> EdgeProcess:
        made.append(EdgeProcess(tmp_path, config))
        return made[-1]

    yield start
    for proc in made:
        proc.stop()


def only(mqtt: MqttSettings) -> OutputsSettings:
    """Outputs settings with only the MQTT section (no LEDs, no event log)."""
    quiet = OutputsSettings()
    return OutputsSettings(mqtt=mqtt, leds=dataclasses.replace(quiet.leds, enabled=False),
                           event_log=dataclasses.replace(quiet.event_log, enabled=False))


def real_results(pipeline_factory, samples):
    """(image, result) pairs from the photos: two tracked faces, then an empty scene (chelsea, a cat)."""
    pipeline = pipeline_factory()
    people = cv2.imread(str(samples / "two_people.jpg"))
    cat = cv2.imread(str(samples / "chelsea.jpg"))
    pairs = [(people, pipeline.process(people, now=i / 15)) for i in range(3)]
    pairs += [(cat, pipeline.process(cat, now=(3 + i) / 15)) for i in range(2)]
    assert len(pairs[0][1].faces) >= 2 and not pairs[-1][1].faces
    return pairs


# -- settings and discovery (no broker) ---------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    (dict(enabled=True), "host: the MQTT output needs"),
    (dict(password="x"), "username: a password needs a username"),
    (dict(username="u", password="x", password_file="/etc/p"), "password_file: give password or"),
    (dict(tls_ca="/etc/ca.pem"), "tls: tls_ca/tls_cert/tls_key are set but tls = false"),
    (dict(tls=True, tls_cert="/c.pem"), "tls_key: a client certificate needs both"),
    (dict(topic_prefix="home/#"), "topic_prefix: 'home/#' must not contain"),
    (dict(topic_prefix="x" * 70000), "topic_prefix: 70000 bytes; at most 128"),
    (dict(client_id="p" * 200), "client_id: 200 bytes; at most 128"),
    (dict(topic_prefix="$SYS/face"), r"topic_prefix: '\$SYS/face' must not start with \$"),
    (dict(discovery_prefix="$share"), r"discovery_prefix: '\$share' must not start with \$"),
    (dict(topic_prefix="home\nx"), r"topic_prefix: 'home\\nx' has control characters"),
    (dict(qos=3), "qos: 3 is not 0, 1 or 2"),
    (dict(max_state_rate=0.0), "max_state_rate: 0.0 is outside"),
    (dict(image_content="crop"), "image_content: 'crop' is not one of face, frame"),
    (dict(image_interval_s=0.1), "image_interval_s: 0.1 is outside 1..86400"),
])
def test_bad_settings_are_one_line_naming_the_key(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        MqttSettings(**settings).validate()


def test_discovery_configs_use_only_the_fields_home_assistant_documents():
    from edge import __version__
    from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
    from edge.outputs.mqtt import Topics, discovery_configs

    topics = Topics(MqttSettings(), "kitchen.pi")
    configs = discovery_configs(topics, {"emotion": EMOTION_LABELS, "gender": GENDER_LABELS})
    by_key = {topic.split("/")[-2]: (topic, config) for topic, config in configs.items()}
    assert set(by_key) == {"faces", "emotion", "gender", "fps", "latency", "someone"}
    unique_ids = set()
    for topic, config in by_key.values():
        prefix, component, node, object_id, last = topic.split("/")
        # <discovery_prefix>/<component>/<node_id>/<object_id>/config, ids from [a-zA-Z0-9_-]
        assert (prefix, last, node) == ("homeassistant", "config", "kitchen_pi")
        assert object_id.replace("_", "").replace("-", "").isalnum()
        allowed = (HA_BINARY_SENSOR if component == "binary_sensor" else HA_SENSOR) | {"origin"}
        assert set(config) <= allowed, set(config) - allowed
        # Home Assistant drops a config whose origin lacks its name (make ha-check saw it: "Unable to parse origin")
        assert set(config["origin"]) <= HA_ORIGIN and config["origin"]["name"] == "pi-face-emotion"
        assert config["origin"]["sw_version"] == __version__
        assert {"name", "unique_id", "state_topic", "device", "availability_topic"} <= set(config)
        assert set(config["device"]) <= HA_DEVICE
        assert config["device"]["identifiers"] == ["face_emotion_kitchen_pi"]
        assert config["device"]["sw_version"] == __version__
        assert config["state_topic"].startswith("face-emotion/kitchen.pi/")
        assert config["availability_topic"] == "face-emotion/kitchen.pi/availability"
        assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
        classes = HA_BINARY_DEVICE_CLASSES if component == "binary_sensor" else HA_SENSOR_DEVICE_CLASSES
        assert config.get("device_class", "enum") in classes
        if config.get("device_class") == "enum":  # HA: an enum sensor lists its states; no unit, no state_class
            assert "options" in config and "unit_of_measurement" not in config and "state_class" not in config
        unique_ids.add(config["unique_id"])
    assert len(unique_ids) == len(configs)
    assert len(configs) == 6  # no image entity unless publish_images
    assert by_key["someone"][0].split("/")[1] == "binary_sensor"
    assert set(by_key["emotion"][1]["options"]) == {*EMOTION_LABELS, "none"}
    assert by_key["latency"][1]["unit_of_measurement"] == "ms"  # a unit HA accepts for device_class duration
    # The scores as attributes of the enum sensors, read from the state topic.
    for key, score in (("emotion", "emotion_confidence"), ("gender", "gender_confidence")):
        config = by_key[key][1]
        assert config["json_attributes_topic"] == config["state_topic"] == "face-emotion/kitchen.pi/state"
        assert f"'confidence': value_json.{score}" in config["json_attributes_template"]


def test_the_image_entity_uses_home_assistants_image_keys_and_is_removable():
    from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
    from edge.outputs.mqtt import Topics, discovery_configs
    from edge.outputs.mqtt.discovery import discovery_topics

    topics = Topics(MqttSettings(), "kitchen.pi")
    labels = {"emotion": EMOTION_LABELS, "gender": GENDER_LABELS}
    plain = discovery_configs(topics, labels)
    for content, name in (("face", "Last face"), ("frame", "Last frame")):
        configs = discovery_configs(topics, labels, image=content)
        extra = {t: c for t, c in configs.items() if t not in plain}
        assert list(extra) == ["homeassistant/image/kitchen_pi/image/config"]
        config = extra["homeassistant/image/kitchen_pi/image/config"]
        assert set(config) <= HA_IMAGE | {"origin"}, set(config) - HA_IMAGE
        assert config["image_topic"] == "face-emotion/kitchen.pi/image" and config["content_type"] == "image/jpeg"
        assert "image_encoding" not in config  # raw JPEG bytes, as the output publishes them
        assert config["name"] == name and config["device"] == plain[next(iter(plain))]["device"]
    # removal (discovery = false, the cleanup) empties the image entity's config too, whatever the settings
    assert set(discovery_topics(topics)) == set(plain) | {"homeassistant/image/kitchen_pi/image/config"}


def test_cpu_temperature_reads_the_cpu_zone(tmp_path):
    from edge.outputs.mqtt import cpu_temperature

    for i, (kind, milli) in enumerate([("gpu-thermal", "39000"), ("cpu-thermal", "48312")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert cpu_temperature(tmp_path) == 48.3
    assert cpu_temperature(tmp_path / "absent") is None


# -- in-process output against the broker --------------------------------------------------------------


@needs_broker
@needs_paho
def test_state_events_rate_and_no_images_unless_asked(broker, subscribe, pipeline_factory, samples):
    from edge.outputs.mqtt import MqttOutput

    pairs = real_results(pipeline_factory, samples)
    sub = subscribe(broker.port)
    output = MqttOutput(MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, client_id="rate",
                                     max_state_rate=2.0))
    output.start()
    assert output.connected.is_set() and output.fatal is None
    start = time.monotonic()
    for _ in range(5):  # faces, empty, faces, ...: each update changes the state; 20 updates in about 0.5 s
        for image, result in (pairs[2], pairs[-1]):
            output.update(image, result)
            time.sleep(0.025)
    last = pairs[-1][1]
    output.update(pairs[-1][0], last)
    wait_for(lambda: sub.json_on("/rate/state") and sub.json_on("/rate/state")[-1]["frame"] == last.index,
             "the last state")
    elapsed = time.monotonic() - start
    states = sub.json_on("/rate/state")
    print(f"{len(states)} state message(s) in {elapsed:.2f} s for 21 changing frames at max_state_rate 2")
    assert len(states) <= 2.0 * elapsed + 2  # at most max_state_rate a second (+ the first and the trailing one)
    assert states[-1]["faces"] == 0 and states[-1]["emotion"] is None  # the last scene is never lost
    events = sub.json_on("/rate/events")
    assert [e["event"] for e in events[:2]] == ["track_new", "track_new"]
    assert {e["track"] for e in events[:2]} == {f.track for f in pairs[2][1].faces}
    output.close()
    output.close()  # safe twice
    wait_for(lambda: sub.on("/rate/availability")[-1:] == [b"offline"], "offline on a clean close")
    assert any(e["event"] == "track_lost" for e in sub.json_on("/rate/events"))
    assert not sub.on("/rate/image")  # no face image unless publish_images = true
    assert sub.on("homeassistant/image/rate/image/config") == [b""]  # nor an image entity (a stale one removed)


def _face_arrivals(pairs, frames: int, step_s: float):
    """(clock, image, result): the two faces, then the cat, ``step_s`` apart, so both faces are lost (event log:
    after 1 s) and come back as new tracks on every second frame; frame numbers keep rising."""
    (people, with_faces), (cat, empty) = pairs[0], pairs[-1]
    return [(i * step_s, *((people, with_faces) if i % 2 == 0 else (cat, empty))) for i in range(frames)]


@needs_broker
@needs_paho
@pytest.mark.parametrize("interval_s, expected", [(10.0, 4), (1.0, 12)])
def test_publish_images_sends_at_most_one_jpeg_per_interval_and_the_image_entity(
        broker, subscribe, pipeline_factory, samples, interval_s, expected):
    """24 frames 1.5 s apart on a fake clock: new faces on 12 of them (t = 0, 3, ... 33 s). At most one image per
    ``image_interval_s``, the newest waiting one next: with 10 s, at t = 0, 10.5 (the one waiting since 9),
    21 and 31.5 (waiting since 30): 4 images; with 1 s, one per arrival: 12."""
    from edge.outputs.mqtt import MqttOutput

    pairs = real_results(pipeline_factory, samples)
    now = [0.0]
    sub = subscribe(broker.port)
    settings = MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, client_id="img", publish_images=True,
                            image_interval_s=interval_s)
    with MqttOutput(settings, clock=lambda: now[0]) as output:
        for i, (clock, image, result) in enumerate(_face_arrivals(pairs, 24, 1.5)):
            now[0] = clock
            output.update(image, dataclasses.replace(result, index=i))
    images = wait_for(lambda: len(sub.on("/img/image")) >= expected and sub.on("/img/image"), "the images")
    time.sleep(0.5)  # anything more would have come with them: close() flushed the queue
    images = sub.on("/img/image")
    print(f"{len(images)} images for 12 face arrivals over 34.5 s at image_interval_s = {interval_s:g}")
    assert len(images) == expected
    widths = {int(f.box[2]) for f in pairs[0][1].faces}
    for jpeg in images:
        decoded = cv2.imdecode(__import__("numpy").frombuffer(jpeg, "uint8"), cv2.IMREAD_COLOR)
        assert decoded is not None and decoded.shape[1] in widths  # a face crop, JPEG
    config = json.loads(sub.on("homeassistant/image/img/image/config")[-1])
    assert config["image_topic"] == "face-emotion/img/image" and config["name"] == "Last face"


@needs_broker
@needs_paho
def test_the_image_can_be_the_annotated_frame(broker, subscribe, pipeline_factory, samples):
    """Of a photo folder's frame too: its faces have no track (no track_new), each is a "face" event."""
    from edge.frame.annotate import annotate
    from edge.outputs.mqtt import MqttOutput

    image, result = real_results(pipeline_factory, samples)[0]
    result = dataclasses.replace(result, faces=[dataclasses.replace(f, track=None) for f in result.faces])
    sub = subscribe(broker.port)
    with MqttOutput(MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, client_id="frame",
                                 publish_images=True, image_content="frame")) as output:
        output.update(image, result)
        jpeg = wait_for(lambda: sub.on("/frame/image"), "the frame image")[0]
    decoded = cv2.imdecode(__import__("numpy").frombuffer(jpeg, "uint8"), cv2.IMREAD_COLOR).astype(float)
    assert decoded.shape == image.shape
    drawn = annotate(image, result).astype(float)
    overlay = abs(drawn - image).max(axis=2) > 60  # the boxes and labels
    assert overlay.sum() > 1000
    # where the overlay is, the JPEG shows it: far closer to the annotated frame than to the camera's
    assert abs(decoded - drawn)[overlay].mean() < abs(decoded - image)[overlay].mean() / 3
    assert json.loads(sub.on("homeassistant/image/frame/image/config")[-1])["name"] == "Last frame"


@needs_paho
def test_the_queue_drops_the_oldest_while_the_broker_is_away(pipeline_factory, samples, caplog):
    from edge.outputs.mqtt import MqttOutput

    pairs = real_results(pipeline_factory, samples)
    clock = [100.0]
    output = MqttOutput(MqttSettings(enabled=True, host="127.0.0.1", port=free_port(), client_id="away",
                                     queue_size=10), clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING):
        output.start()  # nobody listens on that port: not fatal, retried in the background
    assert output.fatal is None and not output.connected.is_set()
    assert sum("cannot connect to 127.0.0.1" in r.getMessage() for r in caplog.records) == 1
    faces = len(pairs[0][1].faces)
    for round_ in range(8):  # each round: the faces appear (track_new each), then leave (track_lost each)
        for i, (image, result) in enumerate(pairs):
            if i == 3:
                clock[0] += 2.0  # longer than lost_after_s: the empty frames end the tracks
            output.update(image, dataclasses.replace(result, index=result.index + 10 * round_))
            clock[0] += 0.1
    assert output.dropped == 8 * 2 * faces - 10  # every event beyond the newest 10 was dropped and counted
    assert len(output.queue) == 10
    newest = json.loads(output.queue[-1][1])
    assert newest["event"] == "track_lost"
    output.close()


@needs_broker
@needs_paho
def test_disabling_removes_the_home_assistant_entities(broker, subscribe, pipeline_factory, samples, caplog):
    from edge.outputs.mqtt import MqttOutput

    settings = MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, client_id="gone")
    with MqttOutput(settings) as output:
        output.update(*real_results(pipeline_factory, samples)[0])
    retained = subscribe(broker.port)
    configs = wait_for(lambda: len([t for t, p, r in retained.messages if r and t.startswith("homeassistant/")]) == 6
                       and [t for t, p, r in retained.messages if r and t.startswith("homeassistant/")],
                       "the six retained discovery configs")
    with caplog.at_level(logging.INFO):
        outputs = build_outputs(only(dataclasses.replace(settings, enabled=False)))
        assert outputs == []
        wait_for(lambda: all(b"" in retained.on(topic) for topic in configs), "empty payloads on every config")
        wait_for(lambda: any("removed the Home Assistant entities of gone" in r.getMessage()
                             for r in caplog.records), "the cleanup's log line")
    for output in outputs:
        output.close()
    fresh = subscribe(broker.port)
    time.sleep(1.0)  # retained messages arrive right after subscribing; none may be left for this device
    assert [t for t, _, r in fresh.messages if r and ("gone" in t)] == []


@needs_broker
@needs_paho
def test_a_refused_login_and_tls_mistakes_are_one_line_and_leave_the_output_out(tmp_path, subscribe, caplog):
    broker = Broker(tmp_path, users={"pi": "right"}).start()
    try:
        base = MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, client_id="auth", username="pi")
        secret = tmp_path / "mqtt.password"
        secret.write_text("right\n")
        cases = [
            (dataclasses.replace(base, password="wrong"), "refused the login"),
            (dataclasses.replace(base, password="right", tls=True, tls_ca=str(tmp_path / "nope.pem")),
             f"tls_ca {tmp_path / 'nope.pem'} does not exist"),
            (dataclasses.replace(base, password="right", tls=True), "TLS handshake with 127.0.0.1"),
            (dataclasses.replace(base, password_file=str(tmp_path / "absent")), "cannot read password_file"),
        ]
        for settings, message in cases:
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                outputs = build_outputs(only(settings))
            lines = [r.getMessage() for r in caplog.records]
            print(lines)
            assert outputs == []
            assert len(lines) == 1 and message in lines[0] and lines[0].endswith("; continuing without it")
            assert "Traceback" not in caplog.text
        # The same broker with the right password (from a file): the output runs. The tests above can fail.
        outputs = build_outputs(only(dataclasses.replace(base, password_file=str(secret))))
        mqtt = [o for o in outputs if o.name == "MQTT"]
        assert len(mqtt) == 1 and mqtt[0].connected.is_set()
        for output in outputs:
            output.close()
    finally:
        broker.stop()


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate it signed for 127.0.0.1, and an unrelated second CA (openssl CLI)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=test {name}",
                "-keyout", f"{name}.key", "-out", f"{name}.crt")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return {name: folder / name for name in ("ca.crt", "other-ca.crt", "server.crt", "server.key")}


@needs_broker
@needs_paho
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing (apt-get install openssl)")
def test_tls_verifies_the_broker_and_a_wrong_ca_is_one_line(tmp_path, caplog):
    certs = make_certificates(tmp_path)
    broker = Broker(tmp_path, tls={"cafile": certs["ca.crt"], "certfile": certs["server.crt"],
                                   "keyfile": certs["server.key"]}).start()
    try:
        base = MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, client_id="tls", tls=True)
        with caplog.at_level(logging.WARNING):
            outputs = build_outputs(only(dataclasses.replace(base, tls_ca=str(certs["other-ca.crt"]))))
        lines = [r.getMessage() for r in caplog.records]
        print(lines)
        assert outputs == [] and len(lines) == 1
        assert f"the broker 127.0.0.1:{broker.port} failed TLS verification (" in lines[0]
        assert "check tls_ca" in lines[0]
        outputs = build_outputs(only(dataclasses.replace(base, tls_ca=str(certs["ca.crt"]))))
        assert len(outputs) == 1 and outputs[0].connected.is_set()  # the right CA: connected over TLS
        outputs[0].close()
    finally:
        broker.stop()


# -- the daemon as a process ------------------------------------------------------------------------------


@needs_broker
@needs_paho
def test_the_daemon_announces_publishes_and_its_last_will_says_offline(tmp_path, broker, subscribe, edge_process,
                                                                       pan_video):
    sub = subscribe(broker.port)
    edge = edge_process(write_config(tmp_path / "config.toml", pan_video, mqtt_section(broker.port)))
    edge.ready()
    wait_for(lambda: len([t for t in (m[0] for m in sub.messages) if t.startswith("homeassistant/")]) >= 6,
             "discovery configs")
    wait_for(lambda: sub.on("testpi/availability")[-1:] == [b"online"], "online")
    wait_for(lambda: any(s["faces"] > 0 for s in sub.json_on("testpi/state")), "a state with faces")
    wait_for(lambda: any(e["event"] == "track_new" for e in sub.json_on("testpi/events")), "a track_new event")
    wait_for(lambda: any(h["frames"] > 0 and h["fps"] > 0 for h in sub.json_on("testpi/health")), "health")
    # Every key the discovery templates read is in the payloads they read it from.
    state, health = sub.json_on("testpi/state")[-1], sub.json_on("testpi/health")[-1]
    assert {"faces", "emotion", "gender", "emotion_confidence", "gender_confidence", "fps", "ms_per_frame"} <= set(
        state)
    assert {"uptime_s", "frames", "fps", "ms_per_frame", "paper_ms_per_frame", "x_faster_than_paper", "cpu_temp_c",
            "sent", "dropped"} <= set(health)
    assert health["paper_ms_per_frame"] == 220.0
    configs = {t: json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/") and p}
    for config in configs.values():
        for field in ("value_json.faces", "value_json.fps", "value_json.ms_per_frame", "value_json.emotion",
                      "value_json.gender", "value_json.emotion_confidence", "value_json.gender_confidence",
                      "value_json.track"):
            if field in config["value_template"] + config.get("json_attributes_template", ""):
                source = state if config["state_topic"].endswith("/state") else health
                assert field.split(".")[1] in source, (config["unique_id"], field)
    print(f"state {state}\nhealth {health}")
    edge.proc.send_signal(signal.SIGKILL)  # no clean shutdown: only the broker's last will can say it
    wait_for(lambda: sub.on("testpi/availability")[-1:] == [b"offline"], "the last will")


@needs_broker
@needs_paho
def test_a_broker_restart_is_survived_and_the_frame_loop_never_waits(tmp_path, broker, subscribe, edge_process,
                                                                     pan_video):
    edge = edge_process(write_config(tmp_path / "config.toml", pan_video, mqtt_section(broker.port)))
    edge.ready()
    sub = subscribe(broker.port)
    wait_for(lambda: sub.json_on("testpi/health"), "health before the restart")
    broker.stop()
    sub.close()
    before = edge.notify.pings()
    time.sleep(4.0)  # the broker is away: the daemon keeps processing frames and pinging the watchdog
    during = edge.notify.pings() - before
    broker.start()
    sub = subscribe(broker.port)
    health = wait_for(lambda: [h for h in sub.json_on("testpi/health") if h["reconnects"] >= 1], "health after")
    assert max(h["reconnects"] for h in sub.json_on("testpi/health")) == 1  # one restart, one reconnect
    wait_for(lambda: sub.on("testpi/availability")[-1:] == [b"online"], "online again")
    wait_for(lambda: len([t for t, _, _ in sub.messages if t.startswith("homeassistant/")]) >= 6,
             "discovery again (the broker kept nothing: persistence false)")
    wait_for(lambda: sub.json_on("testpi/state"), "state again")
    print(f"{during} watchdog pings (frames) in 4 s without a broker; health after: {health[-1]}")
    assert during >= 4  # the pan video at 15 fps; at least one frame a second even on a loaded machine
    assert "lost the connection to 127.0.0.1" in edge.stderr
    assert edge.proc.poll() is None


@needs_broker
@needs_paho
def test_the_daemon_keeps_running_without_the_output_after_a_refused_login(tmp_path, edge_process, pan_video):
    broker = Broker(tmp_path, users={"pi": "right"}).start()
    try:
        config = write_config(tmp_path / "config.toml", pan_video,
                              mqtt_section(broker.port, username="pi", password="wrong"))
        edge = edge_process(config)
        edge.ready()
        wait_for(lambda: edge.notify.pings() >= 10, "frames without the output")
        lines = [line for line in edge.stderr.splitlines() if "mqtt" in line.lower()]
        assert len(lines) == 1, lines
        assert f"the broker 127.0.0.1:{broker.port} refused the login" in lines[0]
        assert lines[0].endswith("continuing without it") and "0 output(s)" in edge.stderr
        assert "Traceback" not in edge.stderr
    finally:
        broker.stop()


# -- a broker that accepts and drops at once: backoff, and a line that names the cause ------------------------


def _storm(outputs, seconds: float) -> list[int]:
    for output in outputs:
        output.start()
    time.sleep(seconds)
    counts = [output.reconnects for output in outputs]
    for output in outputs:
        output.close()
    return counts


@needs_broker
@needs_paho
def test_two_pis_with_one_client_id_back_off_and_the_line_names_the_duplicate_id(broker, caplog):
    """Every stock Pi is "raspberrypi": two with one id knock each other off the broker. Before: ~530
    reconnects a second each, the backoff reset by every accepted connection."""
    from edge.outputs.mqtt import MqttOutput

    settings = MqttSettings(enabled=True, host="127.0.0.1", port=broker.port, client_id="raspberrypi")
    with caplog.at_level(logging.WARNING, logger="edge.outputs.mqtt"):
        counts = _storm([MqttOutput(settings), MqttOutput(settings)], 8.0)
    lines = [r.getMessage() for r in caplog.records if "lost the connection" in r.getMessage()]
    print(f"reconnects in 8 s: {counts}; {len(lines)} warning lines")
    assert sum(counts) <= 12  # waits of 1, 2, 4 s (+-20 %) each; before: thousands
    assert len(lines) <= 12
    assert any("another client with the client id 'raspberrypi' is connected" in line for line in lines), lines


@needs_broker
@needs_paho
def test_a_broker_with_a_small_max_packet_size_gets_backoff_and_a_line_naming_it(tmp_path, caplog):
    from edge.outputs.mqtt import MqttOutput

    small = Broker(tmp_path, extra=("max_packet_size 200",)).start()  # discovery configs are ~700 bytes
    try:
        settings = MqttSettings(enabled=True, host="127.0.0.1", port=small.port, client_id="pi1")
        with caplog.at_level(logging.WARNING, logger="edge.outputs.mqtt"):
            counts = _storm([MqttOutput(settings)], 8.0)
    finally:
        small.stop()
    lines = [r.getMessage() for r in caplog.records if "lost the connection" in r.getMessage()]
    print(f"reconnects in 8 s: {counts}; {len(lines)} warning lines")
    assert counts[0] <= 6 and len(lines) <= 6  # before: 28,080 reconnects in 13 s
    assert any("larger than the broker's max_packet_size" in line for line in lines), lines


def test_the_default_client_id_is_the_host_name_and_the_machine_id(tmp_path):
    from edge.outputs.mqtt import MqttOutput, default_client_id

    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text("0f1e2d3c4b5a69788796a5b4c3d2e1f0\n")
    two.write_text("a1b2c3d4e5f60718293a4b5c6d7e8f90\n")
    assert default_client_id("raspberrypi", (one,)) == "raspberrypi-0f1e2d3c"
    assert default_client_id("raspberrypi", (tmp_path / "missing", two)) == "raspberrypi-a1b2c3d4"
    assert default_client_id("raspberrypi", (tmp_path / "missing",)) == "raspberrypi"
    output = MqttOutput(MqttSettings(host="127.0.0.1"))
    assert output.client_id == default_client_id() and output.topics.base == f"face-emotion/{output.client_id}"
    if Path("/etc/machine-id").is_file() and Path("/etc/machine-id").read_text().strip():
        assert output.client_id != socket.gethostname()
