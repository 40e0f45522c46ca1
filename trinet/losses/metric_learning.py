"""Pair-based metric-learning losses as pure TensorFlow functions, `(embeddings (B, D), labels (B,), ...) ->
(B,)` per-sample losses whose batch mean is the loss.

Every loss here sees the L2-normalised embeddings (`unit`): the distance-based ones the euclidean distance
between unit vectors (in [0, 2]; `trinet.losses.pairwise.cdist`, with its epsilon), the similarity-based ones
the cosine similarity (in [-1, 1]), as the papers and pytorch-metric-learning do, so that their margins mean
the same whatever the scale of the features. Compare the trained embeddings by cosine (`--test_metric
cosine`).

- `contrastive`: Hadsell, Chopra, LeCun 2006, "Dimensionality Reduction by Learning an Invariant Mapping",
  in pytorch-metric-learning's form (hinges, not squared; averaged over the pairs of non-zero loss).
- `multi_similarity`: Wang et al. 2019, "Multi-Similarity Loss with General Pair Weighting for Deep Metric
  Learning", with its pair mining.
- `lifted_structure`: Song et al. 2016, "Deep Metric Learning via Lifted Structured Feature Embedding", the
  smooth bound of its equation 4.
- `supcon`: Khosla et al. 2020, "Supervised Contrastive Learning", the L_out form of its equation 2.
- `circle_pair`: Sun et al. 2020, "Circle Loss: A Unified Perspective of Pair Similarity Optimization", with
  pair-wise labels (equation 6), per anchor.

An anchor without a positive in the batch contributes 0 to the losses that need one (`multi_similarity`,
`supcon`, `circle_pair`), and the batch mean is over all B anchors (the official multi-similarity and
supervised-contrastive code do the same). `contrastive` and `lifted_structure` are means over pairs: each
anchor's value is its share (B x its pairs' sum / the batch's count), as `triplet.batch_all_contributions`.
"""

from __future__ import annotations

import tensorflow as tf

from trinet.core.distances import COSINE_EPSILON
from trinet.losses.pairwise import cdist
from trinet.losses.triplet import label_masks


def unit(x: tf.Tensor) -> tf.Tensor:
    """`(N, D)` rows divided by their norm, `x / sqrt(|x|^2 + 1e-12)` (the epsilon of the cosine distance:
    a zero row stays zero and its gradient finite)."""
    return x * tf.math.rsqrt(tf.reduce_sum(tf.square(x), axis=-1, keepdims=True) + COSINE_EPSILON)


