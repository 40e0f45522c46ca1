"""The backbones of today (OSNet, ResNet-50-IBN-a/b, ConvNeXt) with everything that exists: every head,
training and embedding, export (SavedModel and TFLite verified against the Embedder), mixed precision with
--distribute mirrored, and bit-for-bit resume (OSNet)."""

import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import assert_same_checkpoints, train
from trinet.config.settings import TrainSettings
from trinet.models.backbones import osnet, resnet_ibn
from trinet.models.heads import HEADS

#: One of each new family; the other OSNet widths are the same code (tests/models/test_osnet.py).
NEW = ["osnet_x0_25", *sorted(resnet_ibn.BACKBONES), "convnext_tiny"]
#: ConvNeXt's stem and three downsamplings need inputs of at least 32 pixels each way.
SIZE = ["--net_input_height", "64", "--net_input_width", "32", "--pre_crop_height", "72",
        "--pre_crop_width", "36"]


def _marks(name):
    return [] if name in osnet.BACKBONES else [pytest.mark.slow]


@pytest.mark.parametrize("head", sorted(HEADS))
def test_osnet_trains_on_every_head(head):
    import tensorflow as tf

    from trinet.training.trainer import Trainer

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (9, 64, 32, 3)).astype(np.float32))
    labels = tf.constant(np.repeat(np.arange(3), 3).astype(np.int32))
    settings = TrainSettings(model_name="osnet_x0_25", head_name=head, embedding_dim=8, batch_p=3,
                             batch_k=3, net_input_height=64, net_input_width=32, seed=2, id_loss_weight=1.0,
                             num_stripes=2)
    trainer = Trainer(settings, 3)
    losses = [float(trainer.step(i)(images, labels)["loss"]) for i in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] != losses[0]


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in NEW])
def test_train_embed_and_export(tmp_path, image_set, name, capsys):
    from trinet.cli.embed import main as embed
    from trinet.export.command import main as export

    root = tmp_path / "e"
    assert train(root, image_set, "--model_name", name, *SIZE, "--head_name", "bnneck", "--id_loss_weight",
                 "1", "--train_iterations", "2", "--checkpoint_frequency", "2") == 0
    csv, images = image_set
    out = tmp_path / "emb.h5"
    assert embed(["--experiment_root", str(root), "--dataset", csv, "--image_root", images, "--filename",
                  str(out), "--loading_threads", "2", "--quiet"]) == 0
    with h5py.File(out) as f:
        emb = f["emb"][()]
    assert emb.shape[0] == 30 and np.all(np.isfinite(emb)) and np.std(emb, axis=0).max() > 0
    for fmt, target in (("saved_model", tmp_path / "serving"), ("tflite", tmp_path / "m.tflite")):
        argv = ["--experiment_root", str(root), "--format", fmt, "--output", str(target), "--quiet"]
        assert export(argv) == 0, capsys.readouterr().err  # 0: the file was verified against the Embedder


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in NEW])
def test_mixed_precision_under_mirrored(tmp_path, image_set, name):
    root = tmp_path / "e"
    assert train(root, image_set, "--model_name", name, *SIZE, "--distribute", "mirrored",
                 "--mixed_precision", "bfloat16", "--train_iterations", "2",
                 "--checkpoint_frequency", "2") == 0
    assert "Running on 1 replicas" in open(root / "train.log").read()
    assert (root / "checkpoint-2.h5").exists()


def test_osnet_resumes_bit_for_bit(tmp_path, image_set):
    flags = ["--model_name", "osnet_x0_25", "--head_name", "bnneck", "--id_loss_weight", "1",
             "--train_iterations", "4", "--checkpoint_frequency", "2"]
    reference = tmp_path / "reference"
    assert train(reference, image_set, *flags) == 0
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-4.h5", "model.keras"):
        os.remove(resumed / name)
    from trinet.cli import train as train_cli
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    assert "Restored checkpoint-2.h5" in open(resumed / "train.log").read()
    assert_same_checkpoints(reference / "checkpoint-4.h5", resumed / "checkpoint-4.h5")
