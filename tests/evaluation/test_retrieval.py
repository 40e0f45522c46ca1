"""trinet.evaluation.retrieval: Recall@K, MAP@R, R-precision and NMI against plain loops and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from trinet.core.distances import cdist
from trinet.evaluation import metrics, retrieval
from trinet.evaluation.excluders import EXCLUDERS
from trinet.evaluation.retrieval import (MetricRequest, RetrievalCollector, evaluate_retrieval,
                                         kmeans_labels, nmi, normalized_mutual_information, parse_metrics,
                                         retrieval_of_matrix, self_exclusion)


def loop_reference(distances, matches, ignore, ks):
    """Per query, by plain loops: drop ignored entries, rank by (distance, non-match first, index); then
    Recall@K, R-precision and MAP@R as Musgrave et al. define them. None for a query without a match."""
    out = []
    for d, m, ig in zip(distances, matches, ignore):
        kept = [j for j in range(len(d)) if not ig[j]]
        ranked = sorted(kept, key=lambda j: (d[j], bool(m[j]), j))
        rel = [1 if m[j] else 0 for j in ranked]
        r = sum(rel)
        if r == 0:
            out.append(None)
            continue
        recall = {k: float(any(rel[:k])) for k in ks}
        r_prec = sum(rel[:r]) / r
        total, hits = 0.0, 0
        for i in range(r):
            if rel[i]:
                hits += 1
                total += hits / (i + 1)
        out.append((recall, r_prec, total / r, rel.index(1)))
    return out


def check_against_reference(results, distances, matches, ignore, ks=(1, 2, 3, 5, 100)):
    reference = loop_reference(distances, matches, ignore, ks)
    evaluated = [i for i, ref in enumerate(reference) if ref is not None]
    np.testing.assert_array_equal(results.evaluated, [ref is not None for ref in reference])
    for i in evaluated:
        recall, r_prec, map_r, first = reference[i]
        assert results.r_precision[i] == pytest.approx(r_prec, abs=1e-12)
        assert results.map_at_r[i] == pytest.approx(map_r, abs=1e-12)
        assert results.first_rank[i] == first
    for k in ks:
        expected = np.mean([reference[i][0][k] for i in evaluated]) if evaluated else np.nan
        np.testing.assert_allclose(results.recall_at(k), expected)
    assert results.mean_map_at_r == pytest.approx(np.mean([reference[i][2] for i in evaluated]))
    assert results.mean_r_precision == pytest.approx(np.mean([reference[i][1] for i in evaluated]))


def test_one_query_by_hand():
    # Ranked: m .1, n .2, m .3, n .4, m .5 -> R = 3; rel = 1 0 1 within the top 3.
    results = retrieval_of_matrix([[0.1, 0.2, 0.3, 0.4, 0.5]], [[True, False, True, False, True]])
    assert results.num_matches[0] == 3
    assert results.r_precision[0] == pytest.approx(2 / 3)
    assert results.map_at_r[0] == pytest.approx((1 + 2 / 3) / 3)
    assert results.recall(range(1, 4)) == {1: 1.0, 2: 1.0, 3: 1.0}


def test_ties_are_pessimistic_by_hand():
    # A match tied with a non-match at the top ranks after it; two tied matches take positions 2 and 3.
    results = retrieval_of_matrix([[0.2, 0.2, 0.7], [0.3, 0.3, 0.3]],
                                  [[True, False, False], [True, True, False]])
    assert results.first_rank.tolist() == [1, 1]
    assert results.recall_at(1) == 0.0 and results.recall_at(2) == 1.0
    assert results.r_precision.tolist() == [0.0, 0.5]          # R = 1: rank 1 is n; R = 2: n m
    assert results.map_at_r[1] == pytest.approx((0 + 1 / 2) / 2)
    # The gallery order does not matter.
    swapped = retrieval_of_matrix([[0.2, 0.2, 0.7], [0.3, 0.3, 0.3]],
                                  [[False, True, False], [False, True, True]])
    np.testing.assert_array_equal(swapped.map_at_r, results.map_at_r)


def test_query_without_a_match_is_skipped():
    # Query 0's only match is ignored: no R, NaN figures, not in any mean.
    results = retrieval_of_matrix([[0.1, 0.2], [0.1, 0.2]], [[True, False], [False, True]],
                                  ignore=[[True, False], [False, False]])
    assert results.num_skipped == 1 and results.first_rank[0] == -1
    assert np.isnan(results.map_at_r[0]) and np.isnan(results.r_precision[0])
    assert results.recall_at(1) == 0.0 and results.recall_at(2) == 1.0
    assert results.mean_map_at_r == 0.0
    none = retrieval_of_matrix([[0.1]], [[False]])
    assert none.num_evaluated == 0 and np.isnan(none.recall_at(1)) and np.isnan(none.mean_map_at_r)


@pytest.mark.parametrize("seed", range(4))
def test_random_ties_matches_and_ignored_against_loops(seed):
    rng = np.random.default_rng(seed)
    q, g = 30, 40
    distances = rng.integers(0, 5, size=(q, g)).astype(np.float64)  # many ties
    matches = rng.random((q, g)) < rng.uniform(0.02, 0.5, size=(q, 1))
    ignore = rng.random((q, g)) < 0.15
    matches[0] = False                    # a query without any match
    matches[1], ignore[1] = True, False   # a query whose every entry matches
    ignore[2] = True                      # a query that ranks nothing
    check_against_reference(retrieval_of_matrix(distances, matches, ignore), distances, matches, ignore)


def test_first_rank_is_the_cmc_rank_of_metrics():
    rng = np.random.default_rng(5)
    distances = rng.integers(0, 4, size=(20, 25)).astype(np.float32)
    matches = rng.random((20, 25)) < 0.2
    ignore = rng.random((20, 25)) < 0.1
    ours = retrieval_of_matrix(distances, matches, ignore)
    ranks = metrics.rank_matches(distances, matches, ignore)
    np.testing.assert_array_equal(ours.first_rank, metrics.first_match_rank(ranks))
    cmc = metrics.cmc_curve(ranks, 25)
    for k in (1, 2, 5, 25):
        assert ours.recall_at(k) == pytest.approx(cmc[k - 1])


def _labelled(seed, n=60, classes=7, dim=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n).astype(str)
    emb = np.round(rng.normal(size=(n, dim)), 1).astype(np.float32)  # rounded: tied distances
    emb[5] = emb[6]  # coincident embeddings
    return emb, labels


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_chunked_equals_unchunked_with_the_diagonal_excluder(batch_size, monkeypatch):
    emb, labels = _labelled(0)
    dense = cdist(emb, emb)
    matches = labels[:, None] == labels[None, :]
    ignore = np.eye(len(emb), dtype=bool)
    whole = retrieval_of_matrix(dense, matches, ignore)
    check_against_reference(whole, dense, matches, ignore)
    if batch_size == 7:  # blocks also bounded by the number of distances
        monkeypatch.setattr(metrics, "MAX_BLOCK_ENTRIES", 3 * len(emb))
    chunked = evaluate_retrieval(emb, emb, labels, labels, self_exclusion(len(emb)), batch_size=batch_size)
    for field in ("num_matches", "first_rank", "r_precision", "map_at_r"):
        np.testing.assert_array_equal(getattr(chunked, field), getattr(whole, field), err_msg=field)
    # The diagonal excluder (by file name) is the same protocol.
    fids = [f"img/{i:03d}.jpg" for i in range(len(emb))]
    by_name = evaluate_retrieval(emb, emb, labels, labels, EXCLUDERS["diagonal"](fids, fids),
                                 batch_size=batch_size)
    np.testing.assert_array_equal(by_name.map_at_r, whole.map_at_r)


def test_query_and_gallery_apart_and_other_metrics():
    emb, labels = _labelled(1, n=50)
    query, gallery = emb[:15], emb[15:]
    for metric in ("cosine", "cityblock"):
        dense = cdist(query, gallery, metric)
        matches = labels[:15, None] == labels[None, 15:]
        got = evaluate_retrieval(query, gallery, labels[:15], labels[15:], metric=metric, batch_size=4)
        check_against_reference(got, dense, matches, np.zeros_like(matches))


def test_convenience_functions_agree_with_evaluate_retrieval():
    emb, labels = _labelled(2)
    exclusion = self_exclusion(len(emb))
    results = evaluate_retrieval(emb, emb, labels, labels, exclusion)
    ks = [1, 2, 4, 8]
    assert retrieval.recall_at_k(emb, emb, labels, labels, ks, exclusion) == results.recall(ks)
    assert retrieval.map_at_r(emb, emb, labels, labels, exclusion) == results.mean_map_at_r
    assert (retrieval.r_precision(emb, emb, labels, labels, exclusion, batch_size=3)
            == results.mean_r_precision)


def test_collector_in_the_evaluate_pass():
    emb, labels = _labelled(3)
    fids = np.array([f"{i}.jpg" for i in range(len(emb))])
    exclusion = EXCLUDERS["diagonal"](fids, fids)
    collector = RetrievalCollector()
    results = metrics.evaluate(emb, emb, labels, labels, exclusion, batch_size=8, on_block=collector)
    got = collector.results()
    want = evaluate_retrieval(emb, emb, labels, labels, exclusion, batch_size=5)
    np.testing.assert_array_equal(got.map_at_r, want.map_at_r)
    np.testing.assert_array_equal(got.first_rank, results.first_rank)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="finite"):
        retrieval_of_matrix([[np.nan]], [[True]])
    with pytest.raises(ValueError, match="one shape"):
        retrieval_of_matrix([[0.1, 0.2]], [[True]])
    with pytest.raises(ValueError, match="finite"):
        evaluate_retrieval(np.full((2, 2), np.inf), np.zeros((2, 2)), ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="one label per embedding"):
        evaluate_retrieval(np.zeros((2, 2)), np.zeros((2, 2)), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="K >= 1"):
        retrieval_of_matrix([[0.1]], [[True]]).recall_at(0)


@pytest.mark.parametrize("seed", range(3))
def test_nmi_agrees_with_scikit_learn_on_the_kmeans_labels(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, size=90)
    emb = rng.normal(size=(90, 4)) + labels[:, None] * rng.uniform(0, 2)
    clusters = kmeans_labels(emb, 6, seed)
    assert len(np.unique(clusters)) == 6
    want = normalized_mutual_info_score(labels, clusters)
    assert normalized_mutual_information(labels, clusters) == pytest.approx(want, abs=1e-12)
    assert nmi(emb, labels.astype(str), seed) == pytest.approx(want, abs=1e-12)
    # Same seed, same clustering.
    np.testing.assert_array_equal(kmeans_labels(emb, 6, seed), clusters)


def test_nmi_edge_cases_as_scikit_learn():
    cases = [([0, 0, 1, 1], [1, 1, 0, 0]),    # a relabelled perfect clustering: 1
             ([0, 0, 0, 0], [0, 0, 0, 0]),    # one class, one cluster: 1
             ([0, 0, 0, 0], [0, 1, 2, 3]),    # one class, MI 0: 0
             (["a", "b", "a", "b"], [0, 0, 1, 1]),
             ([0, 1, 2, 2, 1, 0, 3], [1, 1, 0, 0, 2, 2, 2])]
    for true, pred in cases:
        want = normalized_mutual_info_score(true, pred)
        assert normalized_mutual_information(true, pred) == pytest.approx(want, abs=1e-12)
    assert normalized_mutual_information([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one length"):
        normalized_mutual_information([0, 1], [0])
    with pytest.raises(ValueError, match="num_clusters"):
        kmeans_labels(np.zeros((3, 2)), 4)


def test_parse_metrics():
    assert parse_metrics(["recall@1,2,4,8", "map_at_r", "r_precision", "nmi"]) == MetricRequest(
        (1, 2, 4, 8), True, True, True)
    assert parse_metrics(["recall@8,1", "recall@4", "map_at_r,nmi"]) == MetricRequest(
        (1, 4, 8), True, False, True)
    assert not parse_metrics(["nmi"]).ranked and parse_metrics(["r_precision"]).ranked
    with pytest.raises(ValueError, match="Unknown metric 'map'.*map_at_r"):
        parse_metrics(["map"])
    for bad in ("recall@", "recall@0", "recall@1,x", "recall@1,,2"):
        with pytest.raises(ValueError, match="positive integers"):
            parse_metrics([bad])
