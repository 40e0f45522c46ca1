"""A training run's bookkeeping in its experiment root: checkpoints (and `best.h5` from validation),
`train.log`, TensorBoard scalars, the detailed logs, and the exported `model.keras`. Only the chief of a
cluster writes."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from trinet.config.settings import TrainSettings
from trinet.console.commands import LOG_FORMAT
from trinet.core.errors import TrinetError
from trinet.core.fileio import atomic_path
from trinet.core.progress import format_seconds
from trinet.models.builder import embedding_model
from trinet.rundir import checkpoints, experiment

log = logging.getLogger("trinet.train")


def add_file_log(root: str) -> logging.Handler:
    """Log every record of trinet's loggers to the `train.log` of `root` too; returns the handler."""
    handler = logging.FileHandler(os.path.join(root, experiment.LOG_FILE), mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.DEBUG)
    logging.getLogger("trinet").addHandler(handler)
    return handler


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


def scalars(writer, step: int, values: dict[str, float]) -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)


class Bookkeeping:
    """What a run writes in its experiment root, for `trainer` (a `Trainer` or `MutualTrainer`) configured by
    `s`. `chief`: False on the other workers of a cluster, which write nothing."""

    def __init__(self, s: TrainSettings, trainer: Any, chief: bool = True):
        self.s, self.trainer, self.chief = s, trainer, chief
        self.root = s.experiment_root

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

    def log_step(self, writer, out: dict, step: int, per_sample: np.ndarray, loss: float, seconds: float,
                 k: int, skipped_steps: int = 0) -> None:
        """Log the step's losses and batch statistics to the console, train.log and TensorBoard."""
        s = self.s
        lr = self.trainer.schedule.value(step - 1)
        terms = {name[5:]: float(value) for name, value in out.items() if name.startswith("loss_")}
        detail = f" ({', '.join(f'{n} {v:.3f}' for n, v in terms.items())})" if len(terms) > 1 else ""
        log.info("iter: %6d, loss min|avg|max: %.3f|%.3f|%6.3f%s, batch-p@%d: %.2f%%, active: %.0f%%, "
                 "lr: %.3g, ETA: %s (%.2fs/it)", step, per_sample.min(), loss, per_sample.max(), detail, k,
                 100 * float(out["prec_at_k"]), 100 * float(out["active"]), lr,
                 format_seconds((s.train_iterations - step) * seconds), seconds)
        values = {"loss": loss, "batch_top1": float(out["top1"]),
                  f"batch_prec_at_{k}": float(out["prec_at_k"]), "active_fraction": float(out["active"]),
                  "learning_rate": lr, "secs_per_iter": seconds,
                  "embedding_norm_mean": float(tf.reduce_mean(out["norms"]))}
        values.update({f"loss_{name}": value for name, value in terms.items()})
        if self.trainer.loss_scale is not None:
            values["loss_scale"] = float(self.trainer.loss_scale.dynamic_scale)
            log.info("iter: %6d, float16 loss scale: %g, skipped updates so far: %d", step,
                     values["loss_scale"], skipped_steps)
        scalars(writer, step, values)

    def validate(self, validator, writer, step: int, state: dict[str, Any]) -> None:
        """Evaluate the inference model with `validator` (`trinet.training.validation.Validator`); keep
        `best.h5` when the score is the best so far (`state["best"]`)."""
        tick = time.perf_counter()
        scores = validator.evaluate(self.trainer.inference)
        best = state.get("best")
        improved = best is None or scores.score > best["score"]
        log.info("validation at iter %d: mAP %.2f%%, mINP %.2f%%, rank-1 %.2f%% (%.1fs)%s", step,
                 100 * scores.mean_ap, 100 * scores.mean_inp, 100 * scores.rank1, time.perf_counter() - tick,
                 ", the best so far" if improved else f"; the best is iteration {best['step']}" if best else
                 "")
        scalars(writer, step, {f"val_{name}": value for name, value in scores.as_dict().items()})
        if improved:
            state["best"] = {"step": step, **scores.as_dict()}
            self.save(step, state, path=os.path.join(self.root, checkpoints.BEST + ".h5"))