def cosine_similarities(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """`(N, D), (M, D) -> (N, M)` cosine similarities of the rows."""
    return tf.matmul(unit(a), unit(b), transpose_b=True)


def masked_logsumexp(x: tf.Tensor, mask: tf.Tensor, axis: int = -1) -> tuple[tf.Tensor, tf.Tensor]:
    """`log sum exp(x)` over the entries of `mask` along `axis`, and whether there was any.

    Where the mask selects nothing the value is 0 (not -inf), and no gradient there is NaN: the callers
    pick it out with the second result. Returns `(values, any)`, `x`'s shape without `axis`.
    """
    inf = tf.constant(float("inf"), x.dtype)
    top = tf.reduce_max(tf.where(mask, x, -inf), axis=axis, keepdims=True)
    top = tf.stop_gradient(tf.where(tf.math.is_finite(top), top, tf.zeros_like(top)))
    shifted = tf.where(mask, x - top, tf.zeros_like(x))  # exp(0) outside the mask, then dropped
    total = tf.reduce_sum(tf.where(mask, tf.exp(shifted), tf.zeros_like(x)), axis=axis)
    found = tf.reduce_any(mask, axis=axis)
    values = tf.math.log(tf.where(found, total, tf.ones_like(total))) + tf.squeeze(top, axis)
    return tf.where(found, values, tf.zeros_like(values)), found


def log1p_sum_exp(x: tf.Tensor, mask: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """`log(1 + sum exp(x))` over the entries of `mask` along `axis` (0 where it selects nothing)."""
    values, found = masked_logsumexp(x, mask, axis)
    return tf.where(found, tf.nn.softplus(values), tf.zeros_like(values))


def _pair_shares(pair_losses: tf.Tensor) -> tf.Tensor:
    """`(B, B)` losses of pairs (0 where not a pair) -> `(B,)`: B x each anchor's summed losses / the number
    of pairs of non-zero loss in the batch, so that the batch mean is the mean over those pairs."""
    size = tf.cast(tf.shape(pair_losses)[0], pair_losses.dtype)
    active = tf.reduce_sum(tf.cast(pair_losses > 0, pair_losses.dtype))
    return tf.math.divide_no_nan(tf.reduce_sum(pair_losses, axis=1) * size, active)


def contrastive(embeddings: tf.Tensor, labels: tf.Tensor, pos_margin: float = 0.0,
                neg_margin: float = 1.0) -> tf.Tensor:
    """Contrastive loss: `[d - pos_margin]+` for each positive pair, `[neg_margin - d]+` for each negative
    pair, `d` the euclidean distance of the unit embeddings; the positive and the negative pairs are each
    averaged over their pairs of non-zero loss (pytorch-metric-learning's `AvgNonZeroReducer`).

    Args:
        embeddings: `(B, D)` float32.
        labels: `(B,)` classes.
        pos_margin, neg_margin: the margins (pytorch-metric-learning's defaults 0 and 1).

    Returns:
        `(B,)`: each anchor's share of the loss.
    """
    dists = cdist(unit(embeddings), unit(embeddings), "euclidean")
    positive, negative = label_masks(labels)
    zeros = tf.zeros_like(dists)
    pos = tf.where(positive, tf.nn.relu(dists - pos_margin), zeros)
    neg = tf.where(negative, tf.nn.relu(neg_margin - dists), zeros)
    return _pair_shares(pos) + _pair_shares(neg)


def multi_similarity(embeddings: tf.Tensor, labels: tf.Tensor, alpha: float = 2.0, beta: float = 50.0,
                     base: float = 0.5, epsilon: float = 0.1) -> tf.Tensor:
    """Multi-similarity loss with its mining, per anchor i with cosine similarities S:

        1/alpha log(1 + sum_{p kept} exp(-alpha (S_ip - base))) + 1/beta log(1 + sum_{n kept} exp(beta (S_in
        - base))),

    a negative kept if `S_in + epsilon > min_p S_ip`, a positive kept if `S_ip - epsilon < max_n S_in`.

    Args:
        embeddings: `(B, D)` float32; labels: `(B,)`.
        alpha, beta, base, epsilon: the paper's 2, 50, 0.5 (lambda) and 0.1.

    Returns:
        `(B,)` per-anchor losses (an anchor without positive: its negatives' term only if any is kept, which
        needs a positive to compare with: so 0).
    """
    sims = cosine_similarities(embeddings, embeddings)
    positive, negative = label_masks(labels)
    inf = tf.constant(float("inf"), sims.dtype)
    hardest_positive = tf.reduce_min(tf.where(positive, sims, inf), axis=1, keepdims=True)
    hardest_negative = tf.reduce_max(tf.where(negative, sims, -inf), axis=1, keepdims=True)
    kept_negatives = tf.logical_and(negative, sims + epsilon > hardest_positive)
    kept_positives = tf.logical_and(positive, sims - epsilon < hardest_negative)
    pos = log1p_sum_exp(-alpha * (sims - base), kept_positives) / alpha
    neg = log1p_sum_exp(beta * (sims - base), kept_negatives) / beta
    return pos + neg


def lifted_structure(embeddings: tf.Tensor, labels: tf.Tensor, margin: float = 1.0) -> tf.Tensor:
    """Lifted structured loss, its smooth form: for each positive pair (i, j) with euclidean distances D of
    the unit embeddings,

        J_ij = log(sum_{k neg of i} exp(margin - D_ik) + sum_{l neg of j} exp(margin - D_jl)) + D_ij,

    and the loss is `1 / (2 |P|) sum_{(i, j) in P} [J_ij]+^2` over the unordered positive pairs P.

    Args:
        embeddings: `(B, D)` float32; labels: `(B,)`.
        margin: the paper's 1.

    Returns:
        `(B,)`: each anchor's share (B x the sum over its ordered positive pairs of [J]+^2 / 2, over the
        number of ordered positive pairs), whose mean is the loss.
    """
    dists = cdist(unit(embeddings), unit(embeddings), "euclidean")
    positive, negative = label_masks(labels)
    rows, has_negative = masked_logsumexp(margin - dists, negative)  # (B,): log sum_k exp(m - D_ik)
    size = tf.shape(dists)[0]
    both = tf.stack([tf.tile(rows[:, None], [1, size]), tf.tile(rows[None, :], [size, 1])], axis=-1)
    both_found = tf.stack([tf.tile(has_negative[:, None], [1, size]),
                           tf.tile(has_negative[None, :], [size, 1])], axis=-1)
    lse, found = masked_logsumexp(both, both_found)  # (B, B)
    valid = tf.logical_and(positive, found)
    pair = tf.where(valid, tf.square(tf.nn.relu(lse + dists)), tf.zeros_like(dists))
    pairs = tf.reduce_sum(tf.cast(positive, dists.dtype))
    return tf.math.divide_no_nan(tf.reduce_sum(pair, axis=1) * tf.cast(size, dists.dtype), 2.0 * pairs)


def supcon(embeddings: tf.Tensor, labels: tf.Tensor, temperature: float = 0.1) -> tf.Tensor:
    """Supervised contrastive loss (L_out): for anchor i with positives P(i) and logits z_i . z_a / tau of
    the unit embeddings,

        -1/|P(i)| sum_{p in P(i)} log(exp(z_i . z_p / tau) / sum_{a != i} exp(z_i . z_a / tau)).

    Args:
        embeddings: `(B, D)` float32; labels: `(B,)`.
        temperature: tau (the paper's 0.1 for its ResNet-50 runs).

    Returns:
        `(B,)` per-anchor losses (0 for an anchor without positive).
    """
    logits = cosine_similarities(embeddings, embeddings) / temperature
    positive, _ = label_masks(labels)
    others = tf.logical_not(tf.eye(tf.shape(logits)[0], dtype=tf.bool))
    # the log-softmax from the row's largest logit (exact to float32 where one term dominates)
    inf = tf.constant(float("inf"), logits.dtype)
    top = tf.stop_gradient(tf.reduce_max(tf.where(others, logits, -inf), axis=1, keepdims=True))
    shifted = tf.where(others, logits - tf.where(tf.math.is_finite(top), top, tf.zeros_like(top)), 0.0)
    total = tf.reduce_sum(tf.where(others, tf.exp(shifted), tf.zeros_like(shifted)), axis=1, keepdims=True)
    log_prob = shifted - tf.math.log(tf.where(total > 0, total, tf.ones_like(total)))
    count = tf.reduce_sum(tf.cast(positive, logits.dtype), axis=1)
    total = tf.reduce_sum(tf.where(positive, log_prob, tf.zeros_like(log_prob)), axis=1)
    return -tf.math.divide_no_nan(total, count)


def circle_pair(embeddings: tf.Tensor, labels: tf.Tensor, margin: float = 0.4,
                gamma: float = 80.0) -> tf.Tensor:
    """Circle loss with pair-wise labels, per anchor with cosine similarities s:

        log(1 + sum_n exp(gamma a_n (s_n - m)) sum_p exp(-gamma a_p (s_p - (1 - m)))),

    `a_p = [1 + m - s_p]+` and `a_n = [s_n + m]+` held constant (not differentiated), as in the paper.

    Args:
        embeddings: `(B, D)` float32; labels: `(B,)`.
        margin, gamma: m and gamma; the paper's 0.4 and 80 for fine-grained image retrieval (CUB, Cars, SOP;
            it uses 0.25 and 256 for face recognition).

    Returns:
        `(B,)` per-anchor losses (0 for an anchor without a positive or a negative).
    """
    sims = cosine_similarities(embeddings, embeddings)
    positive, negative = label_masks(labels)
    fixed = tf.stop_gradient(sims)
    pos_logits = -gamma * tf.nn.relu(1.0 + margin - fixed) * (sims - (1.0 - margin))
    neg_logits = gamma * tf.nn.relu(fixed + margin) * (sims - margin)
    pos, has_positive = masked_logsumexp(pos_logits, positive)
    neg, has_negative = masked_logsumexp(neg_logits, negative)
    both = tf.logical_and(has_positive, has_negative)
    return tf.where(both, tf.nn.softplus(pos + neg), tf.zeros_like(pos))
