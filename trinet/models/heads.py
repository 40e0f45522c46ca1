"""Embedding heads: layers that map pooled features `(B, F)` to the model's outputs.

A head returns a dict of `(B, ·)` tensors:
    metric: the feature the metric losses (triplet, centre) see;
    embedding: the inference embedding (what embed.py writes);
    raw: the embedding before any L2 normalisation (its norms are monitored);
    neck: the feature the identification classifier sees.

Layer names start with `head_` so that weights can be transferred selectively. Keras is imported
inside the builders: this registry is cheap to import (`train.py --help`).
"""

from __future__ import annotations

from typing import Any, Callable

#: Standard deviation of the classifier's initial weights (open-reid, the Bag of Tricks).
CLASSIFIER_INIT_STD = 0.001
#: Standard deviation of a cosine classifier's initial weights (normalised before use: only their directions
#: matter, and a larger norm keeps the first gradients' steps small).
COSINE_INIT_STD = 0.01


def _linear(x, embedding_dim: int):
    import keras

    return keras.layers.Dense(embedding_dim, kernel_initializer=keras.initializers.Orthogonal(),
                              name="head_emb")(x)


def _normalize(x):
    import keras

    return keras.layers.UnitNormalization(axis=-1, name="head_normalize")(x)


def _fc1024(x, bn: dict):
    """FC-1024 (no bias: batch norm follows), batch norm, ReLU: the TriNet head's hidden layer."""
    import keras

    from trinet.models.layers import batch_norm

    x = keras.layers.Dense(1024, use_bias=False, name="head_fc1024")(x)
    x = batch_norm(**bn, momentum=0.9, epsilon=1e-5, name="head_bn")(x)
    return keras.layers.ReLU(name="head_relu")(x)


def _outputs(emb, raw) -> dict[str, Any]:
    return {"metric": emb, "embedding": emb, "raw": raw, "neck": raw}


def direct(x, embedding_dim: int, **_):
    """One linear layer to the embedding."""
    emb = _linear(x, embedding_dim)
    return _outputs(emb, emb)


def direct_normalize(x, embedding_dim: int, **_):
    """One linear layer, then L2 normalisation."""
    emb = _linear(x, embedding_dim)
    return _outputs(_normalize(emb), emb)


def fc1024(x, embedding_dim: int, bn: dict | None = None, **_):
    """The paper's TriNet head: FC-1024, batch norm, ReLU, linear."""
    emb = _linear(_fc1024(x, bn or {}), embedding_dim)
    return _outputs(emb, emb)


def fc1024_normalize(x, embedding_dim: int, bn: dict | None = None, **_):
    """The TriNet head, then L2 normalisation."""
    emb = _linear(_fc1024(x, bn or {}), embedding_dim)
    return _outputs(_normalize(emb), emb)


def bnneck(x, embedding_dim: int, test_feature: str | None = "after", bn: dict | None = None, **_):
    """BNNeck (Luo et al. 2019): batch norm (shift frozen at 0) between the pooled feature and the classifier.

    The metric losses see the pooled feature; the embedding is the feature after the batch norm
    (`test_feature='after'`, the default) or before it. `embedding_dim` is not used: the embedding has
    the backbone's F dimensions."""
    from trinet.models.layers import batch_norm

    neck = batch_norm(**(bn or {}), momentum=0.9, epsilon=1e-5, center=False, name="head_bnneck")(x)
    return {"metric": x, "embedding": x if test_feature == "before" else neck, "raw": x, "neck": neck}


