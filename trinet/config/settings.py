"""The settings of a training run: one frozen dataclass, written to and read from `args.json`.

The command line converts its arguments into a `TrainSettings` once; the library never sees an
`argparse.Namespace`. Every default reproduces the behaviour of the original triplet-reid (and of
trinet before the field was added), so an `args.json` written by an older version loads with the
defaults for the fields it lacks and trains exactly as before.

Cheap to import (no TensorFlow): `train.py --help` and the checks at parse time use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trinet.core.errors import TrinetError

#: Settings that are not part of a run's identity: on --resume they come from the command line.
NOT_SAVED = ("experiment_root", "resume")
#: Settings that say how a run is computed, not what it trains: saved, but on --resume the values given on
#: the command line replace them (a run may continue on another number of devices, or with XLA).
RUNTIME = ("distribute", "jit_compile", "loading_threads")
#: The values that fields added after the first release take when an older `args.json` lacks them, where
#: they differ from a new run's default: the behaviour of the version that wrote the file.
LEGACY = {"batch_norm": "keras"}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a training run (the flags of train.py, by the same names)."""

    # experiment
    experiment_root: str = ""
    resume: bool = False
    seed: int | None = None
    # data
    train_set: str | None = None
    image_root: str | None = None
    skip_missing: bool = False
    validate_images: bool = False
    on_bad_image: str = "skip"
    loading_threads: int = 8
    # model
    model_name: str = "resnet50"
    head_name: str = "fc1024"
    embedding_dim: int = 128
    initial_checkpoint: str | None = None
    pooling: str = "avg"
    last_stride: int = 2
    batch_norm: str = "fused"
    test_feature: str | None = None
    test_metric: str | None = None
    num_stripes: int = 6
    pcb_global_branch: bool = False
    # keras-hub backbones and TransReID's recipe (issue 22): None / off keep the model as it was
    backbone_preset: str | None = None
    patch_stride: int | None = None
    camera_embedding: bool = False
    camera_embedding_scale: float = 3.0
    layer_lr_decay: float = 1.0
    # AlignedReID's local branch (issue 12): off keeps the model and the objective as they were
    local_branch: bool = False
    local_stripes: int = 8
    local_dim: int = 128
    local_loss_weight: float = 1.0
    # batches and augmentation
    sampler: str = "pk"
    batch_p: int = 32
    batch_k: int = 4
    # video re-id's clips (--sampler pk_clips): T frames per tracklet, pooled before the losses
    clip_length: int = 4
    temporal_pooling: str = "mean"
    net_input_height: int = 256
    net_input_width: int = 128
    pre_crop_height: int = 288
    pre_crop_width: int = 144
    flip_augment: bool = False
    crop_augment: bool = False
    pad_crop: int = 0
    random_erasing_prob: float = 0.0
    # colour augmentation (issue 12): None / 0 keep the images as they were
    color_jitter: tuple[float, ...] | None = None
    auto_augment_prob: float = 0.0
    # objectives
    loss: str = "batch_hard"
    margin: float | str = "soft"
    metric: str = "euclidean"
    triplet_loss_weight: float = 1.0
    id_loss_weight: float = 0.0
    label_smoothing: float = 0.0
    center_loss_weight: float = 0.0
    center_learning_rate: float = 0.5
    spectral_transform: bool = False
    spectral_sigma: float = 0.1
    # identification classifier (issue 12): None takes the classifier's default (registries.CLASSIFIERS)
    classifier: str = "softmax"
    classifier_scale: float | None = None
    classifier_margin: float | None = None
    # metric-learning losses (issue 23; registries.METRIC_LOSSES): a weight of 0 leaves the loss out
    contrastive_loss_weight: float = 0.0
    contrastive_pos_margin: float = 0.0
    contrastive_neg_margin: float = 1.0
    ms_loss_weight: float = 0.0
    ms_alpha: float = 2.0
    ms_beta: float = 50.0
    ms_base: float = 0.5
    ms_epsilon: float = 0.1
    lifted_loss_weight: float = 0.0
    lifted_margin: float = 1.0
    supcon_loss_weight: float = 0.0
    supcon_temperature: float = 0.1
    circle_pair_loss_weight: float = 0.0
    circle_pair_margin: float = 0.4
    circle_pair_gamma: float = 80.0
    proxy_nca_loss_weight: float = 0.0
    proxy_nca_scale: float = 3.0
    proxy_anchor_loss_weight: float = 0.0
    proxy_anchor_alpha: float = 32.0
    proxy_anchor_delta: float = 0.1
    proxy_lr_multiplier: float = 100.0
    # optimisation
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    learning_rate: float = 3e-4
    train_iterations: int = 25000
    decay_start_iteration: int = 15000
    lr_schedule: str = "exponential"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    warmup_iterations: int = 0
    warmup_factor: float = 0.1
    freeze_backbone_iterations: int = 0
    new_layers_lr_multiplier: float = 1.0
    # distillation
    teacher: str | None = None
    teacher_checkpoint: str | None = None
    distill_logits_weight: float = 0.0
    distill_distance_weight: float = 0.0
    distill_temperature: float = 4.0
    # deep mutual learning
    mutual_models: int = 1
    mutual_logits_weight: float = 1.0
    mutual_distance_weight: float = 1.0
    # devices and precision
    distribute: str = "none"
    cross_replica_mining: bool = False
    sync_batchnorm: bool = False
    mixed_precision: str | None = None
    jit_compile: bool = False
    # checkpoints and logs
    checkpoint_frequency: int = 1000
    keep_checkpoints: int = 5
    log_frequency: int = 1
    histogram_frequency: int = 100
    detailed_logs: bool = False
    # validation during training
    val_query: str | None = None
    val_gallery: str | None = None
    val_image_root: str | None = None
    val_excluder: str | None = None
    val_frequency: int = 1000
    val_identities: int | None = None
    val_fraction: float | None = None
    # learning without labels (issue 21): without --unlabeled_set, training is supervised as before
    unlabeled_set: str | None = None
    unlabeled_image_root: str | None = None
    recluster_frequency: int = 400
    cluster_eps: float = 0.6
    cluster_min_samples: int = 4
    cluster_k1: int = 30
    cluster_k2: int = 6
    memory_loss_weight: float = 0.0
    memory_temperature: float = 0.05
    memory_momentum: float = 0.1
    memory_update: str = "mean"
    cluster_camera_norm: bool = False

    # -- derived values ------------------------------------------------------------------------------
    @property
    def net_size(self) -> tuple[int, int]:
        return self.net_input_height, self.net_input_width

    @property
    def pre_crop_size(self) -> tuple[int, int]:
        return self.pre_crop_height, self.pre_crop_width

    @property
    def batch_size(self) -> int:
        """The samples the losses see per batch, P x K (with `pk_clips`, clips of `clip_length` images)."""
        return self.batch_p * self.batch_k

    @property
    def clip_frames(self) -> int:
        """Consecutive images of a batch pooled into one sample: `clip_length` with `pk_clips`, else 1."""
        return self.clip_length if self.sampler == "pk_clips" else 1

    @property
    def embedding_metric(self) -> str:
        """The metric to compare the inference embeddings with (`--test_metric`, else `--metric`)."""
        return self.test_metric or self.metric

    @property
    def pseudo_labels(self) -> bool:
        """Whether the run trains on pseudo labels of --unlabeled_set (issue 21) instead of --train_set."""
        return self.unlabeled_set is not None

    @property
    def holdout(self) -> bool:
        """Whether validation holds identities out of the training set (--val_identities, --val_fraction)."""
        return self.val_identities is not None or self.val_fraction is not None

    @property
    def validation(self) -> bool:
        return self.val_query is not None or self.holdout

    @property
    def classifier_parameters(self) -> tuple[float | None, float | None]:
        """`(scale, margin)` of the classifier: the values given, else the kind's defaults (None for softmax,
        which has neither)."""
        from trinet.config.registries import classifier_defaults

        entry = classifier_defaults(self.classifier)
        scale = self.classifier_scale if self.classifier_scale is not None else entry.scale
        margin = self.classifier_margin if self.classifier_margin is not None else entry.margin
        return scale, margin

    @property
    def metric_losses(self) -> tuple[str, ...]:
        """The metric-learning losses of the run (`registries.METRIC_LOSSES` of weight > 0), in registry
        order."""
        from trinet.config.registries import METRIC_LOSSES, metric_loss

        return tuple(name for name in METRIC_LOSSES if getattr(self, metric_loss(name).weight))

    @property
    def proxy_losses(self) -> tuple[str, ...]:
        """The run's metric-learning losses that learn proxies (`proxy_nca`, `proxy_anchor`)."""
        from trinet.config.registries import metric_loss

        return tuple(name for name in self.metric_losses if metric_loss(name).proxies)

    # -- conversions ---------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "TrainSettings":
        return dataclasses.replace(self, **changes)

    def saved(self) -> dict[str, Any]:
        """The JSON object of `args.json`: every field but those in `NOT_SAVED`."""
        values = dataclasses.asdict(self)
        values["lr_milestones"] = list(self.lr_milestones)
        if self.color_jitter is not None:
            values["color_jitter"] = list(self.color_jitter)
        return {k: v for k, v in values.items() if k not in NOT_SAVED}

    @classmethod
    def from_saved(cls, values: dict[str, Any], source: str = "args.json",
                   **overrides: Any) -> tuple["TrainSettings", list[str]]:
        """Settings from an `args.json` object; returns `(settings, names of fields it lacked)`.

        Raises:
            TrinetError: an unknown key (written by a newer trinet?) or a value of the wrong type.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TrinetError(f"{source}: unknown setting(s) {', '.join(unknown)}; it was written by another "
                              f"version of trinet. Known settings: {', '.join(sorted(known))}")
        kwargs = {k: v for k, v in values.items() if k not in NOT_SAVED}
        if kwargs.get("lr_milestones") is not None:
            kwargs["lr_milestones"] = tuple(kwargs["lr_milestones"])
        if isinstance(kwargs.get("color_jitter"), list):
            kwargs["color_jitter"] = tuple(kwargs["color_jitter"])
        for name, value in kwargs.items():
            _check_type(name, value, cls.__dataclass_fields__[name].default, source)
        lacking = sorted(set(known) - set(values) - set(NOT_SAVED))
        kwargs.update({name: LEGACY[name] for name in lacking if name in LEGACY})
        return cls(**kwargs, **overrides), lacking

    def validate(self) -> None:
        """Check the combinations of settings; raises TrinetError naming the flags and what is allowed."""
        for problem in _problems(self):
            raise TrinetError(problem)


def _check_type(name: str, value: Any, default: Any, source: str) -> None:
    """Raise TrinetError unless `value` has the type of the field's `default` (None passes)."""
    if value is None or default is None:
        return
    if name == "margin":
        kinds: tuple[type, ...] = (int, float, str)
    elif isinstance(default, bool):
        kinds = (bool,)
    elif isinstance(default, float):
        kinds = (int, float)
    else:
        kinds = (type(default),)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise TrinetError(f"{source}: setting {name!r} has the value {value!r}; expected "
                          f"{' or '.join(k.__name__ for k in kinds)}")


