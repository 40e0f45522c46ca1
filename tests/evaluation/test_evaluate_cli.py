"""evaluate.py end to end on small generated CSV/HDF5 files: console, JSON, pictures, errors."""

import json
import os
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest
from scipy.spatial.distance import cdist as scipy_cdist
from sklearn.metrics import average_precision_score

from conftest import REPO
from test_metrics import official_market_ap
from trinet.cli.evaluate import SHOW_RANKS, build_parser, main
from trinet.data.embeddings.hdf5 import write_embeddings
from trinet.evaluation.plots import MATCH_BGR, MISS_BGR

ROOT = REPO


def market_name(person, cam, index):
    return f"{'-1' if person < 0 else f'{person:04d}'}_c{cam}s1_{index:06d}_01.jpg"


@pytest.fixture
def data(tmp_path):
    """Market-1501-style query and gallery: 4 persons over 3 cameras, junk, a distractor, and query
    person 5 whose only gallery image is from its own camera (so it has no valid match)."""
    rng = np.random.default_rng(0)
    centres = {p: 2.0 * rng.standard_normal(6) for p in range(-1, 6)}
    gallery = [(p, c) for p in (1, 2, 3, 4) for c in (1, 2, 3) for _ in range(2)] + [(-1, 1), (0, 2), (5, 1)]
    query = [(p, 1) for p in (1, 2, 3, 4)] + [(2, 3), (5, 1)]
    images = tmp_path / "images"
    paths = {}
    for role, rows in (("query", query), ("gallery", gallery)):
        folder = "query" if role == "query" else "bounding_box_test"
        (images / folder).mkdir(parents=True)
        first = 100 if role == "gallery" else 0
        fids = [f"{folder}/{market_name(p, c, first + i)}" for i, (p, c) in enumerate(rows)]
        pids = ["-1" if p < 0 else f"{p:04d}" for p, _ in rows]
        emb = np.array([centres[p] + rng.standard_normal(6) for p, _ in rows], np.float32)
        for fid in fids:
            cv2.imwrite(str(images / fid), np.full((32, 16, 3), rng.integers(0, 255), np.uint8))
        csv = tmp_path / f"{role}.csv"
        csv.write_text("".join(f"{p},{f}\n" for p, f in zip(pids, fids)))
        h5 = tmp_path / f"{role}.h5"
        write_embeddings(str(h5), emb, pids=pids, fids=fids)
        paths[role] = dict(csv=str(csv), h5=str(h5), rows=rows, pids=np.array(pids), fids=fids, emb=emb)
    paths["images"] = str(images)
    paths["tmp"] = tmp_path
    return paths


def arguments(data, *extra, excluder="market1501"):
    return ["--excluder", excluder, "--query_dataset", data["query"]["csv"],
            "--query_embeddings", data["query"]["h5"], "--gallery_dataset", data["gallery"]["csv"],
            "--gallery_embeddings", data["gallery"]["h5"], *extra]


def expected_ranking(data, i):
    """Independent reference for query i: kept gallery entries, labels, distances (float64)."""
    (qp, qc), gallery = data["query"]["rows"][i], data["gallery"]["rows"]
    keep = np.array([not ((p == qp and c == qc) or p == -1) for p, c in gallery])
    labels = data["gallery"]["pids"] == data["query"]["pids"][i]
    dist = scipy_cdist(data["query"]["emb"][i:i + 1].astype(float), data["gallery"]["emb"].astype(float))[0]
    return keep, labels, dist


