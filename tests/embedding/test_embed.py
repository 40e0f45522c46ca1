"""embed.py: views and their geometry, aggregators, HDF5 and CSV output, safety on failure."""

import os

import cv2
import h5py
import numpy as np
import pytest
import tensorflow as tf

from trinet.cli.embed import main
from trinet.core.errors import TrinetError
from trinet.models.builder import load_embedding_model
from trinet.pipeline.images import crop_offsets, embedding_views
from trinet.pipeline.views import AGGREGATORS, check_views, scaled_size, view_names

NET, PRE = (32, 16), (36, 18)


def test_view_names_follow_the_original_order():
    assert view_names(False, None) == ["original_resize"]
    assert view_names(True, "avgpool") == ["original_avgpool", "original_flip_avgpool"]
    names = view_names(True, "five")
    assert len(names) == 10 and names[:2] == ["original_center", "original_top_left"]
    assert names[5:7] == ["original_flip_center", "original_flip_top_left"]
    assert names[-1] == "original_flip_bottom_right"


def test_crop_geometry_equals_numpy_crops():
    image = np.arange(PRE[0] * PRE[1] * 3, dtype=np.float32).reshape(*PRE, 3)
    views = embedding_views(tf.constant(image), NET, PRE, True, "five").numpy()
    flipped = image[:, ::-1]
    # centre offset floor((36-32)/2)=2, floor((18-16)/2)=1; corners at 0 and 36-32=4, 18-16=2
    by_hand = [image[2:34, 1:17], image[0:32, 0:16], image[0:32, 2:18], image[4:36, 0:16], image[4:36, 2:18]]
    by_hand += [flipped[2:34, 1:17], flipped[0:32, 0:16], flipped[0:32, 2:18], flipped[4:36, 0:16],
                flipped[4:36, 2:18]]
    np.testing.assert_array_equal(views, np.stack(by_hand))
    assert crop_offsets((37, 19), NET)["center"] == (2, 1)  # floor
    center = embedding_views(tf.constant(image), NET, PRE, False, "center").numpy()
    np.testing.assert_array_equal(center, image[None, 2:34, 1:17])
    full = embedding_views(tf.constant(image), NET, PRE, True, "avgpool").numpy()
    np.testing.assert_array_equal(full, np.stack([image, flipped]))
    with pytest.raises(ValueError, match="larger than the image"):
        crop_offsets((20, 10), NET)


def test_aggregators():
    views = np.array([[[3.0, 0.0]], [[1.0, 4.0]]])  # (M=2, N=1, D=2)
    np.testing.assert_allclose(AGGREGATORS["mean"](views), [[2.0, 2.0]])
    np.testing.assert_allclose(AGGREGATORS["normalized_mean"](views), [[2 ** -0.5, 2 ** -0.5]])