#: `--distribute` choices: how the step is spread over devices (`trinet.models.distribute` builds them).
DISTRIBUTE = {
    "none": "one device (the first GPU, else the CPU)",
    "mirrored": "tf.distribute.MirroredStrategy over every visible GPU (or, without one, every logical CPU "
                "device)",
    "multi_worker": "tf.distribute.MultiWorkerMirroredStrategy over the workers of TF_CONFIG (every worker "
                    "runs the same command)",
}
#: `--mixed_precision` choices: the computation dtype (variables, distances and losses stay float32).
MIXED_PRECISION = {
    "float16": "Keras' mixed_float16 with a dynamic loss scale (GPUs)",
    "bfloat16": "Keras' mixed_bfloat16 (GPUs from Ampere on; CPUs with AVX512-BF16/AMX)",
}


def _problems(s: TrainSettings):
    """Yield a message for each invalid combination (the first one is raised)."""
    from trinet.config import registries
    from trinet.models import heads
    from trinet.models.backbones import catalog, hub
    from trinet.pipeline import sampling

    if s.train_set is None and s.unlabeled_set is None:
        yield "--train_set is required (unless --resume, or --unlabeled_set to learn without labels)"
    registries.check("--model_name", s.model_name, catalog.CHOICES)
    registries.check("--head_name", s.head_name, heads.HEADS)
    registries.check("--pooling", s.pooling, registries.POOLINGS)
    registries.check("--batch_norm", s.batch_norm, registries.BATCH_NORMS)
    registries.check("--distribute", s.distribute, DISTRIBUTE)
    if s.mixed_precision is not None:
        registries.check("--mixed_precision", s.mixed_precision, MIXED_PRECISION)
    registries.check("--loss", s.loss, registries.LOSSES)
    registries.check("--optimizer", s.optimizer, registries.OPTIMIZERS)
    registries.check("--lr_schedule", s.lr_schedule, registries.SCHEDULES)
    registries.check("--sampler", s.sampler, sampling.SAMPLERS)
    if s.batch_p < 2:
        yield f"--batch_p must be at least 2 (a batch needs negatives), got {s.batch_p}"
    yield from _clip_problems(s)
    if s.sampler in ("pk", "pk_camera", "pk_clips") and s.triplet_loss_weight > 0 and s.batch_k < 2:
        yield (f"--batch_k must be at least 2 with the triplet loss (an anchor needs a positive in its "
               f"batch), got {s.batch_k}")
    if not sampling.SAMPLERS[s.sampler].positives and s.triplet_loss_weight > 0 and s.pseudo_labels:
        yield (f"--sampler {s.sampler} with --unlabeled_set draws images regardless of their pseudo-"
               "identity, so the triplet loss finds no positives: use --sampler pk (P pseudo-identities x K "
               "images), or train with --memory_loss_weight alone (--triplet_loss_weight 0)")
    elif not sampling.SAMPLERS[s.sampler].positives and s.triplet_loss_weight > 0:
        yield (f"--sampler {s.sampler} gives batches without guaranteed positives, which the triplet loss "
               "needs: use --sampler pk (or pk_camera), or --triplet_loss_weight 0 for identification-only "
               "training")
    if (s.triplet_loss_weight == 0 and s.id_loss_weight == 0 and not s.metric_losses
            and not s.memory_loss_weight):
        yield ("--triplet_loss_weight and --id_loss_weight are both 0 and no metric-learning loss has a "
               "weight (--contrastive_loss_weight, --ms_loss_weight, ..., --memory_loss_weight): there is "
               "nothing to train")
    if s.label_smoothing and not s.id_loss_weight:
        yield f"--label_smoothing {s.label_smoothing} needs the identification loss (--id_loss_weight > 0)"
    if not 0 <= s.label_smoothing < 1:
        yield f"--label_smoothing must be in [0, 1), got {s.label_smoothing}"
    if s.test_feature is not None and s.head_name != "bnneck":
        yield (f"--test_feature {s.test_feature} applies to --head_name bnneck only (the feature before or "
               f"after its batch norm), not to --head_name {s.head_name}")
    if s.test_feature not in (None, "before", "after"):
        yield f"--test_feature must be 'before' or 'after', got {s.test_feature!r}"
    if s.last_stride not in (1, 2):
        yield f"--last_stride must be 1 or 2, got {s.last_stride}"
    if s.last_stride == 1 and not catalog.supports_last_stride(s.model_name):
        yield (f"--last_stride 1 is not available for --model_name {s.model_name}; backbones with a last "
               f"stride to remove: {', '.join(catalog.LAST_STRIDE_CHOICES)}")
    if s.crop_augment and (s.pre_crop_height < s.net_input_height or s.pre_crop_width < s.net_input_width):
        yield (f"--crop_augment needs a pre-crop size ({s.pre_crop_height}x{s.pre_crop_width}) at least the "
               f"net input size ({s.net_input_height}x{s.net_input_width})")
    if not 0 <= s.random_erasing_prob <= 1:
        yield f"--random_erasing_prob must be in [0, 1], got {s.random_erasing_prob}"
    if s.decay_start_iteration < -1:
        yield f"--decay_start_iteration must be -1 (no decay) or >= 0, got {s.decay_start_iteration}"
    if s.lr_milestones and s.lr_schedule != "multistep":
        yield f"--lr_milestones applies to --lr_schedule multistep only, not to {s.lr_schedule}"
    if s.lr_schedule == "multistep":
        m = s.lr_milestones
        if not m or list(m) != sorted(set(m)) or m[0] < 1 or m[-1] >= s.train_iterations:
            yield (f"--lr_schedule multistep needs --lr_milestones: increasing iterations between 1 and "
                   f"--train_iterations {s.train_iterations} - 1, got {list(m)}")
    if s.warmup_iterations >= s.train_iterations and s.warmup_iterations:
        yield (f"--warmup_iterations {s.warmup_iterations} must be smaller than --train_iterations "
               f"{s.train_iterations}")
    if not 0 < s.warmup_factor <= 1:
        yield f"--warmup_factor must be in (0, 1], got {s.warmup_factor}"
    if s.freeze_backbone_iterations and s.freeze_backbone_iterations >= s.train_iterations:
        yield (f"--freeze_backbone_iterations {s.freeze_backbone_iterations} must be smaller than "
               f"--train_iterations {s.train_iterations}")
    if s.new_layers_lr_multiplier <= 0:
        yield f"--new_layers_lr_multiplier must be > 0, got {s.new_layers_lr_multiplier}"
    if s.optimizer != "sgd" and s.nesterov:
        yield f"--nesterov applies to --optimizer sgd only, not to {s.optimizer}"
    if s.optimizer == "adam" and s.weight_decay:
        yield (f"--weight_decay {s.weight_decay} is not used by --optimizer adam; use --optimizer adamw "
               "(decoupled weight decay) or sgd")
    if s.distribute == "none" and (s.cross_replica_mining or s.sync_batchnorm):
        flag = "--cross_replica_mining" if s.cross_replica_mining else "--sync_batchnorm"
        yield f"{flag} applies to --distribute mirrored or multi_worker, not to --distribute none"
    if s.head_name != "pcb" and (s.num_stripes != 6 or s.pcb_global_branch):
        flag = "--pcb_global_branch" if s.pcb_global_branch else f"--num_stripes {s.num_stripes}"
        yield f"{flag} applies to --head_name pcb only, not to --head_name {s.head_name}"
    if s.num_stripes < 1:
        yield f"--num_stripes must be at least 1, got {s.num_stripes}"
    if s.teacher is None and (s.distill_logits_weight or s.distill_distance_weight):
        flag = "--distill_logits_weight" if s.distill_logits_weight else "--distill_distance_weight"
        yield f"{flag} needs --teacher (the experiment root of the model to learn from)"
    if s.teacher is not None and not (s.distill_logits_weight or s.distill_distance_weight):
        yield "--teacher needs --distill_logits_weight and/or --distill_distance_weight > 0"
    if s.teacher_checkpoint is not None and s.teacher is None:
        yield "--teacher_checkpoint names a checkpoint of --teacher; give --teacher too"
    if s.distill_logits_weight and not s.id_loss_weight:
        yield ("--distill_logits_weight needs the student's classifier (--id_loss_weight > 0): the KL term "
               "compares the class probabilities")
    if s.distill_temperature <= 0:
        yield f"--distill_temperature must be > 0, got {s.distill_temperature}"
    if s.spectral_sigma <= 0:
        yield f"--spectral_sigma must be > 0, got {s.spectral_sigma}"
    if s.mutual_models < 1:
        yield f"--mutual_models must be at least 1, got {s.mutual_models}"
    if s.mutual_models > 1:
        if s.mutual_logits_weight and not s.id_loss_weight:
            yield ("--mutual_models with --mutual_logits_weight > 0 needs the classifiers (--id_loss_weight "
                   "> 0); or set --mutual_logits_weight 0")
        if not (s.mutual_logits_weight or s.mutual_distance_weight):
            yield "--mutual_models: --mutual_logits_weight and --mutual_distance_weight are both 0"
        for flag, value in (("--distribute", s.distribute != "none"), ("--teacher", s.teacher is not None),
                            ("--jit_compile", s.jit_compile), ("--mixed_precision float16",
                                                               s.mixed_precision == "float16")):
            if value:
                yield f"--mutual_models {s.mutual_models} does not go with {flag} yet (one device, float32 " \
                      "or bfloat16)"
    if s.distribute == "multi_worker" and s.seed is None and not s.resume:
        yield ("--distribute multi_worker needs --seed (the same on every worker, so that they build the "
               "same batches)")
    if s.jit_compile and s.distribute != "none":
        yield (f"--jit_compile is not available with --distribute {s.distribute} yet (XLA and the replicas' "
               "collectives); use one of them")
    if s.mixed_precision == "float16" and s.new_layers_lr_multiplier != 1:
        yield ("--mixed_precision float16 (one dynamic loss scale) does not go with "
               f"--new_layers_lr_multiplier {s.new_layers_lr_multiplier} (a second optimizer); use bfloat16, "
               "or a multiplier of 1")
    if (s.val_query is None) != (s.val_gallery is None):
        yield "--val_query and --val_gallery go together: give both, or neither"
    if s.val_identities is not None and s.val_fraction is not None:
        yield (f"--val_identities {s.val_identities} and --val_fraction {s.val_fraction} both say how many "
               "identities to hold out: give one")
    holdout = "--val_identities" if s.val_identities is not None else "--val_fraction"
    if s.holdout and s.val_query is not None:
        yield (f"{holdout} holds out validation identities of the training set; --val_query and "
               "--val_gallery give a validation set of their own: use one or the other")
    if s.val_fraction is not None and not 0 < s.val_fraction < 1:
        yield f"--val_fraction must be between 0 and 1 (exclusive). Received: {s.val_fraction}"
    if s.val_identities is not None and s.val_identities < 1:
        yield f"--val_identities must be >= 1. Received: {s.val_identities}"
    if s.validation and s.val_excluder is None:
        flag = "--val_query" if s.val_query is not None else holdout
        yield f"{flag} needs --val_excluder (the dataset's protocol, as evaluate.py's --excluder)"
    if not s.validation and s.val_excluder is not None:
        yield (f"--val_excluder {s.val_excluder} needs --val_query and --val_gallery, or --val_identities / "
               "--val_fraction")
    yield from _classifier_problems(s)
    yield from _metric_loss_problems(s)
    yield from _color_problems(s)
    yield from _local_problems(s)
    yield from hub.problems(s)
    yield from _unlabeled_problems(s)


