"""The one type of the embedding file writers: rows written block by block, the file published only when
complete (`trinet.core.fileio.AtomicTarget`)."""

from __future__ import annotations

import abc
import os
from typing import Self

import numpy as np

from trinet.core.fileio import AtomicTarget


class EmbeddingFileWriter(abc.ABC):
    """The common type of the embedding file writers: a context manager that writes rows block by block
    and publishes the file under `path` only when it is complete.

    On an exception in the with block, a failed write or close (a full disk) or a kill, nothing is left
    under `path` and an existing file there is kept; a failed write raises `WriteError` naming the file
    and the cause. A format implements `_open`, `write` and `_close`, and `_complete` if it marks a
    complete file.
    """

    path: str

    def __enter__(self) -> Self:
        self._target = AtomicTarget(self.path)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._open(self._target.tmp)
        except BaseException as e:
            failure = self._close(e) or e
            raise self._target.abort(failure) from None
        return self

    def __exit__(self, kind, value, traceback) -> None:
        failure = value if value is not None else self._complete()
        failure = self._close(failure)
        if failure is None:
            self._target.commit()
            return
        error = self._target.abort(failure)
        if error is not value:
            raise error from None  # a WriteError names the file and the cause
        # else the with statement raises `value`

    @abc.abstractmethod
    def write(self, emb: np.ndarray, emb_aug: np.ndarray | None = None,
              emb_local: np.ndarray | None = None) -> None:
        """Append rows: `emb` `(b, D)` and, where the format stores them, `emb_aug` `(M, b, D)` and the local
        features `emb_local` `(b, S, D_l)`."""

    @abc.abstractmethod
    def _open(self, tmp: str) -> None:
        """Create the file `tmp` (the temporary name of `path`) and start writing."""

    def _complete(self) -> BaseException | None:
        """After the last `write` without an exception: finish the file; returns what went wrong."""
        return None

    @abc.abstractmethod
    def _close(self, failure: BaseException | None) -> BaseException | None:
        """Close what `_open` opened (as far as it got); returns `failure`, or what went wrong first."""
