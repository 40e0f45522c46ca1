"""Custom Keras layers, registered so that a saved `.keras` model reloads in safe mode."""

from __future__ import annotations

import keras
from keras import ops

#: Per-channel means of the Caffe-style ImageNet preprocessing, in BGR order (keras.applications).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


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
