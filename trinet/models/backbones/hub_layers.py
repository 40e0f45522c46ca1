"""The Keras layers of trinet's keras-hub backbones (`trinet.models.backbones.hub`): TransReID's token
embedding of a ViT (overlapping patches, position embeddings resized to the input's patch grid, the camera
embedding of SIE), the token sequence split into the class token and the patch-token map, and the input
scaling of a preset.

TransReID: He et al. 2021, "TransReID: Transformer-based Object Re-Identification".
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
from keras import ops


def patch_grid(size: tuple[int, int], patch: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """`(h, w)`: the patches of a valid convolution of kernel `patch` and `stride` over an image of `size`."""
    return (size[0] - patch[0]) // stride[0] + 1, (size[1] - patch[1]) // stride[1] + 1


#: The cubic convolution's parameter of PyTorch's bicubic interpolation, which TransReID resizes with.
CUBIC_A = -0.75


def cubic_weights(source: int, target: int, a: float = CUBIC_A) -> np.ndarray:
    """`(target, source)` float64: the weights of a bicubic resize of `source` samples to `target` along one
    axis, as PyTorch's `interpolate(mode="bicubic", align_corners=False)`: half-pixel centres, Keys' cubic
    kernel with `a`, the taps beyond an edge taken from the edge sample. Each row sums to 1."""
    def kernel(x):
        x = np.abs(x)
        return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                        np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))

    weights = np.zeros((target, source))
    centres = (np.arange(target) + 0.5) * source / target - 0.5
    first = np.floor(centres).astype(int) - 1
    for tap in range(4):
        index = first + tap
        np.add.at(weights, (np.arange(target), np.clip(index, 0, source - 1)), kernel(centres - index))
    return weights


def resize_position_embedding(embedding: np.ndarray, source: tuple[int, int], target: tuple[int, int],
                              prefix: int = 1) -> np.ndarray:
    """Position embeddings of a `source` patch grid resized to a `target` grid, as TransReID's
    `resize_pos_embed`: the `prefix` leading rows (the class token's) are kept, the grid's rows are resized
    bicubically (`cubic_weights` along each axis), each channel on its own.

    Args:
        embedding: `(prefix + sh * sw, D)` or `(1, prefix + sh * sw, D)`.

    Returns:
        `(prefix + th * tw, D)`, or with the leading 1 if `embedding` had it; float32.
    """
    batched = embedding.ndim == 3
    table = np.asarray(embedding[0] if batched else embedding, np.float64)
    if table.shape[0] != prefix + source[0] * source[1]:
        raise ValueError(f"`embedding` has {table.shape[0]} rows, not {prefix} + {source[0]} x {source[1]}. "
                         f"Received: embedding.shape={embedding.shape}")
    head, grid = table[:prefix], table[prefix:].reshape(source[0], source[1], -1)
    if tuple(source) != tuple(target):
        grid = np.einsum("ys,xt,stc->yxc", cubic_weights(source[0], target[0]),
                         cubic_weights(source[1], target[1]), grid)
    resized = np.concatenate([head, grid.reshape(target[0] * target[1], -1)]).astype(np.float32)
    return resized[None] if batched else resized


@keras.saving.register_keras_serializable(package="trinet")
class TokenEmbedding(keras.layers.Layer):
    """A ViT's input tokens `(B, H, W, 3)` (and, with cameras, `(B,)` int camera numbers) ->
    `(B, prefix + h * w, D)`: the patches' linear projection (a convolution of kernel `patch_size` and
    `stride`; a stride below the patch size overlaps the patches, TransReID's 12 for 16), the class token in
    front, learnt position embeddings of the `grid` (`h, w`) of the input size, and with `num_cameras` > 0
    SIE's camera embedding: `camera_scale` times the camera's learnt vector, added to every token.

    The camera vectors start as TransReID's (truncated normal, std 0.02), so that cameras differ from the
    first step. Cameras are numbered from 0 (`trinet.data.datasets`); one beyond the table is an error of
    the gather.

    Args:
        hidden_dim: D.
        patch_size, stride: `(ph, pw)` and `(sh, sw)`.
        grid: `(h, w)` patches of the input size (`patch_grid`).
        use_class_token: a class token in front (prefix 1), or none (prefix 0).
        use_patch_bias: a bias of the projection.
        num_cameras: the rows of the camera table (0: no camera input).
        camera_scale: SIE's lambda (3.0 in TransReID).
    """

    def __init__(self, hidden_dim: int, patch_size: Sequence[int], stride: Sequence[int], grid: Sequence[int],
                 use_class_token: bool = True, use_patch_bias: bool = True, num_cameras: int = 0,
                 camera_scale: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.stride = tuple(int(s) for s in stride)
        self.grid = tuple(int(g) for g in grid)
        self.use_class_token = bool(use_class_token)
        self.use_patch_bias = bool(use_patch_bias)
        if num_cameras < 0:
            raise ValueError(f"`num_cameras` must be >= 0. Received: num_cameras={num_cameras}")
        self.num_cameras = int(num_cameras)
        self.camera_scale = float(camera_scale)
        self.prefix = 1 if self.use_class_token else 0

    def build(self, input_shape):
        image_shape = input_shape[0] if self.num_cameras else input_shape
        self.projection = keras.layers.Conv2D(self.hidden_dim, self.patch_size, strides=self.stride,
                                              padding="valid", use_bias=self.use_patch_bias,
                                              dtype=self.dtype_policy, name="patch_embedding")
        self.projection.build(image_shape)
        if self.use_class_token:
            self.class_token = self.add_weight(name="class_token", shape=(1, 1, self.hidden_dim),
                                               initializer=keras.initializers.RandomNormal(stddev=0.02))
        positions = self.prefix + self.grid[0] * self.grid[1]
        self.position_embedding = self.add_weight(
            name="position_embedding", shape=(1, positions, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        if self.num_cameras:
            self.camera_embedding = self.add_weight(
                name="camera_embedding", shape=(self.num_cameras, self.hidden_dim),
                initializer=keras.initializers.TruncatedNormal(stddev=0.02))

    def call(self, inputs):
        images, cameras = inputs if self.num_cameras else (inputs, None)
        patches = self.projection(images)
        tokens = ops.reshape(patches, (ops.shape(patches)[0], -1, self.hidden_dim))
        if self.use_class_token:
            batch = ops.shape(tokens)[0]
            token = ops.cast(self.class_token, tokens.dtype)
            tokens = ops.concatenate([ops.tile(token, (batch, 1, 1)), tokens], axis=1)
        tokens = tokens + ops.cast(self.position_embedding, tokens.dtype)
        if cameras is not None:
            camera = ops.take(self.camera_embedding, ops.cast(ops.reshape(cameras, (-1,)), "int32"), axis=0)
            tokens = tokens + ops.cast(self.camera_scale * camera, tokens.dtype)[:, None, :]
        return tokens

    def compute_output_shape(self, input_shape):
        image_shape = input_shape[0] if self.num_cameras else input_shape
        return (image_shape[0], self.prefix + self.grid[0] * self.grid[1], self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "patch_size": list(self.patch_size),
                "stride": list(self.stride), "grid": list(self.grid), "use_class_token": self.use_class_token,
                "use_patch_bias": self.use_patch_bias, "num_cameras": self.num_cameras,
                "camera_scale": self.camera_scale}


@keras.saving.register_keras_serializable(package="trinet")
class TokenSplit(keras.layers.Layer):
    """A transformer's tokens `(B, prefix + h * w, D)` -> `[(B, h, w, D) patch-token map, (B, D) first
    token]`: the map is what trinet's poolings, PCB and the local branch see (the patch tokens in raster
    order, as the patch convolution wrote them); the first token is the class token (`--pooling token`).

    Args:
        grid: `(h, w)`.
        prefix: the tokens before the patches (the class token and any register tokens), >= 1.
    """

    def __init__(self, grid: Sequence[int], prefix: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.grid = tuple(int(g) for g in grid)
        if prefix < 1:
            raise ValueError(f"`prefix` must be >= 1 (a class token). Received: prefix={prefix}")
        self.prefix = int(prefix)

    def call(self, tokens):
        patches = tokens[:, self.prefix:]
        grid = ops.reshape(patches, (ops.shape(tokens)[0], self.grid[0], self.grid[1], ops.shape(tokens)[-1]))
        return [grid, tokens[:, 0]]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], *self.grid, input_shape[-1]), (input_shape[0], input_shape[-1])]

    def get_config(self):
        return {**super().get_config(), "grid": list(self.grid), "prefix": self.prefix}


def _numbers(value: Any) -> float | list[float]:
    """A number, or a list of numbers, as floats (a layer's config)."""
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


@keras.saving.register_keras_serializable(package="trinet")
class ScaleOffset(keras.layers.Layer):
    """Raw RGB `(B, H, W, 3)` in [0, 255] -> `x * scale + offset` (per channel or scalar): a keras-hub
    preset's image converter, inside the model.

    Args:
        scale, offset: a number or 3 numbers.
    """

    def __init__(self, scale: float | Sequence[float] = 1 / 127.5, offset: float | Sequence[float] = -1.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.scale = _numbers(scale)
        self.offset = _numbers(offset)

    def call(self, images):
        x = ops.cast(images, self.compute_dtype)
        return x * ops.cast(ops.convert_to_tensor(self.scale), x.dtype) + ops.cast(
            ops.convert_to_tensor(self.offset), x.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
