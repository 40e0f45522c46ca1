"""The registry of converters (`CONVERTERS`, one entry per release, from the family modules beside this one)
and converting with it: read a release (`convert`), check its counts, write its CSVs, summarise."""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

from trinet.core.errors import TrinetError, listing
from trinet.data.converters import folders, msmt17, retrieval, trials, video
from trinet.data.converters.layout import SPLITS, Converter, Row, scan_folder  # noqa: F401 (re-exported)
from trinet.data.datasets import write_csv
from trinet.data.naming import NAMINGS

#: Every converter, by the name `data/convert.py` takes.
CONVERTERS: dict[str, Converter] = {**folders.CONVERTERS, **msmt17.CONVERTERS, **trials.CONVERTERS,
                                    **video.CONVERTERS, **retrieval.CONVERTERS}


def get_converter(name: str) -> Converter:
    """The registered converter `name`; an unknown name raises a TrinetError listing the valid ones."""
    try:
        return CONVERTERS[name]
    except KeyError:
        raise TrinetError(f"Unknown dataset {name!r}; expected one of {sorted(CONVERTERS)}") from None


# ---------------------------------------------------------------------------------------------------------
# Converting


@dataclasses.dataclass(frozen=True)
class SplitStats:
    """Counts of one split: rows, identities (without junk/distractor labels), rows per special label."""

    rows: int
    identities: int
    special: dict[str, int]


def split_stats(rows: Sequence[Row], labels: Mapping[str, str]) -> SplitStats:
    special = {label: 0 for label in labels}
    identities = set()
    for pid, _ in rows:
        if pid in special:
            special[pid] += 1
        else:
            identities.add(pid)
    return SplitStats(len(rows), len(identities), special)


@dataclasses.dataclass(frozen=True)
class Conversion:
    """The result of converting one release: rows per split (sorted by path) and what to tell the user."""

    converter: Converter
    release_dir: str
    rows: dict[str, list[Row]]
    skipped: tuple[str, ...]
    warnings: tuple[str, ...]
    trial: int | None = None

    def stats(self, split: str) -> SplitStats:
        return split_stats(self.rows[split], self.converter.labels)

    def csv_name(self, split: str) -> str:
        """The file name of `split`, e.g. `market1501_train.csv` or `viper_trial3_train.csv`."""
        return self.converter.csv_names[split].format(trial=self.trial)


def check_counts(converter: Converter, rows: Mapping[str, Sequence[Row]]) -> list[str]:
    """Warnings for splits whose counts differ from the official release, or that have junk or
    distractor rows where the protocol has none."""
    warnings = []
    for split in converter.splits:
        stats = split_stats(rows[split], converter.labels)
        want_rows, want_ids = converter.expected[split]
        if (want_rows not in (None, stats.rows)) or (want_ids not in (None, stats.identities)):
            if want_rows is not None and want_ids is not None:
                official = f"{want_rows:,} of {want_ids:,}"
            else:
                official = f"{want_rows:,} images" if want_rows is not None else f"{want_ids:,} identities"
            warnings.append(
                f"{converter.name} {split}: {stats.rows:,} images of {stats.identities:,} identities, the "
                f"official release has {official}. Fine for a subset; otherwise check "
                "that the release was extracted completely.")
        stray = {pid: n for pid, n in stats.special.items() if n}
        if stray and split not in converter.label_splits:
            found = ", ".join(f"{n:,} {converter.labels[pid]} ({pid})" for pid, n in stray.items())
            warnings.append(f"{converter.name} {split}: {found} images; the {converter.title} protocol has "
                            f"them only in {', '.join(converter.label_splits)}.")
    return warnings


def convert(name: str, release_dir: str, trial: int | None = None) -> Conversion:
    """Read the release in `release_dir` with converter `name`; nothing is written.

    Args:
        trial: the random split of a release with `trials` (default 0); None for the others.

    Raises:
        TrinetError: unknown name, wrong folder, badly named files (see the module docstring), a trial
            out of range or given for a release with a fixed split.
    """
    converter = get_converter(name)
    if converter.trials:
        trial = 0 if trial is None else trial
        if not 0 <= trial < converter.trials:
            raise TrinetError(f"--trial {trial}: the {converter.title} protocol has the trials 0 to "
                              f"{converter.trials - 1}")
        rows, skipped = converter.read(release_dir, trial)
    else:
        if trial is not None:
            with_trials = sorted(n for n, c in CONVERTERS.items() if c.trials)
            raise TrinetError(f"--trial {trial}: {converter.title} has one fixed train/test split; --trial "
                              f"applies to {', '.join(with_trials)} (random halves of the identities, or "
                              "iLIDS-VID's split file)")
        rows, skipped = converter.read(release_dir)
    rows = {split: sorted(rows[split], key=lambda row: row[1]) for split in converter.splits}
    return Conversion(converter, release_dir, rows, tuple(skipped), tuple(check_counts(converter, rows)),
                      trial)


def row_cameras(converter: Converter, rows: Sequence[Row]) -> list[int] | None:
    """The camera of each row from the release's file names, for the `camera` column; None for a release
    whose naming has no camera."""
    if converter.frame_info is not None:
        return [converter.frame_info(fid)[0] for _, fid in rows]
    naming = NAMINGS.get(converter.excluder)
    if naming is None:
        return None
    cameras = [naming.camera_of(fid) for _, fid in rows]
    bad = [fid for (_, fid), camera in zip(rows, cameras) if camera is None]
    if bad:  # the converters check every name, so this is a bug
        raise TrinetError(f"{converter.title}: no camera in the file names {listing(bad)}")
    return [camera for camera in cameras if camera is not None]


