"""The CSV embedding file: `path,v1,...,vD` lines, the format of the paper's trinet_embed.py."""

from __future__ import annotations

from typing import IO, Sequence

import numpy as np

from trinet.data.embeddings.writer import EmbeddingFileWriter


class CsvWriter(EmbeddingFileWriter):
    """Write `path,v1,...,vD` lines (the format of the paper's trinet_embed.py), one per row of `fids`,
    atomically (see `EmbeddingFileWriter`); `emb_aug`, the local features and the settings are not stored."""

    def __init__(self, path: str, fids: Sequence[str]):
        self.path, self.fids, self.written = path, fids, 0
        self._file: IO[str] | None = None

    def _open(self, tmp: str) -> None:
        self._file = open(tmp, "w", encoding="utf-8")

    def write(self, emb: np.ndarray, emb_aug: np.ndarray | None = None,
              emb_local: np.ndarray | None = None) -> None:
        if self._file is None:
            raise RuntimeError(f"{self.path}: the writer is not open; use it in a with statement")
        for fid, row in zip(self.fids[self.written:self.written + len(emb)], emb):
            self._file.write(fid + "," + ",".join(f"{v:.9g}" for v in row) + "\n")
        self.written += len(emb)

    def _close(self, failure: BaseException | None) -> BaseException | None:
        if self._file is not None:
            try:
                self._file.close()  # writes what is buffered: a full disk often shows only here
            except OSError as e:
                failure = failure or e
        return failure
