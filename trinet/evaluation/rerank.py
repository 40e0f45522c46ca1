"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li: "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), sparse and in blocks.

It computes what the authors' `re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)`
(github.com/zhunzhong07/person-re-ranking, python version) computes, without its dense (Q+G)^2
matrices. Over all N = Q + G images:

1. `original = d^2 / max_j d_ij^2`, the squared distances, each row divided by its maximum;
2. R(i, k): the k-reciprocal neighbours, j among the k+1 nearest of i with i among the k+1 nearest of j;
3. the set of i is R(i, k1) plus R(c, round(k1/2)) of each c in R(i, k1) whose set shares more than
   2/3 of its members with R(i, k1); V[i, j] = exp(-original_ij) over the set, normalised to sum 1;
4. query expansion: V[i] = mean of V over the k2 nearest of i (if k2 != 1);
5. jaccard_ij = 1 - m / (2 - m), m = sum_l min(V[i, l], V[j, l]);
6. final = jaccard * (1 - lambda) + original * lambda, for the query x gallery block.

Only the k nearest neighbours of each image and the sparse V are kept; the distances of a block of
queries are produced on demand. Ties in a ranking are broken by index (the authors' `np.argsort` left
them arbitrary); rankings use the squared distances before the division by the row maximum (the same
order up to rounding). A row whose maximum is 0 (all points equal) is divided by 1, not 0.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from trinet.core.distances import EUCLIDEAN_EPSILON, cdist, get_metric, rowwise

#: How many distances a block of the neighbour search holds at a time (16 MB in float32).
BLOCK_ENTRIES = 1 << 22

#: How many (query entry, gallery entry) products of the Jaccard step are held at a time.
JACCARD_BLOCK = 1 << 20


class _Embeddings:
    """Squared distances between all N = Q + G embeddings under a metric."""

    def __init__(self, query: np.ndarray, gallery: np.ndarray, metric: str):
        get_metric(metric)
        query, gallery = np.asarray(query), np.asarray(gallery)
        if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
            raise ValueError(f"re-ranking needs (Q, D) and (G, D) embeddings. Received: {query.shape}, "
                             f"{gallery.shape}")
        self.points = np.concatenate([query, gallery])
        self.num_queries, self.metric = len(query), metric
        self._columns: np.ndarray | None = None
        self._selected = self.points

    def __len__(self) -> int:
        return len(self.points)

    def squared(self, rows: slice, columns: np.ndarray | None = None) -> np.ndarray:
        """`(B, C)` squared distances of the points `rows` to the points `columns` (None: all)."""
        if columns is not None and self._columns is not columns:
            self._columns, self._selected = columns, self.points[columns]
        others = self.points if columns is None else self._selected
        if self.metric == "euclidean":
            # The square of sqrt(s + 1e-12), without the square root.
            out = cdist(self.points[rows], others, "sqeuclidean")
            out += EUCLIDEAN_EPSILON
            return out
        out = cdist(self.points[rows], others, self.metric)
        return np.square(out, out=out)

    def squared_pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """`(P,)` squared distances of the points `i` to the points `j`."""
        step = max(1, BLOCK_ENTRIES // (4 * self.points.shape[1]))
        parts = [rowwise(self.points[i[s:s + step]], self.points[j[s:s + step]], self.metric)
                 for s in range(0, len(i), step)]
        return np.square(np.concatenate(parts) if parts else np.zeros(0))


class _Matrices:
    """Squared distances from dense query-gallery, query-query and gallery-gallery matrices."""

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray):
        q_g, q_q, g_g = np.asarray(q_g), np.asarray(q_q), np.asarray(g_g)
        num_q, num_g = q_g.shape if q_g.ndim == 2 else (-1, -1)
        if q_q.shape != (num_q, num_q) or g_g.shape != (num_g, num_g):
            raise ValueError(f"re_ranking needs q_g_dist (Q, G), q_q_dist (Q, Q) and g_g_dist (G, G). "
                             f"Received: {q_g.shape}, {q_q.shape}, {g_g.shape}")
        self.full = np.block([[q_q, q_g], [q_g.T, g_g]])
        if not np.isfinite(self.full).all():
            raise ValueError("re_ranking needs finite distances; found NaN or infinite values")
        self.full = np.square(self.full.astype(np.result_type(self.full.dtype, np.float32)))
        self.num_queries = num_q

    def __len__(self) -> int:
        return len(self.full)

    def squared(self, rows: slice, columns: np.ndarray | None = None) -> np.ndarray:
        out = self.full[rows]
        return np.array(out if columns is None else out[:, columns])

    def squared_pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return self.full[i, j]


