"""Datasets: a CSV of ``pid,relative/path`` rows plus an image root.

The format of the original triplet-reid code: one image per line, no header (a first line ``pid,path``
is accepted as one), identities kept as strings (``0002``, ``-1``), paths relative to ``--image_root``.
Unlike the original (``np.genfromtxt``) the file is parsed with the csv module, so quoted paths may
contain commas. Everything here is validated before any long work starts.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from typing import Iterable

import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import path_problem

log = logging.getLogger(__name__)

#: The optional header line of a dataset CSV.
HEADER = ("pid", "path")

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
    """

    pids: np.ndarray
    fids: np.ndarray
    source: str = "<memory>"
    image_root: str | None = None

    def __len__(self) -> int:
        return len(self.fids)

    def paths(self) -> list[str]:
        """Full image paths (`image_root` joined with each row's path)."""
        return [image_path(self.image_root, fid) for fid in self.fids]

    def subset(self, keep: np.ndarray) -> "Dataset":
        """The rows where the boolean `(N,)` mask `keep` is true."""
        return dataclasses.replace(self, pids=self.pids[keep], fids=self.fids[keep])


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


def read_csv(path: str, image_root: str | None = None) -> Dataset:
    """Parse a dataset CSV of `pid,path` rows (no check that the images exist).

    Raises:
        TrinetError: the file is missing or not text, a row does not have exactly two non-empty
            fields (the message names the file and line), or there are no rows.
    """
    pids: list[str] = []
    fids: list[str] = []
    lines: list[int] = []
    for number, row in _text_rows(path):
        if not pids and not fids and tuple(field.lower() for field in row) == HEADER:
            continue
        if len(row) != 2:
            raise TrinetError(
                f"{path}:{number}: expected 2 columns `pid,path`, found {len(row)}: {','.join(row)!r}. "
                "Quote paths that contain commas.")
        pid, fid = row
        if not pid:
            raise TrinetError(f"{path}:{number}: empty identity in row {','.join(row)!r}")
        if not fid:
            raise TrinetError(f"{path}:{number}: empty image path in row {','.join(row)!r}")
        pids.append(pid)
        fids.append(fid)
        lines.append(number)
    if not fids:
        raise TrinetError(f"{path}: the dataset is empty (no `pid,path` rows)")
    _warn_conflicts(path, pids, fids, lines)
    return Dataset(np.array(pids, dtype=str), np.array(fids, dtype=str), path, image_root)


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


def write_csv(path: str, pids: Iterable[str], fids: Iterable[str]) -> None:
    """Write a dataset CSV of `pid,path` rows (no header) that `read_csv` reads back, atomically: the file
    appears only complete. A path with a comma or a quote is quoted.

    Raises:
        ValueError: `pids` and `fids` differ in length.
    """
    import io

    from trinet.core.fileio import write_text_atomic

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(zip(pids, fids, strict=True))
    write_text_atomic(path, buffer.getvalue())
