"""Verification: ROC, TAR at FAR, EER and thresholds against scikit-learn and hand-worked cases; the pair
collector's exact and sampled modes; evaluate.py --verification end to end."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_curve

import test_evaluate_cli
from test_evaluate_cli import arguments, expected_ranking
from trinet.cli.evaluate import main
from trinet.evaluation.excluders import EXCLUDERS
from trinet.evaluation.metrics import EmbeddingDistances, rank_queries
from trinet.evaluation.verification import (BottomK, PairCollector, equal_error_rate, pair_keys, roc,
                                            tar_at_far, verification_json)

data = test_evaluate_cli.data  # the fixture: Market-1501-style query and gallery


def sklearn_roc(pos, neg):
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    fpr, tpr, thresholds = roc_curve(labels, -np.concatenate([pos, neg]), drop_intermediate=False)
    return fpr, tpr, -thresholds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    pos = np.round(rng.normal(1.0, 0.5, 40), 1)  # rounded: many ties, also across the two kinds
    neg = np.round(rng.normal(2.0, 0.5, 300), 1)
    far, tar, thresholds = roc(pos, neg)
    fpr, tpr, expected = sklearn_roc(pos, neg)
    np.testing.assert_allclose(far, fpr)
    np.testing.assert_allclose(tar, tpr)
    np.testing.assert_allclose(thresholds, expected)


@pytest.mark.parametrize("far", [1e-3, 1e-2, 0.05, 0.29, 0.5, 1.0])
def test_tar_at_far_is_sklearns_best_tpr_within_the_far(far):
    rng = np.random.default_rng(3)
    pos = np.round(rng.normal(1.0, 0.6, 50), 2)
    neg = np.round(rng.normal(2.0, 0.6, 1000), 2)
    fpr, tpr, thresholds = sklearn_roc(pos, neg)
    within = fpr <= far + 1e-12
    best = int(np.flatnonzero(within & (tpr == tpr[within].max()))[-1])  # the largest such threshold
    tar, threshold = tar_at_far(pos, neg, far)
    assert tar == pytest.approx(tpr[best])
    assert threshold == pytest.approx(thresholds[best])
    # The threshold honours the FAR on the data it came from.
    assert np.mean(neg <= threshold) <= far + 1e-12


def test_hand_worked_tar_far_and_eer():
    # Accept d <= t. Positives 1, 2, 3, 4; negatives 2.5, 3.5, 5, 6.
    pos, neg = np.array([1.0, 2, 3, 4]), np.array([2.5, 3.5, 5, 6])
    # FAR <= 0.25 allows one false accept (2.5); t = 3.5 would add a second: the largest distance below
    # is 3, accepting 1, 2, 3 (TAR 3/4).
    assert tar_at_far(pos, neg, 0.25) == (0.75, 3.0)
    # FAR < 0.25 allows none: the largest distance below 2.5 is the positive 2 (TAR 2/4).
    assert tar_at_far(pos, neg, 0.2) == (0.5, 2.0)
    assert tar_at_far(pos, neg, 1.0) == (1.0, 6.0)
    # A negative nearest of all: nothing can be accepted at FAR < 1/4.
    assert tar_at_far(np.array([2.0]), np.array([1.0, 3, 4, 5]), 0.1) == (0.0, None)
    far, tar, thresholds = roc(pos, neg)
    # ROC points (FAR, FRR): t=2: (0, .5); t=2.5: (.25, .5); t=3: (.25, .25) -> FAR = FRR = 0.25 exactly.
    assert equal_error_rate(far, tar, thresholds) == (0.25, 3.0)
    # Interpolated crossing: positives 1, 3; negatives 2, 4. (FAR, FRR) at t=1: (0, .5); t=2: (.5, .5).
    # The segment from (0, .5) to (.5, .5) meets FAR = FRR at 0.5, reached at t = 2.
    far, tar, thresholds = roc(np.array([1.0, 3]), np.array([2.0, 4]))
    assert equal_error_rate(far, tar, thresholds) == (0.5, 2.0)
    # Separated classes: EER 0 at the largest positive.
    far, tar, thresholds = roc(np.array([1.0, 2]), np.array([3.0, 4]))
    assert equal_error_rate(far, tar, thresholds) == (0.0, 2.0)


def test_pair_keys_are_distinct_and_seeded():
    ids = np.arange(100_000, dtype=np.uint64)
    keys = pair_keys(ids, 0)
    assert len(np.unique(keys)) == len(ids)
    assert not np.array_equal(keys, pair_keys(ids, 1))
    np.testing.assert_array_equal(keys[10:20], pair_keys(ids[10:20], 0))


def test_bottom_k_keeps_the_smallest_keys_whatever_the_pieces():
    rng = np.random.default_rng(0)
    keys = rng.permutation(1000).astype(np.uint64)
    values = keys.astype(float) * 10
    sample = BottomK(30)
    for piece in np.array_split(np.arange(1000), 17):
        sample.add(keys[piece], values[piece])
    assert sample.sampled and sample.offered == 1000
    np.testing.assert_array_equal(np.sort(sample.values()), np.arange(30) * 10.0)


def collect(data, batch_size, max_pairs, seed=0):
    q, g = data["query"], data["gallery"]
    exclusion = EXCLUDERS["market1501"](q["fids"], g["fids"])
    collector = PairCollector(len(g["fids"]), max_pairs, seed)
    rank_queries(EmbeddingDistances(q["emb"], g["emb"]), q["pids"], g["pids"], exclusion,
                 batch_size=batch_size, on_block=collector)
    return collector.pairs()


def reference_pairs(data):
    """Every kept pair's distance, split into positives and negatives, from the independent ranking."""
    pos, neg = [], []
    for i in range(len(data["query"]["fids"])):
        keep, labels, dist = expected_ranking(data, i)
        pos += list(dist[keep & labels])
        neg += list(dist[keep & ~labels])
    return np.sort(pos), np.sort(neg)


