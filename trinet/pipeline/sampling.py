"""Batch sampling: P x K batches (P identities per batch, K images each), or random batches.

As in the original: identities are shuffled once per pass ("epoch"), each pass uses the largest
multiple of P identities (a different random `n mod P` are left out each pass), and an identity with
fewer than K images repeats its images (each at most ceil(K / count) times), otherwise K distinct
images are drawn. Unlike the original, every batch is a pure function of `(seed, batch index)`, so a
resumed run continues the exact sequence of batches of an uninterrupted one.

`pk_camera` (`CameraPKSampler`) draws the K images of an identity across its cameras (the `camera` column of
the training CSV): its cameras in a random order, one image from each in turn, so a batch shows each identity
in min(K, its cameras) cameras, and repeats an image only when the identity has fewer than K.

Rows found to be undecodable during training can be excluded (`excluded`): the identity codes (the
classifier's classes) stay those of the whole training set, and an identity without any image left
is no longer sampled.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from trinet.core.errors import TrinetError


class PKSampler:
    """Rows of a dataset for P x K batches.

    Args:
        pids: `(N,)` identity of each dataset row.
        batch_p, batch_k: P and K.
        seed: the run's seed.
        excluded: dataset rows never to sample.
        cameras: `(N,)` camera of each row (the `camera` column), or None; only `CameraPKSampler` uses it.
    """

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 cameras: np.ndarray | None = None):
        self.unique_pids, codes = np.unique(np.asarray(pids), return_inverse=True)
        self.batch_p, self.batch_k, self.seed = batch_p, batch_k, seed
        self.codes = codes.astype(np.int32)  # (N,) integer identity of each row
        self.excluded = frozenset(int(r) for r in excluded)
        keep = np.ones(len(codes), dtype=bool)
        keep[list(self.excluded)] = False
        order = np.argsort(codes, kind="stable")
        order = order[keep[order]]
        counts = np.bincount(codes[keep], minlength=len(self.unique_pids))
        rows = np.split(order, np.cumsum(counts)[:-1])  # rows of each identity, in CSV order
        self._identities = np.flatnonzero(counts)  # identity codes that still have images
        self._rows = [rows[i] for i in self._identities]
        if batch_p > len(self._identities):
            left = " left after excluding undecodable images" if self.excluded else ""
            count = len(self._identities)
            advice = (f"use --batch_p {count} or less" if count >= 2 else
                      "a batch needs at least 2 identities: add identities to the training set")
            raise TrinetError(f"--batch_p {batch_p} is larger than the number of identities{left} in the "
                              f"training set ({count}); {advice}.")
        self.batches_per_epoch = len(self._identities) // batch_p
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    @property
    def batch_size(self) -> int:
        return self.batch_p * self.batch_k

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, 0, epoch])
            self._epoch_cache = (epoch, rng.permutation(len(self._identities)))
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

    def batches(self, start: int, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield `(index, rows)` for batch indices `start <= index < stop` (forever if stop is None)."""
        index = start
        while stop is None or index < stop:
            yield index, self.batch(index)
            index += 1


class CameraPKSampler(PKSampler):
    """P x K batches whose K images of an identity are spread over its cameras (`--sampler pk_camera`).

    For each identity of a batch, the images of each of its cameras are shuffled, the cameras are put in a
    random order, and images are taken one camera at a time in turn (a camera whose images are used up is
    passed over) until K are taken; an identity with fewer than K images starts over with a new shuffle.
    Like `PKSampler` a batch is a pure function of `(seed, batch index)`.

    Raises:
        TrinetError: `cameras` is None (the training CSV has no camera column).
    """

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 cameras: np.ndarray | None = None):
        if cameras is None:
            raise TrinetError("--sampler pk_camera draws each identity's images across its cameras, but the "
                              "training CSV has no camera column: start it with a header such as "
                              "`pid,path,camera` (data/convert.py writes one), or use --sampler pk")
        super().__init__(pids, batch_p, batch_k, seed, excluded)
        self.cameras = np.asarray(cameras)
        if len(self.cameras) != len(self.codes):
            raise ValueError(f"cameras has {len(self.cameras)} rows but pids {len(self.codes)}")
        # The rows of each identity grouped by camera (cameras in sorted order, rows in CSV order).
        self._by_camera = []
        for own in self._rows:
            cams = self.cameras[own]
            self._by_camera.append([own[cams == c] for c in np.unique(cams)])

    def identity_rows(self, identity: int, rng: np.random.Generator) -> np.ndarray:
        """`(K,)` rows of the identity (an index into the identities still sampled), spread over cameras."""
        taken: list[int] = []
        while len(taken) < self.batch_k:
            groups = self._by_camera[identity]
            queues = [list(groups[c][rng.permutation(len(groups[c]))]) for c in rng.permutation(len(groups))]
            while any(queues) and len(taken) < self.batch_k:
                for queue in queues:
                    if queue and len(taken) < self.batch_k:
                        taken.append(queue.pop(0))
        return np.asarray(taken, np.int64)

    def batch(self, index: int) -> np.ndarray:
        """`(P*K,)` int64 dataset rows of batch `index` (0-based), identity by identity."""
        epoch, slot = divmod(index, self.batches_per_epoch)
        identities = self._epoch_order(epoch)[slot * self.batch_p:(slot + 1) * self.batch_p]
        rng = np.random.default_rng([self.seed, 3, index])
        return np.concatenate([self.identity_rows(identity, rng) for identity in identities]).astype(np.int64)


class RandomSampler(PKSampler):
    """Batches of `batch_p * batch_k` rows drawn without replacement from a shuffled pass over the
    dataset (identities are not balanced: open-reid's identification training). Same interface as
    `PKSampler`; a pass uses the largest multiple of the batch size of rows."""

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 cameras: np.ndarray | None = None):
        super().__init__(pids, 1, 1, seed, excluded)
        self.batch_p, self.batch_k = batch_p, batch_k
        self._available = np.sort(np.concatenate(self._rows)) if self._rows else np.zeros(0, np.int64)
        if len(self._available) < self.batch_size:
            raise TrinetError(f"The batch size --batch_p x --batch_k = {self.batch_size} is larger than the "
                              f"number of training images ({len(self._available)}).")
        self.batches_per_epoch = len(self._available) // self.batch_size

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, 2, epoch])
            self._epoch_cache = (epoch, self._available[rng.permutation(len(self._available))])
        return self._epoch_cache[1]

    def batch(self, index: int) -> np.ndarray:
        """`(P*K,)` int64 dataset rows of batch `index` (0-based)."""
        epoch, slot = divmod(index, self.batches_per_epoch)
        return self._epoch_order(epoch)[slot * self.batch_size:(slot + 1) * self.batch_size].astype(np.int64)


#: Samplers by name (`--sampler`): `(pids, batch_p, batch_k, seed, excluded, cameras=...) -> sampler`.
SAMPLERS: dict[str, type[PKSampler]] = {"pk": PKSampler, "pk_camera": CameraPKSampler,
                                        "random": RandomSampler}


def element_seeds(seed: int, index: int, batch_size: int) -> np.ndarray:
    """`(B, 2)` int64 seeds of the stateless random augmentation of each image of batch `index`."""
    return np.stack([np.full(batch_size, seed, np.int64),
                     index * batch_size + np.arange(batch_size, dtype=np.int64)], axis=1)
