"""The k-reciprocal Jaccard distance between all images of an unlabeled set, sparse.

This is the distance that Cluster Contrast (Dai et al. 2021) and SpCL (Ge et al. 2020) cluster with DBSCAN:
their `compute_jaccard_distance(features, k1, k2)` (the re-ranking of Zhong et al. 2017 with lambda = 0, i.e.
pure Jaccard, over one set of images), without its dense N x N `V` and distance matrices. The encoding V is
built by `trinet.evaluation.rerank.encoding`, the function trinet's re-ranking uses, with Cluster Contrast's
conventions, which differ from the re-ranking paper's in three details:

1. the embeddings are L2-normalised first (Cluster Contrast clusters its model's normalised features) and the
   neighbour ranking is that of the k1 nearest, the image itself included: R(i, k1) is j among the k1 nearest
   of i with i among the k1 nearest of j (the paper: the k1 + 1 nearest); R(c, round(k1/2)) keeps the paper's
   round(k1/2) + 1 nearest (as Cluster Contrast's code does, from the same k1-long ranking);
2. the weights of V are exp(-d^2) over the expanded set, normalised to sum 1 (a softmax), with d^2 the
   squared distance of the normalised embeddings (2 - 2 cos for `euclidean`; summed in float32, as their
   float32 features); the paper divides d^2 by its row's maximum over all images first, which flattens the
   weights to [1/e, 1];
3. the query expansion averages the min(k2, k1) nearest (the ranking is only k1 long).

Why these: the defaults `--cluster_eps 0.6 --cluster_k1 30 --cluster_k2 6` and the published results (about
82% mAP on Market-1501 without labels) were obtained with exactly this distance; the row-maximum scaling gives
other Jaccard values, and eps would mean something else. Then jaccard_ij = 1 - m / (2 - m),
m = sum_l min(V[i, l], V[j, l]), clamped at 0 below (as theirs).

The result is sparse: only pairs whose encodings share an image have m > 0 and are stored; every other pair is
at distance exactly 1 (and never within any DBSCAN eps < 1). The diagonal is stored, as an explicit 0 (the
formula gives 1 there only for an image with an empty encoding). Ties in the ranking are broken by index.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from trinet.core.distances import cdist, get_metric, rowwise
from trinet.evaluation.rerank import encoding, pair_minima, smallest

#: How many float32 distances a block of the exact neighbour search holds at a time (64 MB).
NEIGHBOUR_BLOCK = 1 << 24

#: How many terms min(V[i, l], V[j, l]) a block of the Jaccard step holds at a time.
PAIR_BLOCK = 1 << 22

#: The neighbour searches of `jaccard_distances(search=...)`: "exact" in numpy blocks (deterministic, ties by
#: index); "faiss", exact with a faiss flat index (the `search` extra; ties in faiss's order); "pca",
#: candidates from a PCA projection, ranked exactly (approximate, deterministic; for large N x D); "auto",
#: "exact" up to AUTO_EXACT images (or PCA_DIMS dimensions), "pca" beyond.
SEARCHES = ("auto", "exact", "faiss", "pca")

#: search="auto": the most images searched exactly. Exact search costs O(N^2 D): about 10 s for 10,000
#: images of 2048-d on 2 cores, 100 times that for 100,000 (where "pca" takes about 2 minutes).
AUTO_EXACT = 30000

#: search="pca": the projection's dimension, how many candidates per neighbour (x k1) it proposes, and how
#: many rows (evenly spaced) estimate the principal axes.
PCA_DIMS, PCA_CANDIDATES, PCA_SAMPLE = 128, 3, 20000


def _prepare(embeddings: np.ndarray, normalize: bool) -> np.ndarray:
    x = np.asarray(embeddings)
    if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"jaccard_distances needs (N, D) embeddings with N, D >= 1. "
                         f"Received: shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("jaccard_distances needs finite embeddings; found NaN or infinite values")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def nearest_neighbours(x: np.ndarray, k: int, metric: str = "euclidean", *, search: str = "exact",
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
    """`(N, D) -> (N, k)` int64: each row's k nearest rows of `x` (itself normally first), nearest first."""
    get_metric(metric)
    if search not in SEARCHES:
        raise ValueError(f"Unknown neighbour search {search!r}; expected one of {list(SEARCHES)}")
    n = len(x)
    k = min(k, n)
    if search == "auto":
        search = "pca" if n > AUTO_EXACT and x.shape[1] > PCA_DIMS else "exact"
    if search == "faiss":
        return _faiss_neighbours(x, k, metric, progress)
    if search == "pca" and x.shape[1] > PCA_DIMS and n > k:
        return _pca_neighbours(x, k, metric, progress)
    return _exact_neighbours(x, k, metric, progress)


