"""The fused batch-norm layer (`--batch_norm fused`) against Keras' own, for every backbone and head."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from trinet.models.backbones import hub
from trinet.models.backbones.catalog import BACKBONES
from trinet.models.builder import ModelSpec, build_model, embedding_model, load_embedding_model
from trinet.models.layers import FusedBatchNormalization, batch_norm

RNG = np.random.default_rng(0)


def _randomise(layer_weights):
    """Weights far from their initial values (moving variances positive)."""
    for v in layer_weights:
        low = 0.5 if "variance" in v.path else -1.0
        v.assign(RNG.uniform(low, 2.0, v.shape).astype("float32"))


@pytest.mark.parametrize("shape", [(4, 5, 3, 8), (6, 8)])
@pytest.mark.parametrize("options", [{}, {"center": False}, {"scale": False}])
def test_the_layer_equals_keras_in_training_and_inference(shape, options):
    x = tf.constant(RNG.normal(2.0, 3.0, shape).astype("float32"))
    ref = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **options)
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **options)
    ref.build(shape)
    fused.build(shape)
    _randomise(ref.weights)
    fused.set_weights(ref.get_weights())
    before = ref.get_weights()
    outputs, grads = [], []
    for layer in (ref, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.sin(y))  # a loss whose gradient depends on y
        outputs.append(y)
        grads.append(tape.gradient(loss, [x] + layer.trainable_weights))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=2e-6)
    for g_fused, g_ref in zip(grads[1], grads[0]):
        np.testing.assert_allclose(g_fused, g_ref, rtol=1e-4, atol=1e-4)
    # the moving statistics took the same step (Keras averages the biased batch variance)
    for w_fused, w_ref in zip(fused.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(w_fused, w_ref, rtol=1e-6, atol=1e-6)
    assert not np.allclose(fused.get_weights()[-1], before[-1])  # the step did move them
    np.testing.assert_allclose(fused(x, training=False), ref(x, training=False), atol=2e-6)


def test_a_frozen_layer_uses_its_moving_statistics_as_keras_does():
    x = tf.constant(RNG.normal(1.0, 2.0, (3, 4, 4, 5)).astype("float32"))
    ref, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
    ref.build(x.shape)
    fused.build(x.shape)
    _randomise(ref.weights)
    fused.set_weights(ref.get_weights())
    ref.trainable = fused.trainable = False
    before = fused.get_weights()
    np.testing.assert_allclose(fused(x, training=True), ref(x, training=True), atol=2e-6)
    for a, b in zip(fused.get_weights(), before):
        np.testing.assert_array_equal(a, b)


HEADS = {"lunet": "bnneck", "resnet50": "fc1024", "resnet101": "fc1024_normalize", "mobilenet_v1": "bnneck",
         "mobilenet_v2": "fc1024", "convnext_tiny": "bnneck", "osnet_x1_0": "bnneck", "osnet_x0_75": "fc1024",
         "osnet_x0_5": "direct", "osnet_x0_25": "fc1024_normalize", "resnet50_ibn_a": "bnneck",
         "resnet50_ibn_b": "fc1024"}


@pytest.mark.parametrize("name", sorted(set(BACKBONES) - {hub.NAME}))  # keras_hub: no batch norm of its own
def test_every_backbone_and_head_computes_the_same_with_either_layer(name):
    assert set(HEADS) == set(BACKBONES) - {hub.NAME}
    stride = 1 if BACKBONES[name].last_stride else 2
    spec = ModelSpec(name, HEADS[name], 8, last_stride=stride)
    ref = build_model(spec)
    fused = build_model(ModelSpec(name, HEADS[name], 8, last_stride=stride, batch_norm="fused"))
    layers = [layer for layer in fused._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    assert layers and all(isinstance(layer, FusedBatchNormalization) for layer in layers)
    # checkpoints load into either (ConvNeXt has unnamed layers and variables, which Keras numbers in the
    # order a process creates them: there, the shapes in order)
    key = (lambda v: tuple(v.shape)) if name == "convnext_tiny" else (lambda v: v.path)
    assert [key(v) for v in fused.weights] == [key(v) for v in ref.weights]
    fused.set_weights(ref.get_weights())
    images = RNG.uniform(0, 255, (4, 64, 32, 3)).astype("float32")
    train_ref, train_fused = ref(images, training=True), fused(images, training=True)
    # IBN's instance norms normalise conv4's 4x2 positions of a 64x32 input, and ResNet-101's 33 blocks
    # normalise over 4 images of 2x1 to 4x2 positions: both amplify rounding (ResNet-101 once reached 1.6e-3
    # here, on a loaded machine)
    tolerance = 1e-2 if "_ibn_" in name or name == "resnet101" else 1e-3
    for key in ("features", "embedding"):
        np.testing.assert_allclose(train_fused[key], train_ref[key], rtol=tolerance, atol=tolerance)
    moving = [(a, b) for a, b in zip(fused.weights, ref.weights) if "moving" in a.path]
    for a, b in moving:
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(fused(images, training=False)["embedding"],
                               ref(images, training=False)["embedding"], rtol=1e-3, atol=1e-3)


def test_a_saved_model_reloads_with_the_fused_layers(tmp_path):
    model = embedding_model(build_model(ModelSpec("lunet", "bnneck", 8, batch_norm="fused")))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = load_embedding_model(path)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in loaded._flatten_layers())
    images = RNG.uniform(0, 255, (2, 32, 16, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(images, training=False), model(images, training=False))


def test_the_registry_builds_each_kind():
    assert type(batch_norm("keras")) is keras.layers.BatchNormalization
    assert type(batch_norm("fused", synchronized=True)) is FusedBatchNormalization
    with pytest.raises(ValueError, match="Unknown batch norm 'cudnn'; expected one of"):
        batch_norm("cudnn")


@pytest.mark.parametrize("saved, loaded", [("keras", "fused"), ("fused", "keras")])
def test_a_keras_weights_file_loads_into_either_kind(tmp_path, saved, loaded):
    """Keras' .weights.h5 files name layers after their class; LuNet loads a file of either kind."""
    from trinet.models.backbones.catalog import build_backbone

    source = build_backbone("lunet", batch_norm=saved)
    _randomise(source.weights)
    path = str(tmp_path / "lunet.weights.h5")
    source.save_weights(path)
    target = build_backbone("lunet", weights=path, batch_norm=loaded)
    assert all(isinstance(layer, FusedBatchNormalization) == (loaded == "fused")
               for layer in target._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization))
    for a, b in zip(target.weights, source.weights):
        np.testing.assert_array_equal(a, b)
