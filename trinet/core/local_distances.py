"""AlignedReID's local distance (Zhang et al. 2017, "AlignedReID: Surpassing Human-Level Performance in
Person Re-Identification", arXiv:1711.08184), in numpy: the evaluation side of `trinet.losses.triplet`'s.

Each image has S local features, `(S, D)`: its feature map's horizontal stripes, top to bottom. The local
distance of two images (DMLI, "dynamically matching local information"):

    1. the S x S euclidean distances between the stripes of one and of the other,
       d_ij = sqrt(|a_i - b_j|^2 + 1e-12) (`trinet.core.distances.euclidean`'s definition);
    2. each normalised into [0, 1): (e^d - 1) / (e^d + 1), which is tanh(d / 2) (computed so: no overflow);
    3. the cost of the cheapest path from cell (0, 0) to cell (S-1, S-1) stepping one cell down or right at
       a time, both end cells counted (dynamic programming): stripes are aligned top to bottom, in order.

The distance lies in [0, 2S - 1). Evaluation (`local_distances`) takes whole blocks of query x gallery pairs
at once: one matrix product gives every stripe-to-stripe distance of the block, and the dynamic programme is
S^2 vectorised steps over the block (memory: `MAX_BLOCK_ENTRIES` floats at most, whatever the gallery size).
numpy only, cheap to import.
"""

from __future__ import annotations

import numpy as np

from trinet.core.distances import EUCLIDEAN_EPSILON

#: At most this many stripe-to-stripe distances (query x gallery x S x S) are held at a time (64 MB in
#: float32; larger blocks were no faster on 2 CPU cores, see benchmarks/bench_local_distance.py).
MAX_BLOCK_ENTRIES = 1 << 24


def normalize(d: np.ndarray) -> np.ndarray:
    """(e^d - 1) / (e^d + 1) element-wise, as tanh(d / 2): `[0, inf) -> [0, 1)`."""
    return np.tanh(np.asarray(d) / 2)


def shortest_path(costs: np.ndarray) -> np.ndarray:
    """`(..., S, T)` costs -> `(...)`: the sum of the cells of the cheapest path from `[0, 0]` to
    `[S-1, T-1]` moving one cell down or right at a time (both end cells counted)."""
    costs = np.asarray(costs)
    if costs.ndim < 2 or 0 in costs.shape[-2:]:
        raise ValueError(f"shortest_path needs (..., S, T) costs with S, T >= 1. Received: shape "
                         f"{costs.shape}")
    lead, (s, t) = costs.shape[:-2], costs.shape[-2:]
    # the layout of `_shortest_path_in_place`: (S, pairs, T, 1)
    dtype = np.result_type(costs, np.float32)
    work = np.ascontiguousarray(costs.reshape(-1, s, t).transpose(1, 0, 2), dtype=dtype)
    return _shortest_path_in_place(work[..., None])[:, 0].reshape(lead)


def _shortest_path_in_place(c: np.ndarray) -> np.ndarray:
    """`c` `(S, b, T, g)`: the costs of b x g pairs, cell (i, j) of pair (p, q) at `c[i, p, j, q]`.
    Overwritten by the cheapest path's cost to each cell; returns `c[S-1, :, T-1]` `(b, g)`."""
    s, t = c.shape[0], c.shape[2]
    scratch = np.empty_like(c[0, :, 0])
    for j in range(1, t):
        c[0, :, j] += c[0, :, j - 1]
    for i in range(1, s):
        c[i, :, 0] += c[i - 1, :, 0]
        for j in range(1, t):
            np.minimum(c[i - 1, :, j], c[i, :, j - 1], out=scratch)
            c[i, :, j] += scratch
    return c[s - 1, :, t - 1]


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"local distances need (Q, S, D) and (G, S, D) local features of the same S and D. "
                         f"Received: shapes {a.shape} and {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


class LocalGallery:
    """Gallery local features `(G, S, D)` laid out once for `local_distances` of many query blocks."""

    def __init__(self, gallery: np.ndarray):
        gallery = np.asarray(gallery)
        if gallery.ndim != 3:
            raise ValueError(f"local features must be (G, S, D). Received: shape {gallery.shape}")
        self.size, self.stripes, self.dim = gallery.shape
        dtype = np.result_type(gallery.dtype, np.float32)
        # stripe-major (S * G, D): one matrix product gives every stripe pair of a block
        self.rows = np.ascontiguousarray(gallery.transpose(1, 0, 2).reshape(-1, self.dim), dtype=dtype)
        self.norms = np.einsum("ij,ij->i", self.rows, self.rows)


def local_distances(query: np.ndarray, gallery: np.ndarray | LocalGallery) -> np.ndarray:
    """`(Q, S, D), (G, S, D) -> (Q, G)` local distances (the module docstring), exact, `MAX_BLOCK_ENTRIES`
    stripe distances at a time. float32 inputs give float32 distances, float64 float64."""
    if not isinstance(gallery, LocalGallery):
        query, gallery_array = _check(query, gallery)
        gallery = LocalGallery(gallery_array)
    query = np.asarray(query)
    if query.ndim != 3 or query.shape[1:] != (gallery.stripes, gallery.dim):
        raise ValueError(f"local distances need (Q, S, D) queries of the gallery's S = {gallery.stripes} and "
                         f"D = {gallery.dim}. Received: shape {query.shape}")
    s, g = gallery.stripes, gallery.size
    query = query.astype(gallery.rows.dtype, copy=False)
    out = np.empty((len(query), g), gallery.rows.dtype)
    step = max(1, min(len(query), MAX_BLOCK_ENTRIES // max(1, s * s * g)))
    work = np.empty(step * s * s * g, gallery.rows.dtype)  # one buffer for every block
    for start in range(0, len(query), step):
        block = query[start:start + step]
        b = len(block)
        rows = np.ascontiguousarray(block.transpose(1, 0, 2)).reshape(-1, gallery.dim)  # (S * b, D)
        c = work[:b * s * s * g].reshape(s * b, s * g)
        np.matmul(-2.0 * rows, gallery.rows.T, out=c)  # (S * b, S * G): -2 <q_i, g_j>
        c += np.einsum("ij,ij->i", rows, rows)[:, None]
        c += gallery.norms[None, :]
        np.maximum(c, 0.0, out=c)  # rounding of the product form
        c += EUCLIDEAN_EPSILON
        np.sqrt(c, out=c)
        c *= 0.5
        np.tanh(c, out=c)
        out[start:start + b] = _shortest_path_in_place(c.reshape(s, b, s, g))
    return out
