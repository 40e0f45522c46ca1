"""trinet's custom Keras layers under the path that earlier versions and the README give them.

Importing this module registers every custom layer of trinet's models with Keras, so that a `model.keras` file
loads with `keras.saving.load_model(path, safe_mode=True)`. The layers live in `trinet.models.layers` and
`trinet.models.pooling`; their registered names (`trinet>ClassName`) never change with the modules.
"""

from __future__ import annotations

from trinet.models.layers import (ChannelSlice, CosineClassifier, FusedBatchNormalization, ImagePreprocessing,
                                  Stack, StripePooling, batch_norm, with_batch_norm)
from trinet.models.pooling import GeneralizedMeanPooling

__all__ = ["ChannelSlice", "CosineClassifier", "FusedBatchNormalization", "GeneralizedMeanPooling",
           "ImagePreprocessing", "Stack", "StripePooling", "batch_norm", "with_batch_norm"]
