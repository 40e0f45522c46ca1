"""trinet.core.distances: the numpy side of the shared distance definitions."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import cdist as scipy_cdist

from conftest import REPO
from trinet.core import distances
from trinet.core.distances import METRICS, cdist, rowwise


def scipy_reference(a, b, metric):
    """The definitions of the module docstring, from scipy's exact (difference-based) distances."""
    if metric == "euclidean":
        return np.sqrt(scipy_cdist(a, b, "sqeuclidean") + 1e-12)
    if metric == "cosine":
        na = np.sqrt((a * a).sum(1) + 1e-12)
        nb = np.sqrt((b * b).sum(1) + 1e-12)
        return np.maximum(1 - (a @ b.T) / na[:, None] / nb[None, :], 0)
    return scipy_cdist(a, b, metric)


def test_registry_names():
    assert sorted(METRICS) == ["cityblock", "cosine", "euclidean", "sqeuclidean"]


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_matches_scipy_float64(metric):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((11, 5))
    out = cdist(a, b, metric)
    assert out.shape == (7, 11) and out.dtype == np.float64
    np.testing.assert_allclose(out, scipy_reference(a, b, metric), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_float32_stays_float32_and_close(metric):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 16)).astype(np.float32), rng.standard_normal((9, 16)).astype(np.float32)
    out = cdist(a, b, metric)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, scipy_reference(a.astype(float), b.astype(float), metric), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_rowwise_equals_diagonal_of_cdist(metric):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    np.testing.assert_allclose(rowwise(a, b, metric), np.diag(cdist(a, b, metric)), rtol=1e-10, atol=1e-12)


def test_hand_computed_values():
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    b = np.array([[3.0, 4.0], [-3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(cdist(a, b, "sqeuclidean"), [[25, 25, 0], [0, 100, 25]])
    np.testing.assert_allclose(cdist(a, b, "euclidean"), [[5, 5, 1e-6], [1e-6, 10, 5]], rtol=1e-9)
    np.testing.assert_allclose(cdist(a, b, "cityblock"), [[7, 7, 0], [0, 14, 7]])
    # A zero vector has cosine distance 1 to everything; same direction 0, opposite 2.
    np.testing.assert_allclose(cdist(a, b, "cosine"), [[1, 1, 1], [0, 2, 1]], atol=1e-12)


def test_euclidean_epsilon_and_no_negative_from_cancellation():
    # Large norms make |a|^2 + |b|^2 - 2ab cancel badly in float32: still never negative nor NaN.
    rng = np.random.default_rng(3)
    a = (1000 + rng.standard_normal((20, 64))).astype(np.float32)
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        out = cdist(a, a, metric)
        assert np.isfinite(out).all() and (out >= 0).all(), metric
    assert cdist(a, a, "euclidean").min() >= np.float32(1e-6)


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_distance_does_not_depend_on_the_block_it_is_computed_in(metric, dtype):
    """Each entry is the same bits whether computed in the whole matrix, in its row alone or in its
    column alone (evaluation works in blocks of queries down to one; tied distances must stay tied)."""
    rng = np.random.default_rng(3)
    a = np.round(rng.normal(size=(40, 3)), 1).astype(dtype)  # rounded: many exact ties
    b = np.round(rng.normal(size=(30, 3)), 1).astype(dtype)
    whole = cdist(a, b, metric)
    rows = np.concatenate([cdist(a[i:i + 1], b, metric) for i in range(len(a))])
    columns = np.concatenate([cdist(a, b[j:j + 1], metric) for j in range(len(b))], axis=1)
    np.testing.assert_array_equal(rows, whole)
    np.testing.assert_array_equal(columns, whole)
    np.testing.assert_array_equal(cdist(a[:1], b[:1], metric), whole[:1, :1])


def test_cityblock_blocks(monkeypatch):
    monkeypatch.setattr(distances, "CITYBLOCK_BLOCK", 10)  # several rows per block, then single rows
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((13, 4)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(cdist(a, b, "cityblock"), scipy_cdist(a, b, "cityblock"), rtol=1e-12)
    monkeypatch.setattr(distances, "CITYBLOCK_BLOCK", 1)
    np.testing.assert_allclose(cdist(a, b, "cityblock"), scipy_cdist(a, b, "cityblock"), rtol=1e-12)


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown metric 'manhattan'.*'cityblock', 'cosine'"):
        cdist(np.zeros((1, 2)), np.zeros((1, 2)), "manhattan")


@pytest.mark.parametrize("a_shape, b_shape", [((2, 3), (2, 4)), ((3,), (2, 3))])
def test_bad_shapes(a_shape, b_shape):
    with pytest.raises(ValueError, match="Received"):
        cdist(np.zeros(a_shape), np.zeros(b_shape))


def test_empty_inputs():
    assert cdist(np.zeros((0, 3)), np.zeros((4, 3))).shape == (0, 4)
    assert cdist(np.zeros((2, 3)), np.zeros((0, 3)), "cityblock").shape == (2, 0)


def test_import_is_numpy_only():
    code = ("import sys, trinet.core.distances; "
            "print(sorted(m for m in ('scipy', 'tensorflow', 'keras', 'h5py', 'sklearn') "
            "if m in sys.modules))")
    root = REPO
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"
