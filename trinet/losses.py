"""Losses as pure TensorFlow functions.

Triplet losses: batch-hard and batch-all from "In Defense of the Triplet Loss for Person
Re-Identification" (Hermans, Beyer, Leibe 2017, arXiv:1703.07737). Each takes a `(B, B)` distance
matrix and `(B,)` labels and returns `(loss, per_anchor)`: the scalar to minimise and a `(B,)` vector.

The local triplet loss of AlignedReID (Zhang et al. 2017, arXiv:1711.08184) takes `(B, S, D)` stripe features
and the hard pairs mined with the global distances.

Identification and centre losses (Luo et al. 2019, "Bag of Tricks and a Strong Baseline for Deep
Person Re-identification"; Wen et al. 2016, "A Discriminative Feature Learning Approach for Deep Face
Recognition") return per-sample `(B,)` losses. How they are weighted and summed is
`trinet.objectives`; in-batch monitoring lives in `trinet.monitoring`.
"""

from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf

from trinet.distances import COSINE_EPSILON, EUCLIDEAN_EPSILON

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
    `trinet.local_distances.shortest_path`). Differentiable: the gradient flows along the cheapest path."""
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
    (e^d - 1) / (e^d + 1) = tanh(d / 2), then `shortest_path` (`trinet.local_distances`)."""
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


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor, label_smoothing: float = 0.0) -> tf.Tensor:
    """Softmax cross-entropy with label smoothing, `(B, C)` logits and `(B,)` int labels -> `(B,)`.

    The target is `(1 - e) * one_hot + e / C` (Szegedy et al. 2016; the Bag of Tricks uses e = 0.1),
    the same as Keras' `CategoricalCrossentropy(label_smoothing=e)`.
    """
    classes = tf.shape(logits)[-1]
    target = tf.one_hot(labels, classes, dtype=logits.dtype)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / tf.cast(classes, logits.dtype)
    return -tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=-1), axis=-1)


#: Bounds of each sample's squared distance to its centre (the Bag of Tricks' clamp).
CENTER_CLIP = (1e-12, 1e12)


def center_loss(features: tf.Tensor, labels: tf.Tensor, centers: tf.Tensor) -> tf.Tensor:
    """Centre loss: `(B, D)` features, `(B,)` int labels, `(C, D)` centres -> `(B,)` squared
    euclidean distance of each feature to its class centre, clipped to `CENTER_CLIP`."""
    own = tf.gather(centers, labels)
    return tf.clip_by_value(tf.reduce_sum(tf.square(features - own), axis=-1), *CENTER_CLIP)


# -- margin-based identification logits (`--classifier`; registry: `trinet.registries.CLASSIFIERS`) ---------
# Each maps the cosines `(B, C)` between the L2-normalised features and class weights, and the `(B,)` int
# labels, to the `(B, C)` logits that the cross-entropy sees. The model's own `logits` output is `s cos`; the
# margin needs the labels, so it is applied in the identification loss only.

#: Floor of 1 - cos^2 under the square root of ArcFace's sine (its gradient at |cos| = 1 stays finite).
SINE_EPSILON = 1e-12


def linear_logits(logits: tf.Tensor, labels: tf.Tensor, scale: float = 1.0, margin: float = 0.0) -> tf.Tensor:
    """The plain softmax classifier: its logits unchanged (`scale` and `margin` are not used)."""
    del labels, scale, margin
    return logits


def _target(cos: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.one_hot(labels, tf.shape(cos)[-1], on_value=True, off_value=False)


def cosface_logits(cos: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """CosFace / AM-softmax (Wang et al. 2018): `s (cos - m)` for the true class, `s cos` for the others."""
    return scale * tf.where(_target(cos, labels), cos - margin, cos)


def arcface_logits(cos: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """ArcFace (Deng et al. 2019): `s cos(theta + m)` for the true class, `s cos` for the others.

    `cos(theta + m) = cos cos m - sin sin m`. Where `theta + m > pi` (cos < cos(pi - m)) that would rise
    again with theta; there the true class takes `cos - m sin m` instead (the reference implementation's
    fallback, not the "easy margin"), which keeps it decreasing in theta and continuous.
    """
    sin = tf.sqrt(tf.maximum(1.0 - tf.square(cos), SINE_EPSILON))
    shifted = cos * math.cos(margin) - sin * math.sin(margin)
    shifted = tf.where(cos > math.cos(math.pi - margin), shifted, cos - margin * math.sin(margin))
    return scale * tf.where(_target(cos, labels), shifted, cos)


def circle_logits(cos: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """The softmax form of circle loss (Sun et al. 2020), as fast-reid's classifier: the true class
    `s a_p (cos - (1 - m))` with `a_p = [1 + m - cos]+`, the others `s a_n (cos - m)` with `a_n = [cos + m]+`.
    The weights `a_p`, `a_n` are not differentiated (as in the paper)."""
    detached = tf.stop_gradient(cos)
    positive = tf.nn.relu(1.0 + margin - detached) * (cos - (1.0 - margin))
    negative = tf.nn.relu(detached + margin) * (cos - margin)
    return scale * tf.where(_target(cos, labels), positive, negative)


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