#: How `--sampler pk_clips` pools the T frames of a clip into one sample before the losses (train.py's
#: `--temporal_pooling`; embed.py's pools tracklets the same way by name).
CLIP_POOLINGS = ("mean",)


def _clip_problems(s: TrainSettings):
    """The checks of video re-id's clip training (`--sampler pk_clips`)."""
    clips = s.sampler == "pk_clips"
    if s.clip_length < 1:
        yield f"--clip_length must be at least 1, got {s.clip_length}"
    if s.temporal_pooling not in CLIP_POOLINGS:
        yield (f"--temporal_pooling {s.temporal_pooling!r} is not one of {', '.join(CLIP_POOLINGS)} "
               "(training pools the frames of a clip)")
    if not clips:
        defaults = TrainSettings()
        for flag, value, default in (("--clip_length", s.clip_length, defaults.clip_length),
                                     ("--temporal_pooling", s.temporal_pooling, defaults.temporal_pooling)):
            if value != default:
                yield f"{flag} applies to --sampler pk_clips only (got --sampler {s.sampler})"
        return
    for flag, value in (("--mutual_models", s.mutual_models > 1), ("--teacher", s.teacher is not None)):
        if value:
            yield (f"--sampler pk_clips does not go with {flag} yet (train on frames with --sampler pk "
                   "instead)")


