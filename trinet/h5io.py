"""The HDF5 embedding file, as written by `embed.py` and read by `evaluate.py` (numpy and h5py only).

Layout (compatible with the original triplet-reid, plus self-description):
    emb                 (N, D) float32   final embedding of each row, in dataset order
    emb_aug             (M, N, D) float32  every test-time view; only when M > 1
    augmentation_types  (M,) bytes       view names, e.g. b'original_center', b'original_flip_top_left'
    pids, fids          (N,) utf-8 str   identity and path of each row (pids empty for plain lists)
    attrs               free-form settings (experiment, checkpoint, aggregator, trinet version)
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from trinet.errors import TrinetError
from trinet.fileio import atomic_path


def write_embeddings(path: str, emb: np.ndarray, *, emb_aug: np.ndarray | None = None,
                     augmentation_types: Sequence[str] = ("original_resize",),
                     pids: Sequence[str] | None = None, fids: Sequence[str] | None = None,
                     attrs: Mapping[str, Any] | None = None) -> None:
    """Write an embedding file atomically: it appears under `path` only when complete.

    Args:
        emb: `(N, D)` final embeddings.
        emb_aug: `(M, N, D)` per-view embeddings, stored when given and M > 1.
        augmentation_types: the M view names.
        pids, fids: `(N,)` identities and paths of the rows.
        attrs: settings stored as HDF5 attributes (str, numbers, bools).
    """
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"emb must be (N, D), got shape {emb.shape}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("emb", data=emb)
            if emb_aug is not None and len(emb_aug) > 1:
                f.create_dataset("emb_aug", data=np.asarray(emb_aug, dtype=np.float32))
            f.create_dataset("augmentation_types", data=np.array(list(augmentation_types), dtype="S"))
            text = h5py.string_dtype("utf-8")
            if pids is not None:
                f.create_dataset("pids", data=np.array(list(pids), dtype=object), dtype=text)
            if fids is not None:
                f.create_dataset("fids", data=np.array(list(fids), dtype=object), dtype=text)
            for key, value in (attrs or {}).items():
                f.attrs[key] = "" if value is None else value


def read_embeddings(path: str, *, expected_rows: int | None = None, partner: str | None = None,
                    key: str = "emb") -> np.ndarray:
    """Read and validate the `(N, D)` float32 embeddings `key` of an HDF5 file.

    Args:
        expected_rows: the row count of the matching dataset CSV (named by `partner`).
        partner: the CSV the rows belong to, for the message.

    Raises:
        TrinetError: the file is missing or not HDF5, lacks `key`, has the wrong shape or row count,
            or holds NaN or infinite values.
    """
    if not os.path.isfile(path):
        raise TrinetError(f"Embedding file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TrinetError(f"{path} is not a readable HDF5 file ({e})") from None
    with f:
        if key not in f:
            raise TrinetError(f"{path} has no dataset {key!r}; it holds {sorted(f.keys())}. "
                              "Embedding files are written by embed.py.")
        emb = f[key]
        if emb.ndim != 2:
            raise TrinetError(f"{path}: dataset {key!r} must be 2-D (N, D), found shape {emb.shape}")
        values = np.asarray(emb[()], dtype=np.float32)
    if expected_rows is not None and len(values) != expected_rows:
        raise TrinetError(f"{path} has {len(values)} embeddings but {partner or 'its dataset'} has "
                          f"{expected_rows} rows; embed that CSV again.")
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise TrinetError(f"{path}: {len(bad)} rows hold NaN or infinite values (first: row {bad[0]}); "
                          "the model that wrote them has diverged or the file is damaged.")
    return values


def read_strings(path: str, key: str) -> list[str] | None:
    """A string dataset of an embedding file (e.g. 'fids', 'augmentation_types'), or None if absent."""
    with h5py.File(path, "r") as f:
        if key not in f:
            return None
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in f[key][()]]
