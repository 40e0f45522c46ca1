"""Global poolings: GeM against hand-worked values, the avg/max limits, its learnable p, save and reload,
half precision, and the registry."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trinet.models.pooling import POOLINGS, GeneralizedMeanPooling, make_pooling

#: One image, one channel, two positions holding 1 and 3: `(1, 1, 2, 1)`.
ONE_THREE = np.array([1.0, 3.0], np.float32).reshape(1, 1, 2, 1)
RNG = np.random.default_rng(0)
POSITIVE = RNG.uniform(0.1, 1.0, (2, 3, 2, 4)).astype(np.float32)


@pytest.mark.parametrize("p,expected", [(1.0, 2.0), (2.0, 5 ** 0.5), (3.0, 14 ** (1 / 3))])
def test_gem_hand_values(p, expected):
    # ((1^p + 3^p) / 2)^(1/p): 2, sqrt(5), 14^(1/3)
    out = GeneralizedMeanPooling(p=p)(ONE_THREE)
    assert out.shape == (1, 1)
    assert float(out[0, 0]) == pytest.approx(expected, rel=1e-6)


def test_gem_clips_at_epsilon():
    # clip(-1, 0.25)^1 = 0.25: (0.25 + 3) / 2
    x = np.array([-1.0, 3.0], np.float32).reshape(1, 1, 2, 1)
    assert float(GeneralizedMeanPooling(p=1.0, epsilon=0.25)(x)[0, 0]) == pytest.approx(1.625)


def test_gem_p1_is_average_and_large_p_tends_to_max():
    np.testing.assert_allclose(GeneralizedMeanPooling(p=1.0)(POSITIVE), POSITIVE.mean(axis=(1, 2)), rtol=1e-5)
    big = keras.ops.convert_to_numpy(GeneralizedMeanPooling(p=200.0)(POSITIVE))
    top = POSITIVE.max(axis=(1, 2))
    # mean(x^p) >= max^p / 6 over 6 positions, so max >= GeM >= max * 6^(-1/200) ~ 0.991 max
    assert np.all(big <= top * (1 + 1e-5)) and np.all(big >= top * 6 ** (-1 / 200) * (1 - 1e-5))
    assert not np.allclose(GeneralizedMeanPooling(p=3.0)(POSITIVE), top, rtol=1e-2)


def test_p_is_a_learnable_float32_scalar():
    layer = GeneralizedMeanPooling(p=1.0)
    x = tf.constant(ONE_THREE)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(layer(x))
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == ["p"]
    assert layer.p.dtype == "float32" and tuple(layer.p.shape) == ()
    # d/dp (mean x^p)^(1/p) at p = 1 for x = (1, 3): 2 * (-ln 2 + 3 ln 3 / 4)
    gradient = tape.gradient(out, layer.p)
    assert float(gradient) == pytest.approx(2 * (-np.log(2) + 3 * np.log(3) / 4), rel=1e-5)

    frozen = GeneralizedMeanPooling(trainable_p=False)
    frozen(x)
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 1


def test_save_and_reload_in_safe_mode(tmp_path):
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, GeneralizedMeanPooling(p=2.5, epsilon=1e-3, name="gem")(inputs))
    model.get_layer("gem").p.assign(4.0)  # as if learnt: the weight, not the config, must come back
    expected = keras.ops.convert_to_numpy(model(POSITIVE))
    path = str(tmp_path / "gem.keras")
    model.save(path)
    clone = keras.saving.load_model(path, safe_mode=True)
    layer = clone.get_layer("gem")
    assert isinstance(layer, GeneralizedMeanPooling)
    assert (layer.p_init, layer.epsilon, layer.trainable_p) == (2.5, 1e-3, True)
    assert float(layer.p) == 4.0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(POSITIVE)), expected)


@pytest.mark.parametrize("input_dtype,policy,out_dtype", [
    ("float16", "float32", "float32"), ("bfloat16", "float32", "float32"),
    ("float32", "float16", "float16"), ("float32", "mixed_float16", "float16"),
    ("bfloat16", "mixed_bfloat16", "bfloat16"), ("float32", "bfloat16", "bfloat16")])
def test_half_precision(input_dtype, policy, out_dtype):
    layer = GeneralizedMeanPooling(p=3.0, dtype=policy)
    out = layer(tf.cast(POSITIVE, input_dtype))
    assert out.dtype == out_dtype and layer.p.dtype == "float32"
    reference = GeneralizedMeanPooling(p=3.0)(POSITIVE)
    np.testing.assert_allclose(tf.cast(out, "float32"), reference, rtol=2e-2)
    # 100^3 = 1e6 overflows float16 (max 65504); the pooling of a constant 100 is 100 all the same
    hundred = layer(tf.fill([1, 2, 2, 3], tf.constant(100.0, input_dtype)))
    np.testing.assert_allclose(tf.cast(hundred, "float32"), np.full((1, 3), 100.0), rtol=1e-2)


def test_registry_builds_each_pooling():
    assert sorted(POOLINGS) == ["avg", "gem", "max", "token"]
    expected = {"avg": POSITIVE.mean(axis=(1, 2)), "max": POSITIVE.max(axis=(1, 2)),
                "gem": np.mean(POSITIVE ** 3, axis=(1, 2)) ** (1 / 3)}
    token = POSITIVE[:, 0, 0]  # `token` is given the class token (B, C), not the map: it passes it on
    for kind in sorted(POOLINGS):
        layer = make_pooling(kind, name=f"pool_{kind}")
        assert isinstance(layer, keras.layers.Layer) and layer.name == f"pool_{kind}"
        if kind == "token":
            np.testing.assert_array_equal(layer(token), token)
        else:
            np.testing.assert_allclose(layer(POSITIVE), expected[kind], rtol=1e-5)
    assert make_pooling("avg").name == "pooling"


def test_errors_name_the_value():
    with pytest.raises(ValueError,
                       match=r"Unknown pooling 'mean'; expected one of \['avg', 'gem', 'max', 'token'\]"):
        make_pooling("mean")
    with pytest.raises(ValueError, match=r"`p` must be > 0. Received: p=0"):
        GeneralizedMeanPooling(p=0)
    with pytest.raises(ValueError, match=r"`epsilon` must be > 0. Received: epsilon=0.0"):
        GeneralizedMeanPooling(epsilon=0.0)
