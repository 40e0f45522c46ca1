"""The ImageNet networks of `keras.applications` (ResNet-50/101, MobileNet v1/v2, ConvNeXt-Tiny), with their
input preprocessing inside the model, the original's batch-norm momentum, and `last_stride=1` for the
ResNets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from trinet.models.backbones.common import BN_MOMENTUM, Backbone, rebuilt

if TYPE_CHECKING:
    import keras


def _set_bn_momentum(model: "keras.Model") -> "keras.Model":
    """`model`, its batch norms set to `BN_MOMENTUM`."""
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


#: The layers whose stride of 2 `last_stride=1` removes: the first block of the last stage of the
#: keras.applications ResNets (its 1x1 convolution and its projection shortcut).
RESNET_LAST_STRIDE_LAYERS = ("conv5_block1_1_conv", "conv5_block1_0_conv")


def _application(constructor: str, preprocessing: str) -> Callable:
    """The builder of `keras.applications.<constructor>` behind the `preprocessing` of its weights."""
    def build(weights: str | None, last_stride: int = 2, batch_norm: str = "keras",
              sync_batchnorm: bool = False) -> "keras.Model":
        import keras

        from trinet.models.layers import ImagePreprocessing

        inputs = keras.Input((None, None, 3), name="image")
        x = ImagePreprocessing(preprocessing, name="preprocessing")(inputs)
        net = getattr(keras.applications, constructor)(include_top=False, weights=weights,
                                                       input_shape=(None, None, 3))
        if last_stride == 1 or batch_norm != "keras" or sync_batchnorm:
            net = rebuilt(net, RESNET_LAST_STRIDE_LAYERS if last_stride == 1 else (), batch_norm,
                          sync_batchnorm)
        _set_bn_momentum(net)
        return keras.Model(inputs, net(x), name="backbone")
    return build


def _convnext(constructor: str) -> Callable:
    """The builder of `keras.applications.<constructor>` (ConvNeXt, Liu et al. 2022): its own ImageNet
    normalisation of raw RGB is its first layer, and it has layer norms, no batch norm (`batch_norm` and
    `sync_batchnorm` change nothing)."""
    def build(weights: str | None, last_stride: int = 2, batch_norm: str = "keras",
              sync_batchnorm: bool = False) -> "keras.Model":
        import keras

        inputs = keras.Input((None, None, 3), name="image")
        net = getattr(keras.applications, constructor)(include_top=False, weights=weights,
                                                       input_shape=(None, None, 3),
                                                       include_preprocessing=True)
        # LayerScale's variables and the last layer norm are unnamed: Keras numbers them by what the process
        # made before, and a checkpoint (strict by path) would not load in another order; name them
        for layer in net.layers:
            for v in layer.weights:
                if v.path.rsplit("/", 1)[-1].startswith("variable"):
                    v._name, v._path = "gamma", f"{layer.name}/gamma"
                elif v.path.startswith("layer_normalization"):
                    v._path = f"{net.name}_final_layernorm/{v.name}"
        return keras.Model(inputs, net(inputs), name="backbone")
    return build


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"

#: The entries of this family.
BACKBONES: dict[str, Backbone] = {
    "resnet50": Backbone(
        _application("ResNet50", "caffe"), 2048,
        _KERAS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "4d473c1dd8becc155b73f8504c6f6626", last_stride=True),
    "resnet101": Backbone(
        _application("ResNet101", "caffe"), 2048,
        _KERAS + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "88cf7a10940856eca736dc7b7e228a21", last_stride=True),
    "mobilenet_v1": Backbone(
        _application("MobileNet", "tf"), 1024,
        _KERAS + "mobilenet/mobilenet_1_0_224_tf_no_top.h5"),
    "mobilenet_v2": Backbone(
        _application("MobileNetV2", "tf"), 1280,
        _KERAS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    # the sha256 of keras.applications.convnext.WEIGHTS_HASHES (keras.utils.get_file takes either hash)
    "convnext_tiny": Backbone(
        _convnext("ConvNeXtTiny"), 768, _KERAS + "convnext/convnext_tiny_notop.h5",
        "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
}
