"""Dataset converters: official person re-id releases to trinet CSVs.

Each converter reads one extracted release (Market-1501, DukeMTMC-reID, CUHK03-NP detected or labeled,
MSMT17, VIPeR, CUHK01) and returns its `pid,path` rows per split: `train`, `query` and `test` (the gallery;
the original triplet-reid names it `test`, as in `market1501_test.csv`). VIPeR and CUHK01 have no fixed
split: their protocol averages 10 trials, each a random half of the identities for training and the other
half for testing (`trial_split`: trial N draws with `numpy.random.RandomState(N)`, whose stream numpy keeps
fixed); the query is the test identities' first camera, the gallery their second. Paths are relative to
the release folder, which becomes `--image_root`, and keep the official file names, because the
evaluation-time excluders parse person and camera from the basename (VIPeR's camera: from its folder).
Junk (`-1`) and distractor (`0000`) images of Market-1501 are kept with their labels, as in the original
CSVs.

Checks, all before anything is written: the folder has the release's layout (else an error naming what is
missing, and the folder nearby that looks right); every image follows the release's naming (else an error
naming the files and the pattern); row and identity counts that differ from the official release are
returned as warnings (a subset is fine). Known clutter (`Thumbs.db`, `desktop.ini`, hidden files such as
`.DS_Store` or `._*`) is skipped and counted. The releases' naming lives in `trinet.naming`; combining
training sets, in `trinet.combine`.

References: Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015 (Market-1501);
Zheng et al., ICCV 2017 and Ristani et al., ECCVW 2016 (DukeMTMC-reID); Li et al., CVPR 2014 and Zhong et
al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017 (CUHK03-NP); Wei et al.,
"Person Transfer GAN to Bridge Domain Gap for Person Re-Identification", CVPR 2018 (MSMT17); Gray et al.,
"Evaluating Appearance Models for Recognition, Reacquisition, and Tracking", PETS 2007 (VIPeR); Li et al.,
"Human Reidentification with Transferred Metric Learning", ACCV 2012 (CUHK01). See `data/README.md` for
where each release comes from.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Sequence

import numpy as np

from trinet.datasets import write_csv
from trinet.errors import TrinetError, listing
from trinet.naming import (CUHK01, CUHK01_FOLDER, CUHK03NP, DUKE, MARKET1501, MARKET_FOLDERS, MARKET_LABELS,
                           MSMT17, MSMT17_LAYOUTS, MSMT17_LISTS, VIPER, VIPER_FOLDERS, Naming)

#: One CSV row: (pid, path relative to the image root).
Row = tuple[str, str]

#: The splits every converter returns, in the order they are written and printed.
SPLITS = ("train", "query", "test")

#: File names (compared in lower case) that archives and file browsers leave behind; always skipped.
CLUTTER_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})


def is_clutter(name: str) -> bool:
    """True for `Thumbs.db`, `desktop.ini` and hidden files (`.DS_Store`, macOS `._*` forks)."""
    return name.startswith(".") or name.lower() in CLUTTER_NAMES


# ---------------------------------------------------------------------------------------------------------
# Converters and their registry


@dataclasses.dataclass(frozen=True)
class Converter:
    """One release and how to read it.

    Attributes:
        name: the registry key (`python data/convert.py NAME ...`).
        title: the dataset's name for messages.
        release: what the folder to pass looks like (for messages).
        csv_names: split -> output file name, e.g. `{"train": "market1501_train.csv", ...}`.
        expected: split -> (rows, identities) of the official release; identities do not count the
            junk and distractor labels.
        labels: special identity labels -> `trinet.naming.JUNK` or `DISTRACTOR`.
        label_splits: the splits where the protocol has junk and distractor images.
        read: `read(release_dir) -> (rows per split, skipped clutter paths)`; raises TrinetError. With
            `trials`, `read(release_dir, trial)`.
        trials: the number of random train/test splits the protocol averages (`--trial 0` to
            `trials - 1`); 0 for a release with one fixed split. The CSV names then hold `{trial}`.
    """

    name: str
    title: str
    release: str
    csv_names: Mapping[str, str]
    expected: Mapping[str, tuple[int, int]]
    labels: Mapping[str, str]
    label_splits: tuple[str, ...]
    read: Callable[..., tuple[dict[str, list[Row]], list[str]]]
    trials: int = 0


def _csv_names(prefix: str) -> dict[str, str]:
    return {split: f"{prefix}_{split}.csv" for split in SPLITS}


def _check_layout(root: str, folders: Sequence[str], files: Sequence[str], title: str, release: str,
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


def _has_all(folders: Sequence[str], files: Sequence[str] = (), naming: Naming | None = None
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
        _check_layout(root, required, (), title, release, _has_all(required, naming=naming))
        rows: dict[str, list[Row]] = {}
        skipped: list[str] = []
        for split, folder in folders.items():
            rows[split], clutter = scan_folder(root, folder, naming, title)
            skipped += clutter
        return rows, skipped
    return read


def _cuhk03np_folders(subset: str) -> dict[str, str]:
    return {split: f"{subset}/{folder}" for split, folder in MARKET_FOLDERS.items()}


MSMT17_RELEASE = ("the MSMT17_V1 folder (or MSMT17_V2, with mask_train_v2/ and mask_test_v2/ for train/ "
                  "and test/)")


def parse_msmt17_line(line: str, where: str) -> tuple[str, str] | None:
    """`(pid, "PPPP/NAME.jpg")` of one list line `PPPP/NAME.jpg LABEL`, None for a blank line.

    Raises:
        TrinetError: (message starting with `where`) the line is malformed, the name does not follow the
            MSMT17 naming, or its folder or label is not the person of the name.
    """
    fields = line.split()
    if not fields:
        return None
    if len(fields) != 2:
        raise TrinetError(f"{where}: expected `PPPP/NAME.jpg LABEL`, found {line.strip()!r}")
    relative, label = fields
    person, _, name = relative.rpartition("/")
    match = MSMT17.match(name)
    if match is None:
        raise TrinetError(f"{where}: {name!r} does not follow the MSMT17 naming {MSMT17.describe()}")
    pid = match["pid"]
    if person != pid:
        raise TrinetError(f"{where}: {relative!r} should be in folder {pid}/, the person of its name")
    if not label.isdigit() or int(label) != int(pid):
        raise TrinetError(f"{where}: label {label!r} is not the person {pid} of {name!r}")
    return pid, relative


def read_msmt17_list(root: str, list_name: str, folder: str) -> list[Row]:
    """The rows of one MSMT17 list file for images under `root/folder`, e.g.
    `("0000", "train/0000/0000_000_01_0303morning_0015_0.jpg")`.

    Raises:
        TrinetError: a bad line (file and line number, see `parse_msmt17_line`), listed images that do
            not exist, or an empty list.
    """
    path = os.path.join(root, list_name)
    rows: list[Row] = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                parsed = parse_msmt17_line(line, f"{path}:{number}")
                if parsed is not None:
                    rows.append((parsed[0], f"{folder}/{parsed[1]}"))
    except UnicodeDecodeError as e:
        raise TrinetError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    if not rows:
        raise TrinetError(f"{path}: the list is empty")
    missing = [fid for _, fid in rows if not os.path.isfile(os.path.join(root, fid))]
    if missing:
        raise TrinetError(f"{path}: {len(missing)} of {len(rows)} listed images not found under {root}: "
                          f"{listing(missing)}. Extract the whole release.")
    return rows


def read_msmt17(root: str) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of MSMT17: train = list_train + list_val (the paper's 32,621 training images)."""
    present = [v for v, folders in MSMT17_LAYOUTS.items()
               if any(os.path.isdir(os.path.join(root, f)) for f in folders)]
    if len(present) > 1:
        raise TrinetError(f"{root} holds the image folders of both {' and '.join(present)}; pass a folder "
                          "with one release")
    version = present[0] if present else "MSMT17_V1"
    train_folder, test_folder = MSMT17_LAYOUTS[version]
    lists = [name for names in MSMT17_LISTS.values() for name in names]

    def looks_right(path: str) -> bool:
        return any(_has_all(folders, lists)(path) for folders in MSMT17_LAYOUTS.values())

    _check_layout(root, (train_folder, test_folder), lists, "MSMT17", MSMT17_RELEASE, looks_right)
    rows: dict[str, list[Row]] = {}
    for split, names in MSMT17_LISTS.items():
        folder = train_folder if split == "train" else test_folder
        rows[split] = [row for name in names for row in read_msmt17_list(root, name, folder)]
    seen: dict[str, int] = {}
    for _, fid in rows["train"]:
        seen[fid] = seen.get(fid, 0) + 1
    repeated = sorted(fid for fid, count in seen.items() if count > 1)
    if repeated:
        raise TrinetError(f"{root}: {len(repeated)} image(s) listed twice in list_train.txt and "
                          f"list_val.txt: {listing(repeated)}")
    return rows, []