def _classifier_problems(s: TrainSettings):
    """The checks of --classifier, --classifier_scale and --classifier_margin."""
    import math

    from trinet.config import registries

    registries.check("--classifier", s.classifier, registries.CLASSIFIERS)
    if s.classifier == "softmax":
        for flag, value in (("--classifier_scale", s.classifier_scale),
                            ("--classifier_margin", s.classifier_margin)):
            if value is not None:
                yield (f"{flag} {value} applies to the margin classifiers (--classifier cosface, arcface or "
                       "circle), not to --classifier softmax")
        return
    if not s.id_loss_weight:
        yield (f"--classifier {s.classifier} needs the identification loss (--id_loss_weight > 0); without "
               "it there is no classifier")
    scale, margin = s.classifier_parameters
    if not isinstance(scale, (int, float)) or not scale > 0:
        yield f"--classifier_scale must be > 0 with --classifier {s.classifier}, got {scale}"
    if not isinstance(margin, (int, float)) or not margin >= 0:
        yield f"--classifier_margin must be >= 0 with --classifier {s.classifier}, got {margin}"
    elif s.classifier == "arcface" and margin >= math.pi:
        yield (f"--classifier_margin {margin} is not an angle below pi (radians) for --classifier arcface; "
               "the usual margin is 0.5")
    elif s.classifier == "circle" and margin >= 1:
        yield (f"--classifier_margin {margin} must be below 1 for --classifier circle (the true class's "
               "optimum is 1 - m); the usual margin is 0.25 to 0.35")


