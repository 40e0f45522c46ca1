"""trinet-search on small generated embeddings: exact search against trinet's own ranking, the excluder,
the results files, the image queries (with a stand-in Embedder) and the errors."""

import csv
import json
import os
import sys

import numpy as np
import pytest

import trinet
from trinet.cli.search import main
import trinet.console.commands
from trinet.core.distances import cdist
from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset
from trinet.data.embeddings.hdf5 import write_embeddings
from trinet.evaluation.excluders import EXCLUDERS
from trinet.search.index import INDEX_KINDS, build_index, kind_parameters, load_index, save_index, search

pytest.importorskip("faiss")


def market_name(person, cam, index):
    return f"{'-1' if person < 0 else f'{person:04d}'}_c{cam}s1_{index:06d}_01.jpg"


def write_split(folder, role, persons, cams, emb, first=0):
    fids = [f"{role}/{market_name(p, c, first + i)}" for i, (p, c) in enumerate(zip(persons, cams))]
    pids = ["-1" if p < 0 else f"{p:04d}" for p in persons]
    csv_path, h5 = os.path.join(folder, f"{role}.csv"), os.path.join(folder, f"{role}.h5")
    with open(csv_path, "w") as f:
        f.writelines(f"{p},{fid}\n" for p, fid in zip(pids, fids))
    write_embeddings(h5, emb, pids=pids, fids=fids)
    return csv_path, h5, fids, pids


@pytest.fixture
def data(tmp_path):
    """A Market-1501-style gallery of 6 persons x 3 cameras x 4 images plus junk, 8-d embeddings clustered
    by person, and 5 queries; the query's own person-and-camera images lie closest to it."""
    rng = np.random.default_rng(3)
    centres = 3.0 * rng.standard_normal((7, 8))
    cam_shift = 0.8 * rng.standard_normal((4, 8))
    g_persons = [p for p in range(1, 7) for _ in range(3) for _ in range(4)] + [-1] * 6
    g_cams = [c for _ in range(1, 7) for c in (1, 2, 3) for _ in range(4)] + [1, 2, 3, 1, 2, 3]
    g_emb = np.array([centres[max(p, 0)] + cam_shift[c] + 0.5 * rng.standard_normal(8)
                      for p, c in zip(g_persons, g_cams)], np.float32)
    q_persons, q_cams = [1, 2, 3, 4, 5], [1, 2, 3, 1, 2]
    q_emb = np.array([centres[p] + cam_shift[c] + 0.5 * rng.standard_normal(8)
                      for p, c in zip(q_persons, q_cams)], np.float32)
    gallery = write_split(str(tmp_path), "gallery", g_persons, g_cams, g_emb, first=100)
    query = write_split(str(tmp_path), "query", q_persons, q_cams, q_emb)
    return dict(tmp=tmp_path, g_emb=g_emb, q_emb=q_emb, g_persons=np.array(g_persons),
                g_cams=np.array(g_cams),
                q_persons=np.array(q_persons), q_cams=np.array(q_cams), gallery=gallery, query=query)


def build(data, *extra, output="index"):
    csv_path, h5, *_ = data["gallery"]
    out = str(data["tmp"] / output)
    return main(["index", "--gallery_dataset", csv_path, "--gallery_embeddings", h5, "--output", out,
                 "--quiet", *extra]), out