def pcb(features, embedding_dim: int, feature_map=None, num_stripes: int = 6, global_branch: bool = False,
        bn: dict | None = None, **_):
    """PCB (Sun et al. 2018): horizontal stripes, each reduced and classified on its own.

    Each of the `num_stripes` stripes of the feature map (`trinet.models.layers.StripePooling`), and with
    `global_branch` the pooled feature too, gets its own linear reduction to `embedding_dim`, batch norm and
    ReLU. The embedding (and the metric feature) is their concatenation, `(B, parts x embedding_dim)`;
    `parts` lists them for the classifiers (one per part)."""
    import keras

    from trinet.models.layers import StripePooling, batch_norm

    inputs = StripePooling(num_stripes, name="head_pcb_stripes")(feature_map)
    names = [str(i) for i in range(num_stripes)]
    if global_branch:
        inputs, names = inputs + [features], names + ["global"]
    parts = []
    for x, name in zip(inputs, names):
        x = keras.layers.Dense(embedding_dim, use_bias=False, name=f"head_pcb_reduce_{name}")(x)
        x = batch_norm(**(bn or {}), momentum=0.9, epsilon=1e-5, name=f"head_pcb_bn_{name}")(x)
        parts.append(keras.layers.ReLU(name=f"head_pcb_relu_{name}")(x))
    emb = keras.layers.Concatenate(name="head_pcb_concat")(parts) if len(parts) > 1 else parts[0]
    return {"metric": emb, "embedding": emb, "raw": emb, "neck": emb, "parts": parts}


def local_branch(feature_map, num_stripes: int = 8, local_dim: int = 128, bn: dict | None = None):
    """AlignedReID's local branch: `(B, h, w, F)` feature map -> `(B, S, local_dim)` local features.

    The S horizontal stripes (`trinet.models.layers.StripePooling`, averaged), one linear reduction shared by
    the stripes (AlignedReID's 1x1 convolution), batch norm (statistics over the batch and the stripes) and
    ReLU.
    """
    import keras

    from trinet.models.layers import Stack, StripePooling, batch_norm

    parts = StripePooling(num_stripes, name="head_local_stripes")(feature_map)
    stripes = Stack(name="head_local_stack")(parts)  # (B, S, F)
    x = keras.layers.Dense(local_dim, use_bias=False, name="head_local_reduce")(stripes)
    x = batch_norm(**(bn or {}), momentum=0.9, epsilon=1e-5, name="head_local_bn")(x)
    return keras.layers.ReLU(name="head_local_relu")(x)


def classifier(x, num_classes: int, kind: str = "softmax", scale: float | None = None,
               name: str = "head_classifier"):
    """The identification classifier `(B, F) -> (B, num_classes)` logits
    (`trinet.config.registries.CLASSIFIERS`).

    softmax: a bias-free linear layer, initialised with std 0.001. The margin kinds (cosface, arcface,
    circle): `scale` times the cosines of the L2-normalised feature and class weights
    (`trinet.models.layers.CosineClassifier`; weights initialised with std 0.01, their norm does not matter).
    Both keep their `(F, num_classes)` weights in `head_classifier/kernel`.
    """
    import keras

    from trinet.config.registries import CLASSIFIERS

    CLASSIFIERS[kind]  # an unknown kind raises, naming the valid ones
    if kind == "softmax":
        init = keras.initializers.RandomNormal(stddev=CLASSIFIER_INIT_STD)
        return keras.layers.Dense(num_classes, use_bias=False, kernel_initializer=init, name=name)(x)
    from trinet.models.layers import CosineClassifier

    if scale is None or scale <= 0:
        raise ValueError(f"the {kind} classifier needs a scale > 0. Received: scale={scale!r}")
    init = keras.initializers.RandomNormal(stddev=COSINE_INIT_STD)
    return CosineClassifier(num_classes, scale, kernel_initializer=init, name=name)(x)


#: Heads by name: `(features (B, F), embedding_dim, test_feature=..., bn={"kind": ..., "synchronized": ...})
#: -> dict of tensors` (bn: the arguments of `trinet.models.layers.batch_norm`).
HEADS: dict[str, Callable[..., dict[str, Any]]] = {
    "direct": direct,
    "direct_normalize": direct_normalize,
    "fc1024": fc1024,
    "fc1024_normalize": fc1024_normalize,
    "bnneck": bnneck,
    "pcb": pcb,
}


def get_head(name: str) -> Callable[..., dict[str, Any]]:
    """The head registered as `name`."""
    if name not in HEADS:
        raise ValueError(f"Unknown head {name!r}; expected one of {sorted(HEADS)}")
    return HEADS[name]


def help_text() -> str:
    """`name: first docstring line; ...` for train.py's help."""
    return "; ".join(f"{name}: {(fn.__doc__ or '').strip().splitlines()[0].rstrip('.')}"
                     for name, fn in HEADS.items())
