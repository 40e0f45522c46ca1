"""Checkpoint files: round trip, latest-readable selection, pruning, name resolution."""

import os

import h5py
import keras
import numpy as np
import pytest

from conftest import FIXTURES
from trinet.core.errors import TrinetError
from trinet.rundir import checkpoints


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="d1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="d2")(x))


def trained(seed=0):
    model = small_model(seed)
    optimizer = keras.optimizers.Adam(1e-2, name="adam")
    x = np.random.default_rng(seed).normal(size=(8, 4)).astype(np.float32)
    import tensorflow as tf
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x, training=True) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
    return model, optimizer


def groups(model, optimizer=None):
    return {"model": model.weights, **({"optimizer": optimizer.variables} if optimizer else {})}


def test_round_trip_restores_weights_optimizer_and_state(tmp_path):
    model, optimizer = trained(0)
    path = checkpoints.save_checkpoint(str(tmp_path), 3, groups(model, optimizer), {"next_batch": 7})
    assert os.path.basename(path) == "checkpoint-3.h5"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary file left
    other, other_optimizer = small_model(1), keras.optimizers.Adam(1e-2, name="adam")
    other_optimizer.build(other.trainable_variables)
    step, state = checkpoints.restore(path, groups(other, other_optimizer))
    assert (step, state) == (3, {"next_batch": 7})
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(optimizer.variables, other_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(other_optimizer.iterations.numpy()) == 3


def test_mismatching_model_is_a_clear_error(tmp_path):
    model, optimizer = trained(0)
    path = checkpoints.save_checkpoint(str(tmp_path), 1, groups(model, optimizer))
    inputs = keras.Input((5,))
    wrong = keras.Model(inputs, keras.layers.Dense(2, name="d9")(inputs))
    with pytest.raises(TrinetError, match=r"does not fit the model built from the settings: 2 variables the "
                                          r"model has are not in the file \(d9/kernel, d9/bias\); 8 "
                                          r"variables in the file are not in the model \(d1/kernel, d1/bias"):
        checkpoints.restore(path, {"model": wrong.weights})
    inputs = keras.Input((4,))
    x = keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(5, name="d1")(inputs))
    reshaped = keras.Model(inputs, keras.layers.Dense(2, name="d2")(x))
    with pytest.raises(TrinetError, match=r"model variable d1/kernel has shape \(4, 3\) in the file, the "
                                          r"model expects \(4, 5\)"):
        checkpoints.restore(path, {"model": reshaped.weights})
    with pytest.raises(TrinetError, match="holds no training variables"):
        checkpoints.restore(path, {"training": []})


def test_matching_is_by_path_not_by_position(tmp_path):
    model, optimizer = trained(0)
    path = checkpoints.save_checkpoint(str(tmp_path), 1, {"model": model.weights[::-1]})
    other = small_model(1)
    checkpoints.restore(path, {"model": other.weights})
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_corrupted_variable_fails_its_checksum_and_points_to_the_previous_checkpoint(tmp_path):
    model, optimizer = trained(0)
    root = str(tmp_path)
    checkpoints.save_checkpoint(root, 5, groups(model, optimizer))
    path = checkpoints.save_checkpoint(root, 10, groups(model, optimizer))
    with h5py.File(path, "r") as f:  # find the bytes of d1/kernel in the file and overwrite one in place
        data = next(f["model"][k] for k in f["model"] if f["model"][k].attrs["path"] == "d1/kernel")
        offset, size = data.id.get_offset(), data.id.get_storage_size()
    with open(path, "r+b") as f:
        f.seek(offset + size // 2)
        byte = f.read(1)
        f.seek(offset + size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    before = [v.numpy().copy() for v in small_model(1).weights]
    target = small_model(1)
    with pytest.raises(TrinetError, match=r"checkpoint-10.h5 is corrupt: model variable d1/kernel fails its "
                                          r"checksum. Remove the file to use the previous checkpoint "
                                          r"\(.*checkpoint-5.h5\)"):
        checkpoints.restore(path, {"model": target.weights})
    for a, b in zip(before, target.weights):  # nothing was assigned
        np.testing.assert_array_equal(a, b.numpy())


def test_old_format_without_checksums_still_loads():
    path = os.path.join(FIXTURES, "v1_experiment", "exp", "checkpoint-2.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "trinet-checkpoint-1"
    assert checkpoints.read_info(path) == (2, {"next_batch": 2, "skipped_batches": 0})


def test_latest_skips_damaged_and_foreign_files(tmp_path):
    model, optimizer = trained(0)
    root = str(tmp_path)
    for step in (0, 5, 10):
        checkpoints.save_checkpoint(root, step, groups(model, optimizer))
    (tmp_path / "checkpoint-15.h5").write_bytes(b"half a file")
    with h5py.File(tmp_path / "checkpoint-12.h5", "w") as f:
        f["x"] = 1
    (tmp_path / "checkpoint-x.h5").write_bytes(b"")
    assert [s for s, _ in checkpoints.list_checkpoints(root)] == [0, 5, 10, 12, 15]
    assert checkpoints.latest_checkpoint(root) == os.path.join(root, "checkpoint-10.h5")
    assert checkpoints.latest_checkpoint(str(tmp_path / "none")) is None


def test_prune_keeps_the_newest_and_step_zero(tmp_path):
    model, optimizer = trained(0)
    root = str(tmp_path)
    for step in (0, 1, 2, 3, 4):
        checkpoints.save_checkpoint(root, step, groups(model))
    checkpoints.prune(root, keep=2)
    assert [s for s, _ in checkpoints.list_checkpoints(root)] == [0, 3, 4]


def test_resolve_names(tmp_path):
    model, _ = trained(0)
    root = str(tmp_path)
    checkpoints.save_checkpoint(root, 0, groups(model))
    checkpoints.save_checkpoint(root, 20, groups(model))
    expected = os.path.join(root, "checkpoint-20.h5")
    for name in (None, "20", "checkpoint-20", "checkpoint-20.h5", expected):
        assert checkpoints.resolve(root, name) == expected
    with pytest.raises(TrinetError,
                       match="'checkpoint-7' not found .* available: checkpoint-0.h5, checkpoint-20.h5"):
        checkpoints.resolve(root, "checkpoint-7")
    with pytest.raises(TrinetError, match="No checkpoint found"):
        checkpoints.resolve(str(tmp_path / "empty"), None)


def test_restore_by_path_loads_matching_variables_only(tmp_path):
    model, _ = trained(0)
    path = checkpoints.save_checkpoint(str(tmp_path), 1, groups(model))
    inputs = keras.Input((4,))
    target = keras.Model(inputs, keras.layers.Dense(7, name="d2")(keras.layers.Dense(3, name="d1")(inputs)))
    loaded, missing = checkpoints.restore_by_path(path, target.weights)
    assert loaded == ["d1/kernel", "d1/bias"] and missing == ["d2/kernel", "d2/bias"]  # d2 has another shape
    np.testing.assert_array_equal(target.get_layer("d1").kernel.numpy(), model.get_layer("d1").kernel.numpy())
