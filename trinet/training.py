"""The training run: checks, building, the loop and its bookkeeping (checkpoints, logs, validation).

`train(settings)` is called by `train.py` once the settings are resolved (on --resume, from
args.json). Everything that can be checked is checked before anything is written: the training set,
the validation sets, the initial weights and the model. The loop follows the original triplet-reid
train.py (a checkpoint every --checkpoint_frequency iterations, a clean stop on SIGINT/SIGTERM) with
a weighted list of objectives (`trinet.objectives`). Batches are a pure function of (seed, batch
index), augmentation uses stateless random ops and every variable is saved, so a resumed run
continues exactly where it stopped.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import logging.handlers
import os
import random
import time
from typing import Any

import numpy as np
import tensorflow as tf
import keras

from trinet import checkpoints, experiment
from trinet.console import LOG_FORMAT
from trinet.datasets import Dataset, check_files, find_non_images, read_csv
from trinet.distribute import dtype_policy, is_chief, make_strategy, replica_share, scope
from trinet.errors import TrinetError, listing
from trinet.fileio import atomic_path, remove_stale_temporaries
from trinet.losses import batch_distances
from trinet.models import ModelSpec, build_model, embedding_model, new_layer_variables
from trinet.monitoring import active_fraction, batch_stats
from trinet.objectives import build_objectives, evaluate as evaluate_objectives
from trinet.optimizers import make_optimizer, schedule_from_settings
from trinet.pipeline import Delivered, MAX_AHEAD, decodable, training_dataset
from trinet.progress import format_seconds
from trinet.runlock import ExperimentLock
from trinet.sampling import SAMPLERS, PKSampler
from trinet.settings import TrainSettings
from trinet.signals import Uninterrupt

log = logging.getLogger("trinet.train")

#: Seconds per iteration (and the ETA) are averaged over this many recent iterations.
ETA_WINDOW = 20
#: Training stops with an error when this many batches in a row could not be formed.
MAX_CONSECUTIVE_SKIPS = 10


def _add_file_log(root: str) -> logging.Handler:
    handler = logging.FileHandler(os.path.join(root, experiment.LOG_FILE), mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.DEBUG)
    logging.getLogger("trinet").addHandler(handler)
    return handler


def load_training_set(s: TrainSettings) -> Dataset:
    """Read and check the training CSV before any long work: missing files, non-image files,
    (with --validate_images) undecodable images and single-image identities."""
    assert s.train_set is not None  # TrainSettings.validate requires it
    dataset = check_files(read_csv(s.train_set, s.image_root), skip_missing=s.skip_missing)
    bad = find_non_images(dataset)
    what = "empty or not an image file (JPEG, PNG, BMP or GIF)"
    if s.validate_images:
        log.info("Decoding all %d training images (--validate_images)...", len(dataset))
        bad |= ~decodable(dataset.paths(), threads=s.loading_threads)
        what = "empty, not an image file, or not decodable"
    if bad.any():
        message = (f"{s.train_set}: {bad.sum()} of {len(dataset)} images are {what}: "
                   f"{listing(dataset.fids[bad])}")
        if s.on_bad_image == "error":
            raise TrinetError(message + ". Remove them from the CSV, or pass --on_bad_image skip.")
        log.warning("%s. Skipping them.", message)
        dataset = dataset.subset(~bad)
    pids, counts = np.unique(dataset.pids, return_counts=True)
    single = pids[counts == 1]
    if len(single) and s.triplet_loss_weight:
        log.warning("%d identities have a single image (%s): they serve as negatives, and as anchors only "
                    "against augmented copies of themselves.", len(single), listing(single))
    log.info("Training set: %d images of %d identities (%s).", len(dataset), len(pids), s.train_set)
    return dataset


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
    if spec == "imagenet":
        from trinet.backbones import imagenet_weights
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
    from trinet.backbones import canonical_name
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
    except Exception as e:  # noqa: BLE001 (Keras raises ValueError, OSError, KeyError... for a bad file)
        if weights is None:
            raise
        raise TrinetError(f"--initial_checkpoint {weights} is not a Keras weights file that fits the "
                          f"backbone ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          "expected 'imagenet', a Keras weights file (.weights.h5 or .h5) of the same "
                          "network, or a trinet experiment root or checkpoint") from None


class DetailedLogs:
    """Per-iteration embeddings, losses and image paths in memory-mapped .npy files (--detailed_logs)."""

    def __init__(self, root: str, iterations: int, batch: int, dim: int, fid_length: int):
        def open_map(name, dtype, shape):
            path = os.path.join(root, f"detailed_{name}.npy")
            if os.path.isfile(path):
                return np.load(path, mmap_mode="r+")
            return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        self.embeddings = open_map("embeddings", np.float32, (iterations, batch, dim))
        self.losses = open_map("losses", np.float32, (iterations, batch))
        self.fids = open_map("fids", f"S{max(1, fid_length)}", (iterations, batch))

    def write(self, iteration: int, embeddings, losses, fids) -> None:
        self.embeddings[iteration], self.losses[iteration] = embeddings, losses
        self.fids[iteration] = np.char.encode(fids.astype(str), "utf-8")

    def flush(self) -> None:
        for array in (self.embeddings, self.losses, self.fids):
            array.flush()


def export(root: str, model: keras.Model, filename: str = experiment.MODEL_FILE) -> str:
    """Save the inference model as `model.keras` (or `filename`; raw RGB in, embedding out; with the local
    branch, a dict of the embedding and the local features), atomically."""
    path = os.path.join(root, filename)
    try:
        with atomic_path(path) as tmp:
            keras_tmp = tmp + ".keras"  # Keras insists on the extension
            try:
                embedding_model(model, local=True).save(keras_tmp)
                os.replace(keras_tmp, tmp)
            finally:
                if os.path.exists(keras_tmp):
                    os.remove(keras_tmp)
    except OSError as e:
        raise TrinetError(f"Could not write {path}: {e.strerror or e}. The checkpoints are intact; free "
                          "space, then run again with --resume to write it.") from None
    return path


def _scalars(writer, step: int, values: dict[str, float]) -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)


def _apply(updates, grads, centers, center_scale: float, loss_scale=None, all_reduce=None) -> tf.Tensor:
    """Apply `grads` (of the variables of `updates`, then of `centers`) with each `(optimizer, variables)`
    pair; the centres take a plain SGD step. With a loss-scale optimizer (float16), a step whose gradients
    are not finite is skipped (and the centres too); its iteration still counts, so the learning-rate
    schedule does not shift. `all_reduce`: sums the centres' gradient over replicas. Returns whether the
    step was skipped."""
    skipped = tf.constant(False)
    if loss_scale is not None:
        scale = tf.cast(tf.convert_to_tensor(loss_scale.dynamic_scale), tf.float32)
        before = tf.convert_to_tensor(loss_scale.iterations)
    start = 0
    for optimizer, group in updates:
        optimizer.apply_gradients(zip(grads[start:start + len(group)], group))
        start += len(group)
    if loss_scale is not None:
        skipped = tf.equal(tf.convert_to_tensor(loss_scale.iterations), before)
        loss_scale.iterations.assign_add(tf.cast(skipped, loss_scale.iterations.dtype))
    if centers is not None:
        grad = tf.convert_to_tensor(grads[-1])  # gathered: sparse
        if all_reduce is not None:
            grad = all_reduce(grad)
        if loss_scale is not None:
            grad = tf.where(skipped, tf.zeros_like(grad), grad / scale)
        centers.assign_sub(center_scale * grad)
    return skipped


def _float32(outputs: dict) -> dict:
    return {name: tf.cast(t, tf.float32) for name, t in outputs.items()}


def _monitoring(stats: dict, loss, per_sample, outputs: dict, terms: dict, skipped) -> dict:
    stats.update(loss=loss, per_sample=per_sample, emb=outputs["embedding"],
                 norms=tf.norm(outputs["raw"], axis=1),
                 active=active_fraction(terms.get("triplet", per_sample)), skipped=skipped)
    stats.update({f"loss_{name}": tf.reduce_mean(values) for name, values in terms.items()})
    return stats


def make_train_step(model: keras.Model, updates, objectives, distances, k: int, centers=None,
                    center_scale: float = 0.0, jit_compile: bool = False, loss_scale=None, teacher=None):
    """A compiled `(images (B,H,W,3), labels (B,)) -> dict of tensors` training step (`distances`: the
    `(B, D) -> (B, B)` distances the losses see, `trinet.losses.batch_distances`) that applies, for
    each `(optimizer, variables)` of `updates`, the gradients of those variables, and updates `centers`
    (if any) by plain SGD on the unweighted centre loss (`center_scale` = centre learning rate / centre
    loss weight), as the Bag of Tricks. `jit_compile`: the forward and backward passes and the updates
    are compiled with XLA (the monitoring, of dynamic shapes, is not). `loss_scale`: the
    LossScaleOptimizer of float16 training (the loss is scaled for the gradients). `teacher`: `images ->
    dict` of constant outputs added to the model's (distillation)."""
    variables = [v for _, group in updates for v in group]
    watched = variables + ([centers] if centers is not None else [])

    def learn(images, labels):
        with tf.GradientTape() as tape:
            outputs = _float32(model(images, training=True))
            if teacher is not None:
                outputs.update(teacher(images))
            outputs["dists"] = distances(outputs["metric"])
            loss, per_sample, terms = evaluate_objectives(objectives, outputs, labels)
            scaled = loss if loss_scale is None else loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, watched)
        skipped = _apply(updates, grads, centers, center_scale, loss_scale)
        return outputs, loss, per_sample, terms, skipped

    learn_step = tf.function(learn, jit_compile=True) if jit_compile else learn

    @tf.function
    def step(images, labels):
        outputs, loss, per_sample, terms, skipped = learn_step(images, labels)
        stats = batch_stats(outputs["dists"], labels, k)
        return _monitoring(stats, loss, per_sample, outputs, terms, skipped)

    return step


