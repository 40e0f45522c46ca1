"""Multi-query evaluation (evaluate.py --multi_query): a hand-worked example, a plain-loop reference, and the
multi-query CSV that data/convert.py market1501 --multi_query writes."""

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from test_evaluate_cli import arguments, data, expected_ranking  # noqa: F401 (data is a fixture)
from trinet.cli.evaluate import main
from trinet.core.errors import TrinetError
from trinet.data.datasets import read_csv
from trinet.data.embeddings.hdf5 import write_embeddings
from trinet.evaluation.multiquery import pool_queries


def write_split(tmp_path, name, header, rows, emb):
    csv = tmp_path / f"{name}.csv"
    csv.write_text(header + "".join(",".join(map(str, row)) + "\n" for row in rows))
    h5 = tmp_path / f"{name}.h5"
    write_embeddings(str(h5), np.asarray(emb, np.float32), pids=[str(r[0]) for r in rows],
                     fids=[r[1] for r in rows])
    return str(csv), str(h5)


@pytest.fixture
def hand(tmp_path):
    """Query A (camera 1, own embedding (0.5, 0)) with two multi-query images at (0, 0) and (4.2, 0); query B
    without any. Gallery on a line: A cam 2 at 1, B cam 2 at 1.9, A cam 2 at 3, and A cam 1 at 2 (ignored:
    the query's own camera)."""
    q = write_split(tmp_path, "q", "", [("0001", "query/0001_c1s1_000001_00.jpg"),
                                        ("0002", "query/0002_c1s1_000001_00.jpg")], [[0.5, 0], [1.9, 0]])
    g = write_split(tmp_path, "g", "", [("0001", "bounding_box_test/0001_c2s1_000010_01.jpg"),
                                        ("0002", "bounding_box_test/0002_c2s1_000011_01.jpg"),
                                        ("0001", "bounding_box_test/0001_c2s1_000012_01.jpg"),
                                        ("0001", "bounding_box_test/0001_c1s1_000013_01.jpg")],
                    [[1, 0], [1.9, 0], [3, 0], [2, 0]])
    m = write_split(tmp_path, "m", "pid,path,camera,query\n",
                    [("0001", "gt_bbox/0001_c1s1_000001_00.jpg", 1, "query/0001_c1s1_000001_00.jpg"),
                     ("0001", "gt_bbox/0001_c1s1_000002_00.jpg", 1, "query/0001_c1s1_000001_00.jpg")],
                    [[0, 0], [4.2, 0]])
    return tmp_path, q, g, m


def run_hand(hand, *extra):
    tmp_path, q, g, m = hand
    out = tmp_path / "out.json"
    assert main(["--excluder", "market1501", "--query_dataset", q[0], "--query_embeddings", q[1],
                 "--gallery_dataset", g[0], "--gallery_embeddings", g[1], "--filename", str(out), "--quiet",
                 *extra]) == 0
    return json.loads(out.read_text())


def test_hand_worked_example(hand):
    _, _, _, m = hand
    # Single query: A at 0.5 ranks A (0.5), B (1.4), A (2.5): AP (1 + 2/3) / 2; B finds its match first.
    single = run_hand(hand)
    assert [a["ap"] for a in single["aps"]] == pytest.approx([5 / 6, 1])
    # Mean of 0 and 4.2 = 2.1: B (0.2), A (0.9), A (1.1): AP (1/2 + 2/3) / 2, rank-1 missed; the A of the
    # query's camera at 2 (distance 0.1) is ignored.
    mean = run_hand(hand, "--multi_query", "mean", "--multi_query_dataset", m[0], "--multi_query_embeddings",
                    m[1])
    assert [a["ap"] for a in mean["aps"]] == pytest.approx([7 / 12, 1])
    assert mean["top-1"] == pytest.approx(0.5) and mean["settings"]["multi_query"] == "mean"
    # Max of (0, 0) and (4.2, 0) = (4.2, 0): A (1.2), B (2.3), A (3.2).
    high = run_hand(hand, "--multi_query", "max", "--multi_query_dataset", m[0], "--multi_query_embeddings",
                    m[1])
    assert [a["ap"] for a in high["aps"]] == pytest.approx([5 / 6, 1]) and high["top-1"] == 1


