"""Validation identities held out of a training set, split into a query and a gallery by the test protocol.

A small dataset picks its checkpoint without looking at its test set: some identities (classes) of the
training set are set aside, their images split as the protocol of the `excluder` splits a test set, and the
rest is trained on.
- A camera excluder (`market1501`, `duke`, ...): each held-out identity gives one query image per camera
  (drawn at random), as Market-1501's query holds at most one image per identity and camera; its other images
  are the gallery. A query whose every match is ignored (its identity's other images are all from its own
  camera) is dropped.
- `none`: one query image per identity, the others in the gallery.
- `diagonal` (query set = gallery set, as Stanford Online Products): the query and the gallery are all the
  held-out images; each query ignores only itself.
Every identity of the training set (as the P x K sampler sees them) is a candidate, and only those that keep
at least one valid query are held out: junk (`-1`) images, which the camera protocols ignore in a gallery,
stay in the training set. The draw is a pure function of the seed and the rows, so a resumed run holds out
the same identities.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset
from trinet.evaluation.excluders import Names, get_excluder

#: The excluder whose protocol uses the same images as queries and gallery.
QUERY_IS_GALLERY = "diagonal"


@dataclasses.dataclass(frozen=True)
class HoldOut:
    """Row indices into the dataset that was split: `(T,)` training, `(Q,)` query, `(G,)` gallery rows, each
    in dataset order, and the held-out identities (sorted)."""

    train: np.ndarray
    query: np.ndarray
    gallery: np.ndarray
    identities: tuple[str, ...]


def _split_identity(rows: np.ndarray, keys: np.ndarray, ignored: np.ndarray, rng: np.random.Generator,
                    excluder: str) -> tuple[np.ndarray, np.ndarray]:
    """`(query rows, gallery rows)` of one identity's `(n,)` `rows`, whose exclusion `keys` are `(n,)` (a
    query ignores the gallery rows of its key; -1 ignores nothing) and `ignored` `(n,)` (ignored in any
    gallery). A query without a valid match stays in the gallery."""
    if excluder == QUERY_IS_GALLERY:
        return (rows, rows) if len(rows) > 1 and not ignored.all() else (rows[:0], rows)
    if (keys < 0).all():
        groups = [np.arange(len(rows))]
    else:
        groups = [np.flatnonzero(keys == k) for k in np.unique(keys)]
    picked = np.sort([group[rng.integers(len(group))] for group in groups])
    rest = np.setdiff1d(np.arange(len(rows)), picked)
    matches = rest[~ignored[rest]]
    valid = [i for i in picked if np.any((keys[matches] != keys[i]) | (keys[i] < 0))]
    return rows[valid], rows[np.setdiff1d(np.arange(len(rows)), valid)]


def hold_out(fids: Names, pids: Names, excluder: str, *, seed: int, identities: int | None = None,
             fraction: float | None = None, flag: str = "--val_identities",
             cameras: np.ndarray | None = None) -> HoldOut:
    """Hold out `identities` identities (or the `fraction` of them, at least 1) of the rows `(N,)` `fids` and
    `pids` as a validation query and gallery under `excluder` (see the module docstring); `(N,)` `cameras`
    (the `camera` column, or None) for the `camera` excluder.

    Raises:
        TrinetError: an unknown excluder, file names it cannot read, or too few identities that can be
            validated (the message names `flag` and how many there are); at least two identities must stay
            for training.
    """
    if (identities is None) == (fraction is None):
        raise ValueError("give one of identities and fraction")
    fids, pids = np.asarray(fids, dtype=str), np.asarray(pids, dtype=str)
    dataset = Dataset(pids, fids, "the training set",
                      cameras=None if cameras is None else np.asarray(cameras))
    try:
        exclusion = get_excluder(excluder)(dataset, dataset)
    except ValueError as e:
        raise TrinetError(f"{flag}: {e}") from None
    keys, ignored = exclusion.query_keys, exclusion.gallery_ignored
    rng = np.random.default_rng([seed, 19])
    names, coded = np.unique(pids, return_inverse=True)
    by_identity = np.split(np.argsort(coded, kind="stable"), np.cumsum(np.bincount(coded))[:-1])
    splits = {}
    for name, rows in zip(names, by_identity):  # rows in dataset order
        query, gallery = _split_identity(rows, keys[rows], ignored[rows], rng, excluder)
        if len(query):
            splits[str(name)] = (query, gallery)
    if identities is not None:
        wanted = identities
    else:
        assert fraction is not None
        wanted = max(1, round(fraction * len(names)))
    what = f"{flag} {identities if identities is not None else fraction}"
    if wanted > len(splits):
        raise TrinetError(f"{what}: only {len(splits)} of the {len(names)} training identities can be "
                          f"validated under the {excluder} protocol (an identity needs a query with a valid "
                          f"match: images from two cameras for a camera excluder, two images otherwise)")
    if len(names) - wanted < 2:
        raise TrinetError(f"{what}: {len(names)} training identities leave fewer than 2 for training")
    chosen = sorted(str(n) for n in rng.permutation(sorted(splits))[:wanted])
    query = np.sort(np.concatenate([splits[n][0] for n in chosen]))
    gallery = np.sort(np.concatenate([splits[n][1] for n in chosen]))
    held = np.isin(pids, chosen)
    return HoldOut(np.flatnonzero(~held), query, gallery, tuple(chosen))
