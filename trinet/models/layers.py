"""Custom Keras layers, registered so that a saved `.keras` model reloads in safe mode."""

from __future__ import annotations

import keras
from keras import ops

#: Per-channel means of the Caffe-style ImageNet preprocessing, in BGR order (keras.applications).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
#: Floor of a squared norm before L2 normalisation (a zero vector stays zero instead of becoming NaN).
NORM_EPSILON = 1e-24


@keras.saving.register_keras_serializable(package="trinet")
class ImagePreprocessing(keras.layers.Layer):
    """Map raw RGB images in [0, 255] to what a backbone expects, inside the model.

    Modes (those of `keras.applications.imagenet_utils.preprocess_input`):
        caffe: RGB -> BGR, then subtract the ImageNet BGR mean (ResNet).
        tf: scale to [-1, 1] (MobileNet, LuNet).

    Input and output: `(B, H, W, 3)` float.
    """

    MODES = ("caffe", "tf")

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"Unknown preprocessing mode {mode!r}; expected one of {list(self.MODES)}")
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="trinet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' `BatchNormalization` computed with TensorFlow's fused kernel where it applies.

    Keras 3 computes batch norm unfused on TensorFlow (moments, then normalisation: several passes over
    the activations); TensorFlow's `FusedBatchNormV3` does it in one kernel with its own gradient. Same
    variables, same configuration and the same semantics as Keras' layer: the batch statistics in training
    (the moving variance is updated with the biased batch variance, as Keras does), the moving ones in
    inference or when the layer is frozen (`trainable=False`). Inputs other than `(B, H, W, C)`
    normalised over the last axis, masked, synchronised or renormalised ones take Keras' own path.

    Input and output: `(B, H, W, C)`.
    """

    def _fused(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.synchronized
                and not self.renorm and len(inputs.shape) in (2, 4)
                and self.axis in (-1, len(inputs.shape) - 1)
                and inputs.shape[-1] is not None)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        dtype = inputs.dtype if inputs.dtype in (tf.float16, tf.bfloat16, tf.float32) else tf.float32
        x = tf.cast(inputs, dtype)
        if len(inputs.shape) == 2:  # (B, C) features: the kernel's (B, 1, 1, C)
            x = x[:, None, None, :]
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones((channels,), tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros((channels,), tf.float32)
        moving_mean = tf.cast(self.moving_mean, tf.float32)
        moving_variance = tf.cast(self.moving_variance, tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            # The kernel returns the unbiased (n - 1) batch variance; Keras averages the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=moving_mean, variance=moving_variance, epsilon=self.epsilon,
                data_format="NHWC", is_training=False)
        if len(inputs.shape) == 2:
            y = y[:, 0, 0, :]
        return ops.cast(y, self.compute_dtype)


def batch_norm(kind: str = "keras", synchronized: bool = False, **config) -> keras.layers.BatchNormalization:
    """A batch-norm layer of `kind` (`trinet.config.registries.BATCH_NORMS`), synchronised across replicas or
    not, with Keras' `BatchNormalization` arguments `config`."""
    from trinet.config.registries import BATCH_NORMS

    return BATCH_NORMS.resolve(kind)(synchronized=synchronized, **config)


def with_batch_norm(config: dict, kind: str, synchronized: bool) -> dict:
    """A functional model's `get_config()` with every batch-norm layer of `kind` and synchronised or not
    (edited in place and returned; the layers keep their names, so their variables keep their paths)."""
    target = keras.saving.serialize_keras_object(batch_norm(kind))
    for layer in config["layers"]:
        if layer["class_name"] in ("BatchNormalization", "FusedBatchNormalization"):
            layer.update({k: target[k] for k in ("module", "class_name", "registered_name")})
            layer["config"]["synchronized"] = synchronized
    return config


@keras.saving.register_keras_serializable(package="trinet")
class CosineClassifier(keras.layers.Layer):
    """`(B, F) -> (B, C)`: `scale` times the cosine between each feature and each class weight, both
    L2-normalised (the classifier of CosFace, ArcFace and circle loss; their margins are applied in the
    loss). The kernel is `(F, C)`, named `kernel`, as a bias-free `Dense` layer's. Computed in float32
    whatever the dtype policy (the cosines are close to 1, where float16 is coarse).
    """

    def __init__(self, units: int, scale: float, kernel_initializer="glorot_uniform", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.units, self.scale = int(units), float(scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer=self.kernel_initializer, name="kernel")

    def call(self, inputs):
        features = ops.cast(inputs, "float32")
        features = features / ops.sqrt(ops.maximum(ops.sum(ops.square(features), axis=-1, keepdims=True),
                                                   NORM_EPSILON))
        kernel = self.kernel / ops.sqrt(ops.maximum(ops.sum(ops.square(self.kernel), axis=0, keepdims=True),
                                                    NORM_EPSILON))
        return self.scale * ops.matmul(features, kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "scale": self.scale,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package="trinet")
class StripePooling(keras.layers.Layer):
    """PCB's horizontal stripes: the feature map cut into `num_stripes` bands of rows (as even as the height
    allows: band i holds rows floor(i h / S) to floor((i + 1) h / S)), each averaged.

    Input: `(B, h, w, F)` with h >= S. Output: a list of S `(B, F)` tensors, top to bottom.
    """

    def __init__(self, num_stripes: int, **kwargs):
        super().__init__(**kwargs)
        if num_stripes < 1:
            raise ValueError(f"num_stripes must be >= 1, got {num_stripes}")
        self.num_stripes = num_stripes

    def call(self, feature_map):
        rows = ops.mean(ops.cast(feature_map, "float32"), axis=2)  # (B, h, F)
        height = ops.shape(rows)[1]
        sums = ops.concatenate([ops.zeros_like(rows[:, :1]), ops.cumsum(rows, axis=1)], axis=1)  # (B, h+1, F)
        bounds = ops.floor_divide(ops.arange(self.num_stripes + 1) * height, self.num_stripes)
        edges = ops.take(sums, bounds, axis=1)  # (B, S+1, F)
        sizes = ops.cast(bounds[1:] - bounds[:-1], "float32")[None, :, None]
        means = ops.cast((edges[:, 1:] - edges[:, :-1]) / sizes, self.compute_dtype)  # (B, S, F)
        return [means[:, i] for i in range(self.num_stripes)]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], input_shape[-1])] * self.num_stripes

    def get_config(self):
        return {**super().get_config(), "num_stripes": self.num_stripes}


@keras.saving.register_keras_serializable(package="trinet")
class Stack(keras.layers.Layer):
    """A list of `(B, C)` tensors stacked into `(B, P, C)` (PCB's per-part logits)."""

    def call(self, parts):
        return ops.stack(parts, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(input_shape), input_shape[0][-1])


@keras.saving.register_keras_serializable(package="trinet")
class ChannelSlice(keras.layers.Layer):
    """Channels `start` to `stop` (exclusive) of the last axis: `(..., C) -> (..., stop - start)` (IBN-a's
    split of a feature map into the channels that instance norm takes and those that batch norm takes)."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= start < stop:
            raise ValueError(f"ChannelSlice needs 0 <= start < stop; received start={start}, stop={stop}")
        self.start, self.stop = int(start), int(stop)

    def call(self, inputs):
        return inputs[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}
