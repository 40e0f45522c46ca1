"""Embedding heads: layers that map pooled features `(B, F)` to embeddings `(B, D)`.

Each head returns `(emb, emb_raw)`: the embedding and its value before any L2 normalisation (whose
norms are monitored). Layer names start with `head_` so that weights can be transferred selectively.
"""

from __future__ import annotations

from typing import Callable

import keras


def _linear(x, embedding_dim: int):
    return keras.layers.Dense(embedding_dim, kernel_initializer=keras.initializers.Orthogonal(),
                              name="head_emb")(x)


def _normalize(x):
    return keras.layers.UnitNormalization(axis=-1, name="head_normalize")(x)


def _fc1024(x):
    """FC-1024 (no bias: batch norm follows), batch norm, ReLU: the TriNet head's hidden layer."""
    x = keras.layers.Dense(1024, use_bias=False, name="head_fc1024")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="head_bn")(x)
    return keras.layers.ReLU(name="head_relu")(x)


def direct(x, embedding_dim: int):
    emb = _linear(x, embedding_dim)
    return emb, emb


def direct_normalize(x, embedding_dim: int):
    emb = _linear(x, embedding_dim)
    return _normalize(emb), emb


def fc1024(x, embedding_dim: int):
    emb = _linear(_fc1024(x), embedding_dim)
    return emb, emb


def fc1024_normalize(x, embedding_dim: int):
    emb = _linear(_fc1024(x), embedding_dim)
    return _normalize(emb), emb


#: Heads by name: `(features tensor (B, F), embedding_dim) -> (emb, emb_raw)` tensors `(B, D)`.
HEADS: dict[str, Callable] = {
    "direct": direct,
    "direct_normalize": direct_normalize,
    "fc1024": fc1024,
    "fc1024_normalize": fc1024_normalize,
}


def get_head(name: str) -> Callable:
    """The head registered as `name`."""
    if name not in HEADS:
        raise ValueError(f"Unknown head {name!r}; expected one of {sorted(HEADS)}")
    return HEADS[name]
