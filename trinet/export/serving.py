"""The serving endpoints of an exported model, and the SavedModel that holds them.

Every endpoint takes `images`, a `(B, H, W, 3)` uint8 RGB batch of any size, resizes it inside to the net
input size (bilinear, as embed.py) and returns `(B, D)` float32 embeddings equal to `Embedder.embed`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import tensorflow as tf

from trinet.pipeline.images import resize

#: The name of the input of every endpoint.
INPUT = "images"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One endpoint: its output's name and the `Embedder.embed` options whose result it equals."""

    output: str
    flip: bool
    help: str

    @property
    def embed_options(self) -> dict:
        return {"flip": True, "aggregator": "mean"} if self.flip else {}


#: The endpoints by name; `embed` is always exported (it is also the SavedModel's `serving_default`),
#: `embed_flip` with --flip.
ENDPOINTS: dict[str, Endpoint] = {
    "embed": Endpoint("embedding", False, "the image resized to the net input size (embed.py's default)"),
    "embed_flip": Endpoint("embedding_flip", True, "the mean of the embeddings of the image and its mirror "
                                                   "image (embed.py --flip_augment --aggregator mean)"),
}


def endpoint_function(model: keras.Model, net_size: tuple[int, int],
                      flip: bool) -> Callable[[tf.Tensor], tf.Tensor]:
    """`(B, H, W, 3)` uint8 -> `(B, D)` float32: the embedding of each image resized to `net_size`; with
    `flip`, the mean of those of the image and of its mirror image."""
    def embed(images: tf.Tensor) -> tf.Tensor:
        x = resize(tf.cast(images, tf.float32), net_size)
        if flip:
            x = tf.concat([x, tf.reverse(x, axis=[2])], axis=0)
        emb = tf.cast(model(x, training=False), tf.float32)
        if flip:
            plain, mirrored = tf.split(emb, 2, axis=0)
            emb = (plain + mirrored) / 2.0
        return emb

    return embed


def _signature(functions: dict[str, Callable]) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    def signature(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {output: fn(images) for output, fn in functions.items()}
    return signature


def write_saved_model(model: keras.Model, net_size: tuple[int, int], path: str,
                      signatures: dict[str, list[str]]) -> None:
    """Write a SavedModel at `path` (with Keras' `ExportArchive`) with the given signatures, each a list
    of endpoint names whose outputs it returns (one signature per endpoint, or one with several outputs
    for a format that has a single graph). The first signature is also `serving_default`."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = [tf.TensorSpec((None, None, None, 3), tf.uint8, name=INPUT)]
    for name, endpoints in signatures.items():
        functions = {ENDPOINTS[e].output: endpoint_function(model, net_size, ENDPOINTS[e].flip)
                     for e in endpoints}
        archive.add_endpoint(name, _signature(functions), input_signature=spec)
    archive.write_out(path, verbose=False)
