"""evaluate.py --report: the report's data (order by AP, frames, camera table, distance histograms, the
comparison with another run) against references computed here; thumbnails; the folder rules."""

import json
import os

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

import test_evaluate_cli
from test_evaluate_cli import arguments, expected_ranking
from trinet.cli.evaluate import main
from trinet.evaluation.report.content import compare, pages, read_script, worst_first

data = test_evaluate_cli.data  # the fixture: Market-1501-style query and gallery, images included


def reference_aps(data):
    aps = []
    for i in range(len(data["query"]["fids"])):
        keep, labels, dist = expected_ranking(data, i)
        aps.append(average_precision_score(labels[keep], -dist[keep]) if labels[keep].any() else np.nan)
    return np.array(aps)


def read_pages(report):
    entries, n = [], 1
    while os.path.exists(report / "data" / f"page_{n:05d}.js"):
        number, page = read_script((report / "data" / f"page_{n:05d}.js").read_text())
        assert number == n
        entries += page
        n += 1
    return entries, n - 1


def write_report(data, *extra, name="report"):
    report = data["tmp"] / name
    status = main(arguments(data, "--report", str(report), "--image_root", data["images"],
                            "--report_top_k", "5", "--report_page_size", "2", "--quiet", *extra))
    assert status == 0
    return report


