"""Embedding a dataset in shards on several machines, and merging the shard files into one.

`embed.py --shard I/N` embeds the rows `shard_range(rows, I, N)` of a dataset: contiguous, balanced (sizes
differ by at most one row) and in order, so that shards 0..N-1 concatenated are the dataset. Each shard is
a normal HDF5 embedding file (see `trinet.data.embeddings`) plus the attributes of `shard_attributes`, all
named `shard_*`: its index and rows, the dataset's row count and fingerprint, the model's fingerprint and the
image sizes. `merge_shards` checks that N shards of the same dataset, model and settings are all there,
once each and complete, and streams them into the file that one process would have written (without the
`shard_*` attributes). numpy and h5py only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import path_problem
from trinet.core.progress import Progress
from trinet.data.embeddings.formats import open_writer
from trinet.data.embeddings.hdf5 import LOCAL_KEY, MODEL_ATTRIBUTE, ROWS_WRITTEN, read_strings

log = logging.getLogger(__name__)

#: The prefix of the bookkeeping attributes of a shard file; a merged file has none of them.
PREFIX = "shard_"
#: Attributes that differ from shard to shard.
OWN = ("shard_index", "shard_start", "shard_stop", ROWS_WRITTEN)
#: Attributes that may differ between machines: paths. The fingerprints check what they name.
PATHS = ("experiment_root", "checkpoint", "dataset")
#: Attributes whose difference is only reported.
WARN_ONLY = ("trinet_version",)
#: Rows copied at a time by `merge_shards` (memory: this many rows of every view).
BLOCK_ROWS = 4096


def shard_range(rows: int, index: int, count: int) -> tuple[int, int]:
    """`(start, stop)` of shard `index` of `count` over `rows` rows: contiguous and balanced, the shards
    in order cover `0..rows` exactly once (e.g. 10 rows in 3 shards: 0-3, 3-6, 6-10)."""
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in 0..{count - 1}. Received: index={index}")
    return index * rows // count, (index + 1) * rows // count


def check_shard(index: int, count: int, rows: int, source: str) -> tuple[int, int]:
    """`shard_range` of a dataset of `rows` rows read from `source`, refusing empty shards.

    Raises:
        TrinetError: more shards than rows (the message names `--shard` and the dataset).
    """
    if count > rows:
        raise TrinetError(f"--shard {index}/{count}: {source} has only {rows} rows; use at most {rows} "
                          "shards")
    return shard_range(rows, index, count)


def fingerprint_strings(values: Iterable[str]) -> str:
    """The SHA-256 (hex) of `values` in order, e.g. a dataset's fids; the count is part of it."""
    digest, count = hashlib.sha256(), 0
    for value in values:
        encoded = str(value).encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
        count += 1
    digest.update(count.to_bytes(8, "little"))
    return digest.hexdigest()


