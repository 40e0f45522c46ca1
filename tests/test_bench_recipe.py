"""benchmarks/bench_recipe.py's pieces: the digits split, the tasks' flags, the baselines and the tables.

The harness itself trains networks (minutes); `python benchmarks/bench_recipe.py --quick` is its smoke test.
"""

import math
import os
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import bench_recipe  # noqa: E402
from trinet.data.datasets import read_csv  # noqa: E402


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return bench_recipe.digits_task(str(tmp_path_factory.mktemp("work")))


def test_digits_split_trains_on_4_to_9_and_tests_on_the_unseen_0_to_3():
    target = np.array([0, 4, 9, 3, 5, 1, 2, 8, 6, 7, 0])
    train, test = bench_recipe.digits_split(target)
    assert sorted(set(target[train])) == [4, 5, 6, 7, 8, 9]
    assert sorted(set(target[test])) == [0, 1, 2, 3]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(target)))


def test_digits_task_writes_every_digit_once_with_its_class(digits):
    from sklearn.datasets import load_digits

    reference = load_digits()
    train, test = read_csv(digits.train_csv, digits.root), read_csv(digits.query_csv, digits.root)
    assert len(train) + len(test) == len(reference.target) == 1797
    assert set(train.pids) == {"4", "5", "6", "7", "8", "9"} and set(test.pids) == {"0", "1", "2", "3"}
    assert digits.query_csv == digits.gallery_csv and digits.excluder == "diagonal"
    fid = test.fids[5]
    index = int(os.path.basename(fid).split("_")[0])
    image = cv2.imread(os.path.join(digits.root, fid))
    assert image.shape == (32, 32, 3) and test.pids[5] == str(reference.target[index])
    # 4x nearest neighbour, lossless: the pixel baseline at 8x8 gives back scikit-learn's values.
    from trinet.tools.baselines import pixel_embeddings

    pixels = pixel_embeddings(test.subset(np.arange(len(test)) == 5), (8, 8)).reshape(8, 8, 3)[..., 0]
    assert np.allclose(pixels * 16, reference.images[index], atol=16 / 255 + 1e-6)


def test_the_digits_flags_change_only_what_the_data_forces():
    for name, flags, _ in bench_recipe.variants(1000, 3):
        world = bench_recipe.task_flags(flags, bench_recipe.Task("world1", "r", "t", "q", "g", "market1501"))
        assert world == flags
        changed = bench_recipe.task_flags(flags, bench_recipe.Task("digits", "r", "t", "q", "q", "diagonal"))
        assert "--flip_augment" not in changed
        assert (changed["--net_input_height"], changed["--net_input_width"]) == ("32", "32")
        assert (changed["--batch_p"], changed["--batch_k"]) == ("6", "10")
        assert ("--pre_crop_height" in changed) == ("--pre_crop_height" in flags), name
        kept = {k: v for k, v in flags.items() if k not in changed or changed[k] == v}
        assert set(flags) - set(kept) - {"--flip_augment"} <= {*bench_recipe.DIGITS_FLAGS,
                                                               *bench_recipe.DIGITS_PRE_CROP}


def test_baselines_score_a_tiny_world_and_the_digits(tmp_path, digits, monkeypatch):
    monkeypatch.setattr(bench_recipe, "QUICK_SIZES", dict(train_ids=12, test_ids=10, images_per_camera=2,
                                                          junk=5, distractors=5))
    world = bench_recipe.world_task(str(tmp_path), 2, quick=True)
    assert os.path.basename(world.root) == "data_world2" and world.excluder == "market1501"
    scores = bench_recipe.baseline_scores(world, [world])
    for name in (bench_recipe.PIXELS, "histograms + LDA"):
        assert 0 < scores[name]["world2"]["mAP"] <= 1 and 0 <= scores[name]["world2"]["rank1"] <= 1
    pixels = bench_recipe.baseline_scores(digits, [digits])[bench_recipe.PIXELS]["digits"]
    assert pixels["mAP"] > 0.6  # raw pixels rank unseen digits well: the bar a network must clear
    assert "digits" not in bench_recipe.baseline_scores(digits, [digits])["histograms + LDA"]


