"""The demo dataset generator: Market-1501 layout and naming, splits, determinism, reuse and refusal."""

import collections
import json
import os
import re

import cv2
import numpy as np
import pytest

from trinet import demo
from trinet.core.errors import TrinetError
from trinet.data.datasets import image_format, read_csv
from trinet.demo import drawing, plan

SMALL = dict(seed=3, train_ids=5, test_ids=6, cameras=4, images_per_camera=2, junk=4, distractors=5,
             height=64, width=32)

#: Market-1501 names: pid (4 digits, or -1 for junk), camera 1..6, sequence 1..6, 6-digit frame, 2-digit box.
NAME = re.compile(r"^(-1|\d{4})_c([1-6])s([1-6])_(\d{6})_(\d{2})\.jpg$")
FOLDERS = {"train": "bounding_box_train", "query": "query", "test": "bounding_box_test"}


def small_args(out, **changes):
    """Command-line arguments for SMALL (with `changes`) into `out`."""
    settings = {**SMALL, **changes}
    return ["--out", str(out), "--quiet"] + [f"--{k}={v}" for k, v in settings.items()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "data"
    result = demo.generate(str(root), quiet=True, **SMALL)
    splits = {s: read_csv(os.path.join(str(root), f"demo_{s}.csv"), str(root)) for s in FOLDERS}
    return result, splits


def parse(fid):
    match = NAME.match(os.path.basename(fid))
    assert match, fid
    return match[1], int(match[2])


def test_layout(data):
    result, _ = data
    assert sorted(os.listdir(result.root)) == sorted(
        ["bounding_box_train", "query", "bounding_box_test", "demo_train.csv", "demo_query.csv",
         "demo_test.csv", "demo.json"])
    assert not result.reused
    assert (result.train_csv, result.query_csv, result.test_csv) == tuple(
        os.path.join(result.root, f"demo_{s}.csv") for s in FOLDERS)
    # Nothing is left beside the output folder (the temporary folder was renamed into place).
    assert os.listdir(os.path.dirname(result.root)) == ["data"]


def test_every_file_is_a_market_named_jpeg_of_the_requested_size(data):
    result, _ = data
    count = 0
    for folder in FOLDERS.values():
        for name in os.listdir(os.path.join(result.root, folder)):
            path = os.path.join(result.root, folder, name)
            assert NAME.match(name), name
            assert image_format(path) == "jpeg"
            assert cv2.imread(path).shape == (SMALL["height"], SMALL["width"], 3)
            count += 1
    assert count > 50


def test_csvs_list_exactly_the_files_on_disk(data):
    result, splits = data
    for split, folder in FOLDERS.items():
        dataset = splits[split]
        on_disk = {f"{folder}/{name}" for name in os.listdir(os.path.join(result.root, folder))}
        assert sorted(dataset.fids) == sorted(on_disk)
        assert len(set(dataset.fids)) == len(dataset.fids)
        for pid, fid in zip(dataset.pids, dataset.fids):
            assert parse(fid)[0] == pid  # the CSV identity is the one in the file name
    with open(result.test_csv) as f:
        assert f.readline().startswith("-1,bounding_box_test/-1_c")  # junk first, as in Market-1501


def test_camera_sequence_frame_box_are_unique(data):
    _, splits = data
    keys = [os.path.basename(f).split("_", 1)[1] for s in splits.values() for f in s.fids]
    assert len(keys) == len(set(keys))


def test_detections_of_one_frame_get_distinct_box_indices():
    namer = plan._Namer(np.random.default_rng(0))
    names = [namer.name("0001", (2, 3, 450)) for _ in range(150)]
    assert len(set(names)) == 150
    assert all(NAME.match(n) and n.startswith(("0001_c2s3_000450_", "0001_c2s3_000451_")) for n in names)


def test_counts_and_manifest(data):
    result, splits = data
    with open(os.path.join(result.root, "demo.json")) as f:
        manifest = json.load(f)
    assert manifest["settings"] == SMALL
    assert manifest["counts"] == result.counts
    assert result.counts["train"] == len(splits["train"])
    assert result.counts["query"] == len(splits["query"])
    assert result.counts["test"] == len(splits["test"])
    gallery = splits["test"].pids
    assert (gallery == "-1").sum() == SMALL["junk"] == result.counts["junk"]
    assert (gallery == "0000").sum() == SMALL["distractors"] == result.counts["distractors"]
    assert len(set(splits["train"].pids)) == SMALL["train_ids"]
    assert len(set(splits["query"].pids) | set(gallery) - {"-1", "0000"}) == SMALL["test_ids"]


def test_each_identity_is_seen_by_two_or_more_cameras_with_the_same_number_of_images(data):
    _, splits = data
    per_camera = collections.Counter()
    for dataset in splits.values():
        for pid, fid in zip(dataset.pids, dataset.fids):
            if pid not in ("-1", "0000"):
                per_camera[pid, parse(fid)[1]] += 1
    assert set(per_camera.values()) == {SMALL["images_per_camera"]}
    cams = collections.Counter(pid for pid, _ in per_camera)
    assert min(cams.values()) >= 2 and max(cams.values()) <= SMALL["cameras"]


def test_junk_and_distractors_only_in_the_gallery(data):
    _, splits = data
    for split in ("train", "query"):
        assert not set(splits[split].pids) & {"-1", "0000"}


def test_identities_disjoint_and_numbered_like_market(data):
    _, splits = data
    train = {int(p) for p in splits["train"].pids}
    test = {int(p) for s in ("query", "test") for p in splits[s].pids if p not in ("-1", "0000")}
    assert not train & test
    assert all(1 <= p <= demo.MAX_PID for p in train | test)
    assert sorted(train | test) != list(range(1, len(train | test) + 1))  # drawn from 1..1501, not 1..N


def test_query_identities_have_gallery_images_under_another_camera(data):
    _, splits = data
    gallery = {(pid, parse(fid)[1]) for pid, fid in zip(splits["test"].pids, splits["test"].fids)}
    for pid, fid in zip(splits["query"].pids, splits["query"].fids):
        cam = parse(fid)[1]
        assert any(p == pid and c != cam for p, c in gallery), fid


def test_query_has_at_most_one_image_per_identity_and_camera(data):
    _, splits = data
    keys = [(pid, parse(fid)[1]) for pid, fid in zip(splits["query"].pids, splits["query"].fids)]
    assert len(keys) == len(set(keys))
    assert len(set(splits["query"].pids)) == SMALL["test_ids"]  # every test identity is queried


def test_one_query_camera_per_identity_still_leaves_a_gallery_camera(tmp_path):
    # With one image per camera, a queried camera has no gallery image left: another camera must have one.
    result = demo.generate(str(tmp_path / "d"), quiet=True, **{**SMALL, "images_per_camera": 1})
    query, gallery = read_csv(result.query_csv), read_csv(result.test_csv)
    seen = {(p, parse(f)[1]) for p, f in zip(gallery.pids, gallery.fids)}
    for pid, fid in zip(query.pids, query.fids):
        assert any(p == pid and c != parse(fid)[1] for p, c in seen), fid


def pixels(root):
    """{relative path: decoded pixels} of every image under `root`."""
    out = {}
    for folder in FOLDERS.values():
        for name in sorted(os.listdir(os.path.join(root, folder))):
            out[f"{folder}/{name}"] = cv2.imread(os.path.join(root, folder, name))
    return out


def csv_bytes(root):
    return [open(os.path.join(root, f"demo_{s}.csv"), "rb").read() for s in FOLDERS]


def test_same_seed_gives_identical_data_and_another_seed_different_data(tmp_path, data):
    result, _ = data
    again = demo.generate(str(tmp_path / "again"), quiet=True, **SMALL)
    assert csv_bytes(again.root) == csv_bytes(result.root)
    first, second = pixels(result.root), pixels(again.root)
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)

    other = demo.generate(str(tmp_path / "other"), quiet=True, **{**SMALL, "seed": SMALL["seed"] + 1})
    assert csv_bytes(other.root) != csv_bytes(result.root)
    third = pixels(other.root)
    a, b = np.stack(list(first.values())[:20]), np.stack(list(third.values())[:20])
    assert np.abs(a.astype(int) - b).mean() > 10


