"""Activation maps and Grad-CAM: hand-worked energy maps, the right shape and range on a tiny model, maps
that change with the image, and trinet-visualize end to end on a trained run."""

import os
import shutil

import numpy as np
import pytest

from trinet.embedding.actmaps import energy_maps, feature_model, grad_cam, overlay, upsample


@pytest.fixture(scope="module")
def tiny():
    from trinet.models.builder import ModelSpec, build_model, embedding_model
    import keras
    keras.utils.set_random_seed(0)
    return feature_model(embedding_model(build_model(ModelSpec("lunet", "fc1024", 8))))


def images(seed, n=2):
    return np.random.default_rng(seed).uniform(0, 255, (n, 64, 32, 3)).astype(np.float32)


def euclidean(a, b):
    from trinet.losses.pairwise import cdist
    return cdist(a, b, "euclidean")


def test_energy_by_hand():
    # Energies (sum of squares over channels) 0, 1, 4, 25 -> L2-normalised (scale only), min-max: /25.
    fm = np.array([[[[0.0, 0.0], [1.0, 0.0]], [[0.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_allclose(energy_maps(fm), [[[0, 1 / 25], [4 / 25, 1]]], rtol=1e-6)
    assert (energy_maps(np.ones((1, 3, 2, 4))) == 0).all()  # a constant map has no peak


def test_maps_of_a_tiny_model_have_the_shape_and_range_and_follow_the_image(tiny):
    x = images(0)
    feature_maps, embeddings = (t.numpy() for t in tiny(x, training=False))
    assert feature_maps.shape[:3] == (2, 4, 2) and embeddings.shape == (2, 8)
    energy = energy_maps(feature_maps)
    assert energy.shape == (2, 4, 2) and energy.min() == 0 and energy.max() == 1
    # Grad-CAM is all zero where every weighted channel sum is negative (ReLU): take the first of a few
    # targets whose map is not, and check that there is one.
    targets = [s * 3 * np.eye(8, dtype=np.float32)[d] for s in (1, -1) for d in range(8)]
    cams = [(t, grad_cam(tiny, x, t, euclidean)) for t in targets]
    assert all(c.shape == (2, 4, 2) and c.min() >= 0 and c.max() <= 1 for _, c in cams)
    target, cam = next((t, c) for t, c in cams if c[0].max() == 1)
    # Another image, other maps; the same image, the same maps.
    y = x.copy()
    y[:, :32] = 255 - y[:, :32]
    assert not np.allclose(energy_maps(tiny(y, training=False)[0].numpy()), energy)
    np.testing.assert_allclose(energy_maps(tiny(x, training=False)[0].numpy()), energy, atol=1e-6)
    assert not np.allclose(grad_cam(tiny, y, target, euclidean), cam)
    big = upsample(energy, (64, 32))
    assert big.shape == (2, 64, 32) and big.min() >= 0 and big.max() <= 1
    blended = overlay(x[0], big[0])
    assert blended.shape == (64, 32, 3) and blended.dtype == np.uint8


def test_grad_cam_by_hand_on_a_linear_model():
    # Feature map A (1, 1, 2, 2); embedding = the mean of A over positions (a linear "network").
    import keras
    import tensorflow as tf

    inputs = keras.Input((1, 2, 2))
    model = keras.Model(inputs, [inputs, keras.layers.GlobalAveragePooling2D()(inputs)])
    a = np.array([[[[1.0, 0.0], [3.0, 2.0]]]], np.float32)  # positions (1, 0) and (3, 2); embedding (2, 1)
    target = np.array([0.0, 1.0], np.float32)  # similarity -|e - t|^2: gradient -2 (e - t) = (-4, 0) / 2
    cam = grad_cam(model, a, target, lambda e, t: tf.reduce_sum(tf.square(e[:, None] - t[None]), -1))
    # Weights: mean over positions of d(-|e - t|^2)/dA = -(e - t) = (-2, 0); relu(-2 * (1, 3)) = 0: nothing.
    np.testing.assert_array_equal(cam, [[[0, 0]]])
    target = np.array([4.0, 1.0], np.float32)  # weights (2, 0): cam (2, 6) -> scaled (0, 1)
    cam = grad_cam(model, a, target, lambda e, t: tf.reduce_sum(tf.square(e[:, None] - t[None]), -1))
    np.testing.assert_allclose(cam, [[[0, 1]]])


@pytest.mark.slow
def test_trinet_visualize_on_a_trained_run(finished, image_set, tmp_path, capsys):
    from trinet.cli.visualize import MAPS_FILE, main

    run = tmp_path / "exp"
    shutil.copytree(finished, run)
    csv, root = image_set
    out = tmp_path / "maps"
    against = "images/0001_00.jpg"
    assert main(["--experiment_root", str(run), "--dataset", csv, "--image_root", root, "--output", str(out),
                 "--num_images", "3", "--against", against, "--quiet"]) == 0
    maps = np.load(out / MAPS_FILE)
    assert len(maps["paths"]) == 3 and maps["energy"].shape[0] == 3 and maps["gradcam"].shape[0] == 3
    for key in ("energy", "gradcam"):
        assert maps[key].min() >= 0 and maps[key].max() <= 1
    assert maps["energy"].shape[1:] == maps["gradcam"].shape[1:] == (2, 1)  # LuNet's map of 32 x 16 inputs
    assert str(maps["against"]).endswith(against)
    pictures = sorted(p for p in os.listdir(out) if p.endswith(".png"))
    assert len(pictures) == 3 and pictures[0].startswith("0000_")
    import cv2
    picture = cv2.imread(str(out / pictures[0]))
    assert picture.shape[0] >= 256 and picture.shape[1] == 3 * picture.shape[0] // 2  # image + 2 maps
    assert main(["--experiment_root", str(run), "--dataset", csv, "--image_root", root, "--output", str(out),
                 "--num_images", "2", "--quiet"]) == 0  # an earlier output is replaced
    assert len([p for p in os.listdir(out) if p.endswith(".png")]) == 2 and "gradcam" not in np.load(
        out / MAPS_FILE)
    assert main(["--experiment_root", str(run), "--dataset", csv, "--image_root", root, "--output",
                 str(tmp_path / "x"), "--against", "nope.jpg"]) == 2
    assert "--against nope.jpg: no such image" in capsys.readouterr().err