def make_replicated_step(strategy: tf.distribute.Strategy, model: keras.Model, updates, objectives,
                         distances, k: int, batch_size: int, centers=None, center_scale: float = 0.0,
                         cross_replica_mining: bool = False, loss_scale=None, teacher=None):
    """The training step of `make_train_step` run by each replica of `strategy` on its share of the global
    batch: `batch_size / replicas` consecutive images (whole identities; `trinet.distribute.replica_share`).

    Each replica's loss is its share of the global mean (its per-sample losses summed, over the global
    batch size), so that the gradients the optimizer sums over replicas are those of the global batch.
    With `cross_replica_mining` the outputs of all replicas are all-gathered (differentiably) and each
    replica evaluates the objectives on the global batch, keeping its own samples' losses: the step then
    computes what one device computes. Without it, each replica's objectives see its own images only. The
    monitoring is always of the global batch. `stop` (a float, > 0 on a worker that was interrupted) is
    summed over the replicas into the output `stop`, so that every worker of a cluster stops after the
    same step. Returns one replica's values (they are the same on all).
    """
    variables = [v for _, group in updates for v in group]
    watched = variables + ([centers] if centers is not None else [])
    replicas = strategy.num_replicas_in_sync
    share = batch_size // replicas

    def replica_step(images, labels, stop):
        ctx = tf.distribute.get_replica_context()
        first = ctx.replica_id_in_sync_group * share
        own_images, own_labels = images[first:first + share], labels[first:first + share]

        def gather(t):
            return ctx.all_gather(t, axis=0)

        with tf.GradientTape() as tape:
            outputs = _float32(model(own_images, training=True))
            if teacher is not None:
                outputs.update(teacher(own_images))
            if cross_replica_mining:
                outputs = {name: gather(t) for name, t in outputs.items()}
                outputs["dists"] = distances(outputs["metric"])
                _, per_sample, terms = evaluate_objectives(objectives, outputs, labels)
                own_loss = tf.reduce_sum(per_sample[first:first + share]) / batch_size
            else:
                outputs["dists"] = distances(outputs["metric"])
                own_total, per_sample, terms = evaluate_objectives(objectives, outputs, own_labels)
                own_loss = own_total / replicas
            scaled = own_loss if loss_scale is None else loss_scale.scale_loss(own_loss)
        grads = tape.gradient(scaled, watched)
        skipped = _apply(updates, grads, centers, center_scale, loss_scale,
                         all_reduce=lambda g: ctx.all_reduce(tf.distribute.ReduceOp.SUM, g))
        if not cross_replica_mining:  # the monitoring sees the global batch
            outputs = {name: gather(tf.stop_gradient(t)) for name, t in outputs.items() if name != "dists"}
            outputs["dists"] = distances(outputs["metric"])
            per_sample, terms = gather(per_sample), {name: gather(v) for name, v in terms.items()}
        loss = ctx.all_reduce(tf.distribute.ReduceOp.SUM, own_loss)
        stats = batch_stats(outputs["dists"], labels, k)
        # > 0: a worker was interrupted (the identity places the input on this replica's device)
        stats["stop"] = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(stop))
        return _monitoring(stats, loss, per_sample, outputs, terms, skipped)

    @tf.function
    def step(images, labels, stop=0.0):
        results = strategy.run(replica_step, args=(images, labels, tf.convert_to_tensor(stop, tf.float32)))
        return {name: strategy.experimental_local_results(value)[0] for name, value in results.items()}

    return step


