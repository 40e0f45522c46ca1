"""Stateless augmentations: random erasing and pad-and-crop, eagerly, in tf.function and in tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from trinet.pipeline.augment import ERASE_ATTEMPTS, IMAGENET_MEAN_RGB, pad_crop, random_erasing

RNG = np.random.default_rng(0)
# Whole numbers in [0, 255]: never equal to a fill of IMAGENET_MEAN_RGB, and never 0 (the padding).
IMAGE = RNG.integers(1, 256, (24, 12, 3)).astype(np.float32)
FILL = np.array(IMAGENET_MEAN_RGB, np.float32)


def seed(i: int) -> tf.Tensor:
    return tf.constant([7, i], tf.int64)


def erased_box(image: np.ndarray, out: np.ndarray, fill=FILL):
    """`(top, left, h, w)` of the erased rectangle, checking that it is one axis-aligned rectangle equal to
    `fill` and that every other pixel is unchanged; None when nothing changed."""
    changed = np.any(out != image, axis=-1)
    if not changed.any():
        return None
    rows, cols = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
    top, left, h, w = rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    box = np.zeros_like(changed)
    box[top:top + h, left:left + w] = True
    np.testing.assert_array_equal(changed, box)  # the changed pixels fill their bounding box
    np.testing.assert_array_equal(out[box], np.broadcast_to(fill, (h * w, 3)))
    np.testing.assert_array_equal(out[~box], image[~box])
    return top, left, h, w


def test_same_seed_same_output_and_different_seeds_differ():
    outputs = [random_erasing(IMAGE, seed(i), 1.0).numpy() for i in range(5)]
    np.testing.assert_array_equal(random_erasing(IMAGE, seed(3), 1.0).numpy(), outputs[3])
    np.testing.assert_array_equal(random_erasing(IMAGE, tf.constant([7, 3], tf.int32), 1.0).numpy(),
                                  outputs[3])  # int32 and int64 seeds agree
    boxes = [erased_box(IMAGE, out) for out in outputs]
    assert len(set(boxes)) == 5, boxes

    crops = [pad_crop(IMAGE, seed(i), 4).numpy() for i in range(5)]
    np.testing.assert_array_equal(pad_crop(IMAGE, seed(3), 4).numpy(), crops[3])
    assert len({c.tobytes() for c in crops}) > 1


def test_probability_zero_and_one():
    for i in range(5):
        np.testing.assert_array_equal(random_erasing(IMAGE, seed(i), 0.0), IMAGE)
        assert erased_box(IMAGE, random_erasing(IMAGE, seed(i), 1.0).numpy()) is not None


def test_probability_half_erases_about_half():
    erased = sum(erased_box(IMAGE, random_erasing(IMAGE, seed(i), 0.5).numpy()) is not None
                 for i in range(40))
    assert 10 <= erased <= 30  # binomial(40, 0.5): outside this with probability < 0.2%


def test_fixed_area_and_aspect_give_the_hand_worked_rectangles():
    # area 0.1 of 40 x 40 = 160, aspect 1: side round(sqrt(160)) = round(12.65) = 13
    image = RNG.integers(1, 256, (40, 40, 3)).astype(np.float32)
    for i in range(3):
        out = random_erasing(image, seed(i), 1.0, area_range=(0.1, 0.1), aspect_range=(1.0, 1.0),
                             fill=(0.5, 1.5, 2.5))
        assert erased_box(image, out.numpy(), np.array([0.5, 1.5, 2.5], np.float32))[2:] == (13, 13)
    # aspect is h / w: area 0.125 * 1600 = 200 with aspect 2 gives h = sqrt(400) = 20, w = sqrt(100) = 10
    out = random_erasing(image, seed(0), 1.0, area_range=(0.125, 0.125), aspect_range=(2.0, 2.0))
    assert erased_box(image, out.numpy())[2:] == (20, 10)


def test_no_candidate_fits_leaves_the_image_unchanged():
    # aspect 4 with half the area of a 24 x 12 image: h = round(sqrt(144 * 4)) = 24, not < 24
    out = random_erasing(IMAGE, seed(0), 1.0, area_range=(0.5, 0.5), aspect_range=(4.0, 4.0))
    np.testing.assert_array_equal(out, IMAGE)


def test_area_aspect_and_position_over_200_seeds():
    image = RNG.integers(1, 256, (40, 20, 3)).astype(np.float32)
    erase = tf.function(lambda s: random_erasing(image, s, 1.0))
    boxes = [erased_box(image, erase(seed(i)).numpy()) for i in range(200)]
    assert all(box is not None for box in boxes)
    tops, lefts, hs, ws = np.array(boxes).T
    assert np.all(tops + hs <= 40) and np.all(lefts + ws <= 20) and np.all(hs < 40) and np.all(ws < 20)
    # h and w are rounded: sqrt(area * aspect) lies in [h - 0.5, h + 0.5], sqrt(area / aspect) in
    # [w - 0.5, w + 0.5], so area is in [(h-.5)(w-.5), (h+.5)(w+.5)] and aspect in
    # [(h-.5)/(w+.5), (h+.5)/(w-.5)]; 800 = 40 * 20 pixels
    assert np.all((hs - 0.5) * (ws - 0.5) <= 0.4 * 800) and np.all((hs + 0.5) * (ws + 0.5) >= 0.02 * 800)
    assert np.all((hs - 0.5) / (ws + 0.5) <= 3.33) and np.all((hs + 0.5) / (ws - 0.5) >= 0.3)
    # ... and spread over the ranges and positions, not stuck in one corner of them
    fraction, aspect = hs * ws / 800, hs / ws
    assert fraction.min() < 0.06 and fraction.max() > 0.3
    assert aspect.min() < 0.6 and aspect.max() > 2.5
    assert tops.min() == 0 and lefts.min() == 0 and np.any(tops + hs == 40) and np.any(lefts + ws == 20)


def find_offset(padded: np.ndarray, out: np.ndarray):
    """Every `(dy, dx)` at which `out` is a window of `padded`."""
    h, w = out.shape[:2]
    return [(dy, dx) for dy in range(padded.shape[0] - h + 1) for dx in range(padded.shape[1] - w + 1)
            if np.array_equal(padded[dy:dy + h, dx:dx + w], out)]


def test_pad_crop_is_a_window_of_the_zero_padded_image():
    padded = np.pad(IMAGE, ((3, 3), (3, 3), (0, 0)))
    offsets = []
    for i in range(12):
        out = pad_crop(IMAGE, seed(i), 3).numpy()
        assert out.shape == IMAGE.shape
        found = find_offset(padded, out)
        assert len(found) == 1 and 0 <= min(found[0]) and max(found[0]) <= 6
        offsets.append(found[0])
    assert len(set(offsets)) > 4  # 12 draws out of 49 offsets
    np.testing.assert_array_equal(pad_crop(IMAGE, seed(0), 0), IMAGE)
    np.testing.assert_array_equal(pad_crop(IMAGE, seed(5), np.int64(3)), pad_crop(IMAGE, seed(5), 3))


@pytest.mark.parametrize("call,message", [
    (lambda: random_erasing(IMAGE, seed(0), 1.5),
     "`probability` must be in [0, 1]. Received: probability=1.5"),
    (lambda: random_erasing(IMAGE, seed(0), 0.5, area_range=(0.4, 0.02)),
     "`area_range` must be (low, high) with 0 < low <= high <= 1. Received: area_range=(0.4, 0.02)"),
    (lambda: random_erasing(IMAGE, seed(0), 0.5, area_range=(0.1, 1.5)), "Received: area_range=(0.1, 1.5)"),
    (lambda: random_erasing(IMAGE, seed(0), 0.5, aspect_range=(0, 3)),
     "`aspect_range` must be (low, high) with 0 < low <= high. Received: aspect_range=(0, 3)"),
    (lambda: random_erasing(IMAGE, seed(0), 0.5, fill=(1, 2)), "`fill` must be 3 values"),
    (lambda: pad_crop(IMAGE, seed(0), -1), "`pad` must be an integer >= 0. Received: pad=-1"),
    (lambda: pad_crop(IMAGE, seed(0), 1.5), "Received: pad=1.5"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def both(image, element_seed):
    return pad_crop(random_erasing(image, element_seed, 1.0), element_seed, 2)


def test_tf_function_with_unknown_spatial_dims_matches_eager():
    graph = tf.function(both, input_signature=[tf.TensorSpec((None, None, 3), tf.float32),
                                               tf.TensorSpec((2,), tf.int64)])
    for i in range(3):
        np.testing.assert_array_equal(graph(IMAGE, seed(i)), both(IMAGE, seed(i)))
    small = IMAGE[:10, :7]
    np.testing.assert_array_equal(graph(small, seed(1)), both(small, seed(1)))
    assert ERASE_ATTEMPTS == 100


def test_tf_data_map_with_unknown_spatial_dims_matches_eager():
    sizes = [(24, 12), (16, 9), (20, 20)]
    images = [RNG.integers(1, 256, (*size, 3)).astype(np.float32) for size in sizes]
    dataset = tf.data.Dataset.from_generator(lambda: ((im, seed(i)) for i, im in enumerate(images)),
                                             output_signature=(tf.TensorSpec((None, None, 3), tf.float32),
                                                               tf.TensorSpec((2,), tf.int64)))
    mapped = dataset.map(both)
    assert mapped.element_spec.shape.as_list() == [None, None, 3]
    for i, out in enumerate(mapped):
        np.testing.assert_array_equal(out, both(images[i], seed(i)))
        assert out.shape == images[i].shape and not np.array_equal(out, images[i])
