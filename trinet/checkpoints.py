"""Training checkpoints: model weights, optimizer state and run state in one HDF5 file.

`checkpoint-<step>.h5` in the experiment root, written under a temporary name and renamed, so a
kill at any moment leaves every existing checkpoint readable. Arrays are stored with their variable
paths; nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import h5py
import numpy as np

from trinet.errors import TrinetError
from trinet.fileio import atomic_path

log = logging.getLogger(__name__)

FORMAT = "trinet-checkpoint-1"
_NAME = re.compile(r"^checkpoint-(\d+)\.h5$")


def checkpoint_path(root: str, step: int) -> str:
    return os.path.join(root, f"checkpoint-{step}.h5")


def _write_variables(group: h5py.Group, variables) -> None:
    for i, variable in enumerate(variables):
        data = group.create_dataset(f"{i:05d}", data=np.asarray(variable.numpy()))
        data.attrs["path"] = variable.path


def save_checkpoint(root: str, step: int, model, optimizer=None, state: dict[str, Any] | None = None) -> str:
    """Write `checkpoint-<step>.h5` atomically and return its path.

    Args:
        model: a Keras model; all its weights (trainable and not) are stored in order.
        optimizer: a built Keras optimizer whose variables (step count, moments) are stored too.
        state: JSON-serialisable run state (e.g. the input pipeline's position).
    """
    path = checkpoint_path(root, step)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["step"] = int(step)
            f.attrs["state"] = json.dumps(state or {})
            _write_variables(f.create_group("model"), model.weights)
            if optimizer is not None:
                _write_variables(f.create_group("optimizer"), optimizer.variables)
    return path


def list_checkpoints(root: str) -> list[tuple[int, str]]:
    """`(step, path)` of the checkpoint files in `root`, oldest first."""
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), os.path.join(root, name))
             for name in os.listdir(root) if (m := _NAME.match(name))]
    return sorted(found)


def read_info(path: str) -> tuple[int, dict[str, Any]]:
    """`(step, state)` of a checkpoint file.

    Raises:
        TrinetError: the file is missing, unreadable or not a trinet checkpoint.
    """
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or "model" not in f:
                raise TrinetError(f"{path} is not a trinet checkpoint")
            return int(f.attrs["step"]), json.loads(f.attrs["state"])
    except (OSError, KeyError, ValueError) as e:
        if isinstance(e, TrinetError):
            raise
        raise TrinetError(f"Cannot read checkpoint {path}: {e}") from None


def latest_checkpoint(root: str) -> str | None:
    """The newest readable checkpoint in `root` (an unreadable newer one is skipped with a warning)."""
    for step, path in reversed(list_checkpoints(root)):
        try:
            read_info(path)
            return path
        except TrinetError as e:
            log.warning("Skipping damaged checkpoint: %s", e)
    return None


def resolve(root: str, name: str | None) -> str:
    """The checkpoint `name` (a step, `checkpoint-<step>`, a file name or a path) in `root`, or the
    latest one when `name` is None."""
    if name is None:
        path = latest_checkpoint(root)
        if path is None:
            raise TrinetError(f"No checkpoint found in {root}; has train.py run there?")
        return path
    candidates = [name, os.path.join(root, name), os.path.join(root, name + ".h5")]
    if name.isdigit():
        candidates.append(checkpoint_path(root, int(name)))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    available = ", ".join(os.path.basename(p) for _, p in list_checkpoints(root)) or "none"
    raise TrinetError(f"Checkpoint {name!r} not found in {root}; available: {available}")


def _assign(variables, group: h5py.Group, what: str, path: str) -> None:
    keys = sorted(group.keys())
    if len(keys) != len(variables):
        raise TrinetError(f"{path}: the {what} has {len(keys)} variables but the model built from the "
                          f"settings has {len(variables)}; was it written by another model?")
    for variable, key in zip(variables, keys):
        data = group[key]
        if tuple(data.shape) != tuple(variable.shape):
            raise TrinetError(f"{path}: {what} variable {data.attrs.get('path')} has shape {data.shape}, "
                              f"the model expects {tuple(variable.shape)} for {variable.path}")
        variable.assign(data[()])


def restore(path: str, model, optimizer=None) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint into `model` (and `optimizer`, which is built first); returns `(step, state)`."""
    step, state = read_info(path)
    with h5py.File(path, "r") as f:
        _assign(model.weights, f["model"], "model", path)
        if optimizer is not None:
            if "optimizer" not in f:
                raise TrinetError(f"{path} holds no optimizer state")
            optimizer.build(model.trainable_variables)
            _assign(optimizer.variables, f["optimizer"], "optimizer", path)
    return step, state


def restore_by_path(path: str, variables) -> tuple[list[str], list[str]]:
    """Assign each of `variables` the array stored under the same variable path and shape.

    Returns:
        `(loaded, missing)` variable paths.
    """
    read_info(path)
    with h5py.File(path, "r") as f:
        stored = {f["model"][key].attrs["path"]: f["model"][key] for key in f["model"]}
        loaded, missing = [], []
        for variable in variables:
            data = stored.get(variable.path)
            if data is not None and tuple(data.shape) == tuple(variable.shape):
                variable.assign(data[()])
                loaded.append(variable.path)
            else:
                missing.append(variable.path)
    return loaded, missing


def prune(root: str, keep: int, protect: tuple[int, ...] = (0,)) -> list[str]:
    """Delete all but the newest `keep` checkpoints (never those at the `protect` steps)."""
    removable = [(step, path) for step, path in list_checkpoints(root) if step not in protect]
    removed = []
    for _, path in removable[:max(0, len(removable) - keep)]:
        try:
            os.remove(path)
            removed.append(path)
        except OSError as e:
            log.warning("Could not remove old checkpoint %s: %s", path, e)
    return removed
