"""Pairwise distances in TensorFlow, `(B1, D), (B2, D) -> (B1, B2)` under each metric of
`trinet.core.distances` (the numpy twin, with the same epsilons), and the batch distances the triplet losses
see during training (optionally of spectrally transformed features)."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from trinet.core.distances import COSINE_EPSILON, EUCLIDEAN_EPSILON


def _all_diffs(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """`(B1, D), (B2, D) -> (B1, B2, D)` of a[i] - b[j]."""
    return tf.expand_dims(a, 1) - tf.expand_dims(b, 0)


def _sqeuclidean(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.square(_all_diffs(a, b)), axis=-1)


def _euclidean(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(_sqeuclidean(a, b) + EUCLIDEAN_EPSILON)


def _cityblock(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.abs(_all_diffs(a, b)), axis=-1)


def _cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    a = a / tf.sqrt(tf.reduce_sum(tf.square(a), axis=-1, keepdims=True) + COSINE_EPSILON)
    b = b / tf.sqrt(tf.reduce_sum(tf.square(b), axis=-1, keepdims=True) + COSINE_EPSILON)
    return 1.0 - tf.matmul(a, b, transpose_b=True)


#: Distance metrics by name; the same names and definitions as the numpy `trinet.core.distances.METRICS`.
METRICS: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "euclidean": _euclidean,
    "sqeuclidean": _sqeuclidean,
    "cityblock": _cityblock,
    "cosine": _cosine,
}


def cdist(a: tf.Tensor, b: tf.Tensor, metric: str = "euclidean") -> tf.Tensor:
    """Pairwise distances `(B1, D), (B2, D) -> (B1, B2)`.

    Computed from explicit differences (exact, and fine for training batches): euclidean is
    sqrt(sum (a-b)^2 + 1e-12), sqeuclidean sum (a-b)^2, cityblock sum |a-b|, cosine
    1 - <a,b> / (sqrt(|a|^2 + 1e-12) sqrt(|b|^2 + 1e-12)).
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    return METRICS[metric](a, b)


def spectral_transform(features: tf.Tensor, sigma: float = 0.1) -> tf.Tensor:
    """The spectral feature transformation (Luo et al. 2018, arXiv 1811.11405): `(B, D)` -> `(B, D)`, each
    feature replaced by the mean of the batch's features weighted by softmax_j(cos(f_i, f_j) / sigma)."""
    unit = features / tf.maximum(tf.norm(features, axis=1, keepdims=True), 1e-12)
    weights = tf.nn.softmax(tf.matmul(unit, unit, transpose_b=True) / sigma, axis=1)
    return tf.matmul(weights, features)


def batch_distances(metric: str, spectral_sigma: float | None = None):
    """`(B, D) features -> (B, B)` distances under `metric`, of the spectrally transformed features when
    `spectral_sigma` is given (what the triplet losses see during training)."""
    if spectral_sigma is None:
        return lambda features: cdist(features, features, metric)

    def distances(features):
        transformed = spectral_transform(features, spectral_sigma)
        return cdist(transformed, transformed, metric)
    return distances
