"""argparse value types that reject bad values at parse time, with a message naming what is allowed."""

from __future__ import annotations

import argparse
import math
import os
import re

from trinet.core.fileio import path_problem


def _number(text: str, kind: type, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer > 0."""
    value = _number(text, int, "a positive integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = _number(text, float, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite float >= 0."""
    value = _number(text, float, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def unit_float(text: str) -> float:
    """A float in [0, 1]."""
    value = _number(text, float, "a number between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def margin(text: str) -> float | str:
    """A triplet margin: a float >= 0 (hinge), 'soft' (softplus) or 'none' (no margin)."""
    lowered = text.strip().lower()
    if lowered in ("soft", "none"):
        return lowered
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number >= 0, 'soft' or 'none', got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, 'soft' or 'none', got {text!r}")
    return value


def readable_file(text: str) -> str:
    """An existing, readable regular file."""
    problem = path_problem(text, "file")
    if problem == "not found":
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is {problem}; expected a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"file is not readable: {text!r}")
    return text


def readable_directory(text: str) -> str:
    """An existing, readable directory."""
    problem = path_problem(text, "folder")
    if problem == "not found":
        raise argparse.ArgumentTypeError(f"no such directory: {text!r}")
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is {problem}; expected a directory")
    if not os.access(text, os.R_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory is not readable: {text!r}")
    return text


def writeable_directory(text: str) -> str:
    """A directory that exists and is writable, or that can be created (its nearest existing
    ancestor is a writable directory)."""
    path = os.path.abspath(text)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory ({probe!r} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {text!r}: {probe!r} is not writable")
    return text


def writeable_file(text: str) -> str:
    """A file path whose directory exists (or can be created) and is writable."""
    directory = os.path.dirname(os.path.abspath(text))
    writeable_directory(directory)
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file name")
    return text


def image_size(text: str) -> tuple[int, int]:
    """`'32x16'` -> `(32, 16)`: height x width, both > 0."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH with positive integers, e.g. 32x16; got {text!r}")
    return int(match[1]), int(match[2])


def shard(text: str) -> tuple[int, int]:
    """`'1/4'` -> `(1, 4)`: shard I of N, with 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text}: expected I/N, shard I (counted from 0) of N, e.g. 0/4")
    index, count = int(match[1]), int(match[2])
    if count == 0:
        raise argparse.ArgumentTypeError(f"{text}: the shard count N must be at least 1")
    if index >= count:
        raise argparse.ArgumentTypeError(f"{text}: the shard index I must be in 0..{count - 1} (counted "
                                         f"from 0)")
    return index, count