def test_render_person_is_a_pure_function_of_its_inputs():
    camera = demo.make_camera(1, 64, 32, np.random.default_rng(0))
    person = demo.random_appearance(np.random.default_rng(1))
    first = demo.render_person(person, camera, np.random.default_rng(2))
    assert first.shape == (64, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first, demo.render_person(person, camera, np.random.default_rng(2)))
    stranger = demo.random_appearance(np.random.default_rng(5))
    other = demo.render_person(stranger, camera, np.random.default_rng(2))
    assert not np.array_equal(first, other)


def test_cameras_change_pixels_more_than_identities():
    # Same camera and framing, two people vs one person under two cameras: the camera matters more.
    rng = np.random.default_rng(0)
    cameras = [demo.make_camera(c, 128, 64, np.random.default_rng(c)) for c in (1, 2, 3, 4)]
    people = [demo.random_appearance(rng) for _ in range(20)]
    same_camera, same_person = [], []
    for i, person in enumerate(people):
        a, b = cameras[i % 2], cameras[2 + i % 2]
        image_a = demo.render_person(person, a, np.random.default_rng(i)).astype(float)
        image_b = demo.render_person(person, b, np.random.default_rng(i)).astype(float)
        stranger = demo.render_person(people[i - 1], a, np.random.default_rng(i)).astype(float)
        same_person.append(np.linalg.norm(image_a - image_b))
        same_camera.append(np.linalg.norm(image_a - stranger))
    assert np.mean(same_camera) < np.mean(same_person)