def test_end_to_end_console_json_plot_and_rank_pictures(data, capsys):
    out = data["tmp"] / "out"
    status = main(arguments(data, "--filename", str(out / "results.json"), "--plot", str(out / "cmc.png"),
                            "--show_ranks", str(out / "ranks"), "--image_root", data["images"],
                            "--num_show", "3"))
    assert status == 0
    captured = capsys.readouterr()

    aps, firsts = [], []
    for i in range(6):
        keep, labels, dist = expected_ranking(data, i)
        if labels[keep].any():
            aps.append(average_precision_score(labels[keep], -dist[keep]))
            ranked = labels[keep][np.argsort(dist[keep])]
            firsts.append(np.flatnonzero(ranked)[0])
    assert len(aps) == 5  # query person 5 has no valid match
    results = json.loads((out / "results.json").read_text())
    assert results["mAP"] == pytest.approx(np.mean(aps), abs=1e-6)
    assert [a["ap"] for a in results["aps"]] == pytest.approx(aps, abs=1e-6)
    assert [a["query"] for a in results["aps"]] == data["query"]["fids"][:5]
    assert results["num_queries"] == 6 and results["num_evaluated"] == 5 and results["num_skipped"] == 1
    assert results["skipped_queries"] == [data["query"]["fids"][5]]
    assert len(results["CMC"]) == len(data["gallery"]["rows"]) == results["num_gallery"]
    assert results["top-1"] == pytest.approx(np.mean(np.array(firsts) < 1))
    assert results["top-5"] == pytest.approx(np.mean(np.array(firsts) < 5))
    assert results["CMC"][0] == results["top-1"] and results["CMC"][9] == results["top-10"]
    assert results["num_gallery_ignored"] == 1 and results["ap_definition"] == "sklearn"
    assert results["settings"]["excluder"] == "market1501" and results["settings"]["rerank"] is False
    assert 0 < results["mINP"] <= 1

    assert f"mAP: {100 * np.mean(aps):.2f}%" in captured.out
    assert "5 of 6 queries evaluated, 1 skipped" in captured.out
    assert "no valid match" in captured.err and data["query"]["fids"][5] in captured.err

    assert (out / "cmc.png").read_bytes().startswith(b"\x89PNG")
    pictures = sorted(os.listdir(out / "ranks"))
    assert len(pictures) == 3
    assert not [f for f in os.listdir(out) if ".tmp-" in f]  # nothing half-written left behind
    # Frames: green for a match, red for a miss, in the order of the reference ranking.
    query_index = int(pictures[0].split("_")[1])
    keep, labels, dist = expected_ranking(data, query_index)
    order = np.flatnonzero(keep)[np.argsort(dist[keep])][:SHOW_RANKS]
    picture = cv2.imread(str(out / "ranks" / pictures[0]))
    tile, gap = 64 + 2 * 4, 64 // 4
    for k, j in enumerate(order):
        colour = tuple(int(v) for v in picture[1, tile + gap + k * tile + 1])
        assert colour == (MATCH_BGR if labels[j] else MISS_BGR), (k, j)