def _exact_neighbours(x: np.ndarray, k: int, metric: str, progress) -> np.ndarray:
    n = len(x)
    ranking = "sqeuclidean" if metric == "euclidean" else metric  # the same order, one pass less
    nn = np.empty((n, k), np.int64)
    step = max(1, NEIGHBOUR_BLOCK // n)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        nn[rows] = smallest(cdist(x[rows], x, ranking), k)
        if progress is not None:
            progress(rows.stop - rows.start)
    return nn


def _pca_neighbours(x: np.ndarray, k: int, metric: str, progress) -> np.ndarray:
    """The k nearest among the PCA_CANDIDATES x k nearest in the PCA_DIMS principal axes (Euclidean there),
    ranked by their exact distance in full dimension (then index).

    The axes span the sample's dominant subspace, found by randomised subspace iteration (Halko et al. 2011:
    two power iterations from a fixed-seed Gaussian start; an eigendecomposition of the D x D covariance
    costs more than the search at D = 2048 on few cores). Deterministic for the same inputs.
    """
    n = len(x)
    sample = x[::max(1, -(-n // PCA_SAMPLE))]
    sample = sample - sample.mean(axis=0)
    start = np.random.default_rng(0).standard_normal((x.shape[1], PCA_DIMS)).astype(np.float32)
    span = sample @ start
    for _ in range(2):
        span = sample @ (sample.T @ np.linalg.qr(span)[0])
    axes = np.linalg.qr(sample.T @ span)[0]
    candidates = _exact_neighbours(np.ascontiguousarray(x @ axes), min(n, PCA_CANDIDATES * k), "sqeuclidean",
                                   progress)
    nn = np.empty((n, k), np.int64)
    m = candidates.shape[1]
    step = max(1, (1 << 24) // (m * x.shape[1]))
    for first in range(0, n, step):
        rows = np.arange(first, min(first + step, n))
        cols = candidates[rows]
        others = x[cols.reshape(-1)].reshape(len(rows), m, x.shape[1])
        if metric in ("euclidean", "sqeuclidean", "cosine"):
            # The order of the squared distance, |b|^2 - 2 <a, b> (|a| is the row's own; cosine on unit rows).
            if metric == "cosine":
                others /= np.maximum(np.linalg.norm(others, axis=2, keepdims=True), 1e-12)
            values = np.einsum("bmd,bmd->bm", others, others) - 2 * np.einsum("bmd,bd->bm", others, x[rows])
        else:
            values = rowwise(np.repeat(x[rows], m, axis=0), others.reshape(-1, x.shape[1]), metric)
            values = values.reshape(cols.shape)
        nn[rows] = np.take_along_axis(cols, _rank(values, cols)[:, :k], axis=1)
    return nn


def _rank(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`(B, M)` positions of each row's entries ordered by value, then column index."""
    by_index = np.argsort(columns, axis=1, kind="stable")
    by_value = np.argsort(np.take_along_axis(values, by_index, axis=1), axis=1, kind="stable")
    return np.take_along_axis(by_index, by_value, axis=1)


def _faiss_neighbours(x: np.ndarray, k: int, metric: str, progress) -> np.ndarray:
    from trinet.search.index import import_faiss

    if metric not in ("euclidean", "sqeuclidean", "cosine"):
        raise ValueError(f"search='faiss' supports the metrics euclidean, sqeuclidean and cosine. "
                         f"Received: metric={metric!r}")
    faiss = import_faiss()
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(x.shape[1])
    else:
        index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    nn = np.empty((len(x), k), np.int64)
    step = 16384
    for start in range(0, len(x), step):
        rows = slice(start, min(start + step, len(x)))
        nn[rows] = index.search(x[rows], k)[1]
        if progress is not None:
            progress(rows.stop - rows.start)
    return nn


def _squares(diff: np.ndarray) -> np.ndarray:
    """`(..., D)` float32 differences -> their float32 sums of squares (one kernel for every caller, so that
    equal pairs give equal bits)."""
    flat = diff.reshape(-1, diff.shape[-1])
    return np.einsum("pd,pd->p", flat, flat).reshape(diff.shape[:-1])


def _squared_pairs(x: np.ndarray, metric: str,
                   nn: np.ndarray | None = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The squared distances of pairs, the weights' d^2 (float32 precision, as Cluster Contrast's).

    For `euclidean` they are sums of the squared float32 differences (exact 0 for identical images, and the
    same bits whatever the blocks), those of the neighbour lists `nn` `(N, k)` computed once row by row (the
    expanded sets are mostly within them; either way round: d(i, j) = d(j, i)), the others on demand. Other
    metrics: the square of `rowwise`."""
    n = len(x)
    keys = values = None
    if nn is not None and metric == "euclidean" and n:
        values = np.empty(nn.shape, np.float32)
        step = max(1, (1 << 22) // (nn.shape[1] * x.shape[1]))
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            values[rows] = _squares(x[nn[rows]] - x[rows][:, None, :])
        keys = (np.arange(n)[:, None] * n + nn).reshape(-1)
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values.reshape(-1)[order]

    def computed(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        step = max(1, (1 << 22) // x.shape[1])
        if metric == "euclidean":
            parts = [_squares(x[j[s:s + step]] - x[i[s:s + step]]) for s in range(0, len(i), step)]
        else:
            parts = [np.square(rowwise(x[i[s:s + step]], x[j[s:s + step]], metric))
                     for s in range(0, len(i), step)]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    def squared(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        if keys is None or values is None:
            return computed(i, j)
        out = np.full(len(i), np.nan)
        for a, b in ((i, j), (j, i)):
            missing = np.flatnonzero(np.isnan(out))
            wanted = a[missing] * n + b[missing]
            at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            hit = keys[at] == wanted
            out[missing[hit]] = values[at[hit]]
        missing = np.flatnonzero(np.isnan(out))
        out[missing] = computed(i[missing], j[missing])
        return out
    return squared


def kreciprocal_encoding(embeddings: np.ndarray, k1: int = 30, k2: int = 6, metric: str = "euclidean", *,
                         search: str = "auto", normalize: bool = True,
                         progress: Callable[[int], None] | None = None) -> sp.csr_matrix:
    """Cluster Contrast's k-reciprocal encoding V `(N, N)` float64 CSR of `(N, D)` embeddings (see the
    module)."""
    if int(k1) != k1 or k1 < 1 or int(k2) != k2 or k2 < 1:
        raise ValueError(f"k1 and k2 must be integers >= 1. Received: k1={k1}, k2={k2}")
    k1, k2 = int(k1), int(k2)
    x = _prepare(embeddings, normalize)
    nn = nearest_neighbours(x, k1, metric, search=search, progress=progress)
    return encoding(nn, _squared_pairs(x, metric, nn), k1, k2, sizes=(k1, int(np.around(k1 / 2.0)) + 1))


def overlap_distances(v: sp.csr_matrix, max_distance: float | None = None) -> sp.csr_matrix:
    """`(N, N)` sparse Jaccard distances 1 - m / (2 - m) of the encodings `v` (rows), stored where m > 0
    (and the distance is at most `max_distance`, if given) and on the diagonal (an explicit 0); symmetric bit
    for bit."""
    n = v.shape[0]
    v = sp.csr_matrix(v)
    v.sort_indices()
    columns = v.tocsc()
    columns.sort_indices()
    # Each row's number of terms, to cut the rows into blocks of bounded work.
    work = np.bincount(np.repeat(np.arange(n), np.diff(v.indptr)), weights=np.diff(columns.indptr)[v.indices],
                       minlength=n)
    ends = np.cumsum(work)
    indptr = np.zeros(n + 1, np.int64)
    indices_parts, data_parts = [], []
    lo = 0
    while lo < n:
        done = ends[lo - 1] if lo else 0.0
        hi = max(lo + 1, min(n, int(np.searchsorted(ends, done + PAIR_BLOCK, side="right"))))
        rows, cols, mins = pair_minima(v[lo:hi], columns)
        # Every row's own diagonal, with a term 0 (appended last: the sums are unchanged).
        block_rows = np.arange(hi - lo)
        keys = np.concatenate([rows * n + cols, block_rows * n + lo + block_rows])
        mins = np.concatenate([mins, np.zeros(hi - lo)])
        # A stable sort keeps each pair's terms in the order of l, the same for (i, j) and (j, i).
        order = np.argsort(keys, kind="stable")
        keys, mins = keys[order], mins[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        m = np.add.reduceat(mins, starts)
        cell = keys[starts]
        r, c = np.divmod(cell, n)
        dist = 1.0 - m / (2.0 - m)
        np.maximum(dist, 0.0, out=dist)
        dist[r + lo == c] = 0.0
        if max_distance is not None:
            keep = (dist <= max_distance) | (r + lo == c)
            r, c, dist = r[keep], c[keep], dist[keep]
        indptr[lo + 1:hi + 1] = np.cumsum(np.bincount(r, minlength=hi - lo)) + indptr[lo]
        indices_parts.append(c)
        data_parts.append(dist)
        lo = hi
    indices = np.concatenate(indices_parts) if indices_parts else np.zeros(0, np.int64)
    data = np.concatenate(data_parts) if data_parts else np.zeros(0)
    index_type = np.int32 if max(n, len(indices)) < 2 ** 31 else np.int64
    return sp.csr_matrix((data, indices.astype(index_type), indptr.astype(index_type)), shape=(n, n))


def jaccard_distances(embeddings: np.ndarray, k1: int = 30, k2: int = 6, metric: str = "euclidean", *,
                      search: str = "auto", normalize: bool = True, max_distance: float | None = None,
                      progress: Callable[[int], None] | None = None) -> sp.csr_matrix:
    """The k-reciprocal Jaccard distances `(N, N)` float64 CSR of `(N, D)` embeddings (see the module).

    Args:
        embeddings: `(N, D)` float embeddings of the unlabeled images.
        k1, k2: the neighbourhood sizes (Cluster Contrast: 30 and 6).
        metric: a `trinet.core.distances` metric, of the normalised embeddings.
        search: one of `SEARCHES`: "exact" (numpy blocks), "faiss" (an exact flat index; needs the
            `search` extra), "pca" (approximate: candidates from a 128-d PCA projection, ranked exactly;
            about 99% of the exact neighbours on generated 2048-d data, at a tenth of the time at 100,000
            images) or "auto" (exact up to AUTO_EXACT images, pca beyond).
        normalize: L2-normalise the embeddings first (Cluster Contrast does).
        max_distance: store only the pairs at most this far (DBSCAN's eps: the others are never neighbours,
            and at large N most of the overlapping pairs are far); None: every overlapping pair.
        progress: called with the number of rows of each finished block of the neighbour search.

    Returns:
        symmetric CSR with sorted indices: the stored entries are the pairs whose encodings overlap (within
        `max_distance`) and the diagonal (explicit 0); every absent pair is at distance 1 (or beyond
        `max_distance`).
    """
    v = kreciprocal_encoding(embeddings, k1, k2, metric, search=search, normalize=normalize,
                             progress=progress)
    return overlap_distances(v, max_distance)
