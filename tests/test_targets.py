"""FER+ votes as soft targets: the mapping to our label order and the blend."""

from __future__ import annotations

import numpy as np
import pytest

from edge.labels import LABELS_BY_TASK
from train_host.data import DataError, FaceSet
from train_host.targets import ferplus_distribution, training_targets

EMOTIONS = LABELS_BY_TASK["emotion"]


def faces_with(votes, labels):
    return FaceSet(np.zeros((len(labels), 48, 48), np.uint8), np.array(labels), "votes.npz",
                   ferplus_votes=np.array(votes, dtype=np.uint8))


def test_votes_land_on_our_classes_and_contempt_unknown_and_not_a_face_are_left_out():
    # FER+ order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    dist, usable = ferplus_distribution(np.array([[2, 0, 0, 1, 7, 0, 0, 3, 1, 1]]))
    assert usable.tolist() == [True]
    assert dist[0, EMOTIONS.index("angry")] == pytest.approx(0.7)
    assert dist[0, EMOTIONS.index("neutral")] == pytest.approx(0.2)
    assert dist[0, EMOTIONS.index("sad")] == pytest.approx(0.1)
    assert dist.sum() == pytest.approx(1.0)


def test_faces_without_votes_keep_their_one_hot_label():
    faces = faces_with([[255] * 10, [0, 0, 0, 0, 0, 0, 0, 5, 3, 2], [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]], [2, 4, 0])
    targets = training_targets(faces, 7, 0.5)
    assert targets[0].tolist() == np.eye(7)[2].tolist()  # 255: FER+ has no votes for this face
    assert targets[1].tolist() == np.eye(7)[4].tolist()  # only contempt/unknown/not-a-face votes
    # Label angry, all ten people say happy: half and half.
    assert targets[2, EMOTIONS.index("angry")] == pytest.approx(0.5)
    assert targets[2, EMOTIONS.index("happy")] == pytest.approx(0.5)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)


def test_weight_zero_is_plain_one_hot_and_bad_requests_are_one_line():
    faces = faces_with([[0, 10, 0, 0, 0, 0, 0, 0, 0, 0]], [0])
    assert training_targets(faces, 7, 0.0).tolist() == [np.eye(7)[0].tolist()]
    with pytest.raises(DataError, match="between 0 and 1"):
        training_targets(faces, 7, 1.5)
    no_votes = FaceSet(faces.x, faces.y, "plain.npz")
    with pytest.raises(DataError, match="ferplus_votes"):
        training_targets(no_votes, 7, 0.3)
