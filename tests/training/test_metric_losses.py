"""The metric-learning losses in training (issue 23): the objective they make, the refusals at parse time, a
short run of each through train.py, the proxies saved and resumed bit for bit with their own learning rate,
and two replicas that compute what one device does."""

import json
import os
import shutil

import h5py
import keras
import numpy as np
import pytest

from conftest import assert_same_checkpoints, train
from trinet.cli import train as train_cli
from trinet.config.registries import METRIC_LOSSES, metric_loss
from trinet.config.settings import TrainSettings
from trinet.training.objectives import build_objectives


def test_objectives_add_each_metric_loss_of_weight_above_zero():
    proxies = {"proxy_anchor": keras.Variable(np.zeros((3, 2), np.float32), name="p")}
    s = TrainSettings(ms_loss_weight=0.5, proxy_anchor_loss_weight=2.0)
    assert s.metric_losses == ("multi_similarity", "proxy_anchor") and s.proxy_losses == ("proxy_anchor",)
    assert [(o.name, o.weight) for o in build_objectives(s, proxies=proxies)] == [
        ("triplet", 1.0), ("multi_similarity", 0.5), ("proxy_anchor", 2.0)]
    with pytest.raises(ValueError, match="proxy_anchor loss needs its proxies"):
        build_objectives(s)


@pytest.mark.parametrize("changes, words", [
    ({"ms_alpha": 3.0}, "--ms_alpha 3.0 applies to --ms_loss_weight > 0"),
    ({"triplet_loss_weight": 0, "ms_loss_weight": 1, "sampler": "random"},
     "--ms_loss_weight needs positive pairs in each batch, which --sampler random"),
    ({"triplet_loss_weight": 0, "supcon_loss_weight": 1, "sampler": "class_balanced"},
     "--supcon_loss_weight needs positive pairs in each batch, which --sampler class_balanced"),
    ({"triplet_loss_weight": 0, "supcon_loss_weight": 1, "batch_k": 1}, "needs --batch_k at least 2"),
    ({"sampler": "class_balanced"}, "--sampler class_balanced gives batches without guaranteed positives"),
    ({"proxy_anchor_loss_weight": 1, "mixed_precision": "float16"},
     "--mixed_precision float16 .* does not go with --proxy_anchor_loss_weight"),
    ({"proxy_lr_multiplier": 10.0}, "--proxy_lr_multiplier 10.0 applies to the proxy losses"),
    ({"contrastive_loss_weight": 1, "contrastive_pos_margin": 1.0, "contrastive_neg_margin": 0.5},
     "--contrastive_pos_margin 1.0 must be below --contrastive_neg_margin 0.5"),
    ({"supcon_loss_weight": 1, "supcon_temperature": 0.0}, r"--supcon_temperature must be in \(0, inf\)"),
    ({"circle_pair_loss_weight": 1, "circle_pair_margin": 1.5}, r"--circle_pair_margin must be in \[0, 1\]"),
    ({"triplet_loss_weight": 0}, "nothing to train"),
])
def test_invalid_metric_loss_settings_are_refused(changes, words):
    with pytest.raises(Exception, match=words):
        TrainSettings(train_set="x.csv", **changes).validate()


@pytest.mark.parametrize("changes", [
    {"triplet_loss_weight": 0, "proxy_anchor_loss_weight": 1, "sampler": "class_balanced"},
    {"triplet_loss_weight": 0, "proxy_nca_loss_weight": 1, "sampler": "random", "batch_k": 1},
    {"triplet_loss_weight": 0, "ms_loss_weight": 1, "ms_beta": 40.0, "head_name": "bnneck"},
    {"contrastive_loss_weight": 0.5, "id_loss_weight": 1, "mixed_precision": "bfloat16"},
])
def test_valid_metric_loss_settings_pass(changes):
    TrainSettings(train_set="x.csv", **changes).validate()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(METRIC_LOSSES))
def test_each_loss_trains_alone_through_train_py(tmp_path, image_set, name):
    """Three iterations of each loss alone (triplet weight 0) on the TINY run: the objective and the steps are
    logged, and the model is written."""
    weight = metric_loss(name).weight
    sampler = ["--sampler", "class_balanced", "--batch_p", "2"] if metric_loss(name).proxies else []
    assert train(tmp_path / "e", image_set, "--triplet_loss_weight", "0", f"--{weight}", "1",
                 "--train_iterations", "3", "--test_metric", "cosine", *sampler) == 0
    log = open(tmp_path / "e" / "train.log").read()
    assert f"objective: 1 x {name})" in log and "iter:      3, loss" in log
    assert (tmp_path / "e" / "model.keras").exists()