def test_rerun_reuses_and_prints_so(tmp_path, capsys):
    out = tmp_path / "d"
    assert demo.main(small_args(out)) == 0
    assert "Generated" in capsys.readouterr().out
    stamp = os.stat(out / "demo.json").st_mtime_ns
    assert demo.main(small_args(out)) == 0
    assert "Reusing" in capsys.readouterr().out
    assert os.stat(out / "demo.json").st_mtime_ns == stamp
    assert demo.generate(str(out), quiet=True, **SMALL).reused


def test_other_settings_are_refused_naming_the_folder_and_force(tmp_path, capsys):
    out = tmp_path / "d"
    demo.generate(str(out), quiet=True, **SMALL)
    assert demo.main(small_args(out, seed=9)) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err and "seed=3" in err
    assert json.load(open(out / "demo.json"))["settings"]["seed"] == 3  # untouched

    assert demo.main(small_args(out, seed=9) + ["--force"]) == 0
    assert json.load(open(out / "demo.json"))["settings"]["seed"] == 9
    assert not [e for e in os.listdir(tmp_path) if e != "d"]  # the old dataset was removed


def test_force_regenerates_even_with_the_same_settings(tmp_path):
    out = tmp_path / "d"
    demo.generate(str(out), quiet=True, **SMALL)
    os.remove(out / "query" / sorted(os.listdir(out / "query"))[0])
    with pytest.raises(TrinetError, match="incomplete"):
        demo.generate(str(out), quiet=True, **SMALL)
    result = demo.generate(str(out), quiet=True, force=True, **SMALL)
    assert not result.reused
    assert len(os.listdir(out / "query")) == result.counts["query"]