#: The ranges of the metric-learning losses' parameters: `(lowest, highest, whether the bounds are allowed)`.
METRIC_LOSS_RANGES: dict[str, tuple[float, float, bool]] = {
    "contrastive_pos_margin": (0.0, 2.0, True), "contrastive_neg_margin": (0.0, 2.0, True),
    "ms_alpha": (0.0, float("inf"), False), "ms_beta": (0.0, float("inf"), False),
    "ms_base": (-1.0, 1.0, True), "ms_epsilon": (0.0, 2.0, True),
    "lifted_margin": (0.0, float("inf"), True), "supcon_temperature": (0.0, float("inf"), False),
    "circle_pair_margin": (0.0, 1.0, True), "circle_pair_gamma": (0.0, float("inf"), False),
    "proxy_nca_scale": (0.0, float("inf"), False), "proxy_anchor_alpha": (0.0, float("inf"), False),
    "proxy_anchor_delta": (0.0, 1.0, True), "proxy_lr_multiplier": (0.0, float("inf"), False),
}


def _metric_loss_problems(s: TrainSettings):
    """The checks of the metric-learning losses (`registries.METRIC_LOSSES`) and their parameters."""
    from trinet.config.registries import METRIC_LOSSES, metric_loss
    from trinet.pipeline import sampling

    defaults = TrainSettings()
    for name in METRIC_LOSSES:
        entry = metric_loss(name)
        for field, _ in entry.parameters:
            value = getattr(s, field)
            if not getattr(s, entry.weight) and value != getattr(defaults, field):
                yield (f"--{field} {value} applies to --{entry.weight} > 0; give the weight or remove "
                       f"--{field}")
    for field, (low, high, closed) in METRIC_LOSS_RANGES.items():
        value = getattr(s, field)
        inside = low <= value <= high if closed else low < value < high
        if not inside:
            bounds = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g})"
            yield f"--{field} must be in {bounds}. Received: {value}"
    if s.contrastive_pos_margin >= s.contrastive_neg_margin:
        yield (f"--contrastive_pos_margin {s.contrastive_pos_margin} must be below --contrastive_neg_margin "
               f"{s.contrastive_neg_margin}")
    if not s.proxy_losses and s.proxy_lr_multiplier != defaults.proxy_lr_multiplier:
        yield (f"--proxy_lr_multiplier {s.proxy_lr_multiplier} applies to the proxy losses "
               "(--proxy_nca_loss_weight or --proxy_anchor_loss_weight > 0)")
    pair = [metric_loss(name).weight for name in s.metric_losses if not metric_loss(name).proxies]
    if pair and not sampling.SAMPLERS[s.sampler].positives:
        yield (f"--{pair[0]} needs positive pairs in each batch, which --sampler {s.sampler} does not "
               "guarantee: use --sampler pk (or pk_camera, pk_clips), or a proxy loss")
    elif pair and s.batch_k < 2:
        yield f"--{pair[0]} needs --batch_k at least 2 (positive pairs in each batch), got {s.batch_k}"
    if s.proxy_losses and s.mixed_precision == "float16":
        yield (f"--mixed_precision float16 (one dynamic loss scale) does not go with --"
               f"{metric_loss(s.proxy_losses[0]).weight} (the proxies have an optimizer of their own); use "
               "bfloat16 or float32")


