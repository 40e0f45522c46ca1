"""What every family of backbones shares: the catalog entry (`Backbone`), the batch-norm momentum, and the
copy of a functional network with other strides and batch-norm layers."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import keras

#: Batch-norm momentum of every backbone (the original's `batch_norm_decay=0.9`).
BN_MOMENTUM = 0.9


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A catalog entry (`trinet.models.backbones.catalog.BACKBONES`).

    Attributes:
        build: `(weights, last_stride, batch_norm, sync_batchnorm) -> keras.Model` (weights: None, or the
            path of a Keras weights file; last_stride: 2, or 1 to keep the resolution of the last stage;
            batch_norm: a `trinet.config.registries.BATCH_NORMS` name; sync_batchnorm: synchronise the batch
            statistics across replicas).
        features: the dimension F of the feature map.
        last_stride: whether `last_stride=1` is available.
        imagenet_url: where Keras publishes the ImageNet weights without the classifier (None: none).
        imagenet_hash: the file's md5 or sha256 as published by keras.applications (None: not checked).
    """

    build: Callable[..., "keras.Model"]
    features: int
    imagenet_url: str | None = None
    imagenet_hash: str | None = None
    last_stride: bool = False


def rebuilt(net: "keras.Model", stride_one: tuple[str, ...], batch_norm: str,
            sync_batchnorm: bool) -> "keras.Model":
    """A copy of the functional `net` (same variables, same weights) whose `stride_one` layers have
    stride 1 and whose batch norms are `batch_norm` layers, synchronised or not."""
    import keras

    from trinet.models.layers import with_batch_norm

    config = with_batch_norm(net.get_config(), batch_norm, sync_batchnorm)
    found = [layer for layer in config["layers"] if layer["name"] in stride_one]
    if len(found) != len(stride_one):
        raise ValueError(f"{net.name} lacks the layers {stride_one} whose stride --last_stride 1 removes")
    for layer in found:
        layer["config"]["strides"] = [1, 1]
    copy = keras.Model.from_config(config)
    copy.set_weights(net.get_weights())
    return copy


def load_into_any_kind(build: Callable[[str], "keras.Model"], weights: str, batch_norm: str,
                       sync_batchnorm: bool) -> "keras.Model":
    """The network of `build(kind)` (`kind`: a batch-norm kind), the Keras weights file `weights` loaded,
    with `batch_norm` layers synchronised or not.

    Keras' weights files name each layer after its class: the file is loaded into the kind it was saved
    with, and the network is then rebuilt with the asked-for kind (same variables).

    Raises:
        ValueError: the file fits no kind (the first kind's error).
    """
    from trinet.config.registries import BATCH_NORMS

    errors = []
    for kind in BATCH_NORMS:
        model = build(kind)
        try:
            model.load_weights(weights)
        except ValueError as e:
            errors.append(e)
            continue
        if kind == batch_norm and not sync_batchnorm:
            return model
        return rebuilt(model, (), batch_norm, sync_batchnorm)
    raise errors[0]