def test_a_folder_with_other_files_is_never_deleted(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(TrinetError, match="notes.txt.*remove the folder yourself") as error:
        demo.generate(str(out), quiet=True, **SMALL)
    assert str(out) in str(error.value) and "Pass --force" not in str(error.value)
    with pytest.raises(TrinetError, match="notes.txt"):
        demo.generate(str(out), quiet=True, force=True, **SMALL)
    assert (out / "notes.txt").read_text() == "keep me"


def test_force_is_advised_only_where_it_works(tmp_path, capsys):
    """Every refusal that says "Pass --force" is lifted by --force; the others are not."""
    demo.generate(str(tmp_path / "other"), quiet=True, **SMALL)
    demo.generate(str(tmp_path / "cluttered"), quiet=True, **SMALL)
    (tmp_path / "cluttered" / "notes.txt").write_text("keep me")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep me")
    advised = {}
    for name in ("other", "cluttered", "foreign"):
        assert demo.main(small_args(tmp_path / name, seed=9)) == 2
        advised[name] = "Pass --force" in capsys.readouterr().err
        worked = demo.main(small_args(tmp_path / name, seed=9) + ["--force"]) == 0
        capsys.readouterr()
        assert worked == advised[name], name
    assert advised == {"other": True, "cluttered": False, "foreign": False}


def test_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert not demo.generate(str(out), quiet=True, **SMALL).reused
    assert (out / "demo.json").is_file()


def test_a_killed_run_leaves_no_partial_dataset(tmp_path, monkeypatch):
    out = tmp_path / "d"
    calls = []
    real = drawing.apply_camera

    def dies_midway(*args):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(drawing, "apply_camera", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        demo.generate(str(out), quiet=True, **SMALL)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(drawing, "apply_camera", real)
    assert not demo.generate(str(out), quiet=True, **SMALL).reused


def test_temporaries_of_dead_runs_are_removed(tmp_path):
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f".d.tmp-{dead}"
    (stale / "query").mkdir(parents=True)
    demo.generate(str(tmp_path / "d"), quiet=True, **SMALL)
    assert os.listdir(tmp_path) == ["d"]


def test_own_pids_temporaries_are_replaced_and_live_runs_ones_kept(tmp_path):
    own = tmp_path / f".d.tmp-{os.getpid()}"
    for folder in (own / "query", tmp_path / f"{own.name}-old" / "query"):  # e.g. a killed run of this pid
        folder.mkdir(parents=True)
        (folder / "left.jpg").write_bytes(b"x")
    live = tmp_path / f".d.tmp-{os.getppid()}"  # the folder another run is rendering into right now
    live.mkdir()
    result = demo.generate(str(tmp_path / "d"), quiet=True, **SMALL)
    assert sorted(os.listdir(tmp_path)) == [live.name, "d"] and not result.reused
    assert not (tmp_path / "d" / "query" / "left.jpg").exists()


def test_progress_is_reported(tmp_path, capsys):
    assert demo.main([a for a in small_args(tmp_path / "d") if a != "--quiet"]) == 0
    assert "demo: rendering" in capsys.readouterr().err


@pytest.mark.parametrize("change, name", [
    (dict(cameras=7), "cameras"), (dict(cameras=1), "cameras"), (dict(train_ids=1), "train_ids"),
    (dict(test_ids=0), "test_ids"), (dict(train_ids=1000, test_ids=502), "train_ids"),
    (dict(images_per_camera=0), "images_per_camera"), (dict(junk=-1), "junk"),
    (dict(height=8), "height"), (dict(width=4000), "width"), (dict(seed=-1), "seed"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, change, name):
    with pytest.raises(TrinetError, match=f"`{name}` must be"):
        demo.generate(str(tmp_path / "d"), quiet=True, **{**SMALL, **change})
    assert os.listdir(tmp_path) == []


def test_command_line_rejects_bad_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.main(small_args(tmp_path / "d", cameras=0))
    assert exit_.value.code == 2
    assert "--cameras" in capsys.readouterr().err
    assert demo.main(small_args(tmp_path / "d", cameras=7)) == 2
    assert "`cameras` must be between 2 and 6" in capsys.readouterr().err


def test_out_must_not_be_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(TrinetError, match="is a file"):
        demo.generate(str(path), quiet=True, **SMALL)


def test_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--out", "--force", "--seed", "--train_ids", "--test_ids", "--cameras",
                 "--images_per_camera", "--junk", "--distractors", "--height", "--width"):
        assert flag in text
    assert f"Default: {demo.DEFAULTS['train_ids']}" in text
