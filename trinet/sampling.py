"""P x K batch sampling: P identities per batch, K images each.

As in the original: identities are shuffled once per pass ("epoch"), each pass uses the largest
multiple of P identities (a different random `n mod P` are left out each pass), and an identity with
fewer than K images repeats its images (each at most ceil(K / count) times), otherwise K distinct
images are drawn. Unlike the original, every batch is a pure function of `(seed, batch index)`, so a
resumed run continues the exact sequence of batches of an uninterrupted one.
"""

from __future__ import annotations

import numpy as np

from trinet.errors import TrinetError


class PKSampler:
    """Rows of a dataset for P x K batches.

    Args:
        pids: `(N,)` identity of each dataset row.
        batch_p, batch_k: P and K.
        seed: the run's seed.
    """

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int):
        self.unique_pids, codes = np.unique(np.asarray(pids), return_inverse=True)
        if batch_p > len(self.unique_pids):
            raise TrinetError(f"--batch_p {batch_p} is larger than the number of identities in the "
                              f"training set ({len(self.unique_pids)}); use at most {len(self.unique_pids)}.")
        self.batch_p, self.batch_k, self.seed = batch_p, batch_k, seed
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(self.unique_pids))
        self._rows = np.split(order, np.cumsum(counts)[:-1])  # rows of each identity, in CSV order
        self.codes = codes.astype(np.int32)  # (N,) integer identity of each row
        self.batches_per_epoch = len(self.unique_pids) // batch_p
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    @property
    def batch_size(self) -> int:
        return self.batch_p * self.batch_k

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, 0, epoch])
            self._epoch_cache = (epoch, rng.permutation(len(self.unique_pids)))
        return self._epoch_cache[1]

    def batch(self, index: int) -> np.ndarray:
        """`(P*K,)` int64 dataset rows of batch `index` (0-based), identity by identity."""
        epoch, slot = divmod(index, self.batches_per_epoch)
        identities = self._epoch_order(epoch)[slot * self.batch_p:(slot + 1) * self.batch_p]
        rng = np.random.default_rng([self.seed, 1, index])
        rows = []
        for identity in identities:
            own = self._rows[identity]
            repeats = -(-self.batch_k // len(own))  # ceil(K / count)
            pool = np.tile(np.arange(len(own)), repeats)
            rows.append(own[pool[rng.permutation(len(pool))[:self.batch_k]]])
        return np.concatenate(rows).astype(np.int64)

    def batches(self, start: int, stop: int | None = None):
        """Yield `(index, rows)` for batch indices `start <= index < stop` (forever if stop is None)."""
        index = start
        while stop is None or index < stop:
            yield index, self.batch(index)
            index += 1


def element_seeds(seed: int, index: int, batch_size: int) -> np.ndarray:
    """`(B, 2)` int64 seeds of the stateless random augmentation of each image of batch `index`."""
    return np.stack([np.full(batch_size, seed, np.int64),
                     index * batch_size + np.arange(batch_size, dtype=np.int64)], axis=1)
