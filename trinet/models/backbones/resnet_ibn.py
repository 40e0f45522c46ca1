"""ResNet-50-IBN-a and -IBN-b (Pan et al., "Two at Once: Enhancing Learning and Generalization Capacities via
IBN-Net", ECCV 2018), in the layout and with the layer names of `keras.applications.ResNet50`.

Instance norm (a `GroupNormalization` with one group per channel, affine, epsilon 1e-5 as PyTorch's) where
the IBN-Net release puts it:
- IBN-a: in every bottleneck of conv2, conv3 and conv4, the batch norm after the first 1x1 convolution
  becomes an IBN layer: instance norm on the first half of the channels (`<block>_1_in`), batch norm on the
  rest (`<block>_1_bn`, half as wide as ResNet-50's).
- IBN-b: instance norm instead of the stem's batch norm (`conv1_in`), and after the residual addition (before
  the ReLU) of the last bottleneck of conv2 and of conv3 (`conv2_block3_in`, `conv3_block4_in`).

Every other layer is ResNet-50's, under its name and shape, so Keras' ImageNet ResNet-50 weights load into
them (`--initial_checkpoint imagenet`; IBN-a's half-width batch norms take the second half of ResNet-50's
statistics and scales; the instance norms start at identity scale). The downsampling blocks keep
keras.applications' stride in the first 1x1 convolution; the IBN-Net release (torchvision's layout) puts it
in the 3x3 one: a weights file converted from it (`data/convert_ibn_weights.py`) loads into every layer,
the same shapes, but those three blocks sample their input in the other order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from trinet.models.backbones.common import BN_MOMENTUM, Backbone, load_into_any_kind

if TYPE_CHECKING:
    import keras

log = logging.getLogger("trinet.models")

#: Bottlenecks per stage (conv2 ... conv5) and their widths, as ResNet-50.
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
#: keras.applications' batch-norm epsilon for the ResNets; PyTorch's instance-norm epsilon.
BN_EPSILON = 1.001e-5
IN_EPSILON = 1e-5
#: The stages (2 = conv2) whose bottlenecks take an IBN layer (IBN-a), or an instance norm after their last
#: addition (IBN-b); IBN-b also replaces the stem's batch norm.
IBN_STAGES = {"a": (2, 3, 4), "b": (2, 3)}


def instance_norm(channels: int, name: str) -> "keras.layers.Layer":
    """Affine instance norm over `channels` channels (`(B, H, W, C)`, normalised per sample and channel)."""
    import keras

    return keras.layers.GroupNormalization(groups=channels, epsilon=IN_EPSILON, name=name)


def _bn(name: str, bn: dict):
    from trinet.models.layers import batch_norm

    return batch_norm(**bn, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _block(x, filters: int, stride: int, shortcut: bool, name: str, bn: dict, ibn_a: bool, in_after: bool):
    """keras.applications' bottleneck (`residual_block_v1`) with IBN-a's first norm or IBN-b's final one."""
    import keras

    from trinet.models.layers import ChannelSlice

    if shortcut:
        short = keras.layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        short = _bn(f"{name}_0_bn", bn)(short)
    else:
        short = x
    x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    if ibn_a:
        half = filters // 2
        a = instance_norm(half, f"{name}_1_in")(ChannelSlice(0, half, name=f"{name}_1_in_part")(x))
        b = _bn(f"{name}_1_bn", bn)(ChannelSlice(half, filters, name=f"{name}_1_bn_part")(x))
        x = keras.layers.Concatenate(name=f"{name}_1_ibn")([a, b])
    else:
        x = _bn(f"{name}_1_bn", bn)(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = _bn(f"{name}_2_bn", bn)(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = _bn(f"{name}_3_bn", bn)(x)
    x = keras.layers.Add(name=f"{name}_add")([short, x])
    if in_after:
        x = instance_norm(4 * filters, f"{name}_in")(x)
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _resnet50_ibn(kind: str, last_stride: int, batch_norm: str, sync_batchnorm: bool) -> "keras.Model":
    import keras

    from trinet.models.layers import ImagePreprocessing

    bn = {"kind": batch_norm, "synchronized": sync_batchnorm}
    stages = IBN_STAGES[kind]
    inputs = keras.Input((None, None, 3), name="image")
    x = ImagePreprocessing("caffe", name="preprocessing")(inputs)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = instance_norm(64, "conv1_in")(x) if kind == "b" else _bn("conv1_bn", bn)(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for s, (filters, blocks) in enumerate(RESNET50_STAGES, 2):
        stride = 1 if s == 2 else (last_stride if s == 5 else 2)
        for b in range(1, blocks + 1):
            x = _block(x, filters, stride if b == 1 else 1, b == 1, f"conv{s}_block{b}", bn,
                       ibn_a=kind == "a" and s in stages,
                       in_after=kind == "b" and s in stages and b == blocks)
    return keras.Model(inputs, x, name="backbone")


def transfer_resnet50(resnet: "keras.Model", net: "keras.Model") -> list[str]:
    """Copy the weights of a keras.applications ResNet-50 `resnet` into the IBN network `net`, layer by
    name: a layer of the same name and shapes takes them all; IBN-a's half-width batch norm (`_1_bn`) takes
    the second half of each of its vectors (the channels it normalises). Returns the names of the layers
    copied (in full or in half); the instance norms keep their initial values."""
    copied = []
    for layer in net.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            source = resnet.get_layer(layer.name).get_weights()
        except ValueError:
            continue
        if [w.shape for w in source] == [w.shape for w in weights]:
            layer.set_weights(source)
        elif len(source) == len(weights) and all(s.ndim == 1 and w.ndim == 1 and s.shape[0] == 2 * w.shape[0]
                                                 for s, w in zip(source, weights)):
            layer.set_weights([s[s.shape[0] // 2:] for s in source])
        else:
            raise ValueError(f"layer {layer.name}: ResNet-50's weights have the shapes "
                             f"{[w.shape for w in source]}, this network's {[w.shape for w in weights]}")
        copied.append(layer.name)
    return copied


def _builder(kind: str) -> Callable[..., "keras.Model"]:
    def build(weights: str | None = None, last_stride: int = 2, batch_norm: str = "keras",
              sync_batchnorm: bool = False) -> "keras.Model":
        if weights is None:
            return _resnet50_ibn(kind, last_stride, batch_norm, sync_batchnorm)
        try:  # a weights file of this network (saved by Keras, or converted from IBN-Net's release)
            return load_into_any_kind(lambda k: _resnet50_ibn(kind, last_stride, k, False), weights,
                                      batch_norm, sync_batchnorm)
        except Exception as own:  # noqa: BLE001 (Keras raises ValueError, KeyError... for another network)
            import keras

            try:  # or one of keras.applications' ResNet-50 (the ImageNet file)
                resnet = keras.applications.ResNet50(include_top=False, weights=weights,
                                                     input_shape=(None, None, 3))
            except Exception:  # noqa: BLE001
                raise own from None
        net = _resnet50_ibn(kind, last_stride, batch_norm, sync_batchnorm)
        copied = transfer_resnet50(resnet, net)
        total = sum(1 for layer in net.layers if layer.weights)
        log.info("Loaded ResNet-50's weights from %s into %d of the %d layers with weights of "
                 "resnet50_ibn_%s.", weights, len(copied), total, kind)
        return net
    build.__doc__ = f"ResNet-50-IBN-{kind} (2048 features at 1/32 of the input, 1/16 with last_stride=1)."
    return build


_RESNET50 = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"

#: The entries of this family; their ImageNet weights are keras.applications' ResNet-50 ones.
BACKBONES: dict[str, Backbone] = {
    f"resnet50_ibn_{kind}": Backbone(
        _builder(kind), 2048, _RESNET50 + "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "4d473c1dd8becc155b73f8504c6f6626", last_stride=True)
    for kind in ("a", "b")
}
