"""Devices and precision: --distribute mirrored on two logical CPU devices, --mixed_precision and
--jit_compile."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SCRIPTS, assert_same_checkpoints, train
from trinet.config.settings import TrainSettings
from trinet.rundir import checkpoints

SCRIPT = os.path.join(SCRIPTS, "replicated_steps.py")
ROOT = REPO


def steps(tmp_path, name, steps=20, **changes):
    """`(losses, variables by path, replicas)` of `steps` steps in a fresh process."""
    out = tmp_path / f"{name}.npz"
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, SCRIPT, json.dumps(changes), str(steps), str(out)], check=True, env=env)
    data = np.load(out)
    return data["losses"], {k[4:]: data[k] for k in data.files if k.startswith("var:")}, int(data["replicas"])


@pytest.mark.slow
def test_mirrored_with_cross_replica_mining_and_sync_batchnorm_reproduces_one_device(tmp_path):
    """Two replicas with both flags against one device on the same global batches: 20 SGD steps of the
    recipe (triplet + identification + centre loss, BNNeck).

    Synchronised batch norm takes Keras' own path, so the reference uses `--batch_norm keras`: the fused
    kernel rounds differently, and one activation that rounds to the other side of a ReLU's kink moves an
    update by 1% (measured). Like with like, the losses agree to 1.3e-4 and the variables to 1.1e-3 of
    their scale after 20 steps (measured; float32 sums in another order)."""
    one, one_vars, _ = steps(tmp_path, "one", batch_norm="keras")
    two, two_vars, replicas = steps(tmp_path, "two", distribute="mirrored", cross_replica_mining=True,
                                    sync_batchnorm=True)
    assert replicas == 2
    assert one[-1] < 0.5 * one[0]  # it trained
    np.testing.assert_allclose(two, one, rtol=1e-3)
    assert one_vars.keys() == two_vars.keys()
    for path, reference in one_vars.items():
        scale = max(1.0, float(np.abs(reference).max()))
        assert np.abs(two_vars[path] - reference).max() <= 5e-3 * scale, path


@pytest.mark.slow
def test_mirrored_without_cross_replica_mining_trains(tmp_path):
    losses, _, replicas = steps(tmp_path, "local", distribute="mirrored")
    assert replicas == 2
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("changes, words", [
    ({"sync_batchnorm": True}, "--sync_batchnorm applies to --distribute mirrored"),
    ({"cross_replica_mining": True}, "--cross_replica_mining applies to --distribute mirrored"),
    ({"jit_compile": True, "distribute": "mirrored"}, "--jit_compile is not available with --distribute"),
    ({"mixed_precision": "float16", "new_layers_lr_multiplier": 10.0}, "does not go with"),
    ({"mixed_precision": "float8"}, "--mixed_precision 'float8' is not one of bfloat16, float16"),
    ({"distribute": "tpu"}, "--distribute 'tpu' is not one of mirrored, multi_worker, none"),
])
def test_invalid_device_settings_are_refused(changes, words):
    with pytest.raises(Exception, match=words):
        TrainSettings(train_set="x.csv", **changes).validate()


def test_an_uneven_split_of_identities_is_refused():
    from trinet.models.distribute import replica_share
    from trinet.core.errors import TrinetError

    assert replica_share(18, 4, 2) == 36
    with pytest.raises(TrinetError, match="--batch_p 18 does not divide evenly over 4 replicas"):
        replica_share(18, 4, 4)


def _trainer_losses(**changes):
    import tensorflow as tf

    from trinet.training.trainer import Trainer

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (9, 32, 16, 3)).astype(np.float32))
    labels = tf.constant(np.repeat(np.arange(3), 3).astype(np.int32))
    settings = TrainSettings(model_name="lunet", head_name="bnneck", batch_p=3, batch_k=3,
                             net_input_height=32, net_input_width=16, seed=2, id_loss_weight=1.0, **changes)
    trainer = Trainer(settings, 4)
    return [float(trainer.step(i)(images, labels)["loss"]) for i in range(4)], trainer


def test_jit_compile_gives_the_same_losses():
    plain, _ = _trainer_losses()
    compiled, _ = _trainer_losses(jit_compile=True)
    np.testing.assert_allclose(compiled, plain, rtol=1e-3)


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_variables():
    losses, trainer = _trainer_losses(mixed_precision="bfloat16")
    conv = trainer.model.get_layer("backbone").get_layer("lunet_stem_conv")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert losses[-1] < losses[0]
    import keras
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_float16_skips_non_finite_steps_without_shifting_the_schedule():
    losses, trainer = _trainer_losses(mixed_precision="float16")
    assert trainer.loss_scale is not None
    # the initial scale (2^15) overflows float16 gradients: those steps change nothing and halve the scale
    skipped = sum(1 for a, b in zip(losses, losses[1:]) if a == b)
    assert skipped >= 1 and float(trainer.loss_scale.dynamic_scale) == 2.0 ** 15 / 2 ** skipped
    assert int(trainer.optimizer.iterations) == 4  # every step counted: the schedule does not shift


@pytest.mark.slow
def test_float16_training_logs_the_loss_scale_and_resumes_bit_for_bit(tmp_path, image_set):
    reference = tmp_path / "reference"
    flags = ["--mixed_precision", "float16", "--train_iterations", "6", "--checkpoint_frequency", "3",
             "--id_loss_weight", "1", "--head_name", "bnneck"]
    assert train(reference, image_set, *flags) == 0
    log = open(reference / "train.log").read()
    assert "iter:      6, float16 loss scale: " in log
    skipped = checkpoints.read_info(str(reference / "checkpoint-6.h5"))[1]["skipped_steps"]
    assert skipped == log.count("skipped its update")  # counted in the checkpoint's state and the log
    resumed = tmp_path / "resumed"
    import shutil
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-6.h5", "model.keras"):
        os.remove(resumed / name)
    from trinet.cli import train as train_cli
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    assert_same_checkpoints(reference / "checkpoint-6.h5", resumed / "checkpoint-6.h5")


@pytest.mark.slow
def test_a_mirrored_run_resumes_on_one_device(tmp_path, image_set):
    """--distribute may change on --resume: a run started under MirroredStrategy (here on the one CPU
    device) continues without it from its checkpoint, and says so."""
    root = tmp_path / "e"
    assert train(root, image_set, "--distribute", "mirrored", "--train_iterations", "4",
                 "--checkpoint_frequency", "2") == 0
    os.remove(root / "checkpoint-4.h5")
    os.remove(root / "model.keras")
    from trinet.cli import train as train_cli
    assert train_cli.main(["--experiment_root", str(root), "--resume", "--distribute", "none"]) == 0
    log = open(root / "train.log").read()
    assert "Running on 1 replicas" in log and "Restored checkpoint-2.h5" in log
    assert json.load(open(root / "args.json"))["distribute"] == "mirrored"  # what the run was started with
    assert checkpoints.read_info(str(root / "checkpoint-4.h5"))[0] == 4


@pytest.mark.slow
def test_embedding_on_two_replicas_equals_one_device(tmp_path, finished, image_set):
    """embed.py --distribute mirrored splits each batch over two logical CPU devices: same embeddings (a
    batch of 5 images splits 3 + 2; the last batch of 2 splits 1 + 1)."""
    import h5py

    csv, images = image_set
    out = {}
    for name, flags in (("one", []), ("two", ["--distribute", "mirrored"])):
        out[name] = tmp_path / f"{name}.h5"
        argv = ["--experiment_root", str(finished), "--dataset", csv, "--image_root", images, "--filename",
                str(out[name]), "--batch_size", "10", "--flip_augment", "--aggregator", "mean", *flags]
        env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
        script = os.path.join(SCRIPTS, "embed_two_devices.py")
        done = subprocess.run([sys.executable, script, *argv], check=True, env=env, capture_output=True,
                              text=True)
        assert ("Running on 2 replicas" in done.stderr) == (name == "two")
    with h5py.File(out["one"]) as a, h5py.File(out["two"]) as b:
        assert a["emb"].shape == b["emb"].shape == (30, 8)
        np.testing.assert_allclose(b["emb"][()], a["emb"][()], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b["emb_aug"][()], a["emb_aug"][()], rtol=1e-5, atol=1e-6)
