"""Re-identification metrics: average precision (scikit-learn's and Market-1501's), CMC and mINP.

Per query, only the gallery entries that the excluder does not ignore are ranked. Everything is
derived from one number per valid match: how many non-matches lie at a distance <= its own.

Ties (equal distances) never depend on the gallery order:
  * `average_precision` groups tied entries as scikit-learn does: it equals
    `sklearn.metrics.average_precision_score(is_match, -distance)` exactly, ties included.
  * CMC, mINP and the Market-1501 AP rank pessimistically: among equal distances the non-matches come
    first, so a match tied with a non-match counts as ranked after it. (The official Market-1501 code
    and triplet-reid used the order of a (stable) sort, which depends on the gallery order.)

A query without any valid match has no AP, CMC entry or INP: it is skipped from every average and
counted (the original triplet-reid divided the CMC by all queries, and crashes on such a query with
a current scikit-learn).

Mean INP is from Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook" (TPAMI
2021): INP = (number of matches) / (rank of the hardest match).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from trinet.core.distances import cdist, get_metric
from trinet.core.local_distances import LocalGallery, local_distances
from trinet.evaluation.cmc import DEFAULT_REPEATS, all_matches_curve, get_cmc_protocol, single_shot_ranks
from trinet.evaluation.excluders import Exclusion, KeyIndex, Names

#: At most this many distances are held per block of queries (256 MB in float32): `--batch_size` is
#: lowered for large galleries so memory stays bounded by this, not by queries x gallery. Blocks much
#: smaller than this make a large gallery's distances slow (the gallery is read once per block).
MAX_BLOCK_ENTRIES = 1 << 26


class DistanceFn(Protocol):
    """Distances of a block of queries to a selection of the gallery, computed on demand."""

    def __call__(self, rows: slice, columns: np.ndarray) -> np.ndarray:
        """`(B, C)` distances of the queries `rows` to the gallery entries `columns` (`(C,)` increasing
        int indices), in a new array that the caller may overwrite."""


@dataclasses.dataclass(frozen=True)
class MatchRanks:
    """Where the valid matches of each query fall in its ranking.

    Attributes:
        num_matches: `(Q,)` int64, valid matches of each query (0: the query is skipped).
        negatives_before: `(T,)` int64, for each match, the ranked non-matches at a distance <= its own.
        matches_upto: `(T,)` int64, for each match, the matches at a distance <= its own (itself included).
    The matches of query i are entries `offsets[i]:offsets[i + 1]`, by increasing distance.
    """

    num_matches: np.ndarray
    negatives_before: np.ndarray
    matches_upto: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.num_matches)])

    @property
    def evaluated(self) -> np.ndarray:
        """`(Q,)` bool, the queries with at least one valid match."""
        return self.num_matches > 0

    def _query_of_match(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.num_matches)), self.num_matches)

    def positions(self) -> np.ndarray:
        """`(T,)` 1-based rank of each match under the pessimistic tie rule."""
        k = np.arange(len(self.negatives_before)) - np.repeat(self.offsets[:-1], self.num_matches)
        return k + 1 + self.negatives_before

    @staticmethod
    def concatenate(parts: Sequence["MatchRanks"]) -> "MatchRanks":
        return MatchRanks(*(np.concatenate([getattr(p, f.name) for p in parts]).astype(np.int64)
                            for f in dataclasses.fields(MatchRanks)))


def _per_query_mean(ranks: MatchRanks, values: np.ndarray) -> np.ndarray:
    sums = np.bincount(ranks._query_of_match(), weights=values, minlength=len(ranks.num_matches))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ranks.evaluated, sums / ranks.num_matches, np.nan)


def average_precision(ranks: MatchRanks) -> np.ndarray:
    """`(Q,)` AP as scikit-learn's `average_precision_score(is_match, -distance)`; NaN when skipped.

    With tied distances grouped: AP = mean over matches m of (matches at d <= d_m) / (entries at d <= d_m).
    """
    upto = ranks.matches_upto.astype(np.float64)
    return _per_query_mean(ranks, upto / (upto + ranks.negatives_before))


def market_average_precision(ranks: MatchRanks) -> np.ndarray:
    """`(Q,)` AP of the official Market-1501 code (trapezoid between the precision before and at each
    match's rank), on the pessimistic ranking; NaN when skipped."""
    position = ranks.positions().astype(np.float64)
    k = position - ranks.negatives_before
    with np.errstate(invalid="ignore", divide="ignore"):
        before = np.where(position > 1, (k - 1) / (position - 1), 1.0)
    return _per_query_mean(ranks, (k / position + before) / 2)


def first_match_rank(ranks: MatchRanks) -> np.ndarray:
    """`(Q,)` int64, 0-based rank of the first valid match; -1 when skipped."""
    out = np.full(len(ranks.num_matches), -1, np.int64)
    first = ranks.offsets[:-1][ranks.evaluated]
    out[ranks.evaluated] = ranks.negatives_before[first]
    return out


def inverse_negative_penalty(ranks: MatchRanks) -> np.ndarray:
    """`(Q,)` INP = matches / rank of the last match (pessimistic); NaN when skipped."""
    out = np.full(len(ranks.num_matches), np.nan)
    last = ranks.offsets[1:][ranks.evaluated] - 1
    out[ranks.evaluated] = ranks.num_matches[ranks.evaluated] / ranks.positions()[last]
    return out


def cmc_curve(ranks: MatchRanks, length: int) -> np.ndarray:
    """`(length,)` fraction of the evaluated queries whose first match is within the top k+1."""
    first = first_match_rank(ranks)
    first = first[first >= 0]
    if len(first) == 0:
        return np.full(length, np.nan)
    hist = np.bincount(np.minimum(first, length), minlength=length + 1)[:length]
    return np.cumsum(hist) / len(first)


def rank_block(dist: np.ndarray, match_rows: np.ndarray, match_cols: np.ndarray,
               drop_rows: np.ndarray, drop_cols: np.ndarray) -> MatchRanks:
    """Ranks of the valid matches `(match_rows, match_cols)` of a `(B, G)` block of distances.

    `dist` is overwritten. `(drop_rows, drop_cols)` are the entries to ignore. Only the non-matches
    closer than a query's farthest match are looked at, and only they are sorted.
    """
    num_rows = len(dist)
    values = dist[match_rows, match_cols]
    dist[match_rows, match_cols] = np.inf
    dist[drop_rows, drop_cols] = np.inf
    order = np.lexsort((values, match_rows))
    values = values[order]
    counts = np.bincount(match_rows, minlength=num_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    farthest = np.full(num_rows, -np.inf, dtype=dist.dtype)
    has = counts > 0
    farthest[has] = values[offsets[1:][has] - 1]
    # The non-matches that can precede a match: one comparison over the block, then a sparse list.
    near_mask = dist <= farthest[:, None]
    near = dist[near_mask]  # row by row
    near_offsets = np.concatenate([[0], np.cumsum(np.count_nonzero(near_mask, axis=1))])
    del near_mask
    negatives = np.empty(len(values), np.int64)
    upto = np.empty(len(values), np.int64)
    for row in np.flatnonzero(has):
        lo, hi = offsets[row], offsets[row + 1]
        mine = values[lo:hi]
        negatives[lo:hi] = np.searchsorted(np.sort(near[near_offsets[row]:near_offsets[row + 1]]), mine,
                                           side="right")
        upto[lo:hi] = np.searchsorted(mine, mine, side="right")
    return MatchRanks(counts.astype(np.int64), negatives, upto)


def _check_finite(dist: np.ndarray, what: str) -> None:
    if not np.isfinite(dist).all():
        raise ValueError(f"{what} must be finite; found NaN or infinite values")


def rank_matches(distances: np.ndarray, matches: np.ndarray, ignore: np.ndarray | None = None) -> MatchRanks:
    """The ranks of the matches in a dense distance matrix.

    Args:
        distances: `(Q, G)` finite floats, smaller = more similar.
        matches: `(Q, G)` bool, true where the gallery entry shows the query's identity.
        ignore: `(Q, G)` bool, entries left out of the query's ranking (None: none).
    """
    distances = np.asarray(distances)
    matches = np.asarray(matches, dtype=bool)
    ignore = np.zeros(distances.shape, bool) if ignore is None else np.asarray(ignore, dtype=bool)
    if distances.ndim != 2 or matches.shape != distances.shape or ignore.shape != distances.shape:
        raise ValueError(f"distances, matches and ignore must be (Q, G) arrays of one shape. Received: "
                         f"{distances.shape}, {matches.shape}, {ignore.shape}")
    _check_finite(distances, "distances")
    dist = np.array(distances, dtype=np.result_type(distances.dtype, np.float32), order="C")
    match_rows, match_cols = np.nonzero(matches & ~ignore)
    drop_rows, drop_cols = np.nonzero(ignore)
    return rank_block(dist, match_rows, match_cols, drop_rows, drop_cols)


def block_rows(num_columns: int, batch_size: int) -> int:
    """Queries per block: at most `batch_size`, and at most `MAX_BLOCK_ENTRIES` distances."""
    return max(1, min(batch_size, MAX_BLOCK_ENTRIES // max(1, num_columns)))


def _codes(query_pids: Names, gallery_pids: Names) -> tuple[np.ndarray, np.ndarray]:
    q, g = np.asarray(query_pids).astype(str), np.asarray(gallery_pids).astype(str)
    _, coded = np.unique(np.concatenate([q, g]), return_inverse=True)
    return coded[:len(q)].astype(np.int64), coded[len(q):].astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of queries as `rank_queries` ranks it, shown to its `on_block` observers.

    Attributes:
        rows: the queries of the block (global query indices `rows.start` to `rows.stop`).
        columns: `(C,)` int64, the gallery indices of the distance columns (those not ignored for every
            query, e.g. junk left out).
        distances: `(B, C)` distances of the block's queries to `columns` (read-only as `rank_queries`
            shows it to `on_block`; writable as `query_blocks` yields it).
        match_rows, match_cols: `(M,)` block row and column positions of the valid matches.
        drop_rows, drop_cols: `(X,)` block row and column positions of the entries the queries ignore
            (same person and camera).
    Every other entry of the block is a kept non-match.
    """

    rows: slice
    columns: np.ndarray
    distances: np.ndarray
    match_rows: np.ndarray
    match_cols: np.ndarray
    drop_rows: np.ndarray
    drop_cols: np.ndarray

    def status(self) -> np.ndarray:
        """`(B, C)` int8: 1 for a valid match, 0 for a kept non-match, -1 for an ignored entry."""
        out = np.zeros(self.distances.shape, np.int8)
        out[self.match_rows, self.match_cols] = 1
        out[self.drop_rows, self.drop_cols] = -1
        return out


def query_blocks(distances: DistanceFn, query_pids: Names, gallery_pids: Names,
                 exclusion: Exclusion | None = None, *, batch_size: int = 256) -> Iterator[Block]:
    """The blocks of queries of an evaluation, in query order, each with its distances and matches.

    The `distances` of each yielded `Block` is a new writable `(B, C)` array that the caller may
    overwrite. Arguments as `rank_queries`.
    """
    q_codes, g_codes = _codes(query_pids, gallery_pids)
    if exclusion is None:
        exclusion = Exclusion.nothing(len(q_codes), len(g_codes))
    if exclusion.shape != (len(q_codes), len(g_codes)):
        raise ValueError(f"the exclusion is for {exclusion.shape} queries x gallery, the pids for "
                         f"{(len(q_codes), len(g_codes))}")
    kept = np.flatnonzero(~exclusion.gallery_ignored)
    column_of = np.full(len(g_codes), -1, np.int64)
    column_of[kept] = np.arange(len(kept))
    same_pid = KeyIndex(g_codes[kept])
    kept_keys = exclusion.gallery_keys[kept]
    step = block_rows(len(kept), batch_size)
    for start in range(0, len(q_codes), step):
        rows = slice(start, min(start + step, len(q_codes)))
        match_rows, match_cols = same_pid.pairs(q_codes[rows])
        query_keys = exclusion.query_keys[rows][match_rows]
        valid = (query_keys < 0) | (query_keys != kept_keys[match_cols])
        drop_rows, drop_cols = exclusion.pairs(rows)
        drop_cols = column_of[drop_cols]
        on_kept = drop_cols >= 0
        dist = distances(rows, kept)
        expected = (rows.stop - rows.start, len(kept))
        if dist.shape != expected:
            raise ValueError(f"the distance function gave shape {dist.shape}, expected {expected}")
        yield Block(rows, kept, np.ascontiguousarray(dist), match_rows[valid], match_cols[valid],
                    drop_rows[on_kept], drop_cols[on_kept])


def rank_queries(distances: DistanceFn, query_pids: Names, gallery_pids: Names,
                 exclusion: Exclusion | None = None, *, batch_size: int = 256,
                 progress: Callable[[int], None] | None = None,
                 on_block: Callable[["Block"], None] | None = None) -> MatchRanks:
    """The ranks of every query's valid matches, one block of queries at a time.

    Args:
        distances: gives the `(B, C)` distances of a block of queries to the gallery columns that are
            not ignored for every query (see `DistanceFn`).
        query_pids, gallery_pids: `(Q,)` and `(G,)` identities (strings); equal identities match.
        exclusion: what each query ignores (None: nothing).
        batch_size: queries per block (fewer for very large galleries, see `block_rows`).
        progress: called with the number of queries of each finished block.
        on_block: called with each `Block` before it is ranked (e.g. to collect verification pairs or
            rank lists, in the same pass over the distances).
    """
    parts = []
    for block in query_blocks(distances, query_pids, gallery_pids, exclusion, batch_size=batch_size):
        dist = block.distances
        if on_block is not None:
            view = dist.view()
            view.flags.writeable = False
            on_block(dataclasses.replace(block, distances=view))
        parts.append(rank_block(dist, block.match_rows, block.match_cols, block.drop_rows, block.drop_cols))
        if progress is not None:
            progress(block.rows.stop - block.rows.start)
    if not parts:
        return MatchRanks(*(np.zeros(0, np.int64) for _ in range(3)))
    return MatchRanks.concatenate(parts)


class EmbeddingDistances:
    """`DistanceFn` of embeddings under a metric of `trinet.core.distances`.

    Args:
        query: `(Q, D)` float; gallery: `(G, D)` float; metric: a name in `METRICS`.
    """

    def __init__(self, query: np.ndarray, gallery: np.ndarray, metric: str = "euclidean"):
        get_metric(metric)
        if np.ndim(query) != 2 or np.ndim(gallery) != 2 or np.shape(query)[1] != np.shape(gallery)[1]:
            raise ValueError(f"Embeddings must be (Q, D) and (G, D). Received: {np.shape(query)}, "
                             f"{np.shape(gallery)}")
        self.query, self.gallery, self.metric = query, gallery, metric
        self._columns: np.ndarray | None = None
        self._selected = gallery

    def __call__(self, rows: slice, columns: np.ndarray) -> np.ndarray:
        if self._columns is not columns:
            whole = len(columns) == len(self.gallery) and np.array_equal(columns, np.arange(len(columns)))
            self._columns, self._selected = columns, self.gallery if whole else self.gallery[columns]
        return cdist(self.query[rows], self._selected, self.metric)


class WithLocalDistances:
    """`DistanceFn`: `distances` (the global ones) + `weight` x AlignedReID's local distances
    (`trinet.core.local_distances`) of the `(Q, S, D_l)` and `(G, S, D_l)` local features; exact, and held for
    one block of queries at a time (the local distances work in blocks of
    `local_distances.MAX_BLOCK_ENTRIES`)."""

    def __init__(self, distances: DistanceFn, query_local: np.ndarray, gallery_local: np.ndarray,
                 weight: float):
        if np.ndim(query_local) != 3 or np.shape(query_local)[1:] != np.shape(gallery_local)[1:]:
            raise ValueError(f"Local features must be (Q, S, D) and (G, S, D). Received: "
                             f"{np.shape(query_local)}, {np.shape(gallery_local)}")
        self.distances, self.query_local, self.gallery_local = distances, query_local, gallery_local
        self.weight = float(weight)
        self._columns: np.ndarray | None = None
        self._gallery: LocalGallery | None = None

    def __call__(self, rows: slice, columns: np.ndarray) -> np.ndarray:
        if self._columns is not columns or self._gallery is None:
            whole = (len(columns) == len(self.gallery_local)
                     and np.array_equal(columns, np.arange(len(columns))))
            self._columns = columns
            self._gallery = LocalGallery(self.gallery_local if whole else self.gallery_local[columns])
        out = self.distances(rows, columns)
        local = local_distances(self.query_local[rows], self._gallery)
        local *= self.weight
        out += local
        return out


@dataclasses.dataclass(frozen=True)
class Results:
    """The metrics of an evaluation.

    Attributes:
        aps: `(Q,)` AP of each query (the Market-1501 AP if `market_ap`); NaN for skipped queries.
        inps: `(Q,)` INP of each query; NaN for skipped queries.
        first_rank: `(Q,)` 0-based rank of the first match; -1 for skipped queries.
        cmc: `(L,)` CMC curve over the evaluated queries (L = gallery size), under `cmc_protocol`.
        market_ap: whether `aps` holds the Market-1501 AP.
        cmc_protocol: the name of the CMC protocol in `trinet.evaluation.cmc.CMC_PROTOCOLS`.
    """

    aps: np.ndarray
    inps: np.ndarray
    first_rank: np.ndarray
    cmc: np.ndarray
    market_ap: bool = False
    cmc_protocol: str = "market1501"

    @property
    def evaluated(self) -> np.ndarray:
        return self.first_rank >= 0

    @property
    def num_queries(self) -> int:
        return len(self.aps)

    @property
    def num_evaluated(self) -> int:
        return int(self.evaluated.sum())

    @property
    def num_skipped(self) -> int:
        return self.num_queries - self.num_evaluated

    @property
    def mean_ap(self) -> float:
        return float(np.mean(self.aps[self.evaluated])) if self.num_evaluated else float("nan")

    @property
    def mean_inp(self) -> float:
        return float(np.mean(self.inps[self.evaluated])) if self.num_evaluated else float("nan")

    def top(self, k: int) -> float:
        """The CMC at rank k (1-based; the last value for k beyond the gallery)."""
        return float(self.cmc[min(k, len(self.cmc)) - 1]) if len(self.cmc) else float("nan")


def summarize(ranks: MatchRanks, cmc_length: int, *, market_ap: bool = False) -> Results:
    """All metrics from the match ranks; `cmc_length` is usually the gallery size."""
    aps = market_average_precision(ranks) if market_ap else average_precision(ranks)
    return Results(aps, inverse_negative_penalty(ranks), first_match_rank(ranks),
                   cmc_curve(ranks, cmc_length), market_ap)


def single_shot_cmc(distances: DistanceFn, query_pids: Names, gallery_pids: Names, exclusion: Exclusion, *,
                    length: int, repeats: int = DEFAULT_REPEATS, seed: int = 0, batch_size: int = 256,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The `(length,)` CMC of the `cuhk03` protocol (`trinet.evaluation.cmc`), one block of queries at a time.

    A query ranks the gallery entries that `exclusion` keeps and that show another camera; one image per
    identity is drawn `repeats` times with `numpy.random.default_rng(seed)`, the same whatever the
    blocks. NaN everywhere when no query has a valid match.

    Raises:
        ValueError: the exclusion has no cameras, or `repeats` < 1.
    """
    if exclusion.query_cameras is None or exclusion.gallery_cameras is None:
        raise ValueError("the cuhk03 CMC protocol separates cameras, but the exclusion has none")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1. Received: repeats={repeats}")
    q_codes, g_codes = _codes(query_pids, gallery_pids)
    kept = np.flatnonzero(~exclusion.gallery_ignored)
    kept_cameras = exclusion.gallery_cameras[kept]
    rng = np.random.default_rng(seed)
    hist = np.zeros(length + 1, np.int64)
    evaluated = 0
    step = block_rows(len(kept), batch_size)
    for start in range(0, len(q_codes), step):
        rows = slice(start, min(start + step, len(q_codes)))
        allowed = ~exclusion.mask(rows)[:, kept]
        allowed &= exclusion.query_cameras[rows, None] != kept_cameras[None, :]
        ranks = single_shot_ranks(np.asarray(distances(rows, kept)), allowed, q_codes[rows], g_codes[kept],
                                  rng, repeats)
        found = ranks[:, 0] >= 0
        hist += np.bincount(np.minimum(ranks[found].ravel(), length), minlength=length + 1)
        evaluated += int(found.sum())
        if progress is not None:
            progress(rows.stop - rows.start)
    if evaluated == 0:
        return np.full(length, np.nan)
    return np.cumsum(hist[:length]) / (evaluated * repeats)


def evaluate(query_emb: np.ndarray, gallery_emb: np.ndarray, query_pids: Names,
             gallery_pids: Names, exclusion: Exclusion | None = None, *, metric: str = "euclidean",
             batch_size: int = 256, market_ap: bool = False, distances: DistanceFn | None = None,
             progress: Callable[[int], None] | None = None, cmc: str = "market1501",
             cmc_repeats: int = DEFAULT_REPEATS, seed: int = 0,
             on_block: Callable[[Block], None] | None = None) -> Results:
    """Evaluate query embeddings `(Q, D)` against gallery embeddings `(G, D)`, in blocks of queries.

    `distances` replaces the metric's distances (e.g. re-ranked ones); see `rank_queries`. `cmc` names
    the CMC protocol (`trinet.evaluation.cmc.CMC_PROTOCOLS`); `cmc_repeats` and `seed` are the draws of
    `cuhk03`, which takes a second pass over the queries (`progress` is called for both). mAP, mINP and
    `first_rank` do not depend on the protocol. `on_block` observes the first pass (see `rank_queries`).
    """
    protocol = get_cmc_protocol(cmc)
    if distances is None:
        distances = EmbeddingDistances(query_emb, gallery_emb, metric)
    ranks = rank_queries(distances, query_pids, gallery_pids, exclusion, batch_size=batch_size,
                         progress=progress, on_block=on_block)
    results = summarize(ranks, len(gallery_pids), market_ap=market_ap)
    if protocol.first_match_break:
        return results
    if protocol.single_gallery_shot:
        if exclusion is None:
            raise ValueError("the cuhk03 CMC protocol needs an exclusion with cameras")
        curve = single_shot_cmc(distances, query_pids, gallery_pids, exclusion, length=len(gallery_pids),
                                repeats=cmc_repeats, seed=seed, batch_size=batch_size, progress=progress)
    else:
        curve = all_matches_curve(ranks.num_matches, ranks.negatives_before, len(gallery_pids))
    return dataclasses.replace(results, cmc=curve, cmc_protocol=cmc)


def ranked_list(distances: np.ndarray, matches: np.ndarray, ignore: np.ndarray, k: int) -> np.ndarray:
    """The gallery indices of the top `k` of one query `(G,)`, ignored entries left out, by distance,
    with the pessimistic tie rule (non-matches first), then by index."""
    keep = np.flatnonzero(~np.asarray(ignore, dtype=bool))
    order = np.lexsort((keep, np.asarray(matches)[keep], np.asarray(distances)[keep]))
    return keep[order[:k]]
