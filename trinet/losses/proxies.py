"""Proxy-based metric-learning losses as pure TensorFlow functions, `(embeddings (B, D), labels (B,), proxies
(C, D), ...) -> (B,)` per-sample losses whose batch mean is the loss. The proxies are one learnt vector per
training class (`trinet.training.trainer.Trainer` creates them, saves them in checkpoints and trains them with
their own learning-rate multiplier); both losses compare L2-normalised embeddings and proxies.

- `proxy_nca`: Movshovitz-Attias et al. 2017, "No Fuss Distance Metric Learning using Proxies": NCA of each
  embedding against the proxies, its own class's proxy left out of the denominator.
- `proxy_anchor`: Kim et al. 2020, "Proxy Anchor Loss for Deep Metric Learning" (equation 4).
"""

from __future__ import annotations

import tensorflow as tf

from trinet.losses.metric_learning import cosine_similarities, log1p_sum_exp, masked_logsumexp


def proxy_nca(embeddings: tf.Tensor, labels: tf.Tensor, proxies: tf.Tensor, scale: float = 3.0) -> tf.Tensor:
    """Proxy-NCA: `d(x, p_y) + log sum_{z != y} exp(-d(x, p_z))` = `-log(exp(-d(x, p_y)) / sum_{z != y}
    exp(-d(x, p_z)))`, `d` the squared euclidean distance between the embedding and the proxies, each
    L2-normalised and multiplied by `scale`: `d = 2 scale^2 (1 - cos)`.

    Args:
        embeddings: `(B, D)` float32; labels: `(B,)` int classes in [0, C).
        proxies: `(C, D)` float32, C >= 2.
        scale: the norm of embeddings and proxies: 3, as the widely used reproduction (dichotomies/proxy-nca's
            proxies) and ProxyNCA++'s temperature 1/9 (the paper fixes the norms without giving them).

    Returns:
        `(B,)` per-sample losses.
    """
    dists = 2.0 * scale ** 2 * (1.0 - cosine_similarities(embeddings, proxies))  # (B, C)
    own = tf.one_hot(labels, tf.shape(proxies)[0], on_value=True, off_value=False)
    others, _ = masked_logsumexp(-dists, tf.logical_not(own))
    return tf.gather(dists, labels, axis=1, batch_dims=1) + others


def proxy_anchor(embeddings: tf.Tensor, labels: tf.Tensor, proxies: tf.Tensor, alpha: float = 32.0,
                 delta: float = 0.1) -> tf.Tensor:
    """Proxy-Anchor loss, with cosine similarities s(x, p):

        1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x, p) - delta)))
        + 1/|P| sum_{p in P} log(1 + sum_{x in X_p-} exp(alpha (s(x, p) + delta))),

    P the C proxies, P+ those with a positive in the batch, X_p+ / X_p- the batch's samples of p's class /
    of the other classes.

    Args:
        embeddings: `(B, D)` float32; labels: `(B,)` int classes in [0, C).
        proxies: `(C, D)` float32.
        alpha, delta: the paper's 32 and 0.1.

    Returns:
        `(B,)`: each proxy's two terms shared among the samples in its sums by their softmax weight there
        (held constant, so the gradient is the loss's), times B: the batch mean is the loss.
    """
    sims = cosine_similarities(embeddings, proxies)  # (B, C)
    classes = tf.shape(proxies)[0]
    own = tf.one_hot(labels, classes, on_value=True, off_value=False)
    pos_logits, neg_logits = -alpha * (sims - delta), alpha * (sims + delta)
    pos = log1p_sum_exp(pos_logits, own, axis=0)  # (C,)
    neg = log1p_sum_exp(neg_logits, tf.logical_not(own), axis=0)
    with_positives = tf.reduce_sum(tf.cast(tf.reduce_any(own, axis=0), sims.dtype))
    size = tf.cast(tf.shape(sims)[0], sims.dtype)
    pos_share = _shares(pos_logits, own) * (pos / with_positives)[None, :]
    neg_share = _shares(neg_logits, tf.logical_not(own)) * (neg / tf.cast(classes, sims.dtype))[None, :]
    return size * tf.reduce_sum(pos_share + neg_share, axis=1)


def _shares(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """`(B, C)` softmax over the samples (axis 0) of the entries of `mask` (0 elsewhere), held constant."""
    logits = tf.stop_gradient(logits)
    lse, _ = masked_logsumexp(logits, mask, axis=0)
    inf = tf.constant(float("inf"), logits.dtype)
    return tf.exp(tf.where(mask, logits - lse[None, :], -inf))
