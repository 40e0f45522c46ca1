"""Identification losses as pure TensorFlow functions: the softmax cross-entropy with label smoothing, the
centre loss, and the margin-based logits of CosFace, ArcFace and the circle loss.

Identification and centre losses (Luo et al. 2019, "Bag of Tricks and a Strong Baseline for Deep Person
Re-identification"; Wen et al. 2016, "A Discriminative Feature Learning Approach for Deep Face Recognition")
return per-sample `(B,)` losses.
"""

from __future__ import annotations

import math

import tensorflow as tf


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor, label_smoothing: float = 0.0) -> tf.Tensor:
    """Softmax cross-entropy with label smoothing, `(B, C)` logits and `(B,)` int labels -> `(B,)`.

    The target is `(1 - e) * one_hot + e / C` (Szegedy et al. 2016; the Bag of Tricks uses e = 0.1),
    the same as Keras' `CategoricalCrossentropy(label_smoothing=e)`.
    """
    classes = tf.shape(logits)[-1]
    target = tf.one_hot(labels, classes, dtype=logits.dtype)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / tf.cast(classes, logits.dtype)
    return -tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=-1), axis=-1)


#: Bounds of each sample's squared distance to its centre (the Bag of Tricks' clamp).
CENTER_CLIP = (1e-12, 1e12)


def center_loss(features: tf.Tensor, labels: tf.Tensor, centers: tf.Tensor) -> tf.Tensor:
    """Centre loss: `(B, D)` features, `(B,)` int labels, `(C, D)` centres -> `(B,)` squared
    euclidean distance of each feature to its class centre, clipped to `CENTER_CLIP`."""
    own = tf.gather(centers, labels)
    return tf.clip_by_value(tf.reduce_sum(tf.square(features - own), axis=-1), *CENTER_CLIP)


# -- margin-based identification logits (`--classifier`; registry: `trinet.config.registries.CLASSIFIERS`) --
# Each maps the cosines `(B, C)` between the L2-normalised features and class weights, and the `(B,)` int
# labels, to the `(B, C)` logits that the cross-entropy sees. The model's own `logits` output is `s cos`; the
# margin needs the labels, so it is applied in the identification loss only.

#: Floor of 1 - cos^2 under the square root of ArcFace's sine (its gradient at |cos| = 1 stays finite).
SINE_EPSILON = 1e-12


def linear_logits(logits: tf.Tensor, labels: tf.Tensor, scale: float = 1.0, margin: float = 0.0) -> tf.Tensor:
    """The plain softmax classifier: its logits unchanged (`scale` and `margin` are not used)."""
    del labels, scale, margin
    return logits


def _target(cos: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.one_hot(labels, tf.shape(cos)[-1], on_value=True, off_value=False)


def cosface_logits(cos: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """CosFace / AM-softmax (Wang et al. 2018): `s (cos - m)` for the true class, `s cos` for the others."""
    return scale * tf.where(_target(cos, labels), cos - margin, cos)


def arcface_logits(cos: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """ArcFace (Deng et al. 2019): `s cos(theta + m)` for the true class, `s cos` for the others.

    `cos(theta + m) = cos cos m - sin sin m`. Where `theta + m > pi` (cos < cos(pi - m)) that would rise
    again with theta; there the true class takes `cos - m sin m` instead (the reference implementation's
    fallback, not the "easy margin"), which keeps it decreasing in theta and continuous.
    """
    sin = tf.sqrt(tf.maximum(1.0 - tf.square(cos), SINE_EPSILON))
    shifted = cos * math.cos(margin) - sin * math.sin(margin)
    shifted = tf.where(cos > math.cos(math.pi - margin), shifted, cos - margin * math.sin(margin))
    return scale * tf.where(_target(cos, labels), shifted, cos)


def circle_logits(cos: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """The softmax form of circle loss (Sun et al. 2020), as fast-reid's classifier: the true class
    `s a_p (cos - (1 - m))` with `a_p = [1 + m - cos]+`, the others `s a_n (cos - m)` with `a_n = [cos + m]+`.
    The weights `a_p`, `a_n` are not differentiated (as in the paper)."""
    detached = tf.stop_gradient(cos)
    positive = tf.nn.relu(1.0 + margin - detached) * (cos - (1.0 - margin))
    negative = tf.nn.relu(detached + margin) * (cos - margin)
    return scale * tf.where(_target(cos, labels), positive, negative)
