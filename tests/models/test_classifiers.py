"""Margin-based identification classifiers (--classifier softmax|cosface|arcface|circle): their logits and
losses worked out by hand on two 2-d features, the checks of their flags, and TINY runs that train and resume
bit for bit with colour augmentation on."""

import json
import math
import os
import re
import shutil

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_same_checkpoints, train
from trinet.cli import embed, train as train_cli
from trinet.config import registries
from trinet.config.settings import TrainSettings
from trinet.core.errors import TrinetError
from trinet.models.heads import classifier
from trinet.training.objectives import identification_term

# Two features and two classes, placed by hand. Normalised, the features are (0.6, 0.8) and (-0.8, 0.6) and
# the class weights (1, 0) and (0, 1), so the cosines are [[0.6, 0.8], [-0.8, 0.6]].
FEATURES = np.array([[3.0, 4.0], [-4.0, 3.0]], np.float32)
KERNEL = np.array([[2.0, 0.0], [0.0, 5.0]], np.float32)  # (F, C): column c is class c's weight
LABELS = np.array([1, 0], np.int32)  # true cosines: 0.8 (angle 0.6435) and -0.8 (angle 2.4981)


def cross_entropy(z, label, smoothing=0.0):
    """-sum_c t_c log softmax(z)_c with t = (1 - e) onehot + e / C, written out."""
    log_sum = math.log(sum(math.exp(v) for v in z))
    target = [(1 - smoothing) * (c == label) + smoothing / len(z) for c in range(len(z))]
    return sum(t * (log_sum - v) for t, v in zip(target, z))


def run(kind, scale=None, margin=None, smoothing=0.0):
    """`(model logits (2, 2), per-sample identification loss (2,))` of the classifier `kind`."""
    inputs = keras.Input((2,))
    model = keras.Model(inputs, classifier(inputs, 2, kind, scale))
    model.get_layer("head_classifier").set_weights([KERNEL])
    logits = model(FEATURES)
    loss = identification_term(smoothing, kind, scale, margin)({"logits": logits}, tf.constant(LABELS))
    return logits.numpy(), loss.numpy()


def test_softmax_is_the_linear_classifier_as_before():
    logits, loss = run("softmax")
    # f @ W: (3, 4) -> (6, 20); (-4, 3) -> (-8, 15)
    np.testing.assert_allclose(logits, [[6.0, 20.0], [-8.0, 15.0]], rtol=1e-6)
    expected = [math.log(1 + math.exp(-14)), math.log(1 + math.exp(23))]
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)


