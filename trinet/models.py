"""The trinet model: backbone + head, taking raw RGB `(B, H, W, 3)` in [0, 255]."""

from __future__ import annotations

import keras

from trinet.backbones import build_backbone
from trinet.heads import get_head


def build_model(model_name: str, head_name: str, embedding_dim: int,
                weights: str | None = None) -> keras.Model:
    """The training model: raw images -> `{"emb": (B, D), "emb_raw": (B, D)}`.

    Args:
        weights: the backbone's initial weights (None, 'imagenet' or a Keras weights file).
    """
    backbone = build_backbone(model_name, weights)
    inputs = keras.Input((None, None, 3), name="image")
    emb, emb_raw = get_head(head_name)(backbone(inputs), embedding_dim)
    return keras.Model(inputs, {"emb": emb, "emb_raw": emb_raw}, name="trinet")


def embedding_model(model: keras.Model) -> keras.Model:
    """The inference model `(B, H, W, 3) -> (B, D)` sharing `model`'s layers (and weights)."""
    return keras.Model(model.inputs[0], model.output["emb"], name="trinet_embedding")


def load_embedding_model(path: str) -> keras.Model:
    """Load a model saved by `train.py` (`model.keras`) in Keras' safe mode."""
    import trinet.layers  # noqa: F401  (registers the custom layers)
    return keras.saving.load_model(path, compile=False, safe_mode=True)
