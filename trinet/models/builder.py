"""The trinet model: backbone, global pooling, head and (for identification losses) a classifier.

It takes raw RGB `(B, H, W, 3)` in [0, 255] and returns a dict of tensors (see `build_model`). The
inference model (`embedding_model`, what `model.keras` and embed.py use) has no classifier.
"""

from __future__ import annotations

import dataclasses

import keras

from trinet.config.registries import POOLINGS
from trinet.models.backbones.catalog import build_backbone
from trinet.models.heads import classifier, get_head, local_branch
from trinet.models.layers import Stack

#: The outputs of the training model.
OUTPUTS = ("features", "metric", "embedding", "raw", "logits", "local")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What determines the model's architecture (and so its variables)."""

    model_name: str
    head_name: str
    embedding_dim: int
    pooling: str = "avg"
    last_stride: int = 2
    test_feature: str | None = None
    num_classes: int = 0
    batch_norm: str = "keras"
    sync_batchnorm: bool = False
    classifier: str = "softmax"
    classifier_scale: float | None = None
    num_stripes: int = 6
    pcb_global_branch: bool = False
    local_branch: bool = False
    local_stripes: int = 8
    local_dim: int = 128
    # --model_name keras_hub (`trinet.models.backbones.hub`)
    backbone_preset: str | None = None
    net_size: tuple[int, int] = (256, 128)
    patch_stride: int | None = None
    num_cameras: int = 0
    camera_scale: float = 3.0

    @classmethod
    def from_settings(cls, settings, num_classes: int = 0, num_cameras: int = 0) -> "ModelSpec":
        """The spec of a `TrainSettings` run; `num_classes` > 0 adds the classifier; `num_cameras` > 0 the
        camera input and embedding (`--camera_embedding`)."""
        return cls(settings.model_name, settings.head_name, settings.embedding_dim, settings.pooling,
                   settings.last_stride, settings.test_feature, num_classes, settings.batch_norm,
                   settings.sync_batchnorm, settings.classifier, settings.classifier_parameters[0],
                   settings.num_stripes, settings.pcb_global_branch, settings.local_branch,
                   settings.local_stripes, settings.local_dim, settings.backbone_preset,
                   tuple(settings.net_size), settings.patch_stride,
                   num_cameras if settings.camera_embedding else 0, settings.camera_embedding_scale)

    def backbone_options(self) -> dict:
        """The options of `build_backbone` beyond the common ones (keras-hub's preset and ViT options)."""
        if self.backbone_preset is None:
            return {}
        return {"preset": self.backbone_preset, "net_size": self.net_size, "patch_stride": self.patch_stride,
                "num_cameras": self.num_cameras, "camera_scale": self.camera_scale}


