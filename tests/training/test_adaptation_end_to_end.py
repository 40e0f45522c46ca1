"""Learning without labels end to end on generated data: a model trained with the labels of one demo world
(`trinet.demo`, world 0), adapted to another world's unlabeled training images (world 1: other cameras, light
and people), ranks that world's query/gallery split better than before (direct transfer). The figures at
benchmark size are benchmarks/bench_adaptation.py's."""

import os

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

#: LuNet at 64x32, as the demo trains, on small batches so that the test stays short.
FLAGS = ["--model_name", "lunet", "--head_name", "fc1024", "--embedding_dim", "64", "--batch_p", "8",
         "--batch_k", "4", "--net_input_height", "64", "--net_input_width", "32", "--pre_crop_height", "72",
         "--pre_crop_width", "36", "--flip_augment", "--crop_augment", "--loading_threads", "2",
         "--seed", "1", "--log_frequency", "50", "--histogram_frequency", "0"]


def _score(exp, world):
    from trinet import Embedder
    from trinet.data.datasets import read_csv
    from trinet.evaluation.excluders import get_excluder
    from trinet.evaluation.metrics import evaluate

    query, gallery = read_csv(world.query_csv, world.root), read_csv(world.test_csv, world.root)
    embedder = Embedder.from_experiment(str(exp))
    results = evaluate(embedder.embed(query.paths()), embedder.embed(gallery.paths()), query.pids,
                       gallery.pids, get_excluder("market1501")(query.fids, gallery.fids))
    return results.mean_ap


def test_adapting_to_another_worlds_unlabeled_images_beats_direct_transfer(tmp_path):
    from trinet.cli.train import main
    from trinet.demo import generate

    sizes = dict(train_ids=40, test_ids=30, images_per_camera=3, junk=10, distractors=10, height=64,
                 width=32, quiet=True)
    source = generate(str(tmp_path / "world0"), world=0, **sizes)
    target = generate(str(tmp_path / "world1"), world=1, **sizes)
    assert main(["--experiment_root", str(tmp_path / "source"), "--train_set", source.train_csv,
                 "--image_root", source.root, *FLAGS, "--learning_rate", "1e-3", "--train_iterations", "300",
                 "--decay_start_iteration", "150"]) == 0
    assert main(["--experiment_root", str(tmp_path / "adapted"), "--unlabeled_set", target.train_csv,
                 "--unlabeled_image_root", target.root, "--initial_checkpoint", str(tmp_path / "source"),
                 *FLAGS, "--learning_rate", "3e-4", "--train_iterations", "300",
                 "--recluster_frequency", "100", "--memory_loss_weight", "1", "--cluster_camera_norm",
                 "--cluster_k1", "10",
                 "--cluster_eps", "0.5", "--cluster_min_samples", "2"]) == 0
    log = open(tmp_path / "adapted" / "train.log").read()
    assert log.count("Clustering at iteration") == 3 and "a diagnostic, not used for training" in log
    # measured: 0.173 -> 0.283 (seed 1), 0.151 -> 0.204 (seed 2); with 150 iterations the gain was not stable
    direct, adapted = _score(tmp_path / "source", target), _score(tmp_path / "adapted", target)
    print(f"target mAP: direct transfer {direct:.3f}, adapted {adapted:.3f}")
    assert adapted > direct + 0.03, (direct, adapted)
    assert os.path.isfile(tmp_path / "adapted" / "model.keras")


def test_the_unsupervised_recipe_trains_on_a_market_layout_and_evaluates(tmp_path):
    import json
    import subprocess
    import sys

    def run(*cmd, **env):
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                                env=dict(os.environ, PYTHON=sys.executable, **env))
        assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    data = tmp_path / "Market-like"
    run(sys.executable, "-m", "trinet.demo", "--out", str(data), "--train_ids", "20", "--test_ids", "10",
        "--images_per_camera", "2", "--junk", "5", "--distractors", "5", "--quiet")
    run(sys.executable, os.path.join(REPO, "data", "convert.py"), "market1501", str(data), "--out",
        str(tmp_path / "csv"))
    weights = str(tmp_path / "lunet.weights.h5")  # stands in for ImageNet weights (no network in tests)
    run(sys.executable, "-c", "from trinet.models.backbones.catalog import build_backbone; "
        f"build_backbone('lunet').save_weights({weights!r})")
    exp = tmp_path / "exp"
    out = run("bash", os.path.join(REPO, "experiments", "usl_market1501.sh"), str(data), str(exp),
              "--model_name", "lunet", "--initial_checkpoint", weights, "--net_input_height", "64",
              "--net_input_width", "32", "--batch_p", "4", "--batch_k", "4", "--train_iterations", "20",
              "--recluster_frequency", "10", "--lr_milestones", "10", "--val_frequency", "10",
              "--checkpoint_frequency", "10", "--cluster_min_samples", "2", "--cluster_k1", "6",
              "--loading_threads", "2", "--seed", "1", CSV_PREFIX=str(tmp_path / "csv" / "market1501"))
    assert "Market-1501 without labels" in out.stdout
    args = json.load(open(exp / "args.json"))
    assert args["train_set"] is None and args["memory_loss_weight"] == 1 and args["triplet_loss_weight"] == 0
    log = open(exp / "train.log").read()
    assert "objective: 1 x memory" in log and log.count("Clustering at iteration") == 2
    assert "validation at iter 20" in log
    assert json.load(open(exp / "evaluation.json"))["num_skipped"] == 0
