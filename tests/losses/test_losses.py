"""Losses and in-batch monitoring on hand-built batches whose values are worked out by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trinet.losses.pairwise import METRICS, cdist

from trinet.config.registries import LOSSES
from trinet.losses.monitoring import active_fraction, batch_stats
from trinet.losses.triplet import apply_margin, batch_all, batch_hard

# Four 1-D points on a line (as 2-D vectors): identities 0, 0, 1, 1 at x = 0, 1, 3, 5.5.
POINTS = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [5.5, 0.0]], np.float32)
LABELS = np.array([0, 0, 1, 1], np.int32)
# Per anchor, by hand: furthest positive - closest negative.
#   a0: d(0,1)=1, negatives 3, 5.5 -> 1 - 3 = -2
#   a1: d(1,0)=1, negatives 2, 4.5 -> 1 - 2 = -1
#   a2: d(2,3)=2.5, negatives 3, 2 -> 2.5 - 2 = 0.5
#   a3: d(3,2)=2.5, negatives 5.5, 4.5 -> 2.5 - 4.5 = -2
DIFFS = [-2.0, -1.0, 0.5, -2.0]


def softplus(x):
    return math.log1p(math.exp(x))


def hard(margin, metric="euclidean", points=POINTS, labels=LABELS):
    dists = cdist(tf.constant(points), tf.constant(points), metric)
    loss, per_anchor = batch_hard(dists, tf.constant(labels), margin)
    return float(loss), per_anchor.numpy()


def test_batch_hard_soft_margin():
    loss, per_anchor = hard("soft")
    np.testing.assert_allclose(per_anchor, [softplus(d) for d in DIFFS], rtol=1e-5)
    assert loss == pytest.approx((2 * softplus(-2) + softplus(-1) + softplus(0.5)) / 4, rel=1e-5)
    assert loss == pytest.approx(0.385299, abs=1e-5)


def test_batch_hard_hinge_and_none():
    assert hard(1.0)[0] == pytest.approx(1.5 / 4, rel=1e-5)  # only a2 is active: 0.5 + 1
    np.testing.assert_allclose(hard(1.0)[1], [0, 0, 1.5, 0], atol=1e-5)
    np.testing.assert_allclose(hard(0.0)[1], [0, 0, 0.5, 0], atol=1e-5)
    np.testing.assert_allclose(hard("none")[1], DIFFS, atol=1e-5)
    assert hard("None")[0] == pytest.approx(sum(DIFFS) / 4, abs=1e-5)


def test_batch_hard_other_metrics():
    # sqeuclidean squares every distance: a0 1 - 9, a1 1 - 4, a2 6.25 - 4, a3 6.25 - 20.25
    np.testing.assert_allclose(hard("none", "sqeuclidean")[1], [-8, -3, 2.25, -14], atol=1e-4)
    # cityblock equals euclidean on a line
    np.testing.assert_allclose(hard("none", "cityblock")[1], DIFFS, atol=1e-5)


def test_batch_hard_anchor_without_positive_uses_zero():
    points = np.array([[0.0], [1.0], [4.0]], np.float32)
    _, per_anchor = hard("none", points=points, labels=np.array([0, 0, 1]))
    # a2 has no positive: 0 - min(4, 3) = -3
    np.testing.assert_allclose(per_anchor, [1 - 4, 1 - 3, -3], atol=1e-5)


def test_string_labels_work():
    _, per_anchor = hard("none", labels=np.array(["0002", "0002", "-1", "-1"]))
    np.testing.assert_allclose(per_anchor, DIFFS, atol=1e-5)


def test_batch_all_averages_over_nonzero_triplets():
    dists = cdist(tf.constant(POINTS), tf.constant(POINTS))
    # Triplets d(a,p) - d(a,n): a0: 1-3, 1-5.5; a1: 1-2, 1-4.5; a2: 2.5-3, 2.5-2; a3: 2.5-5.5, 2.5-4.5
    # margin 3: 1, 0 | 2, 0 | 2.5, 3.5 | 0, 1 -> sum 10 over 5 non-zero triplets
    loss, per_anchor = batch_all(dists, tf.constant(LABELS), 3.0)
    assert float(loss) == pytest.approx(10 / 5, rel=1e-5)
    np.testing.assert_allclose(per_anchor, [0.5, 1.0, 3.0, 0.5], rtol=1e-5)
    loss, _ = batch_all(dists, tf.constant(LABELS), 0.1)  # only a2's 0.5 + 0.1
    assert float(loss) == pytest.approx(0.6, rel=1e-5)
    loss, _ = batch_all(dists, tf.constant(LABELS), 0.0)
    assert float(loss) == pytest.approx(0.5, rel=1e-5)


def test_batch_all_without_active_triplets_is_zero():
    far = POINTS * np.array([[1.0, 0.0]], np.float32)
    far[2:] += 100
    loss, _ = batch_all(cdist(tf.constant(far), tf.constant(far)), tf.constant(LABELS), 1.0)
    assert float(loss) == 0.0


def test_euclidean_keeps_a_finite_gradient_at_zero_distance():
    x = tf.Variable([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [3.0, 1.0]])
    with tf.GradientTape() as tape:
        loss, _ = batch_hard(cdist(x, x), tf.constant(LABELS), "soft")
    grad = tape.gradient(loss, x)
    assert np.all(np.isfinite(grad.numpy()))
    assert float(cdist(x, x)[0, 1]) == pytest.approx(1e-6, rel=1e-3)  # sqrt(0 + 1e-12)


def test_margin_and_registry_errors():
    with pytest.raises(ValueError, match="expected a number >= 0, 'soft' or 'none'"):
        apply_margin(tf.constant([0.0]), "hard")
    with pytest.raises(ValueError, match="must be >= 0"):
        apply_margin(tf.constant([0.0]), -1.0)
    with pytest.raises(ValueError,
                       match=r"Unknown loss 'batch_semi'; expected one of \['batch_all', 'batch_hard'\]"):
        LOSSES.resolve("batch_semi")
    with pytest.raises(ValueError, match="Unknown metric 'l2'"):
        cdist(tf.constant(POINTS), tf.constant(POINTS), "l2")
    assert sorted(LOSSES) == ["batch_all", "batch_hard"]
    assert LOSSES.resolve("batch_hard") is batch_hard and LOSSES.resolve("batch_all") is batch_all


def test_monitoring_on_a_hand_built_batch():
    # Identities 0,0,0,1,1,1 at x = 0, 1, 2.6 | 2.1, 4, 5.3 (no ties). Nearest other point of each:
    #   x=0 -> 1 (same); 1 -> 0 (same); 2.6 -> 2.1 (other); 2.1 -> 2.6 (other);
    #   4 -> 5.3 (same); 5.3 -> 4 (same)
    points = np.array([[0.0], [1.0], [2.6], [2.1], [4.0], [5.3]], np.float32)
    labels = tf.constant([0, 0, 0, 1, 1, 1])
    dists = cdist(tf.constant(points), tf.constant(points))
    stats = batch_stats(dists, labels, k=2)
    assert float(stats["top1"]) == pytest.approx(4 / 6)
    # 2 nearest: x=0: 1(s), 2.1(o); 1: 0(s), 2.1(o); 2.6: 2.1(o), 4(o); 2.1: 2.6(o), 1(o);
    # 4: 5.3(s), 2.6(o); 5.3: 4(s), 2.6(o)
    assert float(stats["prec_at_k"]) == pytest.approx((0.5 + 0.5 + 0 + 0 + 0.5 + 0.5) / 6)
    assert stats["pos_dists"].shape == (12,) and stats["neg_dists"].shape == (18,)
    assert float(tf.reduce_min(stats["pos_dists"])) == pytest.approx(1.0, abs=1e-5)


def test_monitoring_ignores_self_even_for_duplicates():
    points = np.array([[0.0], [0.0], [1.0], [1.0]], np.float32)  # exact duplicates of another identity
    dists = cdist(tf.constant(points), tf.constant(points))
    stats = batch_stats(dists, tf.constant([0, 1, 0, 1]), k=1)
    assert float(stats["top1"]) == 0.0  # the nearest other point is always the other identity's copy
    assert float(active_fraction(tf.constant([0.0, 1e-6, 0.5, 2.0]))) == 0.5


# --- tensorflow-addons' triplet_hard_loss, transcribed from its published semantics ---------------
# TFA computes distances in matrix form (clamped at 0, zero on the diagonal); its metric names differ:
# "L_2" is the *squared* euclidean distance, "L_1" the (plain) euclidean one, "angular" is 1 - cos.
# Anchors without positives/negatives fall back to the row minimum/maximum (masked_maximum/minimum).

def tfa_triplet_hard_loss(labels, embeddings, margin=1.0, soft=False, distance_metric="L_2"):
    e = np.asarray(embeddings, np.float64)
    sq = np.maximum((e ** 2).sum(1)[:, None] + (e ** 2).sum(1)[None] - 2 * e @ e.T, 0.0)
    if distance_metric == "L_2":
        pdist = sq
    elif distance_metric == "L_1":
        pdist = np.sqrt(sq)
    else:
        n = e / np.linalg.norm(e, axis=1, keepdims=True)
        pdist = np.maximum(1 - n @ n.T, 1e-16)
    if distance_metric != "angular":
        np.fill_diagonal(pdist, 0.0)
    labels = np.asarray(labels)[:, None]
    adjacency = labels == labels.T
    not_adjacent = (~adjacency).astype(float)
    positives = adjacency.astype(float) - np.eye(len(e))
    row_max, row_min = pdist.max(1, keepdims=True), pdist.min(1, keepdims=True)
    hard_negatives = ((pdist - row_max) * not_adjacent).min(1, keepdims=True) + row_max
    hard_positives = ((pdist - row_min) * positives).max(1, keepdims=True) + row_min
    diff = hard_positives - hard_negatives
    return float(np.mean(np.log1p(np.exp(diff)) if soft else np.maximum(diff + margin, 0.0)))


@pytest.mark.parametrize("tfa_metric, metric", [("L_2", "sqeuclidean"), ("L_1", "euclidean"),
                                                ("angular", "cosine")])
@pytest.mark.parametrize("soft, margin", [(True, "soft"), (False, 1.0), (False, 0.3)])
def test_batch_hard_agrees_with_tensorflow_addons(tfa_metric, metric, soft, margin):
    rng = np.random.default_rng(7)
    for p, k, dim in [(4, 4, 8), (3, 2, 16), (8, 4, 128)]:
        emb = rng.normal(size=(p * k, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)  # TFA expects normalised embeddings
        labels = np.repeat(np.arange(p), k)
        expected = tfa_triplet_hard_loss(labels, emb, margin=1.0 if soft else margin, soft=soft,
                                         distance_metric=tfa_metric)
        ours, _ = batch_hard(cdist(tf.constant(emb), tf.constant(emb), metric), tf.constant(labels), margin)
        assert float(ours) == pytest.approx(expected, abs=2e-5)


def test_tensorflow_and_numpy_distances_agree():
    from trinet.core import distances
    assert sorted(distances.METRICS) == sorted(METRICS)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 16)).astype(np.float32), rng.normal(size=(5, 16)).astype(np.float32)
    b[0] = a[0]  # a zero distance
    for metric in METRICS:
        np.testing.assert_allclose(cdist(tf.constant(a), tf.constant(b), metric).numpy(),
                                   distances.cdist(a, b, metric), rtol=1e-4, atol=1e-4, err_msg=metric)