def test_cosface_subtracts_the_margin_from_the_true_cosine():
    logits, loss = run("cosface", 30.0, 0.35)
    np.testing.assert_allclose(logits, [[18.0, 24.0], [-24.0, 18.0]], rtol=1e-6)  # s cos, no margin
    # sample 0: true class 1, 30 (0.8 - 0.35) = 13.5 against 18;
    # sample 1: true class 0, 30 (-0.8 - 0.35) = -34.5 against 18
    expected = [cross_entropy([18.0, 13.5], 1), cross_entropy([-34.5, 18.0], 0)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    assert expected[0] == pytest.approx(4.5 + math.log(1 + math.exp(-4.5)))


def test_arcface_adds_the_margin_to_the_angle_and_falls_back_past_pi():
    m = 0.7  # sample 1's angle 2.4981 + 0.7 > pi: the fallback cos - m sin m
    logits, loss = run("arcface", 10.0, m)
    np.testing.assert_allclose(logits, [[6.0, 8.0], [-8.0, 6.0]], rtol=1e-6)
    shifted = 0.8 * math.cos(m) - 0.6 * math.sin(m)  # cos(theta + m) = cos cos m - sin sin m = 0.22534
    assert shifted == pytest.approx(math.cos(math.acos(0.8) + m))
    fallback = -0.8 - m * math.sin(m)  # -1.25095
    expected = [cross_entropy([6.0, 10 * shifted], 1), cross_entropy([10 * fallback, 6.0], 0)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    # with m = 0.5 both angles stay below pi: cos(theta + m) for both
    _, loss = run("arcface", 10.0, 0.5)
    expected = [cross_entropy([6.0, 10 * math.cos(math.acos(0.8) + 0.5)], 1),
                cross_entropy([10 * math.cos(math.acos(-0.8) + 0.5), 6.0], 0)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)


def test_circle_weights_each_cosine_by_its_distance_from_its_optimum():
    s, m = 64.0, 0.35
    logits, loss = run("circle", s, m)
    np.testing.assert_allclose(logits, 64 * np.array([[0.6, 0.8], [-0.8, 0.6]]), rtol=1e-6)
    # true class: s [1 + m - cos]+ (cos - 1 + m); others: s [cos + m]+ (cos - m)
    sample0 = [s * (0.6 + m) * (0.6 - m), s * (1 + m - 0.8) * (0.8 - 1 + m)]   # [23.52, 5.28]
    sample1 = [s * (1 + m + 0.8) * (-0.8 - 1 + m), s * (0.6 + m) * (0.6 - m)]  # [-199.52, 15.2]
    assert sample0[1] == pytest.approx(5.28) and sample1[0] == pytest.approx(-199.52)
    np.testing.assert_allclose(loss, [cross_entropy(sample0, 1), cross_entropy(sample1, 0)], rtol=1e-5)


def test_label_smoothing_applies_to_the_margin_logits():
    _, loss = run("cosface", 30.0, 0.35, smoothing=0.1)
    expected = [cross_entropy([18.0, 13.5], 1, 0.1), cross_entropy([-34.5, 18.0], 0, 0.1)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)


def test_every_registered_classifier_has_its_defaults():
    assert sorted(registries.CLASSIFIERS) == ["arcface", "circle", "cosface", "softmax"]
    defaults = {name: TrainSettings(classifier=name).classifier_parameters for name in registries.CLASSIFIERS}
    assert defaults == {"softmax": (None, None), "cosface": (30.0, 0.35), "arcface": (30.0, 0.5),
                        "circle": (64.0, 0.35)}
    assert TrainSettings(classifier="circle", classifier_margin=0.25).classifier_parameters == (64.0, 0.25)


@pytest.mark.parametrize("changes, words", [
    ({"classifier": "arcface", "id_loss_weight": 0.0}, "--classifier arcface needs the identification loss "
                                                       "(--id_loss_weight > 0)"),
    ({"classifier_scale": 10.0}, "--classifier_scale 10.0 applies to the margin classifiers (--classifier "
                                 "cosface, arcface or circle), not to --classifier softmax"),
    ({"classifier_margin": 0.2}, "--classifier_margin 0.2 applies to the margin classifiers"),
    ({"classifier": "cosface", "classifier_margin": -0.1},
     "--classifier_margin must be >= 0 with --classifier cosface, got -0.1"),
    ({"classifier": "circle", "classifier_scale": 0.0}, "--classifier_scale must be > 0 with --classifier "
                                                        "circle, got 0.0"),
    ({"classifier": "arcface", "classifier_margin": 3.2}, "--classifier_margin 3.2 is not an angle below pi"),
    ({"classifier": "circle", "classifier_margin": 1.0}, "must be below 1 for --classifier circle"),
    ({"classifier": "normface"}, "--classifier 'normface' is not one of arcface, circle, cosface, softmax"),
    ({"color_jitter": (0.2, 0.2, 0.2, 0.6)}, "--color_jitter takes 4 numbers B C S H"),
    ({"color_jitter": (0.2, -0.1, 0.2, 0.1)}, "--color_jitter takes 4 numbers"),
    ({"color_jitter": (0.2, 0.2)}, "--color_jitter takes 4 numbers"),
    ({"color_jitter": 0.2}, "--color_jitter takes 4 numbers"),  # a hand-edited args.json
    ({"auto_augment_prob": 1.5}, "--auto_augment_prob must be in [0, 1], got 1.5"),
])
def test_invalid_settings_are_refused_naming_the_flags(changes, words):
    settings = TrainSettings(train_set="train.csv", id_loss_weight=1.0).replace(**changes)
    with pytest.raises(TrinetError, match=re.escape(words)):
        settings.validate()


def test_the_command_line_records_the_classifier_defaults_and_refuses_bad_values(tmp_path, image_set, capsys):
    parser = train_cli.build_parser()
    base = ["--experiment_root", str(tmp_path / "e"), "--train_set", image_set[0]]
    s = train_cli.resolve_settings(parser, [*base, "--id_loss_weight", "1", "--classifier", "circle",
                                            "--classifier_margin", "0.25", "--color_jitter", "0.2", "0.15",
                                            "0", "0"])
    assert (s.classifier, s.classifier_scale, s.classifier_margin) == ("circle", 64.0, 0.25)
    assert s.color_jitter == (0.2, 0.15, 0.0, 0.0) and s.saved()["color_jitter"] == [0.2, 0.15, 0.0, 0.0]
    assert TrainSettings.from_saved(json.loads(json.dumps(s.saved())))[0].color_jitter == s.color_jitter
    s = train_cli.resolve_settings(parser, [*base, "--id_loss_weight", "1"])  # today's defaults
    assert (s.classifier, s.classifier_scale, s.classifier_margin, s.color_jitter, s.auto_augment_prob) == (
        "softmax", None, None, None, 0.0)
    for flags, words in ((["--classifier_scale", "0"], "expected a positive number, got '0'"),
                         (["--classifier_margin", "-0.5"], "expected a number >= 0, got '-0.5'"),
                         (["--auto_augment_prob", "2"], "expected a number between 0 and 1")):
        with pytest.raises(SystemExit) as exit_status:
            train_cli.main([*base, "--id_loss_weight", "1", "--classifier", "cosface", *flags])
        assert exit_status.value.code == 2
        assert words in capsys.readouterr().err


def id_losses(log: str) -> list[float]:
    return [float(v) for v in re.findall(r"id (\d+\.\d+)\)", log)]


@pytest.mark.parametrize("kind", ["cosface", "arcface", "circle"])
def test_a_margin_classifier_trains_and_resumes_bit_for_bit_with_colour_augmentation(tmp_path, image_set,
                                                                                     kind):
    """12 iterations with the classifier `kind`, colour jitter and the AutoAugment-style policy: the
    identification loss falls, and a run killed after its checkpoint at 6 and resumed ends with the same
    weights and optimizer state. The saved inference model has no classifier."""
    reference = tmp_path / "reference"
    flags = ["--id_loss_weight", "1", "--classifier", kind, "--learning_rate", "0.003",
             "--train_iterations", "12", "--checkpoint_frequency", "6", "--color_jitter", "0.2", "0.2", "0.2",
             "0.05", "--auto_augment_prob", "0.5", "--detailed_logs"]
    assert train(reference, image_set, *flags) == 0
    losses = id_losses(open(reference / "train.log").read())
    # the batches are tiny and augmented: the loss is noisy, compared over 4 iterations
    assert len(losses) == 12 and np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4]), losses
    args = json.load(open(reference / "args.json"))
    assert args["classifier"] == kind and args["classifier_scale"] == {"circle": 64.0}.get(kind, 30.0)

    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-12.h5", "model.keras"):  # as if killed right after checkpoint 6
        os.remove(resumed / name)
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    with h5py.File(reference / "checkpoint-12.h5") as a:
        paths = [a["model"][key].attrs["path"] for key in a["model"]]
        assert "head_classifier/kernel" in paths
    assert_same_checkpoints(reference / "checkpoint-12.h5", resumed / "checkpoint-12.h5")
    np.testing.assert_array_equal(np.load(resumed / "detailed_losses.npy"),
                                  np.load(reference / "detailed_losses.npy"))

    from trinet.models.builder import load_embedding_model
    model = load_embedding_model(str(reference / "model.keras"))
    assert not [layer for layer in model.layers if "classifier" in layer.name]
    assert model.output.shape[-1] == 8
    if kind == "circle":  # a checkpoint (with the cosine classifier's weights) embeds
        out = tmp_path / "emb.h5"
        assert embed.main(["--experiment_root", str(reference), "--dataset", image_set[0], "--image_root",
                           image_set[1], "--checkpoint", "checkpoint-6", "--filename", str(out)]) == 0
        with h5py.File(out) as f:
            assert f["emb"].shape == (30, 8)