def fingerprint_arrays(arrays: Iterable[np.ndarray]) -> str:
    """The SHA-256 (hex) of arrays in order (their dtypes, shapes and bytes), e.g. a model's weights."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode("ascii"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def shard_attributes(index: int, count: int, fids: Sequence[str], *, model_fingerprint: str,
                     net_size: tuple[int, int], pre_crop_size: tuple[int, int]) -> dict[str, Any]:
    """The bookkeeping attributes of shard `index` of `count` of a dataset whose rows are `fids` (all of
    them, not only the shard's)."""
    start, stop = shard_range(len(fids), index, count)
    return {"shard_index": index, "shard_count": count, "shard_start": start, "shard_stop": stop,
            "shard_dataset_rows": len(fids), "shard_dataset_fingerprint": fingerprint_strings(fids),
            "shard_model_fingerprint": model_fingerprint,
            "shard_net_size": "%dx%d" % net_size, "shard_pre_crop_size": "%dx%d" % pre_crop_size}


@dataclasses.dataclass(frozen=True)
class Shard:
    """What `read_shard` found in a shard file: its attributes, row range, views and dimension."""

    path: str
    attrs: dict[str, Any]
    index: int
    count: int
    start: int
    stop: int
    augmentation_types: tuple[str, ...]
    dim: int
    local_shape: tuple[int, int] | None = None  # (S, D_l) of its emb_local, if it has one


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_shard(path: str, fids: Sequence[str], pids: Sequence[str] | None,
               fingerprint: str | None = None) -> Shard:
    """Read and check one shard file against the dataset rows `fids` (and `pids`, if it stores them);
    `fingerprint`: `fingerprint_strings(fids)`, if already known.

    Raises:
        TrinetError: the file is missing, not HDF5 or not a shard file, is incomplete (a row count or
            the mark of a complete write that does not match its range), or its range, row count,
            dataset fingerprint or image paths are not those of the dataset.
    """
    problem = path_problem(path, "file")
    if problem is not None:
        raise TrinetError(f"--merge: shard file {path} is {problem}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TrinetError(f"--merge: {path} is not a readable HDF5 file ({e}); was it copied completely?") \
            from None
    with f:
        attrs = {key: _plain(value) for key, value in f.attrs.items()}
        missing = [key for key in ("shard_index", "shard_count", "shard_start", "shard_stop",
                                   "shard_dataset_rows", "shard_dataset_fingerprint") if key not in attrs]
        if missing:
            raise TrinetError(f"--merge: {path} is not a shard file (it lacks the attributes "
                              f"{', '.join(missing)}); shard files are written by embed.py --shard I/N")
        index, count = int(attrs["shard_index"]), int(attrs["shard_count"])
        start, stop = int(attrs["shard_start"]), int(attrs["shard_stop"])
        rows = len(fids)
        fingerprint = fingerprint or fingerprint_strings(fids)
        if int(attrs["shard_dataset_rows"]) != rows or attrs["shard_dataset_fingerprint"] != fingerprint:
            raise TrinetError(f"--merge: {path} is a shard of another dataset ({attrs.get('dataset')}, "
                              f"{attrs['shard_dataset_rows']} rows) than --dataset ({rows} rows): the image "
                              "paths differ")
        if not 0 <= index < count or (start, stop) != shard_range(rows, index, count):
            valid = 0 <= index < count
            expected = "rows %d-%d" % shard_range(rows, index, count) if valid else "no shard"
            raise TrinetError(f"--merge: {path} says it is shard {index}/{count} of rows {start}-{stop}, but "
                              f"of {rows} rows that is {expected}; was it written by another version?")
        if "emb" not in f or f["emb"].ndim != 2:
            raise TrinetError(f"--merge: {path} has no 2-D dataset 'emb'; it holds {sorted(f.keys())}")
        found = f["emb"].shape[0]
        if found != stop - start or attrs.get(ROWS_WRITTEN) != stop - start:
            raise TrinetError(f"--merge: {path} (shard {index}/{count}) is incomplete: it should hold rows "
                              f"{start}-{stop} ({stop - start} rows) but holds {found} rows, "
                              f"{attrs.get(ROWS_WRITTEN, 'not marked')} written; embed that shard again")
        dim = int(f["emb"].shape[1])
        aug_shape = tuple(f["emb_aug"].shape) if "emb_aug" in f else None
        local = tuple(f[LOCAL_KEY].shape) if LOCAL_KEY in f else None
    if local is not None and (len(local) != 3 or local[0] != found):
        raise TrinetError(f"--merge: {path}: {LOCAL_KEY} has shape {local} but the file holds {found} rows")
    types = tuple(read_strings(path, "augmentation_types") or ("original_resize",))
    if aug_shape != ((len(types), found, dim) if len(types) > 1 else None):
        raise TrinetError(f"--merge: {path}: emb_aug has shape {aug_shape} but the file names {len(types)} "
                          f"views of {found} rows of dimension {dim}")
    stored_fids, stored_pids = read_strings(path, "fids"), read_strings(path, "pids")
    shard = Shard(path, attrs, index, count, start, stop, types, dim,
                  None if local is None else (int(local[1]), int(local[2])))
    if stored_fids is None or stored_fids != list(fids[start:stop]):
        raise TrinetError(f"--merge: {path} (shard {index}/{count}): its image paths are not rows "
                          f"{start}-{stop} of --dataset")
    if stored_pids is not None and pids is not None and stored_pids != list(pids[start:stop]):
        raise TrinetError(f"--merge: {path} (shard {index}/{count}): its identities (pids) are not those "
                          f"of rows {start}-{stop} of --dataset")
    return shard


def _settings(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes that must be equal in all shards."""
    return {key: value for key, value in attrs.items() if key not in OWN + PATHS + WARN_ONLY}


def order_shards(shards: Sequence[Shard]) -> list[Shard]:
    """`shards` sorted by index, after checking that they are the N shards of one embedding, once each.

    Raises:
        TrinetError: shard counts, views, dimensions or settings (model, aggregator, image sizes, ...)
            differ (the message names the attribute, both values and both files), or shards are missing
            or given twice (their indices and files are named).
    """
    first = shards[0]
    reference = _settings(first.attrs)
    for shard in shards[1:]:
        if shard.count != first.count:
            raise TrinetError(f"--merge: {first.path} is a shard of {first.count} but {shard.path} of "
                              f"{shard.count}; merge the shards of one --shard I/N split")
        if (shard.augmentation_types, shard.dim) != (first.augmentation_types, first.dim):
            raise TrinetError(f"--merge: the views or dimensions differ: {first.path} has "
                              f"{list(first.augmentation_types)} of dimension {first.dim}, {shard.path} "
                              f"{list(shard.augmentation_types)} of dimension {shard.dim}")
        settings = _settings(shard.attrs)
        for key in sorted(set(reference) | set(settings)):
            if reference.get(key, "<absent>") != settings.get(key, "<absent>"):
                model = key in ("shard_model_fingerprint", MODEL_ATTRIBUTE)  # the same, stored twice
                what = "model (its weights)" if model else f"attribute {key!r}"
                mine, theirs = reference.get(key, "<absent>"), settings.get(key, "<absent>")
                raise TrinetError(f"--merge: the shards differ in their {what}: {mine!r} in {first.path}, "
                                  f"{theirs!r} in {shard.path}; all shards must be embedded with the same "
                                  "model and settings")
        for key in WARN_ONLY:
            if first.attrs.get(key) != shard.attrs.get(key):
                log.warning("%s differs between the shards: %r in %s, %r in %s.", key, first.attrs.get(key),
                            first.path, shard.attrs.get(key), shard.path)
    by_index: dict[int, list[str]] = {}
    for shard in shards:
        by_index.setdefault(shard.index, []).append(shard.path)
    problems = [f"shard {index} is given {len(paths)} times ({', '.join(paths)})"
                for index, paths in sorted(by_index.items()) if len(paths) > 1]
    missing = [index for index in range(first.count) if index not in by_index]
    if missing:
        problems.append(f"{'shard' if len(missing) == 1 else 'shards'} {listing(missing, show=10)} of "
                        f"{first.count} {'is' if len(missing) == 1 else 'are'} missing")
    if problems:
        raise TrinetError(f"--merge: {'; '.join(problems)}; give each of the {first.count} shard files once")
    return sorted(shards, key=lambda shard: shard.index)


def merged_attributes(shard: Shard, dataset: str) -> dict[str, Any]:
    """The attributes of the merged file: those of a shard without the bookkeeping, `dataset` the
    merge's --dataset (an absolute path)."""
    attrs = {key: value for key, value in shard.attrs.items()
             if not key.startswith(PREFIX) and key != ROWS_WRITTEN}
    attrs["dataset"] = dataset
    return attrs


def merge_shards(paths: Sequence[str], fids: Sequence[str], pids: Sequence[str] | None, *, filename: str,
                 output_format: str, dataset: str, quiet: bool = False) -> tuple[int, int]:
    """Check the shard files `paths` against the dataset rows `fids`/`pids` and write their rows, shard
    by shard in blocks of `BLOCK_ROWS`, to `filename` in `output_format` (see `formats.EMBEDDING_FORMATS`),
    atomically. `dataset` is the dataset's path, stored as an attribute. Returns `(N, D)`.

    Raises:
        TrinetError: see `read_shard` and `order_shards`.
    """
    fids = list(fids)
    pids = None if pids is None else list(pids)
    fingerprint = fingerprint_strings(fids)
    shards = order_shards([read_shard(path, fids, pids, fingerprint) for path in paths])
    first = shards[0]
    other = next((shard for shard in shards if shard.local_shape != first.local_shape), None)
    if other is not None:
        raise TrinetError(f"--merge: {first.path} and {other.path} differ in their local features "
                          f"({LOCAL_KEY} of shape {first.local_shape} and {other.local_shape} per row); "
                          "embed every shard with the same model")
    writer = open_writer(output_format, filename, fids=fids, dim=first.dim,
                         augmentation_types=first.augmentation_types, pids=pids,
                         attrs=merged_attributes(first, dataset), local_shape=first.local_shape)
    with writer, Progress(len(fids), "Merging", "rows", quiet=quiet) as progress:
        for shard in shards:
            with h5py.File(shard.path, "r") as f:
                emb, aug = f["emb"], f["emb_aug"] if "emb_aug" in f else None
                local = f[LOCAL_KEY] if LOCAL_KEY in f else None
                for start in range(0, shard.stop - shard.start, BLOCK_ROWS):
                    stop = min(start + BLOCK_ROWS, shard.stop - shard.start)
                    writer.write(emb[start:stop], None if aug is None else aug[:, start:stop],
                                 None if local is None else local[start:stop])
                    progress.update(stop - start)
    return len(fids), first.dim
