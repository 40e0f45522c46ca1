"""The devices a run computes on: `tf.distribute` strategies (`--distribute`) and the dtype policy
(`--mixed_precision`).

trinet builds no engine of its own: several GPUs of a machine go through `tf.distribute.MirroredStrategy`.
(Several machines, through `tf.distribute.MultiWorkerMirroredStrategy`, are not available yet.)
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import keras
import tensorflow as tf

from trinet.errors import TrinetError

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
        log.info("Training on %d replicas: %s.", strategy.num_replicas_in_sync, ", ".join(devices))
        return strategy
    raise ValueError(f"Unknown --distribute {kind!r}; expected none or mirrored")


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
