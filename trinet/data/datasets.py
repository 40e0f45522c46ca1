"""Datasets: a CSV of ``pid,relative/path`` rows plus an image root.

The format of the original triplet-reid code: one image per line, no header, identities kept as strings
(``0002``, ``-1``), paths relative to ``--image_root``. Unlike the original (``np.genfromtxt``) the file is
parsed with the csv module, so quoted paths may contain commas. Everything here is validated before any long
work starts.

A file may start with a header naming its columns, in any order: ``pid`` and ``path``, and optionally the
metadata columns (`COLUMNS`) ``camera`` (an integer >= 0: which camera took the image), ``tracklet`` (a
label: the rows of one tracklet are the frames of one walk past one camera), ``frame`` (an integer that
orders a tracklet's frames) and ``query`` (in a multi-query file: the query image a row pools into). Without
a header a row is ``pid,path``, as always.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from typing import Iterable, Mapping

import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import path_problem

log = logging.getLogger(__name__)

#: The header line of a dataset CSV without metadata (optional).
HEADER = ("pid", "path")

#: The columns a header may name besides `HEADER`, with what each holds (for messages and the docs).
COLUMNS = {
    "camera": "an integer >= 0, the camera that took the image",
    "tracklet": "a label, the same for the frames of one tracklet (one person, one camera)",
    "frame": "an integer, the order of the frames of a tracklet",
    "query": "the path of the query image that the row pools into (multi-query files)",
}

#: The metadata columns whose values are integers.
INTEGER_COLUMNS = ("camera", "frame")

#: Leading bytes of the image formats that TensorFlow and OpenCV both decode.
IMAGE_SIGNATURES = {
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG\r\n\x1a\n": "png",
    b"BM": "bmp",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A list of images with (optional) identities.

    Attributes:
        pids: `(N,)` str, the identity of each row (empty strings for a plain image list).
        fids: `(N,)` str, image paths relative to `image_root` (or absolute).
        source: the file the rows came from (for messages).
        image_root: the folder the paths are relative to, or None if not known.
        cameras: `(N,)` int64 camera of each row (the `camera` column), or None without one.
        tracklets: `(N,)` str tracklet label of each row (the `tracklet` column), or None.
        frames: `(N,)` int64 frame number of each row (the `frame` column), or None.
        queries: `(N,)` str, the query image each row pools into (the `query` column), or None.
        lines: `(N,)` int64 line number of each row in `source` (for messages), or None.
    """

    pids: np.ndarray
    fids: np.ndarray
    source: str = "<memory>"
    image_root: str | None = None
    cameras: np.ndarray | None = None
    tracklets: np.ndarray | None = None
    frames: np.ndarray | None = None
    queries: np.ndarray | None = None
    lines: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.fids)

    def columns(self) -> dict[str, np.ndarray]:
        """The metadata columns the dataset has, by header name (`COLUMNS` order)."""
        values = {"camera": self.cameras, "tracklet": self.tracklets, "frame": self.frames,
                  "query": self.queries}
        return {name: column for name, column in values.items() if column is not None}

    def where(self, row: int) -> str:
        """`file:line` of row `row` (0-based), or `file, row N` when the lines are not known."""
        if self.lines is not None:
            return f"{self.source}:{int(self.lines[row])}"
        return f"{self.source}, row {row + 1}"

    def paths(self) -> list[str]:
        """Full image paths (`image_root` joined with each row's path)."""
        return [image_path(self.image_root, fid) for fid in self.fids]

    def subset(self, keep: np.ndarray) -> "Dataset":
        """The rows where the boolean `(N,)` mask (or index array) `keep` selects."""
        def take(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[keep]

        return dataclasses.replace(self, pids=self.pids[keep], fids=self.fids[keep],
                                   cameras=take(self.cameras), tracklets=take(self.tracklets),
                                   frames=take(self.frames), queries=take(self.queries),
                                   lines=take(self.lines))


def image_path(image_root: str | None, fid: str) -> str:
    """The path of image `fid` under `image_root` (absolute fids are kept as they are)."""
    return fid if image_root is None else os.path.join(image_root, fid)


def _open_text(path: str):
    problem = path_problem(path, "file")
    if problem == "not found":
        raise TrinetError(f"Dataset file not found: {path}")
    if problem is not None:
        raise TrinetError(f"Dataset path {path} is {problem}; expected a CSV file of `pid,path` rows")
    # utf-8-sig: a byte-order mark written by spreadsheet programs is not part of the first pid.
    return open(path, newline="", encoding="utf-8-sig")


def _decode_error(path: str, error: UnicodeDecodeError) -> TrinetError:
    """The message for a file that is not UTF-8: the line and column of the first bad byte.

    (The error's own offset counts from the start of the block being decoded, not of the file.)
    """
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                near = line[max(0, e.start - 20):e.start + 20].rstrip(b"\r\n")
                return TrinetError(f"{path}:{number}: not a UTF-8 text file ({e.reason} at byte "
                                   f"{e.start + 1} of line {number}, near {near!r}); save it as UTF-8.")
    return TrinetError(f"{path}: not a UTF-8 text file ({error.reason})")


def _text_rows(path: str) -> Iterable[tuple[int, list[str]]]:
    """Yield (line number, fields) of the non-blank rows of a CSV file."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            for row in reader:
                if not row or all(not field.strip() for field in row):
                    continue
                yield reader.line_num, [field.strip() for field in row]
        except UnicodeDecodeError as e:
            raise _decode_error(path, e) from None
        except csv.Error as e:
            raise TrinetError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None


def _header(path: str, number: int, row: list[str]) -> tuple[str, ...] | None:
    """The column names of a header row, or None if `row` is a data row.

    A first row is a header when it names `pid` and `path` (in any case and order) or any metadata column;
    then every name must be known and given once.
    """
    names = tuple(field.lower() for field in row)
    known = set(HEADER) | set(COLUMNS)
    if not (set(HEADER) <= set(names) or set(names) & set(COLUMNS)):
        return None
    unknown = [name for name in names if name not in known]
    if unknown:
        raise TrinetError(f"{path}:{number}: unknown column(s) {', '.join(map(repr, unknown))} in the header "
                          f"{','.join(row)!r}; expected pid, path and any of {', '.join(COLUMNS)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise TrinetError(f"{path}:{number}: column(s) {', '.join(twice)} named twice in the header "
                          f"{','.join(row)!r}")
    lacking = [name for name in HEADER if name not in names]
    if lacking:
        raise TrinetError(f"{path}:{number}: the header {','.join(row)!r} names no {' or '.join(lacking)} "
                          f"column; a header names pid, path and any of {', '.join(COLUMNS)}")
    return names


def _integer(path: str, number: int, column: str, text: str) -> int:
    """The value of an integer column; TrinetError naming the file, line and column otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or (column == "camera" and value < 0):
        raise TrinetError(f"{path}:{number}: {column} {text!r} is not {COLUMNS[column].split(',')[0]}")
    return value


def read_csv(path: str, image_root: str | None = None) -> Dataset:
    """Parse a dataset CSV of `pid,path` rows, or of the columns its header names (no check that the images
    exist).

    Raises:
        TrinetError: the file is missing or not text, a header names an unknown column, a row does not have
            one non-empty value per column, a camera or frame is not an integer, a tracklet has rows of two
            identities or cameras (the message names the file and line), or there are no rows.
    """
    names: tuple[str, ...] = HEADER
    header = False
    values: dict[str, list] = {name: [] for name in HEADER}
    lines: list[int] = []
    for number, row in _text_rows(path):
        if not lines and not header:
            found = _header(path, number, row)
            if found is not None:
                names, header = found, True
                values = {name: [] for name in names}
                continue
        if len(row) != len(names):
            expected = ",".join(names)
            advice = " Quote paths that contain commas."
            if not header and len(row) > 2:
                advice += (" Other columns need a header line naming them (pid,path and any of "
                           f"{', '.join(COLUMNS)}).")
            raise TrinetError(
                f"{path}:{number}: expected {len(names)} columns `{expected}`, found {len(row)}: "
                f"{','.join(row)!r}.{advice}")
        for name, text in zip(names, row):
            if not text:
                what = {"pid": "identity", "path": "image path"}.get(name, name)
                raise TrinetError(f"{path}:{number}: empty {what} in row {','.join(row)!r}")
            values[name].append(_integer(path, number, name, text) if name in INTEGER_COLUMNS else text)
        lines.append(number)
    if not lines:
        raise TrinetError(f"{path}: the dataset is empty (no `{','.join(names)}` rows)")
    pids, fids = values["pid"], values["path"]
    _warn_conflicts(path, pids, fids, lines)

    def column(name: str, dtype: type) -> np.ndarray | None:
        return np.array(values[name], dtype=dtype) if name in values else None

    dataset = Dataset(np.array(pids, dtype=str), np.array(fids, dtype=str), path, image_root,
                      cameras=column("camera", np.int64), tracklets=column("tracklet", str),
                      frames=column("frame", np.int64), queries=column("query", str),
                      lines=np.array(lines, dtype=np.int64))
    if dataset.tracklets is not None:
        check_tracklets(dataset)
    return dataset


def check_tracklets(dataset: Dataset) -> None:
    """Raise a TrinetError unless all rows of each tracklet have one identity and (with a camera column)
    one camera; the message names the first tracklet that does not and two of its lines."""
    assert dataset.tracklets is not None
    first: dict[str, int] = {}
    for row, tracklet in enumerate(dataset.tracklets.tolist()):
        seen = first.setdefault(tracklet, row)
        for what, column in (("identities", dataset.pids), ("cameras", dataset.cameras)):
            if column is not None and column[seen] != column[row]:
                raise TrinetError(
                    f"{dataset.where(row)}: tracklet {tracklet!r} has rows of two {what}: {column[seen]} "
                    f"({dataset.where(seen)}) and {column[row]}; a tracklet is one person seen by one camera")


def _warn_conflicts(path: str, pids: list[str], fids: list[str], lines: list[int]) -> None:
    """Warn about images listed under more than one identity (the same path twice with one identity is
    harmless and passes)."""
    first: dict[str, tuple[str, int]] = {}
    conflicts = []
    for pid, fid, line in zip(pids, fids, lines):
        seen = first.setdefault(fid, (pid, line))
        if seen[0] != pid:
            conflicts.append(f"{fid} as {seen[0]} (line {seen[1]}) and {pid} (line {line})")
    if conflicts:
        log.warning("%s: %d rows list an image under a second identity, so one of the two labels is wrong: "
                    "%s", path, len(conflicts), listing(conflicts, show=3, sep="; "))


def read_image_list(path: str, image_root: str | None = None) -> Dataset:
    """Parse a plain text file with one image path per line (blank lines are skipped).

    The rows get empty identities. Commas are part of the path.
    """
    fids = []
    with _open_text(path) as f:
        try:
            for line in f:
                line = line.strip()
                if line:
                    fids.append(line)
        except UnicodeDecodeError as e:
            raise _decode_error(path, e) from None
    if not fids:
        raise TrinetError(f"{path}: the image list is empty")
    return Dataset(np.full(len(fids), "", dtype=str), np.array(fids, dtype=str), path, image_root)


def read_any(path: str, image_root: str | None = None) -> Dataset:
    """A `.csv` file is a dataset CSV; any other file is a plain list of image paths."""
    if path.lower().endswith(".csv"):
        return read_csv(path, image_root)
    return read_image_list(path, image_root)


def check_files(dataset: Dataset, *, skip_missing: bool = False,
                skip_flag: str | None = "--skip_missing") -> Dataset:
    """Check that every image of `dataset` exists under its image root (a folder or a link loop in its
    place is named as such, not as missing).

    Args:
        skip_missing: drop missing images with a warning instead of failing.
        skip_flag: the flag of the calling command that sets `skip_missing`, suggested by the message;
            None for a command without one.

    Raises:
        TrinetError: images are missing (the count and the first few paths), or none is left.
    """
    if dataset.image_root is not None:
        problem = path_problem(dataset.image_root, "folder")
        if problem is not None:
            raise TrinetError(f"Image root {dataset.image_root} is not a directory ({problem})")
    exists = np.array([os.path.isfile(p) for p in dataset.paths()], dtype=bool)
    if exists.all():
        return dataset
    problems = {fid: path_problem(full, "file") or "not readable"
                for fid, full, ok in zip(dataset.fids, dataset.paths(), exists) if not ok}
    missing = [fid for fid, problem in problems.items() if problem == "not found"]
    other = [f"{fid} ({problem})" for fid, problem in problems.items() if problem != "not found"]
    where = f" under image root {dataset.image_root}" if dataset.image_root else ""
    parts = [f"{len(missing)} of {len(dataset)} images not found{where}: {listing(missing)}"][:len(missing)]
    if other:
        parts.append(f"{len(other)} of {len(dataset)} image paths are not files{where}: {listing(other)}")
    message = f"{dataset.source}: " + "; ".join(parts)
    if not skip_missing:
        advice = f", or pass {skip_flag} to drop them" if skip_flag else ""
        raise TrinetError(f"{message}. Check --image_root{advice}.")
    if not exists.any():
        raise TrinetError(message + ". No image is left.")
    log.warning("%s. Dropping them%s.", message, f" ({skip_flag})" if skip_flag else "")
    return dataset.subset(exists)


def load_dataset(path: str, image_root: str | None = None, *, skip_missing: bool = False,
                 skip_flag: str | None = None) -> Dataset:
    """Read a dataset CSV and, if `image_root` is given, check that its images exist (see `check_files`)."""
    dataset = read_csv(path, image_root)
    if image_root is None:
        return dataset
    return check_files(dataset, skip_missing=skip_missing, skip_flag=skip_flag)


def image_format(path: str) -> str | None:
    """The format of the image at `path` from its first bytes ('jpeg', 'png', 'bmp', 'gif'), or None
    if the file is empty, unreadable or not an image."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    for signature, name in IMAGE_SIGNATURES.items():
        if head.startswith(signature):
            return name
    return None


def find_non_images(dataset: Dataset) -> np.ndarray:
    """`(N,)` bool, true for rows whose file is empty or does not start like an image file.

    A cheap check (a few bytes per file) run before training; truncated or corrupt image data
    behind a valid header needs a full decode to find.
    """
    return np.array([image_format(p) is None for p in dataset.paths()], dtype=bool)


def require_images(dataset: Dataset, source: str) -> Dataset:
    """`dataset`, after checking that every file starts like an image; else a TrinetError naming
    `source` (the file, or the flag and file) and the first files that do not."""
    bad = find_non_images(dataset)
    if bad.any():
        raise TrinetError(f"{source}: {bad.sum()} files are empty or not images: "
                          f"{listing(dataset.fids[bad])}")
    return dataset


def write_csv(path: str, pids: Iterable[str], fids: Iterable[str], *,
              columns: Mapping[str, Iterable] | None = None) -> None:
    """Write a dataset CSV that `read_csv` reads back, atomically: the file appears only complete. A path with
    a comma or a quote is quoted.

    Without `columns` the rows are `pid,path` with no header, as always; with metadata `columns` (header
    name from `COLUMNS` -> one value per row) the file starts with the header `pid,path,<columns>`.

    Raises:
        ValueError: the columns differ in length, or a column name is not one of `COLUMNS`.
    """
    import io

    from trinet.core.fileio import write_text_atomic

    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        raise ValueError(f"Unknown dataset column(s) {unknown}; expected any of {list(COLUMNS)}")
    names = [name for name in COLUMNS if name in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if names:
        writer.writerow([*HEADER, *names])
    writer.writerows(zip(pids, fids, *(columns[name] for name in names), strict=True))
    write_text_atomic(path, buffer.getvalue())


def write_dataset(path: str, dataset: Dataset) -> None:
    """Write `dataset` with its metadata columns (see `write_csv`)."""
    write_csv(path, dataset.pids.tolist(), dataset.fids.tolist(),
              columns={name: column.tolist() for name, column in dataset.columns().items()})
