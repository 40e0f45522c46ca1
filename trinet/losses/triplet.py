"""Triplet losses as pure TensorFlow functions.

Batch-hard and batch-all from "In Defense of the Triplet Loss for Person Re-Identification" (Hermans, Beyer,
Leibe 2017, arXiv:1703.07737). Each takes a `(B, B)` distance matrix (`trinet.losses.pairwise`) and `(B,)`
labels and returns `(loss, per_anchor)`: the scalar to minimise and a `(B,)` vector.

The local triplet loss of AlignedReID (Zhang et al. 2017, arXiv:1711.08184) takes `(B, S, D)` stripe features
and the hard pairs mined with the global distances. How the losses are weighted and summed is
`trinet.training.objectives`; in-batch monitoring lives in `trinet.losses.monitoring`.
"""

from __future__ import annotations

import tensorflow as tf

from trinet.core.distances import EUCLIDEAN_EPSILON

#: A per-anchor loss above this counts as an "active" (non-zero) triplet, as in the original code.
ACTIVE_THRESHOLD = 1e-5


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


def _batch_all_terms(dists: tf.Tensor, labels: tf.Tensor, margin: float | str):
    """`(losses (B, B, B), valid (B, B, B), active count)` of every triplet (a, p, n)."""
    positive, negative = label_masks(labels)
    diff = tf.expand_dims(dists, 2) - tf.expand_dims(dists, 1)  # (a, p, n): d(a,p) - d(a,n)
    valid = tf.logical_and(tf.expand_dims(positive, 2), tf.expand_dims(negative, 1))
    losses = tf.where(valid, apply_margin(diff, margin), tf.zeros_like(diff))
    active = tf.reduce_sum(tf.cast(tf.logical_and(valid, losses > 1e-16), losses.dtype))
    return losses, valid, active


def batch_all(dists: tf.Tensor, labels: tf.Tensor, margin: float | str = "soft") -> tuple[tf.Tensor,
                                                                                          tf.Tensor]:
    """Batch-all triplet loss: every valid triplet (a, p, n) of the batch, averaged over the
    triplets whose loss is non-zero (> 1e-16), or 0 if there is none.

    Returns:
        `(loss, per_anchor)`: the loss and the `(B,)` mean loss of each anchor's valid triplets.
    """
    losses, valid, active = _batch_all_terms(dists, labels, margin)
    loss = tf.math.divide_no_nan(tf.reduce_sum(losses), active)
    per_anchor = tf.math.divide_no_nan(tf.reduce_sum(losses, axis=[1, 2]),
                                       tf.reduce_sum(tf.cast(valid, losses.dtype), axis=[1, 2]))
    return loss, per_anchor


def batch_all_contributions(dists: tf.Tensor, labels: tf.Tensor, margin: float | str = "soft") -> tf.Tensor:
    """`(B,)` share of each anchor in the batch-all loss: B x (its triplets' summed loss) / (number of
    active triplets), so that the mean over the batch is `batch_all`'s loss."""
    losses, _, active = _batch_all_terms(dists, labels, margin)
    size = tf.cast(tf.shape(dists)[0], losses.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(losses, axis=[1, 2]) * size, active)


def shortest_path(costs: tf.Tensor) -> tf.Tensor:
    """`(..., S, T)` costs -> `(...)`: the cheapest path from `[0, 0]` to `[S-1, T-1]` moving one cell down or
    right at a time, both end cells counted (S and T static; the numpy twin is
    `trinet.core.local_distances.shortest_path`). Differentiable: the gradient flows along the cheapest
    path."""
    s, t = costs.shape[-2], costs.shape[-1]
    if s is None or t is None:
        raise ValueError(f"shortest_path needs static S and T. Received: shape {costs.shape}")
    row = [costs[..., 0, 0]]
    for j in range(1, t):
        row.append(row[-1] + costs[..., 0, j])
    for i in range(1, s):
        above = row
        row = [above[0] + costs[..., i, 0]]
        for j in range(1, t):
            row.append(tf.minimum(above[j], row[-1]) + costs[..., i, j])
    return row[-1]


def local_distance(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """AlignedReID's local distance of pairs `(P, S, D), (P, S, D) -> (P,)`: the S x S euclidean distances
    between the stripes of `a[p]` and of `b[p]` (with `EUCLIDEAN_EPSILON`), each normalised by
    (e^d - 1) / (e^d + 1) = tanh(d / 2), then `shortest_path` (`trinet.core.local_distances`)."""
    diff = tf.expand_dims(a, 2) - tf.expand_dims(b, 1)  # (P, S, S, D)
    stripes = tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1) + EUCLIDEAN_EPSILON)
    return shortest_path(tf.tanh(stripes / 2))


def hardest_pairs(dists: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The batch-hard choices of `(B, B)` distances: `(furthest positive (B,), closest negative (B,), whether
    the anchor has a positive (B,) bool)`, indices into the batch (an anchor without positive gets 0)."""
    positive, negative = label_masks(labels)
    inf = tf.fill(tf.shape(dists), tf.constant(float("inf"), dists.dtype))
    furthest = tf.argmax(tf.where(positive, dists, -inf), axis=1, output_type=tf.int32)
    closest = tf.argmin(tf.where(negative, dists, inf), axis=1, output_type=tf.int32)
    return furthest, closest, tf.reduce_any(positive, axis=1)


def local_triplet(dists: tf.Tensor, local: tf.Tensor, labels: tf.Tensor,
                  margin: float | str = "soft") -> tf.Tensor:
    """AlignedReID's local triplet loss, `(B,)` per anchor: for the hardest positive and negative chosen by
    the *global* distances `dists` `(B, B)` (as `batch_hard`), the local distances (`local_distance`) of
    the pairs from the `(B, S, D)` local features, `apply_margin(d_ap - d_an, margin)`. An anchor without
    positive uses 0 as its positive distance, as `batch_hard`."""
    furthest, closest, has_positive = hardest_pairs(dists, labels)
    d_ap = local_distance(local, tf.gather(local, furthest))
    d_an = local_distance(local, tf.gather(local, closest))
    return apply_margin(tf.where(has_positive, d_ap, tf.zeros_like(d_ap)) - d_an, margin)
