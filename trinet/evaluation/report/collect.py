"""What the report needs from the evaluation's pass over the distances: `on_block` observers of
`trinet.evaluation.metrics.rank_queries`."""

from __future__ import annotations

import numpy as np

from trinet.evaluation.metrics import Block, average_precision, market_average_precision, rank_block

#: Status codes of a rank-list entry (as `Block.status`).
MATCH, MISS, IGNORED = 1, 0, -1


class RankLists:
    """The top `k` gallery entries of every query among the distance columns (junk left out; entries the
    query ignores, same person and camera, included and marked), by distance, ties with the non-matches
    first, then by gallery index.

    Attributes:
        indices: `(Q, k)` int64 gallery indices, -1 past the gallery's end.
        distances: `(Q, k)` float32, NaN past the end.
        status: `(Q, k)` int8, `MATCH`, `MISS` or `IGNORED`.
    """

    def __init__(self, num_queries: int, k: int):
        if k < 1:
            raise ValueError(f"k must be >= 1. Received: k={k}")
        self.k = k
        self.indices = np.full((num_queries, k), -1, np.int64)
        self.distances = np.full((num_queries, k), np.nan, np.float32)
        self.status = np.zeros((num_queries, k), np.int8)

    def __call__(self, block: Block) -> None:
        dist = block.distances
        k = min(self.k, dist.shape[1])
        if k == 0:
            return
        status = block.status()
        top = np.argpartition(dist, k - 1, axis=1)[:, :k] if k < dist.shape[1] else \
            np.broadcast_to(np.arange(dist.shape[1]), dist.shape).copy()
        top_d = np.take_along_axis(dist, top, axis=1)
        top_s = np.take_along_axis(status, top, axis=1)
        order = np.lexsort((top, top_s == MATCH, top_d), axis=1)
        top, top_d, top_s = (np.take_along_axis(a, order, axis=1) for a in (top, top_d, top_s))
        rows = block.rows
        self.indices[rows, :k] = block.columns[top]
        self.distances[rows, :k] = top_d
        self.status[rows, :k] = top_s


class CameraTable:
    """Rank-1 and AP of each query against the gallery of each camera alone (the `(query camera, gallery
    camera)` cells of the report's table), in the evaluation's pass.

    Args:
        query_cameras, gallery_cameras: `(Q,)` and `(G,)` camera numbers.
        market_ap: the Market-1501 AP instead of scikit-learn's (as the evaluation).
    Attributes:
        cameras: the sorted gallery cameras (the columns).
        aps, rank1: `(Q, C)` float64, NaN where the query has no valid match in that camera.
    """

    def __init__(self, query_cameras: np.ndarray, gallery_cameras: np.ndarray, market_ap: bool = False):
        self.query_cameras = np.asarray(query_cameras)
        self.gallery_cameras = np.asarray(gallery_cameras)
        self.cameras = np.unique(self.gallery_cameras)
        self.market_ap = market_ap
        shape = (len(self.query_cameras), len(self.cameras))
        self.aps = np.full(shape, np.nan)
        self.rank1 = np.full(shape, np.nan)

    def __call__(self, block: Block) -> None:
        cams = self.gallery_cameras[block.columns]
        for c, camera in enumerate(self.cameras):
            cols = np.flatnonzero(cams == camera)
            if not len(cols):
                continue
            position = np.full(len(block.columns), -1, np.int64)
            position[cols] = np.arange(len(cols))
            m = position[block.match_cols] >= 0
            d = position[block.drop_cols] >= 0
            ranks = rank_block(np.array(block.distances[:, cols]), block.match_rows[m],
                               position[block.match_cols[m]], block.drop_rows[d],
                               position[block.drop_cols[d]])
            aps = market_average_precision(ranks) if self.market_ap else average_precision(ranks)
            self.aps[block.rows, c] = aps
            first = ranks.offsets[:-1]
            hit = np.full(len(aps), np.nan)
            hit[ranks.evaluated] = (ranks.negatives_before[first[ranks.evaluated]] == 0).astype(float)
            self.rank1[block.rows, c] = hit

    def table(self) -> dict:
        """`{"query_cameras", "gallery_cameras", "rank1", "mAP", "queries"}`: rows by query camera, columns by
        gallery camera; a cell is None where no query of that camera has a valid match there."""
        rows = np.unique(self.query_cameras)
        out: dict = {"query_cameras": [str(r) for r in rows],
                     "gallery_cameras": [str(c) for c in self.cameras], "rank1": [], "mAP": [], "queries": []}
        for camera in rows:
            mine = self.query_cameras == camera
            aps, hits = self.aps[mine], self.rank1[mine]
            counts = np.sum(~np.isnan(aps), axis=0)
            with np.errstate(invalid="ignore"):
                ap_means = np.nansum(aps, axis=0) / counts
                hit_means = np.nansum(hits, axis=0) / counts
            out["mAP"].append([None if n == 0 else float(v) for v, n in zip(ap_means, counts)])
            out["rank1"].append([None if n == 0 else float(v) for v, n in zip(hit_means, counts)])
            out["queries"].append([int(n) for n in counts])
        return out
