"""The learning-rate schedule: constant, then exponential decay to 0.001x at the last iteration."""

import numpy as np
import pytest

from trinet.schedule import TrinetSchedule, learning_rate


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
