"""What every converter shares: the `Converter` record, the splits, the checks of a release folder's layout
(with a hint at the folder nearby that looks right), the scan of a folder of images against a release's
naming, and the reader of releases with one flat folder per split."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Sequence

from trinet.core.errors import TrinetError, listing
from trinet.data.naming import Naming

#: One CSV row: (pid, path relative to the image root).
Row = tuple[str, str]

#: The splits every converter returns, in the order they are written and printed.
SPLITS = ("train", "query", "test")

#: File names (compared in lower case) that archives and file browsers leave behind; always skipped.
CLUTTER_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})


def is_clutter(name: str) -> bool:
    """True for `Thumbs.db`, `desktop.ini` and hidden files (`.DS_Store`, macOS `._*` forks)."""
    return name.startswith(".") or name.lower() in CLUTTER_NAMES


@dataclasses.dataclass(frozen=True)
class RetrievalProtocol:
    """How the retrieval benchmarks of unseen classes evaluate a release (printed by the converter).

    Attributes:
        ks: the K of the Recall@K its papers report.
        query, gallery: the splits that are the queries and the gallery (the same split: query = gallery,
            each query leaving itself out with `excluder`).
        excluder: the `evaluate.py --excluder` of the protocol.
        reported: which metrics the papers report, with the papers.
    """

    ks: tuple[int, ...]
    query: str
    gallery: str
    excluder: str
    reported: str

    @property
    def metrics(self) -> str:
        """The `evaluate.py --metrics` value of the protocol."""
        return f"recall@{','.join(map(str, self.ks))} map_at_r r_precision" + (
            " nmi" if "NMI" in self.reported else "")

    def lines(self, written: Mapping[str, str]) -> list[str]:
        """What the converter prints: the protocol and the evaluate.py command (`written`: split -> CSV)."""
        query, gallery = written[self.query], written[self.gallery]
        if self.query == self.gallery:
            setting = f"query = gallery = {os.path.basename(query)}, each query leaving itself out"
            embeddings = "--query_embeddings EMB.h5 --gallery_embeddings EMB.h5"
            note = f"EMB.h5: embed.py on {os.path.basename(query)}"
        else:
            setting = f"query {os.path.basename(query)} against gallery {os.path.basename(gallery)}"
            embeddings = "--query_embeddings QUERY.h5 --gallery_embeddings GALLERY.h5"
            note = "QUERY.h5, GALLERY.h5: embed.py on each"
        return [f"Protocol (classes never seen in training): {setting}; the papers report {self.reported}.",
                f"  evaluate.py --excluder {self.excluder} --query_dataset {query} --gallery_dataset "
                f"{gallery} {embeddings} --metrics {self.metrics}   ({note})"]


@dataclasses.dataclass(frozen=True)
class Converter:
    """One release and how to read it.

    Attributes:
        name: the registry key (`python data/convert.py NAME ...`).
        title: the dataset's name for messages.
        release: what the folder to pass looks like (for messages).
        csv_names: split -> output file name, e.g. `{"train": "market1501_train.csv", ...}`.
        expected: split -> (rows, identities) of the official release; identities do not count the
            junk and distractor labels; None where a count is not known (not checked).
        labels: special identity labels -> `trinet.data.naming.JUNK` or `DISTRACTOR`.
        label_splits: the splits where the protocol has junk and distractor images.
        read: `read(release_dir) -> (rows per split, skipped clutter paths)`; raises TrinetError. With
            `trials`, `read(release_dir, trial)`.
        trials: the number of random train/test splits the protocol averages (`--trial 0` to
            `trials - 1`); 0 for a release with one fixed split. The CSV names then hold `{trial}`.
        excluder: the name of the release's evaluation protocol (`evaluate.py --excluder`), which reads
            persons and cameras from its file names.
        multi_query: the folder of the images that make the multi-query protocol's queries (Market-1501:
            `gt_bbox`), or None for a release without one.
        frame_info: for a video release, `path -> (camera, tracklet, frame)` of a frame (the CSV columns);
            None for a release of images (their camera comes from the naming of `excluder`).
        splits: the splits `read` returns and the converter writes, in order: `SPLITS` (re-id), or
            `("train", "test")` for a retrieval release whose test set is both query and gallery.
        protocol: the retrieval benchmark protocol of a release of unseen classes (printed); None for re-id.
    """

    name: str
    title: str
    release: str
    csv_names: Mapping[str, str]
    expected: Mapping[str, tuple[int | None, int | None]]
    labels: Mapping[str, str]
    label_splits: tuple[str, ...]
    read: Callable[..., tuple[dict[str, list[Row]], list[str]]]
    trials: int = 0
    excluder: str = "none"
    multi_query: str | None = None
    frame_info: Callable[[str], tuple[int, str, int]] | None = None
    splits: tuple[str, ...] = SPLITS
    protocol: RetrievalProtocol | None = None


def csv_names(prefix: str, splits: Sequence[str] = SPLITS) -> dict[str, str]:
    """`{split: "<prefix>_<split>.csv"}`."""
    return {split: f"{prefix}_{split}.csv" for split in splits}


def check_layout(root: str, folders: Sequence[str], files: Sequence[str], title: str, release: str,
                 looks_right: Callable[[str], bool]) -> None:
    """Raise a TrinetError naming what is missing from `root` unless it holds `folders` and `files`."""
    if not os.path.exists(root):
        raise TrinetError(f"Release folder {root} not found; expected the extracted {title} release "
                          f"({release})")
    if not os.path.isdir(root):
        raise TrinetError(f"{root} is a file, not a folder; extract the {title} release and pass the "
                          f"extracted folder ({release})")
    missing = [f + "/" for f in folders if not os.path.isdir(os.path.join(root, f))]
    missing += [f for f in files if not os.path.isfile(os.path.join(root, f))]
    if not missing:
        return
    expected = ", ".join([f + "/" for f in folders] + list(files))
    message = (f"{root} does not look like the extracted {title} release: missing {', '.join(missing)}. "
               f"Expected {release} with {expected}.")
    candidates = [os.path.dirname(os.path.abspath(root))]
    try:
        candidates += sorted(e.path for e in os.scandir(root) if e.is_dir() and not is_clutter(e.name))
    except OSError:
        pass
    found = [c for c in candidates if looks_right(c)]
    if found:
        message += f" Did you mean {found[0]}?"
    raise TrinetError(message)


def has_all(folders: Sequence[str], files: Sequence[str] = (), naming: Naming | None = None
            ) -> Callable[[str], bool]:
    """A test of whether a folder holds `folders` and `files` and, given `naming`, whether the first image
    of the first folder follows it (Market-1501 and DukeMTMC-reID share their layout)."""
    def looks_right(path: str) -> bool:
        if not (all(os.path.isdir(os.path.join(path, f)) for f in folders)
                and all(os.path.isfile(os.path.join(path, f)) for f in files)):
            return False
        if naming is None:
            return True
        try:
            with os.scandir(os.path.join(path, folders[0])) as entries:
                first = next((e.name for e in entries if not is_clutter(e.name)), None)
        except OSError:
            return False
        return first is not None and naming.match(first) is not None
    return looks_right


def scan_folder(root: str, folder: str, naming: Naming, title: str) -> tuple[list[Row], list[str]]:
    """The images of `root/folder` as rows `(pid, "folder/name")` sorted by path, and the clutter skipped.

    Raises:
        TrinetError: an entry does not follow `naming` (the message lists them and the pattern), or the
            folder holds no image.
    """
    directory = os.path.join(root, folder)
    rows: list[Row] = []
    skipped: list[str] = []
    bad: list[str] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        relative = f"{folder}/{entry.name}"
        if is_clutter(entry.name):
            skipped.append(relative)
            continue
        match = naming.match(naming.tail(relative)) if entry.is_file() else None
        if match is None:
            bad.append(entry.name + ("/" if entry.is_dir() else ""))
            continue
        rows.append((match["pid"], relative))
    if bad:
        raise TrinetError(f"{directory}: {len(bad)} file(s) do not follow the {title} naming "
                          f"{naming.describe()}: {listing(bad)}")
    if not rows:
        raise TrinetError(f"{directory}: no images; expected files named like {naming.example}")
    return rows, skipped


def folder_reader(folders: Mapping[str, str], naming: Naming, title: str, release: str
                  ) -> Callable[[str], tuple[dict[str, list[Row]], list[str]]]:
    """A `read` for releases with one flat folder of images per split (Market-1501 style).

    Args:
        folders: split -> folder relative to the release folder.
    """
    def read(root: str) -> tuple[dict[str, list[Row]], list[str]]:
        required = list(folders.values())
        check_layout(root, required, (), title, release, has_all(required, naming=naming))
        rows: dict[str, list[Row]] = {}
        skipped: list[str] = []
        for split, folder in folders.items():
            rows[split], clutter = scan_folder(root, folder, naming, title)
            skipped += clutter
        return rows, skipped
    return read


def folder_converter(name: str, title: str, release: str, csv_names: Mapping[str, str],
                     expected: Mapping[str, tuple[int, int]], folders: Mapping[str, str], naming: Naming,
                     labels: Mapping[str, str] | None = None, label_splits: tuple[str, ...] = (), *,
                     excluder: str, multi_query: str | None = None) -> Converter:
    """The `Converter` of a release with one flat folder of images per split (`folders`: split -> folder)."""
    return Converter(name, title, release, csv_names, expected, labels or {}, label_splits,
                     folder_reader(folders, naming, title, release), excluder=excluder,
                     multi_query=multi_query)