def records():
    """Hand-made runs: variant A on worlds 0 and 1 with two seeds each, scored on both worlds."""
    scores = {(0, 0): {"world0": 0.6, "world1": 0.2}, (0, 1): {"world0": 0.8, "world1": 0.4},
              (1, 0): {"world0": 0.1, "world1": 0.5}, (1, 1): {"world0": 0.3, "world1": 0.7}}
    runs = [{"task": f"world{w}", "seed": s, "scores": {t: {"mAP": m, "rank1": m} for t, m in v.items()}}
            for (w, s), v in scores.items()]
    return bench_recipe.records_of({"A": runs})


def test_cells_are_means_and_sample_deviations_over_seeds():
    rows = records()
    assert len(rows) == 8
    m, sd, n = bench_recipe.cell(rows, "A", "world0", "world0", "mAP")
    assert (m, n) == pytest.approx((0.7, 2)) and sd == pytest.approx(math.sqrt(0.02))
    assert bench_recipe.cell(rows, "A", "world1", "world0", "mAP")[0] == pytest.approx(0.2)
    assert math.isnan(bench_recipe.cell(rows, "B", "world0", "world0", "mAP")[0])


def test_overall_is_the_mean_of_the_world_means_with_their_spread():
    assert bench_recipe.overall([(0.7, 0.1, 2), (0.6, 0.3, 2)]) == pytest.approx((0.65, math.sqrt(0.005)))
    assert bench_recipe.overall([(0.7, 0.1, 2), (math.nan, math.nan, 0)]) == pytest.approx((0.7, 0.1))


def test_the_tables_show_each_world_overall_and_the_pixel_baseline():
    rows = records()
    baselines = {"pixels": {"world0": {"world0": {"mAP": 0.01}}, "world1": {"world1": {"mAP": 0.03}}}}
    lines = bench_recipe.same_world_table(rows, ["A"], baselines, ["world0", "world1"], "mAP")
    assert [c.strip() for c in lines[2].split("|")] == ["A", "70.0 ± 14.1", "60.0 ± 14.1", "65.0 ±  7.1", "4"]
    pixels = [c.strip() for c in lines[3].split("|")]
    assert pixels == ["pixels", "1.0 ±  0.0", "3.0 ±  0.0", "2.0 ±  1.4", "-"]
    m, sd, same = bench_recipe.cross_world_summary(rows, "A", ["world0", "world1"], "mAP")
    assert (m, same) == pytest.approx((0.25, 0.65)) and sd == pytest.approx(math.sqrt(0.005))
    matrix = bench_recipe.cross_world_table(rows, "A", ["world0", "world1"], "mAP")
    assert [c.strip() for c in matrix[1].split("|")] == ["world0", "70.0", "30.0", "30.0", "70.0"]


def test_quick_resolves_to_a_reduced_grid():
    args = bench_recipe.resolve(bench_recipe.build_parser().parse_args(["--quick"]))
    assert (args.worlds, args.seeds, args.iterations) == ([0, 1], [0], 100)
    assert args.variants == ["triplet", "full recipe"] and args.work.endswith("bench_recipe_quick")
    full = bench_recipe.resolve(bench_recipe.build_parser().parse_args(["--worlds", "0", "1", "2", "3"]))
    assert (full.worlds, full.seeds, full.iterations) == ([0, 1, 2, 3], [0, 1, 2], 1000)


def test_paired_differences_match_only_the_same_world_and_seed():
    def rec(variant, world, seed, m, evaluated=None):
        return {"variant": variant, "train": world, "eval": evaluated or world, "seed": seed, "mAP": m,
                "rank1": m}

    records = [rec("a", "world0", 0, 0.5), rec("b", "world0", 0, 0.4), rec("a", "world1", 0, 0.3),
               rec("b", "world1", 0, 0.4), rec("a", "world1", 1, 0.9),  # no partner: left out
               rec("a", "world0", 0, 0.99, evaluated="world1"), rec("b", "world0", 0, 0.0, "world1")]
    d = bench_recipe.paired(records, "a", "b", ["world0", "world1"], "mAP")
    assert d["n"] == 2 and d["wins"] == 1
    assert math.isclose(d["mean"], 0.0, abs_tol=1e-12) and math.isclose(d["sd"], math.sqrt(0.02))
    lines = bench_recipe.paired_table(records, ["a", "b"], "b", ["world0", "world1"], "mAP")
    assert len(lines) == 2 and "1 of 2" in lines[1] and "+0.0 ± 14.1" in lines[1]