def test_market_ap_flag(data, capsys):
    path = data["tmp"] / "market.json"
    assert main(arguments(data, "--use_market_ap", "--filename", str(path), "--quiet")) == 0
    expected = []
    for i in range(5):
        keep, labels, dist = expected_ranking(data, i)
        expected.append(official_market_ap(labels[keep], -dist[keep]))
    results = json.loads(path.read_text())
    assert results["mAP"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert results["ap_definition"] == "market1501" and results["settings"]["use_market_ap"] is True
    assert "AP: Market-1501" in capsys.readouterr().out


def test_cmc_protocols(data, capsys):
    """--cmc cuhk03 and allshots against a reference written here: the gallery in other cameras with one
    image per identity (two images per person and camera, so the draws matter), and every match."""
    path = data["tmp"] / "cuhk03.json"
    assert main(arguments(data, "--cmc", "cuhk03", "--cmc_repeats", "3", "--seed", "4", "--filename",
                          str(path))) == 0
    results = json.loads(path.read_text())
    assert "CMC: cuhk03" in capsys.readouterr().out
    assert results["cmc_protocol"] == "cuhk03"
    assert results["settings"]["cmc"] == "cuhk03"
    assert (results["settings"]["cmc_repeats"], results["settings"]["seed"]) == (3, 4)
    rng = np.random.default_rng(4)
    top1 = []
    for i, (qp, qc) in enumerate(data["query"]["rows"]):
        _, _, dist = expected_ranking(data, i)
        valid = [j for j, (p, c) in enumerate(data["gallery"]["rows"]) if c != qc and p != -1]
        persons = sorted({data["gallery"]["pids"][j] for j in valid})
        if data["query"]["pids"][i] not in persons:
            continue
        members = [[j for j in valid if data["gallery"]["pids"][j] == p] for p in persons]
        draws = rng.integers(0, [len(m) for m in members], size=(3, len(persons)))
        for r in range(3):
            chosen = [members[k][draws[r, k]] for k in range(len(persons))]
            match = chosen[persons.index(data["query"]["pids"][i])]
            top1.append(all(dist[j] > dist[match] for j in chosen if j != match))
    assert len(top1) == 5 * 3
    assert results["top-1"] == pytest.approx(np.mean(top1))

    path = data["tmp"] / "allshots.json"
    assert main(arguments(data, "--cmc", "allshots", "--filename", str(path), "--quiet")) == 0
    fractions = []
    for i in range(5):
        keep, labels, dist = expected_ranking(data, i)
        ranked = labels[keep][np.argsort(dist[keep])]
        before = np.cumsum(~ranked)[ranked]  # non-matches before each match
        fractions.append(np.mean(before < 1))
    results = json.loads(path.read_text())
    assert results["top-1"] == pytest.approx(np.mean(fractions))
    assert "cmc_repeats" not in results["settings"]


@pytest.mark.parametrize("extra, message", [
    (["--cmc", "cuhk03", "--excluder", "diagonal"],
     "use an excluder that does: camera, cuhk01, cuhk03, duke"),
    (["--seed", "3"], "--seed set(s) the random draws of --cmc cuhk03"),
    (["--cmc", "allshots", "--cmc_repeats", "3"], "--cmc allshots draws nothing"),
])
def test_cmc_flag_errors(data, capsys, extra, message):
    assert main(arguments(data, *extra)) == 2
    assert message in capsys.readouterr().err


def test_rerank_flags(data):
    from trinet.core.distances import cdist
    from trinet.evaluation.rerank import re_ranking

    path = data["tmp"] / "rerank.json"
    assert main(arguments(data, "--rerank", "--k1", "4", "--k2", "2", "--lambda_value", "0.5",
                          "--filename", str(path), "--quiet")) == 0
    q, g = data["query"]["emb"].astype(float), data["gallery"]["emb"].astype(float)
    reranked = re_ranking(cdist(q, g), cdist(q, q), cdist(g, g), k1=4, k2=2, lambda_value=0.5)
    expected = []
    for i in range(5):
        keep, labels, _ = expected_ranking(data, i)
        expected.append(average_precision_score(labels[keep], -reranked[i][keep]))
    results = json.loads(path.read_text())
    assert results["mAP"] == pytest.approx(np.mean(expected), abs=1e-5)
    settings = results["settings"]
    assert (settings["rerank"], settings["k1"], settings["k2"], settings["lambda_value"]) == (True, 4, 2, 0.5)


def test_dimension_mismatch_names_both_files(data, capsys):
    write_embeddings(data["gallery"]["h5"], np.zeros((len(data["gallery"]["rows"]), 3), np.float32))
    results = data["tmp"] / "never.json"
    assert main(arguments(data, "--filename", str(results))) == 2
    err = capsys.readouterr().err
    assert "dimension 6" in err and "dimension 3" in err
    assert data["query"]["h5"] in err and data["gallery"]["h5"] in err
    assert not results.exists()  # --filename is written at the end only


def test_row_count_mismatch(data, capsys):
    write_embeddings(data["query"]["h5"], np.zeros((2, 6), np.float32))
    assert main(arguments(data)) == 2
    err = capsys.readouterr().err
    assert "has 2 embeddings" in err and data["query"]["csv"] in err


def test_missing_csv(data, capsys):
    args = arguments(data)
    args[args.index("--query_dataset") + 1] = str(data["tmp"] / "nope.csv")
    assert main(args) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_names_that_do_not_fit_the_excluder(data, capsys):
    assert main(arguments(data, excluder="duke")) == 2
    err = capsys.readouterr().err
    assert "DukeMTMC-reID" in err and data["query"]["fids"][0] in err and data["query"]["csv"] in err


def test_no_query_with_a_valid_match_is_an_error(data, capsys):
    csv = data["tmp"] / "other.csv"
    csv.write_text("".join(f"9{i},{f}\n" for i, f in enumerate(data["gallery"]["fids"])))
    args = arguments(data)
    args[args.index("--gallery_dataset") + 1] = str(csv)
    assert main(args) == 2
    assert "None of the 6 queries" in capsys.readouterr().err


def test_show_ranks_needs_image_root(data, capsys):
    assert main(arguments(data, "--show_ranks", str(data["tmp"] / "ranks"))) == 2
    assert "--image_root" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--excluder", "mars"], "invalid choice: 'mars'"),
    (["--k1", "0"], "expected a positive integer"),
    (["--lambda_value", "2"], "between 0 and 1"),
    (["--metric", "manhattan"], "invalid choice"),
    (["--plot", "cmc.gif"], "ending in one of"),
])
def test_bad_flags_exit_2(data, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        main(arguments(data, *extra))
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_diagonal_excluder_query_equals_gallery(data, tmp_path):
    path = tmp_path / "sop.json"
    g = data["gallery"]
    assert main(["--excluder", "diagonal", "--query_dataset", g["csv"], "--query_embeddings", g["h5"],
                 "--gallery_dataset", g["csv"], "--gallery_embeddings", g["h5"], "--metric", "cosine",
                 "--filename", str(path), "--quiet"]) == 0
    results = json.loads(path.read_text())
    # Without its own file, every gallery image except junk, distractor and person 5 has a match.
    assert results["num_skipped"] == 3 and results["num_gallery_ignored"] == 0


def test_parser_help_and_choices():
    parser = build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and len(action.help) > 20, action.dest
    excluder = next(a for a in parser._actions if a.dest == "excluder")
    assert excluder.required and excluder.choices == sorted(excluder.choices)
    assert "none" in excluder.choices and "msmt17" in excluder.choices


def test_command_does_not_import_tensorflow(data):
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['evaluate.py'] + {arguments(data, '--quiet')!r}\n"
        "try:\n"
        "    runpy.run_path('evaluate.py', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print('STATUS', e.code)\n"
        "heavy = {'tensorflow', 'keras', 'torch', 'sklearn'}\n"
        "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "STATUS 0" in done.stdout, done.stderr
    assert "HEAVY []" in done.stdout
    assert "mAP:" in done.stdout


def test_the_metric_stored_with_the_embeddings_is_the_default(data, capsys, caplog):
    out = data["tmp"] / "out"
    assert main(arguments(data, "--metric", "cosine", "--filename", str(out / "cosine.json"))) == 0
    for role in ("query", "gallery"):
        with h5py.File(data[role]["h5"], "a") as f:
            f.attrs["metric"] = "cosine"
    assert main(arguments(data, "--filename", str(out / "stored.json"))) == 0
    assert "Using the cosine distance stored with the embeddings" in caplog.text
    cosine, stored = (json.load(open(out / name)) for name in ("cosine.json", "stored.json"))
    assert stored["settings"]["metric"] == "cosine" and stored["mAP"] == cosine["mAP"]
    assert main(arguments(data, "--metric", "euclidean", "--filename", str(out / "euclidean.json"))) == 0
    assert json.load(open(out / "euclidean.json"))["mAP"] != cosine["mAP"]  # the flag still overrides
    with h5py.File(data["gallery"]["h5"], "a") as f:
        f.attrs["metric"] = "sqeuclidean"
    assert main(arguments(data)) == 2
    assert "were made for the cosine distance but the gallery embeddings" in capsys.readouterr().err


def with_camera_column(data, role, name, cameras=None, rename=False):
    """A copy of `role`'s CSV with a header and the camera column (the cameras of the names by default);
    `rename`: the paths renamed to `img_N.jpg` (no release naming; the embeddings follow the rows)."""
    rows = data[role]["rows"]
    cameras = [c for _, c in rows] if cameras is None else cameras
    fids = [f"{role}/img_{i}.jpg" for i in range(len(rows))] if rename else data[role]["fids"]
    path = data["tmp"] / name
    path.write_text("pid,path,camera\n" + "".join(
        f"{p},{f},{c}\n" for p, f, c in zip(data[role]["pids"], fids, cameras)))
    h5 = data["tmp"] / (name + ".h5")
    write_embeddings(str(h5), data[role]["emb"], pids=list(data[role]["pids"]), fids=fids)
    return str(path), str(h5)


def test_camera_excluder_on_any_names_equals_market1501(data, capsys):
    """The camera column of renamed files gives the numbers the Market-1501 names give."""
    assert main(arguments(data, "--filename", str(data["tmp"] / "names.json"))) == 0
    query_csv, query_h5 = with_camera_column(data, "query", "q.csv", rename=True)
    gallery_csv, gallery_h5 = with_camera_column(data, "gallery", "g.csv", rename=True)
    assert main(["--excluder", "camera", "--query_dataset", query_csv, "--query_embeddings", query_h5,
                 "--gallery_dataset", gallery_csv, "--gallery_embeddings", gallery_h5,
                 "--filename", str(data["tmp"] / "column.json"), "--cmc", "cuhk03"]) == 0
    assert main(arguments(data, "--filename", str(data["tmp"] / "names3.json"), "--cmc", "cuhk03")) == 0
    names = json.loads((data["tmp"] / "names3.json").read_text())
    column = json.loads((data["tmp"] / "column.json").read_text())
    for key in ("mAP", "mINP", "top-1", "top-5"):
        assert column[key] == pytest.approx(names[key]), key
    assert 0 < names["mAP"] < 1
    # Renamed files under a release excluder are refused, naming the files.
    assert main(["--excluder", "market1501", "--query_dataset", query_csv, "--query_embeddings", query_h5,
                 "--gallery_dataset", gallery_csv, "--gallery_embeddings", gallery_h5]) == 2
    assert "do not follow the Market-1501 naming" in capsys.readouterr().err


def test_release_excluder_checks_the_camera_column(data, capsys):
    cameras = [c for _, c in data["gallery"]["rows"]]
    cameras[4] = 6
    gallery_csv, gallery_h5 = with_camera_column(data, "gallery", "g.csv", cameras)
    args = arguments(data)
    args[args.index("--gallery_dataset") + 1] = gallery_csv
    args[args.index("--gallery_embeddings") + 1] = gallery_h5
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{gallery_csv}:6: camera 6 but" in err and "--excluder market1501" in err
    # A column that agrees is accepted and gives the numbers of the plain CSV.
    good_csv, good_h5 = with_camera_column(data, "gallery", "good.csv")
    args[args.index("--gallery_dataset") + 1] = good_csv
    args[args.index("--gallery_embeddings") + 1] = good_h5
    assert main(args) == 0 and "mAP" in capsys.readouterr().out


def test_camera_excluder_without_a_column_is_a_clear_error(data, capsys):
    assert main(arguments(data, excluder="camera")) == 2
    err = capsys.readouterr().err
    assert "--excluder camera" in err and "has none" in err and "pid,path,camera" in err
