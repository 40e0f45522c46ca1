"""trinet.evaluation.rerank: equal to a direct transcription of the authors' re-ranking, on small data."""

import numpy as np
import pytest

from trinet.core.distances import cdist
from trinet.evaluation import rerank
from trinet.evaluation.rerank import ReRanker, re_ranking, smallest


def paper_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3, dtype=np.float64,
                     kind="quicksort"):
    """The authors' `re_ranking` (zhunzhong07/person-re-ranking, python version), transcribed; dense.

    Only the dtype (the authors use float32) and the sort of the neighbour ranking are parameters
    (the authors' quicksort leaves the order of exact ties arbitrary; "stable" orders them by index).
    Also returns how many candidate sets added new members in the expansion step, so a test can make
    sure that step is exercised.
    """
    original_dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                                    np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    original_dist = np.power(original_dist, 2).astype(dtype)
    original_dist = np.transpose(1. * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(dtype)
    initial_rank = np.argsort(original_dist, kind=kind).astype(np.int32)
    query_num = q_g_dist.shape[0]
    gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    all_num = gallery_num
    expansions = 0
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, :k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[candidate, :int(np.around(k1 / 2.)) + 1]
            candidate_backward_k_neigh_index = initial_rank[candidate_forward_k_neigh_index,
                                                            :int(np.around(k1 / 2.)) + 1]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > \
                    2. / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index,
                                                         candidate_k_reciprocal_index)
                expansions += len(np.setdiff1d(candidate_k_reciprocal_index, k_reciprocal_index)) > 0
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1. * weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=dtype)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = []
    for i in range(gallery_num):
        invIndex.append(np.where(V[:, i] != 0)[0])
    jaccard_dist = np.zeros_like(original_dist, dtype=dtype)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=dtype)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2. - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:], expansions


def clustered(seed, num_q, num_g, dim, clusters=6):
    """Query and gallery float64 embeddings around a few centres (so k-reciprocal sets overlap)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    query = centres[rng.integers(0, clusters, num_q)] + 0.5 * rng.standard_normal((num_q, dim))
    gallery = centres[rng.integers(0, clusters, num_g)] + 0.5 * rng.standard_normal((num_g, dim))
    return query, gallery


CASES = [  # (Q, G, D, k1, k2, lambda)
    (10, 60, 8, 20, 6, 0.3),    # the paper's defaults
    (12, 50, 3, 7, 1, 0.0),     # no query expansion, Jaccard only; round(7/2) = 4
    (7, 30, 4, 5, 3, 0.3),      # round(5/2) = 2 (numpy rounds half to even)
    (5, 40, 6, 4, 10, 1.0),     # k2 > k1 + 1; original distance only
    (3, 5, 2, 20, 6, 0.3),      # fewer images than k1 + 1
]


@pytest.mark.parametrize("num_q, num_g, dim, k1, k2, lam", CASES)
def test_equals_the_paper_from_matrices_and_embeddings(num_q, num_g, dim, k1, k2, lam):
    query, gallery = clustered(num_q + num_g, num_q, num_g, dim)
    q_g, q_q, g_g = cdist(query, gallery), cdist(query, query), cdist(gallery, gallery)
    expected, _ = paper_re_ranking(q_g, q_q, g_g, k1, k2, lam)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1, k2, lam), expected, rtol=0, atol=1e-12)
    ranker = ReRanker.from_embeddings(query, gallery, k1=k1, k2=k2, lambda_value=lam, batch_size=7)
    np.testing.assert_allclose(ranker(slice(None)), expected, rtol=0, atol=1e-12)


def test_exact_ties_are_broken_by_index():
    # Integer coordinates: many equal distances, duplicated images included.
    rng = np.random.default_rng(6)
    query, gallery = rng.integers(0, 3, (8, 3)).astype(float), rng.integers(0, 3, (40, 3)).astype(float)
    gallery[5] = query[0]
    q_g, q_q, g_g = cdist(query, gallery), cdist(query, query), cdist(gallery, gallery)
    expected, _ = paper_re_ranking(q_g, q_q, g_g, 6, 3, kind="stable")
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, 6, 3), expected, rtol=0, atol=1e-12)
    ours = ReRanker.from_embeddings(query, gallery, k1=6, k2=3)(slice(None))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_the_expansion_step_is_exercised():
    query, gallery = clustered(0, 10, 60, 8)
    _, expansions = paper_re_ranking(cdist(query, gallery), cdist(query, query), cdist(gallery, gallery))
    assert expansions > 0


def test_within_float_tolerance_of_the_authors_float32():
    query, gallery = clustered(1, 15, 80, 16)
    q_g, q_q, g_g = cdist(query, gallery), cdist(query, query), cdist(gallery, gallery)
    expected, _ = paper_re_ranking(q_g, q_q, g_g, dtype=np.float32)
    ours = ReRanker.from_embeddings(query.astype(np.float32), gallery.astype(np.float32))(slice(None))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


def test_blocks_and_column_subsets(monkeypatch):
    monkeypatch.setattr(rerank, "BLOCK_ENTRIES", 64)  # tiny blocks everywhere
    monkeypatch.setattr(rerank, "JACCARD_BLOCK", 50)
    query, gallery = clustered(2, 11, 45, 5)
    expected, _ = paper_re_ranking(cdist(query, gallery), cdist(query, query), cdist(gallery, gallery), 6, 3)
    ranker = ReRanker.from_embeddings(query, gallery, k1=6, k2=3)
    np.testing.assert_allclose(ranker(slice(None)), expected, atol=1e-12)
    columns = np.array([3, 0, 44, 17])
    np.testing.assert_allclose(ranker(slice(2, 9), columns), expected[2:9][:, columns], atol=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "cityblock"])
def test_other_metrics_square_their_distance(metric):
    query, gallery = clustered(3, 6, 25, 4)
    dist = [cdist(a, b, metric) for a, b in ((query, gallery), (query, query), (gallery, gallery))]
    expected, _ = paper_re_ranking(*dist, k1=5, k2=2)
    ours = ReRanker.from_embeddings(query, gallery, metric, k1=5, k2=2)(slice(None))
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_smallest_is_a_stable_partial_argsort():
    rng = np.random.default_rng(4)
    block = rng.integers(0, 7, (30, 300)).astype(np.float32)  # many ties
    block[5] = 1.0                                            # a row of ties only
    for k in (1, 3, 21, 299, 300, 400):
        expected = np.argsort(block, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(smallest(block, k), expected)


def test_bad_parameters():
    query, gallery = clustered(5, 3, 8, 2)
    with pytest.raises(ValueError, match="k1 and k2"):
        ReRanker.from_embeddings(query, gallery, k1=0)
    with pytest.raises(ValueError, match="lambda_value"):
        ReRanker.from_embeddings(query, gallery, lambda_value=1.5)
    with pytest.raises(ValueError, match="Received"):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))
