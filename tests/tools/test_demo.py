"""The demo dataset generator: Market-1501 layout and naming, splits, determinism, reuse and refusal."""

import collections
import colorsys
import dataclasses
import hashlib
import json
import os
import re

import cv2
import numpy as np
import pytest

import trinet
from conftest import REPO
from trinet import demo
from trinet.core.errors import TrinetError
from trinet.data.datasets import image_format, read_csv
from trinet.demo import drawing, plan, world as worlds

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


# --- Worlds: what makes one site differ from another -------------------------------------------------------

#: sha256 (see `digest`) of every file that `python -m trinet.demo` wrote with the SMALL settings before
#: worlds existed (commit b23e194). JPEG bytes depend on OpenCV's encoder: this holds for the opencv-python
#: that `make install` installs; on another build, regenerate it at that commit with the same function.
TODAYS_SMALL_DEMO = "8ca21592d39fc5cad1d3dec12664639ccbbcb06848141bbe7f301cd5e9609719"


def digest(root):
    """sha256 over the relative path and bytes of every file under `root`, in sorted order; demo.json's
    trinet version is replaced by "VERSION", so that a release does not change the checksum."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                data = f.read()
            if rel == "demo.json":
                data = data.replace(json.dumps(trinet.__version__).encode(), b'"VERSION"')
            h.update(rel.encode() + b"\0" + data)
    return h.hexdigest()


def test_world_0_is_todays_demo_byte_for_byte(tmp_path, data):
    result, _ = data
    assert digest(result.root) == TODAYS_SMALL_DEMO
    # Naming world 0, or setting a field to world 0's value, changes nothing either (the manifest included).
    same = ["--colour_cast", "0.13", "--blur", "0", "1.5"]
    assert demo.main(small_args(tmp_path / "cli", world=0) + same) == 0
    assert digest(str(tmp_path / "cli")) == TODAYS_SMALL_DEMO


def test_the_same_world_and_seed_give_identical_files_and_other_worlds_other_ones(tmp_path):
    first = demo.generate(str(tmp_path / "a"), quiet=True, world=2, **SMALL)
    again = demo.generate(str(tmp_path / "b"), quiet=True, world=2, **SMALL)
    other = demo.generate(str(tmp_path / "c"), quiet=True, world=3, **SMALL)
    assert digest(first.root) == digest(again.root)
    assert len({digest(first.root), digest(other.root), TODAYS_SMALL_DEMO}) == 3
    # Another world has other people and file names, not only other cameras.
    assert csv_bytes(first.root) != csv_bytes(other.root)


def test_drawn_worlds_are_reproducible_valid_and_differ_in_every_field():
    assert worlds.draw_world(0) == worlds.DEFAULT_WORLD == worlds.World()
    drawn = [worlds.draw_world(n) for n in (1, 2, 3)]
    assert drawn == [worlds.draw_world(n) for n in (1, 2, 3)]
    for one in drawn:
        worlds.validate_world(one)
        for field in dataclasses.fields(worlds.World):
            assert getattr(one, field.name) != getattr(worlds.DEFAULT_WORLD, field.name), field.name
    assert len(set(drawn)) == 3
    assert worlds.resolve_world(2, {"blur": [0, 0.5]}) == dataclasses.replace(drawn[1], blur=(0.0, 0.5))


def camera_colour_statistics(root):
    """`{camera: (mean log(R/G), mean log(B/G))}` over the camera's images under `root`."""
    sums = collections.defaultdict(list)
    for rel, image in pixels(root).items():
        b, g, r = (image.reshape(-1, 3).astype(float).mean(0) + 1.0)
        sums[parse(rel)[1]].append((np.log(r / g), np.log(b / g)))
    return {cam: np.mean(values, 0) for cam, values in sums.items()}


#: Changes to world 0 and the statistic of the images that each must move (up), against world 0.
def _spread_of_camera_casts(root):
    return float(np.std(np.array(list(camera_colour_statistics(root).values())), 0).mean())


def _red_over_blue(root):
    return float(np.mean([rb[0] - rb[1] for rb in camera_colour_statistics(root).values()]))


def _brightness(root):
    return float(np.mean([image.mean() for image in pixels(root).values()]))


def _sharpness(root):
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(i, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
                          for i in pixels(root).values()]))


