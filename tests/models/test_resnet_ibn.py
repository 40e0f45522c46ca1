"""ResNet-50-IBN-a/b: where the instance norms are, the IBN layer against numpy, ResNet-50's weights loaded
into every shared layer (from a generated weights file), and data/convert_ibn_weights.py on a generated
IBN-Net state dict."""

import os
import sys

import keras
import numpy as np
import pytest

from conftest import REPO
from trinet.core.errors import TrinetError
from trinet.models.backbones import catalog, resnet_ibn
from trinet.models.backbones.catalog import build_backbone

sys.path.insert(0, os.path.join(REPO, "data"))

import convert_ibn_weights  # noqa: E402

RNG = np.random.default_rng(0)


def _instance_norms(net):
    return {layer.name: layer for layer in net.layers if isinstance(layer, keras.layers.GroupNormalization)}


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A random keras.applications ResNet-50 (its batch norms' statistics and scales random too), saved."""
    net = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 32, 3))
    net.set_weights([RNG.normal(1 if "variance" in v.path else 0, 0.1, v.shape).astype(np.float32)
                     for v in net.weights])
    path = str(tmp_path_factory.mktemp("resnet") / "resnet50.weights.h5")
    net.save_weights(path)
    return net, path


def test_instance_norms_sit_where_ibn_net_puts_them():
    a = build_backbone("resnet50_ibn_a")
    expected_a = {f"conv{s}_block{b}_1_in" for s, blocks in ((2, 3), (3, 4), (4, 6))
                  for b in range(1, blocks + 1)}
    assert set(_instance_norms(a)) == expected_a
    for name, layer in _instance_norms(a).items():  # instance norm: one group per channel, half the channels
        assert layer.groups == a.get_layer(name.replace("_in", "_conv")).filters // 2
        assert a.get_layer(name.replace("_in", "_bn")).gamma.shape[0] == layer.groups
    assert not any("_1_in" in layer.name for layer in a.layers if layer.name.startswith("conv5"))
    b = build_backbone("resnet50_ibn_b")
    assert set(_instance_norms(b)) == {"conv1_in", "conv2_block3_in", "conv3_block4_in"}
    assert {layer.groups for layer in _instance_norms(b).values()} == {64, 256, 512}
    assert "conv1_bn" not in {layer.name for layer in b.layers}
    assert tuple(a(np.zeros((1, 64, 32, 3), np.float32)).shape) == (1, 2, 1, 2048)
    stride_one = build_backbone("resnet50_ibn_b", last_stride=1)
    assert tuple(stride_one(np.zeros((1, 64, 32, 3), np.float32)).shape) == (1, 4, 2, 2048)


