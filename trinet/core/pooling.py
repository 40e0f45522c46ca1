"""Pooling the embeddings of a group of images into one: the frames of a tracklet, or the images of a
multi-query (Market-1501's protocol pools the `gt_bbox/` images of the query's person and camera).

Zheng et al. (ICCV 2015) pool multi-query features by their element-wise mean or max; the video re-id
benchmarks (MARS, iLIDS-VID, PRID2011) pool frame features the same two ways. numpy only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from trinet.core.errors import TrinetError


def _mean(embeddings: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    # float64 sums: a tracklet of thousands of frames loses no precision.
    sums = np.add.reduceat(embeddings.astype(np.float64), starts, axis=0)
    return sums / counts[:, None]


def _max(embeddings: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(embeddings, starts, axis=0)


#: How the embeddings of a group become one (`--temporal_pooling`, `--multi_query`):
#: `(sorted (N, D) embeddings, (G,) start of each group, (G,) counts) -> (G, D)`.
TEMPORAL_POOLINGS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "mean": _mean,
    "max": _max,
}


def pool_groups(embeddings: np.ndarray, groups: np.ndarray, num_groups: int, how: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Pool the rows of each group.

    Args:
        embeddings: `(N, D)` float.
        groups: `(N,)` int, the group of each row, in `[0, num_groups)`.
        how: a name in `TEMPORAL_POOLINGS`.

    Returns:
        `(num_groups, D)` float32 pooled embeddings (rows of zeros for empty groups) and `(num_groups,)`
        int64 counts of rows per group.

    Raises:
        ValueError: an unknown `how`, or groups out of range.
    """
    if how not in TEMPORAL_POOLINGS:
        raise ValueError(f"Unknown pooling {how!r}; expected one of {sorted(TEMPORAL_POOLINGS)}")
    embeddings = np.asarray(embeddings)
    groups = np.asarray(groups, dtype=np.int64)
    if len(groups) != len(embeddings):
        raise ValueError(f"groups has {len(groups)} rows but embeddings {len(embeddings)}")
    if len(groups) and (groups.min() < 0 or groups.max() >= num_groups):
        raise ValueError(f"groups must lie in [0, {num_groups}), got {groups.min()} to {groups.max()}")
    counts = np.bincount(groups, minlength=num_groups).astype(np.int64)
    out = np.zeros((num_groups, embeddings.shape[1]), np.float32)
    present = np.flatnonzero(counts)
    if len(present):
        order = np.argsort(groups, kind="stable")
        starts = (np.cumsum(counts) - counts)[present]
        out[present] = TEMPORAL_POOLINGS[how](embeddings[order], starts, counts[present])
    return out, counts


class RunningPool:
    """Pooling of one group whose rows come in blocks (a long tracklet, in bounded memory).

    `add((B, D) rows)` any number of times, then `result()` is the `(D,)` float32 pooled embedding, equal
    to `pool_groups` of all rows.
    """

    def __init__(self, how: str):
        if how not in TEMPORAL_POOLINGS:
            raise ValueError(f"Unknown pooling {how!r}; expected one of {sorted(TEMPORAL_POOLINGS)}")
        self.how = how
        self.count = 0
        self.value: np.ndarray | None = None

    def add(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if not len(rows):
            return
        if self.how == "mean":
            block = rows.astype(np.float64).sum(axis=0)
            self.value = block if self.value is None else self.value + block
        else:
            block = rows.max(axis=0)
            self.value = block if self.value is None else np.maximum(self.value, block)
        self.count += len(rows)

    def result(self) -> np.ndarray:
        if self.value is None:
            raise TrinetError("no rows were pooled")
        value = self.value / self.count if self.how == "mean" else self.value
        return np.asarray(value, np.float32)
