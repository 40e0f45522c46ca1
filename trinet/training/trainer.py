"""What a training step needs, built from the settings (`Trainer`): the model and its initial weights, the
optimizers and schedule, the centres of the centre loss, the proxies of the proxy losses, the teacher, the
objectives and the compiled steps."""

from __future__ import annotations

import logging
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from trinet.config.settings import TrainSettings
from trinet.core.errors import TrinetError, listing
from trinet.losses.pairwise import batch_distances
from trinet.models.builder import ModelSpec, build_model, embedding_model, new_layer_variables
from trinet.models.distribute import dtype_policy, make_strategy, replica_share, scope
from trinet.rundir import checkpoints, experiment
from trinet.training.objectives import build_objectives
from trinet.training.optimizers import make_optimizer, schedule_from_settings
from trinet.training.steps import make_replicated_step, make_train_step

log = logging.getLogger("trinet.train")


def _is_trinet_checkpoint(path: str) -> bool:
    try:
        checkpoints.read_info(path)
        return True
    except TrinetError:
        return False


def initial_weights(spec: str | None, model_name: str) -> tuple[str | None, str | None]:
    """Resolve --initial_checkpoint into `(Keras weights file for the backbone, trinet checkpoint)`.

    'imagenet' is downloaded (or found in the Keras cache) here, so that an offline machine fails
    before anything is written.
    """
    if spec is None:
        return None, None
    if spec == "preset":  # keras-hub: the preset's weights (`trinet.models.backbones.hub`)
        return spec, None
    if spec == "imagenet":
        from trinet.models.backbones.catalog import imagenet_weights
        return imagenet_weights(model_name), None
    if os.path.isdir(spec):
        path = checkpoints.latest_checkpoint(spec)
        if path is None:
            raise TrinetError(f"--initial_checkpoint {spec}: the folder holds no trinet checkpoint")
        return None, path
    if not os.path.isfile(spec):
        raise TrinetError(f"--initial_checkpoint {spec}: no such file or folder; expected 'imagenet', a "
                          "Keras weights file, or a trinet experiment root or checkpoint")
    return (None, spec) if _is_trinet_checkpoint(spec) else (spec, None)


def transfer(model: keras.Model, path: str, s: TrainSettings) -> None:
    """Start from another trinet run's checkpoint: its backbone, and its head if it is the same."""
    root = os.path.dirname(os.path.abspath(path))
    source = experiment.load_args(root) if os.path.isfile(os.path.join(root, experiment.ARGS_FILE)) else {}
    from trinet.models.backbones.catalog import canonical_name
    if source and canonical_name(source.get("model_name", "")) != canonical_name(s.model_name):
        raise TrinetError(f"--initial_checkpoint {path} was trained with --model_name "
                          f"{source.get('model_name')}, not {s.model_name}")
    backbone = model.get_layer("backbone").weights
    backbone_paths = {v.path for v in backbone}
    head = [v for v in model.weights
            if v.path not in backbone_paths and not v.path.startswith("head_classifier")]
    same_head = (source.get("head_name") == s.head_name and source.get("embedding_dim") == s.embedding_dim)
    loaded, missing = checkpoints.restore_by_path(path, backbone + (head if same_head else []))
    missing_backbone = [m for m in missing if m in backbone_paths]
    if missing_backbone:
        raise TrinetError(f"--initial_checkpoint {path} does not fit the {s.model_name} backbone: "
                          f"{len(missing_backbone)} variables missing or of another shape "
                          f"({listing(missing_backbone)})")
    log.info("Initialised the backbone%s from %s.", " and the head" if same_head else "", path)


def build_with_weights(spec: ModelSpec, weights: str | None) -> keras.Model:
    """The model, its backbone loaded from the Keras weights file `weights` (as keras.applications loads
    ImageNet weights); a file that is not one that fits is a clear error."""
    try:
        return build_model(spec, weights=weights)
    except TrinetError:  # already says what is wrong (a keras-hub preset that cannot be had)
        raise
    except Exception as e:  # noqa: BLE001 (Keras raises ValueError, OSError, KeyError... for a bad file)
        if weights is None:
            raise
        raise TrinetError(f"--initial_checkpoint {weights} is not a Keras weights file that fits the "
                          f"backbone ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          "expected 'imagenet', a Keras weights file (.weights.h5 or .h5) of the same "
                          "network, or a trinet experiment root or checkpoint") from None


