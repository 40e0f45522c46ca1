"""Every registered backbone and head: output shapes, preprocessing inside the model, save and reload."""

import os

import keras
import numpy as np
import pytest

from trinet import backbones
from trinet.backbones import ALIASES, BACKBONES, CHOICES, build_backbone, canonical_name
from trinet.cli.train import BACKBONE_CHOICES, HEAD_CHOICES
from trinet.errors import TrinetError
from trinet.heads import HEADS, get_head
from trinet.layers import ImagePreprocessing
from trinet.models import build_model, embedding_model, load_embedding_model

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 64, 32, 3)).astype(np.float32)


def test_command_line_choices_are_the_registries():
    assert sorted(BACKBONE_CHOICES) == sorted(CHOICES)
    assert HEAD_CHOICES == sorted(HEADS)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_features(name):
    model = build_backbone(name)
    out = model(IMAGES, training=False)
    assert tuple(out.shape) == (2, BACKBONES[name].features)
    other = model(np.random.default_rng(1).uniform(0, 255, (1, 96, 48, 3)).astype(np.float32))
    assert tuple(other.shape) == (1, BACKBONES[name].features)  # any input size (global pooling)
    momenta = {layer.momentum for layer in model._flatten_layers()
               if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {backbones.BN_MOMENTUM}


@pytest.mark.parametrize("name, mode", [("resnet50", "caffe"), ("resnet101", "caffe"), ("mobilenet_v1", "tf"),
                                        ("mobilenet_v2", "tf"), ("lunet", "tf")])
def test_backbones_preprocess_raw_rgb(name, mode):
    layer = build_backbone(name).get_layer("preprocessing")
    assert isinstance(layer, ImagePreprocessing) and layer.mode == mode


def test_preprocessing_equals_keras_applications():
    x = IMAGES.copy()
    np.testing.assert_allclose(ImagePreprocessing("caffe")(x),
                               keras.applications.resnet.preprocess_input(x.copy()), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ImagePreprocessing("tf")(x),
                               keras.applications.mobilenet_v2.preprocess_input(x.copy()),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError,
                       match=r"Unknown preprocessing mode 'torch'; expected one of \['caffe', 'tf'\]"):
        ImagePreprocessing("torch")


def test_aliases_and_unknown_names():
    assert [canonical_name(a) for a in sorted(ALIASES)] == ["mobilenet_v1", "resnet101", "resnet50"]
    with pytest.raises(ValueError, match="Unknown backbone 'vgg16'; expected one of"):
        canonical_name("vgg16")
    with pytest.raises(ValueError, match="Unknown head 'fc2048'; expected one of"):
        get_head("fc2048")


@pytest.mark.parametrize("head", sorted(HEADS))
def test_heads(head):
    model = build_model("lunet", head, 16)
    out = model(IMAGES, training=False)
    assert tuple(out["emb"].shape) == (2, 16) and tuple(out["emb_raw"].shape) == (2, 16)
    norms = np.linalg.norm(out["emb"], axis=1)
    if head.endswith("_normalize"):
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
        assert not np.allclose(np.linalg.norm(out["emb_raw"], axis=1), 1.0)
    else:
        np.testing.assert_array_equal(out["emb"], out["emb_raw"])
    names = {layer.name for layer in model.layers if layer.name not in ("image", "backbone")}
    assert all(name.startswith("head_") for name in names)
    assert ("head_fc1024" in names) == head.startswith("fc1024")


def test_saved_embedding_model_reloads_in_safe_mode_with_the_same_output(tmp_path):
    model = build_model("lunet", "fc1024_normalize", 8)
    path = str(tmp_path / "model.keras")
    embedding_model(model).save(path)
    reloaded = load_embedding_model(path)
    np.testing.assert_allclose(reloaded(IMAGES, training=False), model(IMAGES, training=False)["emb"],
                               rtol=1e-5, atol=1e-6)


def test_imagenet_offline_fails_at_once_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(backbones.keras.utils, "get_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("Network is unreachable")))
    with pytest.raises(TrinetError) as e:
        backbones.imagenet_weights("resnet_v1_50")
    message = str(e.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert os.path.join(str(tmp_path / "keras"), "models") in message and "Network is unreachable" in message
    with pytest.raises(TrinetError, match="has no ImageNet weights"):
        backbones.imagenet_weights("lunet")


def test_imagenet_weights_in_the_cache_are_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / "mobilenet_1_0_224_tf_no_top.h5"
    cached.parent.mkdir()
    cached.write_bytes(b"placeholder")
    monkeypatch.setattr(backbones.keras.utils, "get_file", lambda *a, **k: pytest.fail("no download"))
    assert backbones.imagenet_weights("mobilenet_v1_1_224") == str(cached)


def test_keras_weights_file_loads_into_the_backbone(tmp_path):
    source = build_backbone("lunet")
    path = str(tmp_path / "lunet.weights.h5")
    source.save_weights(path)
    target = build_backbone("lunet", weights=path)
    np.testing.assert_allclose(target(IMAGES), source(IMAGES), rtol=1e-5, atol=1e-6)
