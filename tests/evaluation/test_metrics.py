"""trinet.evaluation.metrics: AP, Market AP, CMC and mINP on hand-written matrices and against references."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from trinet.core.distances import cdist
from trinet.evaluation import metrics
from trinet.evaluation.excluders import EXCLUDERS, Exclusion
from trinet.evaluation.metrics import (average_precision, cmc_curve, evaluate, first_match_rank,
                                       inverse_negative_penalty, market_average_precision, rank_matches,
                                       ranked_list, summarize)


def official_market_ap(y_true, y_score):
    """triplet-reid's `average_precision_score_market` (the Market-1501 MATLAB formula), transcribed."""
    y_true_sorted = y_true[np.argsort(-y_score, kind="mergesort")]
    tp = np.cumsum(y_true_sorted)
    recall = np.insert(tp / np.sum(y_true_sorted), 0, 0.0)
    precision = np.insert(tp / np.arange(1, len(tp) + 1), 0, 1.0)
    return np.sum(np.diff(recall) * ((precision[1:] + precision[:-1]) / 2))


def full_sort_reference(distances, matches, ignore):
    """Per query: drop ignored entries, sort by (distance, non-match first, index); positions of matches."""
    out = []
    for d, m, ig in zip(distances, matches, ignore):
        keep = ~ig
        order = np.lexsort((np.arange(keep.sum()), m[keep], d[keep]))
        out.append(np.flatnonzero(m[keep][order]) + 1)
    return out


def test_one_query_by_hand():
    ranks = rank_matches([[0.1, 0.2, 0.3, 0.4]], [[True, False, True, False]])
    assert average_precision(ranks)[0] == pytest.approx((1 + 2 / 3) / 2)           # 0.8333
    assert market_average_precision(ranks)[0] == pytest.approx((1 + 7 / 12) / 2)   # 0.7917
    assert inverse_negative_penalty(ranks)[0] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(cmc_curve(ranks, 4), [1, 1, 1, 1])