@pytest.mark.parametrize("flip, crop, aggregator, words", [
    (True, None, None, "2 views per image (original_resize, original_flip_resize) need an --aggregator"),
    (False, "five", None, "add --aggregator mean or normalized_mean"),
    (False, None, "mean", "remove --aggregator, or add --flip_augment, --crop_augment five or a second"),
    (False, "center", "mean", "there is only one (original_center)"),
])
def test_aggregator_rules(flip, crop, aggregator, words):
    with pytest.raises(TrinetError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_views(flip, crop, aggregator, NET, PRE)


def test_five_crop_needs_a_larger_pre_crop():
    with pytest.raises(TrinetError, match="five identical crops"):
        check_views(False, "five", "mean", NET, NET)
    with pytest.raises(TrinetError, match=r"pre-crop size \(30x16\) at least the net input size"):
        check_views(False, "center", None, NET, (30, 16))
    assert len(check_views(True, "five", "normalized_mean", NET, PRE)) == 10


def embed(finished, image_set, tmp_path, *extra):
    csv, _ = image_set
    return main(["--experiment_root", str(finished), "--dataset", csv, "--loading_threads", "2",
                 "--quiet", *extra])


def test_ten_views_mean(finished, image_set, tmp_path):
    out = str(tmp_path / "e.h5")
    assert embed(finished, image_set, tmp_path, "--flip_augment", "--crop_augment", "five",
                 "--aggregator", "mean",
                 "--filename", out, "--batch_size", "32") == 0
    with h5py.File(out) as f:
        emb, aug = f["emb"][()], f["emb_aug"][()]
        names = [n.decode() for n in f["augmentation_types"][()]]
        assert emb.shape == (30, 8) and aug.shape == (10, 30, 8) and emb.dtype == np.float32
        assert names == view_names(True, "five")
        np.testing.assert_allclose(emb, aug.mean(axis=0), rtol=1e-6, atol=1e-7)
        assert [p.decode() for p in f["pids"][:3]] == ["0000", "0000", "0000"]
        assert f["fids"][0].decode() == "images/0000_00.jpg"
        assert f.attrs["aggregator"] == "mean" and f.attrs["checkpoint"].endswith("checkpoint-4.h5")
    # views differ from each other (the crops and flips really happened)
    assert not np.allclose(aug[0], aug[5]) and not np.allclose(aug[1], aug[2])


def test_normalized_mean_rows_have_unit_norm(finished, image_set, tmp_path):
    out = str(tmp_path / "n.h5")
    assert embed(finished, image_set, tmp_path, "--flip_augment", "--aggregator", "normalized_mean",
                 "--filename", out) == 0
    with h5py.File(out) as f:
        np.testing.assert_allclose(np.linalg.norm(f["emb"][()], axis=1), 1.0, rtol=1e-5)
        assert f["emb_aug"].shape == (2, 30, 8)


def test_embedding_equals_the_saved_model_applied_directly(finished, image_set, tmp_path):
    csv, root = image_set
    # images already at the net input size: no resize, so the model sees the decoded pixels
    rows, images = [], []
    for i in range(3):
        image = np.random.default_rng(i).integers(0, 256, (*NET, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
        rows.append(f"{i},{i}.png")
        images.append(image[..., ::-1].astype(np.float32))  # BGR (OpenCV) -> RGB
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    out = str(tmp_path / "direct.h5")
    assert main(["--experiment_root", str(finished), "--dataset", str(tmp_path / "d.csv"), "--image_root",
                 str(tmp_path), "--filename", out, "--quiet"]) == 0
    model = load_embedding_model(str(finished / "model.keras"))
    direct = model(np.stack(images), training=False).numpy()
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["emb"][()], direct, rtol=1e-4, atol=1e-5)
        assert "emb_aug" not in f and [n.decode() for n in f["augmentation_types"]] == ["original_resize"]
    # the same through --checkpoint model.keras
    out2 = str(tmp_path / "keras.h5")
    assert main(["--experiment_root", str(finished), "--dataset", str(tmp_path / "d.csv"), "--image_root",
                 str(tmp_path), "--filename", out2, "--checkpoint", "model.keras", "--quiet"]) == 0
    with h5py.File(out2) as f:
        np.testing.assert_allclose(f["emb"][()], direct, rtol=1e-4, atol=1e-5)


def test_plain_image_list_to_csv(finished, image_set, tmp_path):
    _, root = image_set
    listing = tmp_path / "list.txt"
    listing.write_text("images/0001_00.jpg\nimages/0002_03.jpg\n")
    out = tmp_path / "out.csv"
    assert main(["--experiment_root", str(finished), "--dataset", str(listing), "--image_root", root,
                 "--filename", str(out), "--quiet"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("images/0001_00.jpg,")
    values = np.array([line.split(",")[1:] for line in lines], dtype=np.float32)
    assert values.shape == (2, 8)
    h5 = str(tmp_path / "same.h5")
    assert main(["--experiment_root", str(finished), "--dataset", str(listing), "--image_root", root,
                 "--filename", h5, "--quiet"]) == 0
    with h5py.File(h5) as f:
        np.testing.assert_allclose(values, f["emb"][()], rtol=1e-6)
        assert "pids" not in f


def test_failure_midway_leaves_no_file_and_keeps_the_old_one(finished, image_set, tmp_path, capsys):
    _, root = image_set
    (tmp_path / "broken.jpg").write_bytes(open(os.path.join(root, "images/0001_00.jpg"), "rb").read()[:200])
    rows = [f"1,{os.path.join(root, 'images', f'0001_0{i}.jpg')}" for i in range(4)]
    (tmp_path / "d.csv").write_text("\n".join(rows[:2] + [f"1,{tmp_path / 'broken.jpg'}"] + rows[2:]) + "\n")
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous result")
    assert main(["--experiment_root", str(finished), "--dataset", str(tmp_path / "d.csv"), "--filename",
                 str(out),
                 "--batch_size", "1", "--quiet"]) == 2
    assert "1 images cannot be decoded (corrupt or truncated)" in capsys.readouterr().err
    assert out.read_bytes() == b"previous result"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".out.h5")] == []


def test_up_front_errors(finished, image_set, tmp_path, capsys):
    csv, _ = image_set
    (tmp_path / "missing.csv").write_text("1,nope.jpg\n")
    assert main(["--experiment_root", str(finished), "--dataset", str(tmp_path / "missing.csv")]) == 2
    assert "1 of 1 images not found" in capsys.readouterr().err
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "t.csv").write_text(f"1,{tmp_path / 'text.jpg'}\n")
    assert main(["--experiment_root", str(finished), "--dataset", str(tmp_path / "t.csv")]) == 2
    assert "1 files are empty or not images" in capsys.readouterr().err
    assert main(["--experiment_root", str(finished), "--dataset", csv, "--checkpoint", "77"]) == 2
    assert "Checkpoint '77' not found" in capsys.readouterr().err
    assert main(["--experiment_root", str(finished), "--dataset", csv, "--crop_augment", "five"]) == 2
    assert "need an --aggregator" in capsys.readouterr().err


# --- Multi-scale views (--scales) -------------------------------------------------------------------------

def tiny_embedder(net=NET, pre=PRE):
    """An untrained fully convolutional model (global pooling absorbs the size), fast to build."""
    import keras

    from trinet.embedding.embedder import Embedder

    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(x))
    return Embedder(keras.Model(inputs, keras.layers.Dense(5)(x)), net, pre)


