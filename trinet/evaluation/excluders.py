"""Excluders: which gallery entries a query must ignore, from the official file names.

The multi-camera re-identification protocols (Market-1501, DukeMTMC-reID, MSMT17, CUHK03-NP) only
count a match found in *another* camera: gallery images of the query's person taken by the query's
camera are ignored, and so are junk images (person `-1`). Distractors (person `0000`) stay in the
ranking as negatives. For retrieval sets where query set = gallery set, `diagonal` ignores only the
query's own file: the protocol of CUB-200-2011, Cars196 and Stanford Online Products, whose test set is
queried against itself, each query leaving itself out (Song et al. 2016; `trinet.data.converters.retrieval`).
In-Shop's query and gallery are disjoint: `none`. The releases' naming is described in `trinet.data.naming`.

Each excluder is a function `(query paths, gallery paths) -> Exclusion` that parses the base names
once (the folders of a path are ignored, except VIPeR's camera folder `cam_a/` or `cam_b/`) and codes
persons and cameras as integers, so the mask of a block of queries is one integer comparison. The
cameras are kept in the `Exclusion` for the `cuhk03` CMC protocol (`trinet.evaluation.cmc`). The person and
camera come from the file name, as in the original triplet-reid; the CSV identities decide what is a match.

An excluder may be given `Dataset`s instead of file names. Then the release excluders check a `camera` column
against the cameras of the file names (a mismatch is an error naming the file and line), and the `camera`
excluder, which works for any naming, takes the persons from the CSV identities and the cameras from the
column.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Sequence

import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.data.datasets import Dataset
from trinet.data.naming import JUNK_PID, NAMINGS, Naming

#: How many offending file names an error message lists.
SHOW = 3

#: File names or identities: a sequence of strings, or a `(N,)` str array as `Dataset` holds them.
Names = Sequence[str] | np.ndarray


class KeyIndex:
    """The gallery grouped by an integer key, to list the `(query, gallery)` pairs whose keys are equal.

    Args:
        keys: `(G,)` integers; negative keys never pair.
    """

    def __init__(self, keys: np.ndarray):
        keys = np.asarray(keys, dtype=np.int64)
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def pairs(self, query_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(B,)` query keys -> `(P,)` query positions and `(P,)` gallery indices with equal keys.

        The pairs come ordered by query position, then gallery index.
        """
        query_keys = np.asarray(query_keys, dtype=np.int64)
        lo = np.searchsorted(self.sorted, query_keys, side="left")
        hi = np.searchsorted(self.sorted, query_keys, side="right")
        counts = np.where(query_keys >= 0, hi - lo, 0)
        total = int(counts.sum())
        rows = np.repeat(np.arange(len(query_keys)), counts)
        # Position within each query's run of equal keys, added to the start of that run.
        ends = np.cumsum(counts)
        within = np.arange(total) - np.repeat(ends - counts, counts)
        return rows, self.order[np.repeat(lo, counts) + within]


