"""Recall@K of a search (`trinet-search query --recall_at`), and an approximate index against exact search.

* Recall@K of the hits: the fraction of queries with an entry of their identity (class) among their K
  results, as `trinet.evaluation.retrieval` defines it. Ties are pessimistic within the returned list: a
  non-match at the same distance as the first match counts as ranked before it. A query whose identity
  has no gallery entry that the excluder keeps is skipped (as in evaluate.py), whatever the index returns.
* The exact reference, for an approximate index: the same figures from the exact distances of the gallery
  embeddings (`trinet.evaluation.retrieval.evaluate_retrieval`), and the neighbours found: per query, the
  fraction of the exact K nearest (the excluder applied; ties broken by gallery row) that the index
  returned among its K, averaged over the queries.

numpy only (the hits come from `trinet.search.index.search`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from trinet.core.distances import cdist
from trinet.evaluation.excluders import Exclusion, KeyIndex, Names
from trinet.evaluation.metrics import block_rows
from trinet.search.index import Hits


def _codes(query_pids: Names, gallery_pids: Names) -> tuple[np.ndarray, np.ndarray]:
    q, g = np.asarray(query_pids).astype(str), np.asarray(gallery_pids).astype(str)
    _, coded = np.unique(np.concatenate([q, g]), return_inverse=True)
    coded = coded.ravel().astype(np.int64)
    return coded[:len(q)], coded[len(q):]


def kept_matches(query_pids: Names, gallery_pids: Names, exclusion: Exclusion) -> np.ndarray:
    """`(Q,)` int64: the gallery entries of each query's identity that `exclusion` keeps."""
    q_codes, g_codes = _codes(query_pids, gallery_pids)
    rows, cols = KeyIndex(g_codes).pairs(q_codes)
    keys = exclusion.query_keys[rows]
    kept = ~exclusion.gallery_ignored[cols] & ((keys < 0) | (keys != exclusion.gallery_keys[cols]))
    return np.bincount(rows[kept], minlength=len(q_codes)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class SearchRecall:
    """Where the first match of each query lies in its results.

    Attributes:
        first_rank: `(Q,)` int64 0-based pessimistic rank of the first match among the results; the
            number of results searched (`depth`) when none of them matches; -1 for a skipped query.
        depth: the results per query that were looked at.
    """

    first_rank: np.ndarray
    depth: int

    @property
    def evaluated(self) -> np.ndarray:
        return self.first_rank >= 0

    def recall(self, ks: Sequence[int]) -> dict[int, float]:
        """`{K: Recall@K}` over the evaluated queries (NaN if none); K must be <= `depth`."""
        first = self.first_rank[self.evaluated]
        out = {}
        for k in ks:
            if not 1 <= k <= self.depth:
                raise ValueError(f"Recall@{k} needs 1 <= K <= the {self.depth} results searched")
            out[int(k)] = float(np.mean(first < k)) if len(first) else float("nan")
        return out


def recall_of_hits(hits: Hits, query_pids: Names, gallery_pids: Names, exclusion: Exclusion) -> SearchRecall:
    """The first-match ranks of the `(Q, K)` hits of a search (see `SearchRecall`)."""
    q_codes, g_codes = _codes(query_pids, gallery_pids)
    found = hits.indices >= 0
    is_match = found & (g_codes[np.maximum(hits.indices, 0)] == q_codes[:, None])
    depth = hits.indices.shape[1]
    first = np.full(len(q_codes), depth, np.int64)
    has = is_match.any(axis=1)
    position = np.argmax(is_match, axis=1)
    nearest = hits.distances[np.arange(len(q_codes)), position]
    before = found & ~is_match & (hits.distances <= nearest[:, None])
    first[has] = np.count_nonzero(before, axis=1)[has]
    first[kept_matches(query_pids, gallery_pids, exclusion) == 0] = -1
    return SearchRecall(first, depth)


def exact_top_k(query_emb: np.ndarray, gallery_emb: np.ndarray, k: int, exclusion: Exclusion,
                metric: str = "euclidean", batch_size: int = 256) -> np.ndarray:
    """`(Q, k)` int64: the gallery rows of each query's k nearest under `metric`, the excluded entries left
    out, by distance then row; -1 where fewer remain. Memory: one block of queries at a time."""
    gallery_emb = np.asarray(gallery_emb)
    out = np.full((len(query_emb), k), -1, np.int64)
    step = block_rows(len(gallery_emb), batch_size)
    for start in range(0, len(query_emb), step):
        rows = slice(start, min(start + step, len(query_emb)))
        dist = cdist(query_emb[rows], gallery_emb, metric)
        drop_rows, drop_cols = exclusion.pairs(rows)
        dist[drop_rows, drop_cols] = np.inf
        dist[:, exclusion.gallery_ignored] = np.inf
        width = min(k, dist.shape[1])
        if width == 0:
            continue
        kth = np.partition(dist, width - 1, axis=1)[:, width - 1]
        for row in range(len(dist)):
            # Every entry up to the k-th distance (ties included), then by distance and row.
            candidates = np.flatnonzero(dist[row] <= kth[row])
            candidates = candidates[np.isfinite(dist[row, candidates])]
            chosen = candidates[np.lexsort((candidates, dist[row, candidates]))[:width]]
            out[start + row, :len(chosen)] = chosen
    return out


def neighbours_found(indices: np.ndarray, exact: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """`{K: mean over queries of |results[:K] & exact[:K]| / |exact[:K]|}` (queries with no exact
    neighbour left out; NaN if none); `(Q, >= K)` gallery rows, -1 for none."""
    out = {}
    for k in ks:
        fractions = []
        for got, want in zip(indices[:, :k], exact[:, :k]):
            want = want[want >= 0]
            if len(want):
                fractions.append(len(np.intersect1d(got[got >= 0], want)) / len(want))
        out[int(k)] = float(np.mean(fractions)) if fractions else float("nan")
    return out
