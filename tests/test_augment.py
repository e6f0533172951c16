"""Cutout and mixup, the optional training regularisers, on real face crops."""

from __future__ import annotations

import numpy as np
import pytest

from edge.frame.preprocess import normalize
from tests.facecrops import varied_faces
from train_host.augment import AugmentConfig, augment_batch, cutout_batch, mixup_batch
from train_host.data import FaceSet
from train_host.sequence import AugmentedFaces


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return varied_faces(64, 64, seed=5)


def test_cutout_paints_one_square_per_face_with_that_faces_mean_grey(faces):
    out = cutout_batch(faces, 0.3, np.random.default_rng(0))
    side = round(0.3 * 64)
    full_squares = 0
    for before, after in zip(faces, out, strict=True):
        changed = np.argwhere(before != after)
        assert len(changed), "every face gets a square (a pixel already at the mean grey may stay as it was)"
        (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0) + 1
        assert y1 - y0 <= side + 1 and x1 - x0 <= side + 1
        mean = np.uint8(round(float(before.mean())))
        assert np.all(after[y0:y1, x0:x1] == mean)
        outside = np.ones_like(before, dtype=bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(before[outside], after[outside])
        full_squares += (y1 - y0 >= side - 1) and (x1 - x0 >= side - 1)
    # Centres are uniform over the face, so squares near an edge are cut off and some lie whole inside.
    assert 0 < full_squares < len(faces)


def test_cutout_off_changes_nothing_and_on_only_adds_the_square(faces):
    plain = AugmentConfig(rotation_deg=10, zoom=0.1, shift=0.1, brightness=0.1, contrast=0.2)
    with_cutout = AugmentConfig(**{**plain.__dict__, "cutout": 0.25})
    a = augment_batch(faces, (48, 48), plain, np.random.default_rng(3))
    b = augment_batch(faces, (48, 48), with_cutout, np.random.default_rng(3))
    assert a.shape == b.shape == (len(faces), 48, 48)
    differs = (a != b).reshape(len(faces), -1).mean(axis=1)
    assert np.all(differs > 0) and np.all(differs <= 0.25**2 * 1.2)


def test_mixup_blends_each_face_and_its_target_with_one_partner(faces):
    x = normalize(faces)[..., None]
    labels = np.arange(len(faces)) % 7
    targets = np.eye(7, dtype=np.float32)[labels]
    mixed_x, mixed_t = mixup_batch(x, targets, 0.2, np.random.default_rng(11))
    np.testing.assert_allclose(mixed_t.sum(axis=1), 1.0, atol=1e-6)
    blended = 0
    for i in range(len(faces)):
        own = mixed_t[i, labels[i]]
        assert own >= 0.5 - 1e-6, "the face keeps the larger share"
        others = np.flatnonzero((mixed_t[i] > 1e-6) & (np.arange(7) != labels[i]))
        if not len(others):
            continue  # its partner has the same class (or itself): nothing shows which face it was mixed with
        partner_class = others[0]
        lam = own
        candidates = [j for j in range(len(faces)) if labels[j] == partner_class]
        errors = [np.abs(mixed_x[i] - (lam * x[i] + (1 - lam) * x[j])).max() for j in candidates]
        assert min(errors) < 1e-5
        blended += lam < 0.999
    assert blended > len(faces) // 4


def test_mixup_batches_are_reproducible_for_a_resumed_run(faces):
    labels = np.arange(len(faces)) % 2
    face_set = FaceSet(x=faces, y=labels, source="test")
    targets = np.eye(2, dtype=np.float32)[labels]
    config = AugmentConfig(cutout=0.2, mixup=0.4)

    def batches(start_epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        seq = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=7, shuffle=True, start_epoch=start_epoch)
        return [seq[i] for i in range(len(seq))]

    fresh = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=7, shuffle=True)
    fresh.on_epoch_end()
    epoch1 = [fresh[i] for i in range(len(fresh))]
    resumed = batches(1)
    for (xa, ta), (xb, tb) in zip(epoch1, resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
    assert any(np.any((t > 0) & (t < 1)) for _, t in resumed), "targets are blended"
    assert not np.array_equal(batches(0)[0][0], resumed[0][0])


def test_class_weights_make_a_class_weighted_cross_entropy_for_hard_and_mixed_targets(faces):
    labels = np.arange(len(faces)) % 3
    face_set = FaceSet(x=faces, y=labels, source="test")
    targets = np.eye(3, dtype=np.float32)[labels]
    class_weights = np.array([0.5, 1.0, 2.0], np.float32)
    plain = AugmentedFaces(face_set, targets, (48, 48), 16, AugmentConfig(), seed=3, shuffle=True,
                           class_weights=class_weights)
    for i in range(len(plain)):
        _, t, w = plain[i]
        assert set(np.unique(t)) == {0.0, 1.0}, "a one-hot row stays one-hot"
        np.testing.assert_array_equal(w, class_weights[t.argmax(axis=1)])
    config = AugmentConfig(mixup=0.4)
    mixed = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=3, shuffle=True,
                           class_weights=class_weights)
    unweighted = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=3, shuffle=True)
    for i in range(len(mixed)):
        x, t, w = mixed[i]
        x_plain, t_plain = unweighted[i]
        np.testing.assert_array_equal(x, x_plain)  # the weights change the loss, not the batch
        np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-5)
        # w * CE(p, t) == sum_k class_weight_k * t_plain_k * (-log p_k) for every p: the rows must agree
        np.testing.assert_allclose(w[:, None] * t, t_plain * class_weights, rtol=1e-5, atol=1e-7)
    assert len(unweighted[0]) == 2


def test_face_weights_multiply_each_faces_loss_with_and_without_class_weights(faces):
    labels = np.arange(len(faces)) % 2
    face_set = FaceSet(x=faces, y=labels, source="test")
    targets = np.eye(2, dtype=np.float32)[labels]
    face_weights = np.linspace(0.5, 2.0, len(faces)).astype(np.float32)
    class_weights = np.array([0.8, 1.25], np.float32)
    config = AugmentConfig(mixup=0.4)
    only_faces = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=3, shuffle=True,
                                face_weights=face_weights)
    both = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=3, shuffle=True,
                          class_weights=class_weights, face_weights=face_weights)
    by_class = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=3, shuffle=True,
                              class_weights=class_weights)
    unweighted = AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=3, shuffle=True)
    seen = []
    for i in range(len(unweighted)):
        pick = unweighted.order[i * 16:(i + 1) * 16]
        x_plain, t_plain = unweighted[i]
        x, t, w = only_faces[i]
        np.testing.assert_array_equal(x, x_plain)  # the weights change the loss, not the batch
        np.testing.assert_array_equal(t, t_plain)
        np.testing.assert_array_equal(w, face_weights[pick])
        _, t_class, w_class = by_class[i]
        _, t_both, w_both = both[i]
        np.testing.assert_allclose(t_both, t_class)
        np.testing.assert_allclose(w_both, w_class * face_weights[pick], rtol=1e-6)
        seen += list(pick)
    assert sorted(seen) == list(range(len(faces)))
    with pytest.raises(ValueError, match="face_weights has shape"):
        AugmentedFaces(face_set, targets, (48, 48), 16, config, seed=3, shuffle=True, face_weights=face_weights[:3])
