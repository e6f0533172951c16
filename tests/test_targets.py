"""Training targets: FER+ votes as soft targets (mapping and blend), class- and age-balanced loss weights."""

from __future__ import annotations

import numpy as np
import pytest

from edge.frame.labels import LABELS_BY_TASK
from train_host.data import DataError, FaceSet
from train_host.targets import age_balance_weights, class_balance_weights, ferplus_distribution, training_targets

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


# FER-2013 Training's class counts (angry, disgust, fear, happy, sad, surprise, neutral), as in ../shared/README.md.
FER_TRAIN_COUNTS = (3995, 436, 4097, 7215, 4830, 3171, 4965)


def test_class_balance_makes_every_class_weigh_the_same_in_the_loss_at_power_one():
    labels = np.repeat(np.arange(7), FER_TRAIN_COUNTS)
    weights = class_balance_weights(labels, 7, 1.0)
    per_class_total = weights * np.array(FER_TRAIN_COUNTS)
    np.testing.assert_allclose(per_class_total, per_class_total[0], rtol=1e-5)
    assert weights[labels].mean() == pytest.approx(1.0, abs=1e-5)
    assert weights.argmax() == EMOTIONS.index("disgust") and weights.argmin() == EMOTIONS.index("happy")


def test_class_balance_half_power_is_halfway_in_log_terms_and_zero_is_off():
    labels = np.repeat(np.arange(7), FER_TRAIN_COUNTS)
    full, half = class_balance_weights(labels, 7, 1.0), class_balance_weights(labels, 7, 0.5)
    ratio_full = full[EMOTIONS.index("disgust")] / full[EMOTIONS.index("happy")]
    ratio_half = half[EMOTIONS.index("disgust")] / half[EMOTIONS.index("happy")]
    assert ratio_half == pytest.approx(np.sqrt(ratio_full), rel=1e-5)
    assert half[labels].mean() == pytest.approx(1.0, abs=1e-5)  # rescaled: the loss keeps its size
    np.testing.assert_allclose(class_balance_weights(labels, 7, 0.0), 1.0)


def test_class_balance_refuses_a_class_without_faces_and_a_negative_power():
    with pytest.raises(DataError, match=r"classes \[1\] have no training faces"):
        class_balance_weights(np.array([0, 0, 2, 2]), 3, 1.0)
    with pytest.raises(DataError, match="--class-balance -1"):
        class_balance_weights(np.array([0, 1]), 2, -1.0)


# UTKFace training faces per (age band, gender) as in ../shared/data/utkface (women, men per band of AGE_BANDS).
UTK_TRAIN_CELLS = ((583, 687), (844, 547), (329, 322), (3548, 2502), (1944, 2556), (747, 1887), (903, 1223))
UTK_BAND_AGES = (1, 7, 15, 25, 37, 50, 70)  # one age inside each band


def utk_like_faces() -> tuple[np.ndarray, np.ndarray]:
    ages, labels = [], []
    for age, cells in zip(UTK_BAND_AGES, UTK_TRAIN_CELLS, strict=True):
        for gender, count in enumerate(cells):
            ages += [age] * count
            labels += [gender] * count
    return np.array(ages), np.array(labels)


def test_age_balance_makes_every_band_and_gender_cell_weigh_the_same_at_power_one():
    age, labels = utk_like_faces()
    weights = age_balance_weights(age, labels, 2, 1.0)
    assert weights.shape == age.shape and weights.mean() == pytest.approx(1.0, abs=1e-5)
    totals = [weights[(age == a) & (labels == g)].sum() for a in UTK_BAND_AGES for g in (0, 1)]
    np.testing.assert_allclose(totals, totals[0], rtol=1e-4)
    boys = (age == 7) & (labels == 1)
    young_women = (age == 25) & (labels == 0)
    assert weights[boys][0] / weights[young_women][0] == pytest.approx(3548 / 547, rel=1e-4)


def test_age_balance_half_power_is_halfway_and_zero_is_off_and_ages_outside_the_bands_are_a_band():
    age, labels = utk_like_faces()
    full, half = age_balance_weights(age, labels, 2, 1.0), age_balance_weights(age, labels, 2, 0.5)
    boy, woman = np.flatnonzero((age == 7) & (labels == 1))[0], np.flatnonzero((age == 25) & (labels == 0))[0]
    assert half[boy] / half[woman] == pytest.approx(np.sqrt(full[boy] / full[woman]), rel=1e-5)
    np.testing.assert_allclose(age_balance_weights(age, labels, 2, 0.0), 1.0)
    # an unknown age (-1) is its own band, not folded into the infants
    weights = age_balance_weights(np.array([-1, 1, 1, 1]), np.array([0, 0, 0, 0]), 2, 1.0)
    assert weights[0] == pytest.approx(3 * weights[1], rel=1e-5)


def test_age_balance_refuses_faces_without_ages_and_a_negative_power():
    with pytest.raises(DataError, match="needs the faces' ages"):
        age_balance_weights(None, np.array([0, 1]), 2, 0.5)
    with pytest.raises(DataError, match="--age-balance -1"):
        age_balance_weights(np.array([5, 30]), np.array([0, 1]), 2, -1.0)
