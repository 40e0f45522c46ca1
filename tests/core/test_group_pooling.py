"""Pooling groups of embeddings (multi-query, tracklets) against hand-worked values and a numpy loop."""

import numpy as np
import pytest

from trinet.core.pooling import TEMPORAL_POOLINGS, RunningPool, pool_groups


def test_pooling_by_hand():
    emb = np.array([[0, 4], [2, 2], [9, 9], [1, -3]], np.float32)
    groups = np.array([0, 0, 2, 0])
    mean, counts = pool_groups(emb, groups, 3, "mean")
    assert counts.tolist() == [3, 0, 1]
    np.testing.assert_allclose(mean, [[1, 1], [0, 0], [9, 9]])
    high, _ = pool_groups(emb, groups, 3, "max")
    np.testing.assert_allclose(high, [[2, 4], [0, 0], [9, 9]])


@pytest.mark.parametrize("how", sorted(TEMPORAL_POOLINGS))
def test_pooling_equals_a_numpy_loop_and_the_running_pool(how):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 5)).astype(np.float32)
    groups = rng.integers(0, 7, 50)
    pooled, counts = pool_groups(emb, groups, 8, how)
    for g in range(8):
        rows = emb[groups == g]
        assert counts[g] == len(rows)
        if len(rows):
            expected = rows.mean(axis=0) if how == "mean" else rows.max(axis=0)
            np.testing.assert_allclose(pooled[g], expected, rtol=1e-6, atol=1e-6)
            running = RunningPool(how)
            for block in np.array_split(rows, 3):
                running.add(block)
            np.testing.assert_allclose(running.result(), expected, rtol=1e-6, atol=1e-6)


def test_pooling_errors():
    with pytest.raises(ValueError, match=r"Unknown pooling 'median'.*\['max', 'mean'\]"):
        pool_groups(np.zeros((1, 2)), np.zeros(1, int), 1, "median")
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        pool_groups(np.zeros((1, 2)), np.array([2]), 2, "mean")