CUHK03NP_RELEASE = "the cuhk03-np folder that holds detected/ and labeled/"


def trial_split(identities: Sequence[str], trial: int) -> tuple[list[str], list[str]]:
    """The identities of one trial of the VIPeR / CUHK01 protocol: `(train, test)`, each sorted.

    The sorted identities are permuted by `numpy.random.RandomState(trial).permutation`; the first
    `n // 2` are for training, the other `n - n // 2` for testing (VIPeR 316 + 316, CUHK01 485 + 486, as
    open-reid). `RandomState`'s stream is frozen by numpy, so a trial gives the same split everywhere.
    """
    ordered = sorted(identities)
    order = np.random.RandomState(trial).permutation(len(ordered))
    half = len(ordered) // 2
    return sorted(ordered[i] for i in order[:half]), sorted(ordered[i] for i in order[half:])


VIPER_RELEASE = "the VIPeR folder of VIPeR.v1.0.zip, with cam_a/ and cam_b/"


def read_viper(root: str, trial: int) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of VIPeR: one image per person in each camera folder, paired by the person's number.

    train: both images of the trial's training identities; query: the `cam_a` images of its test
    identities; test (gallery): their `cam_b` images.

    Raises:
        TrinetError: not the layout, a badly named file, a person with two images in one camera or with
            an image in one camera only.
    """
    folders = list(VIPER_FOLDERS)
    _check_layout(root, folders, (), "VIPeR", VIPER_RELEASE, _has_all(folders))
    cameras: list[dict[str, str]] = []
    skipped: list[str] = []
    for folder in folders:
        rows, clutter = scan_folder(root, folder, VIPER, "VIPeR")
        skipped += clutter
        by_person: dict[str, str] = {}
        twice = []
        for pid, path in rows:
            if pid in by_person:
                twice.append(f"{by_person[pid]} and {path}")
            by_person[pid] = path
        if twice:
            raise TrinetError(f"{os.path.join(root, folder)}: VIPeR has one image per person and camera, but "
                              f"{len(twice)} person(s) have two: {listing(twice)}")
        cameras.append(by_person)
    unpaired = sorted(set(cameras[0]) ^ set(cameras[1]))
    if unpaired:
        where = [f"{pid} (only in {folders[0] if pid in cameras[0] else folders[1]}/)" for pid in unpaired]
        raise TrinetError(f"{root}: VIPeR pairs the images of cam_a/ and cam_b/ by their number, but "
                          f"{len(unpaired)} number(s) are in one folder only: {listing(where)}")
    train, test = trial_split(list(cameras[0]), trial)
    return {"train": [(pid, camera[pid]) for pid in train for camera in cameras],
            "query": [(pid, cameras[0][pid]) for pid in test],
            "test": [(pid, cameras[1][pid]) for pid in test]}, skipped


CUHK01_RELEASE = f"the folder that holds {CUHK01_FOLDER}/ (CUHK01.zip extracted)"


def read_cuhk01(root: str, trial: int) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of CUHK01: four images per person in `campus/`, 001-002 from camera 1, 003-004 from
    camera 2.

    train: all images of the trial's training identities; query: the camera-1 images of its test
    identities; test (gallery): their camera-2 images.
    """
    _check_layout(root, [CUHK01_FOLDER], (), "CUHK01", CUHK01_RELEASE,
                  _has_all([CUHK01_FOLDER], naming=CUHK01))
    rows, skipped = scan_folder(root, CUHK01_FOLDER, CUHK01, "CUHK01")
    train, test = trial_split(sorted({pid for pid, _ in rows}), trial)
    train_set, test_set = set(train), set(test)

    def camera(path: str) -> int | None:
        match = CUHK01.match(CUHK01.tail(path))
        return None if match is None else CUHK01.camera(match["camera"])

    return {"train": [row for row in rows if row[0] in train_set],
            "query": [row for row in rows if row[0] in test_set and camera(row[1]) == 1],
            "test": [row for row in rows if row[0] in test_set and camera(row[1]) == 2]}, skipped


