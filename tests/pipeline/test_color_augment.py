"""Colour jitter and the AutoAugment-style policy: stateless, within their ranges (worked out on constant and
two-valued images), off means unchanged, and each operation of the policy by hand."""

import numpy as np
import pytest
import tensorflow as tf

from trinet.pipeline.augment import (AUTO_AUGMENT_OPS, AUTO_AUGMENT_POLICY, IMAGENET_MEAN_RGB, auto_augment,
                                     auto_contrast, color_jitter, posterize, rotate, shear_x, solarize,
                                     translate_x)
from trinet.pipeline.images import train_augment

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (12, 8, 3)).astype(np.float32)
SEEDS = [tf.constant([5, i], tf.int64) for i in range(40)]


def constant(value, shape=(4, 3)):
    return np.full((*shape, 3), value, np.float32)


def test_same_seed_same_output_and_different_seeds_differ():
    for fn in (lambda s: color_jitter(IMAGE, s, 0.4, 0.4, 0.4, 0.1), lambda s: auto_augment(IMAGE, s, 1.0)):
        outputs = [fn(s).numpy() for s in SEEDS[:8]]
        np.testing.assert_array_equal(fn(tf.constant([5, 3], tf.int32)).numpy(), outputs[3])
        assert len({o.tobytes() for o in outputs}) > 4


def test_off_is_the_identity():
    assert color_jitter(IMAGE, SEEDS[0]) is IMAGE
    assert color_jitter(IMAGE, SEEDS[0], 0, 0, 0, 0) is IMAGE
    assert auto_augment(IMAGE, SEEDS[0], 0.0) is IMAGE
    plain = train_augment(tf.constant(IMAGE), SEEDS[0], (12, 8), (12, 8), True, False, 0, 0.0)
    both_off = train_augment(tf.constant(IMAGE), SEEDS[0], (12, 8), (12, 8), True, False, 0, 0.0, None, 0.0)
    np.testing.assert_array_equal(plain, both_off)


def test_brightness_scales_a_constant_image_by_a_factor_in_range():
    factors = []
    for s in SEEDS:
        out = color_jitter(constant(100.0), s, brightness=0.4).numpy()
        assert np.ptp(out) == 0  # still constant: one factor for the whole image
        factors.append(out[0, 0, 0] / 100.0)
    assert 0.6 <= min(factors) < 0.75 and 1.25 < max(factors) <= 1.4, factors  # uniform on [0.6, 1.4]
    # a range above 1: factors in [0, 1 + B], clipped to 255
    out = [color_jitter(constant(50.0), s, brightness=3.0).numpy()[0, 0, 0] / 50.0 for s in SEEDS]
    assert min(out) >= 0 and max(out) <= 4 and min(out) < 1.0 < max(out)


def test_contrast_blends_with_the_mean_grey_by_a_factor_in_range():
    image = constant(50.0)
    image[2:] = 150.0  # half 50, half 150: mean grey 100
    mean = 100.0
    factors = []
    for s in SEEDS:
        out = color_jitter(image, s, contrast=0.5).numpy()
        # out = c x + (1 - c) mean: c from either half, the same
        c_low, c_high = (out[0, 0, 0] - mean) / (50 - mean), (out[3, 0, 0] - mean) / (150 - mean)
        assert c_low == pytest.approx(c_high, abs=1e-5)
        factors.append(c_low)
    assert 0.5 <= min(factors) < 0.65 and 1.35 < max(factors) <= 1.5, factors
    np.testing.assert_array_equal(color_jitter(constant(77.0), SEEDS[0], contrast=0.5), constant(77.0))


def test_saturation_blends_with_the_grey_image_and_leaves_grey_alone():
    np.testing.assert_allclose(color_jitter(constant(90.0), SEEDS[0], saturation=0.8), constant(90.0),
                               atol=1e-4)
    pixel = np.array([[[200.0, 100.0, 50.0]]], np.float32)
    grey = 0.299 * 200 + 0.587 * 100 + 0.114 * 50  # 124.2
    factors = []
    for s in SEEDS:
        out = color_jitter(pixel, s, saturation=0.3).numpy()[0, 0]
        factor = (out - grey) / (pixel[0, 0] - grey)  # the same for all three channels
        np.testing.assert_allclose(factor, factor[0], rtol=1e-4)
        factors.append(factor[0])
    assert 0.7 <= min(factors) < 0.8 and 1.2 < max(factors) <= 1.3, factors


