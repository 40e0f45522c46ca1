"""The HDF5 embedding file (its layout: `trinet.data.embeddings`): the writer, whose file appears only when
complete and which survives a full disk, and the readers, which check completeness, shapes and row order.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import path_problem
from trinet.data.embeddings.writer import EmbeddingFileWriter

log = logging.getLogger(__name__)

#: The attribute that marks a complete file (its value is N); files of older versions lack it.
ROWS_WRITTEN = "rows_written"
#: The dataset of AlignedReID's local features `(N, S, D_l)` (models trained with --local_branch).
LOCAL_KEY = "emb_local"


class _GuardedFile:
    """The file object under HDF5 while it writes: it records the first failed write and reports
    success to HDF5.

    HDF5 cannot recover from a failed write (a full disk): it raises RuntimeError from unrelated calls
    and then crashes the process (a segmentation fault) when the file is closed or Python exits. So
    HDF5 is never told: after the first `OSError` nothing more is written, reads return zeros, and
    `EmbeddingWriter` discards the file and raises the recorded error once HDF5 has let go of it.
    """

    def __init__(self, path: str):
        self.raw = open(path, "w+b", buffering=0)
        self.error: OSError | None = None

    def _guard(self, step) -> None:
        if self.error is None:
            try:
                step()
            except OSError as e:
                self.error = e

    def write(self, data) -> int:
        def write_all():
            view = memoryview(data).cast("B")
            while len(view):
                written = self.raw.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
        self._guard(write_all)
        return memoryview(data).nbytes

    def readinto(self, buffer) -> int:
        if self.error is not None:
            view = memoryview(buffer).cast("B")
            view[:] = bytes(len(view))
            return len(view)
        return self.raw.readinto(buffer)

    def read(self, size: int = -1) -> bytes:
        return self.raw.read(size) if self.error is None else b""

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def truncate(self, size: int | None = None) -> int:
        self._guard(lambda: self.raw.truncate(size))
        return self.raw.tell() if size is None else size

    def flush(self) -> None:
        pass  # unbuffered; `AtomicTarget.commit` flushes the file to disk

    def close(self) -> None:
        self._guard(self.raw.close)
        if not self.raw.closed:
            with contextlib.suppress(OSError):
                self.raw.close()


class EmbeddingWriter(EmbeddingFileWriter):
    """Write an HDF5 embedding file row block by row block; it appears under `path` only when complete.

    Memory stays bounded by the block size, whatever N. Use as a context manager (see
    `EmbeddingFileWriter`); exiting without an exception before all N rows are written is an error.

    Args:
        rows, dim: N and D.
        augmentation_types: the M view names; `emb_aug (M, N, D)` is stored when M > 1.
        pids, fids: `(N,)` identities and paths of the rows.
        attrs: settings stored as HDF5 attributes (str, numbers, bools; None becomes '').
        local_shape: `(S, D_l)`: `emb_local (N, S, D_l)` is stored (every `write` then gives it).
        extra: more `(N,)` datasets by name, written when the file is opened (a tracklet file's
            `tracklets`, `cameras` and `frame_counts`); strings are stored as UTF-8 text.
    """

    def __init__(self, path: str, rows: int, dim: int, *,
                 augmentation_types: Sequence[str] = ("original_resize",),
                 pids: Sequence[str] | None = None, fids: Sequence[str] | None = None,
                 attrs: Mapping[str, Any] | None = None, local_shape: tuple[int, int] | None = None,
                 extra: Mapping[str, Sequence[Any] | np.ndarray] | None = None):
        self.path, self.rows, self.dim = path, rows, dim
        self.local_shape = None if local_shape is None else (int(local_shape[0]), int(local_shape[1]))
        self.views = len(augmentation_types)
        self._types, self._pids, self._fids, self._attrs = augmentation_types, pids, fids, attrs or {}
        self._extra = dict(extra or {})
        self.written = 0
        self._sink: _GuardedFile | None = None
        self._file: Any = None

    def _open(self, tmp: str) -> None:
        self._sink = _GuardedFile(tmp)
        self._file = f = h5py.File(self._sink, "w")
        chunk = (max(1, min(self.rows, 4096)), self.dim)
        self._emb = f.create_dataset("emb", (self.rows, self.dim), np.float32, chunks=chunk)
        self._aug = (f.create_dataset("emb_aug", (self.views, self.rows, self.dim), np.float32,
                                      chunks=(1, *chunk)) if self.views > 1 else None)
        self._local = None
        if self.local_shape is not None:
            self._local = f.create_dataset(LOCAL_KEY, (self.rows, *self.local_shape), np.float32,
                                           chunks=(max(1, min(self.rows, 512)), *self.local_shape))
        f.create_dataset("augmentation_types", data=np.array(list(self._types), dtype="S"))
        text = h5py.string_dtype("utf-8")
        for name, values in (("pids", self._pids), ("fids", self._fids)):
            if values is not None:
                f.create_dataset(name, data=np.array(list(values), dtype=object), dtype=text)
        for name, column in self._extra.items():
            array = np.asarray(column)
            if array.dtype.kind in "UO":
                f.create_dataset(name, data=np.array(array.tolist(), dtype=object), dtype=text)
            else:
                f.create_dataset(name, data=array)
        for key, value in self._attrs.items():
            f.attrs[key] = "" if value is None else value

    def _opened(self) -> tuple[_GuardedFile, Any]:
        if self._sink is None or self._file is None:
            raise RuntimeError(f"{self.path}: the writer is not open; use it in a with statement")
        return self._sink, self._file

    def write(self, emb: np.ndarray, emb_aug: np.ndarray | None = None,
              emb_local: np.ndarray | None = None) -> None:
        """Append rows: `emb` `(b, D)`, when M > 1 `emb_aug` `(M, b, D)`, with `local_shape` `emb_local`
        `(b, S, D_l)`.

        Raises:
            OSError: an earlier write failed (the file is then discarded on exit).
        """
        sink, _ = self._opened()
        if sink.error is not None:
            raise sink.error
        start, stop = self.written, self.written + len(emb)
        if stop > self.rows:
            raise ValueError(f"{self.path}: writing rows up to {stop} of {self.rows}")
        self._emb[start:stop] = emb
        if self._aug is not None:
            self._aug[:, start:stop] = emb_aug
        if self._local is not None:
            if emb_local is None:
                raise ValueError(f"{self.path}: the writer stores local features; write() needs emb_local")
            self._local[start:stop] = emb_local
        self.written = stop

    def _complete(self) -> BaseException | None:
        if self.written != self.rows:
            return ValueError(f"{self.path}: only {self.written} of {self.rows} rows were written")
        try:
            self._opened()[1].attrs[ROWS_WRITTEN] = self.rows
        except Exception as e:  # noqa: BLE001 (h5py raises RuntimeError for I/O failures)
            return e
        return None

    def _close(self, failure: BaseException | None) -> BaseException | None:
        """Close HDF5 and the file under it; returns what went wrong first (None if nothing)."""
        self._emb = self._aug = self._local = None
        if self._file is not None:
            try:
                self._file.close()
            except Exception as e:  # noqa: BLE001 (h5py raises RuntimeError for I/O failures)
                failure = failure or e
        if self._sink is not None:
            self._sink.close()
            if self._sink.error is not None and (failure is None or isinstance(failure, Exception)):
                failure = self._sink.error  # the cause, rather than what HDF5 or a write made of it
        return failure


def write_embeddings(path: str, emb: np.ndarray, *, emb_aug: np.ndarray | None = None,
                     augmentation_types: Sequence[str] = ("original_resize",),
                     pids: Sequence[str] | None = None, fids: Sequence[str] | None = None,
                     attrs: Mapping[str, Any] | None = None, emb_local: np.ndarray | None = None) -> None:
    """Write a whole embedding file atomically (see `EmbeddingWriter`).

    Args:
        emb: `(N, D)` final embeddings.
        emb_aug: `(M, N, D)` per-view embeddings, stored when given and M > 1.
        augmentation_types: the M view names (one name when `emb_aug` is not given).
        emb_local: `(N, S, D_l)` local features, stored as `emb_local` when given.
    """
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"emb must be (N, D), got shape {emb.shape}")
    if emb_aug is None or len(emb_aug) <= 1:
        augmentation_types, emb_aug = list(augmentation_types)[:1], None
    local = None if emb_local is None else np.asarray(emb_local, dtype=np.float32)
    if local is not None and (local.ndim != 3 or len(local) != len(emb)):
        raise ValueError(f"emb_local must be (N, S, D_l) with N = {len(emb)}, got shape {local.shape}")
    with EmbeddingWriter(path, len(emb), emb.shape[1], augmentation_types=augmentation_types, pids=pids,
                         fids=fids, attrs=attrs, local_shape=None if local is None else local.shape[1:]
                         ) as writer:
        writer.write(emb, None if emb_aug is None else np.asarray(emb_aug, dtype=np.float32), local)


def read_embeddings(path: str, *, expected_rows: int | None = None, partner: str | None = None,
                    key: str = "emb", fids: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
    """Read and validate the `(N, D)` float32 embeddings `key` of an HDF5 file.

    Args:
        expected_rows: the row count of the matching dataset CSV (named by `partner`).
        partner: the CSV the rows belong to, for the message.
        fids: the image paths of the CSV's rows. When the file stores `fids` in another order, the
            rows are returned in the CSV's order (with a warning naming the file); see `match_rows`.

    Raises:
        TrinetError: the file is missing or not HDF5, lacks `key`, has the wrong shape or row count,
            holds no rows, ends in rows of zeros without the mark of a complete write (the rows an
            interrupted or failed write of an older version left),
            holds NaN or infinite values, or stores image paths that are not those of `fids`.
    """
    problem = path_problem(path, "file")
    if problem == "not found":
        raise TrinetError(f"Embedding file not found: {path}")
    if problem is not None:
        raise TrinetError(f"Embedding file {path} is {problem}; expected an HDF5 file written by embed.py")
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
        marked = f.attrs.get(ROWS_WRITTEN)
    if len(values) == 0 or values.shape[1] == 0:
        raise TrinetError(f"{path} holds no embeddings (shape {values.shape}); embed the CSV again.")
    if expected_rows is not None and len(values) != expected_rows:
        raise TrinetError(f"{path} has {len(values)} embeddings but {partner or 'its dataset'} has "
                          f"{expected_rows} rows; embed that CSV again.")
    written = np.flatnonzero(values.any(axis=1))
    end = written[-1] + 1 if len(written) else 0
    if end < len(values) and not (np.ndim(marked) == 0 and marked == len(values)):
        # What an unwritten end looks like in a file without the mark of a complete write.
        raise TrinetError(f"{path}: rows {end + 1} to {len(values)} (of {len(values)}) are all zeros: the "
                          "file was not written to the end (an interrupted or failed embed.py); embed the "
                          "CSV again.")
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise TrinetError(f"{path}: {len(bad)} rows hold NaN or infinite values (first: row {bad[0]}); "
                          "the model that wrote them has diverged or the file is damaged.")
    return _in_order(values, path, fids, partner)


def _in_order(values: np.ndarray, path: str, fids: Sequence[str] | np.ndarray | None, partner: str | None,
              warn: bool = True) -> np.ndarray:
    """`values`, the rows of embedding file `path`, in the order of `fids` (see `match_rows`)."""
    order = None if fids is None else match_rows(path, fids, partner, warn)
    return values if order is None else values[order]


def match_rows(path: str, fids: Sequence[str] | np.ndarray,
               partner: str | None = None, warn: bool = True) -> np.ndarray | None:
    """The order that puts the rows of embedding file `path` into the order of `fids` (a CSV's paths),
    or None when they are in that order already or the file stores no paths (files of the original
    triplet-reid).

    Rows stored in another order are reordered by their stored `fids`, with a warning naming the file
    (unless `warn` is False).

    Raises:
        TrinetError: the stored paths are not those of `fids` in any order (the message names the file
            and the first differing rows); metrics on such rows would be wrong.
    """
    stored = read_strings(path, "fids")
    if stored is None:
        return None
    stored_fids, wanted = np.asarray(stored, dtype=str), np.asarray(list(fids), dtype=str)
    partner = partner or "its dataset"
    if len(stored_fids) != len(wanted):
        raise TrinetError(f"{path} stores {len(stored_fids)} image paths but {partner} has {len(wanted)} "
                          "rows; embed that CSV again.")
    differ = np.flatnonzero(stored_fids != wanted)
    if not len(differ):
        return None
    stored_order, wanted_order = np.argsort(stored_fids, kind="stable"), np.argsort(wanted, kind="stable")
    if not np.array_equal(stored_fids[stored_order], wanted[wanted_order]):
        rows = listing([f"row {i + 1}: {str(wanted[i])!r} in the CSV, {str(stored_fids[i])!r} in the file"
                        for i in differ], show=3, sep="; ")
        raise TrinetError(f"{path}: the image paths stored with the embeddings are not those of {partner} "
                          f"({len(differ)} of {len(wanted)} rows differ; {rows}); were they embedded from "
                          "another CSV? Embed that CSV again.")
    order = np.empty(len(wanted), dtype=np.int64)
    order[wanted_order] = stored_order
    if warn:
        log.warning("%s: the rows are in another order than %s (%d of %d rows differ, first at row %d); "
                    "they are reordered by their stored image paths.", path, partner, len(differ),
                    len(wanted), differ[0] + 1)
    return order


#: The attribute holding the distance the embeddings are meant to be compared with (the run's test metric).
METRIC_ATTRIBUTE = "metric"


#: The attribute of an embedding file that holds the fingerprint of the model that wrote it
#: (`trinet.data.shards.fingerprint_arrays` of its weights).
MODEL_ATTRIBUTE = "model_fingerprint"


def read_attribute(path: str, key: str) -> str | None:
    """A text attribute of an HDF5 embedding file, or None where it is absent or empty."""
    with h5py.File(path, "r") as f:
        value = f.attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value) if value else None


def read_metric(path: str) -> str | None:
    """The metric stored with an embedding file by embed.py, or None (older files, other tools)."""
    return read_attribute(path, METRIC_ATTRIBUTE)


def read_strings(path: str, key: str) -> list[str] | None:
    """A string dataset of an embedding file (e.g. 'fids', 'augmentation_types'), or None if absent."""
    with h5py.File(path, "r") as f:
        if key not in f:
            return None
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in f[key][()]]


def read_integers(path: str, key: str) -> np.ndarray | None:
    """An integer dataset of an embedding file (e.g. a tracklet file's 'cameras'), or None if absent."""
    with h5py.File(path, "r") as f:
        if key not in f:
            return None
        return np.asarray(f[key][()], dtype=np.int64)


def read_local_embeddings(path: str, *, expected_rows: int, partner: str | None = None,
                          fids: Sequence[str] | np.ndarray | None = None, flag: str = "") -> np.ndarray:
    """Read and validate the `(N, S, D_l)` float32 local features (`emb_local`) of an HDF5 embedding file,
    in the order of `fids` as `read_embeddings` (call that first: it checks the file itself).

    Raises:
        TrinetError: the file has no `emb_local` (the message names the file and `flag`, the option that
            needs them), or it has the wrong shape or row count, or non-finite values.
    """
    with h5py.File(path, "r") as f:
        if LOCAL_KEY not in f:
            raise TrinetError(f"{path} has no local features (dataset {LOCAL_KEY!r}), which "
                              f"{flag or 'this'} needs: embed with a model trained with --local_branch, or "
                              f"leave it out. The file holds {sorted(f.keys())}.")
        local = f[LOCAL_KEY]
        if local.ndim != 3 or len(local) != expected_rows or 0 in local.shape:
            raise TrinetError(f"{path}: dataset {LOCAL_KEY!r} must be (N, S, D_l) with N = {expected_rows} "
                              f"(the rows of {partner or 'its dataset'}), found shape {local.shape}; embed "
                              "that CSV again.")
        values = np.asarray(local[()], dtype=np.float32)
    if not np.isfinite(values).all():
        raise TrinetError(f"{path}: {LOCAL_KEY} holds NaN or infinite values; the model that wrote them has "
                          "diverged or the file is damaged.")
    return _in_order(values, path, fids, partner, warn=False)  # read_embeddings warned of a reorder
