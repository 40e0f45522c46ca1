"""The learning-rate schedules: the original exponential decay, multi-step, cosine, warm-up, the registry."""

import keras
import numpy as np
import pytest

from trinet.training.schedule import (SCHEDULES, Cosine, ExponentialDecay, MultiStep, Scaled, TrinetSchedule,
                                      Warmup, learning_rate, make_schedule)


def test_closed_form_values():
    lr = 3e-4
    assert learning_rate(0, lr, 25000, 15000) == lr
    assert learning_rate(15000, lr, 25000, 15000) == lr
    assert learning_rate(20000, lr, 25000, 15000) == pytest.approx(lr * 0.001 ** 0.5)  # halfway: sqrt
    assert learning_rate(25000, lr, 25000, 15000) == pytest.approx(3e-7)
    assert learning_rate(17500, lr, 25000, 15000) == pytest.approx(lr * 10 ** (-0.75))


def test_decay_disabled():
    assert learning_rate(24999, 1e-3, 25000, -1) == 1e-3
    assert learning_rate(24999, 1e-3, 25000, 25000) == 1e-3  # decay start at/after the end


def test_keras_schedule_matches_the_formula_and_serialises():
    schedule = TrinetSchedule(3e-4, 1000, 600)
    for step in (0, 599, 600, 601, 800, 999, 1000):
        assert float(schedule(step)) == pytest.approx(learning_rate(step, 3e-4, 1000, 600), rel=1e-5)
    clone = TrinetSchedule.from_config(schedule.get_config())
    np.testing.assert_allclose([float(clone(s)) for s in (0, 700)], [float(schedule(s)) for s in (0, 700)])
    assert float(TrinetSchedule(1e-3, 1000, -1)(900)) == pytest.approx(1e-3)


# The added schedules, warm-up and the registry. Values below are worked out by hand.

def _both(schedule, step):
    """`(value(step), float(schedule(step)))`: the Python and the Keras version."""
    return schedule.value(step), float(schedule(step))


@pytest.mark.parametrize("step,expected", [(0, 1.0), (3, 1.0), (4, 0.1), (7, 0.1), (8, 0.01), (100, 0.01)])
def test_multistep(step, expected):
    schedule = MultiStep(1.0, (4, 8), gamma=0.1)
    assert _both(schedule, step) == pytest.approx((expected, expected), rel=1e-6)


@pytest.mark.parametrize("step,expected", [(0, 1.0), (25, (1 + 0.5 ** 0.5) / 2), (50, 0.5), (100, 0.0),
                                           (150, 0.0)])
def test_cosine(step, expected):
    assert _both(Cosine(1.0, 100), step) == pytest.approx((expected, expected), rel=1e-6, abs=1e-7)


def test_cosine_to_a_final_rate():
    assert _both(Cosine(1.0, 100, 0.2), 50) == pytest.approx((0.6, 0.6))  # 0.2 + 0.8 / 2
    assert _both(Cosine(1.0, 100, 0.2), 100) == pytest.approx((0.2, 0.2))


@pytest.mark.parametrize("step,expected", [(0, 1e-4), (5, 5.5e-4), (9, 9.1e-4), (10, 1e-3), (50, 1e-3)])
def test_warmup_on_a_constant_rate(step, expected):
    # 1e-3 * (0.1 + 0.9 * step / 10) before step 10
    schedule = Warmup(ExponentialDecay(1e-3, 100, -1), warmup_iterations=10, warmup_factor=0.1)
    assert _both(schedule, step) == pytest.approx((expected, expected), rel=1e-6)


@pytest.mark.parametrize("step,expected", [(0, 0.1), (4, 0.1 * 0.46), (8, 0.01 * 0.82), (10, 0.01),
                                           (19, 0.01)])
def test_warmup_on_multistep(step, expected):
    schedule = make_schedule("multistep", learning_rate=1.0, train_iterations=20, milestones=(4, 8),
                             warmup_iterations=10, warmup_factor=0.1)
    assert isinstance(schedule, Warmup) and isinstance(schedule.schedule, MultiStep)
    assert _both(schedule, step) == pytest.approx((expected, expected), rel=1e-6)


def test_warmup_on_cosine_and_exponential():
    cosine = make_schedule("cosine", learning_rate=2.0, train_iterations=100, warmup_iterations=10,
                           warmup_factor=0.5)
    assert _both(cosine, 0) == pytest.approx((1.0, 1.0))  # 2 * 0.5
    assert _both(cosine, 50) == pytest.approx((1.0, 1.0))  # 2 * (1 + cos(pi/2)) / 2, warm-up over
    exponential = make_schedule("exponential", learning_rate=1.0, train_iterations=20,
                                decay_start_iteration=0, warmup_iterations=10, warmup_factor=0.1)
    assert _both(exponential, 5) == pytest.approx((0.55 * 0.001 ** 0.25,) * 2, rel=1e-6)
    assert _both(exponential, 10) == pytest.approx((0.001 ** 0.5,) * 2, rel=1e-6)


