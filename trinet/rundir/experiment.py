"""The experiment root: `args.json`, checkpoints, `train.log`, TensorBoard events, `model.keras`."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from trinet.core.errors import TrinetError
from trinet.core.fileio import path_problem, write_json_atomic

log = logging.getLogger(__name__)

ARGS_FILE = "args.json"
LOG_FILE = "train.log"
MODEL_FILE = "model.keras"


def check_fresh(root: str) -> None:
    """Refuse a non-empty folder or a file as the root of a new run (nothing is written)."""
    if os.path.isdir(root) and os.listdir(root):
        raise TrinetError(f"The experiment root {root} already exists and is not empty. To continue its "
                          "training, add --resume; to start a new run, choose another --experiment_root.")
    if os.path.exists(root) and not os.path.isdir(root):
        raise TrinetError(f"--experiment_root {root} is a file, not a directory")


def prepare_fresh(root: str) -> None:
    """Create `root` for a new run; refuse a non-empty folder and an unwritable place."""
    check_fresh(root)
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise TrinetError(f"Cannot create the experiment root {root}: {e.strerror}") from None
    check_writable(root)


def check_writable(root: str) -> None:
    """Raise a TrinetError unless a file can be created in `root`."""
    probe = os.path.join(root, f".write-test-{os.getpid()}")
    try:
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise TrinetError(f"The experiment root {root} is not writable: {e.strerror}") from None


def save_args(root: str, args: dict[str, Any]) -> None:
    write_json_atomic(os.path.join(root, ARGS_FILE), args)


def load_args(root: str) -> dict[str, Any]:
    """The arguments saved by a previous run in `root`.

    Raises:
        TrinetError: `args.json` is missing or damaged (the message says where).
    """
    path = os.path.join(root, ARGS_FILE)
    if not os.path.isfile(path):
        raise TrinetError(f"{path} not found: {root} is not an experiment root written by train.py "
                          "(or its args.json was removed).")
    try:
        with open(path, encoding="utf-8") as f:
            args = json.load(f)
    except json.JSONDecodeError as e:
        raise TrinetError(f"{path} is damaged: {e.msg} at line {e.lineno}, column {e.colno}. Restore it "
                          "(its values are also listed at the top of train.log).") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TrinetError(f"Cannot read {path}: {e}") from None
    if not isinstance(args, dict):
        raise TrinetError(f"{path} is damaged: expected a JSON object of arguments")
    return args


def read_settings(root: str) -> dict[str, Any]:
    """The arguments in `root`'s `args.json`, or `{}` (with a warning) when it has none: a bare
    `model.keras` can still be used, with the image sizes given explicitly.

    Raises:
        TrinetError: `args.json` is not a readable file, or is damaged.
    """
    path = os.path.join(root, ARGS_FILE)
    problem = path_problem(path, "file")
    if problem is None:
        return load_args(root)
    if problem != "not found":
        raise TrinetError(f"{path} is {problem}; expected the settings file written by train.py")
    log.warning("%s has no %s; the model must be model.keras and the image sizes given explicitly.", root,
                ARGS_FILE)
    return {}


def describe_contents(root: str) -> str:
    """What an experiment folder holds of what embedding and export need, in words for a message:
    `args.json`, the checkpoints (first and last), `model.keras`, and whether a run holds its lock."""
    from trinet.rundir import checkpoints, runlock

    def has(name: str) -> str:
        return "yes" if os.path.isfile(os.path.join(root, name)) else "no"

    found = [os.path.basename(path) for _, path in checkpoints.list_checkpoints(root)]
    listed = ("none yet" if not found else found[0] if len(found) == 1
              else f"{len(found)} ({found[0]} to {found[-1]})")
    parts = [f"{ARGS_FILE}: {has(ARGS_FILE)}", f"checkpoints: {listed}", f"{MODEL_FILE}: {has(MODEL_FILE)}"]
    owner = runlock.read_owner(root)
    if owner is not None:
        parts.append(f"locked by {runlock.describe_owner(owner)}: still running?")
    return "; ".join(parts)


def no_model_yet(root: str, what: str | None = None) -> TrinetError:
    """The error for an experiment folder `root` (named `what` in the message) that holds neither a
    checkpoint nor `model.keras`: what it holds (`describe_contents`) and what was expected."""
    return TrinetError(f"{what or root} holds no model yet ({describe_contents(root)}); expected an "
                       f"experiment root of train.py with a checkpoint or {MODEL_FILE}.")
