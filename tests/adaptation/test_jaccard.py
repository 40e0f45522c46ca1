"""trinet.adaptation.jaccard: the sparse k-reciprocal Jaccard distance equals a dense transcription of
Cluster Contrast's `compute_jaccard_distance` on small data."""

import numpy as np
import pytest

from trinet.adaptation import jaccard
from trinet.adaptation.jaccard import jaccard_distances
from trinet.core.distances import cdist


def normalised(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def dense_jaccard(features, k1, k2):
    """Cluster Contrast's `compute_jaccard_distance` (clustercontrast/utils/faiss_rerank.py), transcribed in
    dense float64 numpy, with its diagonal set to 0.

    The kNN is the faiss flat search of the k1 nearest; here a stable argsort of trinet's float32 squared
    distances (so exact ties, e.g. of identical points, are ranked by index, as trinet ranks them); the
    weights are exp(-d^2) of the float64 differences (trinet's of float32 ones).
    """
    x = normalised(features)
    n = len(x)
    initial_rank = np.argsort(cdist(x, x, "sqeuclidean"), axis=1, kind="stable")[:, :k1]
    diff = x.astype(np.float64)[:, None, :] - x.astype(np.float64)[None, :, :]
    dist = (diff ** 2).sum(axis=2)

    def k_reciprocal_neigh(i, k):
        forward = initial_rank[i, :k + 1]
        backward = initial_rank[forward, :k + 1]
        return forward[np.where(backward == i)[0]]

    half = int(np.around(k1 / 2))
    nn_k1 = [k_reciprocal_neigh(i, k1) for i in range(n)]
    nn_half = [k_reciprocal_neigh(i, half) for i in range(n)]
    v = np.zeros((n, n))
    for i in range(n):
        expansion = nn_k1[i]
        for candidate in nn_k1[i]:
            cand = nn_half[candidate]
            if len(np.intersect1d(cand, nn_k1[i])) > 2 / 3 * len(cand):
                expansion = np.append(expansion, cand)
        expansion = np.unique(expansion)
        w = np.exp(-dist[i, expansion])
        v[i, expansion] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[initial_rank[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.zeros((n, n))
    for i in range(n):
        m = np.minimum(v[i][None, :], v).sum(axis=1)
        out[i] = 1 - m / (2 - m)
    out[out < 0] = 0.0
    np.fill_diagonal(out, 0.0)
    return out


def clustered(seed, n, dim=8, clusters=6, spread=0.35):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dim))).astype(np.float32)


def as_dense(sparse):
    out = np.ones(sparse.shape)
    coo = sparse.tocoo()
    out[coo.row, coo.col] = coo.data
    return out


def check_against_reference(x, k1, k2):
    ours = jaccard_distances(x, k1, k2)
    ref = dense_jaccard(x, k1, k2)
    n = len(x)
    assert ours.shape == (n, n) and ours.has_sorted_indices
    # trinet's weights use float32 distances (as Cluster Contrast's float32 features): ~1e-8 apart.
    np.testing.assert_allclose(as_dense(ours), ref, rtol=0, atol=1e-7)
    # Stored exactly where the encodings overlap (distance < 1), and on the diagonal.
    pattern = np.zeros((n, n), bool)
    coo = ours.tocoo()
    pattern[coo.row, coo.col] = True
    assert len(coo.row) == len(set(zip(coo.row.tolist(), coo.col.tolist())))
    np.testing.assert_array_equal(pattern, (ref < 1) | np.eye(n, dtype=bool))
    # Symmetric bit for bit.
    assert (ours != ours.T).nnz == 0
    return ours, ref


@pytest.mark.parametrize("n, k1, k2, seed", [(40, 10, 3, 0), (120, 20, 6, 1), (200, 30, 6, 2), (60, 7, 1, 3),
                                             (50, 60, 6, 4)])
def test_equals_a_dense_transcription_of_cluster_contrast(n, k1, k2, seed):
    _, ref = check_against_reference(clustered(seed, n), k1, k2)
    if k1 < n:  # neither empty nor all pairs: the sparsity is exercised
        assert 0.05 < (ref < 1).mean() < 0.9