def parameter_warnings(k1: int, k2: int, num_queries: int, num_gallery: int) -> list[str]:
    """What makes `k1` and `k2` too large for `num_queries` + `num_gallery` images, in words that name
    the values (empty when they fit). Such values are still computed as the paper's code would."""
    n = num_queries + num_gallery
    sizes = f"{n} images (Q={num_queries} + G={num_gallery})"
    found = []
    if k1 + 1 > n:
        found.append(f"k1={k1} asks for the {k1 + 1} nearest neighbours of each image but there are only "
                     f"{sizes}: every image is in every neighbourhood, so the k-reciprocal sets tell nothing")
    elif k1 > num_gallery:
        found.append(f"k1={k1} is larger than the gallery (G={num_gallery}): the k-reciprocal "
                     "neighbourhoods reach past every gallery image into the queries")
    if k2 > n:
        found.append(f"k2={k2} is larger than the {sizes}; it acts as k2={n}")
    return found


def smallest(block: np.ndarray, k: int) -> np.ndarray:
    """`(B, N) -> (B, k)` column indices of each row's k smallest entries, by value, then index.

    Only the entries up to a cheap bound are sorted: the columns are dealt into interleaved classes
    (every C-th column), and the k-th smallest of the class minima is reached by k entries already.
    """
    num_rows, n = block.shape
    if k >= n:
        return np.argsort(block, axis=1, kind="stable")[:, :k]
    classes = min(n, max(128, 4 * k))
    width = n // classes
    minima = block[:, :width * classes].reshape(num_rows, width, classes).min(axis=1)
    bound = np.partition(minima, k - 1, axis=1)[:, k - 1]
    flat = np.flatnonzero(block <= bound[:, None])
    rows, cols = np.divmod(flat, n)
    counts = np.bincount(rows, minlength=num_rows)
    within = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    # The candidates of each row, left-aligned in column order; a stable sort keeps ties by index.
    values = np.full((num_rows, counts.max()), np.inf, dtype=block.dtype)
    values[rows, within] = block.reshape(-1)[flat]
    columns = np.zeros(values.shape, np.int64)
    columns[rows, within] = cols
    order = np.argsort(values, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(columns, order, axis=1)


def _reciprocal(nn: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`(N, K)` ranked neighbours -> the `(N, size)` forward lists (the `size` nearest) and the mask of
    the reciprocal ones (j among the `size` nearest of i with i among the `size` nearest of j)."""
    forward = nn[:, :size]
    mask = np.empty(forward.shape, bool)
    step = max(1, BLOCK_ENTRIES // max(1, forward.shape[1] ** 2))
    for s in range(0, len(nn), step):
        rows = np.arange(s, min(s + step, len(nn)))
        mask[rows] = (forward[forward[rows]] == rows[:, None, None]).any(axis=2)
    return forward, mask


def _expanded_sets(nn: np.ndarray, size: int, half_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-reciprocal sets after expansion as `(E,)` rows and columns, sorted by row then column;
    `size` and `half_size` are the lengths of the forward lists of R(i, k1) and R(c, round(k1/2))."""
    n = len(nn)
    fwd, recip = _reciprocal(nn, size)
    fwd_h, recip_h = _reciprocal(nn, half_size)
    size_h = recip_h.sum(axis=1)
    i_p = np.repeat(np.arange(n), recip.sum(axis=1))
    c_p = fwd[recip]
    parts_rows, parts_cols = [i_p], [c_p]
    step = max(1, BLOCK_ENTRIES // max(1, fwd.shape[1] * fwd_h.shape[1]))
    for s in range(0, len(i_p), step):
        i, c = i_p[s:s + step], c_p[s:s + step]
        # Members of R(c, half) that are also in R(i, k1).
        shared = ((fwd_h[c][:, :, None] == fwd[i][:, None, :]) & recip[i][:, None, :]).any(axis=2)
        overlap = (shared & recip_h[c]).sum(axis=1)
        accepted = 3 * overlap > 2 * size_h[c]  # overlap > 2/3 |R(c, half)|, in integers
        members = recip_h[c[accepted]]
        parts_rows.append(np.repeat(i[accepted], members.sum(axis=1)))
        parts_cols.append(fwd_h[c[accepted]][members])
    keys = np.unique(np.concatenate(parts_rows).astype(np.int64) * n + np.concatenate(parts_cols))
    return keys // n, keys % n


def encoding(nn: np.ndarray, squared_pairs: Callable[[np.ndarray, np.ndarray], np.ndarray], k1: int,
             k2: int, *, row_scale: np.ndarray | None = None,
             sizes: tuple[int, int] | None = None) -> sp.csr_matrix:
    """The k-reciprocal encoding V `(N, N)` float64 CSR (sorted indices) of steps 2-4 above.

    Args:
        nn: `(N, K)` each image's nearest neighbours, ranked (itself normally first).
        squared_pairs: `(P,), (P,) -> (P,)` the squared distances of pairs of images.
        k1, k2: the paper's parameters; the query expansion averages min(k2, K) neighbours.
        row_scale: `(N,)` divisor of each row's squared distances in the weights exp(-d^2 / scale)
            (re-ranking: the row maxima); None: 1 (Cluster Contrast).
        sizes: the lengths of the forward lists of R(i, k1) and R(c, round(k1/2)); default the
            paper's (k1 + 1, round(k1/2) + 1).
    """
    n = len(nn)
    half = int(np.around(k1 / 2.0))
    size, half_size = sizes if sizes is not None else (k1 + 1, half + 1)
    rows, cols = _expanded_sets(nn, size, half_size)
    weights = squared_pairs(rows, cols).astype(np.float64)
    if row_scale is not None:
        weights /= row_scale[rows]
    weights = np.exp(-weights)
    weights /= np.bincount(rows, weights=weights, minlength=n)[rows]
    v = sp.csr_matrix((weights, (rows, cols)), shape=(n, n))
    k2 = min(k2, nn.shape[1])
    if k2 != 1:
        expand = sp.csr_matrix((np.full(n * k2, 1.0 / k2), (np.repeat(np.arange(n), k2),
                                                            nn[:, :k2].reshape(-1))), shape=(n, n))
        v = expand @ v
    v.sum_duplicates()
    v.sort_indices()
    return v


def pair_minima(rows: sp.csr_matrix, columns: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The terms min(V[i, l], V[j, l]) of the Jaccard overlaps of the encodings `rows` `(B, L)` (CSR)
    with the encodings `columns` `(M, L)` (CSC with sorted indices: column l lists the j with V[j, l]).

    Returns `(T,)` row i (within the block), column j, and the minimum, one per shared l: for each
    entry (i, l) in `rows`' order, every entry (j, l) of `columns` in its order.
    """
    entry_rows = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    ls, a = rows.indices, rows.data
    counts = np.diff(columns.indptr)[ls]
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    where = np.repeat(columns.indptr[ls] - (ends - counts), counts) + np.arange(total)
    mins = np.minimum(np.repeat(a, counts), columns.data[where])
    return np.repeat(entry_rows, counts), columns.indices[where], mins


class ReRanker:
    """k-reciprocal re-ranked distances of query blocks (a `metrics.DistanceFn`).

    The neighbour lists and the sparse encoding V of all Q + G images are computed once at
    construction (in blocks of rows); a call gives the final distances of a block of queries.

    Args:
        source: the original distances (see `from_embeddings`, `from_matrices`).
        k1, k2, lambda_value: the paper's parameters (20, 6, 0.3).
        batch_size: rows per block for the neighbour search (lowered for large N).
        progress: called with the number of rows of each finished block of the neighbour search.
    """

    def __init__(self, source, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, *,
                 batch_size: int = 1024, progress: Callable[[int], None] | None = None):
        if int(k1) != k1 or k1 < 1 or int(k2) != k2 or k2 < 1:
            raise ValueError(f"k1 and k2 must be integers >= 1. Received: k1={k1}, k2={k2}")
        if not 0.0 <= lambda_value <= 1.0:
            raise ValueError(f"lambda_value must be in [0, 1]. Received: lambda_value={lambda_value}")
        self.source, self.k1, self.k2, self.lambda_value = source, int(k1), int(k2), float(lambda_value)
        n = len(source)
        self.num_queries, self.num_gallery = source.num_queries, n - source.num_queries
        nn, self.row_max = self._neighbours(min(n, max(self.k1 + 1, self.k2)), batch_size, progress)
        v = encoding(nn, source.squared_pairs, self.k1, self.k2, row_scale=self.row_max)
        self._v_query = v[:self.num_queries].tocsr()
        self._v_gallery = v[self.num_queries:].tocsc()
        self._v_gallery.sort_indices()
        # Sparse work of each query's Jaccard row (its entries times their gallery columns' entries).
        per_entry = np.diff(self._v_gallery.indptr)[self._v_query.indices]
        entry_rows = np.repeat(np.arange(self.num_queries), np.diff(self._v_query.indptr))
        self._work = np.bincount(entry_rows, weights=per_entry, minlength=self.num_queries)
        self._columns: np.ndarray | None = None

    @classmethod
    def from_embeddings(cls, query: np.ndarray, gallery: np.ndarray, metric: str = "euclidean",
                        **kwargs) -> "ReRanker":
        """Re-ranking of query `(Q, D)` and gallery `(G, D)` embeddings under `metric`."""
        return cls(_Embeddings(query, gallery, metric), **kwargs)

    @classmethod
    def from_matrices(cls, q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray,
                      **kwargs) -> "ReRanker":
        """Re-ranking of dense (symmetric q-q and g-g) distance matrices, as the authors' function."""
        return cls(_Matrices(q_g_dist, q_q_dist, g_g_dist), **kwargs)

    def _neighbours(self, k: int, batch_size: int, progress) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.source)
        nn = np.empty((n, k), np.int64)
        row_max = np.empty(n, np.float64)
        step = max(1, min(batch_size, BLOCK_ENTRIES // max(1, n)))
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            block = self.source.squared(rows)
            row_max[rows] = block.max(axis=1)
            nn[rows] = smallest(block, k)
            if progress is not None:
                progress(rows.stop - rows.start)
        row_max[row_max <= 0] = 1.0
        return nn, row_max

    def _overlap(self, rows: slice, column_of: np.ndarray | None, num_columns: int) -> np.ndarray:
        """`(B, C)` float64 sum_l min(V[i, l], V[j, l]) of the queries `rows` and the gallery columns."""
        vq = self._v_query[rows]
        # For each entry (i, l) of the queries, every gallery entry (j, l) of the same column l.
        entry_rows, gallery, mins = pair_minima(vq, self._v_gallery)
        cols = gallery if column_of is None else column_of[gallery]
        cell = entry_rows * num_columns + cols
        if column_of is not None:
            cell, mins = cell[cols >= 0], mins[cols >= 0]
        size = vq.shape[0] * num_columns
        return np.bincount(cell, weights=mins, minlength=size).reshape(vq.shape[0], num_columns)

    def __call__(self, rows: slice, columns: np.ndarray | None = None) -> np.ndarray:
        """`(B, C)` float64 re-ranked distances of the queries `rows` to the gallery entries `columns`
        (None: all)."""
        start, stop, _ = rows.indices(self.num_queries)
        whole = columns is None or (len(columns) == self.num_gallery
                                    and np.array_equal(columns, np.arange(self.num_gallery)))
        if columns is None:
            columns = np.arange(self.num_gallery)
        if self._columns is not columns:
            column_of = None
            if not whole:
                column_of = np.full(self.num_gallery, -1, np.int64)
                column_of[columns] = np.arange(len(columns))
            self._columns, self._column_of, self._shifted = columns, column_of, columns + self.num_queries
        out = np.empty((max(0, stop - start), len(columns)))
        # Sub-blocks keep the sparse work of the Jaccard step bounded.
        work = np.concatenate([[0], np.cumsum(self._work[start:stop])])
        bounds = [start]
        while bounds[-1] < stop:
            done = work[bounds[-1] - start]
            reach = int(np.searchsorted(work, done + JACCARD_BLOCK, side="right")) - 1 + start
            bounds.append(min(stop, max(reach, bounds[-1] + 1)))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            m = self._overlap(slice(lo, hi), self._column_of, len(columns))
            # (1 - lambda) * jaccard, jaccard = 1 - m / (2 - m) = 2 (1 - m) / (2 - m); in place.
            denominator = 2.0 - m
            np.subtract(1.0, m, out=m)
            m *= 2.0 * (1.0 - self.lambda_value)
            m /= denominator
            original = self.source.squared(slice(lo, hi), self._shifted)
            original *= (self.lambda_value / self.row_max[lo:hi, None]).astype(original.dtype)
            np.add(m, original, out=out[lo - start:hi - start])
        return out


def re_ranking(q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3) -> np.ndarray:
    """`(Q, G)` re-ranked distances from dense distances; the authors' function and arguments."""
    ranker = ReRanker.from_matrices(q_g_dist, q_q_dist, g_g_dist, k1=k1, k2=k2, lambda_value=lambda_value)
    return ranker(slice(None))
