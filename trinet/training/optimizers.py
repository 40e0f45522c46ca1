"""Optimizers and their learning-rate schedule, built from the training settings.

The builders are the targets of `trinet.config.registries.OPTIMIZERS`. Weight decay is Keras' decoupled
weight decay (`w -= lr * weight_decay * w` beside the gradient step, as AdamW), not an L2 term in
the loss. Each optimizer is named after its registry entry, which prefixes the paths of its variables
in checkpoints (Keras would number a second optimizer of a process, `adam_1`).
"""

from __future__ import annotations

import keras

from trinet.config.registries import OPTIMIZERS
from trinet.training.schedule import Scaled, make_schedule

#: Adam's epsilon, as TF1's AdamOptimizer (Keras' default is 1e-7).
ADAM_EPSILON = 1e-8


def adam(schedule, settings, name: str = "adam") -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(schedule, epsilon=ADAM_EPSILON, name=name)


def adamw(schedule, settings, name: str = "adamw") -> keras.optimizers.Optimizer:
    return keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay, epsilon=ADAM_EPSILON,
                                  name=name)


def sgd(schedule, settings, name: str = "sgd") -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(schedule, momentum=settings.momentum, nesterov=settings.nesterov,
                                weight_decay=settings.weight_decay or None, name=name)


def schedule_from_settings(settings) -> keras.optimizers.schedules.LearningRateSchedule:
    """The run's learning-rate schedule, with its warm-up."""
    return make_schedule(settings.lr_schedule, learning_rate=settings.learning_rate,
                         train_iterations=settings.train_iterations,
                         decay_start_iteration=settings.decay_start_iteration,
                         milestones=tuple(settings.lr_milestones), gamma=settings.lr_gamma,
                         warmup_iterations=settings.warmup_iterations, warmup_factor=settings.warmup_factor)


def make_optimizer(settings, factor: float = 1.0, offset: int = 0,
                   suffix: str = "") -> keras.optimizers.Optimizer:
    """The optimizer `settings.optimizer` on the run's schedule (times `factor`, `offset` iterations
    ahead: see `trinet.training.schedule.Scaled`); `suffix` is added to its name (its variables' paths)."""
    schedule = schedule_from_settings(settings)
    if factor != 1 or offset:
        schedule = Scaled(schedule, factor, offset)
    return OPTIMIZERS.resolve(settings.optimizer)(schedule, settings, name=settings.optimizer + suffix)
