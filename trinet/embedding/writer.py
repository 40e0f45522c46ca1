"""The embedding files of embed.py: a list of images embedded by an `Embedder` and written block by block to
an HDF5 or CSV file (`trinet.data.embeddings`), with a progress line; or the frames of tracklets embedded and
pooled into one embedding per tracklet (`embed_tracklets_to_file`, embed.py --pool_by tracklet)."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from trinet.core.pooling import RunningPool
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset
from trinet.data.embeddings.formats import open_writer
from trinet.data.tracklets import Tracklets, frame_choice
from trinet.embedding.embedder import Embedder
from trinet.pipeline.views import NO_SCALES

log = logging.getLogger("trinet.embed")


def embed_to_file(embedder: Embedder, paths: list[str], fids: list[str], pids: list[str] | None, *,
                  filename: str, output_format: str, aggregator: str | None, batch_size: int, threads: int,
                  flip: bool, crop_mode: str | None, attrs: dict, quiet: bool = False,
                  jit_compile: bool = False, scales: Sequence[float] = NO_SCALES,
                  cameras: np.ndarray | None = None) -> tuple[int, int]:
    """Embed `paths` with `embedder` (as `Embedder.embed`) and write `filename` in `output_format` (see
    `formats.EMBEDDING_FORMATS`; HDF5 also stores the local features of a model with the local branch as
    `emb_local`); returns `(N, D)`. `jit_compile`: compile the model with XLA (see
    `embed_batches`); `scales`, `cameras`: see `Embedder.embed`."""
    names = embedder.view_names(flip, crop_mode, aggregator, scales)
    if embedder.local_shape is not None and output_format != "h5":
        log.warning("The model has local features (--local_branch); --output_format %s stores only the "
                    "embeddings (HDF5 stores the local features as emb_local).", output_format)
    writer = open_writer(output_format, filename, fids=fids, dim=embedder.dim, augmentation_types=names,
                         pids=pids, attrs=attrs, local_shape=embedder.local_shape)
    blocks = embedder.blocks_with_local(paths, flip=flip, crops=crop_mode, aggregator=aggregator,
                                        batch_size=batch_size, threads=threads, jit_compile=jit_compile,
                                        scales=scales, cameras=cameras)
    with writer, Progress(len(paths), "Embedding", "img", quiet=quiet) as progress:
        for emb, emb_aug, local in blocks:
            writer.write(emb, emb_aug, local)
            progress.update(emb_aug.shape[1])
    return len(paths), embedder.dim


#: How many pooled tracklets are kept before they are written.
TRACKLET_BUFFER = 256


class _Pools:
    """The running pools of the tracklet being embedded: its embedding, views and local features."""

    def __init__(self, how: str, local: bool):
        self.emb, self.aug = RunningPool(how), RunningPool(how)
        self.local = RunningPool(how) if local else None

    def add(self, emb: np.ndarray, emb_aug: np.ndarray, local: np.ndarray | None) -> None:
        self.emb.add(emb)
        self.aug.add(np.swapaxes(emb_aug, 0, 1))  # (b, M, D)
        if self.local is not None and local is not None:
            self.local.add(local)

    def results(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return (self.emb.result(), self.aug.result(),
                None if self.local is None else self.local.result())


def embed_tracklets_to_file(embedder: Embedder, paths: list[str], tracklets: Tracklets, rows: Dataset, *,
                            how: str, frames_per_tracklet: int | None, filename: str, aggregator: str | None,
                            batch_size: int, threads: int, flip: bool, crop_mode: str | None, attrs: dict,
                            quiet: bool = False, jit_compile: bool = False,
                            scales: Sequence[float] = NO_SCALES) -> tuple[int, int, int]:
    """Embed the frames of each tracklet (all, or `frames_per_tracklet` evenly spaced) and write one
    embedding per tracklet, pooled by `how` (`trinet.core.pooling.TEMPORAL_POOLINGS`), to the HDF5 file
    `filename`: `emb` `(T, D)`, `tracklets` (the names), per-tracklet `pids`, `fids` (the first frame),
    `cameras` (where `rows` has them) and `frame_counts` (the frames pooled), and `emb_aug`/`emb_local` pooled
    alike.

    Memory is bounded by the batch and `TRACKLET_BUFFER` pooled rows, whatever a tracklet's length: frames are
    pooled as they come out of the network (the tracklets' frames are contiguous in the stream).

    Args:
        paths: the `(N,)` image paths of the frames' dataset; `tracklets` groups its rows.
        rows: one row per tracklet (`trinet.data.tracklets.tracklet_dataset`).

    Returns:
        `(T, frames embedded, D)`.
    """
    names = embedder.view_names(flip, crop_mode, aggregator, scales)
    chosen = [own[frame_choice(len(own), frames_per_tracklet)] for own in tracklets.rows]
    counts = np.array([len(c) for c in chosen], np.int64)
    frames = np.concatenate(chosen)
    owners = np.repeat(np.arange(len(chosen)), counts)
    extra: dict[str, Any] = {"tracklets": rows.tracklets if rows.tracklets is not None else tracklets.names,
                             "frame_counts": counts}
    if rows.cameras is not None:
        extra["cameras"] = rows.cameras
    writer = open_writer("h5", filename, fids=list(rows.fids), dim=embedder.dim, augmentation_types=names,
                         pids=list(rows.pids), attrs=attrs, local_shape=embedder.local_shape, extra=extra)
    blocks = embedder.blocks_with_local([paths[i] for i in frames], flip=flip, crops=crop_mode,
                                        aggregator=aggregator, batch_size=batch_size, threads=threads,
                                        jit_compile=jit_compile, scales=scales)
    local = embedder.local_shape is not None
    buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

    def flush() -> None:
        if buffer:
            emb = np.stack([b[0] for b in buffer])
            aug = np.stack([b[1] for b in buffer], axis=1)  # (M, t, D)
            loc = np.stack([b[2] for b in buffer if b[2] is not None]) if local else None
            writer.write(emb, aug, loc)
            buffer.clear()

    position, current, pools = 0, 0, _Pools(how, local)
    with writer, Progress(len(frames), "Embedding tracklets", "frames", quiet=quiet) as progress:
        for emb, emb_aug, emb_local in blocks:
            block_owners = owners[position:position + len(emb)]
            for owner in np.unique(block_owners):
                if owner != current:  # the previous tracklet is complete
                    buffer.append(pools.results())
                    if len(buffer) >= TRACKLET_BUFFER:
                        flush()
                    current, pools = int(owner), _Pools(how, local)
                part = block_owners == owner
                pools.add(emb[part], emb_aug[:, part], None if emb_local is None else emb_local[part])
            position += len(emb)
            progress.update(len(emb))
        if position:
            buffer.append(pools.results())
        flush()
    return len(chosen), len(frames), embedder.dim
