"""The tf.data input pipeline of training (P x K batches), and the decode check shared with embedding."""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from trinet.core.errors import TrinetError, listing
from trinet.data.datasets import Dataset, find_non_images

from trinet.pipeline.images import decode, train_augment
from trinet.pipeline.sampling import PKSampler, element_seeds


#: The generator stops when it is this many batches ahead of the last batch delivered to the trainer:
#: only a long run of batches that all failed to decode gets there (prefetching stays far below).
MAX_AHEAD = 32


class Delivered:
    """The index of the last batch the trainer received (shared with the generator)."""

    def __init__(self, index: int):
        self.index = index


def training_dataset(paths: list[str], sampler: PKSampler, start: int, stop: int | None, *,
                     net_size: tuple[int, int], pre_crop_size: tuple[int, int], flip: bool,
                     crop: bool, threads: int, pad: int = 0, erasing_prob: float = 0.0,
                     delivered: Delivered | None = None, color_jitter: tuple[float, ...] | None = None,
                     auto_augment_prob: float = 0.0, cameras: np.ndarray | None = None) -> tf.data.Dataset:
    """Batches `start <= index < stop` (forever if None) of `sampler` as `(index, images, labels)`.

    `index` is the batch index (int64 scalar), `images` `(P*K, H, W, 3)` float32 in [0, 255],
    `labels` `(P*K,)` int32 identity codes. Images are decoded and augmented in parallel, in order,
    and prefetched. A batch with an image that fails to decode is skipped; the caller sees the gap in
    `index`. With `delivered`, the stream ends once it runs `MAX_AHEAD` batches ahead of the last
    delivered one (every batch failing would otherwise never yield, and never end). `color_jitter` and
    `auto_augment_prob`: see `images.train_augment`. With `cameras` (`(N,)` the camera of each row), `images`
    is `{"image": (P*K, H, W, 3), "camera": (P*K,) int32}`, the input of a model with SIE.
    """
    batch = sampler.batch_size
    seed = sampler.seed
    all_paths = tf.constant(paths)
    codes = tf.constant(sampler.codes)
    camera_table = None if cameras is None else tf.constant(np.asarray(cameras, np.int32))

    def generate():
        for index, rows in sampler.batches(start, stop):
            if delivered is not None and index - delivered.index > MAX_AHEAD:
                return
            yield np.full(batch, index, np.int64), rows, element_seeds(seed, index, batch)

    signature = (tf.TensorSpec((batch,), tf.int64), tf.TensorSpec((batch,), tf.int64),
                 tf.TensorSpec((batch, 2), tf.int64))

    def load(index, row, element_seed):
        image = train_augment(decode(tf.gather(all_paths, row)), element_seed, net_size, pre_crop_size,
                              flip, crop, pad, erasing_prob, color_jitter, auto_augment_prob)
        if camera_table is not None:
            image = {"image": image, "camera": tf.gather(camera_table, row)}
        return index, image, tf.gather(codes, row)

    ds = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    ds = ds.map(load, num_parallel_calls=threads, deterministic=True)
    ds = ds.ignore_errors()  # the trainer names the files of a skipped batch
    # Re-form the batches by index: a batch that lost an image never completes and is dropped,
    # instead of shifting every later batch.
    ds = ds.group_by_window(key_func=lambda index, image, label: index,
                            reduce_func=lambda key, window: window.batch(batch), window_size=batch)
    ds = ds.filter(lambda index, images, labels: tf.shape(labels)[0] == batch)  # end-of-run leftovers
    ds = ds.map(lambda index, images, labels: (index[0], images, labels))
    return ds.prefetch(2)


def screen_images(dataset: Dataset, source: str, *, decode_all: bool, reason: str, on_bad_image: str,
                  threads: int = 8) -> Dataset:
    """`dataset` without its empty and non-image files and, with `decode_all`, without its images that do
    not decode (logged as done for `reason`); under `on_bad_image` "skip" they are left out with a warning.

    Raises:
        TrinetError: under `on_bad_image` "error", any such image (all of them named, with `source`, the
            CSV).
    """
    log = logging.getLogger("trinet.train")
    bad = find_non_images(dataset)
    what = "empty or not an image file (JPEG, PNG, BMP or GIF)"
    if decode_all:
        log.info("Decoding all %d images of %s (%s)...", len(dataset), source, reason)
        bad |= ~decodable(dataset.paths(), threads=threads)
        what = "empty, not an image file, or not decodable"
    if not bad.any():
        return dataset
    message = f"{source}: {bad.sum()} of {len(dataset)} images are {what}: {listing(dataset.fids[bad])}"
    if on_bad_image == "error":
        raise TrinetError(f"{message}. Remove them from {source}, or pass --on_bad_image skip.")
    log.warning("%s. Skipping them.", message)
    return dataset.subset(~bad)


def decodable(paths: list[str], threads: int = 8) -> np.ndarray:
    """`(N,)` bool: whether each image decodes with the decoder training uses (all decoded in parallel)."""
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths), dtype=np.int64), list(paths)))
    ds = ds.map(lambda i, path: (i, tf.shape(decode(path))), num_parallel_calls=threads)
    ok = np.zeros(len(paths), dtype=bool)
    for indices, _ in ds.ignore_errors().batch(1024):
        ok[indices.numpy()] = True
    return ok
