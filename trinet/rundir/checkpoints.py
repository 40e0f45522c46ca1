"""Training checkpoints: model weights, optimizer state, other training variables and run state in one
HDF5 file.

`checkpoint-<step>.h5` in the experiment root, written under a temporary name and renamed, so a
kill at any moment leaves every existing checkpoint readable. Variables are stored in named groups
(`model`, `optimizer`, `training`) with their variable paths and a CRC-32 checksum each, and restored
by path, strictly: a variable missing from the file, one the model lacks, a shape that differs or a
checksum that fails is an error that names it. Nothing is pickled. Files of the first format (no
checksums) still load.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zlib
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import atomic_path

log = logging.getLogger(__name__)

FORMAT = "trinet-checkpoint-2"
#: Formats this version reads (1: no checksums).
READABLE_FORMATS = ("trinet-checkpoint-1", FORMAT)
#: The file that `--checkpoint best` names (validation during training keeps it).
BEST = "best"
_NAME = re.compile(r"^checkpoint-(\d+)\.h5$")


def checkpoint_path(root: str, step: int) -> str:
    return os.path.join(root, f"checkpoint-{step}.h5")


def _checksum(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).tobytes())


def _write_variables(group: h5py.Group, variables) -> None:
    paths = [v.path for v in variables]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise ValueError(f"variables share the paths {duplicates}; checkpoints need unique paths")
    for i, variable in enumerate(variables):
        array = np.asarray(variable.numpy())
        data = group.create_dataset(f"{i:05d}", data=array)
        data.attrs["path"] = variable.path
        data.attrs["crc32"] = _checksum(array)


def save_checkpoint(root: str, step: int, groups: Mapping[str, Sequence], state: dict[str, Any] | None = None,
                    path: str | None = None) -> str:
    """Write `checkpoint-<step>.h5` (or `path`) atomically and return its path.

    Args:
        groups: variables by group name, e.g. `{"model": model.weights, "optimizer":
            optimizer.variables}`; each variable's path must be unique within its group.
        state: JSON-serialisable run state (e.g. the input pipeline's position).
    """
    path = path or checkpoint_path(root, step)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["step"] = int(step)
            f.attrs["state"] = json.dumps(state or {})
            for name, variables in groups.items():
                _write_variables(f.create_group(name), variables)
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
            if f.attrs.get("format") not in READABLE_FORMATS or "model" not in f:
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


def resolve(root: str, name: str | None, option: str = "--checkpoint {}") -> str:
    """The checkpoint `name` (a step, `checkpoint-<step>`, `best`, a file name or a path) in `root`, or
    the latest one when `name` is None; `option` is how messages name the choice (a command's flag, or
    the API's `checkpoint={!r}`)."""
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
    if name == BEST:
        raise TrinetError(f"{option.format(name)}: {root} has no {BEST}.h5; it is written by validation "
                          f"during training (train.py --val_query ...). Available: {available}")
    raise TrinetError(f"Checkpoint {name!r} not found in {root}; available: {available}")


def _previous(path: str) -> str:
    root = os.path.dirname(os.path.abspath(path))
    older = [p for step, p in list_checkpoints(root) if os.path.abspath(p) != os.path.abspath(path)]
    return older[-1] if older else "none"


def _verified(data: h5py.Dataset, what: str, variable_path: str, path: str) -> np.ndarray:
    """The array of a stored variable, checked against its checksum (files of format 1 have none)."""
    array = data[()]
    if "crc32" in data.attrs and _checksum(array) != int(data.attrs["crc32"]):
        raise TrinetError(f"{path} is corrupt: {what} variable {variable_path} fails its checksum. "
                          f"Remove the file to use the previous checkpoint ({_previous(path)}).")
    return array


def _assign(variables, group: h5py.Group, what: str, path: str) -> None:
    """Assign each variable the array stored under its path; strict about missing, extra and shapes."""
    stored = {group[key].attrs["path"]: group[key] for key in group}
    wanted = {v.path: v for v in variables}
    missing = [p for p in wanted if p not in stored]
    extra = [p for p in stored if p not in wanted]
    if missing or extra:
        parts = ([f"{len(missing)} variables the model has are not in the file ({listing(missing)})"]
                 if missing else []) + ([f"{len(extra)} variables in the file are not in the model "
                                         f"({listing(extra)})"] if extra else [])
        raise TrinetError(f"{path} does not fit the {what} built from the settings: {'; '.join(parts)}. "
                          "Was it written by another model or with other settings?")
    arrays = {}
    for variable_path, variable in wanted.items():
        data = stored[variable_path]
        if tuple(data.shape) != tuple(variable.shape):
            raise TrinetError(f"{path}: {what} variable {variable_path} has shape {data.shape} in the file, "
                              f"the model expects {tuple(variable.shape)}")
        arrays[variable_path] = _verified(data, what, variable_path, path)
    for variable_path, variable in wanted.items():  # assign only once everything has been checked
        variable.assign(arrays[variable_path])


def restore(path: str, groups: Mapping[str, Sequence]) -> tuple[int, dict[str, Any]]:
    """Load the named variable groups of a checkpoint (groups of the file not asked for are ignored);
    returns `(step, state)`.

    Raises:
        TrinetError: the file is not a checkpoint, lacks a group, or does not fit (see `_assign`).
    """
    step, state = read_info(path)
    with h5py.File(path, "r") as f:
        for name, variables in groups.items():
            if name not in f:
                raise TrinetError(f"{path} holds no {name} variables (it has: {', '.join(sorted(f))})")
            _assign(list(variables), f[name], name, path)
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
                variable.assign(_verified(data, "model", variable.path, path))
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
