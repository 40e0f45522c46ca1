"""experiments/retrieval_recipe.sh and the benchmark recipes cub200_*.sh, cars196_*.sh, sop_*.sh: the settings
they pass to train.py (valid, later flags winning), their errors, and a real run of the CPU recipe."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, write_image_set
from test_cpu_recipe import flags_of

EXPERIMENTS = os.path.join(REPO, "experiments")
SCRIPT = os.path.join(EXPERIMENTS, "retrieval_recipe.sh")
#: Each benchmark's script, its converter name and its Recall@K list.
BENCHMARKS = {"cub200_proxy_anchor.sh": ("cub200", "1,2,4,8"),
              "cars196_proxy_anchor.sh": ("cars196", "1,2,4,8"),
              "sop_proxy_anchor.sh": ("sop", "1,10,100,1000")}


def run(script, *args, **env):
    environ = dict(os.environ, PYTHON=sys.executable, **env)
    environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environ["PATH"]
    return subprocess.run(["bash", os.path.join(EXPERIMENTS, script), *args], capture_output=True, text=True,
                          env=environ, cwd=REPO)


def dry_run(*extra, paths=("t.csv", "images", "exp"), **env):
    result = run("retrieval_recipe.sh", *paths, *extra, RECIPE_DRY_RUN="1", RECIPE_PRECISION="float32", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def settings_of(argv):
    """The TrainSettings train.py would make of `argv` (its parse-time checks included)."""
    from trinet.cli import train

    return train.resolve_settings(train.build_parser(), argv)


def test_the_recipe_schedule_follows_the_run_length_and_later_flags_win(tmp_path):
    default = flags_of(dry_run())
    assert (default["--train_iterations"], default["--decay_start_iteration"], default["--warmup_iterations"],
            default["--val_frequency"]) == ("1000", "500", "100", "250")
    assert default["--val_excluder"] == "diagonal" and "--flip_augment" in default
    changed = flags_of(dry_run("--train_iterations=400", "--net_input_height", "32", "--seed", "5"))
    assert (changed["--train_iterations"], changed["--decay_start_iteration"], changed["--net_input_height"],
            changed["--seed"]) == ("400", "200", "32", "5")
    assert "--flip_augment" not in flags_of(dry_run(RECIPE_NO_FLIP="1"))
    (tmp_path / "t.csv").write_text("0,a.jpg\n")
    s = settings_of(dry_run("--batch_k", "8", paths=(str(tmp_path / "t.csv"), str(tmp_path), "exp")))
    assert s.batch_k == 8 and s.head_name == "bnneck" and s.embedding_metric == "cosine"


@pytest.mark.parametrize("extra, env, message", [
    (["--train_iterations", "5"], {}, "--train_iterations must be an integer >= 10 for this recipe. "
                                      "Received: '5'"),
    ([], {"RECIPE_PRECISION": "fp8"}, "RECIPE_PRECISION must be auto, float32 or bfloat16. Received: 'fp8'"),
])
def test_bad_recipe_settings_are_refused_before_training(extra, env, message):
    result = run("retrieval_recipe.sh", "t.csv", "images", "exp", *extra, **env)
    assert result.returncode == 2 and message in result.stderr
    usage = run("retrieval_recipe.sh", "t.csv")
    assert usage.returncode == 2 and "TRAIN_CSV IMAGE_ROOT EXPERIMENT_ROOT" in usage.stderr


def test_the_benchmark_measures_the_script():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import bench_losses

    script = flags_of(dry_run("--train_iterations", "600"))
    for flag in bench_losses.RUN_FLAGS:
        script.pop(flag)
    assert bench_losses.recipe_flags(600) == script


@pytest.mark.parametrize("script", sorted(BENCHMARKS))
def test_each_benchmark_recipe_is_valid_and_follows_its_protocol(tmp_path, script):
    from trinet.evaluation.retrieval import BENCHMARK_KS

    name, ks = BENCHMARKS[script]
    assert ks == ",".join(map(str, BENCHMARK_KS[name]))
    missing = run(script, str(tmp_path), str(tmp_path / "exp"), CSV_PREFIX=str(tmp_path / name))
    assert missing.returncode == 2 and f"{name}_train.csv not found" in missing.stderr
    for split in ("train", "test"):
        (tmp_path / f"{name}_{split}.csv").write_text("0,a.jpg\n")
    result = run(script, str(tmp_path), str(tmp_path / "exp"), "--seed", "2", CSV_PREFIX=str(tmp_path / name),
                 RECIPE_DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    s = settings_of(result.stdout.splitlines())
    assert (s.model_name, s.embedding_dim, s.initial_checkpoint, s.seed) == ("resnet50", 512, "imagenet", 2)
    assert s.metric_losses == ("proxy_anchor",) and s.proxy_lr_multiplier == 100
    assert s.triplet_loss_weight == 0
    assert s.lr_milestones[-1] < s.train_iterations and s.freeze_backbone_iterations < s.lr_milestones[1]
    text = open(os.path.join(EXPERIMENTS, script)).read()
    assert re.search(r"Recall@1 \d+\.\d", text) and "Hardware:" in text
    assert '"recall@$KS"' in open(os.path.join(EXPERIMENTS, "retrieval_benchmark.sh")).read()


def test_every_benchmark_recipe_is_tested():
    scripts = {os.path.basename(p) for pattern in ("cub200_*.sh", "cars196_*.sh", "sop_*.sh")
               for p in glob.glob(os.path.join(EXPERIMENTS, pattern))}
    assert scripts == set(BENCHMARKS)


@pytest.mark.slow
def test_the_recipe_trains_and_picks_its_model_on_held_out_classes(tmp_path):
    csv = write_image_set(str(tmp_path), identities=10, per_identity=4, size=(32, 32))
    exp = tmp_path / "exp"
    args = [csv, str(tmp_path), str(exp), "--train_iterations", "12", "--net_input_height", "32",
            "--net_input_width", "32", "--batch_p", "4", "--loading_threads", "2"]
    result = run("retrieval_recipe.sh", *args, RECIPE_PRECISION="float32")
    assert result.returncode == 0, result.stdout + result.stderr
    settings = json.load(open(exp / "args.json"))
    assert settings["val_excluder"] == "diagonal" and settings["train_iterations"] == 12
    assert (exp / "model.keras").is_file() and (exp / "best.h5").is_file()
    log = open(exp / "train.log").read()
    assert re.findall(r"validation at iter (\d+):", log) == ["3", "6", "9", "12"], log[-3000:]
