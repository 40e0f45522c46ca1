"""The catalog of backbones: every family's entries by `--model_name`, the original's aliases, the ImageNet
weights (downloaded on request only, with an offline error that names the file to put where) and
`build_backbone`."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from trinet.core.errors import TrinetError
from trinet.models.backbones import applications, hub, lunet, osnet, resnet_ibn
from trinet.models.backbones.common import Backbone

if TYPE_CHECKING:
    import keras

#: Seconds to wait for the ImageNet weight server before reporting that we are offline.
DOWNLOAD_TIMEOUT = 15

#: Backbones by name.
BACKBONES: dict[str, Backbone] = {
    **applications.BACKBONES, **lunet.BACKBONES, **osnet.BACKBONES, **resnet_ibn.BACKBONES, **hub.BACKBONES}

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
                   sync_batchnorm: bool = False, **hub_options) -> "keras.Model":
    """The backbone `name` as a Keras model `(B, H, W, 3) raw RGB -> (B, h, w, F)`.

    Args:
        weights: None (random), 'imagenet', or the path of a Keras weights file for the network.
        last_stride: 2, or 1 for backbones that support it (`supports_last_stride`).
        batch_norm: the batch-norm layer (`trinet.config.registries.BATCH_NORMS`); the variables are the same.
        sync_batchnorm: batch statistics over all replicas of a distribution strategy.
        hub_options: `--model_name keras_hub`'s preset and options (`hub.build`).
    """
    name = canonical_name(name)
    if name == hub.NAME:
        return hub.build(weights=weights, **hub_options)
    if last_stride == 1 and not BACKBONES[name].last_stride:
        raise ValueError(f"Backbone {name!r} has no last stride to remove; last_stride=1 is available for "
                         f"{LAST_STRIDE_CHOICES}")
    if weights == "imagenet":
        weights = imagenet_weights(name)
    return BACKBONES[name].build(weights, last_stride, batch_norm=batch_norm, sync_batchnorm=sync_batchnorm)
