"""In-batch monitoring of an embedding: nearest-neighbour accuracy and distance statistics.

Kept apart from the losses: these values are logged, never minimised.
"""

from __future__ import annotations

import tensorflow as tf

from trinet.losses.triplet import ACTIVE_THRESHOLD, label_masks


def batch_stats(dists: tf.Tensor, labels: tf.Tensor, k: int) -> dict[str, tf.Tensor]:
    """Nearest-neighbour statistics of a `(B, B)` distance matrix with `(B,)` labels.

    Each anchor's neighbours exclude the anchor itself explicitly (the original assumed it came
    first, which fails for exact duplicates). Ties are broken by batch position.

    Returns:
        top1: fraction of anchors whose nearest neighbour has the same label.
        prec_at_k: mean fraction of same-label images among each anchor's k nearest neighbours
            (k = K - 1 in a P x K batch).
        pos_dists, neg_dists: all positive / negative pair distances, flattened.
    """
    positive, negative = label_masks(labels)
    same = tf.logical_or(positive, tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    masked = tf.linalg.set_diag(dists, tf.fill(tf.shape(dists)[:1], tf.constant(float("inf"), dists.dtype)))
    k = max(1, int(k))
    _, indices = tf.math.top_k(-masked, k=k)
    hits = tf.cast(tf.gather(same, indices, batch_dims=1), tf.float32)  # (B, k)
    return {
        "top1": tf.reduce_mean(hits[:, 0]),
        "prec_at_k": tf.reduce_mean(hits),
        "pos_dists": tf.boolean_mask(dists, positive),
        "neg_dists": tf.boolean_mask(dists, negative),
    }


def active_fraction(per_anchor: tf.Tensor) -> tf.Tensor:
    """Fraction of anchors whose loss is above `ACTIVE_THRESHOLD` (still contributing)."""
    return tf.reduce_mean(tf.cast(per_anchor > ACTIVE_THRESHOLD, tf.float32))