def _color_problems(s: TrainSettings):
    """The checks of --color_jitter and --auto_augment_prob."""
    if s.color_jitter is not None:
        values = list(s.color_jitter) if isinstance(s.color_jitter, (list, tuple)) else [s.color_jitter]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if len(values) != 4 or not numbers or min(values) < 0 or values[3] > 0.5:
            yield (f"--color_jitter takes 4 numbers B C S H (brightness, contrast, saturation >= 0 and hue "
                   f"in [0, 0.5]), got {values}")
    if not 0 <= s.auto_augment_prob <= 1:
        yield f"--auto_augment_prob must be in [0, 1], got {s.auto_augment_prob}"


def _local_problems(s: TrainSettings):
    """The checks of --local_branch, --local_stripes, --local_dim and --local_loss_weight."""
    if not s.local_branch:
        for name in ("local_stripes", "local_dim", "local_loss_weight"):
            value = getattr(s, name)
            if value != getattr(TrainSettings, name):  # its default
                yield (f"--{name} {value} applies to --local_branch only; add --local_branch or remove "
                       f"--{name}")
        return
    if s.local_stripes < 1 or s.local_dim < 1:
        yield (f"--local_stripes and --local_dim must be at least 1, got --local_stripes {s.local_stripes} "
               f"and --local_dim {s.local_dim}")
    if not s.local_loss_weight > 0:
        yield (f"--local_branch with --local_loss_weight {s.local_loss_weight}: nothing would train the "
               "local branch; give a weight > 0 (AlignedReID uses 1), or remove --local_branch")
    if s.sampler == "random":
        yield ("--local_branch mines each anchor's hardest positive, which --sampler random does not "
               "guarantee: use --sampler pk")
    elif s.batch_k < 2:
        yield (f"--local_branch needs --batch_k at least 2 (its loss mines each anchor's hardest positive in "
               f"the batch), got {s.batch_k}")


