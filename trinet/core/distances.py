"""Pairwise distances between embeddings, in numpy (the evaluation side of `loss.cdist`).

The definitions are shared with the TensorFlow training loss and must stay identical to it:

    euclidean    sqrt(sum((a - b)^2) + 1e-12)
    sqeuclidean  sum((a - b)^2)
    cityblock    sum(|a - b|)
    cosine       1 - <a, b> / (sqrt(|a|^2 + 1e-12) * sqrt(|b|^2 + 1e-12))

Euclidean, sqeuclidean and cosine go through one matrix product (`|a|^2 + |b|^2 - 2 <a, b>`); the
rounding of that product can make a distance that is 0 in exact arithmetic slightly negative, so the
sum is clamped at 0 before anything else. Cityblock has no such form and is summed over the feature
dimension for a block of rows at a time, so memory stays at `(rows, G)`.

This module is numpy-only and cheap to import: the training command line takes its `choices=` from
`METRICS`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: Added under the square root of `euclidean`: the gradient of sqrt is infinite at 0, so in training a
#: pair of identical embeddings would give NaN gradients; with it the distance of a point to itself is
#: 1e-6 instead of 0.
EUCLIDEAN_EPSILON = 1e-12

#: Added to the squared norms in `cosine`, so a zero vector gives no division by zero (it has distance
#: exactly 1 to everything) and the training gradient stays finite.
COSINE_EPSILON = 1e-12

#: How many `(row, column)` entries a block of `cityblock` works on at a time.
CITYBLOCK_BLOCK = 1 << 22


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"cdist needs 2-D arrays (Q, D) and (G, D). "
                         f"Received: shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"cdist needs the same embedding dimension on both sides. "
                         f"Received: shapes {a.shape} and {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b.T` `(Q, G)`, each entry rounded the same whatever the number of rows of `a` and `b`: BLAS
    computes a product with one row or one column as a matrix-vector product, which rounds differently
    from the matrix-matrix one, so a query's distances would depend on the block it is evaluated in (and
    tied distances be broken differently). A single row or column is therefore doubled and the copy
    dropped."""
    if len(a) == 1:
        return _product(np.concatenate([a, a]), b)[:1]
    if len(b) == 1:
        return _product(a, np.concatenate([b, b]))[:, :1]
    return a @ b.T


def sqeuclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(Q, D), (G, D) -> (Q, G)`: sum((a - b)^2), clamped at 0."""
    a, b = _check(a, b)
    out = _product(-2.0 * a, b)  # -2 <a, b>: scaling by a power of two is exact, and saves a pass
    out += _squared_norms(a)[:, None]
    out += _squared_norms(b)[None, :]
    np.maximum(out, 0.0, out=out)
    return out


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(Q, D), (G, D) -> (Q, G)`: sqrt(sum((a - b)^2) + 1e-12).

    The epsilon keeps the training gradient finite when two embeddings coincide; the smallest possible
    distance is therefore 1e-6, not 0.
    """
    out = sqeuclidean(a, b)
    out += EUCLIDEAN_EPSILON
    return np.sqrt(out, out=out)


def cityblock(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(Q, D), (G, D) -> (Q, G)`: sum(|a - b|), summed one feature at a time over blocks of rows."""
    a, b = _check(a, b)
    out = np.zeros((len(a), len(b)), dtype=a.dtype)
    columns = np.ascontiguousarray(b.T)
    rows = max(1, CITYBLOCK_BLOCK // max(1, len(b)))
    scratch = np.empty((min(rows, len(a)), len(b)), dtype=a.dtype)
    for start in range(0, len(a), rows):
        block = out[start:start + rows]
        tmp = scratch[:len(block)]
        for d in range(a.shape[1]):
            np.subtract(a[start:start + rows, d, None], columns[d][None, :], out=tmp)
            np.abs(tmp, out=tmp)
            block += tmp
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(_squared_norms(x) + COSINE_EPSILON)[:, None]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(Q, D), (G, D) -> (Q, G)`: 1 - <a, b> / (sqrt(|a|^2 + 1e-12) sqrt(|b|^2 + 1e-12)).

    Clamped at 0 below (rounding); a zero vector has distance 1 to every vector.
    """
    a, b = _check(a, b)
    out = _product(_unit(a), _unit(b))
    np.subtract(1.0, out, out=out)
    np.maximum(out, 0.0, out=out)
    return out


#: The distance functions by name: the one list of valid `--metric` values.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "euclidean": euclidean,
    "sqeuclidean": sqeuclidean,
    "cityblock": cityblock,
    "cosine": cosine,
}


def get_metric(metric: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The distance function called `metric`; ValueError listing the valid names if there is none."""
    try:
        return METRICS[metric]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown metric {metric!r}; expected one of {sorted(METRICS)}") from None


def cdist(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """All distances between the rows of `a` `(Q, D)` and of `b` `(G, D)`: `(Q, G)`.

    float32 inputs give float32 distances, float64 inputs float64; other inputs become float32.
    """
    return get_metric(metric)(a, b)


def rowwise(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """The distance between `a[i]` and `b[i]` for each i: `(P, D), (P, D) -> (P,)`.

    Computed from the differences (not through a matrix product), so it can differ from `cdist` in
    the last bits.
    """
    get_metric(metric)
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"rowwise needs two (P, D) arrays of one shape. Received: {a.shape} and {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    if metric == "cosine":
        return np.maximum(1.0 - np.einsum("ij,ij->i", _unit(a), _unit(b)), 0.0)
    diff = a - b
    if metric == "cityblock":
        return np.abs(diff).sum(axis=1)
    squared = np.einsum("ij,ij->i", diff, diff)
    return np.sqrt(squared + EUCLIDEAN_EPSILON) if metric == "euclidean" else squared