@dataclasses.dataclass(frozen=True, eq=False)
class Exclusion:
    """What each query ignores: gallery `j` for query `i` when `query_keys[i] == gallery_keys[j] >= 0`,
    and gallery `j` for every query when `gallery_ignored[j]`.

    Attributes:
        query_keys: `(Q,)` int64, -1 for "nothing by key".
        gallery_keys: `(G,)` int64.
        gallery_ignored: `(G,)` bool (junk).
        query_cameras, gallery_cameras: `(Q,)` and `(G,)` int64 camera codes (equal = same camera), from
            the excluders that read cameras from the file names; None for the others. The `cuhk03` CMC
            protocol (`trinet.evaluation.cmc`) needs them.
    """

    query_keys: np.ndarray
    gallery_keys: np.ndarray
    gallery_ignored: np.ndarray
    query_cameras: np.ndarray | None = None
    gallery_cameras: np.ndarray | None = None

    @classmethod
    def nothing(cls, num_queries: int, num_gallery: int) -> "Exclusion":
        """An exclusion that ignores nothing."""
        return cls(np.full(num_queries, -1, np.int64), np.full(num_gallery, -1, np.int64),
                   np.zeros(num_gallery, bool))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.query_keys), len(self.gallery_keys)

    def mask(self, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """`(B, G)` bool: true for the entries that the queries `rows` ignore."""
        keys = self.query_keys[rows]
        out = (keys[:, None] == self.gallery_keys[None, :]) & (keys[:, None] >= 0)
        out |= self.gallery_ignored[None, :]
        return out

    def pairs(self, rows: slice | np.ndarray = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """The key-excluded entries of the queries `rows` as `(P,)` row positions and gallery indices
        (entries of `gallery_ignored` columns are not listed)."""
        index = self.__dict__.get("_index")
        if index is None:
            index = KeyIndex(self.gallery_keys)
            object.__setattr__(self, "_index", index)
        return index.pairs(self.query_keys[rows])


@dataclasses.dataclass(frozen=True)
class NameRule:
    """How a dataset names its images: a regex over the base name (extension removed) with groups
    `pid` and `cam`, and an example; the naming (`trinet.data.naming.Naming`) says how many folders the
    name includes and what camera each `cam` text is."""

    dataset: str
    regex: str
    layout: str
    example: str
    naming: Naming | None = None

    def parse(self, paths: Names, role: str) -> tuple[np.ndarray, np.ndarray]:
        """`(N,)` paths -> `(N,)` int64 persons and cameras; TrinetError naming the first misfits."""
        pattern = re.compile(self.regex)
        persons = np.empty(len(paths), np.int64)
        cameras = np.empty(len(paths), np.int64)
        depth = self.naming.depth if self.naming else 0
        bad: list[str] = []
        for i, path in enumerate(paths):
            name = self.naming.tail(str(path)) if self.naming else os.path.basename(str(path))
            found = pattern.fullmatch(os.path.splitext(name)[0])
            camera = None if found is None else (
                self.naming.camera(found.group("cam")) if self.naming else int(found.group("cam")))
            if found is None or camera is None:
                bad.append(f"entry {i + 1}: {str(path)!r}")
                continue
            persons[i] = int(found.group("pid"))
            cameras[i] = camera
        if bad:
            seen = "the name without folder and extension" if depth == 0 else \
                f"the name with its last {depth} folder(s), without extension"
            raise TrinetError(
                f"{len(bad)} {role} file names do not follow the {self.dataset} naming {self.layout} "
                f"(e.g. {self.example}; regex {self.regex!r} on {seen}): "
                f"{listing(bad, SHOW, '; ')}. Pick the excluder of your dataset, or `diagonal` / `none`.")
        return persons, cameras


#: The naming of each camera-based dataset (official releases), from `trinet.data.naming`.
RULES = {name: NameRule(n.title, n.loose, n.template, n.example, n) for name, n in NAMINGS.items()}

#: The person id of junk images, ignored for every query.
JUNK = int(JUNK_PID)

#: The excluders that know each row's camera (the `cuhk03` CMC protocol needs them).
CAMERA_EXCLUDERS = (*RULES, "camera")


#: What an excluder takes for the query and for the gallery: file names, or a `Dataset`.
Rows = Names | Dataset

#: An excluder: `(query file names or dataset, gallery file names or dataset) -> Exclusion`.
Excluder = Callable[[Rows, Rows], Exclusion]


def file_names(rows: Rows) -> Names:
    """The file names of an excluder's argument."""
    return rows.fids if isinstance(rows, Dataset) else rows


def _person_camera_exclusion(q_person: np.ndarray, q_cam: np.ndarray, q_junk: np.ndarray,
                             g_person: np.ndarray, g_cam: np.ndarray, g_junk: np.ndarray) -> Exclusion:
    """Ignore the gallery entries of the query's person and camera, and junk; `(N,)` persons and cameras of
    any sortable dtype, junk as `(N,)` bool (a junk query ignores nothing by key)."""
    # One key per (person, camera): codes of the persons times the number of cameras, plus camera.
    persons, coded = np.unique(np.concatenate([q_person, g_person]), return_inverse=True)
    cams, cam_coded = np.unique(np.concatenate([q_cam, g_cam]), return_inverse=True)
    keys = coded.astype(np.int64) * len(cams) + cam_coded
    query_keys, gallery_keys = keys[:len(q_person)], keys[len(q_person):]
    query_keys = np.where(q_junk, -1, query_keys)
    cam_coded = cam_coded.astype(np.int64)
    return Exclusion(query_keys, gallery_keys, np.asarray(g_junk, bool), cam_coded[:len(q_cam)],
                     cam_coded[len(q_cam):])


def check_camera_column(rule: NameRule, dataset: Dataset, cameras: np.ndarray) -> None:
    """Raise a TrinetError unless the `camera` column of `dataset` (if any) equals the `(N,)` cameras its
    file names give by `rule`; the message names the file and line of the first rows that differ."""
    if dataset.cameras is None:
        return
    bad = np.flatnonzero(dataset.cameras != cameras)
    if len(bad):
        shown = [f"{dataset.where(i)}: camera {dataset.cameras[i]} but {str(dataset.fids[i])!r} is camera "
                 f"{cameras[i]}" for i in bad[:SHOW]]
        raise TrinetError(f"{len(bad)} rows of {dataset.source} have a camera column that differs from the "
                          f"{rule.dataset} file names: {'; '.join(shown)}. Fix the column, or use --excluder "
                          "camera to go by the column alone.")


def camera_excluder(rule: NameRule) -> Excluder:
    """An excluder that ignores same-person-same-camera gallery entries and junk, by `rule`."""

    def exclude(query: Rows, gallery: Rows) -> Exclusion:
        q_person, q_cam = rule.parse(file_names(query), "query")
        g_person, g_cam = rule.parse(file_names(gallery), "gallery")
        for rows, cams in ((query, q_cam), (gallery, g_cam)):
            if isinstance(rows, Dataset):
                check_camera_column(rule, rows, cams)
        return _person_camera_exclusion(q_person, q_cam, q_person == JUNK, g_person, g_cam, g_person == JUNK)

    exclude.__doc__ = (f"{rule.dataset}: ignore gallery images of the query's person and camera, and junk "
                       f"(person -1); names like {rule.example}.")
    exclude.__name__ = exclude.__qualname__ = rule.dataset
    return exclude


def camera(query: Rows, gallery: Rows) -> Exclusion:
    """Any naming: ignore gallery rows of the query's identity and `camera` column, and junk (identity -1);
    needs datasets with a `camera` column."""
    for role, rows in (("query", query), ("gallery", gallery)):
        if not isinstance(rows, Dataset) or rows.cameras is None:
            source = rows.source if isinstance(rows, Dataset) else "the file names"
            raise TrinetError(f"the camera excluder reads the `camera` column of the {role} CSV, but "
                              f"{source} has none: start the CSV with a header such as `pid,path,camera` "
                              "and give each row its camera (an integer), or pick an excluder that reads the "
                              "file names")
    assert isinstance(query, Dataset) and isinstance(gallery, Dataset)
    assert query.cameras is not None and gallery.cameras is not None
    return _person_camera_exclusion(query.pids, query.cameras, query.pids == JUNK_PID, gallery.pids,
                                    gallery.cameras, gallery.pids == JUNK_PID)


def diagonal(query: Rows, gallery: Rows) -> Exclusion:
    """Ignore only the query's own file (same path) in the gallery; for query set = gallery set (CUB-200-2011,
    Cars196, Stanford Online Products)."""
    query_fids, gallery_fids = file_names(query), file_names(gallery)
    names, coded = np.unique(np.concatenate([np.asarray(query_fids, dtype=str),
                                             np.asarray(gallery_fids, dtype=str)]), return_inverse=True)
    coded = coded.astype(np.int64)
    return Exclusion(coded[:len(query_fids)], coded[len(query_fids):], np.zeros(len(gallery_fids), bool))


def none(query: Rows, gallery: Rows) -> Exclusion:
    """Ignore nothing: every gallery entry is ranked."""
    return Exclusion.nothing(len(query), len(gallery))


#: The excluders by name: the one list of valid `--excluder` values.
EXCLUDERS: dict[str, Excluder] = {
    **{name: camera_excluder(rule) for name, rule in RULES.items()},
    "camera": camera,
    "diagonal": diagonal,
    "none": none,
}


def get_excluder(name: str) -> Excluder:
    """The excluder called `name`; ValueError listing the valid names if there is none."""
    try:
        return EXCLUDERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown excluder {name!r}; expected one of {sorted(EXCLUDERS)}") from None