def test_ignored_entries_junk_and_distractors_by_hand():
    # Gallery: match ignored (same camera), junk ignored, distractor (a non-match) kept, ...
    distances = [[0.1, 0.15, 0.2, 0.3, 0.5, 0.6]]
    matches = [[True, False, False, True, False, True]]
    ignore = [[True, True, False, False, False, False]]
    ranks = rank_matches(distances, matches, ignore)
    # Ranked: distractor .2, match .3, non-match .5, match .6 -> matches at positions 2 and 4.
    assert average_precision(ranks)[0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert market_average_precision(ranks)[0] == pytest.approx(((1 / 2 + 0) / 2 + (2 / 4 + 1 / 3) / 2) / 2)
    assert first_match_rank(ranks)[0] == 1
    assert inverse_negative_penalty(ranks)[0] == pytest.approx(2 / 4)
    np.testing.assert_array_equal(cmc_curve(ranks, 6), [0, 1, 1, 1, 1, 1])


def test_ties_by_hand():
    # n .2, m .2, m .5, n .5, m .5 (gallery order must not matter, see below).
    distances = [[0.2, 0.2, 0.5, 0.5, 0.5]]
    matches = [[False, True, True, False, True]]
    ranks = rank_matches(distances, matches)
    # scikit-learn groups ties: thresholds .2 (1 of 2 relevant) and .5 (3 of 5).
    assert average_precision(ranks)[0] == pytest.approx(1 / 3 * 1 / 2 + 2 / 3 * 3 / 5)
    # Pessimistic: n, m | n, m, m -> matches at positions 2, 4, 5.
    expected_market = ((1 / 2 + 0) / 2 + (2 / 4 + 1 / 3) / 2 + (3 / 5 + 2 / 4) / 2) / 3
    assert market_average_precision(ranks)[0] == pytest.approx(expected_market)
    assert first_match_rank(ranks)[0] == 1
    assert inverse_negative_penalty(ranks)[0] == pytest.approx(3 / 5)
    # Same answers in any gallery order.
    for permutation in ([4, 3, 2, 1, 0], [1, 0, 4, 2, 3]):
        again = rank_matches(np.array(distances)[:, permutation], np.array(matches)[:, permutation])
        assert average_precision(again)[0] == pytest.approx(average_precision(ranks)[0])
        assert market_average_precision(again)[0] == pytest.approx(expected_market)
        assert first_match_rank(again)[0] == 1


def test_query_without_valid_match_is_skipped_from_every_average():
    distances = [[0.1, 0.2, 0.3],    # first match at rank 1
                 [0.3, 0.1, 0.2],    # match at rank 3
                 [0.1, 0.2, 0.3]]    # its only match is ignored -> skipped
    matches = [[True, False, False], [True, False, False], [False, True, False]]
    ignore = [[False] * 3, [False] * 3, [False, True, False]]
    results = summarize(rank_matches(distances, matches, ignore), 3)
    assert results.num_skipped == 1 and results.num_evaluated == 2
    assert np.isnan(results.aps[2]) and np.isnan(results.inps[2]) and results.first_rank[2] == -1
    assert results.mean_ap == pytest.approx((1 + 1 / 3) / 2)
    assert results.mean_inp == pytest.approx((1 + 1 / 3) / 2)
    # CMC over the 2 evaluated queries (the original divided by all 3).
    np.testing.assert_allclose(results.cmc, [0.5, 0.5, 1.0])
    assert results.top(1) == 0.5 and results.top(10) == 1.0


def test_no_query_evaluated():
    results = summarize(rank_matches([[0.1, 0.2]], [[False, False]]), 2)
    assert results.num_evaluated == 0 and np.isnan(results.mean_ap) and np.isnan(results.cmc).all()


def random_problem(seed, num_q=40, num_g=30, levels=6):
    """Distances with many ties (few distinct values), random matches and ignored entries."""
    rng = np.random.default_rng(seed)
    distances = rng.integers(0, levels, (num_q, num_g)) / levels
    matches = rng.random((num_q, num_g)) < 0.25
    ignore = rng.random((num_q, num_g)) < 0.15
    return distances, matches, ignore


@pytest.mark.parametrize("seed", range(4))
def test_ap_equals_scikit_learn_ties_included(seed):
    distances, matches, ignore = random_problem(seed)
    before = distances.copy()
    aps = average_precision(rank_matches(distances, matches, ignore))
    np.testing.assert_array_equal(distances, before)  # the input is not overwritten
    checked = 0
    for i in range(len(distances)):
        keep = ~ignore[i]
        if not matches[i][keep].any():
            assert np.isnan(aps[i])
            continue
        expected = average_precision_score(matches[i][keep], -distances[i][keep])
        assert aps[i] == pytest.approx(expected, abs=1e-12)
        checked += 1
    assert checked > 30


def test_ap_equals_scikit_learn_on_continuous_data():
    rng = np.random.default_rng(10)
    distances, matches = rng.random((25, 200)), rng.random((25, 200)) < 0.05
    matches[:, 0] = True
    aps = average_precision(rank_matches(distances, matches))
    expected = [average_precision_score(m, -d) for d, m in zip(distances, matches)]
    np.testing.assert_allclose(aps, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_market_ap_equals_the_official_formula(seed):
    distances, matches, ignore = random_problem(seed, levels=1000)
    ranks = rank_matches(distances, matches, ignore)
    ours = market_average_precision(ranks)
    for i in range(len(distances)):
        keep = ~ignore[i]
        y, d = matches[i][keep], distances[i][keep]
        if not y.any():
            continue
        # The official code breaks ties by position; with non-matches placed first it is pessimistic.
        front = np.concatenate([np.flatnonzero(~y), np.flatnonzero(y)])
        assert ours[i] == pytest.approx(official_market_ap(y[front], -d[front]), abs=1e-12)


def test_market_ap_example_from_the_reference():
    # [T, F, T, F] ranked in that order: Market 0.7917, scikit-learn 0.8333.
    y, score = np.array([True, False, True, False]), np.array([4.0, 3.0, 2.0, 1.0])
    ranks = rank_matches([-score], [y])
    assert market_average_precision(ranks)[0] == pytest.approx(official_market_ap(y, score))
    assert round(market_average_precision(ranks)[0], 4) == 0.7917


@pytest.mark.parametrize("seed", range(3))
def test_cmc_and_minp_equal_a_per_query_full_sort(seed):
    distances, matches, ignore = random_problem(seed)
    ranks = rank_matches(distances, matches, ignore)
    positions = full_sort_reference(distances, matches, ignore)
    evaluated = [p for p in positions if len(p)]
    first = np.array([p[0] for p in evaluated])
    expected_cmc = [(first <= k).mean() for k in range(1, distances.shape[1] + 1)]
    np.testing.assert_allclose(cmc_curve(ranks, distances.shape[1]), expected_cmc)
    inp = inverse_negative_penalty(ranks)
    np.testing.assert_allclose(inp[~np.isnan(inp)], [len(p) / p[-1] for p in evaluated])


def test_results_do_not_depend_on_gallery_order():
    distances, matches, ignore = random_problem(7)
    permutation = np.random.default_rng(0).permutation(distances.shape[1])
    a = summarize(rank_matches(distances, matches, ignore), 30, market_ap=True)
    shuffled = rank_matches(distances[:, permutation], matches[:, permutation], ignore[:, permutation])
    b = summarize(shuffled, 30, market_ap=True)
    np.testing.assert_allclose(a.aps, b.aps, equal_nan=True)
    np.testing.assert_array_equal(a.first_rank, b.first_rank)
    np.testing.assert_allclose(a.cmc, b.cmc)


def test_rank_matches_rejects_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        rank_matches(np.zeros((2, 3)), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="finite"):
        rank_matches([[0.1, np.nan]], [[True, False]])


def integer_embeddings(seed):
    """Small-integer embeddings: exact float64 distances (any block shape) with many ties."""
    rng = np.random.default_rng(seed)
    query = rng.integers(-2, 3, (9, 3)).astype(np.float64)
    gallery = rng.integers(-2, 3, (23, 3)).astype(np.float64)
    query_pids = rng.choice(["a", "b", "c"], 9)
    gallery_pids = rng.choice(["a", "b", "c", "d"], 23)
    return query, gallery, query_pids, gallery_pids


@pytest.mark.parametrize("metric", ["euclidean", "cityblock"])
@pytest.mark.parametrize("batch_size", [1, 4, 256])
def test_blockwise_evaluate_equals_dense(metric, batch_size, monkeypatch):
    query, gallery, query_pids, gallery_pids = integer_embeddings(3)
    rng = np.random.default_rng(5)
    exclusion = Exclusion(rng.integers(-1, 3, 9), rng.integers(0, 3, 23), rng.random(23) < 0.2)
    if batch_size == 1:
        monkeypatch.setattr(metrics, "MAX_BLOCK_ENTRIES", 5)  # forces one query per block
    results = evaluate(query, gallery, query_pids, gallery_pids, exclusion, metric=metric,
                       batch_size=batch_size)
    dense = rank_matches(cdist(query, gallery, metric), query_pids[:, None] == gallery_pids[None],
                         exclusion.mask())
    np.testing.assert_allclose(results.aps, average_precision(dense), equal_nan=True)
    np.testing.assert_array_equal(results.first_rank, first_match_rank(dense))
    np.testing.assert_allclose(results.cmc, cmc_curve(dense, 23))
    assert results.num_skipped == (dense.num_matches == 0).sum()


def test_evaluate_with_market_names_against_scikit_learn():
    rng = np.random.default_rng(8)
    persons = rng.integers(1, 5, 30)
    cams = rng.integers(1, 4, 30)
    persons[:4] = -1    # junk
    persons[4:7] = 0    # distractors
    names = [f"{'-1' if p < 0 else f'{p:04d}'}_c{c}s1_{i:06d}_01.jpg"
             for i, (p, c) in enumerate(zip(persons, cams))]
    pids = np.array(["-1" if p < 0 else f"{p:04d}" for p in persons])
    emb = rng.standard_normal((30, 4))
    q = np.arange(7, 15)
    exclusion = EXCLUDERS["market1501"]([names[i] for i in q], names)
    results = evaluate(emb[q], emb, pids[q], pids, exclusion)
    distances = cdist(emb[q], emb)
    for r, i in enumerate(q):
        keep = ~((persons == persons[i]) & (cams == cams[i])) & (persons != -1)
        y = pids[keep] == pids[i]
        if y.any():
            assert results.aps[r] == pytest.approx(average_precision_score(y, -distances[r][keep]), abs=1e-12)
        else:
            assert np.isnan(results.aps[r])


def test_distance_function_replaces_the_metric():
    query, gallery, query_pids, gallery_pids = integer_embeddings(4)
    flipped = evaluate(query, gallery, query_pids, gallery_pids,
                       distances=lambda rows, columns: -cdist(query[rows], gallery[columns]))
    dense = rank_matches(-cdist(query, gallery), query_pids[:, None] == gallery_pids[None])
    np.testing.assert_allclose(flipped.aps, average_precision(dense), equal_nan=True)


def test_ranked_list_pessimistic_ties_and_ignored():
    distances = np.array([0.5, 0.1, 0.5, 0.3, 0.1])
    matches = np.array([True, True, False, False, False])
    ignore = np.array([False, False, False, True, False])
    np.testing.assert_array_equal(ranked_list(distances, matches, ignore, 10), [4, 1, 2, 0])
    np.testing.assert_array_equal(ranked_list(distances, matches, ignore, 2), [4, 1])
