"""Stateless training augmentations: random erasing, pad-and-crop, colour jitter and an AutoAugment-style
policy.

Both take one image `(H, W, 3)` float32 in [0, 255] (H and W may be unknown until run time, as in a
`tf.data` map) and a `(2,)` int32/int64 `seed`, and are pure functions of them: the same image and seed
give the same output, eagerly, in a `tf.function` or in `tf.data`, so a resumed run is exact. Each
function derives its own streams from the seed (`tf.random.experimental.stateless_fold_in` with its own
tag), so one element seed can be shared by erasing, pad-and-crop and `images.train_augment`'s flip and
crop (which use `seed` and `seed[::-1]`) and their draws stay independent.

The Bag of Tricks (Luo et al. 2019) order: resize, flip, `pad_crop` (10 pixels), then `random_erasing`
(probability 0.5) last. `images.train_augment` applies `auto_augment` right after the resize and
`color_jitter` just before the erasing, as fast-reid does.
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


# -- colour augmentation (issue 12): colour jitter and an AutoAugment-style policy --------------------------

_COLOR_JITTER_STREAM = 3
_AUTO_AUGMENT_STREAM = 4

#: Weights of R, G, B in the grey value (ITU-R 601-2 luma, as PIL's `convert("L")`; torchvision's 0.2989
#: makes them sum to 0.9999, which darkens a grey image by a hair): a grey pixel's grey value is itself.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _as_float(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32)


def _as_dtype(image: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Back to `dtype`: integer images are rounded and saturated."""
    if dtype.is_integer:
        return tf.saturate_cast(tf.round(image), dtype)
    return tf.cast(image, dtype)


def _clip(image: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(image, 0.0, 255.0)


def _gray(image: tf.Tensor) -> tf.Tensor:
    """`(H, W, 3)` -> `(H, W, 1)` grey values."""
    return tf.reduce_sum(image * tf.constant(GRAY_WEIGHTS, tf.float32), axis=-1, keepdims=True)


def _blend(image: tf.Tensor, other: tf.Tensor, factor) -> tf.Tensor:
    """`factor * image + (1 - factor) * other`, clipped to [0, 255] (PIL's and torchvision's enhancers)."""
    return _clip(factor * image + (1.0 - factor) * other)


def adjust_brightness(image: tf.Tensor, factor) -> tf.Tensor:
    """The image times `factor` (a blend with black), clipped. `(H, W, 3)` float in [0, 255]."""
    return _blend(image, tf.zeros_like(image), factor)


def adjust_contrast(image: tf.Tensor, factor) -> tf.Tensor:
    """A blend with the image's mean grey value (a scalar): `factor` 0 gives a flat grey image."""
    return _blend(image, tf.reduce_mean(_gray(image)), factor)


def adjust_saturation(image: tf.Tensor, factor) -> tf.Tensor:
    """A blend with the image's grey version: `factor` 0 gives the grey image."""
    return _blend(image, _gray(image), factor)


def adjust_hue(image: tf.Tensor, shift) -> tf.Tensor:
    """Turn the hue by `shift` (in turns of the colour wheel, [-0.5, 0.5]); grey pixels do not change."""
    return _clip(tf.image.adjust_hue(image / 255.0, shift) * 255.0)


def color_jitter(image: tf.Tensor, seed: tf.Tensor, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0) -> tf.Tensor:
    """Colour jitter with torchvision's `ColorJitter` ranges, stateless.

    The brightness, contrast and saturation factors are uniform in `[max(0, 1 - x), 1 + x]` and the hue
    shift uniform in `[-hue, hue]`; they are applied in this fixed order (torchvision draws a random order),
    each clipped to [0, 255]. A range of 0 leaves that property alone (all 0: the image unchanged).

    Args:
        image: `(H, W, 3)` float in [0, 255], or uint8.
        seed: `(2,)` int32 or int64; the same seed gives the same output.
        brightness, contrast, saturation: >= 0.
        hue: in [0, 0.5].

    Returns:
        `(H, W, 3)`, the image's dtype.
    """
    for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation),
                        ("hue", hue)):
        if not (isinstance(value, numbers.Real) and 0 <= value <= (0.5 if name == "hue" else float("inf"))):
            allowed = "in [0, 0.5]" if name == "hue" else ">= 0"
            raise ValueError(f"`{name}` must be a number {allowed}. Received: {name}={value!r}")
    if not (brightness or contrast or saturation or hue):
        return image
    image = tf.convert_to_tensor(image)
    dtype = image.dtype
    out = _as_float(image)
    u = tf.random.stateless_uniform([4], _streams(seed, _COLOR_JITTER_STREAM, 1)[0])
    for i, (value, adjust) in enumerate(((brightness, adjust_brightness), (contrast, adjust_contrast),
                                         (saturation, adjust_saturation))):
        if value:
            low, high = max(0.0, 1.0 - value), 1.0 + value
            out = adjust(out, low + (high - low) * u[i])
    if hue:
        out = adjust_hue(out, float(hue) * (2.0 * u[3] - 1.0))
    return _as_dtype(out, dtype)