def write_rows(path: str, converter: Converter, rows: Sequence[Row]) -> None:
    """Write the CSV of `rows` of `converter`'s release, with the header `pid,path,camera` and each row's
    camera from its file name (a video release: `pid,path,camera,tracklet,frame`)."""
    if converter.frame_info is not None:
        info = [converter.frame_info(fid) for _, fid in rows]
        write_csv(path, [pid for pid, _ in rows], [fid for _, fid in rows],
                  columns={"camera": [i[0] for i in info], "tracklet": [i[1] for i in info],
                           "frame": [i[2] for i in info]})
        return
    cameras = row_cameras(converter, rows)
    write_csv(path, [pid for pid, _ in rows], [fid for _, fid in rows],
              columns=None if cameras is None else {"camera": cameras})


def write_conversion(conversion: Conversion, out_dir: str) -> dict[str, str]:
    """Write one CSV per split into `out_dir` (created if needed); returns split -> path written."""
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for split in conversion.converter.splits:
        path = os.path.join(out_dir, conversion.csv_name(split))
        write_rows(path, conversion.converter, conversion.rows[split])
        written[split] = path
    return written


# ---------------------------------------------------------------------------------------------------------
# Multi-query (Market-1501)

#: One row of a multi-query CSV: (pid, path, camera, the query's path).
MultiQueryRow = tuple[str, str, int, str]


@dataclasses.dataclass(frozen=True)
class MultiQuery:
    """The multi-query rows of a conversion (sorted by query, then path) and the queries without any."""

    rows: list[MultiQueryRow]
    lonely: tuple[str, ...]
    skipped: tuple[str, ...]


def read_multi_query(conversion: Conversion) -> MultiQuery:
    """The multi-query images of each query of `conversion`: the images of the release's multi-query
    folder (Market-1501: `gt_bbox/`) of the query's person and camera, as Zheng et al. (ICCV 2015) pool them.

    Raises:
        TrinetError: the release has no multi-query protocol, the folder is missing, or a file in it does
            not follow the naming.
    """
    converter = conversion.converter
    if converter.multi_query is None:
        having = sorted(name for name, c in CONVERTERS.items() if c.multi_query)
        raise TrinetError(f"--multi_query: {converter.title} has no multi-query protocol; it applies to "
                          f"{', '.join(having)}")
    naming = NAMINGS[converter.excluder]
    folder = os.path.join(conversion.release_dir, converter.multi_query)
    if not os.path.isdir(folder):
        raise TrinetError(f"--multi_query: {folder} not found; the multi-query images are the "
                          f"{converter.multi_query}/ folder of the {converter.title} release")
    images, skipped = scan_folder(conversion.release_dir, converter.multi_query, naming, converter.title)
    by_group: dict[tuple[str, int | None], list[str]] = {}
    for pid, path in images:
        by_group.setdefault((pid, naming.camera_of(path)), []).append(path)
    rows: list[MultiQueryRow] = []
    lonely = []
    for pid, query in sorted(conversion.rows["query"], key=lambda row: row[1]):
        camera = naming.camera_of(query)
        assert camera is not None  # the converter checked the name
        paths = by_group.get((pid, camera), [])
        if not paths:
            lonely.append(query)
        rows += [(pid, path, camera, query) for path in sorted(paths)]
    return MultiQuery(rows, tuple(lonely), tuple(skipped))


def write_multi_query(path: str, multi_query: MultiQuery) -> None:
    """Write the multi-query CSV (header `pid,path,camera,query`)."""
    rows = multi_query.rows
    write_csv(path, [r[0] for r in rows], [r[1] for r in rows],
              columns={"camera": [r[2] for r in rows], "query": [r[3] for r in rows]})


def summary_lines(conversion: Conversion, written: Mapping[str, str]) -> list[str]:
    """What was written, for printing: one line per file with rows, identities, junk and distractors."""
    converter = conversion.converter
    lines = [f"Converted {converter.title} from {conversion.release_dir}"]
    if conversion.trial is not None:
        lines[0] += (f", trial {conversion.trial} of 0-{converter.trials - 1} (identities split by "
                     f"numpy.random.RandomState({conversion.trial}))")
    for split in converter.splits:
        stats = conversion.stats(split)
        text = f"  {written[split]}: {stats.rows:,} rows, {stats.identities:,} identities"
        for pid, count in stats.special.items():
            text += f", {count:,} {converter.labels[pid]} rows (pid {pid})"
        if converter.frame_info is not None:
            tracklets = {converter.frame_info(fid)[1] for _, fid in conversion.rows[split]}
            text += f", {len(tracklets):,} tracklets"
        lines.append(text)
    if conversion.skipped:
        names = sorted({os.path.basename(path) for path in conversion.skipped})
        lines.append(f"  skipped {len(conversion.skipped)} clutter file(s): {listing(names)}")
    lines.append(f"Paths are relative to the release folder: train and evaluate with "
                 f"--image_root {os.path.abspath(conversion.release_dir)}")
    if converter.protocol is not None:
        lines += converter.protocol.lines(written)
    return lines
