"""Triplet losses as pure TensorFlow functions of (distances, labels).

Batch-hard and batch-all triplet losses from "In Defense of the Triplet Loss for Person
Re-Identification" (Hermans, Beyer, Leibe 2017, arXiv:1703.07737). Every loss takes a `(B, B)`
distance matrix and `(B,)` labels and returns `(loss, per_anchor)`: the scalar to minimise and a
`(B,)` vector for monitoring. In-batch monitoring lives in `trinet.monitoring`.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

#: Added under the square root of the euclidean distance: sqrt is not differentiable at 0, and the
#: distance of an embedding to itself (or a duplicate image) is 0. Same value as `trinet.distances`.
EUCLIDEAN_EPSILON = 1e-12
#: Guards the norms of the cosine distance against zero vectors. Same value as `trinet.distances`.
COSINE_EPSILON = 1e-12
#: A per-anchor loss above this counts as an "active" (non-zero) triplet, as in the original code.
ACTIVE_THRESHOLD = 1e-5


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


#: Distance metrics by name; the same names and definitions as the numpy `trinet.distances.METRICS`.
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


def apply_margin(diff: tf.Tensor, margin: float | str) -> tf.Tensor:
    """Turn `d(a,p) - d(a,n)` into a loss: hinge `max(diff + m, 0)` for a number m >= 0, softplus
    `ln(1 + exp(diff))` for 'soft', and the raw difference for 'none'."""
    if isinstance(margin, str):
        kind = margin.lower()
        if kind == "soft":
            return tf.nn.softplus(diff)
        if kind == "none":
            return diff
        raise ValueError(f"Unknown margin {margin!r}; expected a number >= 0, 'soft' or 'none'")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return tf.maximum(diff + margin, 0.0)


def label_masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(B,)` labels -> `(B, B)` bool masks (positive: same label, not self; negative: other label)."""
    same = tf.equal(tf.expand_dims(labels, 1), tf.expand_dims(labels, 0))
    eye = tf.eye(tf.shape(labels)[0], dtype=tf.bool)
    return tf.logical_and(same, tf.logical_not(eye)), tf.logical_not(same)


def batch_hard(dists: tf.Tensor, labels: tf.Tensor, margin: float | str = "soft") -> tuple[tf.Tensor,
                                                                                           tf.Tensor]:
    """Batch-hard triplet loss: per anchor, its furthest positive minus its closest negative.

    Args:
        dists: `(B, B)` distances (>= 0).
        labels: `(B,)` identities (any dtype comparable with `==`).
        margin: see `apply_margin`.

    Returns:
        `(loss, per_anchor)`: the mean over anchors and the `(B,)` per-anchor losses. An anchor
        without positives in the batch uses 0 as its furthest positive, as the original code did.
    """
    positive, negative = label_masks(labels)
    furthest_positive = tf.reduce_max(tf.where(positive, dists, tf.zeros_like(dists)), axis=1)
    inf = tf.fill(tf.shape(dists), tf.constant(float("inf"), dists.dtype))
    closest_negative = tf.reduce_min(tf.where(negative, dists, inf), axis=1)
    per_anchor = apply_margin(furthest_positive - closest_negative, margin)
    return tf.reduce_mean(per_anchor), per_anchor


def batch_all(dists: tf.Tensor, labels: tf.Tensor, margin: float | str = "soft") -> tuple[tf.Tensor,
                                                                                          tf.Tensor]:
    """Batch-all triplet loss: every valid triplet (a, p, n) of the batch, averaged over the
    triplets whose loss is non-zero (> 1e-16), or 0 if there is none.

    Returns:
        `(loss, per_anchor)`: the loss and the `(B,)` mean loss of each anchor's valid triplets.
    """
    positive, negative = label_masks(labels)
    diff = tf.expand_dims(dists, 2) - tf.expand_dims(dists, 1)  # (a, p, n): d(a,p) - d(a,n)
    valid = tf.logical_and(tf.expand_dims(positive, 2), tf.expand_dims(negative, 1))
    losses = tf.where(valid, apply_margin(diff, margin), tf.zeros_like(diff))
    active = tf.logical_and(valid, losses > 1e-16)
    loss = tf.math.divide_no_nan(tf.reduce_sum(losses), tf.reduce_sum(tf.cast(active, losses.dtype)))
    per_anchor = tf.math.divide_no_nan(tf.reduce_sum(losses, axis=[1, 2]),
                                       tf.reduce_sum(tf.cast(valid, losses.dtype), axis=[1, 2]))
    return loss, per_anchor


#: Loss functions by name: `(dists (B,B), labels (B,), margin) -> (loss, per_anchor (B,))`.
LOSSES: dict[str, Callable[..., tuple[tf.Tensor, tf.Tensor]]] = {
    "batch_hard": batch_hard,
    "batch_all": batch_all,
}


def get_loss(name: str) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
    """The loss function registered as `name`."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name]
