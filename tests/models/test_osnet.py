"""OSNet: parameter counts worked out from the paper's architecture and compared with the published ones,
output shapes for every width, the aggregation gate shared by the four streams, and weights files."""

import keras
import numpy as np
import pytest

from trinet.models.backbones import osnet
from trinet.models.backbones.catalog import BACKBONES, build_backbone

#: torchreid's model zoo / the paper: millions of parameters of each width without the classifier (with the
#: 512-d fully connected layer and its batch norm after the pooling), given to one decimal.
PUBLISHED_MILLIONS = {"x1_0": 2.2, "x0_75": 1.3, "x0_5": 0.6, "x0_25": 0.2}


def _conv_bn(cin, cout, k=1):
    return k * k * cin * cout + 2 * cout  # no bias; batch norm's scale and shift


def _lite(c):
    return c * c + 9 * c + 2 * c  # pointwise, depthwise 3x3, batch norm


def _gate(c):
    r = max(c // 16, 1)
    return c * r + r + r * c + c  # two 1x1 convolutions with biases


def _bottleneck(cin, out):
    mid = out // 4
    return (_conv_bn(cin, mid) + (1 + 2 + 3 + 4) * _lite(mid) + _gate(mid) + _conv_bn(mid, out)
            + (_conv_bn(cin, out) if cin != out else 0))


def trainable_by_hand(widths):
    """The trainable parameters of the architecture of the paper (Table 1), counted by hand."""
    w0, w1, w2, w3 = widths
    return (_conv_bn(3, w0, 7)
            + _bottleneck(w0, w1) + _bottleneck(w1, w1) + _conv_bn(w1, w1)
            + _bottleneck(w1, w2) + _bottleneck(w2, w2) + _conv_bn(w2, w2)
            + _bottleneck(w2, w3) + _bottleneck(w3, w3)
            + _conv_bn(w3, w3))


@pytest.mark.parametrize("multiplier", sorted(osnet.OSNET_WIDTHS))
def test_parameter_counts_match_the_architecture_and_the_published_figures(multiplier):
    widths = osnet.OSNET_WIDTHS[multiplier]
    net = build_backbone(f"osnet_{multiplier}")
    trainable = sum(int(np.prod(v.shape)) for v in net.trainable_weights)
    assert trainable == trainable_by_hand(widths)
    moving = sum(int(np.prod(v.shape)) for v in net.non_trainable_weights)
    assert moving == sum(int(np.prod(layer.moving_mean.shape)) * 2 for layer in net._flatten_layers()
                         if isinstance(layer, keras.layers.BatchNormalization))
    # torchreid counts trainable parameters with its fc-512 + BatchNorm1d neck, without the classifier;
    # published to 0.1M, so the count must lie within 0.05M of it (x1.0: 2,169,508 -> 2.2M)
    with_neck = trainable + widths[-1] * 512 + 512 + 2 * 512
    assert abs(with_neck / 1e6 - PUBLISHED_MILLIONS[multiplier]) < 0.05, with_neck


def test_the_widths_are_the_papers():
    assert osnet.OSNET_WIDTHS["x1_0"] == (64, 256, 384, 512)
    for multiplier, factor in (("x0_75", 0.75), ("x0_5", 0.5), ("x0_25", 0.25)):
        assert osnet.OSNET_WIDTHS[multiplier] == tuple(int(w * factor) for w in (64, 256, 384, 512))


@pytest.mark.parametrize("multiplier", sorted(osnet.OSNET_WIDTHS))
def test_feature_map_is_a_sixteenth_of_the_input(multiplier):
    net = build_backbone(f"osnet_{multiplier}")
    out = net(np.random.default_rng(0).uniform(0, 255, (2, 64, 32, 3)).astype(np.float32), training=False)
    assert tuple(out.shape) == (2, 4, 2, osnet.OSNET_WIDTHS[multiplier][-1])
    assert BACKBONES[f"osnet_{multiplier}"].features == out.shape[-1]
    assert np.all(np.asarray(out) >= 0)  # conv5 ends in a ReLU
    assert not BACKBONES[f"osnet_{multiplier}"].last_stride
    with pytest.raises(ValueError, match="has no last stride to remove"):
        build_backbone(f"osnet_{multiplier}", last_stride=1)


def test_each_bottleneck_has_four_streams_and_one_gate_shared_by_them():
    net = build_backbone("osnet_x0_25")
    blocks = sorted({layer.name.rsplit("_gate", 1)[0] for layer in net.layers if "_gate_fc1" in layer.name})
    assert blocks == [f"osnet_conv{s}_block{b}" for s in (2, 3, 4) for b in (1, 2)]
    for block in blocks:
        depthwise = [layer for layer in net.layers if layer.name.startswith(block + "_")
                     and isinstance(layer, keras.layers.DepthwiseConv2D)]
        assert len(depthwise) == 1 + 2 + 3 + 4
        for part in ("pool", "fc1", "fc2"):  # one set of gate layers, called once per stream
            assert len(net.get_layer(f"{block}_gate_{part}")._inbound_nodes) == 4


def test_the_gate_scales_each_stream_by_the_sigmoid_of_its_pooled_features():
    """The gate's output for one stream, against numpy on the layer's own weights."""
    net = build_backbone("osnet_x0_25")
    block = "osnet_conv2_block1"
    stream = net.get_layer(f"{block}_stream2_lite2_relu").output
    gated = net.get_layer(f"{block}_gate_apply2").output
    probe = keras.Model(net.input, [stream, gated])
    x, y = (np.asarray(t) for t in probe(np.random.default_rng(1).uniform(0, 255, (2, 64, 32, 3))
                                         .astype(np.float32), training=False))
    w1, b1 = net.get_layer(f"{block}_gate_fc1").get_weights()
    w2, b2 = net.get_layer(f"{block}_gate_fc2").get_weights()
    pooled = x.mean(axis=(1, 2))
    hidden = np.maximum(pooled @ w1[0, 0] + b1, 0)
    weights = 1 / (1 + np.exp(-(hidden @ w2[0, 0] + b2)))
    np.testing.assert_allclose(y, x * weights[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_a_weights_file_loads_into_either_batch_norm(tmp_path):
    net = build_backbone("osnet_x0_25")
    rng = np.random.default_rng(2)
    net.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) + (1 if "variance" in v.path else 0)
                     for w, v in zip(net.get_weights(), net.weights)])
    path = str(tmp_path / "osnet.weights.h5")
    net.save_weights(path)
    images = rng.uniform(0, 255, (2, 32, 16, 3)).astype(np.float32)
    for kind in ("keras", "fused"):
        loaded = build_backbone("osnet_x0_25", weights=path, batch_norm=kind)
        for a, b in zip(loaded.get_weights(), net.get_weights()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(loaded(images, training=False), net(images, training=False),
                                   rtol=1e-4, atol=1e-4)
