"""Deep mutual learning (--mutual_models): the mutual terms by hand, a run of two networks that resumes bit
for bit and saves both, and the refusals."""

import math
import os
import re
import shutil

import h5py
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_same_checkpoints, train
from trinet.config.settings import TrainSettings
from trinet.training.mutual import mutual_terms


def test_mutual_terms_average_the_kl_to_the_other_networks():
    dists = tf.constant([[0.0, 1.0], [1.0, 0.0]])
    outputs = [{"logits": tf.constant([[0.0, 0.0]]), "dists": dists},  # (1/2, 1/2)
               {"logits": tf.constant([[0.0, math.log(3.0)]]), "dists": dists},  # (1/4, 3/4)
               {"logits": tf.constant([[0.0, 0.0]]), "dists": 2.0 * dists}]
    terms = mutual_terms(outputs, 0, 1.0, 1.0)
    kl_second = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)  # KL(p_1 || p_0)
    np.testing.assert_allclose(terms["mutual_logits"], [(kl_second + 0.0) / 2], atol=1e-6)
    np.testing.assert_allclose(terms["mutual_distance"], [0.0, 0.0], atol=1e-7)  # scaled copies match
    assert set(mutual_terms(outputs, 1, 0.0, 1.0)) == {"mutual_distance"}


@pytest.mark.parametrize("changes, words", [
    ({"mutual_models": 2}, "needs the classifiers (--id_loss_weight > 0)"),
    ({"mutual_models": 2, "id_loss_weight": 1.0, "jit_compile": True}, "does not go with --jit_compile"),
    ({"mutual_models": 2, "mutual_logits_weight": 0.0, "mutual_distance_weight": 0.0}, "are both 0"),
])
def test_mutual_settings_are_checked(changes, words):
    with pytest.raises(Exception, match=re.escape(words)):
        TrainSettings(train_set="x.csv", **changes).validate()


@pytest.mark.slow
def test_two_networks_learn_together_resume_bit_for_bit_and_are_both_saved(tmp_path, image_set):
    reference = tmp_path / "reference"
    assert train(reference, image_set, "--mutual_models", "2", "--id_loss_weight", "1", "--head_name",
                 "bnneck", "--center_loss_weight", "0.001", "--train_iterations", "6",
                 "--checkpoint_frequency", "3") == 0
    log = open(reference / "train.log").read()
    assert "1 x triplet + 1 x id + 0.001 x center + 1 x mutual_logits + 1 x mutual_distance" in log
    with h5py.File(reference / "checkpoint-6.h5") as f:
        assert {"model", "optimizer", "training", "member1_model", "member1_optimizer",
                "member1_training"} == set(f)
        first = {f["model"][k].attrs["path"]: f["model"][k][()] for k in f["model"]}
        second = {f["member1_model"][k].attrs["path"]: f["member1_model"][k][()] for k in f["member1_model"]}
    assert first.keys() == second.keys()
    assert not np.array_equal(first["lunet_stem_conv/kernel"], second["lunet_stem_conv/kernel"])  # 2 nets

    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-6.h5", "model.keras", "model_member1.keras"):
        os.remove(resumed / name)
    from trinet.cli import train as train_cli
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    assert_same_checkpoints(reference / "checkpoint-6.h5", resumed / "checkpoint-6.h5")

    from trinet.cli import embed
    csv, images = image_set
    out = {}
    for name in ("model.keras", "model_member1.keras"):
        out[name] = tmp_path / f"{name}.h5"
        assert embed.main(["--experiment_root", str(reference), "--dataset", csv, "--image_root", images,
                           "--checkpoint", name, "--filename", str(out[name])]) == 0
    with h5py.File(out["model.keras"]) as a, h5py.File(out["model_member1.keras"]) as b:
        assert a["emb"].shape == b["emb"].shape and not np.allclose(a["emb"][()], b["emb"][()])
