"""Backbones: networks that map raw RGB images `(B, H, W, 3)` in [0, 255] to feature maps `(B, h, w, F)`.

Each backbone carries its own input preprocessing, so a saved model takes raw pixels. The ImageNet
networks come from `keras.applications`; `lunet` is a small residual network trained from scratch,
in the spirit of the paper's LuNet, for small inputs (128x64) and for the CPU. The global pooling
that follows is chosen separately (`--pooling`, `trinet.registries.POOLINGS`); it has no weights, so
checkpoints of backbones that pooled inside load unchanged.

Keras is imported inside the builders: this registry is cheap to import (`train.py --help`).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import TYPE_CHECKING, Callable

from trinet.errors import TrinetError

if TYPE_CHECKING:
    import keras

#: Batch-norm momentum of every backbone (the original's `batch_norm_decay=0.9`).
BN_MOMENTUM = 0.9
#: Seconds to wait for the ImageNet weight server before reporting that we are offline.
DOWNLOAD_TIMEOUT = 15


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A registry entry.

    Attributes:
        build: `(weights, last_stride, batch_norm, sync_batchnorm) -> keras.Model` (weights: None, or the
            path of a Keras weights file; last_stride: 2, or 1 to keep the resolution of the last stage;
            batch_norm: a `trinet.registries.BATCH_NORMS` name; sync_batchnorm: synchronise the batch
            statistics across replicas).
        features: the dimension F of the feature map.
        last_stride: whether `last_stride=1` is available.
        imagenet_url: where Keras publishes the ImageNet weights without the classifier (None: none).
        imagenet_hash: the file's md5 as published by keras.applications (None: not checked).
    """

    build: Callable[..., "keras.Model"]
    features: int
    imagenet_url: str | None = None
    imagenet_hash: str | None = None
    last_stride: bool = False


def _set_bn_momentum(model: "keras.Model") -> "keras.Model":
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


#: The layers whose stride of 2 `last_stride=1` removes: the first block of the last stage of the
#: keras.applications ResNets (its 1x1 convolution and its projection shortcut).
RESNET_LAST_STRIDE_LAYERS = ("conv5_block1_1_conv", "conv5_block1_0_conv")


def _rebuilt(net: "keras.Model", stride_one: tuple[str, ...], batch_norm: str,
             sync_batchnorm: bool) -> "keras.Model":
    """A copy of the functional `net` (same variables, same weights) whose `stride_one` layers have
    stride 1 and whose batch norms are `batch_norm` layers, synchronised or not."""
    import keras

    from trinet.layers import with_batch_norm

    config = with_batch_norm(net.get_config(), batch_norm, sync_batchnorm)
    found = [layer for layer in config["layers"] if layer["name"] in stride_one]
    if len(found) != len(stride_one):
        raise ValueError(f"{net.name} lacks the layers {stride_one} whose stride --last_stride 1 removes")
    for layer in found:
        layer["config"]["strides"] = [1, 1]
    copy = keras.Model.from_config(config)
    copy.set_weights(net.get_weights())
    return copy


def _application(constructor: str, preprocessing: str) -> Callable:
    def build(weights: str | None, last_stride: int = 2, batch_norm: str = "keras",
              sync_batchnorm: bool = False) -> "keras.Model":
        import keras

        from trinet.layers import ImagePreprocessing

        inputs = keras.Input((None, None, 3), name="image")
        x = ImagePreprocessing(preprocessing, name="preprocessing")(inputs)
        net = getattr(keras.applications, constructor)(include_top=False, weights=weights,
                                                       input_shape=(None, None, 3))
        if last_stride == 1 or batch_norm != "keras" or sync_batchnorm:
            net = _rebuilt(net, RESNET_LAST_STRIDE_LAYERS if last_stride == 1 else (), batch_norm,
                           sync_batchnorm)
        _set_bn_momentum(net)
        return keras.Model(inputs, net(x), name="backbone")
    return build


def _conv_bn(x, filters: int, kernel: int, name: str, bn: dict, activate: bool = True):
    import keras

    from trinet.layers import batch_norm

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
    # Keras' weights files name each layer after its class: load into the kind the file was saved with
    from trinet.registries import BATCH_NORMS

    errors = []
    for kind in BATCH_NORMS:
        model = _lunet(last_stride, kind, False)
        try:
            model.load_weights(weights)
        except ValueError as e:
            errors.append(e)
            continue
        if kind == batch_norm and not sync_batchnorm:
            return model
        return _rebuilt(model, (), batch_norm, sync_batchnorm)
    raise errors[0]


