"""Pseudo labels: DBSCAN on the sparse k-reciprocal Jaccard distances, as Cluster Contrast (Dai et al. 2021).

`cluster` is a deterministic function of the embeddings and the settings: the Jaccard distances break ties by
index, and scikit-learn's DBSCAN visits the points in index order. Its clusters are renumbered 0..C-1 by their
smallest member index; outliers are -1.

DBSCAN gets the sparse matrix with `metric="precomputed"`: scikit-learn takes the stored entries as the
candidate neighbours (explicit zeros included) and the absent ones as not neighbours; absent pairs are at
Jaccard distance 1, never within an eps < 1, so the labels are those of DBSCAN on the dense matrix. Only the
pairs within eps are kept (`max_distance`): the others are never neighbours either.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from trinet.adaptation.jaccard import SEARCHES, jaccard_distances
from trinet.core.distances import METRICS


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """How the unlabeled images are clustered (the `--cluster_*` flags).

    Attributes:
        eps: DBSCAN's neighbourhood radius on the Jaccard distance, in (0, 1).
        min_samples: DBSCAN's neighbours (itself included) that make a core image.
        k1, k2: the k-reciprocal neighbourhood and query-expansion sizes.
        metric: the distance of the (normalised) embeddings for the neighbour ranking.
        search: the neighbour search, one of `jaccard.SEARCHES` ("auto": exact up to 30,000 images, then
            candidates from a PCA projection, ranked exactly).
    """

    eps: float = 0.6
    min_samples: int = 4
    k1: int = 30
    k2: int = 6
    metric: str = "euclidean"
    search: str = "auto"

    def problems(self) -> list[str]:
        """What is wrong with the settings, each naming the value (empty when they are valid)."""
        found = []
        if not (isinstance(self.eps, (int, float)) and 0.0 < self.eps < 1.0):
            found.append(f"eps must be in (0, 1) (the Jaccard distance is at most 1). "
                         f"Received: eps={self.eps!r}")
        for name in ("min_samples", "k1", "k2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                found.append(f"{name} must be an integer >= 1. Received: {name}={value!r}")
        if self.metric not in METRICS:
            found.append(f"Unknown metric {self.metric!r}; expected one of {sorted(METRICS)}")
        if self.search not in SEARCHES:
            found.append(f"Unknown neighbour search {self.search!r}; expected one of {list(SEARCHES)}")
        return found

    def __post_init__(self):
        found = self.problems()
        if found:
            raise ValueError("; ".join(found))


@dataclasses.dataclass
class Clustering:
    """The pseudo labels of N images.

    Attributes:
        labels: `(N,)` int64 cluster of each image, 0..C-1 numbered by smallest member index; -1 = outlier.
        num_clusters: C.
        num_outliers: images labelled -1.
        sizes: `(C,)` int64 images per cluster.
        seconds: the time the clustering took (Jaccard distances and DBSCAN).
    """

    labels: np.ndarray
    num_clusters: int
    num_outliers: int
    sizes: np.ndarray
    seconds: float

    @classmethod
    def from_labels(cls, labels: np.ndarray, seconds: float = 0.0) -> "Clustering":
        """A clustering of `(N,)` labels already numbered 0..C-1 (-1 = outlier)."""
        labels = np.asarray(labels, np.int64)
        sizes = np.bincount(labels[labels >= 0], minlength=int(labels.max(initial=-1)) + 1)
        return cls(labels, len(sizes), int((labels < 0).sum()), sizes.astype(np.int64), float(seconds))

    def figures(self) -> dict[str, float]:
        """The summary's figures by name (for TensorBoard): clusters, outliers, outlier_share, size_min,
        size_median, size_max (0 without clusters) and seconds."""
        n = len(self.labels)
        sizes = self.sizes if self.num_clusters else np.zeros(1)
        return {"clusters": float(self.num_clusters), "outliers": float(self.num_outliers),
                "outlier_share": self.num_outliers / n if n else 0.0, "size_min": float(sizes.min()),
                "size_median": float(np.median(sizes)), "size_max": float(sizes.max()),
                "seconds": self.seconds}

    def summary(self) -> str:
        """One line: clusters, outliers, images per cluster (min/median/max) and the time."""
        n = len(self.labels)
        share = 100.0 * self.num_outliers / n if n else 0.0
        line = f"{self.num_clusters} clusters and {self.num_outliers} outliers ({share:.1f}%) of {n} images"
        if self.num_clusters:
            line += (f"; images per cluster min {int(self.sizes.min())} / median "
                     f"{float(np.median(self.sizes)):g} / max {int(self.sizes.max())}")
        return line + f"; {self.seconds:.1f} s"


def renumber(labels: np.ndarray) -> np.ndarray:
    """`(N,)` labels (-1 = outlier) renumbered 0..C-1 in the order of each cluster's smallest member index."""
    labels = np.asarray(labels, np.int64)
    out = np.full(len(labels), -1, np.int64)
    members = labels >= 0
    if members.any():
        values, first, inverse = np.unique(labels[members], return_index=True, return_inverse=True)
        rank = np.empty(len(values), np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(values))
        out[members] = rank[inverse.reshape(-1)]
    return out