def test_make_schedule_without_warmup_builds_the_plain_schedule():
    assert type(make_schedule("exponential", learning_rate=1e-3, train_iterations=10)) is TrinetSchedule
    assert ExponentialDecay is TrinetSchedule is SCHEDULES.resolve("exponential")
    assert type(make_schedule("cosine", learning_rate=1e-3, train_iterations=10)) is Cosine
    assert sorted(SCHEDULES) == ["cosine", "exponential", "multistep"]


ALL = [make_schedule("exponential", learning_rate=3e-4, train_iterations=30, decay_start_iteration=12),
       make_schedule("multistep", learning_rate=3e-4, train_iterations=30, milestones=(5, 17), gamma=0.5),
       make_schedule("cosine", learning_rate=3e-4, train_iterations=30),
       make_schedule("multistep", learning_rate=3e-4, train_iterations=30, milestones=(5, 17),
                     warmup_iterations=8, warmup_factor=0.01),
       make_schedule("cosine", learning_rate=3e-4, train_iterations=30, warmup_iterations=8)]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_call_equals_value_and_config_round_trip(schedule):
    steps = range(0, 33)
    python = [schedule.value(s) for s in steps]
    np.testing.assert_allclose([float(schedule(s)) for s in steps], python, rtol=1e-5)
    some = (0, 9, 31)
    np.testing.assert_allclose([float(schedule(np.int64(s))) for s in some], [python[s] for s in some],
                               rtol=1e-5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(clone) is type(schedule) and clone.get_config() == schedule.get_config()
    assert [clone.value(s) for s in steps] == python


def test_optimizer_uses_and_saves_the_schedule():
    # SGD steps x by -lr * gradient; the gradient of sum(x) is 1, so x goes 0 -> -1 -> -1.1 -> -1.11.
    x = keras.Variable([0.0])
    optimizer = keras.optimizers.SGD(MultiStep(1.0, (1, 2), 0.1))
    for _ in range(3):
        optimizer.apply_gradients([(keras.ops.ones_like(x), x)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(x), [-1.11], rtol=1e-6)

    schedule = make_schedule("cosine", learning_rate=1e-3, train_iterations=10, warmup_iterations=4)
    adam = keras.optimizers.Adam(schedule)
    adam.apply_gradients([(keras.ops.ones_like(x), x)])
    assert float(adam.learning_rate) == pytest.approx(schedule.value(1), rel=1e-6)  # after one step
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(adam))
    assert isinstance(clone.get_config()["learning_rate"], dict)
    assert float(clone.learning_rate) == pytest.approx(schedule.value(0), rel=1e-6)  # new iteration count


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="linear"),
     "Unknown schedule 'linear'; expected one of ['cosine', 'exponential', 'multistep']"),
    (dict(milestones=(8, 4)), "`milestones` must be strictly increasing steps in [1, train_iterations=20). "
                              "Received: milestones=(8, 4)"),
    (dict(milestones=(4, 4)), "Received: milestones=(4, 4)"),
    (dict(milestones=(0, 4)), "Received: milestones=(0, 4)"),
    (dict(milestones=(4, 20)), "Received: milestones=(4, 20)"),
    (dict(warmup_factor=0.0), "`warmup_factor` must be in (0, 1]. Received: warmup_factor=0.0"),
    (dict(warmup_factor=1.5), "Received: warmup_factor=1.5"),
    (dict(warmup_iterations=-1),
     "`warmup_iterations` must be >= 0 (0: no warm-up). Received: warmup_iterations=-1"),
    (dict(gamma=0.0), "`gamma` must be > 0. Received: gamma=0.0"),
    (dict(learning_rate=0.0), "`learning_rate` must be > 0. Received: learning_rate=0.0"),
])
def test_make_schedule_refuses_bad_values(kwargs, message):
    settings = dict(name="multistep", learning_rate=1e-3, train_iterations=20, milestones=(4, 8))
    settings.update(kwargs)
    with pytest.raises(ValueError) as error:
        make_schedule(settings.pop("name"), **settings)
    assert message in str(error.value)


def test_scaled_is_a_multiple_of_the_schedule_some_steps_ahead():
    inner = MultiStep(1.0, (4, 8), 0.1)
    scaled = Scaled(inner, factor=10.0, offset=3)
    assert _both(scaled, 0) == pytest.approx((10.0, 10.0))  # step 3 of the inner schedule
    assert _both(scaled, 1) == pytest.approx((1.0, 1.0))  # step 4: after the first milestone
    assert _both(scaled, 5) == pytest.approx((0.1, 0.1))  # step 8
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(scaled))
    assert [again.value(i) for i in range(10)] == [scaled.value(i) for i in range(10)]
    with pytest.raises(ValueError, match="`factor` must be > 0"):
        Scaled(inner, factor=0)
