"""trinet.losses.memory: the cluster-memory loss and both update rules on hand-built batches, values
worked out here."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trinet.config.registries import MEMORY_UPDATES
from trinet.losses.memory import (camera_memory_loss, camera_proxies, centroids, memory_loss, proxy_indices,
                                  updated_memory)

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


# Proxies (cluster, camera): p0 (0, 0) = (1, 0), p1 (1, 0) = (0, 1), p2 (0, 1) = (c, c), p3 (1, 1) = (-1, 0).
PROXIES = np.array([[1.0, 0.0], [0.0, 1.0], [C, C], [-1.0, 0.0]], np.float32)
PROXY_LABELS, PROXY_CAMERAS = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])


def test_camera_loss_closed_form():
    # T = 1. Sample a = (1, 0), cluster 0, camera 0: s = [1, 0, c, -1].
    #   intra over camera 0's proxies (p0, p1), target p0: log(e^1 + e^0) - 1;
    #   inter, positives p0, p2, 1 hard negative (p1, s = 0 > -1): log(e^1 + e^c + e^0) - (1 + c) / 2.
    # Sample b = (0, 3), cluster 1, camera 1: s = [0, 1, c, 0].
    #   intra over (p2, p3), target p3: log(e^c + e^0) - 0;
    #   inter, positives p1, p3, hard negative p2 (c > 0): log(e^1 + e^0 + e^c) - (1 + 0) / 2.
    x = np.array([[1.0, 0.0], [0.0, 3.0]], np.float32)
    labels, cameras = np.array([0, 1]), np.array([0, 1])
    intra = [logsumexp(1, 0) - 1, logsumexp(C, 0)]
    inter = [logsumexp(1, C, 0) - (1 + C) / 2, logsumexp(1, 0, C) - 0.5]
    loss = camera_memory_loss(x, labels, cameras, PROXIES, PROXY_LABELS, PROXY_CAMERAS, 1.0, hard_negatives=1)
    np.testing.assert_allclose(loss.numpy(), np.add(intra, np.multiply(0.5, inter)), rtol=1e-6)
    # Two hard negatives: every proxy of the other cluster; inter weight 1.
    inter2 = [logsumexp(1, C, 0, -1) - (1 + C) / 2, logsumexp(1, 0, C, 0) - 0.5]
    loss = camera_memory_loss(x, labels, cameras, PROXIES, PROXY_LABELS, PROXY_CAMERAS, 1.0, inter_weight=1.0,
                              hard_negatives=2)
    np.testing.assert_allclose(loss.numpy(), np.add(intra, inter2), rtol=1e-6)
    # Only the intra term, and an inactive proxy (p1) left out of everything; T = 0.5 doubles s.
    loss = camera_memory_loss(x[:1], labels[:1], cameras[:1], PROXIES, PROXY_LABELS, PROXY_CAMERAS, 0.5,
                              inter_weight=0.0, active=np.array([True, False, True, True]))
    np.testing.assert_allclose(loss.numpy(), [0.0], atol=1e-6)  # camera 0 holds p0 alone


def test_camera_loss_in_tf_function_has_gradients():
    x = tf.Variable(np.array([[1.0, 0.2], [0.1, 3.0], [0.5, 0.5]], np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(camera_memory_loss(x, tf.constant([0, 1, 0]), tf.constant([0, 1, 1]),
                                                     tf.constant(PROXIES), tf.constant(PROXY_LABELS),
                                                     tf.constant(PROXY_CAMERAS), 0.05, hard_negatives=50))
        return loss, tape.gradient(loss, x)

    loss, grad = step()
    assert np.isfinite(loss.numpy()) and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0


def test_camera_proxies_and_indices():
    x = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-3.0, 0.0], [9.0, 9.0], [0.0, -2.0]])
    labels = np.array([0, 0, 0, 1, -1, 1])
    cameras = np.array([0, 0, 1, 1, 0, 0])
    proxies, proxy_labels, proxy_cameras = camera_proxies(x, labels, cameras)
    # (camera 0: clusters 0 and 1), (camera 1: clusters 0 and 1).
    assert proxy_cameras.tolist() == [0, 0, 1, 1] and proxy_labels.tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(proxies, [[C, C], [0, -1], [C, C], [-1, 0]], atol=1e-7)
    found = proxy_indices(labels, cameras, proxy_labels, proxy_cameras)
    np.testing.assert_array_equal(found, [0, 0, 2, 3, -1, 1])
    missing = proxy_indices(np.array([1]), np.array([5]), proxy_labels, proxy_cameras)
    np.testing.assert_array_equal(missing, [-1])
