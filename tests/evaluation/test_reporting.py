"""Reporting an evaluation: summary line, results JSON and rank pictures on a hand-made evaluation."""

import json
import os

import numpy as np

from trinet.data.datasets import Dataset
from trinet.evaluation import reporting
from trinet.evaluation.excluders import Exclusion
from trinet.evaluation.metrics import EmbeddingDistances, evaluate


def setup():
    """Two queries: `a` is found first, `b` has no gallery match and is skipped."""
    query = Dataset(np.array(["a", "b"]), np.array(["q/a.jpg", "q/b.jpg"]))
    gallery = Dataset(np.array(["a", "c", "junk"]), np.array(["g/a.jpg", "g/c.jpg", "g/junk.jpg"]))
    q_emb = np.array([[0.0, 0.0], [5.0, 5.0]], np.float32)
    g_emb = np.array([[0.1, 0.0], [1.0, 0.0], [0.0, 0.05]], np.float32)
    exclusion = Exclusion(np.full(2, -1), np.full(3, -1), np.array([False, False, True]))
    results = evaluate(q_emb, g_emb, query.pids, gallery.pids, exclusion)
    return query, gallery, exclusion, results, EmbeddingDistances(q_emb, g_emb, "euclidean")


def test_summary_and_json_state_the_metrics_and_what_was_skipped():
    query, gallery, exclusion, results, _ = setup()
    text = reporting.summary(results, gallery, exclusion)
    assert text.startswith("mAP: 100.00% | mINP: 100.00% | top-1: 100.00% top-5: 100.00%")
    assert "1 of 2 queries evaluated, 1 skipped" in text and "3 images, 1 ignored" in text
    out = reporting.results_json(results, query, gallery, exclusion, {"metric": "euclidean"})
    json.dumps(out)  # plain JSON types only
    assert out["aps"] == [{"query": "q/a.jpg", "ap": 1.0}] and out["skipped_queries"] == ["q/b.jpg"]
    assert out["settings"] == {"metric": "euclidean"} and out["num_gallery_ignored"] == 1
    assert [out[f"top-{k}"] for k in reporting.TOP_K] == [1.0, 1.0, 1.0]


def test_show_ranks_draws_the_evaluated_queries_even_without_images(tmp_path, caplog):
    query, gallery, exclusion, results, distances = setup()
    written = reporting.show_ranks(str(tmp_path / "ranks"), str(tmp_path), query, gallery, exclusion,
                                   distances, results, count=5, quiet=True)
    assert [os.path.basename(p) for p in written] == ["rank_00000_a.png"]
    assert os.path.getsize(written[0]) > 0
    assert "missing or unreadable" in caplog.text
