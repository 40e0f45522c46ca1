"""keras-hub's ViT encoder with an exportable GELU (imports keras-hub: used only by
`trinet.models.backbones.hub`, and by `load_embedding_model` where keras-hub is installed).

TensorFlow's exact GELU is `0.5 x erfc(-x / sqrt 2)`, and tf2onnx has no `Erfc`: an ONNX export of keras-hub's
encoder is an invalid graph. `erf_gelu` computes the same function as `0.5 x (1 + erf(x / sqrt 2))`, which
every converter knows; `ViTEncoder` is keras-hub's encoder with it in each block's MLP (same variables,
same paths, so a preset's encoder weights load as they are).
"""

from __future__ import annotations

import math

import keras
from keras import ops
from keras_hub.src.models.vit.vit_layers import ViTEncoder as HubViTEncoder


@keras.saving.register_keras_serializable(package="trinet")
def erf_gelu(x):
    """The exact GELU `0.5 x (1 + erf(x / sqrt 2))`, of `x`'s shape and dtype."""
    return 0.5 * x * (1.0 + ops.erf(x * ops.cast(1.0 / math.sqrt(2.0), x.dtype)))


@keras.saving.register_keras_serializable(package="trinet")
class ViTEncoder(HubViTEncoder):
    """keras-hub's `ViTEncoder` `(B, N, D) -> (B, N, D)` whose MLPs use `erf_gelu` (see the module docstring);
    the constructor's arguments are keras-hub's."""

    def build(self, input_shape):
        super().build(input_shape)
        for block in self.encoder_layers:
            block.mlp.dense_1.activation = erf_gelu
