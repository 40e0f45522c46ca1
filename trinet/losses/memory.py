"""The cluster-memory contrastive loss of Cluster Contrast (Dai et al. 2021, "Cluster Contrast for
Unsupervised Person Re-Identification"; alibaba/cluster-contrast-reid `clustercontrast/models/cm.py`), as pure
TensorFlow.

The memory holds one L2-normalised vector per pseudo-identity (cluster), initialised to the cluster's
normalised mean (`centroids`) at each clustering and momentum-updated after each step (`updated_memory`); it
is not trained by gradient. The loss of a sample is the cross-entropy of its cosine similarities to the
memory, divided by a temperature, with its cluster as the label (InfoNCE over the clusters).

Everything is float32 and works inside `tf.function`. Under a distribution strategy the memory is a single
state shared by the replicas: call `updated_memory` with the whole global batch (the replicas' embeddings and
labels gathered, in replica order), so every replica applies the same update.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from trinet.config.registries import MEMORY_UPDATES
from trinet.losses.metric_learning import masked_logsumexp, unit


def memory_logits(embeddings: tf.Tensor, memory: tf.Tensor, temperature: float) -> tf.Tensor:
    """`(B, D), (C, D) -> (B, C)`: cosine similarities of the normalised embeddings to the memory entries
    (taken as they are, normalised by their updates), divided by `temperature`."""
    embeddings = unit(tf.cast(embeddings, tf.float32))
    return tf.matmul(embeddings, tf.cast(memory, tf.float32), transpose_b=True) / temperature


def memory_loss(embeddings: tf.Tensor, labels: tf.Tensor, memory: tf.Tensor, temperature: float,
                active: tf.Tensor | None = None) -> tf.Tensor:
    """Per-sample cluster-memory InfoNCE: `log sum_c exp(s_c) - s_y`, `s = normalize(f) @ memory^T / T`.

    Args:
        embeddings: `(B, D)` (any float dtype; computed in float32).
        labels: `(B,)` int clusters in [0, C) (outliers are not sampled).
        memory: `(C, D)` float32 entries.
        temperature: T (Cluster Contrast: 0.05).
        active: `(C,)` bool, or None (all): entries left out of the softmax where False (a memory of fixed
            capacity larger than the current number of clusters). A label's own entry must be active.

    Returns:
        `(B,)` float32 per-sample losses.
    """
    logits = memory_logits(embeddings, memory, temperature)
    labels = tf.cast(labels, tf.int32)
    if active is None:
        mask = tf.ones_like(logits, tf.bool)
    else:
        mask = tf.broadcast_to(tf.cast(active, tf.bool)[None, :], tf.shape(logits))
    total, _ = masked_logsumexp(logits, mask)
    return total - tf.gather(logits, labels, axis=1, batch_dims=1)


def _moved(rows: tf.Tensor, features: tf.Tensor, momentum: float) -> tf.Tensor:
    """`momentum * rows + (1 - momentum) * features`, each row renormalised."""
    return unit(momentum * rows + (1.0 - momentum) * features)


def _occurrences(labels: tf.Tensor) -> tf.Tensor:
    """`(B,)` int32: how many earlier samples of the batch have the same label."""
    same = tf.equal(labels[:, None], labels[None, :])
    size = tf.shape(labels)[0]
    earlier = tf.linalg.band_part(tf.ones_like(same, tf.int32), -1, 0) - tf.eye(size, dtype=tf.int32)
    return tf.reduce_sum(tf.cast(same, tf.int32) * earlier, axis=1)


def mean_update(memory: tf.Tensor, features: tf.Tensor, labels: tf.Tensor, momentum: float) -> tf.Tensor:
    """Cluster Contrast's update (`CM.backward`): for each sample in batch order, `m[y] = momentum m[y] +
    (1 - momentum) f`, then `m[y] /= |m[y]|`. A cluster with several samples in the batch is moved by each in
    turn; different clusters do not interact, so the r-th samples of all clusters are applied together."""
    rank = _occurrences(labels)

    def step(r, memory):
        chosen = tf.where(tf.equal(rank, r))[:, 0]
        rows = tf.gather(labels, chosen)
        new = _moved(tf.gather(memory, rows), tf.gather(features, chosen), momentum)
        return r + 1, tf.tensor_scatter_nd_update(memory, rows[:, None], new)

    last = tf.reduce_max(tf.concat([rank, [-1]], axis=0))
    _, memory = tf.while_loop(lambda r, _: r <= last, step, (tf.constant(0, tf.int32), memory))
    return memory


def hard_update(memory: tf.Tensor, features: tf.Tensor, labels: tf.Tensor, momentum: float) -> tf.Tensor:
    """Cluster Contrast's hard update (`CM_Hard.backward`): per cluster in the batch, the sample of least
    cosine similarity to the cluster's entry (the first in batch order on a tie) moves it once,
    `m = momentum m + (1 - momentum) f`, renormalised."""
    clusters, segment = tf.unique(labels)
    count = tf.shape(clusters)[0]
    similarity = tf.reduce_sum(features * tf.gather(memory, labels), axis=1)
    least = tf.math.unsorted_segment_min(similarity, segment, count)
    position = tf.range(tf.shape(labels)[0])
    candidate = tf.where(tf.equal(similarity, tf.gather(least, segment)), position, tf.shape(labels)[0])
    hardest = tf.math.unsorted_segment_min(candidate, segment, count)
    new = _moved(tf.gather(memory, clusters), tf.gather(features, hardest), momentum)
    return tf.tensor_scatter_nd_update(memory, clusters[:, None], new)


def updated_memory(memory: tf.Tensor, embeddings: tf.Tensor, labels: tf.Tensor, momentum: float,
                   mode: str = "mean") -> tf.Tensor:
    """The memory `(C, D)` float32 after a batch of `(B, D)` embeddings with `(B,)` int labels in [0, C).

    The embeddings are L2-normalised first (Cluster Contrast updates with its normalised features) and taken
    without gradient; `mode` is one of `trinet.config.registries.MEMORY_UPDATES` ("mean", "hard"). Rows of
    clusters absent from the batch are unchanged. The update works on the `(U, D)` rows of the batch's U
    clusters and writes them back once (the memory may have a row per image of a large set).
    """
    update = MEMORY_UPDATES.resolve(mode)  # ValueError listing the modes for an unknown one
    memory = tf.cast(memory, tf.float32)
    features = tf.stop_gradient(unit(tf.cast(embeddings, tf.float32)))
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    clusters, local = tf.unique(labels)
    rows = update(tf.gather(memory, clusters), features, local, momentum)
    return tf.tensor_scatter_nd_update(memory, clusters[:, None], rows)


def centroids(embeddings: np.ndarray, labels: np.ndarray, num_clusters: int) -> np.ndarray:
    """`(N, D), (N,) -> (C, D)` float32: each cluster's mean of the L2-normalised embeddings, normalised (the
    memory's initial entries, Cluster Contrast's). Outliers (-1) are ignored; a cluster with no member is
    0."""
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels, np.int64)
    if x.ndim != 2 or labels.shape != (len(x),):
        raise ValueError(f"centroids needs (N, D) embeddings and (N,) labels. Received: shapes {x.shape} and "
                         f"{labels.shape}")
    if labels.max(initial=-1) >= num_clusters:
        raise ValueError(f"a label is >= num_clusters={num_clusters}. Received: max label {labels.max()}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    members = labels >= 0
    one_hot = sp.csr_matrix((np.ones(int(members.sum())), (labels[members], np.flatnonzero(members))),
                            shape=(num_clusters, len(x)))
    sums = np.asarray(one_hot @ x)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def camera_proxies(embeddings: np.ndarray, labels: np.ndarray,
                   cameras: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-aware proxies (CAP, Wang et al. 2021): one per (cluster, camera) with members, the normalised
    mean of its L2-normalised embeddings; ordered by camera, then cluster (as CAP's per-camera memories,
    concatenated). Outliers (-1) are ignored.

    Returns:
        `(P, D)` float32 proxies, `(P,)` int64 their clusters and `(P,)` int64 their cameras.
    """
    labels, cameras = np.asarray(labels, np.int64), np.asarray(cameras, np.int64)
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2 or labels.shape != (len(x),) or cameras.shape != (len(x),):
        raise ValueError(f"camera_proxies needs (N, D) embeddings, (N,) labels and (N,) cameras. Received: "
                         f"shapes {x.shape}, {labels.shape} and {cameras.shape}")
    members = labels >= 0
    pairs, index = np.unique(np.stack([cameras[members], labels[members]], axis=1), axis=0,
                             return_inverse=True)
    sums = centroids(x[members], index.reshape(-1), len(pairs))
    return sums, pairs[:, 1].copy(), pairs[:, 0].copy()


def proxy_indices(labels: np.ndarray, cameras: np.ndarray, proxy_labels: np.ndarray,
                  proxy_cameras: np.ndarray) -> np.ndarray:
    """`(N,)` int64: the proxy of each sample's (cluster, camera) (-1 for outliers or a pair without a
    proxy); the labels of `updated_memory` on the proxies."""
    pairs = zip(np.asarray(proxy_labels), np.asarray(proxy_cameras))
    index = {(int(c), int(k)): i for i, (k, c) in enumerate(pairs)}
    return np.array([index.get((int(c), int(k)), -1) if k >= 0 else -1
                     for k, c in zip(np.asarray(labels), np.asarray(cameras))], np.int64)


def camera_memory_loss(embeddings: tf.Tensor, labels: tf.Tensor, cameras: tf.Tensor, proxies: tf.Tensor,
                       proxy_labels: tf.Tensor, proxy_cameras: tf.Tensor, temperature: float, *,
                       inter_weight: float = 0.5, hard_negatives: int = 50,
                       active: tf.Tensor | None = None) -> tf.Tensor:
    """Per-sample camera-aware proxy loss of CAP (Wang et al. 2021; Terminator8758/CAP-master
    `CamAwareMemory.py`): `intra + inter_weight * inter`, with `s = normalize(f) @ proxies^T / T` and

    - intra: cross-entropy over the proxies of the sample's camera, the target its (cluster, camera) proxy;
    - inter: `-mean_{p in P} log softmax(s)_p` over P (every proxy of the sample's cluster, any camera) plus
      the `hard_negatives` proxies of other clusters most similar to the sample (chosen without gradient;
      ties at the last one's similarity are all kept).

    CAP sums the mean of the intra term of each camera in the batch; here every sample weighs the same (the
    batch mean is the mean over samples). CAP starts the inter term after some epochs: pass `inter_weight`
    0 until then.

    Args:
        embeddings: `(B, D)`; labels, cameras: `(B,)` int (each sample's (cluster, camera) must have a
            proxy: see `camera_proxies`, `proxy_indices`).
        proxies: `(P, D)` float32; proxy_labels, proxy_cameras: `(P,)` int.
        temperature: CAP's 0.07 (its code's beta 0.05).
        active: `(P,)` bool or None: proxies left out everywhere where False (a memory of fixed capacity).

    Returns:
        `(B,)` float32 per-sample losses.
    """
    logits = memory_logits(embeddings, proxies, temperature)
    labels = tf.cast(tf.reshape(labels, [-1, 1]), tf.int64)
    cameras = tf.cast(tf.reshape(cameras, [-1, 1]), tf.int64)
    valid = tf.ones_like(logits, tf.bool)
    if active is not None:
        valid = tf.broadcast_to(tf.cast(active, tf.bool)[None, :], tf.shape(logits))
    same_cluster = tf.equal(tf.cast(proxy_labels, tf.int64)[None, :], labels) & valid
    same_camera = tf.equal(tf.cast(proxy_cameras, tf.int64)[None, :], cameras) & valid
    own = same_cluster & same_camera
    zeros = tf.zeros_like(logits)
    intra = masked_logsumexp(logits, same_camera)[0] - tf.reduce_sum(tf.where(own, logits, zeros), axis=1)
    negatives = valid & tf.logical_not(same_cluster)
    count = tf.minimum(hard_negatives, tf.shape(logits)[1])
    ninf = tf.fill(tf.shape(logits), tf.constant(-np.inf, logits.dtype))
    # The hard negatives: those at least as similar as the k-th most similar negative (ties all kept).
    kth = tf.math.top_k(tf.stop_gradient(tf.where(negatives, logits, ninf)), k=count).values[:, -1:]
    picked = negatives & (tf.stop_gradient(logits) >= kth) & tf.math.is_finite(kth)
    positives = tf.cast(same_cluster, logits.dtype)
    size = tf.maximum(tf.reduce_sum(positives, axis=1), 1.0)
    mean_positive = tf.reduce_sum(logits * positives, axis=1) / size
    inter = masked_logsumexp(logits, same_cluster | picked)[0] - mean_positive
    return intra + inter_weight * inter
