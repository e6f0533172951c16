"""The pipeline on real photos and odd frames: labels, tracks, timings, border faces."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.frame.labels import EMOTION_LABELS, GENDER_LABELS
from edge.frame.pipeline import ModelSettings
from edge.frame.preprocess import FrameError
from edge.frame.stats import PIPELINE_STAGES
from edge.inputs.sources import OpenCVSource


@pytest.fixture(scope="module")
def pipeline(pipeline_factory):
    return pipeline_factory()


def test_every_face_gets_both_labels_scores_and_stage_timings(pipeline, samples):
    result = pipeline.process(cv2.imread(str(samples / "two_people.jpg")), independent=True)
    assert len(result.faces) == 2
    for face in result.faces:
        assert face.emotion in EMOTION_LABELS and face.gender in GENDER_LABELS
        assert set(face.emotion_scores) == set(EMOTION_LABELS)
        assert abs(sum(face.emotion_scores.values()) - 1) < 1e-4
        assert face.emotion == max(face.emotion_scores, key=face.emotion_scores.get)
        assert face.track is None  # a photo is not a stream
    assert list(result.timings_ms) == [*PIPELINE_STAGES, "total"]  # the stage names of edge.frame.stats, in order
    assert result.timings_ms["total"] >= result.timings_ms["detect"]


def test_json_matches_the_documented_shape(pipeline, samples):
    out = pipeline.process(cv2.imread(str(samples / "astronaut.jpg")), independent=True).to_dict("a.jpg")
    assert set(out) == {"path", "frame", "width", "height", "faces", "timings_ms"}  # boxes are in width x height
    assert set(out["faces"][0]) == {"box", "track", "emotion", "emotion_scores", "gender", "gender_scores"}
    assert {"detect", "emotion", "gender", "total"} <= set(out["timings_ms"])


def test_photos_are_independent_even_in_one_pipeline(pipeline, samples):
    image = cv2.imread(str(samples / "astronaut.jpg"))
    first = pipeline.process(image, independent=True)
    second = pipeline.process(image, independent=True)
    assert first.faces[0].emotion_scores == second.faces[0].emotion_scores  # nothing carried over


def test_a_video_keeps_track_ids_while_faces_move(pipeline, pan_video):
    pipeline.reset()
    source = OpenCVSource(str(pan_video))
    source.open()
    ids = set()
    frames = 0
    for frame in source:
        result = pipeline.process(frame.image, frame.gray, now=frame.index / 15.0)
        ids.update(f.track for f in result.faces)
        frames += 1
    source.close()
    assert frames == 45
    assert None not in ids
    assert len(ids) <= 4  # two people panning across the frame: a handful of tracks, not one per frame


def test_a_face_cut_by_the_frame_edge_is_classified_not_crashed(pipeline_factory, samples):
    """BlazeFace finds a face cut by the edge and draws its box partly outside the frame: the result's box is
    clipped to the frame (what a user crops or draws), the classifiers still get the whole square."""
    from edge.detectors import DetectorSettings

    pipeline = pipeline_factory(detector=DetectorSettings(backend="blazeface"))
    image = cv2.imread(str(samples / "astronaut.jpg"))
    box = pipeline.detector.detect(image)[0]
    x, y, w, h = box
    cut = image[:, x + w // 4:]  # the left quarter of the face is outside the new frame
    result = pipeline.process(cut, independent=True)
    assert len(result.faces) == 1
    for face in result.faces:
        fx, fy, fw, fh = face.box
        assert fx >= 0 and fy >= 0 and fx + fw <= cut.shape[1] and fy + fh <= cut.shape[0]
        assert face.emotion and face.gender


@pytest.mark.parametrize("frame", [
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((480, 640, 4), np.uint8),
    np.zeros((480, 640), np.uint16),
])
def test_odd_frames_give_an_empty_result(pipeline, frame):
    assert pipeline.process(frame).faces == []


def test_an_empty_frame_is_a_clear_error(pipeline):
    with pytest.raises(FrameError, match="empty"):
        pipeline.process(np.zeros((0, 0, 3), np.uint8))


@pytest.mark.parametrize("backend", ["blazeface", "haar"])
def test_rgba_and_16_bit_photos_give_the_same_faces_as_8_bit(pipeline_factory, samples, backend):
    """A colour detector gets the same 8-bit BGR pixels as the gray path (alpha dropped, high byte kept)."""
    from edge.detectors import DetectorSettings

    pipeline = pipeline_factory(detector=DetectorSettings(backend=backend))
    image = cv2.imread(str(samples / "astronaut.jpg"))
    base = pipeline.process(image, independent=True)
    rgba = pipeline.process(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA), independent=True)
    sixteen = pipeline.process(image.astype(np.uint16) * 257, independent=True)
    assert [f.box for f in rgba.faces] == [f.box for f in base.faces]
    assert [f.box for f in sixteen.faces] == [f.box for f in base.faces]


def test_a_stream_scans_fully_every_n_frames_and_around_known_faces_in_between(pipeline_factory, samples):
    from edge.detectors import DetectorSettings

    pipeline = pipeline_factory(detector=DetectorSettings(full_scan_every=4))
    still = cv2.imread(str(samples / "two_people.jpg"))
    results = [pipeline.process(still, now=i / 15) for i in range(9)]
    assert [r.detection for r in results] == ["full", "roi", "roi", "roi", "full", "roi", "roi", "roi", "full"]
    assert all(len(r.faces) == 2 for r in results)  # the neighbourhood search finds both faces again
    assert len({f.track for r in results for f in r.faces}) == 2
    # The scene changes: the search around the old faces fails, so the very next frame scans fully.
    other = cv2.imread(str(samples / "astronaut.jpg"))
    changed = [pipeline.process(other, now=(9 + i) / 15) for i in range(2)]
    assert changed[0].detection == "roi" and changed[1].detection == "full"
    assert len(changed[1].faces) == 1


def test_a_box_only_full_scans_find_does_not_force_a_full_scan_every_other_frame(pipeline_factory, samples):
    from edge.bench.frames import letterbox
    from edge.detectors import DetectorSettings

    # At 640x480 the default cascade (paper mode) reports a second, false face beside the astronaut; the search
    # around it finds nothing. One immediate re-scan is allowed, then it waits for the next periodic full scan.
    pipeline = pipeline_factory(detector=DetectorSettings(backend="haar"))
    frame = letterbox(cv2.imread(str(samples / "astronaut.jpg")), (640, 480))
    results = [pipeline.process(frame, now=i / 15) for i in range(16)]
    modes = [r.detection for r in results]
    assert modes[:3] == ["full", "roi", "full"] and modes[3:10] == ["roi"] * 7 and modes[10] == "full"
    assert modes.count("full") == 4 and len({len(r.faces) for r in results}) == 2
    assert all(len(r.faces) >= 1 for r in results)  # the real face is held throughout


def test_with_nobody_tracked_a_stream_only_scans_every_n_frames(pipeline_factory, samples):
    from edge.detectors import DetectorSettings

    pipeline = pipeline_factory(detector=DetectorSettings(full_scan_every=3))
    empty = cv2.imread(str(samples / "chelsea.jpg"))
    modes = [pipeline.process(empty, now=i / 15).detection for i in range(6)]
    assert modes == ["full", "skip", "skip", "full", "skip", "skip"]


def test_one_face_type_from_the_pipeline_to_the_api(pipeline, samples):
    """The pipeline's faces are the API's ``Face`` (issue 31): one class, ``to_dict`` a dict and ``to_json`` its
    JSON string for a face and for a frame alike, boxes in plain ints."""
    import edge
    from edge.frame.results import Face

    assert edge.Face is Face
    result = pipeline.process(cv2.imread(str(samples / "two_people.jpg")), independent=True)
    assert len(result.faces) == 2 and all(isinstance(face, Face) for face in result.faces)
    for face in result.faces:
        assert all(type(v) is int for v in face.box)
        assert isinstance(face.to_json(), str) and json.loads(face.to_json()) == face.to_dict()
    assert json.loads(result.to_json("a.jpg", indent=1)) == result.to_dict("a.jpg")
    assert result.to_dict("a.jpg")["faces"] == [face.to_dict() for face in result.faces]


def _record_views(pipeline):
    """Wrap the emotion classifier's scoring (alone or with the joint file's gender head) to record the views each
    frame asks for (the real call still runs)."""
    seen = []
    predict = pipeline.emotion._predict_heads

    def spy(heads, faces, views=None):
        seen.append(None if views is None else list(views))
        return predict(heads, faces, views)

    pipeline.emotion._predict_heads = spy
    return seen


def test_a_stream_alternates_a_tracked_faces_views_and_the_smoothing_averages_them(pipeline_factory, samples,
                                                                                   models_dir):
    """A new face gets both views; once tracked, the crop and its mirror image in turn. After a second of a
    still face the smoothed probabilities are within a few hundredths of the every-frame mirror average."""
    image = cv2.imread(str(samples / "biden.jpg"))
    alternating = pipeline_factory()
    every = pipeline_factory(models=ModelSettings(dir=str(models_dir), stream_flip="both"))
    seen, seen_every = _record_views(alternating), _record_views(every)
    for i in range(16):
        last = alternating.process(image, now=i / 15)
        reference = every.process(image, now=i / 15)
    assert seen[:4] == [["both"], ["mirror"], ["plain"], ["mirror"]]
    assert all(views is None for views in seen_every)
    got, want = last.faces[0].emotion_scores, reference.faces[0].emotion_scores
    assert max(abs(got[k] - want[k]) for k in want) < 0.03
    assert last.faces[0].emotion == reference.faces[0].emotion


def test_photos_and_unsmoothed_streams_score_both_views_every_time(pipeline_factory, samples):
    from edge.frame.tracking import SmoothingSettings

    image = cv2.imread(str(samples / "biden.jpg"))
    photos, raw = pipeline_factory(), pipeline_factory(smoothing=SmoothingSettings(enabled=False))
    seen_photos, seen_raw = _record_views(photos), _record_views(raw)
    for i in range(3):
        photos.process(image, independent=True)
        raw.process(image, now=i / 15)
    assert seen_photos == [None] * 3 and seen_raw == [None] * 3