def _check_stripes(model: keras.Model, s: TrainSettings, flag: str, stripes: int) -> None:
    """Raise TrinetError if `stripes` (given by `flag`: PCB's --num_stripes, the local branch's
    --local_stripes) outnumber the rows of the backbone's feature map."""
    height = model.get_layer("backbone").compute_output_shape((1, *s.net_size, 3))[1]
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
                 teacher_pin: dict[str, Any] | None = None):
        assert s.seed is not None
        self.s = s
        # a multi-worker strategy must exist before TensorFlow runs its first operation
        self.strategy = strategy if strategy is not None else make_strategy(s.distribute)
        keras.utils.set_random_seed(s.seed)
        if self.strategy is not None:
            replica_share(s.batch_p, s.batch_k, self.strategy.num_replicas_in_sync)
        self.num_classes = identities if s.id_loss_weight else 0  # classes of the classifier (0: none)
        with scope(self.strategy):
            with dtype_policy(s.mixed_precision):
                self.model = build_with_weights(ModelSpec.from_settings(s, self.num_classes), keras_weights)
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
            if s.new_layers_lr_multiplier == 1:
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
        self.teacher = None
        if s.teacher is not None:
            from trinet.distillation import Teacher
            with scope(self.strategy):
                self.teacher = Teacher.load(s.teacher, s.teacher_checkpoint, pin=teacher_pin)
            log.info("Distilling from %s (%s; SHA-256 %s, %s).", self.teacher.source,
                     f"{self.teacher.num_classes} classes" if self.teacher.num_classes else "no classifier",
                     self.teacher.sha256[:16], "the one this run was trained against" if teacher_pin
                     else "recorded in this run's checkpoints")
        self.objectives = build_objectives(s, self.centers, self.teacher.metric if self.teacher else None)
        #: `(B, D) -> (B, B)`: the distances of the metric features the losses see (--spectral_transform)
        self.distances = batch_distances(s.metric, s.spectral_sigma if s.spectral_transform else None)
        self._steps: dict[str, Any] = {}

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
        groups = {"model": self.model.weights, "optimizer": optimizers}
        if self.centers is not None:
            groups["training"] = [self.centers]
        return groups

    def extra_models(self) -> dict[str, keras.Model]:
        """`{file name: training model}` of the run's other networks, exported beside model.keras (none:
        see `trinet.mutual.MutualTrainer`)."""
        return {}

    def _updates(self, phase: str) -> list[tuple[Any, list]]:
        """`(optimizer, variables)` pairs that one step of `phase` ('new' or 'all') applies."""
        if self.new_optimizer is None:
            return [(self.optimizer, self._variables[phase])]
        backbone = [(self.optimizer, self._variables["backbone"])] if phase == "all" else []
        return [(self.new_optimizer, self._variables["new"])] + backbone

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
            if self.strategy is None:
                self._steps[phase] = make_train_step(self.model, self._updates(phase), self.objectives,
                                                     self.distances, k, self.centers, center_scale,
                                                     jit_compile=s.jit_compile, loss_scale=self.loss_scale,
                                                     teacher=teacher)
            else:
                self._steps[phase] = make_replicated_step(
                    self.strategy, self.model, self._updates(phase), self.objectives, self.distances, k,
                    s.batch_size, self.centers, center_scale, s.cross_replica_mining, self.loss_scale,
                    teacher=teacher)
        return self._steps[phase]


