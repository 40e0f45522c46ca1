"""trinet.losses.memory: the cluster-memory loss and both update rules on hand-built batches, values
worked out here."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trinet.config.registries import MEMORY_UPDATES
from trinet.losses.memory import centroids, memory_loss, updated_memory

C = 1 / math.sqrt(2)
MEMORY = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
# Normalised: (1, 0), (0, 1), (0.6, 0.8).
EMBEDDINGS = np.array([[2.0, 0.0], [0.0, 3.0], [3.0, 4.0]], np.float32)
LABELS = np.array([0, 1, 0])


def logsumexp(*values):
    return math.log(sum(math.exp(v) for v in values))


def test_loss_closed_form():
    # T = 0.5: similarities / T are [2, 0, -2], [0, 2, 0] and [1.2, 1.6, -1.2].
    expected = [logsumexp(2, 0, -2) - 2, logsumexp(0, 2, 0) - 2, logsumexp(1.2, 1.6, -1.2) - 1.2]
    loss = memory_loss(EMBEDDINGS, LABELS, MEMORY, 0.5)
    assert loss.shape == (3,) and loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    # The first by hand: log(e^2 + 1 + e^-2) - 2 = log(1 + e^-2 + e^-4) = 0.14293...
    assert loss.numpy()[0] == pytest.approx(0.1429316, abs=1e-6)


def test_inactive_entries_are_left_out():
    active = np.array([True, True, False])
    expected = [logsumexp(2, 0) - 2, logsumexp(0, 2) - 2, logsumexp(1.2, 1.6) - 1.2]
    np.testing.assert_allclose(memory_loss(EMBEDDINGS, LABELS, MEMORY, 0.5, active).numpy(), expected,
                               rtol=1e-6)
    # A memory of larger capacity with the extra rows inactive gives the loss of the small memory.
    big = np.concatenate([MEMORY[:2], np.ones((5, 2), np.float32)])
    mask = np.array([True, True] + [False] * 5)
    np.testing.assert_allclose(memory_loss(EMBEDDINGS, LABELS, big, 0.5, mask).numpy(), expected, rtol=1e-6)


def test_gradient_and_tf_function():
    x = tf.Variable(EMBEDDINGS)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(memory_loss(x, tf.constant(LABELS), tf.constant(MEMORY), 0.05,
                                              tf.constant([True, True, False])))
        return loss, tape.gradient(loss, x)

    loss, grad = step()
    assert np.isfinite(loss.numpy()) and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0
    eager = tf.reduce_mean(memory_loss(EMBEDDINGS, LABELS, MEMORY, 0.05, np.array([True, True, False])))
    assert loss.numpy() == pytest.approx(eager.numpy(), rel=1e-6)


def test_mean_update_in_batch_order():
    # Momentum 0.5. Cluster 0 gets (0, 1) then (1, 0):
    #   m0 = norm(0.5 (1, 0) + 0.5 (0, 1)) = (c, c), c = 1/sqrt(2);
    #   m0 = norm(0.5 (c, c) + 0.5 (1, 0)) = (cos pi/8, sin pi/8) (the half-angle).
    # Cluster 1 gets (1, 0): m1 = (c, c). Cluster 2 is not in the batch.
    embeddings = np.array([[0.0, 2.0], [3.0, 0.0], [5.0, 0.0]], np.float32)
    labels = np.array([0, 1, 0])
    new = updated_memory(MEMORY, embeddings, labels, 0.5, "mean").numpy()
    expected = [[math.cos(math.pi / 8), math.sin(math.pi / 8)], [C, C], [-1, 0]]
    np.testing.assert_allclose(new, expected, atol=1e-6)
    # The other order gives another memory: (1, 0) first leaves m0 at (1, 0), then (0, 1) moves it to (c, c).
    swapped = updated_memory(MEMORY, embeddings[::-1], labels[::-1], 0.5, "mean").numpy()
    np.testing.assert_allclose(swapped[0], [C, C], atol=1e-6)


def test_mean_update_momentum_and_repeats_in_tf_function():
    # Momentum 0.1 (Cluster Contrast's): m = norm(0.1 m + 0.9 f). Three samples of cluster 1, all (1, 0):
    # (0, 1) -> norm(0.9, 0.1) -> norm(0.1 u + 0.9 (1, 0)) -> ...
    u = np.array([0.0, 1.0])
    for _ in range(3):
        u = 0.1 * u + 0.9 * np.array([1.0, 0.0])
        u /= np.linalg.norm(u)
    fn = tf.function(lambda m, e, y: updated_memory(m, e, y, 0.1, "mean"))
    new = fn(tf.constant(MEMORY), tf.constant(np.tile([[1.0, 0.0]], (3, 1)), tf.float32),
             tf.constant([1, 1, 1])).numpy()
    np.testing.assert_allclose(new[1], u, atol=1e-6)
    np.testing.assert_array_equal(new[[0, 2]], MEMORY[[0, 2]])


def test_hard_update_takes_the_least_similar():
    # Cluster 0 (entry (1, 0)): similarities 0.6, 0 and 0.8 -> (0, 1) moves it:
    # m0 = norm(0.5 (1, 0) + 0.5 (0, 1)) = (c, c).
    # Cluster 1 (entry (0, 1)): (1, 0) and (-1, 0) tie at 0 -> the first, (1, 0): m1 = (c, c), not (-c, c).
    embeddings = np.array([[0.6, 0.8], [1.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [0.8, 0.6]], np.float32)
    labels = np.array([0, 1, 0, 1, 0])
    new = updated_memory(MEMORY, embeddings, labels, 0.5, "hard").numpy()
    np.testing.assert_allclose(new, [[C, C], [C, C], [-1, 0]], atol=1e-6)
    fn = tf.function(lambda m, e, y: updated_memory(m, e, y, 0.5, "hard"))
    traced = fn(tf.constant(MEMORY), tf.constant(embeddings), tf.constant(labels)).numpy()
    np.testing.assert_allclose(traced, new, atol=1e-7)


def test_updates_are_registered():
    assert sorted(MEMORY_UPDATES) == ["hard", "mean"]
    with pytest.raises(ValueError, match=r"Unknown memory update 'median'; expected one of \['hard', 'mea"):
        updated_memory(MEMORY, EMBEDDINGS, LABELS, 0.5, "median")


def test_centroids():
    embeddings = np.array([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0], [1.0, 1.0], [-3.0, 4.0]])
    labels = np.array([0, 0, -1, 1, 3])
    # Cluster 0: mean of (1, 0) and (0, 1) -> (c, c); cluster 1: (c, c); cluster 2 has no member; cluster 3.
    out = centroids(embeddings, labels, 4)
    assert out.dtype == np.float32 and out.shape == (4, 2)
    np.testing.assert_allclose(out, [[C, C], [C, C], [0, 0], [-0.6, 0.8]], atol=1e-7)
    with pytest.raises(ValueError, match="num_clusters=2"):
        centroids(embeddings, labels, 2)
