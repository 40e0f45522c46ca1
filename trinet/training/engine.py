"""The training run: checks, building and the loop; its bookkeeping is `trinet.training.bookkeeping`.

`train(settings)` is called by `train.py` once the settings are resolved (on --resume, from
args.json). Everything that can be checked is checked before anything is written: the training set,
the validation sets, the initial weights and the model. The loop follows the original triplet-reid
train.py (a checkpoint every --checkpoint_frequency iterations, a clean stop on SIGINT/SIGTERM) with
a weighted list of objectives (`trinet.training.objectives`). Batches are a pure function of (seed, batch
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
from typing import Any, Iterable

import numpy as np
import tensorflow as tf

from trinet.config.settings import TrainSettings
from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import remove_stale_temporaries
from trinet.data.datasets import Dataset, check_files, read_csv
from trinet.models.distribute import is_chief, make_strategy
from trinet.pipeline.dataset import MAX_AHEAD, Delivered, decodable, screen_images, training_dataset
from trinet.pipeline.sampling import PKSampler, make_sampler
from trinet.rundir import checkpoints, experiment
from trinet.rundir.runlock import ExperimentLock
from trinet.training.bookkeeping import Bookkeeping, DetailedLogs, add_file_log, export
from trinet.training.signals import Uninterrupt
from trinet.training.trainer import Trainer, initial_weights

log = logging.getLogger("trinet.train")

#: Seconds per iteration (and the ETA) are averaged over this many recent iterations.
ETA_WINDOW = 20
#: Training stops with an error when this many batches in a row could not be formed.
MAX_CONSECUTIVE_SKIPS = 10


def load_training_set(s: TrainSettings) -> Dataset:
    """Read and check the training CSV before any long work: missing files, non-image files,
    (with --validate_images) undecodable images and single-image identities."""
    assert s.train_set is not None  # TrainSettings.validate requires it
    dataset = check_files(read_csv(s.train_set, s.image_root), skip_missing=s.skip_missing)
    dataset = screen_images(dataset, s.train_set, decode_all=s.validate_images, reason="--validate_images",
                            on_bad_image=s.on_bad_image, threads=s.loading_threads)
    pids, counts = np.unique(dataset.pids, return_counts=True)
    single = pids[counts == 1]
    if len(single) and s.triplet_loss_weight:
        log.warning("%d identities have a single image (%s): they serve as negatives, and as anchors only "
                    "against augmented copies of themselves.", len(single), listing(single))
    log.info("Training set: %d images of %d identities (%s).", len(dataset), len(pids), s.train_set)
    return dataset


def training_cameras(s: TrainSettings, dataset: Dataset) -> np.ndarray:
    """`(N,)` int64: the camera of each training image for `--camera_embedding`: the `camera` column of
    --train_set, else the cameras of its file names in a release's naming (`naming.cameras_from_names`).

    Raises:
        TrinetError: neither gives the cameras.
    """
    from trinet.data.naming import cameras_of

    found = cameras_of(dataset.cameras, dataset.fids)
    if found is None:
        raise TrinetError(f"--camera_embedding needs the camera of every training image: {s.train_set} has "
                          "no "
                          "`camera` column and its file names follow no release's naming (Market-1501, "
                          "DukeMTMC-reID, MSMT17, CUHK03, VIPeR, CUHK01). Add the column (data/convert.py "
                          "writes it), or train without --camera_embedding.")
    log.info("--camera_embedding: %d cameras, from %s.", max(found[1]) + 1,
             found[0] if found[0].startswith("the ") else f"the {found[0]} file names")
    return np.asarray(found[1], np.int64)


class _Run:
    """The objects of one training run, built from the settings before anything is written."""

    def __init__(self, s: TrainSettings, dataset: Dataset, latest: str | None, chief: bool = True,
                 strategy: tf.distribute.Strategy | None = None):
        self.s, self.chief = s, chief
        self.root = s.experiment_root
        assert s.seed is not None
        held_out: tuple[Dataset, Dataset] | None = None  # the validation query and gallery
        if s.holdout:
            from trinet.training.validation import hold_out_validation
            assert s.val_excluder is not None
            dataset, query, gallery = hold_out_validation(
                dataset, s.val_excluder, seed=s.seed, identities=s.val_identities, fraction=s.val_fraction)
            held_out = query, gallery
        self.dataset = dataset
        self.cameras = training_cameras(s, dataset) if s.camera_embedding else None
        self.labeler: Any = None  # --unlabeled_set: the batches are drawn from each clustering's clusters
        self.sampler = None if s.pseudo_labels else self.make_sampler(s.seed)
        keras_weights, source = ((None, None) if latest else
                                 initial_weights(s.initial_checkpoint, s.model_name))
        # with pseudo labels: at most one cluster per unlabeled image (the memory's fixed capacity)
        identities = len(dataset) if self.sampler is None else len(self.sampler.unique_pids)
        # the teacher's checkpoint a resumed run was trained against (older checkpoints: none recorded)
        teacher_pin = checkpoints.read_info(latest)[1].get("teacher") if latest and s.teacher else None
        if latest and s.teacher and teacher_pin is None:
            log.warning("%s does not record the teacher's checkpoint (written by an older trinet): resuming "
                        "with the latest of %s, which may not be the one the run started with.", latest,
                        s.teacher)
        cameras = int(self.cameras.max()) + 1 if self.cameras is not None else 0
        self.trainer: Any = Trainer(s, identities, keras_weights, source, strategy, teacher_pin, cameras)
        if s.mutual_models > 1:
            from trinet.training.mutual import MutualTrainer
            members = [self.trainer] + [Trainer(s.replace(seed=s.seed + 1000 * i), identities, keras_weights,
                                                source) for i in range(1, s.mutual_models)]
            self.trainer = MutualTrainer(members, s.mutual_logits_weight, s.mutual_distance_weight)
        if s.pseudo_labels:
            from trinet.training.pseudo_labels import PseudoLabeler
            self.labeler = PseudoLabeler(s, dataset, self.trainer.pseudo)
        if s.distill_logits_weight:
            assert self.trainer.teacher is not None and self.sampler is not None
            self.trainer.teacher.check_identities(self.sampler.unique_pids)
        self.validator = None
        if s.validation:
            from trinet.training.validation import Validator
            assert s.val_excluder is not None
            options: dict[str, Any] = dict(net_size=s.net_size, threads=min(4, s.loading_threads))
            if held_out is not None:
                self.validator = Validator(*held_out, s.val_excluder, s.embedding_metric, **options)
            else:
                assert s.val_query is not None and s.val_gallery is not None
                self.validator = Validator.from_csv(s.val_query, s.val_gallery,
                                                    s.val_image_root or s.image_root, s.val_excluder,
                                                    s.embedding_metric, **options)
        self.books = Bookkeeping(s, self.trainer, chief)

    def make_sampler(self, seed: int, excluded: Iterable[int] = ()) -> PKSampler:
        """The run's `--sampler` over its training set, without the rows `excluded`; with pseudo labels, over
        the clusters of the unlabeled set, without the outliers (`pseudo_labels.pseudo_pids`)."""
        s = self.s
        if self.labeler is None:
            return make_sampler(s.sampler, self.dataset.pids, s.batch_p, s.batch_k, seed, excluded,
                                self.dataset.columns(), clip_length=s.clip_length)
        from trinet.training.pseudo_labels import pseudo_pids

        pids, outliers = pseudo_pids(self.trainer.pseudo.labels.numpy())
        try:
            return make_sampler(s.sampler, pids, s.batch_p, s.batch_k, seed,
                                set(excluded) | set(outliers.tolist()), self.dataset.columns())
        except TrinetError as e:
            clusters = int(self.trainer.pseudo.num_clusters.numpy())
            raise TrinetError(f"The clustering of --unlabeled_set cannot fill a batch of --sampler "
                              f"{s.sampler}: its {clusters} clusters are the identities ({len(outliers)} "
                              f"outliers left out). {e} Or change --cluster_eps (smaller: more, smaller "
                              "clusters; larger: fewer outliers).") from None


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
            if s.pseudo_labels:
                from trinet.training.pseudo_labels import load_unlabeled_set
                dataset = load_unlabeled_set(s)
            else:
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
                handler = add_file_log(root)
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
                             "num_classes": trainer.num_classes, "skipped_steps": 0,
                             "num_cameras": trainer.num_cameras}
    if trainer.teacher is not None:  # exactly this checkpoint of the teacher is reloaded on --resume
        state["teacher"] = trainer.teacher.pin()
    if run.labeler is not None:  # the iteration of the next clustering, and how many there were
        state.update(next_clustering=0, clusterings=0)
    if latest is not None:
        step, saved_state = checkpoints.restore(latest, trainer.groups())
        state.update(saved_state)
        log.info("Restored %s: iteration %d, next batch %d.", os.path.basename(latest), step,
                 state["next_batch"])
    else:
        if s.resume:
            log.warning("No checkpoint in %s: starting from the beginning.", root)
        run.books.save(0, state)

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
    delivered = Delivered(state["next_batch"] - 1)
    pseudo = run.labeler is not None
    seed: int = s.seed
    sampler: Any = None
    data: Any = None

    def open_data(start: int):
        if pseudo:  # each clustering's batches have their own seed, from the first batch on
            from trinet.training.pseudo_labels import sampler_seed
            sampler = run.make_sampler(sampler_seed(seed, state["clusterings"]), excluded)
        elif excluded or run.sampler is None:
            sampler = run.make_sampler(seed, excluded)
        else:
            sampler = run.sampler
        data = training_dataset(run.dataset.paths(), sampler, start, None, net_size=s.net_size,
                                pre_crop_size=s.pre_crop_size, flip=s.flip_augment, crop=s.crop_augment,
                                threads=s.loading_threads, pad=s.pad_crop, erasing_prob=s.random_erasing_prob,
                                delivered=delivered, color_jitter=s.color_jitter,
                                auto_augment_prob=s.auto_augment_prob, cameras=run.cameras)
        return sampler, iter(data)

    def recluster() -> None:
        """Pseudo labels from a clustering at `step`; the batches start over on its clusters."""
        nonlocal sampler, data
        _, problem = run.labeler.recluster(trainer.inference, step, writer)
        if problem is not None:
            saved = run.books.save(step, state)
            where = os.path.basename(saved) if saved else "the checkpoint"
            raise TrinetError(f"{problem[:1].upper()}{problem[1:]} (clustering at iteration {step}). {where} "
                              "resumes from here.")
        state["clusterings"] += 1
        try:
            sampler, data = open_data(0)
        except TrinetError:  # too few clusters for a batch: the checkpoint clusters again on --resume
            state["clusterings"] -= 1
            run.books.save(step, state)
            raise
        state["next_clustering"] = step + s.recluster_frequency
        state["next_batch"] = 0
        delivered.index = -1

    if not pseudo or step < state["next_clustering"]:
        sampler, data = open_data(state["next_batch"])
    times: collections.deque = collections.deque(maxlen=ETA_WINDOW)
    last_saved = step
    samples = (f"{s.batch_size} clips of {s.clip_frames} frames ({s.batch_size * s.clip_frames} images, "
               f"pooled by their {s.temporal_pooling})" if s.clip_frames > 1 else f"{s.batch_size} images")
    log.info("Training iterations %d to %d (batches of %d x %d = %s of %dx%d; objective: %s).",
             step + 1, total, s.batch_p, s.batch_k, samples, *s.net_size,
             " + ".join(f"{o.weight:g} x {o.name}" for o in trainer.objectives))

    with Uninterrupt() as interrupt, writer.as_default():
        tick = time.perf_counter()
        agreed_stop = False  # with several workers: a stop that every worker saw after the same step
        while step < total and not (agreed_stop if trainer.strategy is not None else interrupt.interrupted):
            if pseudo and step >= state["next_clustering"]:
                recluster()
                tick = time.perf_counter()
            item = next(data, None)
            if item is None:  # the generator gave up: a long run of batches that all failed
                first = delivered.index + 1
                bad = _find_undecodable(run, sampler, first, first + MAX_AHEAD)
                run.books.save(step, state)
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
                    run.books.save(step, state)
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
                               run.dataset.fids[sampler.batch(index)][::sampler.clip_length])
            if step % s.log_frequency == 0 or step == total:
                run.books.log_step(writer, out, step, per_sample, loss, float(np.mean(times)), k,
                                   state["skipped_steps"])
            if s.histogram_frequency and step % s.histogram_frequency == 0:
                tf.summary.histogram("loss_distribution", out["per_sample"], step=step)
                tf.summary.histogram("embedding_pos_dists", out["pos_dists"], step=step)
                tf.summary.histogram("embedding_neg_dists", out["neg_dists"], step=step)
                tf.summary.histogram("embedding_lengths", out["norms"], step=step)
            if run.validator is not None and run.chief and (step % s.val_frequency == 0 or step == total):
                run.books.validate(run.validator, writer, step, state)
            if s.checkpoint_frequency and step % s.checkpoint_frequency == 0 and step < total:
                if detailed is not None:
                    detailed.flush()
                run.books.save(step, state)
                last_saved = step
    writer.flush()
    if detailed is not None:
        detailed.flush()
    if step != last_saved or step >= total:
        run.books.save(step, state)
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
