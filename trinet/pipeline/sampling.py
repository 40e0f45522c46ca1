"""Batch sampling: P x K batches (P identities per batch, K images each), or random batches.

As in the original: identities are shuffled once per pass ("epoch"), each pass uses the largest
multiple of P identities (a different random `n mod P` are left out each pass), and an identity with
fewer than K images repeats its images (each at most ceil(K / count) times), otherwise K distinct
images are drawn. Unlike the original, every batch is a pure function of `(seed, batch index)`, so a
resumed run continues the exact sequence of batches of an uninterrupted one.

`pk_camera` (`CameraPKSampler`) draws the K images of an identity across its cameras (the `camera` column of
the training CSV): its cameras in a random order, one image from each in turn, so a batch shows each identity
in min(K, its cameras) cameras, and repeats an image only when the identity has fewer than K.

`class_balanced` (`ClassBalancedSampler`) is for the proxy losses on many classes with few images: distinct
classes, one image each, every class once per pass.

`pk_clips` (`ClipPKSampler`) is video re-id's P x K x T: K tracklets of each identity (the `tracklet`
column), T frames of each, which training pools into one embedding per clip before the losses.

Rows found to be undecodable during training can be excluded (`excluded`): the identity codes (the
classifier's classes) stay those of the whole training set, and an identity without any image left
is no longer sampled.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import numpy as np

from trinet.core.errors import TrinetError


class PKSampler:
    """Rows of a dataset for P x K batches.

    Args:
        pids: `(N,)` identity of each dataset row.
        batch_p, batch_k: P and K.
        seed: the run's seed.
        excluded: dataset rows never to sample.
        columns: the dataset's metadata columns (`trinet.data.datasets.Dataset.columns()`), for the samplers
            that use them: `camera` (`CameraPKSampler`), `tracklet` and `frame` (`ClipPKSampler`).
    """

    #: Consecutive images of a batch that form one sample of the losses (T of `ClipPKSampler`).
    clip_length = 1
    #: Whether every sample of a batch has a positive (another of its identity) in the batch when K >= 2:
    #: what the triplet and pair-based losses need.
    positives = True

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 columns: Mapping[str, np.ndarray] | None = None):
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
        """Images per batch."""
        return self.batch_p * self.batch_k * self.clip_length

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, 0, epoch])
            self._epoch_cache = (epoch, rng.permutation(len(self._identities)))
        return self._epoch_cache[1]

    def batch_identities(self, index: int) -> np.ndarray:
        """`(P,)` the identities of batch `index` (indices into those still sampled): the epoch's shuffle,
        P at a time."""
        epoch, slot = divmod(index, self.batches_per_epoch)
        return self._epoch_order(epoch)[slot * self.batch_p:(slot + 1) * self.batch_p]

    def batch(self, index: int) -> np.ndarray:
        """`(P*K,)` int64 dataset rows of batch `index` (0-based), identity by identity."""
        identities = self.batch_identities(index)
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
        TrinetError: the training CSV has no camera column.
    """

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 columns: Mapping[str, np.ndarray] | None = None):
        cameras = (columns or {}).get("camera")
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
        identities = self.batch_identities(index)
        rng = np.random.default_rng([self.seed, 3, index])
        return np.concatenate([self.identity_rows(identity, rng) for identity in identities]).astype(np.int64)


