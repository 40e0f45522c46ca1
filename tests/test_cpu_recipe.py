"""experiments/reid_cpu_recipe.sh: the settings it passes to train.py, its errors, and a real run on a tiny
world of the demo generator (with its held-out validation identities); the demo trains with exactly it."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = os.path.join(REPO, "experiments", "reid_cpu_recipe.sh")


def recipe(*args, **env):
    environ = dict(os.environ, PYTHON=sys.executable, **env)
    environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environ["PATH"]
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=environ, cwd=REPO)


def flags_of(argv: list[str]) -> dict:
    """train.py's argv as {flag: value, or None for a switch}; a later flag wins, as in argparse."""
    out = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            out[arg] = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
    return out


def dry_run(*extra, **env):
    result = recipe("t.csv", "images", "exp", *extra, RECIPE_DRY_RUN="1", **env)
    assert result.returncode == 0, result.stderr
    return flags_of(result.stdout.splitlines())


def test_the_schedule_follows_the_run_length_and_later_flags_win():
    default = dry_run(RECIPE_PRECISION="float32")
    assert (default["--train_iterations"], default["--decay_start_iteration"], default["--val_frequency"],
            default["--checkpoint_frequency"]) == ("1000", "500", "250", "250")
    assert (default["--experiment_root"], default["--train_set"], default["--image_root"]) == \
        ("exp", "t.csv", "images")
    assert default["--val_fraction"] == "0.1" and default["--val_excluder"] == "market1501"
    assert "--mixed_precision" not in default
    longer = dry_run("--train_iterations=2000", "--val_excluder", "duke", "--seed", "3",
                     RECIPE_PRECISION="float32")
    assert (longer["--train_iterations"], longer["--decay_start_iteration"], longer["--val_frequency"],
            longer["--checkpoint_frequency"]) == ("2000", "1000", "500", "500")
    assert longer["--val_excluder"] == "duke" and longer["--seed"] == "3"
    assert dry_run(RECIPE_PRECISION="bfloat16")["--mixed_precision"] == "bfloat16"


@pytest.mark.parametrize("extra, env, message", [
    (["--train_iterations", "ten"], {}, "--train_iterations must be an integer >= 4 for this recipe. "
                                        "Received: 'ten'"),
    (["--train_iterations", "2"], {}, "Received: '2'"),
    (["--train_iterations"], {}, "Received: ''"),
    ([], {"RECIPE_PRECISION": "fp8"}, "RECIPE_PRECISION must be auto, float32 or bfloat16. Received: 'fp8'"),
])
def test_bad_settings_are_refused_before_training(extra, env, message):
    result = recipe("t.csv", "images", "exp", *extra, **env)
    assert result.returncode == 2 and message in result.stderr


def test_usage_without_the_three_arguments():
    result = recipe("t.csv", "images")
    assert result.returncode == 2 and "usage:" in result.stderr and "TRAIN_CSV IMAGE_ROOT EXPERIMENT_ROOT" \
        in result.stderr


def test_the_benchmark_measures_the_script():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import bench_recipe

    measured = {name: flags for name, flags, _ in bench_recipe.variants(600, 3)}["cpu recipe"]
    script = dry_run("--train_iterations", "600", RECIPE_PRECISION="float32")
    for flag in bench_recipe.RUN_FLAGS:
        script.pop(flag)
    script["--log_frequency"] = str(bench_recipe.LOG_FREQUENCY)  # the harness's speed windows
    assert measured == script


def test_the_demo_trains_with_exactly_the_script():
    demo = open(os.path.join(REPO, "experiments", "demo.sh")).read()
    calls = re.findall(r'reid_cpu_recipe\.sh"([^\n]*)', demo)
    assert calls == [' "$DATA/demo_train.csv" "$DATA" "$EXP"'], calls
    assert "train.py" not in demo  # no training of its own


@pytest.mark.slow
def test_the_recipe_trains_on_a_tiny_world_and_picks_its_model_on_held_out_identities(tmp_path):
    data = tmp_path / "world"
    made = subprocess.run([sys.executable, "-m", "trinet.demo", "--world", "3", "--out", str(data),
                           "--train_ids", "20", "--test_ids", "5", "--images_per_camera", "2", "--quiet"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    exp = tmp_path / "exp"
    args = [str(data / "demo_train.csv"), str(data), str(exp), "--train_iterations", "40",
            "--loading_threads", "2"]
    result = recipe(*args, RECIPE_PRECISION="float32")
    assert result.returncode == 0, result.stdout + result.stderr
    settings = json.load(open(exp / "args.json"))
    assert settings["train_iterations"] == 40 and settings["val_fraction"] == 0.1
    assert settings["head_name"] == "bnneck" and settings["model_name"] == "lunet"
    assert (exp / "model.keras").is_file() and (exp / "best.h5").is_file()
    log = open(exp / "train.log").read()
    assert "Validation: 2 identities held out of the training set" in log, log[:3000]
    assert re.findall(r"validation at iter (\d+):", log) == ["10", "20", "30", "40"], log[-3000:]
    again = recipe(*args, RECIPE_PRECISION="float32")
    assert again.returncode == 0 and "Training already finished" in again.stdout
