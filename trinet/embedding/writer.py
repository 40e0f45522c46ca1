"""The embedding files of embed.py: a list of images embedded by an `Embedder` and written block by block to
an HDF5 or CSV file (`trinet.data.embeddings`), with a progress line."""

from __future__ import annotations

import logging
from typing import Sequence

from trinet.core.progress import Progress
from trinet.data.embeddings.formats import open_writer
from trinet.embedding.embedder import Embedder
from trinet.pipeline.views import NO_SCALES

log = logging.getLogger("trinet.embed")


def embed_to_file(embedder: Embedder, paths: list[str], fids: list[str], pids: list[str] | None, *,
                  filename: str, output_format: str, aggregator: str | None, batch_size: int, threads: int,
                  flip: bool, crop_mode: str | None, attrs: dict, quiet: bool = False,
                  jit_compile: bool = False, scales: Sequence[float] = NO_SCALES) -> tuple[int, int]:
    """Embed `paths` with `embedder` (as `Embedder.embed`) and write `filename` in `output_format` (see
    `formats.EMBEDDING_FORMATS`; HDF5 also stores the local features of a model with the local branch as
    `emb_local`); returns `(N, D)`. `jit_compile`: compile the model with XLA (see
    `embed_batches`); `scales`: see `Embedder.embed`."""
    names = embedder.view_names(flip, crop_mode, aggregator, scales)
    if embedder.local_shape is not None and output_format != "h5":
        log.warning("The model has local features (--local_branch); --output_format %s stores only the "
                    "embeddings (HDF5 stores the local features as emb_local).", output_format)
    writer = open_writer(output_format, filename, fids=fids, dim=embedder.dim, augmentation_types=names,
                         pids=pids, attrs=attrs, local_shape=embedder.local_shape)
    blocks = embedder.blocks_with_local(paths, flip=flip, crops=crop_mode, aggregator=aggregator,
                                        batch_size=batch_size, threads=threads, jit_compile=jit_compile,
                                        scales=scales)
    with writer, Progress(len(paths), "Embedding", "img", quiet=quiet) as progress:
        for emb, emb_aug, local in blocks:
            writer.write(emb, emb_aug, local)
            progress.update(emb_aug.shape[1])
    return len(paths), embedder.dim
