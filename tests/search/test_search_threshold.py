"""trinet-search query --max_distance / --threshold_from: only the results within the threshold, and the
threshold read from evaluate.py --verification's JSON."""

import json

import numpy as np
import pytest

import test_search
from test_search import build, query
from trinet.cli.evaluate import main as evaluate
from trinet.core.distances import cdist

pytest.importorskip("faiss")

data = test_search.data  # the fixture: a Market-1501-style gallery and 5 queries


def expected_within(data, limit, k=10):
    """Per query, the distances of the top k (market1501 excluder applied by hand) that are <= limit."""
    dist = cdist(data["q_emb"], data["g_emb"])
    out = []
    for i in range(len(data["q_emb"])):
        same = (data["g_persons"] == data["q_persons"][i]) & (data["g_cams"] == data["q_cams"][i])
        allowed = np.flatnonzero(~same & (data["g_persons"] != -1))
        top = np.sort(dist[i, allowed])[:k]
        out.append(top[top <= limit])
    return out


def test_max_distance_keeps_only_the_results_within_it(data):
    status, index = build(data)
    assert status == 0
    limit = float(np.median(np.concatenate(expected_within(data, np.inf))))  # half the top-10 results
    assert query(data, index, "within.json", "--excluder", "market1501", "--max_distance", str(limit)) == 0
    results = json.load(open(data["tmp"] / "within.json"))
    expected = expected_within(data, limit)
    assert [len(r["results"]) for r in results] == [len(e) for e in expected]
    assert 0 < sum(len(e) for e in expected) < 10 * len(expected)  # the threshold cut some, not all
    for row, want in zip(results, expected):
        np.testing.assert_allclose([r["distance"] for r in row["results"]], want, rtol=1e-5)
    # A threshold below every distance: every query is written, with no results.
    assert query(data, index, "none.csv", "--max_distance", "0") == 0
    assert (data["tmp"] / "none.csv").read_text() == "query,rank,path,pid,distance\n"


def evaluation_json(data, *extra):
    q_csv, q_h5, *_ = data["query"]
    g_csv, g_h5, *_ = data["gallery"]
    out = data["tmp"] / "evaluation.json"
    assert evaluate(["--excluder", "market1501", "--query_dataset", q_csv, "--query_embeddings", q_h5,
                     "--gallery_dataset", g_csv, "--gallery_embeddings", g_h5, "--filename", str(out),
                     "--quiet", *extra]) == 0
    return out


def test_threshold_from_the_evaluation_json(data):
    out = evaluation_json(data, "--verification", "--target_far", "0.05")
    threshold = json.loads(out.read_text())["verification"]["recommended_threshold"]
    status, index = build(data)
    assert query(data, index, "from.json", "--excluder", "market1501", "--threshold_from", str(out)) == 0
    results = json.load(open(data["tmp"] / "from.json"))
    expected = expected_within(data, threshold)
    assert [len(r["results"]) for r in results] == [len(e) for e in expected]
    assert all(r["distance"] <= threshold * (1 + 1e-6) for row in results for r in row["results"])


def test_threshold_from_refuses_files_without_a_usable_threshold(data, capsys):
    status, index = build(data)
    plain = evaluation_json(data)
    assert query(data, index, "x.json", "--threshold_from", str(plain)) == 2
    assert "holds no verification thresholds: write it with evaluate.py --verification" in \
        capsys.readouterr().err
    cosine = evaluation_json(data, "--verification", "--metric", "cosine")
    assert query(data, index, "x.json", "--threshold_from", str(cosine)) == 2
    err = capsys.readouterr().err
    assert "its threshold is a cosine distance, but the index" in err and "ranks by euclidean" in err
    missing = data["tmp"] / "missing.json"
    assert query(data, index, "x.json", "--threshold_from", str(missing)) == 2
    assert f"Cannot read the evaluation results {missing}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        query(data, index, "x.json", "--threshold_from", str(cosine), "--max_distance", "1")
    assert "not allowed with argument" in capsys.readouterr().err