def test_the_ibn_layer_is_instance_norm_on_half_the_channels_and_batch_norm_on_the_rest():
    net = build_backbone("resnet50_ibn_a")
    block = "conv3_block2"
    for name in (f"{block}_1_in", f"{block}_1_bn"):
        layer = net.get_layer(name)
        layer.set_weights([RNG.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    probe = keras.Model(net.input, [net.get_layer(f"{block}_1_conv").output,
                                    net.get_layer(f"{block}_1_ibn").output])
    x, y = (np.asarray(t, np.float64) for t in probe(RNG.uniform(0, 255, (2, 64, 32, 3)).astype(np.float32),
                                                     training=False))
    half = x.shape[-1] // 2
    gamma, beta = net.get_layer(f"{block}_1_in").get_weights()
    first = x[..., :half]
    mean, var = first.mean(axis=(1, 2), keepdims=True), first.var(axis=(1, 2), keepdims=True)
    expected_in = (first - mean) / np.sqrt(var + resnet_ibn.IN_EPSILON) * gamma + beta
    g, b, mm, mv = net.get_layer(f"{block}_1_bn").get_weights()
    expected_bn = (x[..., half:] - mm) / np.sqrt(mv + resnet_ibn.BN_EPSILON) * g + b
    np.testing.assert_allclose(y, np.concatenate([expected_in, expected_bn], axis=-1), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["a", "b"])
def test_resnet50_weights_load_into_every_shared_layer(resnet_file, kind):
    resnet, path = resnet_file
    net = build_backbone(f"resnet50_ibn_{kind}", weights=path)
    own = {layer.name: layer for layer in net.layers if layer.weights}
    shared = [layer for layer in resnet.layers if layer.weights and layer.name in own]
    unshared = {layer.name for layer in resnet.layers if layer.weights and layer.name not in own}
    assert unshared == ({"conv1_bn"} if kind == "b" else set())
    halves = 0
    for layer in shared:
        for source, loaded in zip(layer.get_weights(), own[layer.name].get_weights()):
            if source.shape == loaded.shape:
                np.testing.assert_array_equal(loaded, source, err_msg=layer.name)
            else:  # IBN-a's batch norm of the second half of the channels
                np.testing.assert_array_equal(loaded, source[source.shape[0] // 2:], err_msg=layer.name)
                halves += 1
    assert halves == (4 * 13 if kind == "a" else 0)  # 13 bottlenecks in conv2-conv4, 4 vectors each
    for layer in _instance_norms(net).values():  # not in ResNet-50: initial values
        gamma, beta = layer.get_weights()
        np.testing.assert_array_equal(gamma, 1)
        np.testing.assert_array_equal(beta, 0)


def test_imagenet_offline_names_resnet50s_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.utils, "get_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("Name or service not known")))
    with pytest.raises(TrinetError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        catalog.imagenet_weights("resnet50_ibn_a")
    with pytest.raises(TrinetError, match="has no ImageNet weights"):
        catalog.imagenet_weights("osnet_x1_0")


def ibn_net_state_dict(kind, rng):
    """A random state dict with the keys and shapes of IBN-Net's `resnet50_ibn_<kind>` (PyTorch layout:
    kernels `(O, I, kh, kw)`), written from IBN-Net's resnet_ibn.py."""
    state = {}

    def bn(prefix, c):
        state.update({f"{prefix}.weight": rng.uniform(0.5, 1.5, c), f"{prefix}.bias": rng.normal(0, 0.1, c),
                      f"{prefix}.running_mean": rng.normal(0, 0.1, c),
                      f"{prefix}.running_var": rng.uniform(0.5, 1.5, c),
                      f"{prefix}.num_batches_tracked": np.array(7)})

    def inorm(prefix, c):
        state.update({f"{prefix}.weight": rng.uniform(0.5, 1.5, c), f"{prefix}.bias": rng.normal(0, 0.1, c)})

    def conv(prefix, cout, cin, k):
        state[f"{prefix}.weight"] = rng.normal(0, 0.05, (cout, cin, k, k))

    conv("conv1", 64, 3, 7)
    (inorm if kind == "b" else bn)("bn1", 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        ibn = ("a", "a", "a", None)[layer - 1] if kind == "a" else ("b", "b", None, None)[layer - 1]
        for i in range(blocks):
            p = f"layer{layer}.{i}"
            conv(f"{p}.conv1", planes, inplanes, 1)
            if ibn == "a":
                inorm(f"{p}.bn1.IN", planes // 2)
                bn(f"{p}.bn1.BN", planes - planes // 2)
            else:
                bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", 4 * planes, planes, 1)
            bn(f"{p}.bn3", 4 * planes)
            if i == 0:
                conv(f"{p}.downsample.0", 4 * planes, inplanes, 1)
                bn(f"{p}.downsample.1", 4 * planes)
            if ibn == "b" and i == blocks - 1:
                inorm(f"{p}.IN", 4 * planes)
            inplanes = 4 * planes
    state["fc.weight"], state["fc.bias"] = rng.normal(0, 0.01, (1000, 2048)), np.zeros(1000)
    return {k: np.asarray(v, np.float32) for k, v in state.items()}


@pytest.mark.parametrize("kind", ["a", "b"])
def test_converted_ibn_net_weights_load_and_keep_pytorchs_first_convolution(tmp_path, kind):
    state = ibn_net_state_dict(kind, np.random.default_rng(3))
    npz, out = str(tmp_path / "ibn.npz"), str(tmp_path / f"ibn_{kind}.weights.h5")
    np.savez(npz, **state)
    assert convert_ibn_weights.main([npz, out, "--kind", kind]) == 0
    net = build_backbone(f"resnet50_ibn_{kind}", weights=out)  # a file of this network: no fallback
    np.testing.assert_array_equal(net.get_layer("conv4_block2_2_conv").kernel,
                                  np.transpose(state["layer3.1.conv2.weight"], (2, 3, 1, 0)))
    np.testing.assert_array_equal(net.get_layer("conv2_block1_0_bn").moving_variance,
                                  state["layer1.0.downsample.1.running_var"])
    if kind == "a":
        np.testing.assert_array_equal(net.get_layer("conv3_block4_1_in").gamma,
                                      state["layer2.3.bn1.IN.weight"])
        np.testing.assert_array_equal(net.get_layer("conv3_block4_1_bn").moving_mean,
                                      state["layer2.3.bn1.BN.running_mean"])
    else:
        np.testing.assert_array_equal(net.get_layer("conv1_in").beta, state["bn1.bias"])
        np.testing.assert_array_equal(net.get_layer("conv3_block4_in").gamma, state["layer2.3.IN.weight"])
    # the first convolution on raw RGB equals PyTorch's on its normalised input (numpy, zero padding 3)
    images = np.random.default_rng(4).uniform(0, 255, (2, 32, 16, 3))
    probe = keras.Model(net.input, net.get_layer("conv1_conv").output)
    keras_out = np.asarray(probe(images.astype(np.float32)), np.float64)
    mean, std = np.asarray(convert_ibn_weights.TORCH_MEAN), np.asarray(convert_ibn_weights.TORCH_STD)
    torch_in = (images / 255 - mean) / std
    padded = np.pad(torch_in, ((0, 0), (3, 3), (3, 3), (0, 0)))
    kernel = state["conv1.weight"].astype(np.float64)  # (O, I, 7, 7)
    reference = np.zeros_like(keras_out)
    for i in range(keras_out.shape[1]):
        for j in range(keras_out.shape[2]):
            window = padded[:, 2 * i:2 * i + 7, 2 * j:2 * j + 7, :]
            reference[:, i, j] = np.einsum("bhwc,ochw->bo", window, kernel)
    inner = (slice(None), slice(2, 14), slice(2, 6))  # windows inside the 32x16 image
    np.testing.assert_allclose(keras_out[inner], reference[inner], rtol=1e-4, atol=1e-4)
    assert np.max(np.abs(keras_out - reference)) < 0.009 * np.abs(kernel).sum(axis=(1, 2, 3)).max()


def test_the_converter_names_what_does_not_fit(tmp_path):
    state = ibn_net_state_dict("a", np.random.default_rng(5))
    del state["layer4.2.bn3.weight"], state["layer4.2.bn3.bias"], state["layer4.2.bn3.running_mean"]
    del state["layer4.2.bn3.running_var"], state["layer4.2.bn3.num_batches_tracked"]
    npz = str(tmp_path / "broken.npz")
    np.savez(npz, **state)
    with pytest.raises(SystemExit, match="conv5_block3_3_bn"):
        convert_ibn_weights.main([npz, str(tmp_path / "out.weights.h5"), "--kind", "a"])
    with pytest.raises(SystemExit, match="layers not in the network"):  # IBN-a's keys are not IBN-b's
        convert_ibn_weights.main([npz, str(tmp_path / "out.weights.h5"), "--kind", "b"])
