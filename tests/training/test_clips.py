"""Video re-id's clip training (`--sampler pk_clips`): the temporal pooling before the losses, the step on
clips against the step on single images, and whole runs that resume bit for bit."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY, assert_same_checkpoints
from trinet.cli import train as train_cli
from trinet.training.objectives import Objective, identification_term, triplet_term
from trinet.training.steps import make_train_step, pool_clips


def test_pool_clips_is_the_mean_over_each_run_of_t_rows():
    rng = np.random.default_rng(0)
    outputs = {"metric": rng.normal(size=(6, 4)).astype(np.float32),
               "logits": rng.normal(size=(6, 2, 3)).astype(np.float32)}  # PCB-like (B, parts, C)
    pooled = pool_clips({k: tf.constant(v) for k, v in outputs.items()}, 3)
    for name, value in outputs.items():
        expected = np.stack([value[0:3].mean(axis=0), value[3:6].mean(axis=0)])
        np.testing.assert_allclose(pooled[name].numpy(), expected, rtol=1e-6)
    assert pool_clips(outputs, 1) is outputs


def _toy_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 3))
    features = keras.layers.GlobalAveragePooling2D()(inputs)
    hidden = keras.layers.Dense(6, activation="relu")(features)
    raw = keras.layers.Dense(5)(hidden)
    embedding = keras.layers.UnitNormalization()(raw)
    logits = keras.layers.Dense(3)(raw)
    return keras.Model(inputs, {"metric": raw, "embedding": embedding, "raw": raw, "logits": logits})


def _euclidean(x):
    d = tf.reduce_sum((x[:, None] - x[None]) ** 2, axis=-1)
    return tf.sqrt(d + 1e-12)


@pytest.mark.parametrize("frames", [2, 3])
def test_a_step_on_clips_of_identical_frames_is_the_step_on_single_images(frames):
    """Clips whose T frames are the same image give the pooled outputs of that image: the step on
    `(C*T,)` images with every label repeated T times equals the step on the C images (loss and updated
    weights), which fails if the labels or the outputs are pooled out of step."""
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (6, 4, 4, 3)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2], np.int32)
    objectives = [Objective("triplet", 1.0, triplet_term("batch_hard", "soft")),
                  Objective("id", 0.5, identification_term(0.1))]
    results = []
    for t, batch, batch_labels in ((1, images, labels),
                                   (frames, np.repeat(images, frames, axis=0), np.repeat(labels, frames))):
        model = _toy_model(3)
        optimizer = keras.optimizers.SGD(0.1)
        step = make_train_step(model, [(optimizer, model.trainable_variables)], objectives, _euclidean, 1,
                               clip_length=t)
        out = step(tf.constant(batch), tf.constant(batch_labels))
        assert out["per_sample"].shape == (6,)
        results.append((float(out["loss"]), [v.numpy() for v in model.trainable_variables]))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-6)
    for single, clip in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(clip, single, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def tracklet_set(image_set, tmp_path_factory):
    """The image set as video: each identity's 5 images are 2 tracklets (3 and 2 frames) in 2 cameras."""
    csv, images = image_set
    rows = [line.split(",") for line in open(csv).read().split()]
    path = tmp_path_factory.mktemp("tracklets") / "tracks.csv"
    lines = ["pid,path,camera,tracklet,frame"]
    for i, (pid, rel) in enumerate(rows):
        j = i % 5
        lines.append(f"{pid},{rel},{int(j >= 3)},{pid}_{int(j >= 3)},{j}")
    path.write_text("\n".join(lines) + "\n")
    return str(path), images


def clip_train(root, data, *extra):
    csv, images = data
    return train_cli.main(["--experiment_root", str(root), "--train_set", csv, "--image_root", images, *TINY,
                           "--batch_k", "2", "--sampler", "pk_clips", "--clip_length", "3", *extra])


def test_pk_clips_trains_on_clips_and_resumes_bit_for_bit(tmp_path, tracklet_set):
    """A clip run (3 identities x 2 tracklets x 3 frames, identification loss and BNNeck too) killed after
    its checkpoint at 3 and resumed ends with the same weights, optimizer state and per-clip losses."""
    flags = ["--id_loss_weight", "1", "--head_name", "bnneck", "--train_iterations", "6",
             "--checkpoint_frequency", "3", "--detailed_logs"]
    reference = tmp_path / "reference"
    assert clip_train(reference, tracklet_set, *flags) == 0
    log = open(reference / "train.log").read()
    assert "batches of 3 x 2 = 6 clips of 3 frames (18 images, pooled by their mean)" in log
    args = json.load(open(reference / "args.json"))
    assert args["sampler"] == "pk_clips" and args["clip_length"] == 3 and args["temporal_pooling"] == "mean"
    losses = np.load(reference / "detailed_losses.npy")
    assert losses.shape == (6, 6) and np.isfinite(losses).all()  # one loss per clip

    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-6.h5", "model.keras"):
        os.remove(resumed / name)
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    assert_same_checkpoints(reference / "checkpoint-6.h5", resumed / "checkpoint-6.h5")
    np.testing.assert_array_equal(np.load(resumed / "detailed_losses.npy"), losses)


def test_pk_clips_under_a_one_replica_strategy_computes_what_one_device_computes(tmp_path, tracklet_set):
    """The replicated step slices and pools clips the same way (here MirroredStrategy on the one CPU)."""
    flags = ["--train_iterations", "3", "--detailed_logs"]
    assert clip_train(tmp_path / "one", tracklet_set, *flags) == 0
    assert clip_train(tmp_path / "mirrored", tracklet_set, *flags, "--distribute", "mirrored") == 0
    np.testing.assert_allclose(np.load(tmp_path / "mirrored" / "detailed_losses.npy"),
                               np.load(tmp_path / "one" / "detailed_losses.npy"), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("extra, words", [
    (["--sampler", "pk", "--clip_length", "5"], "--clip_length applies to --sampler pk_clips only"),
    (["--sampler", "pk_clips", "--mutual_models", "2", "--mutual_distance_weight", "1"],
     "--sampler pk_clips does not go with --mutual_models yet"),
])
def test_clip_flags_are_checked_at_parse_time(tmp_path, image_set, capsys, extra, words):
    csv, images = image_set
    argv = ["--experiment_root", str(tmp_path / "e"), "--train_set", csv, "--image_root", images, *TINY,
            *extra]
    with pytest.raises(SystemExit) as stop:
        train_cli.main(argv)
    assert stop.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_pk_clips_without_a_tracklet_column_is_refused_before_training(tmp_path, image_set, capsys):
    csv, images = image_set
    status = train_cli.main(["--experiment_root", str(tmp_path / "e"), "--train_set", csv, "--image_root",
                             images, *TINY, "--sampler", "pk_clips"])
    assert status == 2 and "no tracklet column" in capsys.readouterr().err
    assert not (tmp_path / "e" / "checkpoint-0.h5").exists()
