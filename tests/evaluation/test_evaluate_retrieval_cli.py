"""evaluate.py --metrics end to end on tiny HDF5 files: Recall@K, MAP@R, R-precision, NMI and the errors."""

import json

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from test_evaluate_cli import arguments, data  # noqa: F401 (the Market-1501-style fixture)
from test_retrieval import loop_reference
from trinet.cli.evaluate import main
from trinet.core.distances import cdist
from trinet.data.embeddings.hdf5 import write_embeddings
from trinet.evaluation.retrieval import kmeans_labels


@pytest.fixture
def test_set(tmp_path):
    """A CUB-like test set, query = gallery: 30 images of 6 classes (one class of a single image, so its
    query has no match), 4-d embeddings rounded so that distances tie."""
    rng = np.random.default_rng(0)
    pids = np.array([str(101 + i % 5) for i in range(29)] + ["199"])
    emb = np.round(rng.normal(size=(30, 4)) + pids.astype(int)[:, None] % 5, 0).astype(np.float32)
    fids = [f"{p}.Bird/img_{i:03d}.jpg" for i, p in enumerate(pids)]
    csv = tmp_path / "cub200_test.csv"
    csv.write_text("".join(f"{p},{f}\n" for p, f in zip(pids, fids)))
    h5 = tmp_path / "test.h5"
    write_embeddings(str(h5), emb, pids=list(pids), fids=fids)
    return dict(csv=str(csv), h5=str(h5), pids=pids, emb=emb, tmp=tmp_path)


def run(test_set, *extra):
    return main(["--excluder", "diagonal", "--query_dataset", test_set["csv"], "--query_embeddings",
                 test_set["h5"], "--gallery_dataset", test_set["csv"], "--gallery_embeddings", test_set["h5"],
                 *extra])


def test_metrics_printed_and_in_the_json_as_a_plain_loop(test_set, capsys):
    path = test_set["tmp"] / "results.json"
    assert run(test_set, "--metrics", "recall@1,2,4,8", "map_at_r", "r_precision", "nmi", "--nmi_seed", "3",
               "--batch_size", "7", "--filename", str(path), "--quiet") == 0
    printed = capsys.readouterr().out
    results = json.loads(path.read_text())
    section = results["retrieval"]
    emb, pids = test_set["emb"], test_set["pids"]
    matches = pids[:, None] == pids[None, :]
    reference = loop_reference(cdist(emb, emb), matches, np.eye(len(pids), dtype=bool), (1, 2, 4, 8))
    evaluated = [r for r in reference if r is not None]
    assert len(evaluated) == 29 and section["num_evaluated"] == 29 == results["num_evaluated"]
    for k in (1, 2, 4, 8):
        assert section["recall_at"][str(k)] == pytest.approx(np.mean([r[0][k] for r in evaluated]))
    assert section["recall_at"]["1"] == pytest.approx(results["top-1"])  # Recall@K is the CMC at K
    assert section["map_at_r"] == pytest.approx(np.mean([r[2] for r in evaluated]))
    assert section["r_precision"] == pytest.approx(np.mean([r[1] for r in evaluated]))
    want_nmi = normalized_mutual_info_score(pids, kmeans_labels(emb, 6, 3))
    assert section["nmi"] == pytest.approx(want_nmi) and section["nmi_clusters"] == 6
    assert results["settings"]["metrics"] == ["recall@1,2,4,8", "map_at_r", "r_precision", "nmi"]
    assert results["settings"]["nmi_seed"] == 3
    line = printed.strip().splitlines()[-1]
    assert line.startswith(f"Recall@1: {section['recall_at']['1']:.2%} Recall@2: ")
    assert f"MAP@R: {section['map_at_r']:.2%}" in line and f"NMI: {want_nmi:.2%}" in line


def test_only_some_metrics(test_set, capsys):
    path = test_set["tmp"] / "r.json"
    assert run(test_set, "--metrics", "map_at_r", "--filename", str(path), "--quiet") == 0
    section = json.loads(path.read_text())["retrieval"]
    assert set(section) == {"num_evaluated", "map_at_r"}
    assert "Recall@" not in capsys.readouterr().out
    assert run(test_set, "--metrics", "nmi", "--filename", str(path), "--quiet") == 0
    section = json.loads(path.read_text())["retrieval"]
    assert set(section) == {"nmi", "nmi_seed", "nmi_clusters"} and section["nmi_seed"] == 0


def test_recall_at_k_is_the_cmc_under_a_camera_excluder(data):  # noqa: F811
    path = data["tmp"] / "m.json"
    assert main(arguments(data, "--metrics", "recall@1,5,10", "--filename", str(path), "--quiet")) == 0
    results = json.loads(path.read_text())
    for k in (1, 5, 10):
        assert results["retrieval"]["recall_at"][str(k)] == pytest.approx(results[f"top-{k}"])


@pytest.mark.parametrize("extra, message", [
    (["--metrics", "map"], "Unknown metric 'map'"),
    (["--metrics", "recall@0"], "positive integers"),
    (["--metrics"], "expected at least one argument"),
])
def test_bad_metrics_exit_2(test_set, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        run(test_set, *extra)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_nmi_seed_needs_nmi(test_set, capsys):
    assert run(test_set, "--metrics", "map_at_r", "--nmi_seed", "1") == 2
    assert "--nmi_seed 1 sets the k-means of --metrics nmi" in capsys.readouterr().err