def test_identical_points_are_stored_zeros():
    x = clustered(5, 80)
    x[10:22] = x[10]  # 12 identical images: more than k2, fewer than k1
    x[40:43] = x[40] * 3.0  # the same direction, another norm: identical after normalisation
    ours, _ = check_against_reference(x, 20, 6)
    block = ours[10:22, 10:22].toarray()
    assert ours[10:22, 10:22].nnz == 144  # every pair stored, although at distance 0 (up to rounding of m)
    assert np.abs(block).max() <= 1e-15
    assert (ours.diagonal() == 0).all() and (ours.data == 0).sum() >= 80  # the diagonal: explicit zeros
    assert (ours.data <= 1e-15).sum() >= 80 + 132 + 6


def test_more_identical_points_than_k1():
    x = clustered(6, 70)
    x[:30] = x[0]  # 30 identical images with k1 = 10: later ones are not among their own 10 nearest
    check_against_reference(x, 10, 6)
    check_against_reference(x, 10, 1)


def test_blocks_of_the_pair_step(monkeypatch):
    x = clustered(7, 150)
    whole = jaccard_distances(x, 20, 6)
    monkeypatch.setattr(jaccard, "PAIR_BLOCK", 500)
    monkeypatch.setattr(jaccard, "NEIGHBOUR_BLOCK", 1000)
    rows = []
    parts = jaccard_distances(x, 20, 6, progress=rows.append)
    assert (whole != parts).nnz == 0 and np.array_equal(whole.indptr, parts.indptr)
    assert sum(rows) == 150 and len(rows) > 1


def test_max_distance_keeps_the_near_pairs_and_the_diagonal():
    x = clustered(9, 120)
    full, near = jaccard_distances(x, 20, 6), jaccard_distances(x, 20, 6, max_distance=0.6)
    dense = as_dense(full)
    expected = (dense <= 0.6) | np.eye(120, dtype=bool)
    assert 0 < near.nnz < full.nnz and near.nnz == expected.sum()
    np.testing.assert_array_equal(near.toarray()[expected], dense[expected])


def test_faiss_search_gives_the_same_distances():
    pytest.importorskip("faiss")
    x = clustered(8, 120)
    a, b = jaccard_distances(x, 20, 6), jaccard_distances(x, 20, 6, search="faiss")
    np.testing.assert_allclose(as_dense(a), as_dense(b), atol=1e-9)


def test_single_image_and_bad_input():
    one = jaccard_distances(np.ones((1, 4)), 30, 6)
    assert one.nnz == 1 and one[0, 0] == 0
    with pytest.raises(ValueError, match="k1=0"):
        jaccard_distances(np.ones((3, 4)), 0, 6)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        jaccard_distances(np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        jaccard_distances(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="Unknown metric 'manhattan'"):
        jaccard_distances(np.ones((3, 2)), metric="manhattan")
    with pytest.raises(ValueError, match="Unknown neighbour search 'ivf'"):
        jaccard_distances(np.ones((3, 2)), search="ivf")


def test_pca_search_finds_the_exact_neighbours_of_low_rank_data(monkeypatch):
    rng = np.random.default_rng(10)
    latent = rng.normal(size=(30, 6)) @ rng.normal(size=(6, 64))  # 30 identities near a 6-d subspace
    x = (latent[rng.integers(0, 30, 400)] + 0.3 * rng.normal(size=(400, 64))).astype(np.float32)
    x = normalised(x)
    monkeypatch.setattr(jaccard, "PCA_DIMS", 16)
    monkeypatch.setattr(jaccard, "PCA_SAMPLE", 150)  # the axes from every third row
    exact = jaccard.nearest_neighbours(x, 20)
    approx = jaccard.nearest_neighbours(x, 20, search="pca")
    assert approx.shape == (400, 20) and (approx[:, 0] == np.arange(400)).all()
    recall = np.mean([len(np.intersect1d(a, e)) / 20 for a, e in zip(approx, exact)])
    assert recall > 0.97
    np.testing.assert_array_equal(approx, jaccard.nearest_neighbours(x, 20, search="pca"))
    # Where a row's candidates hold its exact neighbours, the order is the exact one (up to float32 rounding
    # of near-ties: the refinement computes the distances in another order of operations).
    same = (np.sort(approx, axis=1) == np.sort(exact, axis=1)).all(axis=1)
    assert same.mean() > 0.5
    assert (approx[same] == exact[same]).mean() > 0.999
    # "auto": exact up to AUTO_EXACT images, pca beyond.
    np.testing.assert_array_equal(jaccard.nearest_neighbours(x, 20, search="auto"), exact)
    monkeypatch.setattr(jaccard, "AUTO_EXACT", 399)
    np.testing.assert_array_equal(jaccard.nearest_neighbours(x, 20, search="auto"), approx)
