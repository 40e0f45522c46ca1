"""Combining training sets into one for combined-trainval training, identities kept apart.

Each source's identities get a prefix (`market1501/0002`, `duke/0005`) so that equal numbers of different
datasets stay different people, and its paths are re-rooted under one image root. Used by
`data/combine.py` (`trinet-combine`).

The metadata columns (`trinet.data.datasets.COLUMNS`) that every source has are kept: cameras and frames as
they are (a camera number is only compared within one identity, and identities are prefixed), tracklets
prefixed like the identities. A column that only some sources have is dropped, with a warning, and so is
the `query` column of multi-query evaluation files (paths of another CSV's images).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Iterable, Sequence

from trinet.core.errors import TrinetError, listing
from trinet.data.converters.layout import Row
from trinet.data.converters.registry import SplitStats, split_stats
from trinet.data.datasets import Dataset, image_path, read_csv
from trinet.data.naming import JUNK_PID

log = logging.getLogger(__name__)

#: What a source prefix may look like: it becomes part of every identity (`prefix/pid`).
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

#: Identities refused in a training set by default: Market-1501's junk label. `0000` is not refused by
#: default: it is Market-1501's distractor label but a real person in MSMT17's training set.
DEFAULT_JUNK_PIDS = (JUNK_PID,)


@dataclasses.dataclass(frozen=True)
class Source:
    """One training set to combine: identities get `prefix/`, images are at `image_root/path`."""

    prefix: str
    csv: str
    image_root: str


@dataclasses.dataclass(frozen=True)
class Combined:
    """The combined rows, the image root their paths are relative to, per-source stats, and the metadata
    columns kept (header name -> one value per row)."""

    rows: list[Row]
    image_root: str
    stats: dict[str, SplitStats]
    columns: dict[str, list] = dataclasses.field(default_factory=dict)


def _relative(path: str, root: str) -> str | None:
    """`path` relative to `root` with `/` separators, or None if it is not under `root`."""
    relative = os.path.relpath(path, root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
        return None
    return relative.replace(os.sep, "/")


def _check_prefixes(sources: Sequence[Source]) -> None:
    if not sources:
        raise TrinetError("Nothing to combine: give at least one source")
    prefixes = [s.prefix for s in sources]
    for prefix in prefixes:
        if not PREFIX_PATTERN.fullmatch(prefix):
            raise TrinetError(f"Bad source prefix {prefix!r}: use letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit")
    repeated = sorted({p for p in prefixes if prefixes.count(p) > 1})
    if repeated:
        raise TrinetError(f"Source prefix(es) {repeated} given more than once; each source needs its own "
                          "prefix to keep its identities apart")


def read_source(source: Source, junk_pids: Iterable[str] = DEFAULT_JUNK_PIDS) -> Dataset:
    """The dataset of one source's CSV (with its metadata columns), checked: no junk identity, every image
    exists.

    Paths stay relative to the source's image root.
    """
    if not os.path.isdir(source.image_root):
        raise TrinetError(f"Image root {source.image_root} of source {source.prefix!r} is not a directory")
    dataset = read_csv(source.csv, source.image_root)
    rows = list(zip(dataset.pids.tolist(), dataset.fids.tolist(), strict=True))
    junk = set(junk_pids)
    bad = [f"{pid},{fid}" for pid, fid in rows if pid in junk]
    if bad:
        raise TrinetError(f"{source.csv}: {len(bad)} row(s) with junk identities {sorted(junk)}, which a "
                          f"training set must not have: {listing(bad)}. Give the *_train.csv file of the "
                          "release.")
    missing = [fid for fid in dataset.fids.tolist() if not os.path.isfile(image_path(source.image_root, fid))]
    if missing:
        raise TrinetError(f"{source.csv}: {len(missing)} of {len(rows)} images not found under image root "
                          f"{source.image_root}: {listing(missing)}")
    return dataset


def _kept_columns(sources: Sequence[Source], datasets: Sequence[Dataset]) -> list[str]:
    """The metadata columns every source has; a warning names those that only some have. The `query`
    column (of a multi-query evaluation file: paths of another CSV's images) is dropped, with a warning."""
    have = [set(dataset.columns()) for dataset in datasets]
    with_query = [s.prefix for s, columns in zip(sources, have) if "query" in columns]
    if with_query:
        log.warning("The query column of source(s) %s is dropped: it names the query images of a multi-query "
                    "evaluation file (evaluate.py --multi_query_dataset), which a training set does not use.",
                    ", ".join(with_query))
        have = [columns - {"query"} for columns in have]
    every = set.intersection(*have) if have else set()
    for name in sorted(set.union(set(), *have) - every):
        lacking = [s.prefix for s, columns in zip(sources, have) if name not in columns]
        log.warning("The %s column is dropped: source(s) %s have none. Give every source the column to keep "
                    "it.", name, ", ".join(lacking))
    return [name for name in datasets[0].columns() if name in every] if datasets else []


def combine(sources: Sequence[Source], image_root: str | None = None,
            junk_pids: Iterable[str] = DEFAULT_JUNK_PIDS) -> Combined:
    """Merge training sets into one with identities kept apart (`prefix/pid`) under one image root.

    Args:
        sources: the sets to merge, in output order.
        image_root: the common root of the output paths; by default the deepest folder that holds
            every source's image root.
        junk_pids: identities that must not appear in a training set.

    Raises:
        TrinetError: no source, a bad or repeated prefix, a missing CSV or image root, a junk identity, an
            image that does not exist, an image outside `image_root`, or the same image in two sources.
    """
    _check_prefixes(sources)
    datasets = [read_source(source, junk_pids) for source in sources]
    source_rows = [list(zip(d.pids.tolist(), d.fids.tolist(), strict=True)) for d in datasets]
    kept = _kept_columns(sources, datasets)
    columns: dict[str, list] = {name: [] for name in kept}
    roots = [os.path.abspath(s.image_root) for s in sources]
    root = os.path.abspath(image_root) if image_root is not None else os.path.commonpath(roots)
    rows: list[Row] = []
    owner: dict[str, str] = {}
    for source, source_root, these, dataset in zip(sources, roots, source_rows, datasets, strict=True):
        for name in kept:
            values = dataset.columns()[name].tolist()
            columns[name] += [f"{source.prefix}/{v}" for v in values] if name == "tracklet" else values
        for pid, fid in these:
            relative = _relative(os.path.normpath(image_path(source_root, fid)), root)
            if relative is None:
                raise TrinetError(f"Image {fid} of source {source.prefix!r} is not under the common image "
                                  f"root {root}; pass an --image_root that holds every source's images")
            if relative in owner:
                raise TrinetError(f"Image {relative} is in both source {owner[relative]!r} and "
                                  f"{source.prefix!r}; a training set must not hold an image twice")
            owner[relative] = source.prefix
            rows.append((f"{source.prefix}/{pid}", relative))
    stats = {s.prefix: split_stats(these, {}) for s, these in zip(sources, source_rows, strict=True)}
    return Combined(rows, root, stats, columns)
