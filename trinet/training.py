"""The training run: data checks, model, optimiser, the loop, checkpoints, logs and the final model.

`train(args, saved_args)` is called by `train.py` once the arguments are parsed (and, on --resume,
reloaded from args.json). The loop follows the original triplet-reid train.py: Adam on the mean
batch-hard loss of P x K batches, a checkpoint every --checkpoint_frequency iterations, and a clean
stop on SIGINT/SIGTERM. Batches are a pure function of (seed, batch index) and augmentation uses
stateless random ops, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import argparse
import collections
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
from trinet.cli.common import LOG_FORMAT
from trinet.datasets import Dataset, check_files, find_non_images, read_csv
from trinet.errors import TrinetError, listing
from trinet.fileio import atomic_path, remove_stale_temporaries
from trinet.losses import cdist, get_loss
from trinet.models import build_model, embedding_model
from trinet.monitoring import active_fraction, batch_stats
from trinet.pipeline import decodable, training_dataset
from trinet.progress import format_seconds
from trinet.sampling import PKSampler
from trinet.schedule import TrinetSchedule, learning_rate
from trinet.signals import Uninterrupt

log = logging.getLogger("trinet.train")

#: Seconds per iteration (and the ETA) are averaged over this many recent iterations.
ETA_WINDOW = 20


def _add_file_log(root: str) -> logging.Handler:
    handler = logging.FileHandler(os.path.join(root, experiment.LOG_FILE), mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.DEBUG)
    logging.getLogger("trinet").addHandler(handler)
    return handler


def load_training_set(args: argparse.Namespace) -> Dataset:
    """Read and check the training CSV before any long work: missing files, non-image files,
    (with --validate_images) undecodable images, single-image identities, P larger than the
    number of identities."""
    dataset = check_files(read_csv(args.train_set, args.image_root), skip_missing=args.skip_missing)
    bad = find_non_images(dataset)
    what = "empty or not an image file (JPEG, PNG, BMP or GIF)"
    if args.validate_images:
        log.info("Decoding all %d training images (--validate_images)...", len(dataset))
        bad |= ~decodable(dataset.paths(), threads=args.loading_threads)
        what = "empty, not an image file, or not decodable"
    if bad.any():
        message = (f"{args.train_set}: {bad.sum()} of {len(dataset)} images are {what}: "
                   f"{listing(dataset.fids[bad])}")
        if args.on_bad_image == "error":
            raise TrinetError(message + ". Remove them from the CSV, or pass --on_bad_image skip.")
        log.warning("%s. Skipping them.", message)
        dataset = dataset.subset(~bad)
    pids, counts = np.unique(dataset.pids, return_counts=True)
    if len(pids) < args.batch_p:
        raise TrinetError(f"--batch_p {args.batch_p} is larger than the number of identities in "
                          f"{args.train_set} ({len(pids)}); use --batch_p {len(pids)} or less.")
    single = pids[counts == 1]
    if len(single):
        log.warning("%d identities have a single image (%s): they serve as negatives, and as anchors only "
                    "against augmented copies of themselves.", len(single), listing(single))
    log.info("Training set: %d images of %d identities (%s).", len(dataset), len(pids), args.train_set)
    return dataset


def make_optimizer(args: argparse.Namespace) -> keras.optimizers.Optimizer:
    """Adam (epsilon 1e-8 as TF1's AdamOptimizer) or AdamW on the original schedule."""
    schedule = TrinetSchedule(args.learning_rate, args.train_iterations, args.decay_start_iteration)
    if args.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay, epsilon=1e-8)
    return keras.optimizers.Adam(schedule, epsilon=1e-8)


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


def transfer(model: keras.Model, path: str, args: argparse.Namespace) -> None:
    """Start from another trinet run's checkpoint: its backbone, and its head if it is the same."""
    root = os.path.dirname(os.path.abspath(path))
    source = experiment.load_args(root) if os.path.isfile(os.path.join(root, experiment.ARGS_FILE)) else {}
    from trinet.backbones import canonical_name
    if source and canonical_name(source.get("model_name", "")) != canonical_name(args.model_name):
        raise TrinetError(f"--initial_checkpoint {path} was trained with --model_name "
                          f"{source.get('model_name')}, not {args.model_name}")
    backbone = model.get_layer("backbone").weights
    backbone_paths = {v.path for v in backbone}
    head = [v for v in model.weights if v.path not in backbone_paths]
    same_head = (source.get("head_name") == args.head_name
                 and source.get("embedding_dim") == args.embedding_dim)
    loaded, missing = checkpoints.restore_by_path(path, backbone + (head if same_head else []))
    missing_backbone = [m for m in missing if m in backbone_paths]
    if missing_backbone:
        raise TrinetError(f"--initial_checkpoint {path} does not fit the {args.model_name} backbone: "
                          f"{len(missing_backbone)} variables missing or of another shape "
                          f"({listing(missing_backbone)})")
    log.info("Initialised the backbone%s from %s.", " and the head" if same_head else "", path)