def _folder_converter(name: str, title: str, release: str, csv_names: Mapping[str, str],
                      expected: Mapping[str, tuple[int, int]], folders: Mapping[str, str], naming: Naming,
                      labels: Mapping[str, str] | None = None, label_splits: tuple[str, ...] = ()
                      ) -> Converter:
    return Converter(name, title, release, csv_names, expected, labels or {}, label_splits,
                     folder_reader(folders, naming, title, release))


CONVERTERS: dict[str, Converter] = {
    "market1501": _folder_converter(
        "market1501", "Market-1501", "the Market-1501-v15.09.15 folder", _csv_names("market1501"),
        {"train": (12936, 751), "query": (3368, 750), "test": (19732, 750)},
        MARKET_FOLDERS, MARKET1501, MARKET_LABELS, ("test",)),
    "duke": _folder_converter(
        "duke", "DukeMTMC-reID", "the DukeMTMC-reID folder",
        {"train": "dukeMTMC_train.csv", "query": "dukeMTMC_query.csv", "test": "dukeMTMC_test.csv"},
        {"train": (16522, 702), "query": (2228, 702), "test": (17661, 1110)},
        MARKET_FOLDERS, DUKE),
    "cuhk03-detected": _folder_converter(
        "cuhk03-detected", "CUHK03-NP detected", CUHK03NP_RELEASE, _csv_names("cuhk03np_detected"),
        {"train": (7365, 767), "query": (1400, 700), "test": (5332, 700)},
        _cuhk03np_folders("detected"), CUHK03NP),
    "cuhk03-labeled": _folder_converter(
        "cuhk03-labeled", "CUHK03-NP labeled", CUHK03NP_RELEASE, _csv_names("cuhk03np_labeled"),
        {"train": (7368, 767), "query": (1400, 700), "test": (5328, 700)},
        _cuhk03np_folders("labeled"), CUHK03NP),
    "msmt17": Converter(
        "msmt17", "MSMT17", MSMT17_RELEASE, _csv_names("msmt17"),
        {"train": (32621, 1041), "query": (11659, 3060), "test": (82161, 3060)},
        {}, (), read_msmt17),
    "viper": Converter(
        "viper", "VIPeR", VIPER_RELEASE, _csv_names("viper_trial{trial}"),
        {"train": (632, 316), "query": (316, 316), "test": (316, 316)},
        {}, (), read_viper, trials=10),
    "cuhk01": Converter(
        "cuhk01", "CUHK01", CUHK01_RELEASE, _csv_names("cuhk01_trial{trial}"),
        {"train": (1940, 485), "query": (972, 486), "test": (972, 486)},
        {}, (), read_cuhk01, trials=10),
}


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
    for split in SPLITS:
        stats = split_stats(rows[split], converter.labels)
        want_rows, want_ids = converter.expected[split]
        if (stats.rows, stats.identities) != (want_rows, want_ids):
            warnings.append(
                f"{converter.name} {split}: {stats.rows:,} images of {stats.identities:,} identities, the "
                f"official release has {want_rows:,} of {want_ids:,}. Fine for a subset; otherwise check "
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
                              f"applies to {', '.join(with_trials)} (random halves of the identities)")
        rows, skipped = converter.read(release_dir)
    rows = {split: sorted(rows[split], key=lambda row: row[1]) for split in SPLITS}
    return Conversion(converter, release_dir, rows, tuple(skipped), tuple(check_counts(converter, rows)),
                      trial)


