"""Where the network looks: activation maps of the last feature map, and Grad-CAM of an embedding distance.

* `energy_maps`: torchreid's visactmap. Per position of the backbone's last feature map, the energy
  sum_c f_c^2; L2-normalised over the positions, then min-max scaled to [0, 1] per image.
* `grad_cam`: Grad-CAM (Selvaraju et al., ICCV 2017) of the similarity `-distance(embedding, target)`: the
  channels weighted by the mean gradient of the similarity over the positions, summed, ReLU, scaled to
  [0, 1] per image: the places that make the image close to `target` (e.g. a chosen gallery image).
* `overlay`: the map upsampled to the image and blended as torchreid does, 0.3 image + 0.7 colour map.

Runs on the CPU; the images go through the embedding's own decoding and resizing
(`trinet.pipeline.images`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from trinet.core.errors import TrinetError
from trinet.pipeline.images import decode, resize

#: The weights of the image and of the colour map in `overlay` (torchreid's visactmap).
IMAGE_WEIGHT, MAP_WEIGHT = 0.3, 0.7


def feature_model(model: keras.Model) -> keras.Model:
    """`(B, H, W, 3) -> [(B, h, w, C) last feature map of the backbone, (B, D) embedding]` of an inference
    model of trinet (its layer `backbone`), sharing its weights."""
    try:
        backbone = model.get_layer("backbone")
    except ValueError:
        raise TrinetError(f"The model {model.name!r} has no layer 'backbone' (layers: "
                          f"{[layer.name for layer in model.layers][:8]}...); activation maps need a model "
                          "built by trinet") from None
    feature_map = backbone._inbound_nodes[0].output_tensors[0]  # the backbone's output in this model's graph
    embedding = model.output["embedding"] if isinstance(model.output, dict) else model.output
    return keras.Model(model.inputs[0], [feature_map, embedding], name="trinet_feature_map")


def load_images(paths: Sequence[str], net_size: tuple[int, int]) -> np.ndarray:
    """`(N, H, W, 3)` float32 in [0, 255]: the images resized to the net input size, as for embedding."""
    return np.stack([resize(decode(tf.constant(p)), net_size).numpy() for p in paths]).astype(np.float32)


def _unit(maps: np.ndarray) -> np.ndarray:
    """Min-max scale each `(h, w)` map of `(B, h, w)` to [0, 1] (a constant map becomes zeros)."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def energy_maps(feature_maps: np.ndarray) -> np.ndarray:
    """`(B, h, w, C)` feature maps -> `(B, h, w)` channel-wise energy in [0, 1] (see the module)."""
    energy = np.sum(np.square(np.asarray(feature_maps, dtype=np.float64)), axis=-1)
    norm = np.sqrt(np.sum(np.square(energy), axis=(1, 2), keepdims=True))
    return _unit(energy / np.maximum(norm, 1e-12))


def grad_cam(model: keras.Model, images: np.ndarray, target: np.ndarray,
             distance: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> np.ndarray:
    """`(B, h, w)` Grad-CAM in [0, 1] of `-distance(embedding, target)` for `(B, H, W, 3)` images.

    Args:
        model: a `feature_model`.
        target: `(D,)` the embedding the images are compared with.
        distance: `((B, D), (1, D)) -> (B, 1)` distances (e.g. `trinet.losses.pairwise.cdist` of a metric).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)  # so that the feature map is recorded even where no variable precedes it
        feature_maps, embeddings = model(images, training=False)
        similarity = -distance(embeddings, tf.convert_to_tensor(target[None], embeddings.dtype))[:, 0]
    gradients = tape.gradient(similarity, feature_maps)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_maps, axis=-1))
    return _unit(cam.numpy())


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`(B, h, w)` -> `(B, H, W)` bilinear, values kept in [0, 1]."""
    import cv2

    return np.stack([np.clip(cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR), 0, 1)
                     for m in maps]) if len(maps) else np.zeros((0, *size), np.float32)


def overlay(image: np.ndarray, amap: np.ndarray) -> np.ndarray:
    """`(H, W, 3)` RGB image (0-255) and an `(H, W)` map in [0, 1] -> `(H, W, 3)` uint8 RGB blend."""
    import cv2

    levels = np.round(255 * np.asarray(amap, np.float64)).astype(np.uint8)
    colours = cv2.applyColorMap(levels, cv2.COLORMAP_JET)[..., ::-1]
    blend = IMAGE_WEIGHT * np.asarray(image, np.float64) + MAP_WEIGHT * colours
    return np.clip(np.round(blend), 0, 255).astype(np.uint8)
