"""Track ids across frames and label smoothing with hysteresis."""

from __future__ import annotations

import numpy as np

from edge.frame.tracking import LabelSmoother, SmoothingSettings, Tracker, iou


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_moving_faces_keep_their_ids_and_a_new_face_gets_a_new_one():
    tracker = Tracker()
    a, b = (100, 100, 80, 80), (400, 120, 80, 80)
    ids = [t.id for t in tracker.assign([a, b], 0.0)]
    for step in range(1, 10):  # both drift right by 6 px per frame
        moved = [(a[0] + 6 * step, a[1], 80, 80), (b[0] + 6 * step, b[1], 80, 80)]
        assert [t.id for t in tracker.assign(moved[::-1], step / 15)] == ids[::-1]
    newcomer = tracker.assign([(10, 300, 60, 60)], 10 / 15)
    assert newcomer[0].id not in ids


def test_tracks_expire_after_max_missed():
    tracker = Tracker(SmoothingSettings(max_missed_s=0.5))
    first = tracker.assign([(0, 0, 50, 50)], 0.0)[0].id
    assert tracker.assign([(0, 0, 50, 50)], 0.4)[0].id == first  # seen again in time
    assert tracker.assign([(0, 0, 50, 50)], 1.2)[0].id != first  # gone too long: new track


def noisy_sequence(rng, frames, true_class, classes=7, noise=0.25):
    """Per-frame probabilities of a model that is right on average but jittery."""
    base = np.full(classes, 0.08)
    base[true_class] = 0.35
    base[(true_class + 1) % classes] = 0.3  # a close runner-up, the usual cause of flicker
    out = base + rng.uniform(-noise, noise, (frames, classes)) * base
    return out / out.sum(axis=1, keepdims=True)


def label_changes(labels):
    return sum(1 for a, b in zip(labels, labels[1:]) if a != b)


def test_smoothing_removes_flicker_but_follows_a_real_change_within_half_a_second():
    rng = np.random.default_rng(7)
    fps = 15.0
    probs = np.vstack([noisy_sequence(rng, 60, 3), noisy_sequence(rng, 60, 4)])  # happy for 4 s, then sad
    raw = [int(np.argmax(p)) for p in probs]
    smoother = LabelSmoother(SmoothingSettings().time_constant_s, SmoothingSettings().hysteresis)
    smoothed = [smoother.update(p, i / fps)[0] for i, p in enumerate(probs)]
    assert label_changes(raw) > 10  # the raw labels flicker
    assert label_changes(smoothed) == 1  # smoothed: exactly the one real change
    switch = smoothed.index(4)
    assert (switch - 60) / fps <= 0.5


def test_smoothing_depends_on_time_not_frame_rate():
    rng = np.random.default_rng(3)
    probs = np.vstack([noisy_sequence(rng, 30, 0), noisy_sequence(rng, 30, 5)])
    delays = []
    for fps in (10.0, 30.0):
        smoother = LabelSmoother(0.25, 0.08)
        steps = np.arange(len(probs))
        frames = probs if fps == 10.0 else np.repeat(probs, 3, axis=0)
        times = steps / fps if fps == 10.0 else np.arange(len(frames)) / fps
        labels = [smoother.update(p, t)[0] for p, t in zip(frames, times)]
        delays.append(times[labels.index(5)] - times[len(frames) // 2])
    assert abs(delays[0] - delays[1]) <= 0.1 + 1e-9
