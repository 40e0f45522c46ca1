"""Image decoding and augmentation in TensorFlow (the training pipeline and embed.py's views).

Images are float32 `(H, W, 3)` RGB in [0, 255]. Sizes are `(height, width)`.
"""

from __future__ import annotations

import tensorflow as tf

from trinet.pipeline.views import FIVE


def decode(path: tf.Tensor) -> tf.Tensor:
    """Read and decode a JPEG, PNG, BMP or GIF file to `(H, W, 3)` float32 in [0, 255].

    Grayscale images are replicated to three channels; an alpha channel is dropped. The EXIF
    orientation of a JPEG is ignored (TensorFlow's decoder does not apply it): training, embedding and
    the rank pictures of evaluate.py (`plots.read_image`) all use the stored pixels, so they agree.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.cast(image, tf.float32)


def resize(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Bilinear resize to `size` (as the original `tf.image.resize_images`)."""
    return tf.image.resize(image, size, method="bilinear")


def crop_offsets(source: tuple[int, int], size: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Top-left `(y, x)` of each of the five crops of `size` out of an image of `source` size.

    The centre crop starts at `floor((source - size) / 2)`, as in the original.

    Raises:
        ValueError: the crop is larger than the image.
    """
    (sh, sw), (h, w) = source, size
    if h > sh or w > sw:
        raise ValueError(f"crop {h}x{w} is larger than the image {sh}x{sw}")
    return {"center": ((sh - h) // 2, (sw - w) // 2), "top_left": (0, 0), "top_right": (0, sw - w),
            "bottom_left": (sh - h, 0), "bottom_right": (sh - h, sw - w)}


def crop(image: tf.Tensor, offset: tuple[int, int], size: tuple[int, int]) -> tf.Tensor:
    """The `size` crop of `image` at top-left `offset`."""
    return image[offset[0]:offset[0] + size[0], offset[1]:offset[1] + size[1], :]


def train_augment(image: tf.Tensor, seed: tf.Tensor, net_size: tuple[int, int],
                  pre_crop_size: tuple[int, int], flip: bool, random_crop: bool, pad: int = 0,
                  erasing_prob: float = 0.0, color_jitter: tuple[float, ...] | None = None,
                  auto_augment_prob: float = 0.0) -> tf.Tensor:
    """Resize, then the AutoAugment-style policy, random flip, random crop, pad-and-crop, colour jitter and
    random erasing, deterministic in `seed` (`(2,)` int).

    Without crop augmentation the image is resized to `net_size`; with it, to `pre_crop_size` and a
    random `net_size` crop is taken. `pad` > 0 pads by that many pixels and crops the size back at a
    random place; `erasing_prob` > 0 erases a random rectangle with that probability;
    `auto_augment_prob` > 0 applies the policy with that probability; `color_jitter` is the
    `(brightness, contrast, saturation, hue)` ranges (`trinet.pipeline.augment`). Each draw derives its own
    seed from `seed`.
    """
    image = resize(image, pre_crop_size if random_crop else net_size)
    if auto_augment_prob:
        from trinet.pipeline.augment import auto_augment
        image = auto_augment(image, seed, auto_augment_prob)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed)
    if random_crop:
        image = tf.image.stateless_random_crop(image, (*net_size, 3), seed=seed[::-1])
    if pad:
        from trinet.pipeline.augment import pad_crop
        image = pad_crop(image, seed, pad)
    if color_jitter is not None and any(color_jitter):
        from trinet.pipeline.augment import color_jitter as jitter
        image = jitter(image, seed, *color_jitter)
    if erasing_prob:
        from trinet.pipeline.augment import random_erasing
        image = random_erasing(image, seed, erasing_prob)
    return image


def embedding_views(image: tf.Tensor, net_size: tuple[int, int], pre_crop_size: tuple[int, int],
                    flip: bool, crop_mode: str | None) -> tf.Tensor:
    """The test-time views of one decoded image, `(M, h, w, 3)`, in the order of `views.view_names`.

    The image is resized to `pre_crop_size` when cropping (or for `avgpool`), else to `net_size`;
    with `flip` the mirror image follows the original, and each is then cropped.
    """
    image = resize(image, pre_crop_size if crop_mode else net_size)
    bases = [image, tf.reverse(image, axis=[1])] if flip else [image]
    if crop_mode in (None, "avgpool"):
        return tf.stack(bases)
    offsets = crop_offsets(pre_crop_size, net_size)
    names = ("center",) if crop_mode == "center" else FIVE
    return tf.stack([crop(base, offsets[name], net_size) for base in bases for name in names])
