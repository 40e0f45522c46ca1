"""Stateless training augmentations: random erasing and pad-and-crop.

Both take one image `(H, W, 3)` float32 in [0, 255] (H and W may be unknown until run time, as in a
`tf.data` map) and a `(2,)` int32/int64 `seed`, and are pure functions of them: the same image and seed
give the same output, eagerly, in a `tf.function` or in `tf.data`, so a resumed run is exact. Each
function derives its own streams from the seed (`tf.random.experimental.stateless_fold_in` with its own
tag), so one element seed can be shared by erasing, pad-and-crop and `images.train_augment`'s flip and
crop (which use `seed` and `seed[::-1]`) and their draws stay independent.

The Bag of Tricks (Luo et al. 2019) order: resize, flip, `pad_crop` (10 pixels), then `random_erasing`
(probability 0.5) last.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

#: The ImageNet per-channel mean (0.485, 0.456, 0.406) in [0, 255], RGB: the default erasing value. The
#: Bag of Tricks code writes these numbers into the already normalised image; here, on raw pixels, the
#: erased area becomes about 0 after the backbone's mean subtraction, which is what Zhong et al. meant.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)

#: Candidate rectangles drawn at once for one erasing (the original retries up to 100 times).
ERASE_ATTEMPTS = 100

_ERASE_STREAM = 1  # fold-in tags: each augmentation draws from its own stream of the element seed
_PAD_CROP_STREAM = 2


def _streams(seed, tag: int, count: int) -> tf.Tensor:
    """`(count, 2)` int64 seeds derived from `seed` for the augmentation `tag`."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    return tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, tag), count)


def _check_range(name: str, value, low_bound: float, high_bound: float | None) -> tuple[float, float]:
    """`value` as `(low, high)` floats, with `low_bound < low <= high (<= high_bound)`."""
    allowed = f"(low, high) with {low_bound} < low <= high"
    if high_bound is not None:
        allowed += f" <= {high_bound}"
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low, high = float("nan"), float("nan")
    if not (low_bound < low <= high and (high_bound is None or high <= high_bound)):
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return low, high


def random_erasing(image: tf.Tensor, seed: tf.Tensor, probability: float,
                   area_range: tuple[float, float] = (0.02, 0.4),
                   aspect_range: tuple[float, float] = (0.3, 3.33),
                   fill: tuple[float, float, float] = IMAGENET_MEAN_RGB) -> tf.Tensor:
    """Random erasing (Zhong et al. 2017, "Random Erasing Data Augmentation"), stateless.

    With probability `probability`, one rectangle of the image is set to `fill`. Its area is a uniform
    fraction in `area_range` of `H * W` and its aspect ratio h/w is uniform in `aspect_range` (uniform,
    not log-uniform, as in the original and the Bag of Tricks); h and w are rounded to the nearest
    integer. It must fit strictly inside the image (h < H, w < W) and be at least 1x1; its top-left corner
    is uniform over the positions where it fits. The original retries up to 100 times: here
    `ERASE_ATTEMPTS` candidates are drawn at once and the first that fits is used; if none fits the
    image is unchanged.

    Args:
        image: `(H, W, 3)` float in [0, 255].
        seed: `(2,)` int32 or int64; the same seed gives the same output.
        probability: chance of erasing, in [0, 1].
        area_range: `(low, high)` fraction of the image area, 0 < low <= high <= 1.
        aspect_range: `(low, high)` of h / w, 0 < low <= high.
        fill: the RGB value of the erased pixels.

    Returns:
        `(H, W, 3)`, the image's dtype.
    """
    if not 0 <= probability <= 1:
        raise ValueError(f"`probability` must be in [0, 1]. Received: probability={probability!r}")
    area_low, area_high = _check_range("area_range", area_range, 0, 1)
    aspect_low, aspect_high = _check_range("aspect_range", aspect_range, 0, None)
    if len(fill) != 3:
        raise ValueError(f"`fill` must be 3 values (R, G, B). Received: fill={fill!r}")
    if probability == 0:
        return image

    streams = _streams(seed, _ERASE_STREAM, 3)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    area = tf.cast(height * width, tf.float32)
    target = tf.random.stateless_uniform([ERASE_ATTEMPTS], streams[0], area_low, area_high) * area
    aspect = tf.random.stateless_uniform([ERASE_ATTEMPTS], streams[1], aspect_low, aspect_high)
    heights = tf.cast(tf.round(tf.sqrt(target * aspect)), tf.int32)
    widths = tf.cast(tf.round(tf.sqrt(target / aspect)), tf.int32)
    fits = (heights >= 1) & (widths >= 1) & (heights < height) & (widths < width)
    # the first candidate that fits (tf.argmax does not promise the first of ties); the last when none
    # fits, masked out below
    first = tf.reduce_min(tf.where(fits, tf.range(ERASE_ATTEMPTS), ERASE_ATTEMPTS - 1))
    h, w = heights[first], widths[first]
    uniform = tf.random.stateless_uniform([3], streams[2])  # decision, y, x
    erase = (uniform[0] < probability) & tf.reduce_any(fits)
    # floor(u * n) is uniform on 0..n-1; the minimum guards against u * n rounding up to n in float32
    top = tf.minimum(tf.cast(uniform[1] * tf.cast(height - h + 1, tf.float32), tf.int32), height - h)
    left = tf.minimum(tf.cast(uniform[2] * tf.cast(width - w + 1, tf.float32), tf.int32), width - w)
    rows = tf.range(height)
    cols = tf.range(width)
    inside = (((rows >= top) & (rows < top + h))[:, None] & ((cols >= left) & (cols < left + w))[None, :])
    fill = tf.cast(tf.constant(fill, tf.float32), image.dtype)
    return tf.where((inside & erase)[:, :, None], fill, image)


def pad_crop(image: tf.Tensor, seed: tf.Tensor, pad: int) -> tf.Tensor:
    """Zero-pad by `pad` pixels on each side, then crop the original size at a uniform random offset.

    Args:
        image: `(H, W, C)`.
        seed: `(2,)` int32 or int64; the same seed gives the same output.
        pad: pixels added on each side, >= 0; 0 returns the image unchanged.

    Returns:
        `(H, W, C)`: the window of the padded image whose top-left corner is uniform in
        `[0, 2 * pad]^2`.
    """
    if isinstance(pad, bool) or not isinstance(pad, numbers.Integral) or pad < 0:
        raise ValueError(f"`pad` must be an integer >= 0. Received: pad={pad!r}")
    if pad == 0:
        return image
    pad = int(pad)
    offset = tf.random.stateless_uniform([2], _streams(seed, _PAD_CROP_STREAM, 1)[0], 0, 2 * pad + 1,
                                         dtype=tf.int32)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    out = tf.slice(padded, tf.concat([offset, [0]], axis=0), tf.shape(image))
    out.set_shape(image.shape)
    return out
