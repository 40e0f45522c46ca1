"""benchmarks/bench_backbones.py's pieces: the rows' flags and the refusals. The harness itself trains
networks (minutes); `python benchmarks/bench_backbones.py --seeds 0 --iterations 100 --small_data` is
its smoke test."""

import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import bench_backbones  # noqa: E402


def test_every_row_trains_the_same_recipe_on_its_own_backbone():
    flags = {row: bench_backbones.row_flags(row, 300) for row in bench_backbones.ROWS}
    names = [f["--model_name"] for f in flags.values()]
    assert names == ["lunet", "osnet_x0_25", "osnet_x1_0", "resnet50", "resnet50_ibn_a"]
    common = bench_backbones.common_flags(300)
    for f in flags.values():
        assert {k: v for k, v in f.items() if k != "--model_name"} == \
            {k: v for k, v in common.items() if k != "--model_name"}
    assert common["--train_iterations"] == "300" and common["--head_name"] == "bnneck"


def test_any_model_name_is_a_row_and_others_are_refused():
    assert bench_backbones.row_flags("osnet_x0_5", 100)["--model_name"] == "osnet_x0_5"
    with pytest.raises(SystemExit, match="'vit' is neither a row"):
        bench_backbones.row_flags("vit", 100)
    with pytest.raises(SystemExit):
        bench_backbones.main(["--iterations", "50"])