def test_collector_is_exact_below_the_limit(data):
    pos, neg = reference_pairs(data)
    for batch_size in (1, 4, 100):
        pairs = collect(data, batch_size, 10_000)
        assert not pairs.sampled
        assert (pairs.num_positives, pairs.num_negatives) == (len(pos), len(neg))
        np.testing.assert_allclose(np.sort(pairs.positives), pos, rtol=1e-5)
        np.testing.assert_allclose(np.sort(pairs.negatives), neg, rtol=1e-5)


def test_collector_samples_exactly_and_reproducibly(data):
    pos, neg = reference_pairs(data)
    first = collect(data, 1, 20)
    assert first.sampled and len(first.negatives) == 20 and len(first.positives) == 20
    assert (first.num_positives, first.num_negatives) == (len(pos), len(neg))
    assert np.isin(np.round(first.negatives, 4), np.round(neg, 4)).all()
    again = collect(data, 5, 20)  # other blocks, same seed: the same sample
    np.testing.assert_allclose(np.sort(first.negatives), np.sort(again.negatives), rtol=1e-6)
    other = collect(data, 5, 20, seed=1)
    assert not np.array_equal(np.sort(first.negatives), np.sort(other.negatives))


def test_cli_verification_matches_sklearn_over_all_kept_pairs(data, capsys):
    out = data["tmp"] / "results.json"
    assert main(arguments(data, "--filename", str(out), "--verification", "--target_far", "0.1")) == 0
    printed = capsys.readouterr().out
    assert "verification: TAR@FAR=1e-2" in printed and "EER" in printed
    section = json.loads(out.read_text())["verification"]
    pos, neg = reference_pairs(data)
    assert (section["num_positive_pairs"], section["num_negative_pairs"]) == (len(pos), len(neg))
    assert not section["sampled"]
    fpr, tpr, thresholds = sklearn_roc(pos, neg)
    within = fpr <= 0.1
    best = int(np.flatnonzero(within & (tpr == tpr[within].max()))[-1])
    assert section["tar_at_target_far"] == pytest.approx(tpr[best])
    assert section["recommended_threshold"] == pytest.approx(thresholds[best], rel=1e-5)
    assert section["target_far"] == 0.1
    assert section["far_resolution"] == pytest.approx(1 / len(neg))
    assert section["tar_at_far"]["1e-4"]["resolved"] is False  # fewer than 10,000 negatives
    frr = 1 - tpr
    crossing = int(np.argmax(fpr >= frr))
    assert fpr[crossing - 1] <= section["eer"] <= fpr[crossing]
    curve = section["roc"]
    assert curve["far"][0] == 0 and curve["far"][-1] == 1 and curve["tar"][-1] == 1
    assert np.all(np.diff(curve["far"]) >= 0) and np.all(np.diff(curve["tar"]) >= 0)
    hist = section["histograms"]
    assert sum(hist["positive"]) == pytest.approx(1) and sum(hist["negative"]) == pytest.approx(1)
    assert 0 <= hist["overlap"] <= 1


def test_verification_json_of_separated_pairs():
    pos, neg = np.array([0.1, 0.2, 0.3]), np.array([1.0, 1.5, 2.0, 2.5])
    from trinet.evaluation.verification import Pairs
    section = verification_json(Pairs(pos, neg, 3, 4), target_far=0.25)
    assert section["eer"] == 0 and section["histograms"]["overlap"] == 0
    assert section["recommended_threshold"] == 1.0 and section["tar_at_target_far"] == 1.0
    assert section["tar_at_far"]["1e-2"] == {"far": 0.01, "tar": 1.0, "threshold": 0.3, "resolved": False}


def test_cli_verification_flag_errors(data, capsys):
    assert main(arguments(data, "--target_far", "0.01")) == 2
    assert "--target_far set(s) the verification scores; add --verification" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(arguments(data, "--verification", "--target_far", "0"))
    assert "expected a number in (0, 1], got '0'" in capsys.readouterr().err
