"""The whole workflow as a user runs it: generated data in Market-1501's layout, converted with
data/convert.py, trained, embedded and evaluated by the Market-1501 recipe scripts (the paper's, compared
with the pixel baseline, and the Bag of Tricks' with validation during training). The only end-to-end
proof of the commands together: slow, but run in CI."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def run(*cmd, **kw):
    env = dict(os.environ, PYTHON=sys.executable, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ["PATH"])
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=kw.get("cwd", REPO))
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """`(release folder, CSV prefix, LuNet weights file)`: a small generated Market-1501 release, converted.
    The Keras weights file for the backbone stands in for ImageNet weights (no network in tests)."""
    tmp_path = tmp_path_factory.mktemp("market")
    data = tmp_path / "Market-like"
    run(sys.executable, "-m", "trinet.demo", "--out", str(data), "--train_ids", "30", "--test_ids", "20",
        "--images_per_camera", "3", "--junk", "20", "--distractors", "20", "--quiet")
    csvs = tmp_path / "csv"
    converted = run(sys.executable, os.path.join(REPO, "data", "convert.py"), "market1501", str(data),
                    "--out", str(csvs))
    assert "market1501_test.csv" in converted.stdout
    weights = str(tmp_path / "lunet.weights.h5")
    run(sys.executable, "-c", "import sys; from trinet.models.backbones.catalog import build_backbone; "
        f"build_backbone('lunet').save_weights({weights!r})")
    return data, str(csvs / "market1501"), weights


def test_recipe_on_generated_market_layout(tmp_path, market):
    data, prefix, weights = market

    exp = tmp_path / "exp"
    env_prefix = dict(CSV_PREFIX=prefix)
    cmd = ["bash", os.path.join(REPO, "experiments", "market1501_train.sh"), str(data), str(exp),
           "--model_name", "lunet", "--initial_checkpoint", weights, "--net_input_height", "64",
           "--net_input_width", "32", "--pre_crop_height", "72", "--pre_crop_width", "36", "--batch_p", "8",
           "--train_iterations", "150", "--decay_start_iteration", "100", "--learning_rate", "1e-3",
           "--checkpoint_frequency", "50", "--log_frequency", "25", "--seed", "1", "--loading_threads", "2"]
    env = dict(os.environ, PYTHON=sys.executable, **env_prefix)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.load(open(exp / "args.json"))["initial_checkpoint"] == weights
    for name in ("model.keras", "market1501_query_embeddings.h5", "market1501_test_embeddings.h5",
                 "evaluation.json", "evaluation_reranked.json"):
        assert (exp / name).is_file(), name
    trained = json.load(open(exp / "evaluation.json"))
    assert trained["settings"]["use_market_ap"] and trained["num_skipped"] == 0

    # the pixel baseline through the same evaluation
    for split in ("query", "test"):
        run(sys.executable, "-m", "trinet.tools.baselines", "--dataset", f"{prefix}_{split}.csv",
            "--image_root", str(data),
            "--filename", str(tmp_path / f"pixels_{split}.h5"), "--quiet")
    run(sys.executable, os.path.join(REPO, "evaluate.py"), "--excluder", "market1501", "--use_market_ap",
        "--query_dataset", f"{prefix}_query.csv", "--query_embeddings", str(tmp_path / "pixels_query.h5"),
        "--gallery_dataset", f"{prefix}_test.csv", "--gallery_embeddings", str(tmp_path / "pixels_test.h5"),
        "--filename", str(tmp_path / "pixels.json"), "--quiet")
    pixels = json.load(open(tmp_path / "pixels.json"))
    assert trained["mAP"] > pixels["mAP"] + 0.15, (trained["mAP"], pixels["mAP"])
    assert trained["top-1"] > pixels["top-1"] + 0.15

    # running the recipe again reuses the finished training
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert again.returncode == 0 and "Training already finished" in again.stdout


def test_bag_of_tricks_recipe_validates_and_evaluates_the_best_model(tmp_path, market):
    data, prefix, weights = market
    exp = tmp_path / "bot"
    cmd = ["bash", os.path.join(REPO, "experiments", "bot_market1501_train.sh"), str(data), str(exp),
           "--model_name", "lunet", "--initial_checkpoint", weights, "--net_input_height", "64",
           "--net_input_width", "32", "--pad_crop", "3", "--batch_p", "8", "--train_iterations", "60",
           "--warmup_iterations", "10", "--lr_milestones", "40,50", "--val_frequency", "30",
           "--learning_rate", "1e-3", "--checkpoint_frequency", "30", "--log_frequency", "10", "--seed", "1",
           "--loading_threads", "2"]
    env = dict(os.environ, PYTHON=sys.executable, CSV_PREFIX=prefix)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    log = open(exp / "train.log").read()
    assert "validation at iter 30" in log and "validation at iter 60" in log
    assert "objective: 1 x triplet + 1 x id + 0.0005 x center" in log
    for name in ("best.h5", "model.keras", "evaluation.json", "evaluation_best.json"):
        assert (exp / name).is_file(), name
    for name in ("evaluation.json", "evaluation_best.json"):
        result = json.load(open(exp / name))
        assert result["settings"]["metric"] == "cosine" and result["num_skipped"] == 0  # the stored metric


def test_osnet_recipe_trains_from_scratch_and_evaluates(tmp_path, market):
    data, prefix, _ = market
    exp = tmp_path / "osnet"
    cmd = ["bash", os.path.join(REPO, "experiments", "osnet_market1501_train.sh"), str(data), str(exp),
           "--model_name", "osnet_x0_25", "--net_input_height", "64", "--net_input_width", "32",
           "--batch_p", "8",
           "--train_iterations", "40", "--val_frequency", "20", "--checkpoint_frequency", "20",
           "--log_frequency", "10", "--seed", "1", "--loading_threads", "2"]
    env = dict(os.environ, PYTHON=sys.executable, CSV_PREFIX=prefix)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    args = json.load(open(exp / "args.json"))
    assert args["model_name"] == "osnet_x0_25" and args["initial_checkpoint"] is None
    assert "objective: 1 x id" in open(exp / "train.log").read()
    evaluation = json.load(open(exp / "evaluation.json"))
    assert evaluation["settings"]["metric"] == "cosine" and evaluation["num_skipped"] == 0