def _transform(image: tf.Tensor, matrix: tf.Tensor, fill=IMAGENET_MEAN_RGB) -> tf.Tensor:
    """Resample `image` (float `(H, W, 3)`) bilinearly at `matrix` (`(6,)`: x_in = a0 x + a1 y + a2,
    y_in = b0 x + b1 y + b2, for each output pixel (x, y)); pixels from outside the image take `fill`."""
    fill = tf.constant(fill, tf.float32)
    transforms = tf.concat([tf.cast(matrix, tf.float32), tf.zeros([2], tf.float32)], axis=0)[None]
    # shifted by the fill value, so that the constant 0 of the kernel's padding becomes `fill`
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=(image - fill)[None], transforms=transforms, output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    return out + fill


def _centre(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.cast(tf.shape(image), tf.float32)
    return (shape[1] - 1.0) / 2.0, (shape[0] - 1.0) / 2.0


def rotate(image: tf.Tensor, degrees) -> tf.Tensor:
    """Rotate by `degrees` about the image centre (positive: clockwise on screen, y pointing down); the
    corners come in as the ImageNet mean."""
    angle = tf.cast(degrees, tf.float32) * (3.141592653589793 / 180.0)
    c, s = tf.cos(angle), tf.sin(angle)
    cx, cy = _centre(image)
    return _transform(image, tf.stack([c, s, cx - c * cx - s * cy, -s, c, cy + s * cx - c * cy]))


def shear_x(image: tf.Tensor, amount) -> tf.Tensor:
    """Shear horizontally about the middle row: the output pixel (x, y) is the input's
    (x + amount (y - cy), y)."""
    amount = tf.cast(amount, tf.float32)
    _, cy = _centre(image)
    return _transform(image, tf.stack([1.0, amount, -amount * cy, 0.0, 1.0, 0.0]))


def translate_x(image: tf.Tensor, pixels) -> tf.Tensor:
    """Move the content `pixels` to the right (negative: left); the uncovered side is the ImageNet mean."""
    pixels = tf.cast(pixels, tf.float32)
    return _transform(image, tf.stack([1.0, 0.0, -pixels, 0.0, 1.0, 0.0]))


def auto_contrast(image: tf.Tensor) -> tf.Tensor:
    """Stretch each channel linearly so that its minimum becomes 0 and its maximum 255 (a flat channel
    stays as it is)."""
    low = tf.reduce_min(image, axis=[0, 1], keepdims=True)
    high = tf.reduce_max(image, axis=[0, 1], keepdims=True)
    stretched = (image - low) * (255.0 / tf.maximum(high - low, 1e-6))
    return _clip(tf.where(high > low, stretched, image))


def posterize(image: tf.Tensor, bits: int) -> tf.Tensor:
    """Keep the `bits` highest bits of each (integer part of a) value: `floor(x / 2^(8-bits)) 2^(8-bits)`."""
    step = float(2 ** (8 - int(bits)))
    return tf.floor(image / step) * step


def solarize(image: tf.Tensor, threshold: float) -> tf.Tensor:
    """Invert (`255 - x`) every value at or above `threshold`."""
    return tf.where(image >= threshold, 255.0 - image, image)


def _op(name: str, image: tf.Tensor, magnitude: float, sign: tf.Tensor) -> tf.Tensor:
    """Operation `name` of the policy at `magnitude`; `sign` (+-1) is the direction of the signed ones."""
    if name == "auto_contrast":
        return auto_contrast(image)
    if name == "posterize":
        return posterize(image, int(magnitude))
    if name == "solarize":
        return solarize(image, magnitude)
    if name == "brightness":
        return adjust_brightness(image, 1.0 + sign * magnitude)
    if name == "contrast":
        return adjust_contrast(image, 1.0 + sign * magnitude)
    if name == "color":
        return adjust_saturation(image, 1.0 + sign * magnitude)
    if name == "rotate":
        return _clip(rotate(image, sign * magnitude))
    if name == "shear_x":
        return _clip(shear_x(image, sign * magnitude))
    if name == "translate_x":
        return _clip(translate_x(image, sign * magnitude * tf.cast(tf.shape(image)[1], tf.float32)))
    raise ValueError(f"Unknown auto-augment operation {name!r}; expected one of {sorted(AUTO_AUGMENT_OPS)}")


#: The operations of the policy and what their magnitude means. Signed ones go either way (random sign).
AUTO_AUGMENT_OPS = {
    "auto_contrast": "each channel stretched to [0, 255] (no magnitude)",
    "posterize": "the number of bits kept",
    "solarize": "the threshold at and above which values are inverted",
    "brightness": "signed: a factor of 1 +- m (a blend with black)",
    "contrast": "signed: a factor of 1 +- m (a blend with the mean grey)",
    "color": "signed: a saturation factor of 1 +- m (a blend with the grey image)",
    "rotate": "signed: degrees about the centre",
    "shear_x": "signed: horizontal shear about the middle row",
    "translate_x": "signed: horizontal shift, a fraction of the width",
}

#: trinet's AutoAugment-style policy (after Cubuk et al. 2019, not their searched ImageNet policy): a
#: sub-policy is drawn uniformly, and each of its two `(operation, probability, magnitude)` steps is applied
#: with its probability. Only mild geometry (no vertical flips or large rotations: people stand upright);
#: what leaves the image is filled with the ImageNet mean.
AUTO_AUGMENT_POLICY: tuple[tuple[tuple[str, float, float], ...], ...] = (
    (("posterize", 0.4, 4), ("rotate", 0.6, 10.0)),
    (("solarize", 0.6, 192), ("auto_contrast", 0.6, 0)),
    (("color", 0.4, 0.3), ("contrast", 0.6, 0.3)),
    (("brightness", 0.6, 0.3), ("shear_x", 0.4, 0.15)),
    (("translate_x", 0.5, 0.1), ("auto_contrast", 0.4, 0)),
    (("rotate", 0.6, 15.0), ("color", 0.6, 0.5)),
    (("solarize", 0.4, 128), ("posterize", 0.6, 5)),
    (("contrast", 0.4, 0.5), ("shear_x", 0.6, 0.1)),
)


def auto_augment(image: tf.Tensor, seed: tf.Tensor, probability: float,
                 policy: tuple[tuple[tuple[str, float, float], ...], ...] = AUTO_AUGMENT_POLICY) -> tf.Tensor:
    """With probability `probability`, one sub-policy of `policy` drawn uniformly, stateless.

    Each step `(operation, probability, magnitude)` of the sub-policy is applied with its own probability,
    a signed operation in a random direction (`AUTO_AUGMENT_OPS`). Values are clipped to [0, 255] after
    each step.

    Args:
        image: `(H, W, 3)` float in [0, 255], or uint8.
        seed: `(2,)` int32 or int64; the same seed gives the same output.
        probability: chance of augmenting the image, in [0, 1].

    Returns:
        `(H, W, 3)`, the image's dtype.
    """
    if not 0 <= probability <= 1:
        raise ValueError(f"`probability` must be in [0, 1]. Received: probability={probability!r}")
    for sub in policy:
        for name, p, _ in sub:
            if name not in AUTO_AUGMENT_OPS or not 0 <= p <= 1:
                raise ValueError(f"`policy` steps must be (operation, probability in [0, 1], magnitude) "
                                 f"with an operation of {sorted(AUTO_AUGMENT_OPS)}. Received: {(name, p)!r}")
    if probability == 0 or not policy:
        return image
    image = tf.convert_to_tensor(image)
    dtype = image.dtype
    steps = max(len(sub) for sub in policy)
    # apply, which sub-policy, then each step's decision and sign
    u = tf.random.stateless_uniform([2 + 2 * steps], _streams(seed, _AUTO_AUGMENT_STREAM, 1)[0])
    which = tf.minimum(tf.cast(u[1] * len(policy), tf.int32), len(policy) - 1)
    signs = tf.where(u[2 + steps:] < 0.5, -1.0, 1.0)

    def branch(sub):
        def run(x):
            for i, (name, p, magnitude) in enumerate(sub):
                x = tf.cond(u[2 + i] < p, lambda x=x, name=name, m=magnitude, i=i: _op(name, x, m, signs[i]),
                            lambda x=x: x)
            return x
        return run

    original = _as_float(image)
    out = tf.cond(u[0] < probability,
                  lambda: tf.switch_case(which, [lambda sub=sub: branch(sub)(original) for sub in policy]),
                  lambda: original)
    out = tf.ensure_shape(out, original.shape)
    return _as_dtype(out, dtype)