def test_a_pair_loss_and_a_proxy_loss_train_with_bnneck_and_the_triplet_loss(tmp_path, image_set):
    assert train(tmp_path / "e", image_set, "--head_name", "bnneck", "--ms_loss_weight", "0.5",
                 "--proxy_nca_loss_weight", "0.5", "--train_iterations", "3") == 0
    log = open(tmp_path / "e" / "train.log").read()
    assert "objective: 1 x triplet + 0.5 x multi_similarity + 0.5 x proxy_nca" in log


@pytest.mark.slow
def test_proxies_are_saved_and_resume_bit_for_bit(tmp_path, image_set):
    """Proxy-Anchor with the class-balanced sampler: a run resumed from its checkpoint at 3 ends with the same
    weights, optimizer states (the proxies' own included) and proxies as the uninterrupted run; the proxies
    moved."""
    reference = tmp_path / "reference"
    flags = ["--triplet_loss_weight", "0", "--proxy_anchor_loss_weight", "1", "--sampler", "class_balanced",
             "--batch_p", "2", "--train_iterations", "6", "--checkpoint_frequency", "3", "--detailed_logs"]
    assert train(reference, image_set, *flags) == 0
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-6.h5", "model.keras"):
        os.remove(resumed / name)
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    groups = assert_same_checkpoints(reference / "checkpoint-6.h5", resumed / "checkpoint-6.h5")
    assert groups == ["model", "optimizer", "training"]
    np.testing.assert_array_equal(np.load(resumed / "detailed_losses.npy"),
                                  np.load(reference / "detailed_losses.npy"))
    with h5py.File(reference / "checkpoint-0.h5") as a, h5py.File(reference / "checkpoint-6.h5") as b:
        paths = {b["training"][key].attrs["path"]: key for key in b["training"]}
        assert list(paths) == ["proxy_anchor_proxies"]
        before, after = (np.asarray(f["training"][paths["proxy_anchor_proxies"]][()]) for f in (a, b))
        assert before.shape == (6, 8) and not np.array_equal(before, after)
        assert any(b["optimizer"][key].attrs["path"].startswith("adam_proxies") for key in b["optimizer"])
    assert json.load(open(reference / "args.json"))["proxy_lr_multiplier"] == 100.0


def test_the_proxies_learn_at_their_multiple_of_the_rate():
    from trinet.training.trainer import Trainer

    s = TrainSettings(model_name="lunet", embedding_dim=4, batch_p=2, batch_k=2, net_input_height=32,
                      net_input_width=16, seed=1, triplet_loss_weight=0, proxy_anchor_loss_weight=1,
                      proxy_lr_multiplier=40.0, learning_rate=1e-3)
    trainer = Trainer(s, 3)
    assert trainer.proxies["proxy_anchor"].shape == (3, 4)
    main, proxies = (float(keras.ops.convert_to_numpy(o.learning_rate))
                     for o in (trainer.optimizer, trainer.proxy_optimizer))
    assert proxies == pytest.approx(40 * main)
    updated = [v for optimizer, group in trainer.updates("new") for v in group if optimizer is
               trainer.proxy_optimizer]
    assert updated == [trainer.proxies["proxy_anchor"]]


@pytest.mark.slow
def test_two_replicas_compute_what_one_device_computes_with_a_pair_and_a_proxy_loss(tmp_path):
    """Multi-similarity and Proxy-Anchor (with the identification loss) on two logical CPU devices with
    --cross_replica_mining against one device: one step from the same state gives the same loss, and the
    same update of the proxies and of the model (as tests/training/test_devices.py checks the recipe)."""
    from test_devices import _forward, _prefixed, _relative_error, steps

    changes = dict(center_loss_weight=0.0, ms_loss_weight=1.0, proxy_anchor_loss_weight=1.0,
                   batch_norm="keras")
    one = steps(tmp_path, "one", steps=4, options=["--keep", "0,2"], **changes)
    two = steps(tmp_path, "two", steps=4, options=["--step_from", str(tmp_path / "one.npz")],
                distribute="mirrored", cross_replica_mining=True, sync_batchnorm=True, **changes)
    assert int(two["replicas"]) == 2
    for k in (0, 2):
        start, expected = _prefixed(one, f"state{k}:"), _prefixed(one, f"state{k + 1}:")
        actual = _prefixed(two, f"from{k}:")
        assert expected.keys() == actual.keys() and "proxy_anchor_proxies" in actual
        np.testing.assert_allclose(float(two[f"loss_from{k}"]), one["losses"][k], rtol=1e-5)
        assert _relative_error(start, expected, actual, ["proxy_anchor_proxies"]) <= 1e-3
        trained = [path for path in expected if not _forward(path)]
        assert _relative_error(start, expected, actual, trained) <= 1e-2, k
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=0.05)
