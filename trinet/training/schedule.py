"""Learning-rate schedules: the original exponential decay, multi-step, cosine, and linear warm-up.

Each schedule is a pure function of the 0-based step (`value`, plain Python, for logging) and the same
formula in Keras ops (`__call__`, driven by the optimizer's iteration count). They are registered, so an
optimizer saved with one reloads without custom code.

- exponential: the original code's constant rate, then decay to 0.001x at the last iteration.
- multistep: multiply by `gamma` at each milestone (Luo et al. 2019, "Bag of Tricks and a Strong Baseline
  for Deep Person Re-identification": 3.5e-4, x0.1 at epochs 40 and 70).
- cosine: half a cosine from the initial to the final rate (Loshchilov & Hutter 2017, without restarts).
- warm-up: any of them, scaled linearly from `warmup_factor` up to 1 over the first iterations (the Bag of
  Tricks warms up from 0.1x over 10 epochs; fast-reid's linear warm-up).
"""

from __future__ import annotations

import bisect
import math

import keras

from trinet.config.registries import SCHEDULES
from keras import ops


def _check(ok: bool, name: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")


def learning_rate(step: int, initial: float, train_iterations: int, decay_start: int) -> float:
    """The learning rate at `step` (0-based): `initial` until `decay_start`, then
    `initial * 0.001 ** ((step - decay_start) / (train_iterations - decay_start))`.

    Decay is off when `decay_start` is -1 (or outside `[0, train_iterations)`).
    """
    if not 0 <= decay_start < train_iterations:
        return float(initial)
    progress = max(0, step - decay_start) / (train_iterations - decay_start)
    return float(initial * 0.001 ** progress)


def multistep_learning_rate(step: int, initial: float, milestones: tuple[int, ...], gamma: float) -> float:
    """`initial * gamma ** n` where `n` is the number of milestones `<= step` (0-based)."""
    return float(initial * gamma ** bisect.bisect_right(milestones, step))


def cosine_learning_rate(step: int, initial: float, train_iterations: int, final: float = 0.0) -> float:
    """`final + (initial - final) * (1 + cos(pi * t)) / 2` with `t = min(step, train_iterations) /
    train_iterations`: `initial` at step 0, `final` from `train_iterations` on."""
    progress = min(max(step, 0), train_iterations) / train_iterations
    return float(final + (initial - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def warmup_multiplier(step: int, warmup_iterations: int, warmup_factor: float) -> float:
    """`warmup_factor + (1 - warmup_factor) * step / warmup_iterations` before `warmup_iterations`, else 1."""
    if step >= warmup_iterations:
        return 1.0
    return float(warmup_factor + (1.0 - warmup_factor) * max(step, 0) / warmup_iterations)


def _float_step(step):
    return ops.cast(step, "float32")


@keras.saving.register_keras_serializable(package="trinet")
class TrinetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate` as a Keras schedule, driven by the optimizer's iteration count.

    Registered as "exponential" in `SCHEDULES` (`ExponentialDecay` is the same class); the name stays, as
    saved optimizers refer to it.
    """

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

    def value(self, step: int) -> float:
        """The rate at `step` in plain Python (no TensorFlow call)."""
        return learning_rate(step, self.initial_learning_rate, self.train_iterations,
                             self.decay_start_iteration)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "train_iterations": self.train_iterations,
                "decay_start_iteration": self.decay_start_iteration}


#: The original schedule under a descriptive name (the same registered class).
ExponentialDecay = TrinetSchedule


@keras.saving.register_keras_serializable(package="trinet")
class MultiStep(keras.optimizers.schedules.LearningRateSchedule):
    """`multistep_learning_rate`: the rate times `gamma` at each milestone step.

    Args:
        initial_learning_rate: the rate before the first milestone, > 0.
        milestones: strictly increasing steps >= 1; the rate drops at the start of each.
        gamma: the factor applied at each milestone, > 0.
    """

    def __init__(self, initial_learning_rate: float, milestones: tuple[int, ...], gamma: float = 0.1):
        _check(initial_learning_rate > 0, "initial_learning_rate", initial_learning_rate, "> 0")
        milestones = tuple(int(m) for m in milestones)
        _check(all(m >= 1 for m in milestones) and all(a < b for a, b in zip(milestones, milestones[1:])),
               "milestones", milestones, "strictly increasing steps >= 1")
        _check(gamma > 0, "gamma", gamma, "> 0")
        self.initial_learning_rate = float(initial_learning_rate)
        self.milestones = milestones
        self.gamma = float(gamma)

    def __call__(self, step):
        initial = ops.convert_to_tensor(self.initial_learning_rate, "float32")
        if not self.milestones:
            return initial
        passed = ops.sum(ops.cast(_float_step(step) >= ops.convert_to_tensor(self.milestones, "float32"),
                                  "float32"))
        return initial * ops.power(ops.convert_to_tensor(self.gamma, "float32"), passed)

    def value(self, step: int) -> float:
        """The rate at `step` in plain Python (no TensorFlow call)."""
        return multistep_learning_rate(step, self.initial_learning_rate, self.milestones, self.gamma)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "milestones": list(self.milestones),
                "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="trinet")
class Cosine(keras.optimizers.schedules.LearningRateSchedule):
    """`cosine_learning_rate`: half a cosine from `initial_learning_rate` at step 0 to
    `final_learning_rate` at `train_iterations`, constant after.

    Args:
        initial_learning_rate: the rate at step 0, > 0.
        train_iterations: the step at which the final rate is reached, >= 1.
        final_learning_rate: >= 0 and <= initial_learning_rate.
    """

    def __init__(self, initial_learning_rate: float, train_iterations: int, final_learning_rate: float = 0.0):
        _check(initial_learning_rate > 0, "initial_learning_rate", initial_learning_rate, "> 0")
        _check(train_iterations >= 1, "train_iterations", train_iterations, ">= 1")
        _check(0 <= final_learning_rate <= initial_learning_rate, "final_learning_rate", final_learning_rate,
               f"in [0, initial_learning_rate={initial_learning_rate}]")
        self.initial_learning_rate = float(initial_learning_rate)
        self.train_iterations = int(train_iterations)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        total = float(self.train_iterations)
        progress = ops.clip(_float_step(step), 0.0, total) / total
        initial, final = self.initial_learning_rate, self.final_learning_rate
        return final + (initial - final) * 0.5 * (1.0 + ops.cos(math.pi * progress))

    def value(self, step: int) -> float:
        """The rate at `step` in plain Python (no TensorFlow call)."""
        return cosine_learning_rate(step, self.initial_learning_rate, self.train_iterations,
                                    self.final_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "train_iterations": self.train_iterations, "final_learning_rate": self.final_learning_rate}


@keras.saving.register_keras_serializable(package="trinet")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Another schedule times `warmup_multiplier`: linear from `warmup_factor` at step 0 to 1 at
    `warmup_iterations`, then the inner schedule unchanged.

    Args:
        schedule: the inner schedule (any registered `LearningRateSchedule` with a `value` method).
        warmup_iterations: length of the warm-up, >= 0 (0: no warm-up).
        warmup_factor: the multiplier at step 0, in (0, 1].
    """

    def __init__(self, schedule, warmup_iterations: int, warmup_factor: float):
        _check(warmup_iterations >= 0, "warmup_iterations", warmup_iterations, ">= 0")
        _check(0 < warmup_factor <= 1, "warmup_factor", warmup_factor, "in (0, 1]")
        self.schedule = schedule
        self.warmup_iterations = int(warmup_iterations)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, step):
        rate = self.schedule(step)
        if self.warmup_iterations == 0:
            return rate
        step = _float_step(step)
        factor = self.warmup_factor
        ramp = factor + (1.0 - factor) * ops.maximum(step, 0.0) / self.warmup_iterations
        return rate * ops.where(step < self.warmup_iterations, ramp, 1.0)

    def value(self, step: int) -> float:
        """The rate at `step` in plain Python (no TensorFlow call)."""
        return self.schedule.value(step) * warmup_multiplier(step, self.warmup_iterations, self.warmup_factor)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "warmup_iterations": self.warmup_iterations, "warmup_factor": self.warmup_factor}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="trinet")
class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """Another schedule times `factor`, `offset` steps ahead: `factor * schedule(step + offset)`.

    For a second optimizer that trains some variables at a multiple of the rate (`factor`), and that
    starts stepping `offset` iterations after the run began, so that both follow the run's iteration.
    """

    def __init__(self, schedule, factor: float = 1.0, offset: int = 0):
        _check(factor > 0, "factor", factor, "> 0")
        _check(offset >= 0, "offset", offset, ">= 0")
        self.schedule, self.factor, self.offset = schedule, float(factor), int(offset)

    def __call__(self, step):
        return self.factor * self.schedule(_float_step(step) + self.offset)

    def value(self, step: int) -> float:
        """The rate at `step` in plain Python (no TensorFlow call)."""
        return self.factor * self.schedule.value(step + self.offset)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "factor": self.factor,
                "offset": self.offset}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def make_schedule(name: str, *, learning_rate: float, train_iterations: int, decay_start_iteration: int = -1,
                  milestones: tuple[int, ...] = (), gamma: float = 0.1, warmup_iterations: int = 0,
                  warmup_factor: float = 0.1) -> keras.optimizers.schedules.LearningRateSchedule:
    """The schedule `name` of `trinet.config.registries.SCHEDULES`, wrapped in `Warmup` when
    `warmup_iterations > 0`.

    Each schedule reads only its own arguments: exponential `decay_start_iteration` (-1: no decay),
    multistep `milestones` and `gamma`, cosine none (it ends at 0 at `train_iterations`).

    Raises:
        ValueError: an unknown name, or an argument outside its allowed values (named in the message).
    """
    SCHEDULES[name]  # raises ValueError naming the registered schedules
    _check(learning_rate > 0, "learning_rate", learning_rate, "> 0")
    _check(train_iterations >= 1, "train_iterations", train_iterations, ">= 1")
    _check(warmup_iterations >= 0, "warmup_iterations", warmup_iterations, ">= 0 (0: no warm-up)")
    _check(0 < warmup_factor <= 1, "warmup_factor", warmup_factor, "in (0, 1]")
    if name == "exponential":
        schedule = TrinetSchedule(learning_rate, train_iterations, decay_start_iteration)
    elif name == "multistep":
        milestones = tuple(milestones)
        _check(all(1 <= m < train_iterations for m in milestones)
               and all(a < b for a, b in zip(milestones, milestones[1:])), "milestones", milestones,
               f"strictly increasing steps in [1, train_iterations={train_iterations})")
        schedule = MultiStep(learning_rate, milestones, gamma)
    else:
        schedule = Cosine(learning_rate, train_iterations)
    return Warmup(schedule, warmup_iterations, warmup_factor) if warmup_iterations > 0 else schedule