@pytest.mark.parametrize("low, high, statistic", [
    ({"colour_cast": 0.0}, {"colour_cast": 0.4}, _spread_of_camera_casts),
    ({"tint": (0.7, 1.0, 1.4)}, {"tint": (1.4, 1.0, 0.7)}, _red_over_blue),
    ({"exposure": (0.4, 0.5)}, {"exposure": (1.5, 1.8)}, _brightness),
    ({"blur": (3, 3), "low_res": (1,)}, {"blur": (0, 0), "low_res": (1,)}, _sharpness),
    ({"noise": (0, 0), "blur": (0, 0), "low_res": (1,)},
     {"noise": (0.08, 0.08), "blur": (0, 0), "low_res": (1,)}, _sharpness),
], ids=["colour_cast", "tint", "exposure", "blur", "noise"])
def test_each_camera_setting_moves_the_images_as_documented(tmp_path, low, high, statistic):
    sizes = {**SMALL, "cameras": 6, "train_ids": 8}
    a = demo.generate(str(tmp_path / "low"), quiet=True, world_changes=low, **sizes)
    b = demo.generate(str(tmp_path / "high"), quiet=True, world_changes=high, **sizes)
    assert statistic(a.root) < statistic(b.root)


def test_the_worlds_per_camera_colour_statistics_differ():
    # Cameras of world 3 (colour_cast 0.25, a bluish tint) vs world 0 (0.13, no tint), drawn alike.
    def casts(world):
        return np.log(np.array([demo.make_camera(c, 64, 32, np.random.default_rng(c), world).gain
                                for c in range(1, 200)]))
    zero, three = casts(worlds.DEFAULT_WORLD), casts(worlds.draw_world(3))
    assert np.std(three, 0).mean() > 1.5 * np.std(zero, 0).mean()
    assert np.abs(three.mean(0) - np.log(worlds.draw_world(3).tint)).max() < 0.06
    assert np.abs(zero.mean(0)).max() < 0.04


def test_cameras_follow_the_worlds_ranges():
    world = worlds.resolve_world(0, {"blur": (0.5, 0.6), "noise": (0.01, 0.02), "person_scale": (0.6, 0.65),
                                     "low_res": (2, 3), "illumination": 0.1, "exposure": (0.9, 1.1),
                                     "gamma": (1.2, 1.3), "views": (50, 0.05, 0.05, 0.05)})
    for c in range(1, 40):
        camera = demo.make_camera(c, 64, 32, np.random.default_rng(c), world)
        assert 0.5 <= camera.blur <= 0.6 and 0.01 <= camera.noise <= 0.02 and 0.6 <= camera.scale <= 0.65
        assert camera.low_res in (2, 3) and camera.light[1] <= 0.1
        assert 0.9 <= camera.brightness <= 1.1 and 1.2 <= camera.gamma <= 1.3
    fronts = [demo.make_camera(c, 64, 32, np.random.default_rng(c), world).views[0] for c in range(1, 40)]
    assert np.mean(fronts) > 0.6  # cameras that see people mostly from the front


def test_backgrounds_follow_the_worlds_ranges():
    grey = worlds.resolve_world(0, {"background_saturation": (0, 0), "background_clutter": (0, 0)})
    vivid = worlds.resolve_world(0, {"background_saturation": (0.9, 1.0), "background_clutter": (0, 0)})

    def saturation(world):
        scenes = [demo.make_camera(c, 64, 32, np.random.default_rng(c), world).scene for c in range(1, 20)]
        return np.mean([np.median(cv2.cvtColor(s[:10], cv2.COLOR_RGB2HSV)[..., 1]) for s in scenes])

    assert saturation(grey) < 60 and saturation(vivid) > 200  # the wall's texture leaves grey a little colour


def test_people_follow_the_worlds_clothing():
    uniforms = worlds.resolve_world(0, {"clothing_neutral": (0, 0, 0), "clothing_hues": (0.3, 0.1),
                                        "clothing_saturation": (0.8, 0.9), "patterns": (0, 1, 0, 0, 0)})
    people = [demo.random_appearance(np.random.default_rng(i), uniforms) for i in range(100)]
    for person in people:
        h, s, _ = colorsys.rgb_to_hsv(*(np.array(person.top) / 255))
        assert 0.29 <= h <= 0.41 and 0.78 <= s <= 0.92, person.top
        assert person.pattern == "hstripes"
    neutral = worlds.resolve_world(0, {"clothing_neutral": (0.5, 0.25, 0.25)})
    greys = [demo.random_appearance(np.random.default_rng(i), neutral).top for i in range(100)]
    assert max(colorsys.rgb_to_hsv(*(np.array(c) / 255))[1] for c in greys) <= 0.25  # 0.2, and uint8 rounding


