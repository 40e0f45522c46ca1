"""Tracklets: the frames of one person walking past one camera, as the `tracklet` column of a dataset CSV
groups them (MARS, iLIDS-VID, PRID2011, DukeMTMC-VideoReID, or a tracker's output).

A tracklet's frames are ordered by the `frame` column where there is one (else by CSV order); `frame_choice`
picks N of them evenly spaced, as the video re-id systems embed a fixed number of frames per tracklet
(torchreid's `evenly`). `tracklet_dataset` is the dataset of one row per tracklet (its identity, camera and
first frame) that the excluders and the evaluation see. numpy only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset


@dataclasses.dataclass(frozen=True)
class Tracklets:
    """The tracklets of a dataset, in the order of their first row in the CSV.

    Attributes:
        names: `(T,)` str tracklet labels.
        rows: T arrays of the dataset rows of each tracklet, ordered by frame (ties and no frame column:
            CSV order).
    """

    names: np.ndarray
    rows: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.names)


def group_tracklets(dataset: Dataset, flag: str = "--pool_by tracklet") -> Tracklets:
    """The tracklets of `dataset` (see `Tracklets`).

    Raises:
        TrinetError: the dataset has no `tracklet` column (the message names `flag`, the option that needs
            it).
    """
    if dataset.tracklets is None:
        raise TrinetError(f"{flag} groups the rows of {dataset.source} by their `tracklet` column, but it "
                          "has none: start the CSV with a header such as `pid,path,camera,tracklet,frame` "
                          "(the video converters of data/convert.py write one)")
    names, first, codes = np.unique(dataset.tracklets, return_index=True, return_inverse=True)
    order_of_names = np.argsort(first, kind="stable")  # first appearance in the CSV
    rank = np.empty(len(names), np.int64)
    rank[order_of_names] = np.arange(len(names))
    codes = rank[codes.reshape(-1)]
    frames = dataset.frames if dataset.frames is not None else np.zeros(len(dataset), np.int64)
    order = np.lexsort((np.arange(len(dataset)), frames, codes))
    counts = np.bincount(codes, minlength=len(names))
    rows = np.split(order, np.cumsum(counts)[:-1])
    return Tracklets(names[order_of_names], rows)


def frame_choice(count: int, wanted: int | None) -> np.ndarray:
    """The positions of `wanted` frames evenly spaced over a tracklet of `count` (the middle of each of
    `wanted` equal parts); all frames when `wanted` is None or not smaller than `count`."""
    if wanted is None or wanted >= count:
        return np.arange(count)
    return ((np.arange(wanted) + 0.5) * count / wanted).astype(np.int64)


def tracklet_dataset(dataset: Dataset, tracklets: Tracklets) -> Dataset:
    """One row per tracklet: its identity, its first frame's path, its camera (with a camera column) and its
    name in `tracklets`, `lines` the line of its first frame."""
    first = np.array([rows[0] for rows in tracklets.rows], np.int64)
    return Dataset(dataset.pids[first], dataset.fids[first], dataset.source, dataset.image_root,
                   cameras=None if dataset.cameras is None else dataset.cameras[first],
                   tracklets=tracklets.names,
                   lines=None if dataset.lines is None else dataset.lines[first])