class ClipPKSampler(PKSampler):
    """P x K x T batches for video re-id (`--sampler pk_clips`): P identities, K tracklets of each (the
    `tracklet` column), T frames of each tracklet (`clip_length`).

    An identity with fewer than K tracklets repeats them (each at most ceil(K / count) times), like
    `PKSampler`'s images. A clip's T frames are drawn without replacement from its tracklet and kept in frame
    order (the `frame` column, else CSV order; torchreid's `random` sampling); a tracklet of fewer than T
    frames repeats its frames. A batch is `(P*K*T,)` rows, identity by identity, clip by clip: training pools
    each run of T consecutive images into one embedding. Like `PKSampler`, a pure function of
    `(seed, batch index)`.

    Args:
        clip_length: T, the frames of each clip.

    Raises:
        TrinetError: the training CSV has no tracklet column.
    """

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 columns: Mapping[str, np.ndarray] | None = None, clip_length: int = 4):
        tracklets = (columns or {}).get("tracklet")
        if tracklets is None:
            raise TrinetError("--sampler pk_clips draws K tracklets of each identity, but the training CSV "
                              "has no tracklet column: start it with a header such as "
                              "`pid,path,camera,tracklet,frame` (the video converters of data/convert.py "
                              "write one), or use --sampler pk")
        if clip_length < 1:
            raise ValueError(f"clip_length must be at least 1. Received: clip_length={clip_length}")
        super().__init__(pids, batch_p, batch_k, seed, excluded)
        self.clip_length = clip_length
        tracklets = np.asarray(tracklets)
        if len(tracklets) != len(self.codes):
            raise ValueError(f"tracklets has {len(tracklets)} rows but pids {len(self.codes)}")
        frames = (columns or {}).get("frame")
        frames = np.zeros(len(tracklets), np.int64) if frames is None else np.asarray(frames)
        _, names = np.unique(tracklets, return_inverse=True)
        # The tracklets of each sampled identity: arrays of rows in frame order (ties: CSV order).
        self._clips: list[list[np.ndarray]] = []
        for own in self._rows:
            order = own[np.lexsort((own, frames[own], names[own]))]
            _, starts = np.unique(names[order], return_index=True)
            self._clips.append(np.split(order, np.sort(starts)[1:]))

    def batch(self, index: int) -> np.ndarray:
        """`(P*K*T,)` int64 dataset rows of batch `index` (0-based): identity by identity, clip by clip,
        each clip's frames in frame order."""
        identities = self.batch_identities(index)
        rng = np.random.default_rng([self.seed, 4, index])
        rows = []
        for identity in identities:
            clips = self._clips[identity]
            pool = np.tile(np.arange(len(clips)), -(-self.batch_k // len(clips)))
            for clip in pool[rng.permutation(len(pool))[:self.batch_k]]:
                frames = clips[clip]
                repeated = np.tile(np.arange(len(frames)), -(-self.clip_length // len(frames)))
                rows.append(frames[np.sort(repeated[rng.permutation(len(repeated))[:self.clip_length]])])
        return np.concatenate(rows).astype(np.int64)


class RandomSampler(PKSampler):
    """Batches of `batch_p * batch_k` rows drawn without replacement from a shuffled pass over the
    dataset (identities are not balanced: open-reid's identification training). Same interface as
    `PKSampler`; a pass uses the largest multiple of the batch size of rows."""

    positives = False

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 columns: Mapping[str, np.ndarray] | None = None):
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


class ClassBalancedSampler(PKSampler):
    """Batches of `batch_p * batch_k` distinct classes, one image of each (`--sampler class_balanced`): the
    classes are shuffled once per pass and every class is visited once per pass, whatever its number of
    images, so every proxy of a proxy loss is pulled equally often (with `random`, a class's share follows
    its images). Each visit draws one of the class's images uniformly. A pass uses the largest multiple of
    the batch size of classes; a batch is a pure function of `(seed, batch index)`, O(batch size) work.

    Raises:
        TrinetError: fewer classes than images in a batch.
    """

    positives = False

    def __init__(self, pids: np.ndarray, batch_p: int, batch_k: int, seed: int, excluded: Iterable[int] = (),
                 columns: Mapping[str, np.ndarray] | None = None):
        super().__init__(pids, 1, 1, seed, excluded)
        self.batch_p, self.batch_k = batch_p, batch_k
        classes = len(self._identities)
        if classes < self.batch_size:
            raise TrinetError(f"--sampler class_balanced puts --batch_p x --batch_k = {self.batch_size} "
                              f"distinct classes in a batch, but the training set has {classes}; use a "
                              "smaller batch, or --sampler random")
        self.batches_per_epoch = classes // self.batch_size
        self._flat = np.concatenate(self._rows).astype(np.int64)
        self._counts = np.array([len(r) for r in self._rows], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]]).astype(np.int64)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, 5, epoch])
            self._epoch_cache = (epoch, rng.permutation(len(self._identities)))
        return self._epoch_cache[1]

    def batch(self, index: int) -> np.ndarray:
        """`(P*K,)` int64 dataset rows of batch `index` (0-based), one per class."""
        epoch, slot = divmod(index, self.batches_per_epoch)
        classes = self._epoch_order(epoch)[slot * self.batch_size:(slot + 1) * self.batch_size]
        picks = np.random.default_rng([self.seed, 6, index]).integers(0, self._counts[classes])
        return self._flat[self._starts[classes] + picks]


#: Samplers by name (`--sampler`): `(pids, batch_p, batch_k, seed, excluded, columns) -> sampler`.
SAMPLERS: dict[str, type[PKSampler]] = {"pk": PKSampler, "pk_camera": CameraPKSampler,
                                        "pk_clips": ClipPKSampler, "random": RandomSampler,
                                        "class_balanced": ClassBalancedSampler}


def make_sampler(name: str, pids: np.ndarray, batch_p: int, batch_k: int, seed: int,
                 excluded: Iterable[int] = (), columns: Mapping[str, np.ndarray] | None = None,
                 clip_length: int = 4) -> PKSampler:
    """The sampler `name` of `SAMPLERS` (`clip_length`: T of `pk_clips`, unused by the others)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")
    if SAMPLERS[name] is ClipPKSampler:
        return ClipPKSampler(pids, batch_p, batch_k, seed, excluded, columns, clip_length=clip_length)
    return SAMPLERS[name](pids, batch_p, batch_k, seed, excluded, columns)


def element_seeds(seed: int, index: int, batch_size: int) -> np.ndarray:
    """`(B, 2)` int64 seeds of the stateless random augmentation of each image of batch `index`."""
    return np.stack([np.full(batch_size, seed, np.int64),
                     index * batch_size + np.arange(batch_size, dtype=np.int64)], axis=1)
