"""Retrieval metrics of the metric-learning benchmarks: Recall@K, MAP@R, R-precision and NMI.

CUB-200-2011, Cars196, Stanford Online Products and In-Shop Clothes test the retrieval of classes never
seen in training (Song et al. 2016; Liu et al. 2016 for In-Shop). They report:

* Recall@K: the fraction of queries with at least one item of their class among their K nearest
  gallery items (what re-identification calls the CMC at rank K, market1501 protocol).
* R-precision and MAP@R (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020): with R the
  number of gallery items of the query's class that the excluder keeps,
  R-precision = (matches among the R nearest) / R and
  MAP@R = (1/R) sum_{i <= R} P@i rel(i), where rel(i) is 1 when the i-th nearest is a match and P@i
  is the fraction of matches among the i nearest.
* NMI: the normalised mutual information between the classes and a k-means clustering of the
  embeddings into as many clusters as there are classes (scikit-learn's `KMeans`, seeded).

Ranking and ties are those of `trinet.evaluation.metrics` (and so of its CMC): per query, only the
gallery entries that the `Exclusion` keeps are ranked (`self_exclusion` or the `diagonal` excluder
leave the query itself out when query set = gallery set), and the ranking is pessimistic: a non-match
at the same distance as a match is ranked before it, so results never depend on the gallery order.
Matches tied with each other take consecutive positions, which gives the same counts whatever their
order. A query without any kept match (R = 0) has no value: it is NaN per query, skipped from every
mean, and counted in `RetrievalResults.num_skipped` (as in `trinet.evaluation.metrics`).

Exact and memory-bounded: the distances are computed for one block of queries at a time (at most
`metrics.MAX_BLOCK_ENTRIES` of them, see `metrics.block_rows`). Per block, one pass counts the
non-matches up to each query's farthest match; of those, the nearest one counts for the rank of the
first match, and only the R nearest for MAP@R and R-precision (a match preceded by R or more
non-matches is beyond rank R).

API (numpy; scikit-learn only for `kmeans_labels` / `nmi`):
    evaluate_retrieval(query_emb, gallery_emb, query_labels, gallery_labels, exclusion=None, *,
                       metric="euclidean", batch_size=256, distances=None, progress=None) -> RetrievalResults
    recall_at_k(query_emb, gallery_emb, query_labels, gallery_labels, ks, exclusion=None, **kw)
        -> dict[int, float]
    map_at_r(...same..., exclusion=None, **kw) -> float;  r_precision(...) -> float
    RetrievalCollector: an `on_block` observer of `metrics.evaluate`, for the same metrics in its pass.
    block_retrieval(block) -> RetrievalResults of one `metrics.Block`;  retrieval_of_matrix(distances,
        matches, ignore=None) -> RetrievalResults of a dense matrix.
    self_exclusion(n): query i ignores gallery i (query set = gallery set, by position).
    kmeans_labels(embeddings, num_clusters, seed); normalized_mutual_information(labels_true,
        labels_pred); nmi(embeddings, labels, seed=0) -> float.
    parse_metrics(tokens) -> MetricRequest: the `--metrics` syntax of evaluate.py.
Labels are any 1-D array (strings or integers; equal labels match), as the pids of `metrics`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Sequence

import numpy as np

from trinet.data.converters.retrieval import PROTOCOLS
from trinet.evaluation.excluders import Exclusion, Names
from trinet.evaluation.metrics import Block, DistanceFn, EmbeddingDistances, query_blocks

#: The K of Recall@K each benchmark reports (Song et al. 2016; Liu et al. 2016 for In-Shop), by converter
#: name (`trinet.data.converters.retrieval.PROTOCOLS` has the whole protocols).
BENCHMARK_KS: dict[str, tuple[int, ...]] = {name: p.ks for name, p in PROTOCOLS.items()}

#: The `--metrics` names of evaluate.py and what each adds: the one list of valid names.
RETRIEVAL_METRICS: dict[str, str] = {
    "recall@K": "Recall@K for a comma-separated list of K (e.g. recall@1,2,4,8): the fraction of "
                "queries with a match among their K nearest",
    "map_at_r": "MAP@R of Musgrave et al. 2020 (R = the query's kept matches)",
    "r_precision": "R-precision: the fraction of matches among the R nearest",
    "nmi": "NMI of a seeded k-means of the gallery embeddings (k = its number of classes) against its "
           "classes",
}


@dataclasses.dataclass(frozen=True)
class RetrievalResults:
    """Per-query retrieval figures.

    Attributes:
        num_matches: `(Q,)` int64, R: the kept gallery matches of each query (0: skipped).
        first_rank: `(Q,)` int64, 0-based pessimistic rank of the nearest match; -1 when skipped.
        r_precision: `(Q,)` float64 R-precision; NaN when skipped.
        map_at_r: `(Q,)` float64 MAP@R; NaN when skipped.
    """

    num_matches: np.ndarray
    first_rank: np.ndarray
    r_precision: np.ndarray
    map_at_r: np.ndarray

    @property
    def evaluated(self) -> np.ndarray:
        """`(Q,)` bool, the queries with at least one kept match."""
        return self.num_matches > 0

    @property
    def num_queries(self) -> int:
        return len(self.num_matches)

    @property
    def num_evaluated(self) -> int:
        return int(np.count_nonzero(self.evaluated))

    @property
    def num_skipped(self) -> int:
        return self.num_queries - self.num_evaluated

    def recall_at(self, k: int) -> float:
        """Recall@k over the evaluated queries (NaN if none)."""
        if k < 1:
            raise ValueError(f"Recall@K needs K >= 1. Received: k={k}")
        first = self.first_rank[self.evaluated]
        return float(np.mean(first < k)) if len(first) else float("nan")

    def recall(self, ks: Iterable[int]) -> dict[int, float]:
        """`{k: Recall@k}` for each k of `ks`."""
        return {int(k): self.recall_at(int(k)) for k in ks}

    @property
    def mean_map_at_r(self) -> float:
        return float(np.mean(self.map_at_r[self.evaluated])) if self.num_evaluated else float("nan")

    @property
    def mean_r_precision(self) -> float:
        return float(np.mean(self.r_precision[self.evaluated])) if self.num_evaluated else float("nan")

    @staticmethod
    def concatenate(parts: Sequence["RetrievalResults"]) -> "RetrievalResults":
        if not parts:
            return RetrievalResults(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
        return RetrievalResults(*(np.concatenate([getattr(p, f.name) for p in parts])
                                  for f in dataclasses.fields(RetrievalResults)))


def _block_figures(dist: np.ndarray, match_rows: np.ndarray, match_cols: np.ndarray,
                   drop_rows: np.ndarray, drop_cols: np.ndarray) -> RetrievalResults:
    """The figures of a `(B, C)` block of distances (overwritten); arguments as `metrics.rank_block`."""
    num_rows = len(dist)
    values = dist[match_rows, match_cols]
    dist[match_rows, match_cols] = np.inf
    dist[drop_rows, drop_cols] = np.inf  # now only the kept non-matches are finite
    order = np.lexsort((values, match_rows))
    values, rows = values[order], np.asarray(match_rows, np.int64)[order]
    counts = np.bincount(rows, minlength=num_rows).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    has = counts > 0
    farthest = np.full(num_rows, -np.inf, dtype=dist.dtype)
    farthest[has] = values[offsets[1:][has] - 1]
    # Only the non-matches up to a query's farthest match can precede one of its matches: one
    # comparison over the block, then a short list per query (as `metrics.rank_block`).
    near_mask = dist <= farthest[:, None]
    near = dist[near_mask]  # row by row
    near_offsets = np.concatenate([[0], np.cumsum(np.count_nonzero(near_mask, axis=1))])
    del near_mask
    first = np.full(num_rows, -1, np.int64)
    r_precision = np.full(num_rows, np.nan)
    map_at_r = np.full(num_rows, np.nan)
    for row in np.flatnonzero(has):
        mine = values[offsets[row]:offsets[row + 1]]
        r = len(mine)
        candidates = near[near_offsets[row]:near_offsets[row + 1]]
        first[row] = np.count_nonzero(candidates <= mine[0])
        if len(candidates) > r:  # a match behind r or more non-matches is beyond rank r anyway
            candidates = np.partition(candidates, r - 1)[:r]
        negatives_before = np.searchsorted(np.sort(candidates), mine, side="right")
        k = np.arange(1, r + 1)
        position = k + negatives_before  # pessimistic: tied non-matches first
        within = position <= r
        r_precision[row] = np.count_nonzero(within) / r
        map_at_r[row] = float(np.sum(k[within] / position[within])) / r
    return RetrievalResults(counts, first, r_precision, map_at_r)


def block_retrieval(block: Block) -> RetrievalResults:
    """The figures of the queries of one `metrics.Block` (its distances are not changed)."""
    return _block_figures(np.array(block.distances), block.match_rows, block.match_cols, block.drop_rows,
                          block.drop_cols)


class RetrievalCollector:
    """An `on_block` observer of `metrics.evaluate` / `rank_queries`: the retrieval figures in the same pass.

    Each block's distances are copied once (the block's own memory bound).
    """

    def __init__(self) -> None:
        self._parts: list[RetrievalResults] = []

    def __call__(self, block: Block) -> None:
        self._parts.append(block_retrieval(block))

    def results(self) -> RetrievalResults:
        return RetrievalResults.concatenate(self._parts)


def self_exclusion(n: int) -> Exclusion:
    """Query i ignores gallery item i: the leave-one-out protocol when query set = gallery set (by position;
    the `diagonal` excluder does the same by file name)."""
    keys = np.arange(n, dtype=np.int64)
    return Exclusion(keys, keys.copy(), np.zeros(n, bool))


def evaluate_retrieval(query_emb: np.ndarray, gallery_emb: np.ndarray, query_labels: Names,
                       gallery_labels: Names, exclusion: Exclusion | None = None, *,
                       metric: str = "euclidean", batch_size: int = 256, distances: DistanceFn | None = None,
                       progress: Callable[[int], None] | None = None) -> RetrievalResults:
    """Recall@K, MAP@R and R-precision of `(Q, D)` query against `(G, D)` gallery embeddings, in one pass.

    Args:
        query_emb, gallery_emb: finite float embeddings (ignored when `distances` is given, except for
            their number of rows).
        query_labels, gallery_labels: `(Q,)` and `(G,)` classes; equal labels match.
        exclusion: what each query ignores (None: nothing; `self_exclusion(n)` for query = gallery).
        metric: a name of `trinet.core.distances.METRICS`.
        batch_size: queries per block (fewer for large galleries: `metrics.block_rows`).
        distances: replaces the metric's distances (a `metrics.DistanceFn`).
        progress: called with the number of queries of each finished block.
    """
    if distances is None:
        for name, emb in (("query", query_emb), ("gallery", gallery_emb)):
            if not np.isfinite(emb).all():
                raise ValueError(f"the {name} embeddings must be finite; found NaN or infinite values")
        distances = EmbeddingDistances(query_emb, gallery_emb, metric)
    if len(query_labels) != len(query_emb) or len(gallery_labels) != len(gallery_emb):
        raise ValueError(f"one label per embedding: {len(query_labels)} query labels for {len(query_emb)} "
                         f"rows, {len(gallery_labels)} gallery labels for {len(gallery_emb)} rows")
    parts = []
    for block in query_blocks(distances, query_labels, gallery_labels, exclusion, batch_size=batch_size):
        parts.append(_block_figures(block.distances, block.match_rows, block.match_cols, block.drop_rows,
                                    block.drop_cols))
        if progress is not None:
            progress(block.rows.stop - block.rows.start)
    return RetrievalResults.concatenate(parts)


def retrieval_of_matrix(distances: np.ndarray, matches: np.ndarray,
                        ignore: np.ndarray | None = None) -> RetrievalResults:
    """The figures of a dense `(Q, G)` finite distance matrix, `(Q, G)` bool matches and ignored entries."""
    dist = np.array(distances, dtype=np.result_type(np.asarray(distances).dtype, np.float32))
    matches = np.asarray(matches, bool)
    ignore = np.zeros(dist.shape, bool) if ignore is None else np.asarray(ignore, bool)
    if dist.ndim != 2 or matches.shape != dist.shape or ignore.shape != dist.shape:
        raise ValueError(f"distances, matches and ignore must be (Q, G) arrays of one shape. Received: "
                         f"{dist.shape}, {matches.shape}, {ignore.shape}")
    if not np.isfinite(dist).all():
        raise ValueError("distances must be finite; found NaN or infinite values")
    match_rows, match_cols = np.nonzero(matches & ~ignore)
    drop_rows, drop_cols = np.nonzero(ignore)
    return _block_figures(dist, match_rows, match_cols, drop_rows, drop_cols)


def recall_at_k(query_emb: np.ndarray, gallery_emb: np.ndarray, query_labels: Names, gallery_labels: Names,
                ks: Iterable[int], exclusion: Exclusion | None = None, **kwargs) -> dict[int, float]:
    """`{K: Recall@K}`; keyword arguments as `evaluate_retrieval` (which gives every figure in one pass)."""
    return evaluate_retrieval(query_emb, gallery_emb, query_labels, gallery_labels, exclusion,
                              **kwargs).recall(ks)


def map_at_r(query_emb: np.ndarray, gallery_emb: np.ndarray, query_labels: Names, gallery_labels: Names,
             exclusion: Exclusion | None = None, **kwargs) -> float:
    """Mean MAP@R over the queries with a match; arguments as `evaluate_retrieval`."""
    return evaluate_retrieval(query_emb, gallery_emb, query_labels, gallery_labels, exclusion,
                              **kwargs).mean_map_at_r


def r_precision(query_emb: np.ndarray, gallery_emb: np.ndarray, query_labels: Names, gallery_labels: Names,
                exclusion: Exclusion | None = None, **kwargs) -> float:
    """Mean R-precision over the queries with a match; arguments as `evaluate_retrieval`."""
    return evaluate_retrieval(query_emb, gallery_emb, query_labels, gallery_labels, exclusion,
                              **kwargs).mean_r_precision


def kmeans_labels(embeddings: np.ndarray, num_clusters: int, seed: int = 0) -> np.ndarray:
    """`(N,)` int cluster of each of the `(N, D)` embeddings: scikit-learn's `KMeans` (k-means++, one
    initialisation, `random_state=seed`)."""
    from sklearn.cluster import KMeans

    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or not 1 <= num_clusters <= len(embeddings):
        raise ValueError(f"k-means needs (N, D) embeddings and 1 <= num_clusters <= N. Received: shape "
                         f"{embeddings.shape}, num_clusters={num_clusters}")
    model = KMeans(n_clusters=num_clusters, n_init=1, random_state=seed)
    return model.fit_predict(embeddings.astype(np.float64, copy=False)).astype(np.int64)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_information(labels_true: Names, labels_pred: Names) -> float:
    """NMI = I(true; pred) / ((H(true) + H(pred)) / 2), as scikit-learn's `normalized_mutual_info_score`
    (arithmetic mean): 1 when both labelings have one value, 0 when the mutual information is 0."""
    if len(labels_true) != len(labels_pred):
        raise ValueError(f"two labelings of one length. Received: {len(labels_true)} and {len(labels_pred)}")
    _, t = np.unique(np.asarray(labels_true), return_inverse=True)
    _, c = np.unique(np.asarray(labels_pred), return_inverse=True)
    t, c = t.ravel(), c.ravel()
    num_t, num_c = int(t.max(initial=-1)) + 1, int(c.max(initial=-1)) + 1
    if num_t == num_c and num_t <= 1:
        return 1.0
    pair, joint = np.unique(t * num_c + c, return_counts=True)
    row_sum = np.bincount(t, minlength=num_t).astype(np.float64)
    col_sum = np.bincount(c, minlength=num_c).astype(np.float64)
    n = float(len(t))
    outer = row_sum[pair // num_c] * col_sum[pair % num_c]
    mutual = float((joint / n * (np.log(joint * n) - np.log(outer))).sum())
    if mutual <= 0:
        return 0.0
    return mutual / max((_entropy(row_sum) + _entropy(col_sum)) / 2, np.finfo(np.float64).eps)


def nmi(embeddings: np.ndarray, labels: Names, seed: int = 0) -> float:
    """NMI of the classes `labels` `(N,)` and a k-means clustering of the `(N, D)` embeddings into as many
    clusters as there are classes (`kmeans_labels` with `seed`)."""
    if len(labels) != len(embeddings):
        raise ValueError(f"one label per embedding: {len(labels)} labels for {len(embeddings)} rows")
    num_classes = len(np.unique(np.asarray(labels)))
    return normalized_mutual_information(labels, kmeans_labels(embeddings, num_classes, seed))


@dataclasses.dataclass(frozen=True)
class MetricRequest:
    """The retrieval metrics asked for with evaluate.py `--metrics`.

    Attributes:
        ks: the K of Recall@K, increasing, without repeats (empty: none).
        map_at_r, r_precision, nmi: whether each is asked for.
    """

    ks: tuple[int, ...] = ()
    map_at_r: bool = False
    r_precision: bool = False
    nmi: bool = False

    @property
    def ranked(self) -> bool:
        """Whether a metric needs the ranking pass (all but NMI)."""
        return bool(self.ks) or self.map_at_r or self.r_precision


_RECALL = re.compile(r"recall@(.*)")


def parse_metrics(tokens: Iterable[str]) -> MetricRequest:
    """`["recall@1,2,4,8", "map_at_r", ...]` -> `MetricRequest`; ValueError naming a bad token and the valid
    names. Tokens may also be comma-separated (`map_at_r,nmi`); recall@ lists are merged."""
    ks: set[int] = set()
    flags = {"map_at_r": False, "r_precision": False, "nmi": False}
    for token in tokens:
        found = _RECALL.fullmatch(token.strip().lower())
        if found:
            parts = found.group(1).split(",")
            for part in parts:
                if not re.fullmatch(r"\d+", part.strip()) or int(part) < 1:
                    raise ValueError(f"{token!r}: recall@ takes a comma-separated list of positive integers, "
                                     f"e.g. recall@1,2,4,8; {part!r} is not one")
                ks.add(int(part))
            continue
        for name in token.split(","):
            name = name.strip().lower()
            if name not in flags:
                raise ValueError(f"Unknown metric {name!r} in {token!r}; expected one of "
                                 f"{sorted(RETRIEVAL_METRICS)} (recall@K as recall@1,2,4,8)")
            flags[name] = True
    return MetricRequest(tuple(sorted(ks)), **flags)
