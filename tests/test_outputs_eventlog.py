"""Event log: JSON lines of label changes per track, driven by real pipeline results on the committed photos."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import types
from datetime import datetime

import cv2
import pytest

from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
from edge.outputs.base import OutputError
from edge.outputs.eventlog import EventLogOutput, EventLogSettings
from edge.outputs.registry import OutputsSettings, build_outputs
from tests.conftest import Clock, run_photo


@pytest.fixture(scope="module")
def pipeline(pipeline_factory):
    return pipeline_factory()


@pytest.fixture(scope="module")
def two_people(pipeline, samples):
    image, result = run_photo(pipeline, samples / "two_people.jpg")
    assert len(result.faces) >= 2 and all(f.track is not None for f in result.faces)
    return image, result


@pytest.fixture(scope="module")
def no_face(pipeline, samples, two_people):
    """A real frame without a face, numbered as if it followed the two_people frames in the same stream."""
    image, result = run_photo(pipeline, samples / "chelsea.jpg", frames=1)
    assert result.faces == []
    return image, dataclasses.replace(result, index=two_people[1].index + 1)


def started(settings: EventLogSettings | None = None, clock: Clock | None = None, env=None, **kwargs):
    stream = io.StringIO()
    output = EventLogOutput(settings or EventLogSettings(), stream=stream, clock=clock or Clock(50.0),
                            env={} if env is None else env, **kwargs)
    output.start()
    return output, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def relabel(face, emotion=None, gender=None):
    face = dataclasses.replace(face)
    if emotion is not None:
        conf = face.emotion_confidence
        face = dataclasses.replace(face, emotion=emotion, emotion_scores={
            e: conf if e == emotion else (1 - conf) / 6 for e in EMOTION_LABELS})
    if gender is not None:
        face = dataclasses.replace(face, gender=gender, gender_scores={g: float(g == gender) for g in GENDER_LABELS})
    return face


def test_each_new_track_is_one_line_with_the_pipeline_labels(two_people):
    image, result = two_people
    clock = Clock(50.0)
    output, stream = started(clock=clock)
    output.update(image, result)
    events = lines(stream)
    assert [e["event"] for e in events] == ["track_new"] * len(result.faces)
    for event, face in zip(events, result.faces):
        assert event["track"] == face.track
        assert event["emotion"] == face.emotion and event["gender"] == face.gender
        assert event["confidence"] == pytest.approx(face.emotion_confidence, abs=1e-4)
        assert event["gender_confidence"] == pytest.approx(face.gender_confidence, abs=1e-4)
        assert event["box"] == list(face.box)
        assert event["frame"] == result.index
        assert event["mono"] == clock.t
        assert datetime.fromisoformat(event["time"]).tzinfo is not None  # ISO-8601 with its offset


def test_a_stable_scene_logs_nothing_more(two_people, pipeline, samples):
    image, result = run_photo(pipeline, samples / "two_people.jpg")
    output, stream = started()
    output.update(image, result)
    count = len(lines(stream))
    for _ in range(50):
        output.update(image, result)
    for i in range(3, 6):  # further real frames: the same tracks, the same smoothed labels
        fresh = pipeline.process(image, now=i / 15)
        assert [(f.track, f.emotion, f.gender) for f in fresh.faces] == \
            [(f.track, f.emotion, f.gender) for f in result.faces], "precondition: stable tracks and labels"
        output.update(image, fresh)
    assert len(lines(stream)) == count


def test_a_label_change_is_logged_once_with_the_previous_labels(two_people):
    image, result = two_people
    output, stream = started()
    output.update(image, result)
    face = result.faces[0]
    emotion = next(e for e in EMOTION_LABELS if e != face.emotion)
    gender = next(g for g in GENDER_LABELS if g != face.gender)
    changed = dataclasses.replace(result, faces=[relabel(face, emotion=emotion), *result.faces[1:]])
    for _ in range(5):
        output.update(image, changed)
    both = dataclasses.replace(result, faces=[relabel(face, emotion=emotion, gender=gender), *result.faces[1:]])
    output.update(image, both)
    events = lines(stream)[len(result.faces):]
    assert [(e["event"], e["track"], e["emotion"], e["gender"]) for e in events] == [
        ("label_change", face.track, emotion, face.gender),
        ("label_change", face.track, emotion, gender),
    ]
    assert events[0]["previous"] == {"emotion": face.emotion, "gender": face.gender}
    assert events[1]["previous"] == {"emotion": emotion, "gender": face.gender}


def test_a_track_is_lost_after_lost_after_s_without_it(two_people, no_face):
    image, result = two_people
    empty_image, empty = no_face
    clock = Clock(50.0)
    output, stream = started(EventLogSettings(lost_after_s=1.0), clock)
    output.update(image, result)
    clock.t += 0.9
    output.update(empty_image, empty)
    assert [e["event"] for e in lines(stream)] == ["track_new"] * len(result.faces)
    clock.t += 0.2
    output.update(empty_image, empty)
    lost = lines(stream)[len(result.faces):]
    assert [(e["event"], e["track"], e["reason"]) for e in lost] == [
        ("track_lost", f.track, "gone") for f in result.faces]
    assert all(e["mono"] == clock.t for e in lost)
    output.update(empty_image, empty)
    assert len(lines(stream)) == 2 * len(result.faces)


def test_one_track_leaving_while_the_other_stays(two_people):
    image, result = two_people
    clock = Clock(50.0)
    output, stream = started(EventLogSettings(lost_after_s=1.0), clock)
    output.update(image, result)
    only_first = dataclasses.replace(result, faces=result.faces[:1])
    for _ in range(3):
        clock.t += 0.5
        output.update(image, only_first)
    lost = [e for e in lines(stream) if e["event"] == "track_lost"]
    assert [e["track"] for e in lost] == [f.track for f in result.faces[1:]]
    assert lost[0]["duration_s"] == 0.0


def test_a_pipeline_restart_ends_the_old_tracks(two_people, pipeline, samples):
    image, result = two_people
    output, stream = started()
    output.update(image, result)
    other_image, restarted = run_photo(pipeline, samples / "astronaut.jpg", frames=1)  # reset: index 0, track 1
    output.update(other_image, restarted)
    events = lines(stream)[len(result.faces):]
    assert [(e["event"], e["reason"]) for e in events[:len(result.faces)]] == \
        [("track_lost", "restart")] * len(result.faces)
    assert events[-1]["event"] == "track_new" and events[-1]["track"] == restarted.faces[0].track


def test_close_reports_remaining_tracks_as_stopped(two_people):
    image, result = two_people
    output, stream = started()
    output.update(image, result)
    output.close()
    stopped = lines(stream)[len(result.faces):]
    assert [(e["event"], e["track"], e["reason"]) for e in stopped] == [
        ("track_lost", f.track, "stopped") for f in result.faces]
    output.close()
    assert len(lines(stream)) == 2 * len(result.faces)


def test_untracked_photos_give_one_face_line_each(pipeline, samples):
    image = cv2.imread(str(samples / "two_people.jpg"))
    result = pipeline.process(image, independent=True)
    assert result.faces and all(f.track is None for f in result.faces)
    output, stream = started()
    output.update(image, result)
    events = lines(stream)
    assert [(e["event"], e["track"], e["emotion"]) for e in events] == [
        ("face", None, f.emotion) for f in result.faces]


def test_stdout_by_default(two_people, capsys):
    image, result = two_people
    output = EventLogOutput(EventLogSettings(), env={})
    output.start()
    output.update(image, result)
    output.close()
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in out] == ["track_new"] * len(result.faces) + ["track_lost"] * len(result.faces)


def test_a_file_is_appended_to(two_people, tmp_path):
    image, result = two_people
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "earlier"}\n')
    output = EventLogOutput(EventLogSettings(path=str(path)), env={})
    output.start()
    output.update(image, result)
    output.close()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert events[0] == {"event": "earlier"}
    assert [e["event"] for e in events[1:]] == ["track_new"] * len(result.faces) + ["track_lost"] * len(result.faces)


def test_an_unwritable_path_is_one_clear_error(tmp_path):
    path = tmp_path / "missing" / "events.jsonl"
    with pytest.raises(OutputError, match=rf"^event log: cannot open {path} \(No such file or directory\)$"):
        EventLogOutput(EventLogSettings(path=str(path)), env={}).start()


@pytest.fixture
def fake_journal(monkeypatch):
    """systemd.journal as python3-systemd provides it: ``send(MESSAGE, **fields)``; records what was sent."""
    sent: list[tuple[str, dict]] = []
    journal = types.ModuleType("systemd.journal")
    journal.send = lambda message, **fields: sent.append((message, fields))
    package = types.ModuleType("systemd")
    package.journal = journal
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", journal)
    return sent


def test_under_systemd_events_go_to_the_journal_and_not_twice_to_stdout(two_people, fake_journal, capsys):
    image, result = two_people
    output = EventLogOutput(EventLogSettings(), env={"INVOCATION_ID": "abc", "JOURNAL_STREAM": "8:123"})
    output.start()
    output.update(image, result)
    assert capsys.readouterr().out == ""
    assert len(fake_journal) == len(result.faces)
    for (message, fields), face in zip(fake_journal, result.faces):
        assert message == f"track_new track {face.track}: {face.emotion} {face.emotion_confidence:.2f} / {face.gender}"
        assert fields["SYSLOG_IDENTIFIER"] == "face-emotion"
        assert fields["FACE_EVENT"] == "track_new"
        assert fields["FACE_TRACK"] == str(face.track)
        assert fields["FACE_EMOTION"] == face.emotion and fields["FACE_GENDER"] == face.gender
        assert json.loads(fields["FACE_BOX"]) == list(face.box)
        assert all(key.isupper() for key in fields)


def test_not_under_systemd_the_journal_is_left_alone(two_people, fake_journal, capsys):
    image, result = two_people
    output = EventLogOutput(EventLogSettings(), env={})
    output.start()
    output.update(image, result)
    assert fake_journal == []
    assert len(capsys.readouterr().out.splitlines()) == len(result.faces)


def test_journal_off_by_config(two_people, fake_journal):
    image, result = two_people
    output, stream = started(EventLogSettings(journal=False), env={"INVOCATION_ID": "abc"})
    output.update(image, result)
    assert fake_journal == [] and len(lines(stream)) == len(result.faces)


def test_no_face_image_is_written_unless_asked(two_people, tmp_path, monkeypatch):
    image, result = two_people
    monkeypatch.chdir(tmp_path)
    output, _ = started()
    output.update(image, result)
    changed = dataclasses.replace(result, faces=[relabel(result.faces[0], emotion="sad" if
                                                         result.faces[0].emotion != "sad" else "angry")])
    output.update(image, changed)
    output.close()
    assert output.saved_faces == []
    assert list(tmp_path.rglob("*")) == []


def test_save_faces_dir_keeps_a_crop_per_new_track_and_label_change_only(two_people, tmp_path):
    image, result = two_people
    folder = tmp_path / "faces"
    output, stream = started(EventLogSettings(save_faces_dir=str(folder)))
    for _ in range(5):
        output.update(image, result)
    face = result.faces[0]
    other = next(e for e in EMOTION_LABELS if e != face.emotion)
    output.update(image, dataclasses.replace(result, faces=[relabel(face, emotion=other), *result.faces[1:]]))
    files = sorted(folder.iterdir())
    assert len(files) == len(result.faces) + 1 == len(output.saved_faces)
    changed = [p for p in files if "_change_" in p.name]
    assert len(changed) == 1 and f"track{face.track}_change_{other}_{face.gender}" in changed[0].name
    crop = cv2.imread(str(changed[0]))
    x, y, w, h = face.box
    assert crop.shape[:2] == (h, w)
    # the saved crop is that face's pixels (JPEG: close, not identical)
    assert abs(float(crop.mean()) - float(image[y:y + h, x:x + w].mean())) < 3


def test_build_outputs_starts_the_event_log_by_default(two_people, capsys, monkeypatch):
    image, result = two_people
    for key in ("INVOCATION_ID", "JOURNAL_STREAM"):
        monkeypatch.delenv(key, raising=False)
    settings = OutputsSettings(leds=dataclasses.replace(OutputsSettings().leds, enabled=False))
    outputs = build_outputs(settings)
    assert [o.name for o in outputs] == ["event log"]
    outputs[0].update(image, result)
    assert len(capsys.readouterr().out.splitlines()) == len(result.faces)
    outputs[0].close()


def test_the_service_log_and_the_event_log_share_one_systemd_check(fake_journal, monkeypatch):
    """One function decides "under systemd, with python3-systemd" (edge.service.notify.load_journal): the daemon's log
    handler goes to the journal exactly when the event log's entries do."""
    import logging

    from edge.outputs import eventlog
    from edge.service import daemon, notify

    assert daemon.load_journal is eventlog.load_journal is notify.load_journal
    made: list[dict] = []

    class JournalHandler(logging.Handler):  # python3-systemd's, as far as setup_logging uses it
        def __init__(self, **fields):
            super().__init__()
            made.append(fields)

    monkeypatch.setattr(sys.modules["systemd.journal"], "JournalHandler", JournalHandler, raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for env, journal in (({"INVOCATION_ID": "abc"}, True), ({"JOURNAL_STREAM": "8:1"}, True), ({}, False)):
            monkeypatch.delenv("INVOCATION_ID", raising=False)
            monkeypatch.delenv("JOURNAL_STREAM", raising=False)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            daemon.setup_logging("INFO")
            assert isinstance(root.handlers[0], JournalHandler) is journal
            events = EventLogOutput(EventLogSettings(), env=env)
            events.start()
            assert (events.journal is not None) is journal
            events.close()
        assert made == [{"SYSLOG_IDENTIFIER": "face-emotion"}] * 2
    finally:
        root.handlers[:], root.level = saved
