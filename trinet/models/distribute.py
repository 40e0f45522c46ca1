"""The devices a run computes on: `tf.distribute` strategies (`--distribute`) and the dtype policy
(`--mixed_precision`).

trinet builds no engine of its own: several GPUs of a machine go through `tf.distribute.MirroredStrategy`,
several machines through `tf.distribute.MultiWorkerMirroredStrategy`, configured by `TF_CONFIG` as
TensorFlow documents. Every worker runs the same command; only the chief writes the experiment root.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Iterator

import keras
import tensorflow as tf

from trinet.core.errors import TrinetError

log = logging.getLogger("trinet.train")

#: Keras' dtype policy for each `--mixed_precision` value.
POLICIES = {None: "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def mirrored_devices() -> list[str]:
    """The devices `--distribute mirrored` uses: every visible GPU, or without one every logical CPU device
    (a machine has one, unless `tf.config.set_logical_device_configuration` split it, as the tests do)."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def make_strategy(kind: str) -> tf.distribute.Strategy | None:
    """The strategy of `--distribute kind` (None for 'none': the step runs as on one device)."""
    if kind == "none":
        return None
    if kind == "mirrored":
        devices = mirrored_devices()
        strategy = tf.distribute.MirroredStrategy(devices)
        log.info("Running on %d replicas: %s.", strategy.num_replicas_in_sync, ", ".join(devices))
        return strategy
    if kind == "multi_worker":
        tasks, task = cluster()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(tasks.get(role, [])) for role in ("chief", "worker"))
        log.info("Training on %d workers (this one is %s %d), %d replicas.", workers, task["type"],
                 task["index"], strategy.num_replicas_in_sync)
        return strategy
    raise ValueError(f"Unknown --distribute {kind!r}; expected none, mirrored or multi_worker")


def cluster() -> tuple[dict[str, list[str]], dict]:
    """`(the cluster: addresses by task type, this task {"type", "index"})` from `TF_CONFIG`.

    Raises:
        TrinetError: TF_CONFIG is missing or is not a cluster description.
    """
    config = os.environ.get("TF_CONFIG")
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
               '"index": 0}}')
    if not config:
        raise TrinetError("--distribute multi_worker needs the environment variable TF_CONFIG, the same "
                          f"cluster on every worker and this worker's task, e.g. {example}")
    try:
        parsed = json.loads(config)
        tasks = {str(kind): list(addresses) for kind, addresses in parsed["cluster"].items()}
        if "worker" not in tasks:
            raise KeyError("worker")
        task = {"type": str(parsed["task"]["type"]), "index": int(parsed["task"]["index"])}
    except (ValueError, KeyError, TypeError) as e:
        raise TrinetError(f"TF_CONFIG is not a cluster description ({type(e).__name__}: {e}); expected e.g. "
                          f"{example}") from None
    return tasks, task


def is_chief(kind: str) -> bool:
    """Whether this process writes the run's files: always, except on the workers of a multi-worker
    cluster other than its chief (the task `chief`, or else worker 0)."""
    if kind != "multi_worker":
        return True
    tasks, task = cluster()
    first_worker = task["type"] == "worker" and task["index"] == 0
    return task["type"] == "chief" or ("chief" not in tasks and first_worker)


def replica_share(batch_p: int, batch_k: int, replicas: int) -> int:
    """The images of one replica: `batch_p / replicas` whole identities of K images.

    Raises:
        TrinetError: P does not divide evenly.
    """
    if batch_p % replicas:
        raise TrinetError(f"--batch_p {batch_p} does not divide evenly over {replicas} replicas (each gets "
                          f"whole identities); use a multiple of {replicas}")
    return batch_p // replicas * batch_k


@contextlib.contextmanager
def dtype_policy(mixed_precision: str | None) -> Iterator[None]:
    """Layers built inside compute in `mixed_precision` (None: float32); the global policy is restored
    after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[mixed_precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def scope(strategy: tf.distribute.Strategy | None):
    """The strategy's scope (variables created inside are mirrored), or a null context."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
