"""Every registered backbone, pooling and head: output shapes, preprocessing inside the model, BNNeck, the
classifier, last stride 1, save and reload."""

import os

import keras
import numpy as np
import pytest

from trinet.cli.train import build_parser
from trinet.config import registries
from trinet.core.errors import TrinetError
from trinet.models.backbones import catalog, common
from trinet.models.backbones import hub
from trinet.models.backbones.catalog import ALIASES, BACKBONES, CHOICES, build_backbone, canonical_name
from trinet.models.builder import ModelSpec, build_model, embedding_model, load_embedding_model
from trinet.models.heads import CLASSIFIER_INIT_STD, HEADS, get_head
from trinet.models.layers import ImagePreprocessing

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 64, 32, 3)).astype(np.float32)


def test_command_line_choices_are_the_registries():
    choices = {a.dest: a.choices for a in build_parser()._actions if a.choices}
    assert sorted(choices["model_name"]) == sorted(CHOICES)
    assert sorted(choices["head_name"]) == sorted(HEADS)
    for dest, registry in [("pooling", registries.POOLINGS), ("loss", registries.LOSSES),
                           ("optimizer", registries.OPTIMIZERS), ("lr_schedule", registries.SCHEDULES)]:
        assert sorted(choices[dest]) == sorted(registry)
        for name in registry:  # every entry resolves to its implementation
            assert callable(registry.resolve(name))


def spec(head="fc1024", dim=16, **kwargs):
    return ModelSpec("lunet", head, dim, **kwargs)