def _check_stripes(model: keras.Model, s: TrainSettings, flag: str, stripes: int) -> None:
    """Raise TrinetError if `stripes` (given by `flag`: PCB's --num_stripes, the local branch's
    --local_stripes) outnumber the rows of the backbone's feature map."""
    backbone = model.get_layer("backbone")
    image = (1, *s.net_size, 3)
    shapes = backbone.compute_output_shape([image, (1,)] if len(backbone.inputs) > 1 else image)
    height = (shapes[0] if isinstance(shapes, (list, tuple)) and isinstance(shapes[0], (list, tuple))
              else shapes)[1]
    if height is not None and stripes > height:
        raise TrinetError(f"{flag} {stripes} is larger than the height of the feature map "
                          f"({height} rows for --net_input_height {s.net_input_height} with --model_name "
                          f"{s.model_name}); use at most {height} stripes, or a larger input")


class Trainer:
    """What a training step needs, built from the settings: the model (its inference part too), the
    optimizer and schedule, the centres of the centre loss, the objectives, and the compiled steps.

    Args:
        identities: the number of training identities (classes of the classifier, rows of the centres).
        keras_weights, source: initial weights (see `initial_weights`).
    """

    def __init__(self, s: TrainSettings, identities: int, keras_weights: str | None = None,
                 source: str | None = None, strategy: tf.distribute.Strategy | None = None,
                 teacher_pin: dict[str, Any] | None = None, cameras: int = 0):
        assert s.seed is not None
        self.s = s
        # a multi-worker strategy must exist before TensorFlow runs its first operation
        self.strategy = strategy if strategy is not None else make_strategy(s.distribute)
        keras.utils.set_random_seed(s.seed)
        if self.strategy is not None:
            replica_share(s.batch_p, s.batch_k, self.strategy.num_replicas_in_sync)
        self.num_classes = identities if s.id_loss_weight else 0  # classes of the classifier (0: none)
        self.num_cameras = cameras if s.camera_embedding else 0  # rows of SIE's camera table (0: none)
        with scope(self.strategy):
            with dtype_policy(s.mixed_precision):
                spec = ModelSpec.from_settings(s, self.num_classes, self.num_cameras)
                self.model = build_with_weights(spec, keras_weights)
            if s.head_name == "pcb":
                _check_stripes(self.model, s, "--num_stripes", s.num_stripes)
            if s.local_branch:
                _check_stripes(self.model, s, "--local_stripes", s.local_stripes)
            if source is not None:
                transfer(self.model, source, s)
            self.inference = embedding_model(self.model)
            self.schedule = schedule_from_settings(s)
            new = new_layer_variables(self.model)
            new_ids = {id(v) for v in new}
            trainable = self.model.trainable_variables
            self._variables = {"all": trainable, "new": new,
                               "backbone": [v for v in trainable if id(v) not in new_ids]}
            self.new_optimizer = None
            self.layer_optimizers: list[tuple[Any, list]] = []  # --layer_lr_decay: (optimizer, variables)
            if s.layer_lr_decay != 1:
                self._layer_decay(s)
            elif s.new_layers_lr_multiplier == 1:
                self.optimizer = self._scaled(make_optimizer(s))
                self.optimizer.build(self._variables["all"])
            else:  # the backbone's optimizer steps only after the freeze: its schedule starts there
                self.optimizer = make_optimizer(s, offset=s.freeze_backbone_iterations)
                self.optimizer.build(self._variables["backbone"])
                self.new_optimizer = make_optimizer(s, factor=s.new_layers_lr_multiplier, suffix="_new")
                self.new_optimizer.build(new)
            self.centers = None
            if s.center_loss_weight:
                dim = int(self.model.output["metric"].shape[-1])
                rng = np.random.default_rng([s.seed, 3])
                # replicas update the centres with the same all-reduced gradient: any copy is the value
                extra = {"aggregation": "only_first_replica"} if self.strategy is not None else {}
                self.centers = keras.Variable(rng.standard_normal((identities, dim), dtype=np.float32),
                                              name="centers", **extra)
            #: the `(C, D)` proxies of each proxy loss (one per training identity, in the space of the metric
            #: feature), trained by an optimizer of their own at --proxy_lr_multiplier x the learning rate
            self.proxies: dict[str, Any] = {}
            self.proxy_optimizer = None
            if s.proxy_losses:
                dim = int(self.model.output["metric"].shape[-1])
                for i, name in enumerate(s.proxy_losses):
                    rng = np.random.default_rng([s.seed, 5, i])
                    self.proxies[name] = keras.Variable(
                        rng.standard_normal((identities, dim), dtype=np.float32), name=f"{name}_proxies")
                self.proxy_optimizer = make_optimizer(s, factor=s.proxy_lr_multiplier, suffix="_proxies")
                self.proxy_optimizer.build(list(self.proxies.values()))
        self.teacher = None
        if s.teacher is not None:
            from trinet.training.distillation import Teacher
            with scope(self.strategy):
                self.teacher = Teacher.load(s.teacher, s.teacher_checkpoint, pin=teacher_pin)
            log.info("Distilling from %s (%s; SHA-256 %s, %s).", self.teacher.source,
                     f"{self.teacher.num_classes} classes" if self.teacher.num_classes else "no classifier",
                     self.teacher.sha256[:16], "the one this run was trained against" if teacher_pin
                     else "recorded in this run's checkpoints")
        #: learning without labels (--unlabeled_set): the pseudo labels and the cluster memory, one row per
        #: unlabeled image (`identities` is then the size of the unlabeled set)
        self.pseudo = None
        if s.pseudo_labels:
            from trinet.training.pseudo_labels import PseudoState
            self.pseudo = PseudoState(identities, int(self.model.output["embedding"].shape[-1]),
                                      memory=bool(s.memory_loss_weight))
        self.objectives = build_objectives(s, self.centers, self.teacher.metric if self.teacher else None,
                                           self.proxies, self.pseudo)
        #: `(B, D) -> (B, B)`: the distances of the metric features the losses see (--spectral_transform)
        self.distances = batch_distances(s.metric, s.spectral_sigma if s.spectral_transform else None)
        self._steps: dict[str, Any] = {}

    def _layer_decay(self, s: TrainSettings) -> None:
        """--layer_lr_decay: an optimizer per depth d of the backbone's transformer (`hub.layer_depths`) with
        the learning rate times decay^(L + 1 - d); the new layers and the final norm take the main one."""
        from trinet.models.backbones.hub import layer_depths

        depths, blocks = layer_depths(self.model.get_layer("backbone"))
        by_depth: dict[int, list] = {}
        for v in self._variables["backbone"]:
            by_depth.setdefault(depths.get(v.path, blocks + 1), []).append(v)
        main = self._variables["new"] + by_depth.pop(blocks + 1, [])
        self._variables["main"] = main
        self.optimizer = make_optimizer(s)
        self.optimizer.build(main)
        for depth in sorted(by_depth):
            factor = s.layer_lr_decay ** (blocks + 1 - depth)
            optimizer = make_optimizer(s, factor=factor, suffix=f"_depth{depth}")
            optimizer.build(by_depth[depth])
            self.layer_optimizers.append((optimizer, by_depth[depth]))
        log.info("--layer_lr_decay %g: %d transformer blocks, learning-rate factors from %.3g (token "
                 "embedding) to 1 (final norm and new layers).", s.layer_lr_decay, blocks,
                 s.layer_lr_decay ** (blocks + 1))

    def _scaled(self, optimizer):
        """`optimizer`, wrapped in Keras' LossScaleOptimizer (dynamic loss scale) for float16."""
        if self.s.mixed_precision != "float16":
            return optimizer
        return keras.optimizers.LossScaleOptimizer(optimizer, name="loss_scale")

    @property
    def loss_scale(self):
        """The LossScaleOptimizer of float16 training (None otherwise)."""
        return self.optimizer if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer) else None

    def groups(self) -> dict[str, list]:
        """The variables a checkpoint holds, by group."""
        optimizers = self.optimizer.variables + (self.new_optimizer.variables if self.new_optimizer else [])
        if self.proxy_optimizer is not None:
            optimizers = optimizers + self.proxy_optimizer.variables
        optimizers += [v for optimizer, _ in self.layer_optimizers for v in optimizer.variables]
        groups = {"model": self.model.weights, "optimizer": optimizers}
        training = ([self.centers] if self.centers is not None else []) + list(self.proxies.values())
        if training:
            groups["training"] = training
        if self.pseudo is not None:
            from trinet.training.pseudo_labels import GROUP
            groups[GROUP] = self.pseudo.variables()
        return groups

    def memory_update(self, outputs: dict, labels) -> None:
        """Move the cluster memory's entries of the batch's clusters towards the batch's embeddings
        (`trinet.losses.memory.updated_memory`, --memory_momentum, --memory_update); in the step, after the
        gradients."""
        from trinet.losses.memory import updated_memory

        assert self.pseudo is not None and self.pseudo.memory is not None
        memory = self.pseudo.memory
        features = tf.stop_gradient(outputs["embedding"])
        memory.assign(updated_memory(tf.convert_to_tensor(memory), features, labels, self.s.memory_momentum,
                                     self.s.memory_update))

    def extra_models(self) -> dict[str, keras.Model]:
        """`{file name: training model}` of the run's other networks, exported beside model.keras (none:
        see `trinet.training.mutual.MutualTrainer`)."""
        return {}

    def updates(self, phase: str) -> list[tuple[Any, list]]:
        """`(optimizer, variables)` pairs that one step of `phase` ('new' or 'all') applies (the proxies
        learn in both)."""
        proxies = [(self.proxy_optimizer, list(self.proxies.values()))] if self.proxy_optimizer else []
        if self.layer_optimizers:  # --layer_lr_decay (no freeze phase)
            return [(self.optimizer, self._variables["main"])] + self.layer_optimizers + proxies
        if self.new_optimizer is None:
            return [(self.optimizer, self._variables[phase])] + proxies
        backbone = [(self.optimizer, self._variables["backbone"])] if phase == "all" else []
        return [(self.new_optimizer, self._variables["new"])] + backbone + proxies

    def step(self, iteration: int):
        """The compiled training step of `iteration` (0-based): only the new layers during
        --freeze_backbone_iterations, then every trainable variable."""
        s = self.s
        phase = "new" if iteration < s.freeze_backbone_iterations else "all"
        if phase not in self._steps:
            if phase == "new":
                log.info("Training only the new layers (%d variables) until iteration %d.",
                         len(self._variables["new"]), s.freeze_backbone_iterations)
            center_scale = s.center_learning_rate / s.center_loss_weight if s.center_loss_weight else 0.0
            k = max(1, s.batch_k - 1)
            teacher = self.teacher.outputs if self.teacher is not None else None
            memory = self.pseudo is not None and self.pseudo.memory is not None
            after_update = self.memory_update if memory else None
            if self.strategy is None:
                self._steps[phase] = make_train_step(self.model, self.updates(phase), self.objectives,
                                                     self.distances, k, self.centers, center_scale,
                                                     jit_compile=s.jit_compile, loss_scale=self.loss_scale,
                                                     teacher=teacher, clip_length=s.clip_frames,
                                                     after_update=after_update)
            else:
                self._steps[phase] = make_replicated_step(
                    self.strategy, self.model, self.updates(phase), self.objectives, self.distances, k,
                    s.batch_size, self.centers, center_scale, s.cross_replica_mining, self.loss_scale,
                    teacher=teacher, clip_length=s.clip_frames)
        return self._steps[phase]
