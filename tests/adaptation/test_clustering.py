"""trinet.adaptation.clustering: DBSCAN on the sparse Jaccard distances equals scikit-learn's DBSCAN on the
dense matrix; the quality figures equal a pair-by-pair count."""

import itertools

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from test_jaccard import clustered, dense_jaccard

from trinet.adaptation.clustering import (ClusterSettings, Clustering, check_clustering, cluster, quality,
                                          renumber)


def with_noise(seed, n, noise):
    rng = np.random.default_rng(seed)
    x = clustered(seed, n, clusters=8, spread=0.3)
    return np.concatenate([x, rng.normal(scale=2.0, size=(noise, x.shape[1])).astype(np.float32)])


@pytest.mark.parametrize("eps, min_samples", [(0.33, 4), (0.47, 4), (0.58, 2), (0.71, 6)])
def test_labels_equal_dbscan_on_the_dense_matrix(eps, min_samples):
    # Not round values of eps: distances such as exactly 0.5 (m = 2/3) occur, and there the last bit of the
    # sums' rounding decides.
    x = with_noise(0, 150, 30)
    settings = ClusterSettings(eps=eps, min_samples=min_samples, k1=20, k2=6)
    ours = cluster(x, settings)
    dense = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed")
    dense = dense.fit_predict(dense_jaccard(x, 20, 6))
    np.testing.assert_array_equal(ours.labels, renumber(dense))
    assert ours.labels.dtype == np.int64
    assert ours.num_clusters == len(set(dense) - {-1}) and ours.num_outliers == int((dense < 0).sum())
    np.testing.assert_array_equal(ours.sizes, np.bincount(ours.labels[ours.labels >= 0]))


def test_the_comparison_is_not_trivial():
    x = with_noise(0, 150, 30)
    c = cluster(x, ClusterSettings(eps=0.47, min_samples=4, k1=20, k2=6))
    assert c.num_clusters >= 3 and 0 < c.num_outliers < len(x)


def test_identical_images_are_neighbours_through_stored_zeros():
    x = with_noise(1, 60, 10)
    x[5:11] = np.eye(x.shape[1])[0]  # 6 identical images, apart from the others
    # Without query expansion (k2 = 1) the encodings of other images differ: at eps ~ 0 the 6 identical
    # images make the one cluster, through their stored (near-)zero distances.
    c = cluster(x, ClusterSettings(eps=1e-9, min_samples=6, k1=20, k2=1))
    expected = np.full(len(x), -1)
    expected[5:11] = 0
    np.testing.assert_array_equal(c.labels, expected)
    dense = DBSCAN(eps=1e-9, min_samples=6, metric="precomputed").fit_predict(dense_jaccard(x, 20, 1))
    np.testing.assert_array_equal(c.labels, renumber(dense))


def test_deterministic_and_renumbered_by_smallest_member():
    x = with_noise(2, 120, 20)
    settings = ClusterSettings(eps=0.5, min_samples=4, k1=20, k2=6)
    a, b = cluster(x, settings), cluster(x.copy(), settings)
    np.testing.assert_array_equal(a.labels, b.labels)
    firsts = [np.flatnonzero(a.labels == c)[0] for c in range(a.num_clusters)]
    assert firsts == sorted(firsts)
    np.testing.assert_array_equal(renumber(np.array([5, -1, 2, 5, 9, 2, -1])), [0, -1, 1, 0, 2, 1, -1])


def brute_force_pairs(labels, truth):
    together = claimed = actual = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same_cluster = labels[i] >= 0 and labels[i] == labels[j]  # an outlier is alone
        same_pid = truth[i] == truth[j]
        claimed += same_cluster
        actual += same_pid
        together += same_cluster and same_pid
    return together, claimed, actual


def test_quality_against_a_pair_loop():
    rng = np.random.default_rng(3)
    truth = rng.choice(["a", "b", "c", "d", "e"], 60)
    labels = rng.integers(-1, 6, 60)
    q = quality(labels, truth)
    together, claimed, actual = brute_force_pairs(labels, truth)
    assert q["precision"] == pytest.approx(together / claimed)
    assert q["recall"] == pytest.approx(together / actual)
    singletons = labels.copy()
    singletons[labels < 0] = 100 + np.arange((labels < 0).sum())
    assert q["ari"] == pytest.approx(adjusted_rand_score(truth, singletons))
    assert q["nmi"] == pytest.approx(normalized_mutual_info_score(truth, singletons))


def test_quality_hand_worked():
    # Clusters {0, 1, 2}, {3, 4}, outlier 5; identities {0, 1}, {2, 3, 4, 5}.
    q = quality(np.array([0, 0, 0, 1, 1, -1]), np.array([7, 7, 8, 8, 8, 8]))
    # Pairs in one cluster: 3 + 1 = 4, of one identity: (0,1) and (3,4) -> precision 2/4.
    # Pairs of one identity: 1 + 6 = 7 -> recall 2/7.
    assert q["precision"] == pytest.approx(0.5) and q["recall"] == pytest.approx(2 / 7)
    perfect = quality(np.array([1, 1, 0, 0]), np.array(["x", "x", "y", "y"]))
    assert perfect == pytest.approx({"ari": 1.0, "nmi": 1.0, "precision": 1.0, "recall": 1.0})
    alone = quality(np.array([-1, -1, -1]), np.array([1, 1, 2]))
    assert alone["precision"] == 1.0 and alone["recall"] == 0.0  # no pair claimed; the one true pair missed
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\)"):
        quality(np.zeros(3), np.zeros(2))


def test_summary_and_refusals():
    settings = ClusterSettings()
    c = Clustering.from_labels(np.array([0, 0, 1, 1, 1, -1, 2, 2, 2, 2]), seconds=1.25)
    assert (c.num_clusters, c.num_outliers, c.sizes.tolist()) == (3, 1, [2, 3, 4])
    assert c.summary() == ("3 clusters and 1 outliers (10.0%) of 10 images; images per cluster min 2 / "
                           "median 3 / max 4; 1.2 s")
    assert c.figures() == {"clusters": 3, "outliers": 1, "outlier_share": 0.1, "size_min": 2,
                           "size_median": 3, "size_max": 4, "seconds": 1.25}
    assert check_clustering(c, settings) is None
    none = Clustering.from_labels(np.full(8, -1))
    message = check_clustering(none, settings)
    assert "0 cluster(s) and 8 outlier(s)" in message and "raise --cluster_eps" in message
    assert "--cluster_eps 0.6" in message and none.summary().startswith("0 clusters and 8 outliers (100.0%)")
    one = check_clustering(Clustering.from_labels(np.array([0, 0, 0, -1])), settings)
    assert "1 cluster(s) and 1 outlier(s)" in one and "lower --cluster_eps" in one


@pytest.mark.parametrize("changes, match", [({"eps": 1.0}, "eps=1.0"), ({"eps": 0}, "eps=0"),
                                            ({"min_samples": 0}, "min_samples=0"), ({"k1": 2.5}, "k1=2.5"),
                                            ({"metric": "l2"}, "Unknown metric 'l2'"),
                                            ({"search": "hnsw"}, "Unknown neighbour search 'hnsw'")])
def test_settings_are_checked(changes, match):
    with pytest.raises(ValueError, match=match):
        ClusterSettings(**changes)
