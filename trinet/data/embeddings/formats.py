"""The embedding file formats (`embed.py --output_format`) and `open_writer`, which makes a writer of one."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from trinet.data.embeddings.csvfile import CsvWriter
from trinet.data.embeddings.hdf5 import EmbeddingWriter
from trinet.data.embeddings.writer import EmbeddingFileWriter


def _hdf5_writer(path: str, *, fids: Sequence[str], dim: int, augmentation_types: Sequence[str],
                 pids: Sequence[str] | None, attrs: Mapping[str, Any] | None,
                 local_shape: tuple[int, int] | None = None,
                 extra: Mapping[str, Sequence[Any]] | None = None) -> EmbeddingFileWriter:
    return EmbeddingWriter(path, len(fids), dim, augmentation_types=augmentation_types, pids=pids,
                           fids=fids, attrs=attrs, local_shape=local_shape, extra=extra)


def _csv_writer(path: str, *, fids: Sequence[str], **_) -> EmbeddingFileWriter:
    return CsvWriter(path, fids)


#: The embedding file formats (`embed.py --output_format`): name -> writer constructor.
EMBEDDING_FORMATS: dict[str, Callable[..., EmbeddingFileWriter]] = {"h5": _hdf5_writer, "csv": _csv_writer}


def open_writer(output_format: str, path: str, *, fids: Sequence[str], dim: int,
                augmentation_types: Sequence[str] = ("original_resize",), pids: Sequence[str] | None = None,
                attrs: Mapping[str, Any] | None = None,
                local_shape: tuple[int, int] | None = None,
                extra: Mapping[str, Sequence[Any]] | None = None) -> EmbeddingFileWriter:
    """A writer of an embedding file in `output_format` (see `EMBEDDING_FORMATS`), to use as a context
    manager: one row per image path of `fids`, of D = `dim` values.

    Args:
        augmentation_types: the M view names (HDF5 stores `emb_aug` when M > 1).
        pids: `(N,)` identities of the rows, stored by HDF5.
        attrs: settings, stored by HDF5 as attributes.
        local_shape: `(S, D_l)` of the local features that HDF5 stores as `emb_local` (CSV does not).
        extra: more `(N,)` datasets that HDF5 stores (a tracklet file's `tracklets`, `cameras`, ...); only
            HDF5 takes them.

    Raises:
        ValueError: an unknown format (the message lists the valid ones).
    """
    if output_format not in EMBEDDING_FORMATS:
        raise ValueError(f"Unknown embedding file format {output_format!r}; expected one of "
                         f"{sorted(EMBEDDING_FORMATS)}")
    if extra and output_format != "h5":
        raise ValueError(f"--output_format {output_format} stores no {', '.join(extra)}; use h5")
    kwargs = {"extra": extra} if extra else {}
    return EMBEDDING_FORMATS[output_format](path, fids=fids, dim=dim, augmentation_types=augmentation_types,
                                            pids=pids, attrs=attrs, local_shape=local_shape, **kwargs)