def make_train_step(model: keras.Model, optimizer, args: argparse.Namespace):
    """A compiled `(images (B,H,W,3), labels (B,)) -> dict of tensors` training step."""
    loss_fn = get_loss(args.loss)
    k = args.batch_k - 1

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            out = model(images, training=True)
            emb = tf.cast(out["emb"], tf.float32)
            dists = cdist(emb, emb, args.metric)
            loss, per_anchor = loss_fn(dists, labels, args.margin)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        stats = batch_stats(dists, labels, k)
        stats.update(loss=loss, per_anchor=per_anchor, active=active_fraction(per_anchor), emb=emb,
                     norms=tf.norm(tf.cast(out["emb_raw"], tf.float32), axis=1))
        return stats

    return step


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


def save(root: str, step: int, model, optimizer, state: dict[str, Any], keep: int) -> str:
    """Write a checkpoint; a failed write keeps every earlier checkpoint and says so."""
    try:
        path = checkpoints.save_checkpoint(root, step, model, optimizer, state)
    except OSError as e:
        previous = checkpoints.latest_checkpoint(root)
        raise TrinetError(f"Could not write the checkpoint of iteration {step} in {root}: {e.strerror or e}. "
                          f"The previous checkpoint ({previous or 'none'}) is intact; free space or fix the "
                          "folder, then run again with --resume.") from None
    checkpoints.prune(root, keep)
    log.info("Saved checkpoint %s.", os.path.basename(path))
    return path


def export(root: str, model: keras.Model) -> str:
    """Save the embedding model as `model.keras` (raw RGB in, embedding out), atomically."""
    path = os.path.join(root, experiment.MODEL_FILE)
    with atomic_path(path) as tmp:
        keras_tmp = tmp + ".keras"  # Keras insists on the extension
        try:
            embedding_model(model).save(keras_tmp)
            os.replace(keras_tmp, tmp)
        finally:
            if os.path.exists(keras_tmp):
                os.remove(keras_tmp)
    return path


def _scalars(writer, step: int, values: dict[str, float]) -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)


def train(args: argparse.Namespace, saved_args: dict[str, Any]) -> int:
    """Run (or resume) training as configured by `args`; returns the exit status.

    The training set is checked before anything is written; the log lines of that check are kept
    and written to train.log once the experiment root exists.
    """
    root = args.experiment_root
    if not args.resume and args.seed is None:
        args.seed = saved_args["seed"] = random.SystemRandom().randrange(2**31)
    trinet_log = logging.getLogger("trinet")
    early = logging.handlers.MemoryHandler(capacity=100000, flushLevel=logging.CRITICAL + 1)
    trinet_log.addHandler(early)
    try:
        log.info("%s training with the following parameters:", "Resuming" if args.resume else "Starting")
        for key, value in sorted(vars(args).items()):
            log.info("%20s: %s", key, value)
        dataset = load_training_set(args)
        latest = checkpoints.latest_checkpoint(root) if args.resume else None
        initial = (None, None) if latest else initial_weights(args.initial_checkpoint, args.model_name)
        if args.resume:
            experiment.check_writable(root)
        else:
            experiment.prepare_fresh(root)
            experiment.save_args(root, saved_args)
        handler = _add_file_log(root)
        early.setTarget(handler)
        early.flush()
    finally:
        trinet_log.removeHandler(early)
        early.close()
    stale = remove_stale_temporaries(root)
    if stale:
        log.info("Removed %d temporary files left by an interrupted run: %s", len(stale), listing(stale))
    try:
        return _train(args, dataset, latest, initial)
    finally:
        trinet_log.removeHandler(handler)
        handler.close()