def test_hue_turns_pure_red_by_a_shift_in_range_and_leaves_grey_alone():
    np.testing.assert_allclose(color_jitter(constant(120.0), SEEDS[0], hue=0.5), constant(120.0), atol=1e-3)
    red = np.array([[[255.0, 0.0, 0.0]]], np.float32)
    shifts = []
    for s in SEEDS:
        r, g, b = color_jitter(red, s, hue=0.1).numpy()[0, 0]
        # red turned by h (|h| < 1/6) is (255, 6h 255, 0) for h > 0 and (255, 0, -6h 255) for h < 0
        assert r == pytest.approx(255, abs=1e-3) and min(g, b) == pytest.approx(0, abs=1e-3)
        shifts.append((g - b) / (6 * 255))
    assert -0.1 <= min(shifts) < -0.06 and 0.06 < max(shifts) <= 0.1, shifts


def test_jitter_keeps_uint8_images_uint8():
    out = color_jitter(tf.constant(IMAGE.astype(np.uint8)), SEEDS[0], 0.3, 0.3, 0.3, 0.05)
    assert out.dtype == tf.uint8 and out.shape == IMAGE.shape


def test_each_operation_of_the_policy_by_hand():
    np.testing.assert_array_equal(posterize(tf.constant([200.0, 37.0, 255.0, 15.9]), 4), [192, 32, 240, 0])
    np.testing.assert_array_equal(solarize(tf.constant([200.0, 128.0, 100.0]), 128), [55, 127, 100])
    two = constant(50.0)
    two[2:, :, 0] = 150.0  # red channel 50 or 150; green and blue flat
    out = auto_contrast(tf.constant(two)).numpy()
    assert set(np.unique(out[..., 0])) == {0.0, 255.0}
    np.testing.assert_array_equal(out[..., 1:], two[..., 1:])  # a flat channel stays as it is

    mean = np.array(IMAGENET_MEAN_RGB, np.float32)
    moved = translate_x(IMAGE, 2.0).numpy()  # whole pixels: exact
    np.testing.assert_allclose(moved[:, 2:], IMAGE[:, :-2], atol=1e-4)
    np.testing.assert_allclose(moved[:, :2], np.broadcast_to(mean, moved[:, :2].shape), atol=1e-4)
    np.testing.assert_allclose(rotate(IMAGE, 180.0), IMAGE[::-1, ::-1], atol=1e-2)
    np.testing.assert_allclose(rotate(IMAGE, 0.0), IMAGE, atol=1e-4)
    # a shear of 1 about the middle row (cy = 5.5): row y takes the input's columns x + (y - 5.5)
    sheared = shear_x(IMAGE, 1.0).numpy()
    np.testing.assert_allclose(sheared[7, :6], 0.5 * (IMAGE[7, 1:7] + IMAGE[7, 2:8]), atol=1e-3)
    assert sorted(AUTO_AUGMENT_OPS) == sorted({name for sub in AUTO_AUGMENT_POLICY for name, _, _ in sub})


def test_the_policy_is_applied_with_its_probability():
    invert = (((("solarize", 1.0, 0.0),),))  # one sub-policy: always invert everything
    inverted = [np.array_equal(auto_augment(IMAGE, s, 0.5, invert).numpy(), 255.0 - IMAGE) for s in SEEDS]
    unchanged = [np.array_equal(auto_augment(IMAGE, s, 0.5, invert).numpy(), IMAGE) for s in SEEDS]
    assert all(a != b for a, b in zip(inverted, unchanged))
    assert 10 <= sum(inverted) <= 30  # binomial(40, 0.5): outside this with probability < 0.2%
    assert all(np.array_equal(auto_augment(IMAGE, s, 1.0, invert).numpy(), 255.0 - IMAGE) for s in SEEDS[:5])
    never = (((("solarize", 0.0, 0.0),),))  # the step's own probability 0
    assert all(np.array_equal(auto_augment(IMAGE, s, 1.0, never).numpy(), IMAGE) for s in SEEDS[:5])
    with pytest.raises(ValueError, match="`probability` must be in"):
        auto_augment(IMAGE, SEEDS[0], 1.5)
    with pytest.raises(ValueError, match="operation of"):
        auto_augment(IMAGE, SEEDS[0], 0.5, ((("invert", 0.5, 0.0),),))


def test_tf_data_gives_the_eager_result():
    """Per-image seeds in a tf.data map (as the training pipeline) give what eager calls give."""
    def augment(s):
        return color_jitter(auto_augment(tf.constant(IMAGE), s, 0.8), s, 0.3, 0.3, 0.3, 0.05)
    seeds = tf.stack(SEEDS[:6])
    mapped = list(tf.data.Dataset.from_tensor_slices(seeds).map(augment).as_numpy_iterator())
    for s, out in zip(SEEDS[:6], mapped):
        np.testing.assert_allclose(out, augment(s).numpy(), atol=1e-3)
        assert out.min() >= 0 and out.max() <= 255