def test_worst_first_and_pages_by_hand():
    aps = np.array([0.5, np.nan, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(worst_first(aps), [2, 0, 3, 4, 1])
    assert [p.tolist() for p in pages(worst_first(aps), 2)] == [[2, 0], [3, 4], [1]]


def test_report_lists_every_query_worst_first_with_reference_frames(data, capsys):
    report = write_report(data)
    assert f"Report written to {report / 'index.html'}" in capsys.readouterr().out
    aps = reference_aps(data)
    order = [i for i in np.lexsort((np.arange(len(aps)), aps)) if not np.isnan(aps[i])]
    order += [i for i in range(len(aps)) if np.isnan(aps[i])]
    entries, count = read_pages(report)
    assert count == 3  # 6 queries, 2 a page
    assert [e[0] for e in entries] == order
    assert json.loads((report / "data" / "report.json").read_text())["order"] == order
    g = data["gallery"]
    for index, path, pid, camera, ap, first, delta, thumb, gallery in entries:
        assert path == data["query"]["fids"][index] and pid == data["query"]["pids"][index]
        assert camera == str(data["query"]["rows"][index][1]) and delta is None
        keep, labels, dist = expected_ranking(data, index)
        if np.isnan(aps[index]):
            assert ap is None and first is None
        else:
            assert ap == pytest.approx(aps[index], abs=1e-6)
            kept = np.flatnonzero(keep)
            ranked = kept[np.argsort(dist[kept])]
            assert first == 1 + int(np.flatnonzero(labels[ranked])[0])
        # The top 5 of the gallery without junk; same person and camera shown as ignored (-1).
        shown = np.flatnonzero(g["pids"] != "-1")
        top = shown[np.argsort(dist[shown])][:5]
        expected = [[g["fids"][j], g["pids"][j], str(g["rows"][j][1]), pytest.approx(dist[j], rel=1e-5),
                     1 if keep[j] and labels[j] else -1 if not keep[j] else 0] for j in top]
        assert [x[:5] for x in gallery] == expected
        # Thumbnails: the small JPEGs copied as they are.
        with open(os.path.join(data["images"], path), "rb") as f:
            assert (report / thumb).read_bytes() == f.read()
        for x, j in zip(gallery, top):
            assert x[5] == f"thumbs/g/{j:06d}.jpg" and (report / x[5]).exists()
    names = read_script((report / "data" / "queries.js").read_text())[1]
    assert [n[0] for n in names] == [data["query"]["fids"][i] for i in order]
    assert [n[2] for n in names] == [1, 1, 2, 2, 3, 3]
    html = (report / "index.html").read_text()
    for plot in ("cmc", "ap_histogram", "distances", "roc"):
        assert f'src="plots/{plot}.png"' in html and (report / "plots" / f"{plot}.png").stat().st_size > 1000
    assert "http://" not in html and "https://" not in html  # nothing from the network


def test_camera_table_against_a_reference(data):
    report = write_report(data)
    table = json.loads((report / "data" / "report.json").read_text())["camera_table"]
    assert table["query_cameras"] == ["1", "3"] and table["gallery_cameras"] == ["1", "2", "3"]
    q_cams = np.array([c for _, c in data["query"]["rows"]])
    g_cams = np.array([c for _, c in data["gallery"]["rows"]])
    for a, row_ap, row_r1, row_n in zip((1, 3), table["mAP"], table["rank1"], table["queries"]):
        for b, ap, r1, n in zip((1, 2, 3), row_ap, row_r1, row_n):
            aps, hits = [], []
            for i in np.flatnonzero(q_cams == a):
                keep, labels, dist = expected_ranking(data, i)
                cols = np.flatnonzero(keep & (g_cams == b))
                if labels[cols].any():
                    aps.append(average_precision_score(labels[cols], -dist[cols]))
                    hits.append(labels[cols][np.argmin(dist[cols])])
            assert n == len(aps)
            if aps:
                assert ap == pytest.approx(np.mean(aps)) and r1 == pytest.approx(np.mean(hits))
            else:
                assert ap is None and r1 is None
    assert table["mAP"][0][0] is None  # camera 1 against camera 1: the same-camera matches are ignored


def test_distance_histograms_against_the_kept_pairs(data):
    report = write_report(data)
    hist = json.loads((report / "data" / "report.json").read_text())["histograms"]
    pos, neg = [], []
    for i in range(len(data["query"]["fids"])):
        keep, labels, dist = expected_ranking(data, i)
        pos += list(dist[keep & labels])
        neg += list(dist[keep & ~labels])
    edges = np.array(hist["edges"])
    assert edges[0] == pytest.approx(min(pos + neg), rel=1e-5)
    assert edges[-1] == pytest.approx(max(pos + neg), rel=1e-5)
    # The reference is float64, the evaluation's distances float32: the extremes may fall just outside.
    pos, neg = np.clip(pos, edges[0], edges[-1]), np.clip(neg, edges[0], edges[-1])
    np.testing.assert_allclose(hist["positive"], np.histogram(pos, edges)[0] / len(pos), atol=1e-9)
    np.testing.assert_allclose(hist["negative"], np.histogram(neg, edges)[0] / len(neg), atol=1e-9)
    expected = np.minimum(np.histogram(pos, edges)[0] / len(pos), np.histogram(neg, edges)[0] / len(neg))
    assert hist["overlap"] == pytest.approx(expected.sum())


def test_report_compare_shows_the_per_query_ap_differences(data):
    other = data["tmp"] / "cosine.json"
    assert main(arguments(data, "--metric", "cosine", "--filename", str(other), "--quiet")) == 0
    mine = data["tmp"] / "euclidean.json"
    report = write_report(data, "--report_compare", str(other), "--filename", str(mine))
    theirs = {row["query"]: row["ap"] for row in json.loads(other.read_text())["aps"]}
    ours = {row["query"]: row["ap"] for row in json.loads(mine.read_text())["aps"]}
    entries, _ = read_pages(report)
    differences = 0
    for e in entries:
        if e[1] in ours:
            assert e[6] == pytest.approx(ours[e[1]] - theirs[e[1]], abs=1e-6)
            differences += abs(e[6]) > 1e-9
        else:
            assert e[6] is None  # the skipped query
    assert differences > 0  # the two metrics rank differently
    summary = json.loads((report / "data" / "report.json").read_text())["comparison"]
    assert summary["shared_queries"] == len(ours)
    assert summary["better"] + summary["worse"] + summary["same"] == len(ours)
    assert summary["mAP"] == pytest.approx(np.mean(list(ours.values())))
    assert summary["other_mAP"] == pytest.approx(np.mean([theirs[q] for q in ours]))
    losses = [x["delta"] for x in summary["largest_losses"]]
    assert losses == sorted(losses) and all(d < 0 for d in losses)
    html = (report / "index.html").read_text()
    assert "Compared with" in html and (report / "plots" / "ap_differences.png").exists()
    worst = summary["largest_losses"][0]["query"] if losses else summary["largest_gains"][0]["query"]
    page = next(p for p in range(1, 4) if worst in (report / "data" / f"page_{p:05d}.js").read_text())
    assert f'href="#page={page}&amp;q={worst.replace("/", "%2F")}"' in html  # a link to its card


def test_compare_refuses_other_queries_naming_the_file():
    from trinet.core.errors import TrinetError
    with pytest.raises(TrinetError, match="none of its 1 queries is an evaluated query of this run"):
        compare(["a.jpg"], np.array([0.5]), {"b.jpg": 0.3}, {"path": "other.json"})


def test_report_without_image_root_names_the_files(data, caplog):
    report = data["tmp"] / "bare"
    assert main(arguments(data, "--report", str(report))) == 0
    assert "--report without --image_root" in caplog.text
    entries, _ = read_pages(report)
    assert all(e[7] is None and all(g[5] is None for g in e[8]) for e in entries)
    assert not (report / "thumbs").exists()


def test_report_folder_rules_and_flag_errors(data, capsys):
    taken = data["tmp"] / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    assert main(arguments(data, "--report", str(taken))) == 2
    assert f"--report {taken} holds files but no trinet report" in capsys.readouterr().err
    assert (taken / "notes.txt").read_text() == "mine"
    report = write_report(data)
    (report / "data" / "page_00099.js").write_text("stale")
    write_report(data)  # an older report is replaced, its stale files gone
    assert not (report / "data" / "page_00099.js").exists()
    assert main(arguments(data, "--report_top_k", "3")) == 2
    assert "--report_top_k set(s) the HTML report; add --report DIR" in capsys.readouterr().err
    missing = data["tmp"] / "missing.json"
    assert main(arguments(data, "--report", str(data["tmp"] / "r2"), "--report_compare", str(missing))) == 2
    assert f"--report_compare {missing}: no such file" in capsys.readouterr().err
    bad = data["tmp"] / "bad.json"
    bad.write_text('{"mAP": 0.5}')
    assert main(arguments(data, "--report", str(data["tmp"] / "r3"), "--report_compare", str(bad))) == 2
    assert "not a results file of evaluate.py --filename" in capsys.readouterr().err
