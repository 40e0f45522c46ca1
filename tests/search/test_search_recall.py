"""trinet-search query --recall_at: Recall@K of the hits against exact evaluation, and an approximate index
against exact search."""

import json

import numpy as np
import pytest

pytest.importorskip("faiss")

from test_search import build, data, query  # noqa: E402,F401 (the Market-1501-style fixture)
from trinet.cli.search import main  # noqa: E402
from trinet.core.distances import cdist  # noqa: E402
from trinet.data.datasets import Dataset  # noqa: E402
from trinet.evaluation.excluders import EXCLUDERS, Exclusion  # noqa: E402
from trinet.evaluation.retrieval import evaluate_retrieval, self_exclusion  # noqa: E402
from trinet.search.index import Hits, build_index, search  # noqa: E402
from trinet.search.recall import exact_top_k, kept_matches, neighbours_found, recall_of_hits  # noqa: E402


def test_recall_of_hits_by_hand_with_ties():
    gallery = np.array(["b", "a", "a", "c"])
    hits = Hits(np.array([[1, 0, 2], [0, 1, 2], [3, 0, -1], [0, 3, 1]]),
                np.array([[0.5, 0.5, 0.7], [0.5, 0.5, 0.7], [0.1, 0.2, np.nan], [0.1, 0.2, 0.3]], np.float32))
    exclusion = Exclusion.nothing(4, 4)
    found = recall_of_hits(hits, ["a", "a", "a", "d"], gallery, exclusion)
    # Query 0 lists its match first, query 1 second, at a tie with a non-match: both rank 1. Query 2's
    # results hold no match: beyond the depth. Query 3's identity is not in the gallery: skipped.
    assert found.first_rank.tolist() == [1, 1, 3, -1]
    assert found.recall([1, 2, 3]) == {1: 0.0, 2: pytest.approx(2 / 3), 3: pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="K <= the 3 results"):
        found.recall([4])
    # An excluder that leaves query 0's only kept match out skips it.
    keyed = Exclusion(np.array([7, -1, -1, -1]), np.array([-1, 7, 7, -1]), np.zeros(4, bool))
    assert kept_matches(["a", "a", "a", "d"], gallery, keyed).tolist() == [0, 2, 2, 0]
    assert recall_of_hits(hits, ["a", "a", "a", "d"], gallery, keyed).first_rank.tolist() == [-1, 1, 3, -1]


def _classes(seed, n=120, classes=15, dim=6):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    centres = rng.normal(size=(classes, dim))
    emb = (centres[labels] + 0.7 * rng.normal(size=(n, dim))).astype(np.float32)
    return emb, labels.astype(str)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_the_flat_index_gives_the_recall_of_exact_evaluation(metric):
    emb, labels = _classes(0)
    rows = Dataset(labels, np.array([f"{i}.jpg" for i in range(len(labels))]))
    index = build_index(emb, rows, "flat", metric)
    exclusion = self_exclusion(len(emb))
    ks = [1, 2, 4, 8, 16]
    hits = search(index, emb, max(ks), exclusion)
    got = recall_of_hits(hits, labels, labels, exclusion).recall(ks)
    want = evaluate_retrieval(emb, emb, labels, labels, exclusion, metric=metric).recall(ks)
    assert got == pytest.approx(want)
    assert 0 < got[1] < got[16] < 1  # not a trivial case


def test_exact_top_k_against_a_full_sort_with_ties_and_exclusion():
    rng = np.random.default_rng(2)
    query, gallery = np.round(rng.normal(size=(9, 2)), 0), np.round(rng.normal(size=(30, 2)), 0)  # ties
    exclusion = Exclusion(np.array([3, -1, 5, -1, -1, -1, -1, -1, -1]), np.arange(30),
                          np.arange(30) % 7 == 0)
    got = exact_top_k(query, gallery, 12, exclusion, batch_size=2)
    dist = cdist(query, gallery)
    for i in range(9):
        kept = [j for j in range(30) if not exclusion.gallery_ignored[j] and exclusion.query_keys[i] != j]
        assert got[i].tolist() == sorted(kept, key=lambda j: (dist[i, j], j))[:12]
    assert (exact_top_k(query[:1], gallery[:3], 5, Exclusion.nothing(1, 3))[0] == [*np.argsort(
        cdist(query[:1], gallery[:3])[0], kind="stable"), -1, -1]).all()


def test_neighbours_found_by_hand():
    results = np.array([[1, 2, 3], [4, 5, -1]])
    exact = np.array([[1, 3, 9], [-1, -1, -1]])
    assert neighbours_found(results, exact, [1, 2, 3]) == {1: 1.0, 2: 0.5, 3: pytest.approx(2 / 3)}


def test_command_prints_recall_and_keeps_top_k(data, capsys):  # noqa: F811
    status, index = build(data)
    assert status == 0
    capsys.readouterr()
    assert query(data, index, "out.json", "--top_k", "2", "--excluder", "market1501",
                 "--recall_at", "5,1,10") == 0
    printed = capsys.readouterr().out
    fids = data["gallery"][2]
    q_fids = data["query"][2]
    exclusion = EXCLUDERS["market1501"](q_fids, fids)
    want = evaluate_retrieval(data["q_emb"], data["g_emb"], data["query"][3], data["gallery"][3],
                              exclusion).recall([1, 5, 10])
    line = " ".join(f"Recall@{k}: {v:.2%}" for k, v in want.items())
    assert printed.startswith(line + " (flat index, exact;")
    assert "exact search" not in printed
    results = json.load(open(data["tmp"] / "out.json"))
    assert all(len(row["results"]) == 2 for row in results)


def test_an_approximate_index_is_compared_with_exact_search(data, capsys):  # noqa: F811
    status, index = build(data, "--index", "ivfsq", "--nlist", "4", "--nprobe", "1", output="approx")
    assert status == 0
    capsys.readouterr()
    assert query(data, index, "out.json", "--excluder", "market1501", "--recall_at", "1,5") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(ivfsq index;" in lines[0]
    exclusion = EXCLUDERS["market1501"](data["query"][2], data["gallery"][2])
    want = evaluate_retrieval(data["q_emb"], data["g_emb"], data["query"][3], data["gallery"][3],
                              exclusion).recall([1, 5])
    assert lines[1] == "exact search: " + " ".join(f"Recall@{k}: {v:.2%}" for k, v in want.items())
    assert lines[2].startswith("exact neighbours found by the index: @1: ")


def test_recall_at_errors(data, capsys):  # noqa: F811
    status, index = build(data)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        query(data, index, "out.json", "--recall_at", "0,1")
    assert info.value.code == 2 and "expected comma-separated positive integers" in capsys.readouterr().err
    assert main(["query", "--index", index, "--images", "a.jpg", "--experiment_root", str(data["tmp"]),
                 "--filename", str(data["tmp"] / "x.json"), "--recall_at", "1"]) == 2
    assert "--recall_at needs the queries' identities" in capsys.readouterr().err
