"""OSNet, the omni-scale network of Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification"
(ICCV 2019), written in Keras after the paper (and torchreid's reference layout).

Each omni-scale residual bottleneck reduces its input to a quarter of its output width with a 1x1
convolution, runs T = 4 streams of 1, 2, 3 and 4 lite 3x3 convolutions (a pointwise convolution, then a
depthwise 3x3, batch norm and ReLU), weighs each stream channel-wise with one aggregation gate shared by the
streams (global average, 1x1 down by 16, ReLU, 1x1 up, sigmoid), sums them, and expands back with a 1x1
convolution plus the (projected) shortcut. The network: a 7x7 stride-2 stem and a 3x3 stride-2 max-pool;
stages conv2, conv3, conv4 of two bottlenecks each, the first two followed by a transition (1x1 convolution
and 2x2 average pooling); conv5 a 1x1 convolution. Widths (x1.0): 64, 256, 384, 512, and 512 out of conv5;
the other widths scale them. The output is the conv5 feature map, 1/16 of the input: `(B, H/16, W/16, F)`.
The paper's 512-d fully connected layer after the pooling is trinet's head (`--head_name fc1024` with
`--embedding_dim 512` is closest), and its classifier is trinet's.

Trained from scratch (the paper's from-scratch setting) or from a Keras weights file of the same network;
trinet publishes no ImageNet weights for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trinet.models.backbones.common import BN_MOMENTUM, Backbone, load_into_any_kind

if TYPE_CHECKING:
    import keras

#: The widths of the paper: the stem, the outputs of conv2, conv3, conv4 (conv5 keeps conv4's), by multiplier.
OSNET_WIDTHS = {
    "x1_0": (64, 256, 384, 512),
    "x0_75": (48, 192, 288, 384),
    "x0_5": (32, 128, 192, 256),
    "x0_25": (16, 64, 96, 128),
}
#: Omni-scale bottlenecks per stage (conv2, conv3, conv4).
OSNET_BLOCKS = (2, 2, 2)
#: Streams per bottleneck (T): stream t has t lite 3x3 convolutions, a receptive field of 2t + 1.
OSNET_STREAMS = 4
#: The bottleneck's reduction of its output width, and the aggregation gate's of its input.
BOTTLENECK_REDUCTION = 4
GATE_REDUCTION = 16
#: PyTorch's batch-norm epsilon, which the reference implementation uses.
BN_EPSILON = 1e-5


def _bn(x, name: str, bn: dict, activate: bool):
    import keras

    from trinet.models.layers import batch_norm

    x = batch_norm(**bn, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if activate else x


def _conv_bn(x, filters: int, kernel: int, name: str, bn: dict, strides: int = 1, activate: bool = True):
    """Convolution (no bias; PyTorch's symmetric padding), batch norm and, with `activate`, ReLU."""
    import keras

    if kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(filters, kernel, strides=strides, use_bias=False, name=f"{name}_conv")(x)
    return _bn(x, name, bn, activate)


def _lite(x, filters: int, name: str, bn: dict):
    """Lite 3x3: a pointwise convolution to `filters`, a depthwise 3x3, batch norm, ReLU."""
    import keras

    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    return _bn(x, name, bn, activate=True)


class _Gate:
    """The unified aggregation gate: one set of layers applied to every stream (`(B, h, w, C)` ->
    `(B, h, w, C)`, each channel scaled by a sigmoid of the stream's pooled features)."""

    def __init__(self, channels: int, name: str):
        import keras

        self.name = name
        self.pool = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")
        self.down = keras.layers.Conv2D(max(channels // GATE_REDUCTION, 1), 1, activation="relu",
                                        name=f"{name}_fc1")
        self.up = keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_fc2")

    def __call__(self, x, stream: int):
        import keras

        weights = self.up(self.down(self.pool(x)))
        return keras.layers.Multiply(name=f"{self.name}_apply{stream}")([x, weights])


def _bottleneck(x, out: int, name: str, bn: dict):
    """The omni-scale residual bottleneck (`(B, h, w, C) -> (B, h, w, out)`)."""
    import keras

    mid = out // BOTTLENECK_REDUCTION
    reduced = _conv_bn(x, mid, 1, f"{name}_reduce", bn)
    gate = _Gate(mid, f"{name}_gate")
    streams = []
    for t in range(1, OSNET_STREAMS + 1):
        y = reduced
        for i in range(1, t + 1):
            y = _lite(y, mid, f"{name}_stream{t}_lite{i}", bn)
        streams.append(gate(y, t))
    y = keras.layers.Add(name=f"{name}_aggregate")(streams)
    y = _conv_bn(y, out, 1, f"{name}_expand", bn, activate=False)
    shortcut = x if x.shape[-1] == out else _conv_bn(x, out, 1, f"{name}_proj", bn, activate=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _osnet(widths: tuple[int, ...], batch_norm: str, sync_batchnorm: bool) -> "keras.Model":
    import keras

    from trinet.models.layers import ImagePreprocessing

    bn = {"kind": batch_norm, "synchronized": sync_batchnorm}
    inputs = keras.Input((None, None, 3), name="image")
    x = ImagePreprocessing("tf", name="preprocessing")(inputs)
    x = _conv_bn(x, widths[0], 7, "osnet_conv1", bn, strides=2)
    x = keras.layers.ZeroPadding2D(1, name="osnet_pool1_pad")(x)  # zeros after the ReLU: PyTorch's pooling
    x = keras.layers.MaxPooling2D(3, strides=2, name="osnet_pool1")(x)
    for s, (blocks, out) in enumerate(zip(OSNET_BLOCKS, widths[1:]), 2):
        for b in range(1, blocks + 1):
            x = _bottleneck(x, out, f"osnet_conv{s}_block{b}", bn)
        if s < 1 + len(OSNET_BLOCKS):
            x = _conv_bn(x, out, 1, f"osnet_conv{s}_transition", bn)
            x = keras.layers.AveragePooling2D(2, name=f"osnet_conv{s}_pool")(x)
    x = _conv_bn(x, widths[-1], 1, "osnet_conv5", bn)
    return keras.Model(inputs, x, name="backbone")


def _builder(multiplier: str):
    widths = OSNET_WIDTHS[multiplier]

    def build(weights: str | None = None, last_stride: int = 2, batch_norm: str = "keras",
              sync_batchnorm: bool = False) -> "keras.Model":
        if weights is None:
            return _osnet(widths, batch_norm, sync_batchnorm)
        return load_into_any_kind(lambda kind: _osnet(widths, kind, False), weights, batch_norm,
                                  sync_batchnorm)
    build.__doc__ = (f"OSNet {multiplier.replace('_', '.')} (widths {widths}; features: {widths[-1]} "
                     "channels at 1/16 of the input).")
    return build


#: The entries of this family: `osnet_x1_0` ... `osnet_x0_25` (trained from scratch; no last stride to
#: remove: the last stage already has stride 16).
BACKBONES: dict[str, Backbone] = {
    f"osnet_{multiplier}": Backbone(_builder(multiplier), widths[-1])
    for multiplier, widths in OSNET_WIDTHS.items()
}