def cluster(embeddings: np.ndarray, settings: ClusterSettings,
            progress: Callable[[int], None] | None = None) -> Clustering:
    """Pseudo labels of `(N, D)` embeddings: DBSCAN on their sparse k-reciprocal Jaccard distances.

    `progress` is called with the rows of each finished block of the neighbour search.
    """
    from sklearn.cluster import DBSCAN

    start = time.perf_counter()
    distances = jaccard_distances(embeddings, settings.k1, settings.k2, settings.metric,
                                  search=settings.search, max_distance=settings.eps, progress=progress)
    dbscan = DBSCAN(eps=settings.eps, min_samples=settings.min_samples, metric="precomputed")
    raw = dbscan.fit_predict(distances)
    return Clustering.from_labels(renumber(raw), time.perf_counter() - start)


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def quality(labels: np.ndarray, true_pids: np.ndarray) -> dict[str, float]:
    """How well pseudo labels `(N,)` (-1 = outlier) match true identities `(N,)` (any values).

    Returns the adjusted Rand index (`ari`), normalised mutual information (`nmi`, scikit-learn's
    arithmetic mean), and the `precision` and `recall` of same-cluster pairs: of the pairs in one cluster,
    the share of the same identity, and of the pairs of one identity, the share in one cluster. Every
    outlier counts as a cluster of its own (it claims no pair); a share of no pairs is 1. Computed from the
    contingency counts, not from the N^2 pairs.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels, np.int64)
    true_pids = np.asarray(true_pids)
    if labels.ndim != 1 or true_pids.shape != labels.shape:
        raise ValueError(f"quality needs (N,) labels and (N,) true identities. "
                         f"Received: shapes {labels.shape} and {true_pids.shape}")
    singletons = labels.copy()
    outliers = labels < 0
    singletons[outliers] = labels.max(initial=-1) + 1 + np.arange(outliers.sum())
    truth = np.unique(true_pids, return_inverse=True)[1].reshape(-1)
    joint = np.unique(singletons * (truth.max(initial=0) + 1) + truth, return_counts=True)[1]
    together = _pairs(joint)
    claimed = _pairs(np.unique(singletons, return_counts=True)[1])
    actual = _pairs(np.unique(truth, return_counts=True)[1])
    return {
        "ari": float(adjusted_rand_score(truth, singletons)),
        "nmi": float(normalized_mutual_info_score(truth, singletons)),
        "precision": together / claimed if claimed else 1.0,
        "recall": together / actual if actual else 1.0,
    }


def check_clustering(clustering: Clustering, settings: ClusterSettings) -> str | None:
    """Why training cannot go on with this clustering, naming the figures and the flag to change (None:
    it can).

    Training needs at least 2 clusters (a contrast between clusters) and some images in them.
    """
    n = len(clustering.labels)
    if clustering.num_clusters >= 2 and clustering.num_outliers < n:
        return None
    found = (f"the clustering of {n} unlabeled images found {clustering.num_clusters} cluster(s) and "
             f"{clustering.num_outliers} outlier(s) (--cluster_eps {settings.eps:g}, --cluster_min_samples "
             f"{settings.min_samples}); training needs at least 2 clusters")
    if clustering.num_clusters == 0:
        hint = ("every image is an outlier: raise --cluster_eps (up to 1) so that more images are "
                "neighbours, or lower --cluster_min_samples")
    else:
        hint = ("the images form a single cluster: lower --cluster_eps so that it splits (or the model "
                "does not tell these images apart yet)")
    return f"{found}; {hint}"