@pytest.mark.parametrize("name", sorted(set(BACKBONES) - {hub.NAME}))  # keras_hub needs a preset: test_hub.py
def test_backbone_features(name):
    model = build_backbone(name)
    out = model(IMAGES, training=False)
    assert out.shape[0] == 2 and out.shape[-1] == BACKBONES[name].features and len(out.shape) == 4
    other = model(np.random.default_rng(1).uniform(0, 255, (1, 96, 48, 3)).astype(np.float32))
    assert other.shape[-1] == BACKBONES[name].features  # any input size
    momenta = {layer.momentum for layer in model._flatten_layers()
               if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {common.BN_MOMENTUM} or (not momenta and name == "convnext_tiny")  # layer norms only


@pytest.mark.parametrize("name, mode", [("resnet50", "caffe"), ("resnet101", "caffe"), ("mobilenet_v1", "tf"),
                                        ("mobilenet_v2", "tf"), ("lunet", "tf"), ("osnet_x0_25", "tf"),
                                        ("resnet50_ibn_a", "caffe"), ("resnet50_ibn_b", "caffe")])
def test_backbones_preprocess_raw_rgb(name, mode):
    layer = build_backbone(name).get_layer("preprocessing")
    assert isinstance(layer, ImagePreprocessing) and layer.mode == mode


def test_convnext_normalises_raw_rgb_itself():
    """ConvNeXt's own first layer: (x - ImageNet mean * 255) / (std * 255), on raw RGB."""
    norm = [layer for layer in build_backbone("convnext_tiny")._flatten_layers()
            if isinstance(layer, keras.layers.Normalization)]
    assert len(norm) == 1
    x = IMAGES[:, :8, :8]
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    np.testing.assert_allclose(norm[0](x), (x - mean) / std, rtol=1e-4, atol=1e-4)


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


@pytest.mark.parametrize("head", sorted(set(HEADS) - {"bnneck", "pcb"}))  # (tests/models/test_pcb.py)
def test_heads(head):
    model = build_model(spec(head))
    out = model(IMAGES, training=False)
    assert set(out) == {"features", "metric", "embedding", "raw"}  # no classifier without classes
    assert tuple(out["embedding"].shape) == (2, 16) and tuple(out["raw"].shape) == (2, 16)
    assert tuple(out["features"].shape) == (2, 256)
    np.testing.assert_array_equal(out["metric"], out["embedding"])
    norms = np.linalg.norm(out["embedding"], axis=1)
    if head.endswith("_normalize"):
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
        assert not np.allclose(np.linalg.norm(out["raw"], axis=1), 1.0)
    else:
        np.testing.assert_array_equal(out["embedding"], out["raw"])
    names = {layer.name for layer in model.layers if layer.name not in ("image", "backbone", "pooling")}
    assert all(name.startswith("head_") for name in names)
    assert ("head_fc1024" in names) == head.startswith("fc1024")


def test_bnneck_outputs_and_classifier():
    model = build_model(spec("bnneck", num_classes=5, test_feature="after"))
    out = model(IMAGES, training=False)
    bn = model.get_layer("head_bnneck")
    assert not bn.center and bn.beta is None  # bias frozen at 0: no shift is learnt
    features = np.asarray(out["features"])
    by_hand = (features - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + bn.epsilon) \
        * bn.gamma.numpy()
    np.testing.assert_allclose(out["embedding"], by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["metric"], features)  # the metric losses see the feature before BN
    kernel = model.get_layer("head_classifier").kernel.numpy()
    assert kernel.shape == (256, 5) and model.get_layer("head_classifier").bias is None
    assert 0.5 * CLASSIFIER_INIT_STD < kernel.std() < 1.5 * CLASSIFIER_INIT_STD
    np.testing.assert_allclose(out["logits"], by_hand @ kernel, rtol=1e-4, atol=1e-6)  # on the BN feature
    before = build_model(spec("bnneck", test_feature="before"))(IMAGES, training=False)
    np.testing.assert_array_equal(before["embedding"], before["features"])


def test_the_inference_model_has_no_classifier(tmp_path):
    model = build_model(spec("bnneck", num_classes=5))
    inference = embedding_model(model)
    assert "head_classifier" not in {layer.name for layer in inference._flatten_layers()}
    assert len(inference.weights) == len(model.weights) - 1
    path = str(tmp_path / "model.keras")
    inference.save(path)
    reloaded = load_embedding_model(path)
    assert all("classifier" not in v.path for v in reloaded.weights)
    np.testing.assert_allclose(reloaded(IMAGES), model(IMAGES, training=False)["embedding"], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name", ["lunet", "resnet50"])
def test_last_stride_one_doubles_the_feature_map(name):
    two = build_backbone(name)
    one = build_backbone(name, last_stride=1)
    big = np.random.default_rng(2).uniform(0, 255, (1, 128, 64, 3)).astype(np.float32)
    h2, w2 = two(big).shape[1:3]
    h1, w1 = one(big).shape[1:3]
    assert (h1, w1) == (2 * h2, 2 * w2)
    assert [v.path for v in one.weights] == [v.path for v in two.weights]  # same variables: weights load
    two_weights = [v.numpy() for v in two.weights]
    one.set_weights(two_weights)
    with pytest.raises(ValueError, match="has no last stride to remove"):
        build_backbone("mobilenet_v2", last_stride=1)


def test_gem_with_p_one_equals_average_pooling():
    feature_map = np.abs(build_backbone("lunet")(IMAGES, training=False))  # GeM is defined on x >= epsilon
    gem = registries.POOLINGS.resolve("gem")(name="gem")
    gem(feature_map)
    gem.p.assign(1.0)
    average = registries.POOLINGS.resolve("avg")(name="avg")
    np.testing.assert_allclose(gem(feature_map), average(feature_map), rtol=1e-5, atol=1e-6)
    assert build_model(spec(pooling="gem")).get_layer("pooling").p.trainable


def test_saved_embedding_model_reloads_in_safe_mode_with_the_same_output(tmp_path):
    model = build_model(spec("fc1024_normalize", 8, pooling="gem"))
    path = str(tmp_path / "model.keras")
    embedding_model(model).save(path)
    reloaded = load_embedding_model(path)
    np.testing.assert_allclose(reloaded(IMAGES, training=False), model(IMAGES, training=False)["embedding"],
                               rtol=1e-5, atol=1e-6)


def test_imagenet_offline_fails_at_once_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.utils, "get_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("Network is unreachable")))
    with pytest.raises(TrinetError) as e:
        catalog.imagenet_weights("resnet_v1_50")
    message = str(e.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert os.path.join(str(tmp_path / "keras"), "models") in message and "Network is unreachable" in message
    with pytest.raises(TrinetError, match="has no ImageNet weights"):
        catalog.imagenet_weights("lunet")


def test_imagenet_weights_in_the_cache_are_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / "mobilenet_1_0_224_tf_no_top.h5"
    cached.parent.mkdir()
    cached.write_bytes(b"placeholder")
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("no download"))
    assert catalog.imagenet_weights("mobilenet_v1_1_224") == str(cached)


def test_keras_weights_file_loads_into_the_backbone(tmp_path):
    source = build_backbone("lunet")
    path = str(tmp_path / "lunet.weights.h5")
    source.save_weights(path)
    target = build_backbone("lunet", weights=path)
    np.testing.assert_allclose(target(IMAGES), source(IMAGES), rtol=1e-5, atol=1e-6)


def test_keras_application_weights_load_with_last_stride_one(tmp_path):
    """What --initial_checkpoint imagenet does, offline: a keras.applications weights file (include_top=False)
    loads into the backbone, also when its last stride is removed."""
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "resnet50_notop.weights.h5")
    source.save_weights(path)
    for last_stride in (2, 1):
        backbone = build_backbone("resnet50", weights=path, last_stride=last_stride)
        net = backbone.get_layer("resnet50")
        for name in ("conv1_conv", "conv5_block1_1_conv", "conv5_block3_3_conv"):
            np.testing.assert_array_equal(net.get_layer(name).kernel.numpy(),
                                          source.get_layer(name).kernel.numpy())
