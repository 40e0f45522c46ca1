"""Loss terms of the objective on hand-built batches: identification with label smoothing, the centre loss,
batch-all shares, and the weighted sum."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from trinet.config.settings import TrainSettings
from trinet.losses import classification, pairwise, triplet
from trinet.training.objectives import Objective, build_objectives, evaluate


def test_cross_entropy_by_hand():
    logits = tf.constant([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = tf.constant([0, 0])
    # softmax of [ln 3, 0] is [3/4, 1/4]: -ln(3/4); of [0, 0]: -ln(1/2)
    np.testing.assert_allclose(classification.cross_entropy(logits, labels), [math.log(2), -math.log(0.75)],
                               rtol=1e-6)
    # smoothing 0.2 over 2 classes: target [0.9, 0.1]
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    np.testing.assert_allclose(classification.cross_entropy(logits, labels, 0.2)[1], expected, rtol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_keras_categorical_cross_entropy(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 5, 6)
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing,
                                                      reduction=None)
    expected = keras_loss(keras.ops.one_hot(labels, 5), logits)
    ours = classification.cross_entropy(tf.constant(logits), tf.constant(labels), smoothing)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_center_loss_by_hand():
    features = tf.constant([[1.0, 2.0], [0.0, 0.0], [3.0, 4.0]])
    centers = tf.constant([[1.0, 0.0], [3.0, 4.0]])
    labels = tf.constant([0, 0, 1])
    # |(1,2)-(1,0)|^2 = 4; |(0,0)-(1,0)|^2 = 1; identical -> clipped to 1e-12
    np.testing.assert_allclose(classification.center_loss(features, labels, centers), [4.0, 1.0, 1e-12],
                               rtol=1e-6)


def test_batch_all_shares_average_to_the_batch_all_loss():
    rng = np.random.default_rng(1)
    emb = tf.constant(rng.normal(size=(8, 3)).astype(np.float32))
    labels = tf.constant([0, 0, 1, 1, 2, 2, 3, 3])
    dists = pairwise.cdist(emb, emb)
    for margin in ("soft", 0.2, 5.0):
        loss, _ = triplet.batch_all(dists, labels, margin)
        shares = triplet.batch_all_contributions(dists, labels, margin)
        assert shares.shape == (8,)
        np.testing.assert_allclose(float(tf.reduce_mean(shares)), float(loss), rtol=1e-5)


def test_weighted_sum_of_terms():
    outputs = {"a": tf.constant([1.0, 3.0]), "b": tf.constant([2.0, 4.0])}
    terms = [Objective("a", 1.0, lambda o, y: o["a"]), Objective("b", 0.5, lambda o, y: o["b"])]
    total, per_sample, values = evaluate(terms, outputs, tf.constant([0, 1]))
    assert float(total) == pytest.approx(2.0 + 0.5 * 3.0)
    np.testing.assert_allclose(per_sample, [1.0 + 1.0, 3.0 + 2.0])
    assert sorted(values) == ["a", "b"]
    with pytest.raises(ValueError, match="no terms"):
        evaluate([], outputs, tf.constant([0, 1]))


def test_objectives_follow_the_settings():
    centers = keras.Variable(np.zeros((3, 2), np.float32), name="centers")
    s = TrainSettings(id_loss_weight=1.0, label_smoothing=0.1, center_loss_weight=0.0005)
    assert [(o.name, o.weight) for o in build_objectives(s, centers)] == [
        ("triplet", 1.0), ("id", 1.0), ("center", 0.0005)]
    id_only = TrainSettings(triplet_loss_weight=0, id_loss_weight=1)
    assert [o.name for o in build_objectives(id_only)] == ["id"]
    # the triplet term alone is the original loss: mean of the batch-hard per-anchor losses
    emb = tf.constant([[0.0], [1.0], [3.0], [3.5]])
    labels = tf.constant([0, 0, 1, 1])
    outputs = {"metric": emb, "dists": pairwise.cdist(emb, emb)}
    total, _, _ = evaluate(build_objectives(TrainSettings()), outputs, labels)
    expected, _ = triplet.batch_hard(outputs["dists"], labels, "soft")
    assert float(total) == float(expected)
