"""Multi-query evaluation (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015):
each query becomes the element-wise mean or max of the embeddings of its person's images from its camera
(Market-1501: the hand-drawn boxes of `gt_bbox/`), then the queries are ranked as in single query.

The images of each query come from a multi-query CSV whose `query` column names the query image each row
pools into (`data/convert.py market1501 --multi_query` writes `market1501_mquery.csv`). numpy only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.core.pooling import pool_groups
from trinet.data.datasets import Dataset


@dataclasses.dataclass(frozen=True)
class MultiQuery:
    """Pooled queries.

    Attributes:
        embeddings: `(Q, D)` float32, one per query of the query CSV, in its order.
        counts: `(Q,)` int64, the images pooled into each query; 0 for a query without any, which keeps
            its own embedding.
        foreign: the query paths of multi-query rows that name no query of the query CSV (unused).
    """

    embeddings: np.ndarray
    counts: np.ndarray
    foreign: tuple[str, ...]


def pool_queries(query: Dataset, query_emb: np.ndarray, images: Dataset, image_emb: np.ndarray,
                 how: str) -> MultiQuery:
    """Pool the `(M, D)` embeddings of the multi-query `images` into the `(Q, D)` queries they name.

    Raises:
        TrinetError: `images` has no `query` column, none of its rows names a query of `query`, or a row's
            identity differs from that of its query (the message names the file and line).
    """
    if images.queries is None:
        raise TrinetError(f"{images.source}: a multi-query CSV needs a `query` column naming the query image "
                          "each row pools into (header pid,path,camera,query, as data/convert.py market1501 "
                          "--multi_query writes)")
    if image_emb.shape[1] != query_emb.shape[1]:
        raise TrinetError(f"The multi-query embeddings have dimension {image_emb.shape[1]} but the query "
                          f"embeddings {query_emb.shape[1]}; embed both with the same model.")
    position = {str(fid): i for i, fid in enumerate(query.fids)}
    owner = np.array([position.get(str(name), -1) for name in images.queries], np.int64)
    known = owner >= 0
    if not known.any():
        raise TrinetError(f"None of the {len(images)} rows of {images.source} names a query image of "
                          f"{query.source} in its query column (e.g. {str(images.queries[0])!r}); give the "
                          "multi-query CSV of this query set.")
    wrong = np.flatnonzero(known & (images.pids != query.pids[np.where(known, owner, 0)]))
    if len(wrong):
        i = wrong[0]
        raise TrinetError(f"{images.where(i)}: identity {images.pids[i]} but its query {images.queries[i]} "
                          f"is identity {query.pids[owner[i]]}; a multi-query pools images of the query's "
                          f"person ({len(wrong)} such rows)")
    pooled, counts = pool_groups(image_emb[known], owner[known], len(query), how)
    embeddings = np.where(counts[:, None] > 0, pooled, query_emb).astype(np.float32)
    foreign = tuple(sorted({str(name) for name in images.queries[~known]}))
    return MultiQuery(embeddings, counts, foreign)


def describe(result: MultiQuery, how: str) -> str:
    """One line for the log: how many queries were pooled from how many images."""
    pooled = result.counts > 0
    median = np.median(result.counts[pooled]) if pooled.any() else 0
    text = (f"Multi-query ({how}): {pooled.sum()} of {len(pooled)} queries pooled from "
            f"{result.counts.sum()} images (median {median:g} per query)")
    if (~pooled).any():
        text += f"; {(~pooled).sum()} keep their own embedding (no image of their person and camera)"
    if result.foreign:
        text += f"; rows of {len(result.foreign)} unknown queries unused: {listing(result.foreign)}"
    return text
