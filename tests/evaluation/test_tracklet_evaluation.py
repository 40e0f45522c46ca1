"""evaluate.py on tracklet files (embed.py --pool_by tracklet): matched to the frames' CSV by tracklet, and
evaluated as single images are, under every excluder, metric, CMC protocol and re-ranking."""

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from trinet.cli.evaluate import main
from trinet.data.embeddings.hdf5 import EmbeddingWriter, write_embeddings


def write_tracklet_file(path, names, pids, fids, cameras, emb):
    with EmbeddingWriter(str(path), len(names), emb.shape[1], pids=pids, fids=fids,
                         extra={"tracklets": np.array(names), "cameras": np.array(cameras),
                                "frame_counts": np.ones(len(names), np.int64)}) as writer:
        writer.write(emb.astype(np.float32))


@pytest.fixture
def tracks(tmp_path):
    """Query and gallery frames CSVs of Market-named tracklets (3-4 frames each, frames in reverse order
    in the CSV) of 5 persons in 3 cameras, junk in the gallery, and tracklet files whose rows are shuffled."""
    rng = np.random.default_rng(1)
    centres = {p: 2 * rng.standard_normal(4) for p in range(-1, 6)}
    out = {}
    for role, specs in (("query", [(p, 1) for p in range(1, 6)] + [(2, 2)]),
                        ("gallery", [(p, c) for p in range(1, 6) for c in (1, 2, 3)] + [(-1, 2), (-1, 3)])):
        lines, names, pids, firsts, cameras = ["pid,path,camera,tracklet,frame"], [], [], [], []
        for t, (p, c) in enumerate(specs):
            pid = "-1" if p < 0 else f"{p:04d}"
            name = f"{role[0]}{t}"
            frames = [f"{role}/{pid}_c{c}s1_{1000 * t + f:06d}_01.jpg" for f in range(3 + t % 2)]
            lines += [f"{pid},{fid},{c},{name},{f}" for f, fid in reversed(list(enumerate(frames)))]
            names.append(name), pids.append(pid), firsts.append(frames[0]), cameras.append(c)
        csv = tmp_path / f"{role}.csv"
        csv.write_text("\n".join(lines) + "\n")
        emb = np.array([centres[p] + rng.standard_normal(4) for p, _ in specs])
        order = rng.permutation(len(names))
        h5 = tmp_path / f"{role}.h5"
        write_tracklet_file(h5, [names[i] for i in order], [pids[i] for i in order],
                            [firsts[i] for i in order], [cameras[i] for i in order], emb[order])
        # The same tracklets as a CSV of one row per tracklet, in CSV order, with a plain embedding file.
        flat = tmp_path / f"{role}_flat.csv"
        flat.write_text("pid,path,camera\n" + "".join(
            f"{p},{f},{c}\n" for p, f, c in zip(pids, firsts, cameras)))
        flat_h5 = tmp_path / f"{role}_flat.h5"
        write_embeddings(str(flat_h5), emb, pids=pids, fids=firsts)
        out[role] = dict(csv=str(csv), h5=str(h5), flat=str(flat), flat_h5=str(flat_h5), specs=specs,
                         emb=emb, pids=np.array(pids))
    out["tmp"] = tmp_path
    return out


def run(tracks, name, *extra, flat=False):
    q, g = tracks["query"], tracks["gallery"]
    path = tracks["tmp"] / f"{name}.json"
    csv, h5 = ("flat", "flat_h5") if flat else ("csv", "h5")
    assert main(["--query_dataset", q[csv], "--query_embeddings", q[h5], "--gallery_dataset", g[csv],
                 "--gallery_embeddings", g[h5], "--filename", str(path), "--quiet", *extra]) == 0
    return json.loads(path.read_text())


@pytest.mark.parametrize("excluder", ["camera", "market1501"])
def test_tracklets_against_a_plain_loop_reference(tracks, excluder):
    results = run(tracks, "t", "--excluder", excluder)
    q, g = tracks["query"], tracks["gallery"]
    aps = []
    for i, (qp, qc) in enumerate(q["specs"]):
        keep = np.array([not ((p == qp and c == qc) or p == -1) for p, c in g["specs"]])
        labels = np.array([p == qp for p, _ in g["specs"]])
        dist = np.sqrt(((q["emb"][i] - g["emb"]) ** 2).sum(axis=1) + 1e-12)
        aps.append(average_precision_score(labels[keep], -dist[keep]))
    assert [a["ap"] for a in results["aps"]] == pytest.approx(aps, abs=1e-6)
    assert results["num_queries"] == 6 and results["num_gallery"] == 17
    assert results["num_gallery_ignored"] == 2


@pytest.mark.parametrize("extra", [
    ["--excluder", "camera", "--rerank", "--k1", "4", "--k2", "2"],
    ["--excluder", "market1501", "--metric", "cosine", "--cmc", "cuhk03", "--use_market_ap"],
    ["--excluder", "camera", "--cmc", "allshots", "--metric", "cityblock"],
    ["--excluder", "none"],
])
def test_tracklet_files_evaluate_as_one_row_per_tracklet(tracks, extra):
    tracklets, flat = run(tracks, "t", *extra), run(tracks, "f", *extra, flat=True)
    for key in ("mAP", "mINP", "CMC", "num_evaluated"):
        assert tracklets[key] == pytest.approx(flat[key]), key


def test_a_tracklet_file_of_other_tracklets_is_refused(tracks, capsys):
    q, g = tracks["query"], tracks["gallery"]
    args = ["--excluder", "camera", "--query_dataset", g["csv"], "--query_embeddings", q["h5"],
            "--gallery_dataset", g["csv"], "--gallery_embeddings", g["h5"]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{q['h5']} has 6 embeddings but the tracklets of {g['csv']} has 17 rows" in err
    # A frames CSV without the tracklet column cannot be matched to a tracklet file.
    assert main(["--excluder", "camera", "--query_dataset", q["flat"], "--query_embeddings", q["h5"],
                 "--gallery_dataset", g["csv"], "--gallery_embeddings", g["h5"]]) == 2
    assert "`tracklet` column" in capsys.readouterr().err
    # Other tracklet names, or another identity, in a file of the right length.
    other = tracks["tmp"] / "other.h5"
    names = [f"q{t}" for t in range(5)] + ["elsewhere"]
    pids = list(q["pids"])
    write_tracklet_file(other, names, pids, [f"x{t}.jpg" for t in range(6)], [1] * 6, q["emb"])
    args = ["--excluder", "camera", "--query_dataset", q["csv"], "--query_embeddings", str(other),
            "--gallery_dataset", g["csv"], "--gallery_embeddings", g["h5"]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 tracklets of the CSV are not in the file: q5" in err and "not in the CSV: elsewhere" in err
    pids[0] = "0099"
    write_tracklet_file(other, [f"q{t}" for t in range(6)], pids, [f"x{t}.jpg" for t in range(6)], [1] * 6,
                        q["emb"])
    assert main(args) == 2
    assert f"tracklet q0 is identity 0099 there but 0001 in {q['csv']}:" in capsys.readouterr().err