def build_model(spec: ModelSpec, weights: str | None = None) -> keras.Model:
    """The training model: raw images -> dict of
        features `(B, F)`: the pooled backbone features;
        metric `(B, D)`: the feature the metric losses see;
        embedding `(B, D')`: the inference embedding;
        raw `(B, D)`: the embedding before L2 normalisation (monitoring);
        logits `(B, num_classes)` (PCB: `(B, parts, num_classes)`, a classifier per part): only when
            `spec.num_classes` > 0; for the margin classifiers
            (`spec.classifier`), the scaled cosines, without the margin (the loss applies it);
        local `(B, S, local_dim)`: AlignedReID's local features (`heads.local_branch`), only with
            `spec.local_branch`.

    With `spec.num_cameras` > 0 the model takes `{"image": (B, H, W, 3), "camera": (B,) int32}` (SIE), and so
    does its inference model.

    Args:
        weights: the backbone's initial weights (None, 'imagenet', 'preset' for keras-hub, or a Keras
            weights file).
    """
    backbone = build_backbone(spec.model_name, weights, spec.last_stride, spec.batch_norm,
                              spec.sync_batchnorm, **spec.backbone_options())
    image = keras.Input((None, None, 3), name="image")
    inputs: object = image
    if spec.num_cameras:
        inputs = {"image": image, "camera": keras.Input((), dtype="int32", name="camera")}
        out = backbone([image, inputs["camera"]])
    else:
        out = backbone(image)
    # token backbones (keras-hub) return [patch-token map, class token]
    feature_map, token = (out[0], out[1]) if isinstance(out, (list, tuple)) else (out, None)
    if spec.pooling == "token" and token is None:
        raise ValueError(f"--pooling token needs a backbone with a class token; {spec.model_name} "
                         f"{spec.backbone_preset or ''} has none")
    pooled = token if spec.pooling == "token" else feature_map
    features = POOLINGS.resolve(spec.pooling)(name="pooling")(pooled)
    head = get_head(spec.head_name)(features, spec.embedding_dim, test_feature=spec.test_feature,
                                    bn={"kind": spec.batch_norm, "synchronized": spec.sync_batchnorm},
                                    feature_map=feature_map, num_stripes=spec.num_stripes,
                                    global_branch=spec.pcb_global_branch)
    outputs = {"features": features, "metric": head["metric"], "embedding": head["embedding"],
               "raw": head["raw"]}
    if spec.local_branch:
        outputs["local"] = local_branch(feature_map, spec.local_stripes, spec.local_dim,
                                        bn={"kind": spec.batch_norm, "synchronized": spec.sync_batchnorm})
    if spec.num_classes and "parts" in head:  # one classifier per part: (B, parts, num_classes)
        names = [f"head_classifier_{i}" for i in range(len(head["parts"]))]
        outputs["logits"] = Stack(name="head_classifier_stack")(
            [classifier(part, spec.num_classes, spec.classifier, spec.classifier_scale, name=name)
             for part, name in zip(head["parts"], names)])
    elif spec.num_classes:
        outputs["logits"] = classifier(head["neck"], spec.num_classes, spec.classifier, spec.classifier_scale)
    return keras.Model(inputs, outputs, name="trinet")


def model_input(model: keras.Model):
    """The input of `model` to build a model on it: its image input, or with cameras the dict of both."""
    return model.input if isinstance(model.input, dict) else model.inputs[0]


def new_layer_variables(model: keras.Model) -> list:
    """The trainable variables outside the backbone: head, pooling and classifier."""
    backbone = {id(v) for v in model.get_layer("backbone").trainable_variables}
    return [v for v in model.trainable_variables if id(v) not in backbone]


def embedding_model(model: keras.Model, local: bool = False) -> keras.Model:
    """The inference model `(B, H, W, 3) -> (B, D)` sharing `model`'s layers (and weights), without
    the classifier. With `local` and a model with the local branch: `-> {"embedding": (B, D), "local":
    (B, S, D_l)}` (what `model.keras` holds then; `global_part` takes the embedding back out)."""
    if local and "local" in model.output:
        return keras.Model(model_input(model), {"embedding": model.output["embedding"],
                                                "local": model.output["local"]}, name="trinet_embedding")
    return keras.Model(model_input(model), model.output["embedding"], name="trinet_embedding")


def local_shape(model: keras.Model) -> tuple[int, int] | None:
    """`(S, D_l)` of an inference model's local features, or None when it has none."""
    if not isinstance(model.output, dict) or "local" not in model.output:
        return None
    return int(model.output["local"].shape[1]), int(model.output["local"].shape[2])


def global_part(model: keras.Model) -> keras.Model:
    """An inference model with its `(B, D)` embedding as its only output (itself when it has no other)."""
    if not isinstance(model.output, dict):
        return model
    return keras.Model(model_input(model), model.output["embedding"], name="trinet_embedding")


def load_embedding_model(path: str) -> keras.Model:
    """Load a model saved by `train.py` (`model.keras`) in Keras' safe mode."""
    import trinet.models.layers  # noqa: F401  (registers the custom layers)
    import trinet.models.pooling  # noqa: F401
    from trinet.models.backbones import hub
    if hub.available():  # a keras-hub backbone's layers
        import keras_hub  # noqa: F401

        import trinet.models.backbones.hub_encoder  # noqa: F401
        import trinet.models.backbones.hub_layers  # noqa: F401
    return keras.saving.load_model(path, compile=False, safe_mode=True)