def test_scale_names_sizes_and_checks():
    assert scaled_size((32, 16), 1.125) == (36, 18)
    assert scaled_size((3, 5), 0.5) == (2, 3)  # halves round up
    assert view_names(True, None, (1.0,)) == ["original_resize", "original_flip_resize"]
    assert view_names(True, None, (1.0, 1.125)) == [
        "original_resize_scale1", "original_flip_resize_scale1",
        "original_resize_scale1.125", "original_flip_resize_scale1.125"]
    assert len(check_views(True, "five", "mean", NET, PRE, (1.0, 1.5))) == 20
    with pytest.raises(TrinetError, match="2 views per image .* need an --aggregator"):
        check_views(False, None, None, NET, PRE, (1.0, 1.5))
    with pytest.raises(TrinetError, match="--scales 1 1: expected one or more different positive factors"):
        check_views(False, None, "mean", NET, PRE, (1.0, 1.0))
    with pytest.raises(TrinetError, match="--scales 0: expected"):
        check_views(False, None, None, NET, PRE, (0.0,))


def test_a_scale_of_one_is_todays_embedding():
    embedder = tiny_embedder()
    images = np.random.default_rng(0).integers(0, 256, (3, *NET, 3), dtype=np.uint8)
    # At the net input size nothing is resized: the model sees the pixels.
    direct = embedder.model(images.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(embedder.embed(images, scales=[1.0]), direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(embedder.embed(images, scales=[1.0]), embedder.embed(images))
    assert embedder.view_names(scales=[1.0]) == ["original_resize"]


def test_two_scales_are_the_mean_of_the_separate_embeddings(tmp_path):
    embedder = tiny_embedder()
    larger = tiny_embedder((48, 24), (54, 27))  # NET and PRE times 1.5
    larger.model = embedder.model
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (40, 20, 3), dtype=np.uint8), rng.integers(0, 256, (30, 14, 3), np.uint8)]
    emb = embedder.embed(images, aggregator="mean", scales=(1.0, 1.5))
    separate = [embedder.embed(images), larger.embed(images)]
    np.testing.assert_allclose(emb, (separate[0] + separate[1]) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(separate[0], separate[1])  # the scales really differ
    # With flip and centre crops: the views of each scale, scale after scale; crops scale with the image.
    _, aug = next(embedder.blocks(images, flip=True, crops="center", aggregator="mean", scales=(1.0, 1.5)))
    _, small_aug = next(embedder.blocks(images, flip=True, crops="center", aggregator="mean"))
    _, large_aug = next(larger.blocks(images, flip=True, crops="center", aggregator="mean"))
    np.testing.assert_allclose(aug, np.concatenate([small_aug, large_aug]), rtol=1e-5, atol=1e-6)
    # Files decode to the same views as arrays.
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], image[..., ::-1])
    np.testing.assert_allclose(embedder.embed(paths, aggregator="mean", scales=(1.0, 1.5)), emb,
                               rtol=1e-5, atol=1e-6)


def test_embed_py_scales_flag(finished, image_set, tmp_path):
    out = str(tmp_path / "s.h5")
    assert embed(finished, image_set, tmp_path, "--scales", "1", "1.25", "--aggregator", "mean",
                 "--filename", out) == 0
    with h5py.File(out) as f:
        assert [n.decode() for n in f["augmentation_types"][()]] == ["original_resize_scale1",
                                                                     "original_resize_scale1.25"]
        assert f["emb_aug"].shape == (2, 30, 8) and f.attrs["scales"] == "1 1.25"
        np.testing.assert_allclose(f["emb"][()], f["emb_aug"][()].mean(axis=0), rtol=1e-6, atol=1e-7)
    assert embed(finished, image_set, tmp_path, "--scales", "1", "1.25", "--filename", out) == 2
