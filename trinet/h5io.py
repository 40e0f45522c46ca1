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


class EmbeddingWriter:
    """Write an embedding file row block by row block; it appears under `path` only when complete.

    Memory stays bounded by the block size, whatever N. Use as a context manager: on an exception
    (or a kill) nothing is left under `path` and an existing file there is kept.

    Args:
        rows, dim: N and D.
        augmentation_types: the M view names; `emb_aug (M, N, D)` is stored when M > 1.
        pids, fids: `(N,)` identities and paths of the rows.
        attrs: settings stored as HDF5 attributes (str, numbers, bools; None becomes '').
    """

    def __init__(self, path: str, rows: int, dim: int, *,
                 augmentation_types: Sequence[str] = ("original_resize",),
                 pids: Sequence[str] | None = None, fids: Sequence[str] | None = None,
                 attrs: Mapping[str, Any] | None = None):
        self.path, self.rows, self.dim = path, rows, dim
        self.views = len(augmentation_types)
        self._types, self._pids, self._fids, self._attrs = augmentation_types, pids, fids, attrs or {}
        self.written = 0

    def __enter__(self) -> "EmbeddingWriter":
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
            f = self._file
            chunk = (max(1, min(self.rows, 4096)), self.dim)
            self._emb = f.create_dataset("emb", (self.rows, self.dim), np.float32, chunks=chunk)
            self._aug = (f.create_dataset("emb_aug", (self.views, self.rows, self.dim), np.float32,
                                          chunks=(1, *chunk)) if self.views > 1 else None)
            f.create_dataset("augmentation_types", data=np.array(list(self._types), dtype="S"))
            text = h5py.string_dtype("utf-8")
            for name, values in (("pids", self._pids), ("fids", self._fids)):
                if values is not None:
                    f.create_dataset(name, data=np.array(list(values), dtype=object), dtype=text)
            for key, value in self._attrs.items():
                f.attrs[key] = "" if value is None else value
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def write(self, emb: np.ndarray, emb_aug: np.ndarray | None = None) -> None:
        """Append rows: `emb` `(b, D)` and, when M > 1, `emb_aug` `(M, b, D)`."""
        start, stop = self.written, self.written + len(emb)
        if stop > self.rows:
            raise ValueError(f"{self.path}: writing rows up to {stop} of {self.rows}")
        self._emb[start:stop] = emb
        if self._aug is not None:
            self._aug[:, start:stop] = emb_aug
        self.written = stop

    def __exit__(self, kind, value, traceback) -> bool:
        try:
            self._file.close()
            if kind is None and self.written != self.rows:
                kind = ValueError
                value = ValueError(f"{self.path}: only {self.written} of {self.rows} rows were written")
                traceback = None
        finally:
            self._atomic.__exit__(kind, value, traceback)
        if kind is not None and value is not None and traceback is None:
            raise value
        return False


def write_embeddings(path: str, emb: np.ndarray, *, emb_aug: np.ndarray | None = None,
                     augmentation_types: Sequence[str] = ("original_resize",),
                     pids: Sequence[str] | None = None, fids: Sequence[str] | None = None,
                     attrs: Mapping[str, Any] | None = None) -> None:
    """Write a whole embedding file atomically (see `EmbeddingWriter`).

    Args:
        emb: `(N, D)` final embeddings.
        emb_aug: `(M, N, D)` per-view embeddings, stored when given and M > 1.
        augmentation_types: the M view names (one name when `emb_aug` is not given).
    """
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"emb must be (N, D), got shape {emb.shape}")
    if emb_aug is None or len(emb_aug) <= 1:
        augmentation_types, emb_aug = list(augmentation_types)[:1], None
    with EmbeddingWriter(path, len(emb), emb.shape[1], augmentation_types=augmentation_types, pids=pids,
                         fids=fids, attrs=attrs) as writer:
        writer.write(emb, None if emb_aug is None else np.asarray(emb_aug, dtype=np.float32))


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