class _Run:
    """The objects of one training run, built from the settings before anything is written."""

    def __init__(self, s: TrainSettings, dataset: Dataset, latest: str | None, chief: bool = True,
                 strategy: tf.distribute.Strategy | None = None):
        self.s, self.dataset, self.chief = s, dataset, chief
        self.root = s.experiment_root
        assert s.seed is not None
        self.sampler: PKSampler = SAMPLERS[s.sampler](dataset.pids, s.batch_p, s.batch_k, s.seed)
        keras_weights, source = ((None, None) if latest else
                                 initial_weights(s.initial_checkpoint, s.model_name))
        identities = len(self.sampler.unique_pids)
        # the teacher's checkpoint a resumed run was trained against (older checkpoints: none recorded)
        teacher_pin = checkpoints.read_info(latest)[1].get("teacher") if latest and s.teacher else None
        if latest and s.teacher and teacher_pin is None:
            log.warning("%s does not record the teacher's checkpoint (written by an older trinet): resuming "
                        "with the latest of %s, which may not be the one the run started with.", latest,
                        s.teacher)
        self.trainer: Any = Trainer(s, identities, keras_weights, source, strategy, teacher_pin)
        if s.mutual_models > 1:
            from trinet.mutual import MutualTrainer
            members = [self.trainer] + [Trainer(s.replace(seed=s.seed + 1000 * i), identities, keras_weights,
                                                source) for i in range(1, s.mutual_models)]
            self.trainer = MutualTrainer(members, s.mutual_logits_weight, s.mutual_distance_weight)
        if s.distill_logits_weight:
            assert self.trainer.teacher is not None
            self.trainer.teacher.check_identities(self.sampler.unique_pids)
        self.validator = None
        if s.validation:
            from trinet.validation import Validator
            assert s.val_query is not None and s.val_gallery is not None and s.val_excluder is not None
            self.validator = Validator(s.val_query, s.val_gallery, s.val_image_root or s.image_root,
                                       s.val_excluder, s.embedding_metric, net_size=s.net_size,
                                       threads=min(4, s.loading_threads))

    def save(self, step: int, state: dict[str, Any], path: str | None = None) -> str | None:
        """Write `checkpoint-<step>.h5` (or `path`); a failed write keeps every earlier checkpoint and says
        so. Only the chief writes (the other workers of a cluster return None)."""
        if not self.chief:
            return None
        try:
            written = checkpoints.save_checkpoint(self.root, step, self.trainer.groups(), state, path=path)
        except OSError as e:
            previous = checkpoints.latest_checkpoint(self.root)
            raise TrinetError(f"Could not write the checkpoint of iteration {step} in {self.root}: "
                              f"{e.strerror or e}. The previous checkpoint ({previous or 'none'}) is intact; "
                              "free space or fix the folder, then run again with --resume.") from None
        if path is None:  # a numbered checkpoint (not best.h5): keep only the newest
            checkpoints.prune(self.root, self.s.keep_checkpoints)
        log.info("Saved checkpoint %s.", os.path.basename(written))
        return written