#: The settings of learning without labels (issue 21) and their ranges: `(lowest, highest, whether the bounds
#: are allowed)`; they apply to --unlabeled_set only.
UNLABELED_RANGES: dict[str, tuple[float, float, bool]] = {
    "recluster_frequency": (1, float("inf"), True), "cluster_eps": (0.0, 1.0, False),
    "cluster_min_samples": (2, float("inf"), True), "cluster_k1": (2, float("inf"), True),
    "cluster_k2": (1, float("inf"), True), "memory_temperature": (0.0, float("inf"), False),
    "memory_momentum": (0.0, 1.0, True),
}
#: What a pseudo-labelled run does not do yet: `(flag, whether the settings use it)`.
_NOT_WITH_UNLABELED = (
    ("--id_loss_weight", lambda s: s.id_loss_weight > 0),
    ("--center_loss_weight", lambda s: s.center_loss_weight > 0),
    ("--proxy_nca_loss_weight / --proxy_anchor_loss_weight", lambda s: bool(s.proxy_losses)),
    ("--teacher", lambda s: s.teacher is not None),
    ("--mutual_models", lambda s: s.mutual_models > 1),
    ("--distribute", lambda s: s.distribute != "none"),
    ("--camera_embedding", lambda s: s.camera_embedding),
    ("--sampler pk_clips", lambda s: s.sampler == "pk_clips"),
    ("--val_identities / --val_fraction", lambda s: s.holdout),
)


