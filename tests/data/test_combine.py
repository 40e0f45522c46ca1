"""Combining training sets (trinet.data.combine, trinet-combine) on converted mimic releases."""

from __future__ import annotations

import os

import pytest

from conftest import REPO
from test_converters import make_cuhk03np, make_duke, make_market, read_lines, run_script
from trinet.cli.combine import main
from trinet.core.errors import TrinetError
from trinet.data import combine
from trinet.data.converters import registry
from trinet.data.datasets import load_dataset, write_csv


def converted(tmp_path, name, make) -> tuple[str, str]:
    """Convert a mimic release under tmp_path/datasets; returns (train CSV, release folder)."""
    release = make(tmp_path / "datasets")
    written = registry.write_conversion(registry.convert(name, release), str(tmp_path / "csv"))
    return written["train"], release


def test_combine_prefixes_identities_and_reroots_paths(tmp_path):
    market_csv, market = converted(tmp_path, "market1501", make_market)
    duke_csv, duke = converted(tmp_path, "duke", make_duke)
    sources = [combine.Source("market1501", market_csv, market), combine.Source("duke", duke_csv, duke)]
    combined = combine.combine(sources)
    assert combined.image_root == str(tmp_path / "datasets")
    assert combined.rows == [
        ("market1501/0002", "Market-1501-v15.09.15/bounding_box_train/0002_c1s1_000451_03.jpg"),
        ("market1501/0002", "Market-1501-v15.09.15/bounding_box_train/0002_c1s1_000551_01.jpg"),
        ("market1501/0007", "Market-1501-v15.09.15/bounding_box_train/0007_c2s3_070952_01.jpg"),
        ("duke/0005", "DukeMTMC-reID/bounding_box_train/0005_c2_f0046985.jpg"),
        ("duke/0005", "DukeMTMC-reID/bounding_box_train/0005_c5_f0051341.jpg"),
        ("duke/0008", "DukeMTMC-reID/bounding_box_train/0008_c1_f0052167.jpg"),
    ]
    stats = {prefix: (s.rows, s.identities) for prefix, s in combined.stats.items()}
    assert stats == {"market1501": (3, 2), "duke": (3, 2)}
    assert combined.columns == {"camera": [1, 1, 2, 2, 5, 1]}  # the converters' camera column, row for row

    higher = combine.combine(sources, image_root=str(tmp_path))
    assert higher.rows[0] == ("market1501/0002",
                              "datasets/Market-1501-v15.09.15/bounding_box_train/0002_c1s1_000451_03.jpg")
    out = str(tmp_path / "combined.csv")
    write_csv(out, *zip(*combined.rows))
    dataset = load_dataset(out, combined.image_root)  # every image is found under the common root
    assert len(set(dataset.pids)) == 4


def test_combine_keeps_equal_numbers_of_two_sets_apart(tmp_path):
    root = make_cuhk03np(tmp_path)
    sets = []
    for subset in ("detected", "labeled"):
        written = registry.write_conversion(registry.convert(f"cuhk03-{subset}", root), str(tmp_path))
        sets.append(combine.Source(subset, written["train"], root))
    combined = combine.combine(sets)
    assert sorted({pid for pid, _ in combined.rows}) == ["detected/0001", "detected/0003",
                                                         "labeled/0001", "labeled/0003"]
    assert combined.rows[3] == ("labeled/0001", "labeled/bounding_box_train/0001_c1_1.png")


def test_combine_refusals(tmp_path):
    market_csv, market = converted(tmp_path, "market1501", make_market)
    source = combine.Source("market1501", market_csv, market)
    with pytest.raises(TrinetError, match=r"Source prefix\(es\) \['market1501'\] given more than once"):
        combine.combine([source, combine.Source("market1501", market_csv, market)])
    with pytest.raises(TrinetError, match="Bad source prefix 'a/b'"):
        combine.combine([combine.Source("a/b", market_csv, market)])
    with pytest.raises(TrinetError, match="is in both source 'market1501' and 'again'"):
        combine.combine([source, combine.Source("again", market_csv, market)])
    with pytest.raises(TrinetError, match="Nothing to combine"):
        combine.combine([])
    test_csv = os.path.join(os.path.dirname(market_csv), "market1501_test.csv")
    with pytest.raises(TrinetError, match=r"market1501_test.csv: 2 row\(s\) with junk identities \['-1'\]"):
        combine.combine([combine.Source("m", test_csv, market)])
    with pytest.raises(TrinetError, match=r"identities \['-1', '0000'\]"):
        combine.combine([combine.Source("m", test_csv, market)], junk_pids=["-1", "0000"])
    with pytest.raises(TrinetError, match="Image root .*elsewhere of source 'm' is not a directory"):
        combine.combine([combine.Source("m", market_csv, str(tmp_path / "elsewhere"))])
    with pytest.raises(TrinetError, match="Dataset file not found"):
        combine.combine([combine.Source("m", str(tmp_path / "nope.csv"), market)])
    with pytest.raises(TrinetError, match="is not under the common image root"):
        combine.combine([source], image_root=os.path.join(market, "query"))
    os.remove(os.path.join(market, "bounding_box_train", "0007_c2s3_070952_01.jpg"))
    with pytest.raises(TrinetError, match=r"1 of 3 images not found under image root .*: "
                                          r"bounding_box_train/0007_c2s3_070952_01.jpg"):
        combine.combine([source])