def query(data, index, filename, *extra):
    csv_path, h5, *_ = data["query"]
    return main(["query", "--index", index, "--query_dataset", csv_path, "--query_embeddings", h5,
                 "--filename", str(data["tmp"] / filename), "--quiet", *extra])


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_exact_search_ranks_as_trinets_own_distances(metric):
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((80, 6)).astype(np.float32)
    queries = rng.standard_normal((9, 6)).astype(np.float32)
    rows = Dataset(np.full(80, "p"), np.array([f"{i}.jpg" for i in range(80)]))
    hits = search(build_index(gallery, rows, "flat", metric), queries, 10)
    dist = cdist(queries, gallery, metric)
    order = np.argsort(dist, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(hits.indices, order)
    np.testing.assert_allclose(hits.distances, np.take_along_axis(dist, order, axis=1), rtol=1e-5, atol=1e-6)


def test_search_with_the_excluder_equals_a_reference_applying_it_by_hand(data):
    k = 20  # more than the gallery left after the query's own person-camera images: the search goes deeper
    gallery = Dataset(np.zeros(len(data["g_emb"]), str), np.array(data["gallery"][2]))
    index = build_index(data["g_emb"], gallery, "flat")
    exclusion = EXCLUDERS["market1501"](data["query"][2], data["gallery"][2])
    hits = search(index, data["q_emb"], k, exclusion)
    dist = cdist(data["q_emb"], data["g_emb"])
    for i in range(len(data["q_emb"])):
        same = (data["g_persons"] == data["q_persons"][i]) & (data["g_cams"] == data["q_cams"][i])
        allowed = np.flatnonzero(~same & (data["g_persons"] != -1))
        expected = allowed[np.argsort(dist[i, allowed], kind="stable")[:k]]
        np.testing.assert_array_equal(hits.indices[i], expected)
        # Without the excluder, the query's own person-camera images would rank first.
        assert same[np.argsort(dist[i])[0]]


def test_an_approximate_index_still_returns_k_results_when_its_probed_lists_run_out():
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((400, 8)).astype(np.float32)
    rows = Dataset(np.full(400, "p"), np.array([f"{i}.jpg" for i in range(400)]))
    index = build_index(gallery, rows, "ivfsq", params={"nlist": 10, "nprobe": 1})
    hits = search(index, gallery[:4], 150)  # one list holds about 40 vectors
    assert (hits.indices >= 0).all() and all(len(set(row)) == 150 for row in hits.indices)
    assert (np.diff(hits.distances, axis=1) >= 0).all()


def test_the_command_writes_json_and_csv_with_the_exact_results(data):
    status, index = build(data)
    assert status == 0 and sorted(os.listdir(index)) == ["gallery.csv", "index.faiss", "manifest.json"]
    manifest = json.load(open(os.path.join(index, "manifest.json")))
    described = (manifest["kind"], manifest["metric"], manifest["dim"], manifest["count"])
    assert described == ("flat", "euclidean", 8, 78)
    assert query(data, index, "out.json", "--top_k", "3", "--excluder", "market1501") == 0
    assert query(data, index, "out.csv", "--top_k", "3", "--excluder", "market1501") == 0
    results = json.load(open(data["tmp"] / "out.json"))
    assert [r["query"] for r in results] == data["query"][2]
    dist = cdist(data["q_emb"], data["g_emb"])
    fids, pids = data["gallery"][2], data["gallery"][3]
    for i, row in enumerate(results):
        assert len(row["results"]) == 3 and set(row["results"][0]) == {"path", "pid", "distance"}
        for result in row["results"]:
            j = fids.index(result["path"])
            assert result["pid"] == pids[j]
            assert result["distance"] == pytest.approx(float(dist[i, j]), rel=1e-5)
        assert [r["distance"] for r in row["results"]] == sorted(r["distance"] for r in row["results"])
    with open(data["tmp"] / "out.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["query", "rank", "path", "pid", "distance"] and len(table) == 5 * 3
    flat = [(r["query"], i + 1, x["path"], x["pid"], x["distance"]) for r in results
            for i, x in enumerate(r["results"])]
    assert [(t["query"], int(t["rank"]), t["path"], t["pid"], float(t["distance"])) for t in table] == flat


def test_image_queries_go_through_the_embedder(data, monkeypatch):
    calls = {}

    class FakeEmbedder:
        fingerprint = None  # unknown: no model check
        net_size = pre_crop_size = (32, 16)

        @classmethod
        def from_experiment(cls, root, checkpoint=None, names=None):
            calls["root"], calls["checkpoint"] = root, checkpoint
            return cls()

        def embed(self, paths, flip=False, crops=None, aggregator=None):
            calls["paths"], calls["flip"], calls["aggregator"] = list(paths), flip, aggregator
            return data["q_emb"][:len(paths)]

    monkeypatch.setattr(trinet, "Embedder", FakeEmbedder, raising=False)
    monkeypatch.setattr(trinet.console.commands, "import_tensorflow_quietly", lambda: None)
    _, index = build(data)
    images = ["a.jpg", "b.jpg"]
    assert main(["query", "--index", index, "--images", *images, "--experiment_root", str(data["tmp"]),
                 "--checkpoint", "7", "--flip_augment", "--aggregator", "mean", "--top_k", "4", "--filename",
                 str(data["tmp"] / "img.json"), "--quiet"]) == 0
    assert calls == {"root": str(data["tmp"]), "checkpoint": "7", "paths": images, "flip": True,
                     "aggregator": "mean"}
    results = json.load(open(data["tmp"] / "img.json"))
    expected = np.argsort(cdist(data["q_emb"][:2], data["g_emb"]), axis=1)[:, :4]
    assert [r["query"] for r in results] == images
    assert [[data["gallery"][2].index(x["path"]) for x in r["results"]] for r in results] == expected.tolist()


def test_rank_pictures_are_drawn_for_the_queries(data):
    _, index = build(data)
    out = data["tmp"] / "ranks"
    assert query(data, index, "out.json", "--show_ranks", str(out), "--image_root", str(data["tmp"]),
                 "--num_show", "2") == 0
    assert len(os.listdir(out)) == 2


def error_of(capsys):
    return capsys.readouterr().err


def test_a_missing_or_unfinished_index_folder_is_refused(data, capsys):
    assert query(data, str(data["tmp"] / "nowhere"), "out.json") == 2
    assert "nowhere is not found" in error_of(capsys)
    _, index = build(data)
    os.remove(os.path.join(index, "manifest.json"))
    assert query(data, index, "out.json") == 2
    assert "no complete index" in error_of(capsys)


def test_query_embeddings_of_another_dimension_are_refused(data, capsys):
    _, index = build(data)
    csv_path, _, fids, pids = data["query"]
    other = str(data["tmp"] / "q4.h5")
    write_embeddings(other, data["q_emb"][:, :4], pids=pids, fids=fids)
    assert main(["query", "--index", index, "--query_dataset", csv_path, "--query_embeddings", other,
                 "--filename", str(data["tmp"] / "o.json")]) == 2
    message = error_of(capsys)
    assert "dimension 4" in message and "built for dimension 8" in message and "q4.h5" in message


def test_an_index_built_for_another_dimension_is_refused(data, capsys):
    csv_path, _, fids, pids = data["gallery"]
    other = str(data["tmp"] / "g4.h5")
    write_embeddings(other, data["g_emb"][:, :4], pids=pids, fids=fids)
    assert main(["index", "--gallery_dataset", csv_path, "--gallery_embeddings", other, "--output",
                 str(data["tmp"] / "idx4"), "--quiet"]) == 0
    assert query(data, str(data["tmp"] / "idx4"), "out.json") == 2
    message = error_of(capsys)
    assert "have dimension 8 but the index" in message and "built for dimension 4" in message


def test_unknown_kinds_foreign_parameters_and_unsearchable_metrics_are_refused(data, capsys):
    with pytest.raises(SystemExit):
        build(data, "--index", "lsh")
    assert "invalid choice: 'lsh'" in error_of(capsys)
    with pytest.raises(TrinetError, match=r"Unknown index kind 'lsh'; expected one of \['flat', 'hnsw'"):
        kind_parameters("lsh", {}, 10)
    assert build(data, "--nlist", "4")[0] == 2
    assert "--index flat takes no --nlist (it applies to --index ivfpq / ivfsq)" in error_of(capsys)
    assert build(data, "--metric", "cityblock")[0] == 2
    assert "cityblock distance cannot be searched" in error_of(capsys)
    assert build(data, "--index", "ivfpq")[0] == 2
    assert "--pq_m 32 must divide the embedding dimension 8" in error_of(capsys)
    assert build(data, "--index", "ivfpq", "--pq_m", "4")[0] == 2  # 78 vectors cannot train 256 centroids
    assert "needs at least that many gallery vectors; the gallery has 78" in error_of(capsys)


def test_a_missing_faiss_is_reported_at_once_with_what_to_install(data, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    assert build(data)[0] == 2
    message = error_of(capsys)
    assert "needs faiss, which is not installed" in message and "pip install 'trinet[search]'" in message
    assert query(data, str(data["tmp"] / "nowhere"), "out.json") == 2
    assert "needs faiss" in error_of(capsys)


def test_every_index_kind_saves_and_loads(tmp_path):
    rng = np.random.default_rng(2)
    gallery = rng.standard_normal((300, 8)).astype(np.float32)
    rows = Dataset(np.full(300, "p"), np.array([f"{i}.jpg" for i in range(300)]))
    for kind in INDEX_KINDS:
        built = build_index(gallery, rows, kind, params={"pq_m": 4} if kind == "ivfpq" else {})
        save_index(str(tmp_path / kind), built)
        loaded = load_index(str(tmp_path / kind))
        assert (loaded.kind, loaded.params, loaded.dim, len(loaded.gallery)) == (kind, built.params, 8, 300)
        np.testing.assert_array_equal(search(loaded, gallery[:3], 5).indices,
                                      search(built, gallery[:3], 5).indices)


@pytest.mark.slow
def test_image_queries_with_a_trained_model_find_themselves_first(finished, image_set, tmp_path):
    """embed.py embeds the gallery, trinet-search indexes it, and images of the gallery given as queries
    (embedded by trinet.Embedder) find themselves at rank 1, at the epsilon distance."""
    from trinet.cli.embed import main as embed_main

    csv_path, images = image_set
    gallery_h5 = str(tmp_path / "gallery.h5")
    assert embed_main(["--experiment_root", str(finished), "--dataset", csv_path, "--image_root", images,
                       "--filename", gallery_h5, "--quiet"]) == 0
    index = str(tmp_path / "index")
    assert main(["index", "--gallery_dataset", csv_path, "--gallery_embeddings", gallery_h5, "--output",
                 index, "--quiet"]) == 0
    # embed.py stored the model's fingerprint, the index keeps it; the images' model is the same one
    assert load_index(index).model_fingerprint == trinet.Embedder.from_experiment(str(finished)).fingerprint
    fids = [line.split(",")[1].strip() for line in open(csv_path)][::7]
    out = str(tmp_path / "found.json")
    assert main(["query", "--index", index, "--experiment_root", str(finished), "--top_k", "3", "--filename",
                 out, "--quiet", "--strict", "--images", *[os.path.join(images, f) for f in fids]]) == 0
    results = json.load(open(out))
    assert [r["results"][0]["path"] for r in results] == fids
    assert max(r["results"][0]["distance"] for r in results) < 1e-3


# Robustness, round 3 (issue 26): the index folder keeps the promises of the training side.

def test_a_corrupted_index_file_is_refused_naming_it(data, capsys):
    """Defect 1: 4 KiB overwritten in place (same size) were searched silently; a zeroed header gave a faiss
    RuntimeError traceback."""
    _, index = build(data)
    path = os.path.join(index, "index.faiss")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # noise over the vectors (the whole file when it is smaller than 4 KiB)
        f.seek(max(0, size - 4096))
        f.write(np.random.default_rng(0).bytes(min(4096, size)))
    assert os.path.getsize(path) == size
    assert query(data, index, "out.json") == 2
    err = error_of(capsys)
    assert f"{path} is corrupt: it fails its checksum" in err and err.count("\n") == 1
    assert not (data["tmp"] / "out.json").exists()
    _, index = build(data, output="zeroed")
    path = os.path.join(index, "index.faiss")
    with open(path, "r+b") as f:
        f.write(bytes(64))
    assert query(data, index, "out.json") == 2
    assert f"{path} is corrupt: it fails its checksum" in error_of(capsys)


def test_4_kib_overwritten_inside_a_larger_index_is_found(tmp_path):
    """The case of the issue: the header intact, 4 KiB of vectors changed in place; faiss reads it."""
    rng = np.random.default_rng(5)
    rows = Dataset(np.full(1000, "p"), np.array([f"{i}.jpg" for i in range(1000)]))
    save_index(str(tmp_path / "index"), build_index(rng.standard_normal((1000, 8)).astype(np.float32), rows))
    path = tmp_path / "index" / "index.faiss"
    with open(path, "r+b") as f:
        f.seek(8192)
        f.write(rng.bytes(4096))
    with pytest.raises(TrinetError, match=f"^{path} is corrupt: it fails its checksum"):
        load_index(str(tmp_path / "index"))


def test_changed_gallery_rows_are_refused(data, capsys):
    _, index = build(data)
    path = os.path.join(index, "gallery.csv")
    rows = open(path).read().splitlines()
    rows[0], rows[1] = rows[1], rows[0]  # two rows swapped: the same size, another gallery
    open(path, "w").write("\n".join(rows) + "\n")
    assert query(data, index, "out.json") == 2
    assert f"{path} is corrupt: it fails its checksum" in error_of(capsys)


def test_the_index_never_overwrites_a_folder_that_is_not_an_index(data, capsys):
    """Defect 2: --output DIR holding the user's own gallery.csv was written into with exit 0."""
    mine = data["tmp"] / "mine"
    mine.mkdir()
    (mine / "gallery.csv").write_text("my own rows\n")
    (mine / "notes.txt").write_text("keep me\n")
    assert build(data, output="mine")[0] == 2
    err = error_of(capsys)
    assert f"--output {mine} is a folder that holds no trinet index" in err and "gallery.csv" in err
    assert sorted(os.listdir(mine)) == ["gallery.csv", "notes.txt"]
    assert (mine / "gallery.csv").read_text() == "my own rows\n"
    # an empty folder is used; an index is replaced; an index with a user's file beside it is not
    (data["tmp"] / "empty").mkdir()
    assert build(data, output="empty")[0] == 0
    assert build(data, "--index", "hnsw", output="empty")[0] == 0
    assert load_index(str(data["tmp"] / "empty")).kind == "hnsw"
    assert sorted(os.listdir(data["tmp"])) == sorted(["empty", "mine", "gallery.csv", "gallery.h5",
                                                     "query.csv", "query.h5"])  # no temporary left
    (data["tmp"] / "empty" / "mine.txt").write_text("x")
    assert build(data, output="empty")[0] == 2
    assert "also mine.txt, which replacing the index would delete" in error_of(capsys)
    assert load_index(str(data["tmp"] / "empty")).kind == "hnsw"


@pytest.mark.parametrize("flags, words", [
    (["--index", "hnsw", "--hnsw_m", "1"], "--hnsw_m 1 is out of range: --index hnsw allows 2 or more"),
    (["--index", "hnsw", "--hnsw_m", "16", "--ef_construction", "8"],
     "--ef_construction 8 is smaller than --hnsw_m 16"),
    (["--index", "ivfsq", "--nlist", "79"], "--nlist 79 is larger than the gallery (78 vectors)"),
    (["--index", "ivfpq", "--pq_m", "3"], "--pq_m 3 must divide the embedding dimension 8 (each of the 3 "
                                          "codes covers an equal share of it); allowed: 1, 2, 4, 8"),
    (["--index", "ivfpq", "--pq_m", "4", "--pq_nbits", "13"], "--pq_nbits 13 is out of range: --index ivfpq "
                                                              "allows 1 to 12"),
])
def test_index_parameters_are_checked_before_faiss_sees_them(data, flags, words):
    """Defect 3: --index hnsw --hnsw_m 1 killed the process with a segmentation fault (exit 139). Run in a
    child process, so that a regression fails this test instead of killing the test run."""
    import subprocess

    csv_path, h5, *_ = data["gallery"]
    out = str(data["tmp"] / "index")
    code = "import sys; from trinet.cli.search import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "index", "--gallery_dataset", csv_path,
                           "--gallery_embeddings", h5, "--output", out, "--quiet", *flags],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and words in done.stderr and done.stderr.count("\n") == 1
    assert not os.path.exists(out)


def test_library_parameters_are_named_as_the_api_names_them():
    rows = Dataset(np.full(50, "p"), np.array([f"{i}.jpg" for i in range(50)]))
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    with pytest.raises(TrinetError, match=r"ef_construction=8 is smaller than hnsw_m=16"):
        build_index(vectors, rows, "hnsw", params={"hnsw_m": 16, "ef_construction": 8})
    index = build_index(vectors, rows, "ivfsq", params={"nlist": 4})
    with pytest.raises(TrinetError, match=r"nprobe='2': expected an integer, found str"):
        search(index, vectors[:2], 3, overrides={"nprobe": "2"})


def test_a_full_disk_during_the_build_publishes_nothing(data, capsys):
    """Defect 4: a full disk while faiss writes the index gave a RuntimeError traceback."""
    from test_robustness import file_size_limit

    out = data["tmp"] / "index"
    with file_size_limit(1024):  # the index file is about 2.6 KB
        status, _ = build(data)
    assert status == 2
    assert error_of(capsys) == f"error: Could not write {out}: File too large; nothing was written.\n"
    assert sorted(n for n in os.listdir(data["tmp"]) if "index" in n) == []  # nor a temporary
    # over an older index: it stays, whole and usable
    assert build(data)[0] == 0
    before = open(out / "manifest.json").read()
    with file_size_limit(1024):
        status, _ = build(data, "--index", "hnsw")
    assert status == 2 and "Could not write" in error_of(capsys)
    assert open(out / "manifest.json").read() == before and load_index(str(out)).kind == "flat"
    assert sorted(n for n in os.listdir(data["tmp"]) if "index" in n) == ["index"]


@pytest.mark.parametrize("change, words", [
    (lambda m: m["parameters"].update(nprobe="16"),
     "parameters.nprobe = '16': expected an integer, found str"),
    (lambda m: m.update(kind=3), "kind is an integer (3); expected a string"),
    (lambda m: m.update(metric=None), "metric is null (None); expected a string"),
    (lambda m: m.update(count="78"), "count is a string ('78'); expected an integer"),
    (lambda m: m["parameters"].update(nlist=0), "parameters.nlist = 0 is out of range"),
    (lambda m: m["parameters"].pop("nprobe") and None,
     "the parameters of an index of kind ivfsq are nlist, nprobe; found nlist"),
    (lambda m: m.pop("files") and None, "lacks the keys files"),
    (lambda m: m["files"]["index.faiss"].update(sha256=None),
     "files.index.faiss.sha256 is null (None); expected a string"),
    (lambda m: m.update(kind="lsh"), "kind is 'lsh'; expected one of ['flat', 'hnsw', 'ivfpq', 'ivfsq']"),
    (lambda m: [], "holds a list; expected an object"),
])
def test_a_crafted_manifest_is_refused_naming_the_key_and_types(data, capsys, change, words):
    """Defect 6: odd types in manifest.json gave KeyError / TypeError tracebacks."""
    _, index = build(data, "--index", "ivfsq", "--nlist", "4")
    path = os.path.join(index, "manifest.json")
    manifest = json.load(open(path))
    changed = change(manifest)
    json.dump(manifest if changed is None else changed, open(path, "w"))
    assert query(data, index, "out.json") == 2
    err = error_of(capsys)
    assert err.startswith(f"error: {path}") and words in err and err.count("\n") == 1


def test_queries_of_another_model_are_warned_of_or_refused_with_strict(data, capsys, caplog):
    """Queries embedded by another model (same dimension and metric) were searched without a word."""
    csv_path, h5, fids, pids = data["gallery"]
    write_embeddings(h5, data["g_emb"], pids=pids, fids=fids, attrs={"model_fingerprint": "a" * 64})
    _, index = build(data)
    assert load_index(index).model_fingerprint == "a" * 64
    q_csv, q_h5, q_fids, q_pids = data["query"]
    write_embeddings(q_h5, data["q_emb"], pids=q_pids, fids=q_fids, attrs={"model_fingerprint": "b" * 64})
    assert query(data, index, "out.json") == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "another model" in warned[0] and "a" * 12 in warned[0]
    assert "b" * 12 in warned[0] and q_h5 in warned[0] and h5 in warned[0]
    assert query(data, index, "strict.json", "--strict") == 2
    assert "--strict: The queries" in error_of(capsys) and not (data["tmp"] / "strict.json").exists()
    write_embeddings(q_h5, data["q_emb"], pids=q_pids, fids=q_fids, attrs={"model_fingerprint": "a" * 64})
    assert query(data, index, "same.json", "--strict") == 0


def test_the_camera_excluder_uses_the_camera_columns_kept_in_the_index(data):
    """CSVs with a camera column: the index keeps the gallery's column, and `--excluder camera` gives the
    results of `--excluder market1501` on the Market-1501 names."""
    for role, persons, cams in (("gallery", data["g_persons"], data["g_cams"]),
                                ("query", data["q_persons"], data["q_cams"])):
        csv_path, _, fids, pids = data[role]
        with open(csv_path, "w") as f:
            f.write("pid,path,camera\n" + "".join(f"{p},{fid},{c}\n" for p, fid, c in zip(pids, fids, cams)))
    status, index = build(data)
    assert status == 0
    assert open(os.path.join(index, "gallery.csv")).readline() == "pid,path,camera\n"
    assert query(data, index, "names.json", "--top_k", "5", "--excluder", "market1501") == 0
    assert query(data, index, "column.json", "--top_k", "5", "--excluder", "camera") == 0
    by_names, by_column = (json.load(open(data["tmp"] / name)) for name in ("names.json", "column.json"))
    assert by_names == by_column
    assert query(data, index, "none.json", "--top_k", "5") == 0
    # the excluder did remove the images of the query's own camera
    assert json.load(open(data["tmp"] / "none.json")) != by_column