def train(s: TrainSettings) -> int:
    """Run (or resume) training as configured by `s`; returns the exit status.

    Everything is checked and built before the experiment root is written; the log lines of that
    phase are kept and written to train.log once it exists.
    """
    root = s.experiment_root
    if not s.resume and s.seed is None:
        s = s.replace(seed=random.SystemRandom().randrange(2**31))
    chief = is_chief(s.distribute)  # the other workers of a cluster write nothing in the experiment root
    trinet_log = logging.getLogger("trinet")
    early = logging.handlers.MemoryHandler(capacity=100000, flushLevel=logging.CRITICAL + 1)
    trinet_log.addHandler(early)
    # a multi-worker strategy configures TensorFlow's collectives: before TensorFlow runs anything else
    strategy = make_strategy(s.distribute) if s.distribute == "multi_worker" else None
    with contextlib.ExitStack() as stack:
        try:
            log.info("%s training with the following parameters:", "Resuming" if s.resume else "Starting")
            for key, value in sorted(s.saved().items()):
                log.info("%20s: %s", key, value)
            if not s.resume and chief:
                experiment.check_fresh(root)  # before any long work
            dataset = load_training_set(s)
            if s.resume:
                if chief:
                    experiment.check_writable(root)
                    stack.enter_context(ExperimentLock(root))
                latest = checkpoints.latest_checkpoint(root)
            else:
                latest = None
            run = _Run(s, dataset, latest, chief, strategy)
            if not s.resume and chief:
                experiment.prepare_fresh(root)
                stack.enter_context(ExperimentLock(root))
                experiment.save_args(root, s.saved())
            if chief:
                handler = _add_file_log(root)
                stack.callback(handler.close)
                stack.callback(trinet_log.removeHandler, handler)
                early.setTarget(handler)
                early.flush()
        finally:
            trinet_log.removeHandler(early)
            early.close()
        stale = remove_stale_temporaries(root) if chief else []
        if stale:
            log.info("Removed %d temporary files left by an interrupted run: %s", len(stale), listing(stale))
        try:
            return _loop(run, latest)
        except TrinetError as e:
            log.debug("Stopped with an error: %s", e)  # into train.log; the console shows the error itself
            raise


