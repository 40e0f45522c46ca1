"""Learning without labels (`--unlabeled_set`, issue 21): the pseudo labels of an unlabeled set.

At the start and every `--recluster_frequency` iterations, `PseudoLabeler.recluster` embeds the unlabeled
set with the current model (one view, as validation embeds), clusters it (`trinet.adaptation.clustering`:
DBSCAN on the sparse k-reciprocal Jaccard distance), logs the figures (and, when the set's CSV holds true
identities, the pseudo labels' quality, as a diagnostic) to train.log and TensorBoard, and sets the cluster
memory to the clusters' centroids. Training then draws P x K batches of the clusters; outliers are left out
of sampling until the next clustering (`pseudo_pids`).

What a resumed run needs is in its checkpoints (group `pseudo_labels`: the `(N,)` labels, the number of
clusters and the `(N, D)` memory, of fixed shapes: at most N clusters) and in the checkpoint's state
(`next_clustering`, `clusterings`). The clustering is a deterministic function of the embeddings and the
settings, and the sampler of each clustering has its own seed (`sampler_seed`), so a run interrupted between
two clusterings resumes bit for bit.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from trinet.config.settings import TrainSettings
from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset, check_files, read_any

log = logging.getLogger("trinet.train")

#: The checkpoint group of the pseudo labels' variables.
GROUP = "pseudo_labels"


def load_unlabeled_set(s: TrainSettings) -> Dataset:
    """Read and check --unlabeled_set before any long work, by the rules of the training set: missing files
    (--skip_missing), non-image files and, since every clustering decodes each image, undecodable images
    always (--on_bad_image). Its identities (a dataset CSV's) are kept for the diagnostic only.

    Raises:
        TrinetError: images are bad (with --on_bad_image error) or missing, or fewer than 2 x
            --cluster_min_samples are left.
    """
    from trinet.pipeline.dataset import screen_images

    assert s.unlabeled_set is not None
    dataset = check_files(read_any(s.unlabeled_set, s.unlabeled_image_root), skip_missing=s.skip_missing)
    dataset = screen_images(dataset, s.unlabeled_set, decode_all=True,
                            reason="each clustering embeds them all", on_bad_image=s.on_bad_image,
                            threads=s.loading_threads)
    least = 2 * s.cluster_min_samples
    if len(dataset) < least:
        raise TrinetError(f"--unlabeled_set {s.unlabeled_set} has {len(dataset)} usable images; clustering "
                          f"with --cluster_min_samples {s.cluster_min_samples} needs at least {least} (2 "
                          "clusters). Add images, or lower --cluster_min_samples.")
    known = true_identities(dataset)
    log.info("Unlabeled set: %d images (%s)%s.", len(dataset), s.unlabeled_set,
             f"; its {len(np.unique(known))} identities serve only to measure the pseudo labels"
             if known is not None else "")
    return dataset


def true_identities(dataset: Dataset) -> np.ndarray | None:
    """`(N,)` int64 codes of the identities of an unlabeled set read from a dataset CSV, or None (a plain
    list of paths, or a CSV with an empty identity)."""
    if len(dataset) == 0 or (dataset.pids == "").any():
        return None
    return np.unique(dataset.pids, return_inverse=True)[1].astype(np.int64)


def camera_centred(embeddings: np.ndarray, cameras: np.ndarray) -> np.ndarray:
    """`(N, D)` float32: each embedding L2-normalised, less the mean of the normalised embeddings of its
    camera (`(N,)` cameras), normalised again (`--cluster_camera_norm`; a row that becomes 0 stays 0)."""
    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cameras = np.asarray(cameras)
    codes = np.unique(cameras, return_inverse=True)[1].reshape(-1)
    sums = np.zeros((codes.max(initial=-1) + 1, x.shape[1]))
    np.add.at(sums, codes, x)
    x = x - (sums / np.bincount(codes)[:, None])[codes]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 1e-12, norms, 1.0)).astype(np.float32)


def unlabeled_cameras(s: TrainSettings, dataset: Dataset) -> np.ndarray:
    """`(N,)` the camera of each unlabeled image for --cluster_camera_norm: the `camera` column, else the
    cameras of file names in a release's naming.

    Raises:
        TrinetError: neither gives them.
    """
    from trinet.data.naming import cameras_of

    found = cameras_of(dataset.cameras, dataset.fids)
    if found is None:
        raise TrinetError(f"--cluster_camera_norm needs the camera of every unlabeled image: "
                          f"{s.unlabeled_set} has no `camera` column and its file names follow no release's "
                          "naming. Give it a header such as `pid,path,camera`, or cluster without "
                          "--cluster_camera_norm.")
    log.info("--cluster_camera_norm: %d cameras, from %s.", len(np.unique(found[1])),
             found[0] if found[0].startswith("the ") else f"the {found[0]} file names")
    return np.asarray(found[1], np.int64)


def pseudo_pids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(pids (N,) int64, outlier rows)` for a sampler: the cluster of each row, outliers (-1) given the
    identity C (one past the last cluster, so that the identity codes of the sampler are the clusters') and
    returned to be excluded from sampling."""
    labels = np.asarray(labels, np.int64)
    count = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    return np.where(labels < 0, count, labels), np.flatnonzero(labels < 0)


def sampler_seed(seed: int, clustering: int) -> int:
    """The seed of the batches (and their augmentation) after clustering number `clustering` (1-based)."""
    return int(np.random.SeedSequence([seed, 21, clustering]).generate_state(1)[0] % 2**31)


class PseudoState:
    """The variables of pseudo-labelled training, of fixed shapes (a checkpoint group, and what the step
    reads): `labels` `(N,)` int32 (-1: outlier), `num_clusters` () int32 and, with the memory loss, `memory`
    `(N, D)` float32 whose first `num_clusters` rows are the clusters' entries."""

    def __init__(self, size: int, dim: int, memory: bool):
        self.size, self.dim = size, dim
        self.labels = keras.Variable(np.full(size, -1, np.int32), dtype="int32", trainable=False,
                                     name="pseudo_labels")
        self.num_clusters = keras.Variable(0, dtype="int32", trainable=False, name="num_clusters")
        self.memory = (keras.Variable(np.zeros((size, dim), np.float32), trainable=False,
                                      name="cluster_memory") if memory else None)

    def variables(self) -> list:
        return [self.labels, self.num_clusters] + ([self.memory] if self.memory is not None else [])

    def active(self) -> tf.Tensor:
        """`(N,)` bool: the memory rows that are clusters of the current clustering."""
        return tf.range(self.size) < tf.convert_to_tensor(self.num_clusters)

    def set(self, labels: np.ndarray, num_clusters: int, centroids: np.ndarray | None) -> None:
        """Take a new clustering: its `(N,)` labels and, with the memory, its `(C, D)` centroids."""
        self.labels.assign(np.asarray(labels, np.int32))
        self.num_clusters.assign(num_clusters)
        if self.memory is not None:
            assert centroids is not None
            memory = np.zeros((self.size, self.dim), np.float32)
            memory[:num_clusters] = centroids
            self.memory.assign(memory)


class PseudoLabeler:
    """Clusters the unlabeled `dataset` with the run's settings and keeps `state` (a `PseudoState`) up to
    date."""

    def __init__(self, s: TrainSettings, dataset: Dataset, state: PseudoState):
        from trinet.adaptation.clustering import ClusterSettings

        self.s, self.dataset, self.state = s, dataset, state
        self.settings = ClusterSettings(eps=s.cluster_eps, min_samples=s.cluster_min_samples, k1=s.cluster_k1,
                                        k2=s.cluster_k2, metric=s.embedding_metric)
        self.truth = true_identities(dataset)
        self.cameras = unlabeled_cameras(s, dataset) if s.cluster_camera_norm else None

    def embed(self, inference: keras.Model) -> np.ndarray:
        """`(N, D)` float32 embeddings of the unlabeled set by `inference` (one view, resized to the net input
        size)."""
        from trinet.embedding.embedder import Embedder

        embedder = Embedder(inference, self.s.net_size, source="the model being trained")
        return embedder.embed(self.dataset.paths(), batch_size=64, threads=min(4, self.s.loading_threads))

    def recluster(self, inference: keras.Model, step: int, writer=None) -> tuple[Any, str | None]:
        """Embed, cluster and log at iteration `step`; returns `(clustering, problem)`. When `problem` is
        not None (fewer than 2 clusters, or every image an outlier) nothing is changed and the caller stops
        after a checkpoint; otherwise `state` holds the new labels and centroids."""
        from trinet.adaptation.clustering import check_clustering, cluster, quality

        tick = time.perf_counter()
        embeddings = self.embed(inference)
        seconds = time.perf_counter() - tick
        clustering = cluster(embeddings if self.cameras is None else camera_centred(embeddings, self.cameras),
                             self.settings)
        log.info("Clustering at iteration %d (%d images embedded in %.1fs): %s", step, len(embeddings),
                 seconds, clustering.summary())
        values = {f"pseudo/{name}": value for name, value in clustering.figures().items()}
        values["pseudo/embedding_seconds"] = seconds
        if self.truth is not None:
            scores = quality(clustering.labels, self.truth)
            log.info("Pseudo labels against the unlabeled set's identities (a diagnostic, not used for "
                     "training): %s (precision and recall: of same-cluster pairs).",
                     ", ".join(f"{name.upper() if len(name) == 3 else name} {value:.3f}"
                               for name, value in scores.items()))
            values.update({f"pseudo/{name}": float(value) for name, value in scores.items()})
        if writer is not None:
            with writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(name, value)
        problem = check_clustering(clustering, self.settings)
        if problem is not None:
            return clustering, problem
        memory = None
        if self.state.memory is not None:
            from trinet.losses.memory import centroids
            memory = centroids(embeddings, clustering.labels, clustering.num_clusters)
        self.state.set(clustering.labels, clustering.num_clusters, memory)
        return clustering, None