def _lunet(last_stride: int, batch_norm: str, sync_batchnorm: bool) -> "keras.Model":
    import keras

    from trinet.layers import ImagePreprocessing

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


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"

#: Backbones by name.
BACKBONES: dict[str, Backbone] = {
    "resnet50": Backbone(
        _application("ResNet50", "caffe"), 2048,
        _KERAS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "4d473c1dd8becc155b73f8504c6f6626", last_stride=True),
    "resnet101": Backbone(
        _application("ResNet101", "caffe"), 2048,
        _KERAS + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "88cf7a10940856eca736dc7b7e228a21", last_stride=True),
    "mobilenet_v1": Backbone(
        _application("MobileNet", "tf"), 1024,
        _KERAS + "mobilenet/mobilenet_1_0_224_tf_no_top.h5"),
    "mobilenet_v2": Backbone(
        _application("MobileNetV2", "tf"), 1280,
        _KERAS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    "lunet": Backbone(lunet, 256, last_stride=True),
}

#: The original code's names for the same networks.
ALIASES = {"resnet_v1_50": "resnet50", "resnet_v1_101": "resnet101", "mobilenet_v1_1_224": "mobilenet_v1"}

#: Every accepted `--model_name`.
CHOICES = sorted(BACKBONES) + sorted(ALIASES)
#: The backbones that accept `--last_stride 1`.
LAST_STRIDE_CHOICES = sorted(name for name, entry in BACKBONES.items() if entry.last_stride)


def supports_last_stride(name: str) -> bool:
    """Whether backbone `name` (or its alias) has a last stride that `--last_stride 1` can remove."""
    return BACKBONES[canonical_name(name)].last_stride


def canonical_name(name: str) -> str:
    """Resolve an alias (`resnet_v1_50` -> `resnet50`); unknown names raise ValueError."""
    name = ALIASES.get(name, name)
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {CHOICES}")
    return name


def keras_cache_dir() -> str:
    """Where Keras caches downloaded weights (`$KERAS_HOME/models` or `~/.keras/models`)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def imagenet_weights(name: str) -> str:
    """The local path of `name`'s ImageNet weights, downloading them through Keras if needed.

    Raises:
        TrinetError: no ImageNet weights exist for `name`, or the download failed (offline): the
            message says which file to put where.
    """
    import keras

    name = canonical_name(name)
    spec = BACKBONES[name]
    if spec.imagenet_url is None:
        raise TrinetError(f"--initial_checkpoint imagenet: backbone {name!r} has no ImageNet weights "
                          "(it is trained from scratch); leave --initial_checkpoint out.")
    filename = spec.imagenet_url.rsplit("/", 1)[1]
    target = os.path.join(keras_cache_dir(), filename)
    if os.path.isfile(target):
        return target
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        return keras.utils.get_file(filename, spec.imagenet_url, cache_subdir="models",
                                    file_hash=spec.imagenet_hash)
    except Exception as e:  # noqa: BLE001 (urllib, ssl, socket and hash errors all mean the same here)
        raise TrinetError(
            f"Could not download the ImageNet weights of {name} ({type(e).__name__}: {e}). If this machine "
            f"is offline, download {spec.imagenet_url} elsewhere and put it at {target} "
            "(or pass its path to --initial_checkpoint).") from None
    finally:
        socket.setdefaulttimeout(previous)


def build_backbone(name: str, weights: str | None = None, last_stride: int = 2, batch_norm: str = "keras",
                   sync_batchnorm: bool = False) -> "keras.Model":
    """The backbone `name` as a Keras model `(B, H, W, 3) raw RGB -> (B, h, w, F)`.

    Args:
        weights: None (random), 'imagenet', or the path of a Keras weights file for the network.
        last_stride: 2, or 1 for backbones that support it (`supports_last_stride`).
        batch_norm: the batch-norm layer (`trinet.registries.BATCH_NORMS`); the variables are the same.
        sync_batchnorm: batch statistics over all replicas of a distribution strategy.
    """
    name = canonical_name(name)
    if last_stride == 1 and not BACKBONES[name].last_stride:
        raise ValueError(f"Backbone {name!r} has no last stride to remove; last_stride=1 is available for "
                         f"{LAST_STRIDE_CHOICES}")
    if weights == "imagenet":
        weights = imagenet_weights(name)
    return BACKBONES[name].build(weights, last_stride, batch_norm=batch_norm, sync_batchnorm=sync_batchnorm)