def test_a_worlds_manifest_holds_its_number_and_fields_and_another_world_is_refused(tmp_path, capsys):
    out = tmp_path / "d"
    assert demo.main(small_args(out, world=2) + ["--blur", "0", "0.5"]) == 0
    settings = json.load(open(out / "demo.json"))["settings"]
    assert settings["world"] == 2 and settings["blur"] == [0.0, 0.5]
    assert settings["tint"] == list(worlds.draw_world(2).tint)
    assert {k: settings[k] for k in SMALL} == SMALL
    capsys.readouterr()
    assert demo.main(small_args(out, world=2) + ["--blur", "0", "0.5"]) == 0
    assert "Reusing" in capsys.readouterr().out
    assert demo.main(small_args(out, world=2)) == 2
    assert "blur=[0.0, 0.5]" in capsys.readouterr().err
    assert demo.main(small_args(out)) == 2  # world 0's manifest has no world fields: still told apart
    assert "world=2 (now 0)" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--blur", "2", "1"],
     "`blur` (--blur) must be a range LOW HIGH with LOW <= HIGH. Received: blur=2.0 1.0"),
    (["--tint", "0", "1", "1"], "`tint` (--tint) must be three gains > 0"),
    (["--illumination", "1"], "`illumination` (--illumination) must be between 0 and 1"),
    (["--clothing_neutral", "0.5", "0.5", "0.5"], "`clothing_neutral` (--clothing_neutral) must be three"),
    (["--background_clutter", "1", "2.5"], "`background_clutter` (--background_clutter) must be whole"),
    (["--patterns", "0", "0", "0", "0", "0"], "`patterns` (--patterns) must be five weights"),
])
def test_bad_world_settings_are_refused_naming_the_flag(tmp_path, capsys, flags, message):
    assert demo.main(small_args(tmp_path / "d") + flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_world_flags_take_their_number_of_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.main(small_args(tmp_path / "d") + ["--tint", "1", "1"])
    assert exit_.value.code == 2 and "--tint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo.main(small_args(tmp_path / "d", world=-1))
    assert "--world" in capsys.readouterr().err


def test_the_readme_documents_every_flag_of_the_demo():
    from trinet.cli.docs import flag_table

    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = readme.split("<!-- demo flags:")[1].split("-->", 1)[1].split("<!-- end of demo flags -->")[0]
    assert block.strip() == flag_table(demo.build_parser()), "regenerate it with the command in its marker"
    for action in demo.build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert f"`{max(action.option_strings, key=len)}" in block, action.dest


def test_tracklets_are_whole_walks_with_camera_tracklet_and_frame_columns(tmp_path, capsys):
    """--tracklets: a walk past a camera is one tracklet of images_per_camera frames; a queried walk is in
    the query whole, and every query identity keeps a gallery tracklet in another camera."""
    from trinet.data.tracklets import group_tracklets

    assert demo.main(small_args(tmp_path / "video", images_per_camera=3) + ["--tracklets"]) == 0
    splits = {s: read_csv(str(tmp_path / "video" / f"demo_{s}.csv")) for s in FOLDERS}
    assert open(tmp_path / "video" / "demo_query.csv").readline() == "pid,path,camera,tracklet,frame\n"
    for split, dataset in splits.items():
        for fid, camera in zip(dataset.fids, dataset.cameras):
            assert parse(fid)[1] == camera  # the column is the camera of the Market-1501 name
        tracklets = group_tracklets(dataset)
        for name, rows in zip(tracklets.names, tracklets.rows):
            if dataset.pids[rows[0]] in ("-1", "0000"):
                assert len(rows) == 1
            else:
                assert dataset.frames[rows].tolist() == [0, 1, 2], (split, name)  # whole walks
    query, gallery = splits["query"], splits["test"]
    for pid, camera in set(zip(query.pids, query.cameras)):
        assert any(p == pid and c != camera for p, c in zip(gallery.pids, gallery.cameras))
        assert not any(p == pid and c == camera for p, c in zip(gallery.pids, gallery.cameras))
    # The image demo is unchanged by the new setting (its manifest has no `tracklets`), and the two differ.
    assert demo.main(small_args(tmp_path / "images", images_per_camera=3)) == 0
    manifest = json.loads((tmp_path / "images" / "demo.json").read_text())
    assert "tracklets" not in manifest["settings"]
    assert json.loads((tmp_path / "video" / "demo.json").read_text())["settings"]["tracklets"] == 1
    assert demo.main(small_args(tmp_path / "images", images_per_camera=3) + ["--tracklets"]) == 2
    assert "tracklets=0 (now 1)" in capsys.readouterr().err
