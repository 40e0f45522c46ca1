"""Global poolings of a backbone's feature map, `(B, H, W, C) -> (B, C)` (the builders of the registry
`trinet.config.registries.POOLINGS`).

- avg: global average pooling (the default; the Bag of Tricks baseline).
- max: global max pooling.
- gem: generalized-mean pooling with a learnable exponent p (Radenovic et al. 2018, "Fine-tuning CNN Image
  Retrieval with No Human Annotation"): p = 1 is average pooling, p -> inf tends to max pooling.
"""

from __future__ import annotations

import keras
from keras import ops

from trinet.config.registries import POOLINGS


def generalized_mean(features, p, epsilon: float = 1e-6):
    """`(mean over H, W of clip(x, epsilon)^p)^(1/p)`.

    Args:
        features: `(B, H, W, C)` float.
        p: the exponent, a scalar (cast to the features' dtype).
        epsilon: lower clip, so that the power of a zero or negative activation is defined.

    Returns:
        `(B, C)`, the features' dtype.
    """
    p = ops.cast(p, features.dtype)
    powered = ops.power(ops.maximum(features, ops.cast(epsilon, features.dtype)), p)
    return ops.power(ops.mean(powered, axis=(1, 2)), 1.0 / p)


@keras.saving.register_keras_serializable(package="trinet")
class GeneralizedMeanPooling(keras.layers.Layer):
    """GeM pooling, `(B, H, W, C) -> (B, C)`: `generalized_mean` with a scalar weight "p".

    The exponent is a float32 variable whatever the dtype policy, and the output has the layer's compute
    dtype. Under a float16 or bfloat16 policy the power and mean are still taken in float32 (as PyTorch's
    autocast does for `pow`): in float16, x^3 overflows from x = 41 on.

    Args:
        p: the initial exponent, > 0 (3 in the paper).
        trainable_p: whether p is learnt.
        epsilon: lower clip of the activations, > 0.
    """

    def __init__(self, p: float = 3.0, trainable_p: bool = True, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        if not p > 0:
            raise ValueError(f"`p` must be > 0. Received: p={p!r}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon!r}")
        self.p_init = float(p)
        self.trainable_p = bool(trainable_p)
        self.epsilon = float(epsilon)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        self.p = self.add_weight(name="p", shape=(), initializer=keras.initializers.Constant(self.p_init),
                                 dtype="float32", trainable=self.trainable_p)

    def call(self, features):
        pooled = generalized_mean(ops.cast(features, "float32"), self.p, self.epsilon)
        return ops.cast(pooled, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "p": self.p_init, "trainable_p": self.trainable_p,
                "epsilon": self.epsilon}


def average_pooling(name: str = "pooling") -> keras.layers.Layer:
    """Global average pooling `(B, H, W, C) -> (B, C)`."""
    return keras.layers.GlobalAveragePooling2D(name=name)


def max_pooling(name: str = "pooling") -> keras.layers.Layer:
    """Global max pooling `(B, H, W, C) -> (B, C)`."""
    return keras.layers.GlobalMaxPooling2D(name=name)


def gem_pooling(name: str = "pooling") -> keras.layers.Layer:
    """Generalised mean pooling with a learnable p (initially 3)."""
    return GeneralizedMeanPooling(name=name)


def make_pooling(kind: str, name: str = "pooling") -> keras.layers.Layer:
    """A new pooling layer of `kind` (one of `trinet.config.registries.POOLINGS`), named `name`.

    Raises:
        ValueError: `kind` is not a registered pooling.
    """
    return POOLINGS.resolve(kind)(name=name)


def class_token(name: str = "pooling") -> keras.layers.Layer:
    """`--pooling token`: the backbone's class token `(B, D)` as the pooled feature (the builder gives it the
    token, not the map; `trinet.models.backbones.hub`)."""
    return keras.layers.Identity(name=name)