def test_flags_go_together(hand, capsys):
    tmp_path, q, g, m = hand
    base = ["--excluder", "market1501", "--query_dataset", q[0], "--query_embeddings", q[1],
            "--gallery_dataset", g[0], "--gallery_embeddings", g[1]]
    assert main(base + ["--multi_query", "mean", "--multi_query_dataset", m[0]]) == 2
    assert "--multi_query mean needs --multi_query_embeddings" in capsys.readouterr().err
    assert main(base + ["--multi_query_dataset", m[0]]) == 2
    assert "--multi_query_dataset given without --multi_query" in capsys.readouterr().err
    assert main(base + ["--multi_query", "mean", "--multi_query_dataset", q[0], "--multi_query_embeddings",
                        q[1]]) == 2
    assert "needs a `query` column" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--multi_query", "median"])
    assert "invalid choice: 'median' (choose from 'max', 'mean')" in capsys.readouterr().err


def test_a_row_of_another_person_is_an_error_naming_the_line(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("pid,path,camera,query\n0001,gt_bbox/a.jpg,1,q/1.jpg\n0002,gt_bbox/b.jpg,1,q/1.jpg\n")
    query = tmp_path / "q.csv"
    query.write_text("0001,q/1.jpg\n")
    with pytest.raises(TrinetError, match=r"m.csv:3: identity 0002 but its query q/1.jpg is identity 0001"):
        pool_queries(read_csv(str(query)), np.zeros((1, 2)), read_csv(str(bad)), np.zeros((2, 2)), "mean")
    elsewhere = tmp_path / "e.csv"
    elsewhere.write_text("pid,path,query\n0001,gt_bbox/a.jpg,q/9.jpg\n")
    with pytest.raises(TrinetError, match="names a query image of"):
        pool_queries(read_csv(str(query)), np.zeros((1, 2)), read_csv(str(elsewhere)), np.zeros((1, 2)),
                     "max")


@pytest.mark.parametrize("how", ["mean", "max"])
def test_against_a_plain_loop_reference(data, how):  # noqa: F811 (the fixture)
    """0-3 multi-query images per query of the fixture's Market-style data; the pooled queries ranked by
    a loop, and the same ranking with --rerank and --cmc cuhk03 as a single-query run on pooled files."""
    rng = np.random.default_rng(5)
    rows, emb = [], []
    for i, (pid, fid) in enumerate(zip(data["query"]["pids"], data["query"]["fids"])):
        camera = data["query"]["rows"][i][1]
        for j in range(int(rng.integers(0, 4))):
            rows.append((pid, f"gt_bbox/{pid}_c{camera}s1_{1000 * i + j:06d}_00.jpg", camera, fid))
            emb.append(data["query"]["emb"][i] + rng.standard_normal(6))
    m = write_split(data["tmp"], "m", "pid,path,camera,query\n", rows, emb)
    emb = np.array(emb)
    pooled = []
    for i, fid in enumerate(data["query"]["fids"]):
        mine = [e for r, e in zip(rows, emb) if r[3] == fid]
        if not mine:
            pooled.append(data["query"]["emb"][i])
        else:
            pooled.append(np.mean(mine, axis=0) if how == "mean" else np.max(mine, axis=0))
    pooled = np.array(pooled, np.float32)
    assert 0 < len({r[3] for r in rows}) < 6  # some pooled, some alone
    flags = ["--multi_query", how, "--multi_query_dataset", m[0], "--multi_query_embeddings", m[1]]
    out = data["tmp"] / "multi.json"
    assert main(arguments(data, *flags, "--filename", str(out), "--quiet")) == 0
    aps = []
    for i in range(6):
        keep, labels, _ = expected_ranking(data, i)
        dist = np.linalg.norm(pooled[i].astype(float) - data["gallery"]["emb"].astype(float), axis=1)
        if labels[keep].any():
            aps.append(average_precision_score(labels[keep], -dist[keep]))
    results = json.loads(out.read_text())
    assert [a["ap"] for a in results["aps"]] == pytest.approx(aps, abs=1e-6)
    # Everything downstream sees the pooled queries: the same as evaluating a file of pooled embeddings.
    pooled_h5 = data["tmp"] / "pooled.h5"
    write_embeddings(str(pooled_h5), pooled, pids=list(data["query"]["pids"]), fids=data["query"]["fids"])
    extra = ["--rerank", "--k1", "3", "--k2", "2", "--cmc", "cuhk03", "--quiet"]
    assert main(arguments(data, *flags, *extra, "--filename", str(data["tmp"] / "a.json"))) == 0
    args = arguments(data, *extra, "--filename", str(data["tmp"] / "b.json"))
    args[args.index("--query_embeddings") + 1] = str(pooled_h5)
    assert main(args) == 0
    a, b = (json.loads((data["tmp"] / f"{n}.json").read_text()) for n in "ab")
    assert a["mAP"] == pytest.approx(b["mAP"]) and a["CMC"] == pytest.approx(b["CMC"])