def _train(args: argparse.Namespace, dataset: Dataset, latest: str | None,
           initial: tuple[str | None, str | None]) -> int:
    """The run itself, from `latest` checkpoint (None: from the start, with the `initial` weights)."""
    root = args.experiment_root
    sampler = PKSampler(dataset.pids, args.batch_p, args.batch_k, args.seed)
    keras_weights, source = initial

    keras.utils.set_random_seed(args.seed)
    model = build_model(args.model_name, args.head_name, args.embedding_dim, weights=keras_weights)
    optimizer = make_optimizer(args)
    step, state = 0, {"next_batch": 0, "skipped_batches": 0}
    if latest is not None:
        step, state = checkpoints.restore(latest, model, optimizer)
        log.info("Restored %s: iteration %d, next batch %d.", os.path.basename(latest), step,
                 state["next_batch"])
    else:
        if args.resume:
            log.warning("No checkpoint in %s: starting from the beginning.", root)
        if source is not None:
            transfer(model, source, args)
        optimizer.build(model.trainable_variables)
        save(root, 0, model, optimizer, state, args.keep_checkpoints)

    total = args.train_iterations
    if step >= total:
        log.info("Training already finished (%d of %d iterations).", step, total)
        if not os.path.isfile(os.path.join(root, experiment.MODEL_FILE)):
            export(root, model)
        return 0

    train_step = make_train_step(model, optimizer, args)
    net_size = (args.net_input_height, args.net_input_width)
    data = training_dataset(dataset.paths(), sampler, state["next_batch"], None, net_size=net_size,
                            pre_crop_size=(args.pre_crop_height, args.pre_crop_width),
                            flip=args.flip_augment, crop=args.crop_augment, threads=args.loading_threads)
    writer = tf.summary.create_file_writer(root)
    detailed = (DetailedLogs(root, total, sampler.batch_size, args.embedding_dim,
                             max(len(f.encode()) for f in dataset.fids)) if args.detailed_logs else None)
    k = args.batch_k - 1
    times: collections.deque = collections.deque(maxlen=ETA_WINDOW)
    last_saved = step
    log.info("Training iterations %d to %d (batches of %d x %d = %d images of %dx%d).", step + 1, total,
             args.batch_p, args.batch_k, sampler.batch_size, *net_size)

    with Uninterrupt() as interrupt, writer.as_default():
        tick = time.perf_counter()
        for index, images, labels in data:
            index = int(index)
            if index != state["next_batch"]:
                skipped = index - state["next_batch"]
                state["skipped_batches"] += skipped
                log.warning("Skipped %d batch(es) (%d so far): an image failed to decode; see the warning "
                            "above, or run with --validate_images to drop such images up front.",
                            skipped, state["skipped_batches"])
            out = train_step(images, labels)
            step += 1
            state["next_batch"] = index + 1
            per_anchor = out["per_anchor"].numpy()
            loss = float(out["loss"])
            if not np.isfinite(loss):
                raise TrinetError(f"The loss became {loss} at iteration {step}; the last good checkpoint "
                                  f"is {checkpoints.latest_checkpoint(root)}. Lower --learning_rate.")
            now = time.perf_counter()
            times.append(now - tick)
            tick = now
            if detailed is not None:
                detailed.write(step - 1, out["emb"].numpy(), per_anchor,
                               dataset.fids[sampler.batch(index)])
            if step % args.log_frequency == 0 or step == total:
                seconds = float(np.mean(times))
                lr = learning_rate(step - 1, args.learning_rate, total, args.decay_start_iteration)
                log.info("iter: %6d, loss min|avg|max: %.3f|%.3f|%6.3f, batch-p@%d: %.2f%%, active: %.0f%%, "
                         "lr: %.3g, ETA: %s (%.2fs/it)", step, per_anchor.min(), loss, per_anchor.max(), k,
                         100 * float(out["prec_at_k"]), 100 * float(out["active"]), lr,
                         format_seconds((total - step) * seconds), seconds)
                _scalars(writer, step, {"loss": loss, "batch_top1": float(out["top1"]),
                                        f"batch_prec_at_{k}": float(out["prec_at_k"]),
                                        "active_fraction": float(out["active"]), "learning_rate": lr,
                                        "secs_per_iter": seconds,
                                        "embedding_norm_mean": float(tf.reduce_mean(out["norms"]))})
            if args.histogram_frequency and step % args.histogram_frequency == 0:
                tf.summary.histogram("loss_distribution", out["per_anchor"], step=step)
                tf.summary.histogram("embedding_pos_dists", out["pos_dists"], step=step)
                tf.summary.histogram("embedding_neg_dists", out["neg_dists"], step=step)
                tf.summary.histogram("embedding_lengths", out["norms"], step=step)
            if args.checkpoint_frequency and step % args.checkpoint_frequency == 0 and step < total:
                if detailed is not None:
                    detailed.flush()
                save(root, step, model, optimizer, state, args.keep_checkpoints)
                last_saved = step
            if step >= total or interrupt.interrupted:
                break
    writer.flush()
    if detailed is not None:
        detailed.flush()
    if step != last_saved or step >= total:
        save(root, step, model, optimizer, state, args.keep_checkpoints)
    if step < total:
        log.info("Stopped at iteration %d of %d. To continue: train.py --experiment_root %s --resume",
                 step, total, root)
        return 0
    path = export(root, model)
    log.info("Training finished after %d iterations; the embedding model is in %s.", step, path)
    return 0