def test_combine_command_line_end_to_end(tmp_path):
    market_csv, market = converted(tmp_path, "market1501", make_market)
    duke_csv, duke = converted(tmp_path, "duke", make_duke)
    out = tmp_path / "combined.csv"
    script = os.path.join(REPO, "data", "combine.py")  # run from another folder
    done = run_script(script, "--out", str(out), "--source", "market1501", market_csv, market,
                      "--source", "duke", duke_csv, duke, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"Wrote {out}: 6 rows, 4 identities" in done.stdout
    assert f"--image_root {tmp_path / 'datasets'}" in done.stdout
    assert read_lines(out)[3:5] == [
        "market1501/0007,Market-1501-v15.09.15/bounding_box_train/0007_c2s3_070952_01.jpg,2",
        "duke/0005,DukeMTMC-reID/bounding_box_train/0005_c2_f0046985.jpg,2"]
    assert read_lines(out)[0] == "pid,path,camera"
    twice = run_script("data/combine.py", "--out", str(out), "--source", "m", market_csv, market,
                       "--source", "m", duke_csv, duke)
    assert twice.returncode == 2 and "error: Source prefix(es) ['m'] given more than once" in twice.stderr


def test_out_in_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    market_csv, market = converted(tmp_path, "market1501", make_market)
    out = tmp_path / "missing" / "combined.csv"
    assert main(["--out", str(out), "--source", "m", market_csv, market]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: the folder {tmp_path / 'missing'} does not exist")
    assert not (tmp_path / "missing").exists()


def test_combine_keeps_the_columns_every_source_has(tmp_path, caplog):
    root = tmp_path / "images"
    for name in ("a/1.jpg", "a/2.jpg", "b/1.jpg", "c/1.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (tmp_path / "a.csv").write_text("pid,path,tracklet,camera,frame\n1,1.jpg,t0,4,7\n1,2.jpg,t0,4,8\n")
    (tmp_path / "b.csv").write_text("pid,path,camera,tracklet\n1,1.jpg,2,t0\n")
    (tmp_path / "c.csv").write_text("1,1.jpg\n")
    a, b, c = (combine.Source(p, str(tmp_path / f"{p}.csv"), str(root / p)) for p in "abc")
    combined = combine.combine([a, b])
    # The same tracklet label in two sources stays two tracklets; frames only one source has are dropped.
    assert combined.columns == {"camera": [4, 4, 2], "tracklet": ["a/t0", "a/t0", "b/t0"]}
    assert "The frame column is dropped: source(s) b have none" in caplog.text
    out = tmp_path / "out.csv"
    assert main(["--out", str(out), "--source", "a", a.csv, a.image_root, "--source", "b", b.csv,
                 b.image_root]) == 0
    assert read_lines(out) == ["pid,path,camera,tracklet", "a/1,a/1.jpg,4,a/t0", "a/1,a/2.jpg,4,a/t0",
                               "b/1,b/1.jpg,2,b/t0"]
    assert combine.combine([a, c]).columns == {}


def test_combine_drops_a_query_column_with_a_warning(tmp_path, caplog):
    """A multi-query file's `query` column names images of another CSV: it has no meaning in a combined
    training set (and its paths would not follow the new image root), so it is dropped, saying why."""
    root = tmp_path / "images"
    for name in ("a/1.jpg", "a/2.jpg", "b/1.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (tmp_path / "a.csv").write_text("pid,path,camera,query\n1,1.jpg,1,q/1.jpg\n1,2.jpg,1,q/1.jpg\n")
    (tmp_path / "b.csv").write_text("pid,path,camera,query\n1,1.jpg,2,q/2.jpg\n")
    a, b = (combine.Source(p, str(tmp_path / f"{p}.csv"), str(root / p)) for p in "ab")
    assert combine.combine([a, b]).columns == {"camera": [1, 1, 2]}
    assert "The query column of source(s) a, b is dropped" in caplog.text
