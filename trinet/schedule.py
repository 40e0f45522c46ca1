"""The learning-rate schedule of the original code: constant, then exponential decay to 0.001x."""

from __future__ import annotations

import keras
from keras import ops


def learning_rate(step: int, initial: float, train_iterations: int, decay_start: int) -> float:
    """The learning rate at `step` (0-based): `initial` until `decay_start`, then
    `initial * 0.001 ** ((step - decay_start) / (train_iterations - decay_start))`.

    Decay is off when `decay_start` is -1 (or outside `[0, train_iterations)`).
    """
    if not 0 <= decay_start < train_iterations:
        return float(initial)
    progress = max(0, step - decay_start) / (train_iterations - decay_start)
    return float(initial * 0.001 ** progress)


@keras.saving.register_keras_serializable(package="trinet")
class TrinetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate` as a Keras schedule, driven by the optimizer's iteration count."""

    def __init__(self, initial_learning_rate: float, train_iterations: int, decay_start_iteration: int):
        self.initial_learning_rate = float(initial_learning_rate)
        self.train_iterations = int(train_iterations)
        self.decay_start_iteration = int(decay_start_iteration)

    def __call__(self, step):
        initial = ops.convert_to_tensor(self.initial_learning_rate, "float32")
        start, total = self.decay_start_iteration, self.train_iterations
        if not 0 <= start < total:
            return initial
        progress = ops.maximum(ops.cast(step, "float32") - start, 0.0) / float(total - start)
        return initial * ops.power(ops.convert_to_tensor(0.001, "float32"), progress)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "train_iterations": self.train_iterations,
                "decay_start_iteration": self.decay_start_iteration}
