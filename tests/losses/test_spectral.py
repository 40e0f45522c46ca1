"""--spectral_transform: the transformation in closed form, and a run that uses it."""

import math

import numpy as np
import tensorflow as tf

from conftest import train
from trinet.losses.pairwise import batch_distances, cdist, spectral_transform


def test_the_spectral_transform_by_hand():
    features = tf.constant([[2.0, 0.0], [0.0, 1.0]])
    # cosines [[1, 0], [0, 1]]; with sigma 1 the weights of each row are (e, 1) / (e + 1)
    e = math.e
    expected = [[2 * e / (e + 1), 1 / (e + 1)], [2 / (e + 1), e / (e + 1)]]
    np.testing.assert_allclose(spectral_transform(features, 1.0), expected, rtol=1e-6)
    # a small sigma leaves features with distinct directions almost unchanged
    np.testing.assert_allclose(spectral_transform(features, 0.01), features, atol=1e-6)


def test_batch_distances_are_the_metric_of_the_transformed_features():
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    np.testing.assert_array_equal(batch_distances("euclidean")(x), cdist(x, x, "euclidean"))
    t = spectral_transform(x, 0.5)
    np.testing.assert_allclose(batch_distances("euclidean", 0.5)(x), cdist(t, t, "euclidean"), rtol=1e-6)


def test_a_run_with_the_spectral_transform(tmp_path, image_set):
    assert train(tmp_path / "e", image_set, "--spectral_transform", "--spectral_sigma", "0.2",
                 "--train_iterations", "2") == 0