def _find_undecodable(run: _Run, sampler: PKSampler, first: int, stop: int) -> np.ndarray:
    """The dataset rows of batches `first <= index < stop` whose images do not decode."""
    rows = np.unique(np.concatenate([sampler.batch(i) for i in range(first, stop)]))
    paths = run.dataset.paths()
    ok = decodable([paths[r] for r in rows], threads=run.s.loading_threads)
    return rows[~ok]


def _loop(run: _Run, latest: str | None) -> int:
    """The training loop, from `latest` checkpoint (None: from the start)."""
    s, root, trainer = run.s, run.root, run.trainer
    model = trainer.model
    step = 0
    state: dict[str, Any] = {"next_batch": 0, "skipped_batches": 0, "excluded_rows": [], "best": None,
                             "num_classes": trainer.num_classes, "skipped_steps": 0}
    if trainer.teacher is not None:  # exactly this checkpoint of the teacher is reloaded on --resume
        state["teacher"] = trainer.teacher.pin()
    if latest is not None:
        step, saved_state = checkpoints.restore(latest, trainer.groups())
        state.update(saved_state)
        log.info("Restored %s: iteration %d, next batch %d.", os.path.basename(latest), step,
                 state["next_batch"])
    else:
        if s.resume:
            log.warning("No checkpoint in %s: starting from the beginning.", root)
        run.save(0, state)

    total = s.train_iterations
    if step >= total:
        log.info("Training already finished (%d of %d iterations).", step, total)
        # a run killed after its last checkpoint but before model.keras was written
        if run.chief and not os.path.isfile(os.path.join(root, experiment.MODEL_FILE)):
            log.info("Training finished after %d iterations; the embedding model is in %s.", step,
                     export(root, model))
        return 0

    assert s.seed is not None
    k = max(1, s.batch_k - 1)

    writer = tf.summary.create_file_writer(root) if run.chief else tf.summary.create_noop_writer()
    dim = int(model.output["embedding"].shape[-1])
    detailed = (DetailedLogs(root, total, s.batch_size, dim, max(len(f.encode()) for f in run.dataset.fids))
                if s.detailed_logs and run.chief else None)
    excluded: set[int] = set(state["excluded_rows"])
    seed = s.seed
    delivered = Delivered(state["next_batch"] - 1)

    def open_data(start: int):
        sampler = (run.sampler if not excluded else
                   SAMPLERS[s.sampler](run.dataset.pids, s.batch_p, s.batch_k, seed, excluded))
        data = training_dataset(run.dataset.paths(), sampler, start, None, net_size=s.net_size,
                                pre_crop_size=s.pre_crop_size, flip=s.flip_augment, crop=s.crop_augment,
                                threads=s.loading_threads, pad=s.pad_crop, erasing_prob=s.random_erasing_prob,
                                delivered=delivered, color_jitter=s.color_jitter,
                                auto_augment_prob=s.auto_augment_prob)
        return sampler, iter(data)

    sampler, data = open_data(state["next_batch"])
    times: collections.deque = collections.deque(maxlen=ETA_WINDOW)
    last_saved = step
    log.info("Training iterations %d to %d (batches of %d x %d = %d images of %dx%d; objective: %s).",
             step + 1, total, s.batch_p, s.batch_k, s.batch_size, *s.net_size,
             " + ".join(f"{o.weight:g} x {o.name}" for o in trainer.objectives))

    with Uninterrupt() as interrupt, writer.as_default():
        tick = time.perf_counter()
        agreed_stop = False  # with several workers: a stop that every worker saw after the same step
        while step < total and not (agreed_stop if trainer.strategy is not None else interrupt.interrupted):
            item = next(data, None)
            if item is None:  # the generator gave up: a long run of batches that all failed
                first = delivered.index + 1
                bad = _find_undecodable(run, sampler, first, first + MAX_AHEAD)
                run.save(step, state)
                raise TrinetError(f"No batch could be formed from batch {first} on: each holds an image that "
                                  f"fails to decode ({listing(run.dataset.fids[bad]) or 'unknown'}). Remove "
                                  "them from the CSV, or run with --validate_images to drop them up front.")
            index, images, labels = int(item[0]), item[1], item[2]
            reopen = False
            if index != state["next_batch"]:
                skipped = index - state["next_batch"]
                bad = _find_undecodable(run, sampler, state["next_batch"], index)
                state["skipped_batches"] += skipped
                excluded.update(int(r) for r in bad)
                state["excluded_rows"] = sorted(excluded)
                names = listing(run.dataset.fids[bad]) if len(bad) else "no image failed when checked again"
                log.warning("Skipped %d batch(es) (%d so far) at iteration %d: could not decode %s. Such "
                            "images are left out from now on (%d so far); --validate_images drops them up "
                            "front.",
                            skipped, state["skipped_batches"], step + 1, names, len(excluded))
                if skipped >= MAX_CONSECUTIVE_SKIPS:
                    run.save(step, state)
                    raise TrinetError(f"{skipped} batches in a row could not be formed (images that fail to "
                                      f"decode: {names}). Remove them from {s.train_set} or run with "
                                      "--validate_images, then --resume.")
                reopen = True
            delivered.index = index
            if trainer.strategy is None:
                out = trainer.step(step)(images, labels)
            else:
                out = trainer.step(step)(images, labels, tf.constant(float(interrupt.interrupted)))
                agreed_stop = bool(out["stop"] > 0)
            step += 1
            state["next_batch"] = index + 1
            if reopen:  # later batches are drawn without the undecodable images
                sampler, data = open_data(state["next_batch"])
            per_sample = out["per_sample"].numpy()
            loss = float(out["loss"])
            if bool(out["skipped"]):  # float16: gradients not finite; the loss scale was lowered
                state["skipped_steps"] += 1
                log.info("Iteration %d skipped its update (gradients not finite in float16; %d so far); the "
                         "loss scale is now %g.", step, state["skipped_steps"],
                         float(trainer.loss_scale.dynamic_scale))
            if not np.isfinite(loss):
                raise TrinetError(f"The loss became {loss} at iteration {step}; the last good checkpoint "
                                  f"is {checkpoints.latest_checkpoint(root)}. Lower --learning_rate.")
            now = time.perf_counter()
            times.append(now - tick)
            tick = now
            if detailed is not None:
                detailed.write(step - 1, out["emb"].numpy(), per_sample,
                               run.dataset.fids[sampler.batch(index)])
            if step % s.log_frequency == 0 or step == total:
                _log_step(run, writer, out, step, per_sample, loss, float(np.mean(times)), k,
                          state["skipped_steps"])
            if s.histogram_frequency and step % s.histogram_frequency == 0:
                tf.summary.histogram("loss_distribution", out["per_sample"], step=step)
                tf.summary.histogram("embedding_pos_dists", out["pos_dists"], step=step)
                tf.summary.histogram("embedding_neg_dists", out["neg_dists"], step=step)
                tf.summary.histogram("embedding_lengths", out["norms"], step=step)
            if run.validator is not None and run.chief and (step % s.val_frequency == 0 or step == total):
                _validate(run, writer, step, state)
            if s.checkpoint_frequency and step % s.checkpoint_frequency == 0 and step < total:
                if detailed is not None:
                    detailed.flush()
                run.save(step, state)
                last_saved = step
    writer.flush()
    if detailed is not None:
        detailed.flush()
    if step != last_saved or step >= total:
        run.save(step, state)
    if step < total:
        log.info("Stopped at iteration %d of %d. To continue: train.py --experiment_root %s --resume",
                 step, total, root)
        return 0
    if not run.chief:
        log.info("Training finished after %d iterations (the chief writes the model).", step)
        return 0
    path = export(root, model)
    log.info("Training finished after %d iterations; the embedding model is in %s.", step, path)
    for filename, member in trainer.extra_models().items():
        log.info("The embedding model of another network of the mutual learning is in %s.",
                 export(root, member, filename))
    if state.get("best"):
        best = state["best"]
        log.info("Best validation at iteration %d: mAP %.2f%%, rank-1 %.2f%% (embed it with --checkpoint "
                 "best).", best["step"], 100 * best["mAP"], 100 * best["rank1"])
    return 0


