"""LuNet: a small residual network with leaky ReLUs and max-pooling, in the spirit of the paper's LuNet,
trained from scratch at small inputs (128x64, 64x32) and cheap enough for the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trinet.models.backbones.common import BN_MOMENTUM, Backbone, load_into_any_kind

if TYPE_CHECKING:
    import keras


def _conv_bn(x, filters: int, kernel: int, name: str, bn: dict, activate: bool = True):
    import keras

    from trinet.models.layers import batch_norm

    x = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(**bn, momentum=BN_MOMENTUM, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(0.3, name=f"{name}_act")(x) if activate else x


def _residual(x, mid: int, out: int, name: str, bn: dict):
    """Bottleneck block: 1x1 to `mid`, 3x3, 1x1 to `out`, plus a (projected) shortcut."""
    import keras

    shortcut = x if x.shape[-1] == out else _conv_bn(x, out, 1, f"{name}_proj", bn, activate=False)
    y = _conv_bn(x, mid, 1, f"{name}_a", bn)
    y = _conv_bn(y, mid, 3, f"{name}_b", bn)
    y = _conv_bn(y, out, 1, f"{name}_c", bn, activate=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.LeakyReLU(0.3, name=f"{name}_out")(y)


#: LuNet stages: (bottleneck width, output width) per residual block, a max-pool after each stage.
LUNET_STAGES = (((16, 64),), ((32, 128),), ((64, 256),), ((128, 256), (128, 256)))


def lunet(weights: str | None = None, last_stride: int = 2, batch_norm: str = "keras",
          sync_batchnorm: bool = False) -> "keras.Model":
    """A small residual network with leaky ReLUs and max-pooling (about 1M parameters, 256 channels).

    Cheap enough to train on a CPU at 128x64 or 64x32. `last_stride=1` gives the pooling before the
    last stage a stride of 1 (the feature map keeps twice the height and width).
    """
    if weights is None:
        return _lunet(last_stride, batch_norm, sync_batchnorm)
    return load_into_any_kind(lambda kind: _lunet(last_stride, kind, False), weights, batch_norm,
                              sync_batchnorm)


def _lunet(last_stride: int, batch_norm: str, sync_batchnorm: bool) -> "keras.Model":
    import keras

    from trinet.models.layers import ImagePreprocessing

    bn = {"kind": batch_norm, "synchronized": sync_batchnorm}
    inputs = keras.Input((None, None, 3), name="image")
    x = ImagePreprocessing("tf", name="preprocessing")(inputs)
    x = _conv_bn(x, 32, 3, "lunet_stem", bn)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="lunet_stem_pool")(x)
    for s, stage in enumerate(LUNET_STAGES, 1):
        for b, (mid, out) in enumerate(stage, 1):
            x = _residual(x, mid, out, f"lunet_s{s}b{b}", bn)
        if s < len(LUNET_STAGES):
            stride = last_stride if s == len(LUNET_STAGES) - 1 else 2
            x = keras.layers.MaxPooling2D(3, strides=stride, padding="same", name=f"lunet_s{s}_pool")(x)
    return keras.Model(inputs, x, name="backbone")


#: The entry of this family.
BACKBONES: dict[str, Backbone] = {
    "lunet": Backbone(lunet, 256, last_stride=True),
}