def write_conversion(conversion: Conversion, out_dir: str) -> dict[str, str]:
    """Write one CSV per split into `out_dir` (created if needed); returns split -> path written."""
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for split in SPLITS:
        path = os.path.join(out_dir, conversion.csv_name(split))
        rows = conversion.rows[split]
        write_csv(path, [pid for pid, _ in rows], [fid for _, fid in rows])
        written[split] = path
    return written


def summary_lines(conversion: Conversion, written: Mapping[str, str]) -> list[str]:
    """What was written, for printing: one line per file with rows, identities, junk and distractors."""
    converter = conversion.converter
    lines = [f"Converted {converter.title} from {conversion.release_dir}"]
    if conversion.trial is not None:
        lines[0] += (f", trial {conversion.trial} of 0-{converter.trials - 1} (identities split by "
                     f"numpy.random.RandomState({conversion.trial}))")
    for split in SPLITS:
        stats = conversion.stats(split)
        text = f"  {written[split]}: {stats.rows:,} rows, {stats.identities:,} identities"
        for pid, count in stats.special.items():
            text += f", {count:,} {converter.labels[pid]} rows (pid {pid})"
        lines.append(text)
    if conversion.skipped:
        names = sorted({os.path.basename(path) for path in conversion.skipped})
        lines.append(f"  skipped {len(conversion.skipped)} clutter file(s): {listing(names)}")
    lines.append(f"Paths are relative to the release folder: train and evaluate with "
                 f"--image_root {os.path.abspath(conversion.release_dir)}")
    return lines