def _log_step(run: _Run, writer, out: dict, step: int, per_sample: np.ndarray, loss: float, seconds: float,
              k: int, skipped_steps: int = 0) -> None:
    s = run.s
    lr = run.trainer.schedule.value(step - 1)
    terms = {name[5:]: float(value) for name, value in out.items() if name.startswith("loss_")}
    detail = f" ({', '.join(f'{n} {v:.3f}' for n, v in terms.items())})" if len(terms) > 1 else ""
    log.info("iter: %6d, loss min|avg|max: %.3f|%.3f|%6.3f%s, batch-p@%d: %.2f%%, active: %.0f%%, lr: %.3g, "
             "ETA: %s (%.2fs/it)", step, per_sample.min(), loss, per_sample.max(), detail, k,
             100 * float(out["prec_at_k"]), 100 * float(out["active"]), lr,
             format_seconds((s.train_iterations - step) * seconds), seconds)
    values = {"loss": loss, "batch_top1": float(out["top1"]), f"batch_prec_at_{k}": float(out["prec_at_k"]),
              "active_fraction": float(out["active"]), "learning_rate": lr, "secs_per_iter": seconds,
              "embedding_norm_mean": float(tf.reduce_mean(out["norms"]))}
    values.update({f"loss_{name}": value for name, value in terms.items()})
    if run.trainer.loss_scale is not None:
        values["loss_scale"] = float(run.trainer.loss_scale.dynamic_scale)
        log.info("iter: %6d, float16 loss scale: %g, skipped updates so far: %d", step, values["loss_scale"],
                 skipped_steps)
    _scalars(writer, step, values)


def _validate(run: _Run, writer, step: int, state: dict[str, Any]) -> None:
    """Evaluate on the validation sets; keep `best.h5` when the score is the best so far."""
    assert run.validator is not None
    tick = time.perf_counter()
    scores = run.validator.evaluate(run.trainer.inference)
    best = state.get("best")
    improved = best is None or scores.score > best["score"]
    log.info("validation at iter %d: mAP %.2f%%, mINP %.2f%%, rank-1 %.2f%% (%.1fs)%s", step,
             100 * scores.mean_ap, 100 * scores.mean_inp, 100 * scores.rank1, time.perf_counter() - tick,
             ", the best so far" if improved else f"; the best is iteration {best['step']}" if best else "")
    _scalars(writer, step, {f"val_{name}": value for name, value in scores.as_dict().items()})
    if improved:
        state["best"] = {"step": step, **scores.as_dict()}
        run.save(step, state, path=os.path.join(run.root, checkpoints.BEST + ".h5"))