def _unlabeled_problems(s: TrainSettings):
    """The checks of learning without labels: --unlabeled_set and the clustering and memory flags."""
    defaults = TrainSettings()
    if not s.pseudo_labels:
        for name in ("unlabeled_image_root", "memory_update", "memory_loss_weight", "cluster_camera_norm",
                     *UNLABELED_RANGES):
            value = getattr(s, name)
            if value != getattr(defaults, name):
                yield (f"--{name} {value} applies to --unlabeled_set only; give --unlabeled_set or remove "
                       f"--{name}")
        return
    for field, (low, high, closed) in UNLABELED_RANGES.items():
        value = getattr(s, field)
        inside = low <= value <= high if closed else low < value < high
        if not inside:
            bounds = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g})"
            yield f"--{field} must be in {bounds}. Received: {value}"
    from trinet.config import registries

    registries.check("--memory_update", s.memory_update, registries.MEMORY_UPDATES)
    if s.cluster_k2 > s.cluster_k1:
        yield (f"--cluster_k2 {s.cluster_k2} must be at most --cluster_k1 {s.cluster_k1} (the query "
               "expansion averages over the k2 nearest of the k1-reciprocal neighbours)")
    if s.train_set is not None:
        yield (f"--train_set {s.train_set} with --unlabeled_set: without labels the run trains on the "
               "unlabeled set alone (training on both, --joint_source, is not available yet); give one of "
               "them. To adapt a model trained on labels, pass its experiment root as --initial_checkpoint")
    for flag, used in _NOT_WITH_UNLABELED:
        if used(s):
            yield (f"{flag} does not go with --unlabeled_set yet (pseudo labels train with "
                   "--triplet_loss_weight, --memory_loss_weight and the pair-based metric-learning losses)")
