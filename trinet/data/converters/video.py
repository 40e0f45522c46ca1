"""The video re-id releases: MARS, iLIDS-VID, PRID2011 and DukeMTMC-VideoReID. Every row is a frame; the
frame's name gives its camera, tracklet and frame number (`trinet.data.naming.VideoNaming`), which the CSVs
hold as the `camera`, `tracklet` and `frame` columns. embed.py --pool_by tracklet pools each tracklet's frames
into one embedding, and evaluate.py --excluder camera evaluates the tracklets.

- MARS (Zheng et al., ECCV 2016): `info/tracks_{train,test}_info.mat` list the tracklets as rows
  `start, end, person, camera` over the frames of `info/{train,test}_name.txt` (1-based, end included);
  `info/query_IDX.mat` picks the 1,980 query tracklets among the test tracklets; the gallery is the other test
  tracklets (junk person -1, distractors 0). The .mat files are read with `scipy.io.loadmat`.
- iLIDS-VID (Wang et al., ECCV 2014): 300 persons, one tracklet in each of two cameras; the release's
  `train_test_splits_ilidsvid.mat` holds 10 permutations of the persons (`ls_set`): in trial N the first 150
  of permutation N are tested (query: camera 1, gallery: camera 2), the other 150 trained on.
- PRID2011 (Hirzer et al., SCIA 2011): the multi-shot tracklets of the persons seen by both cameras (200), in
  10 random halves as VIPeR's (`trials.trial_split`): query camera a, gallery camera b.
- DukeMTMC-VideoReID (Wu et al., CVPR 2018): `train/`, `query/`, `gallery/`, each `PPPP/TTTT/frames`.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.data.converters.layout import Converter, Row, check_layout, csv_names, has_all, is_clutter
from trinet.data.converters.trials import trial_split
from trinet.data.naming import (DUKE_VIDEO, DUKE_VIDEO_FOLDERS, ILIDSVID, ILIDSVID_CAMERAS,
                                ILIDSVID_SEQUENCES, ILIDSVID_SPLITS, JUNK_PID, MARKET_LABELS, MARS,
                                MARS_FOLDERS, MARS_INFO, MARS_NAMES, MARS_QUERY, MARS_TRACKS, PRID2011,
                                PRID2011_FOLDERS, VideoNaming)


def frame_info(naming: VideoNaming) -> Callable[[str], tuple[int, str, int]]:
    """The `(camera, tracklet, frame)` of a frame's path by `naming` (for the CSV columns)."""
    def info(path: str) -> tuple[int, str, int]:
        parsed = naming.parse(path)
        if parsed is None:  # the converters checked every name
            raise TrinetError(f"{path!r} does not follow the {naming.title} naming {naming.describe()}")
        return parsed[1], parsed[2], parsed[3]
    return info


def scan_frames(root: str, folder: str, naming: VideoNaming) -> tuple[list[Row], list[str]]:
    """The frames under `root/folder` (any depth) as rows `(pid of the name, path relative to root)` sorted by
    path, and the clutter skipped.

    Raises:
        TrinetError: a file does not follow `naming` (the message lists them and the pattern), or there are
            no frames.
    """
    directory = os.path.join(root, folder)
    rows: list[Row] = []
    skipped: list[str] = []
    bad: list[str] = []
    for parent, folders, files in os.walk(directory):
        folders[:] = sorted(f for f in folders if not is_clutter(f))
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(parent, name), root).replace(os.sep, "/")
            if is_clutter(name):
                skipped.append(relative)
                continue
            parsed = naming.parse(relative)
            if parsed is None:
                bad.append(relative)
                continue
            rows.append((parsed[0], relative))
    if bad:
        raise TrinetError(f"{directory}: {len(bad)} file(s) do not follow the {naming.title} naming "
                          f"{naming.describe()}: {listing(bad)}")
    if not rows:
        raise TrinetError(f"{directory}: no frames; expected files named like {naming.example}")
    return sorted(rows, key=lambda row: row[1]), skipped


def load_mat(path: str, key: str) -> np.ndarray:
    """The array `key` of a MATLAB file, read with `scipy.io.loadmat`; TrinetError naming the file."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        data: dict[str, Any] = loadmat(path)
    except (OSError, ValueError, NotImplementedError, MatReadError) as e:  # MatReadError: e.g. truncated
        raise TrinetError(f"{path}: not a readable MATLAB file ({e})") from None
    if key not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise TrinetError(f"{path}: no variable {key!r}; it holds {found}")
    return np.asarray(data[key])


# ---------------------------------------------------------------------------------------------------------
# MARS

MARS_RELEASE = ("the MARS folder with bbox_train/, bbox_test/ and info/ (the info files of the MARS "
                "evaluation code)")


def _mars_pid(number: int) -> str:
    return JUNK_PID if number == -1 else f"{number:04d}"


def _mars_tracks(root: str, split: str) -> list[list[str]]:
    """The frames (paths relative to `root`) of each tracklet of `split`, in the info file's order."""
    names_path = os.path.join(root, MARS_INFO, MARS_NAMES[split])
    with open(names_path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    mat_name, key = MARS_TRACKS[split]
    mat_path = os.path.join(root, MARS_INFO, mat_name)
    info = load_mat(mat_path, key)
    if info.ndim != 2 or info.shape[1] < 4:
        raise TrinetError(f"{mat_path}: {key} must have rows `start, end, person, camera`, found shape "
                          f"{info.shape}")
    tracks = []
    for number, (start, end, pid, camera) in enumerate(info[:, :4].astype(np.int64), 1):
        if not 1 <= start <= end <= len(names):
            raise TrinetError(f"{mat_path}: tracklet {number} spans frames {start}-{end}, but "
                              f"{names_path} lists {len(names)}")
        frames = names[start - 1:end]
        for name in frames:
            parsed = MARS.parse(name)
            if parsed is None:
                raise TrinetError(f"{names_path}: {name!r} does not follow the MARS naming {MARS.describe()}")
            if parsed[0] != ("00-1" if pid == -1 else f"{pid:04d}") or parsed[1] != camera:
                raise TrinetError(f"{mat_path}: tracklet {number} is person {pid}, camera {camera}, but its "
                                  f"frame {name} is not")
        tracks.append([f"{MARS_FOLDERS[split]}/{name[:4]}/{name}" for name in frames])
    return tracks


def read_mars(root: str) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of MARS: train = the training tracklets; query = the test tracklets of `query_IDX`;
    test (gallery) = the other test tracklets."""
    files = [f"{MARS_INFO}/{name}" for name in MARS_NAMES.values()]
    files += [f"{MARS_INFO}/{name}" for name, _ in MARS_TRACKS.values()] + [f"{MARS_INFO}/{MARS_QUERY[0]}"]
    folders = list(MARS_FOLDERS.values())
    check_layout(root, folders, files, "MARS", MARS_RELEASE, has_all(folders, files))
    train, test = _mars_tracks(root, "train"), _mars_tracks(root, "test")
    query_path = os.path.join(root, MARS_INFO, MARS_QUERY[0])
    query = load_mat(query_path, MARS_QUERY[1]).reshape(-1).astype(np.int64)
    if len(query) == 0 or query.min() < 1 or query.max() > len(test):
        raise TrinetError(f"{query_path}: the query indices must lie in 1-{len(test)} (the test tracklets)")
    chosen = set((query - 1).tolist())

    def rows_of(tracks: list[list[str]]) -> list[Row]:
        out = []
        for track in tracks:
            parsed = MARS.parse(track[0])
            assert parsed is not None
            pid = JUNK_PID if parsed[0] == "00-1" else parsed[0]
            out += [(pid, path) for path in track]
        return out

    missing = [path for track in train + test for path in track
               if not os.path.isfile(os.path.join(root, path))]
    if missing:
        raise TrinetError(f"{root}: {len(missing)} frames listed by {MARS_INFO}/ not found: "
                          f"{listing(missing)}. Extract the whole release.")
    return {"train": rows_of(train),
            "query": rows_of([t for i, t in enumerate(test) if i in chosen]),
            "test": rows_of([t for i, t in enumerate(test) if i not in chosen])}, []


# ---------------------------------------------------------------------------------------------------------
# iLIDS-VID and PRID2011: one tracklet per person and camera, 10 trials


def _by_person(rows: list[Row], naming: VideoNaming) -> dict[tuple[str, int], list[Row]]:
    grouped: dict[tuple[str, int], list[Row]] = {}
    for pid, path in rows:
        parsed = naming.parse(path)
        assert parsed is not None
        grouped.setdefault((pid, parsed[1]), []).append((pid, path))
    return grouped


def _scan_by_person(root: str, folders: list[str], naming: VideoNaming
                    ) -> tuple[dict[tuple[str, int], list[Row]], list[str]]:
    """The frames of every folder grouped by (person, camera) (`_by_person`), and the skipped files."""
    rows, skipped = [], []
    for folder in folders:
        found, clutter = scan_frames(root, folder, naming)
        rows += found
        skipped += clutter
    return _by_person(rows, naming), skipped


def _two_camera_split(grouped: dict[tuple[str, int], list[Row]], train: list[str], test: list[str]
                      ) -> dict[str, list[Row]]:
    """train: both cameras of the `train` persons; query: camera 1 of `test`; test (gallery): camera 2."""
    return {"train": [row for pid in train for camera in (1, 2) for row in grouped[(pid, camera)]],
            "query": [row for pid in test for row in grouped[(pid, 1)]],
            "test": [row for pid in test for row in grouped[(pid, 2)]]}


ILIDSVID_RELEASE = (f"the folder that holds {ILIDSVID_SEQUENCES.split('/')[0]}/ and "
                    "'train-test people splits/'")


def read_ilidsvid(root: str, trial: int) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of iLIDS-VID, trial `trial` of the release's split file."""
    folders = [f"{ILIDSVID_SEQUENCES}/{camera}" for camera in ILIDSVID_CAMERAS]
    check_layout(root, folders, [ILIDSVID_SPLITS[0]], "iLIDS-VID", ILIDSVID_RELEASE,
                 has_all(folders, [ILIDSVID_SPLITS[0]]))
    grouped, skipped = _scan_by_person(root, folders, ILIDSVID)
    persons = sorted({pid for pid, camera in grouped if camera == 1})
    one_camera = sorted(set(persons) ^ {pid for pid, camera in grouped if camera == 2})
    if one_camera:
        raise TrinetError(f"{root}: iLIDS-VID has each person in both cameras, but {len(one_camera)} are in "
                          f"one only: {listing(one_camera)}")
    split_path = os.path.join(root, ILIDSVID_SPLITS[0])
    splits = load_mat(split_path, ILIDSVID_SPLITS[1]).astype(np.int64)
    if splits.ndim != 2 or trial >= len(splits) or splits.shape[1] != len(persons) or \
            sorted(splits[trial].tolist()) != list(range(1, len(persons) + 1)):
        raise TrinetError(f"{split_path}: {ILIDSVID_SPLITS[1]} must hold at least {trial + 1} permutations "
                          f"of the persons 1-{len(persons)} (the sorted person folders of cam1/), found "
                          f"shape {splits.shape}")
    half = len(persons) // 2
    test = sorted(persons[i - 1] for i in splits[trial, :half])
    train = sorted(persons[i - 1] for i in splits[trial, half:])
    return _two_camera_split(grouped, train, test), skipped


PRID2011_RELEASE = "the prid_2011 folder with multi_shot/cam_a/ and multi_shot/cam_b/"


def read_prid2011(root: str, trial: int) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of PRID2011: the persons seen by both cameras, split into halves by `trial_split`."""
    folders = list(PRID2011_FOLDERS)
    check_layout(root, folders, (), "PRID2011", PRID2011_RELEASE, has_all(folders))
    grouped, skipped = _scan_by_person(root, folders, PRID2011)
    both = sorted({pid for pid, camera in grouped if camera == 1}
                  & {pid for pid, camera in grouped if camera == 2})
    if len(both) < 2:
        raise TrinetError(f"{root}: PRID2011's protocol uses the persons seen by both cameras, found "
                          f"{len(both)}")
    train, test = trial_split(both, trial)
    return _two_camera_split(grouped, train, test), skipped


# ---------------------------------------------------------------------------------------------------------
# DukeMTMC-VideoReID

DUKE_VIDEO_RELEASE = "the DukeMTMC-VideoReID folder with train/, query/ and gallery/"


def read_duke_video(root: str) -> tuple[dict[str, list[Row]], list[str]]:
    folders = list(DUKE_VIDEO_FOLDERS.values())
    check_layout(root, folders, (), "DukeMTMC-VideoReID", DUKE_VIDEO_RELEASE, has_all(folders))
    rows: dict[str, list[Row]] = {}
    skipped: list[str] = []
    for split, folder in DUKE_VIDEO_FOLDERS.items():
        rows[split], clutter = scan_frames(root, folder, DUKE_VIDEO)
        skipped += clutter
    return rows, skipped


#: The converters of this family, by registry name. `expected` holds the counts of the papers where they
#: are known (None: not checked).
CONVERTERS: dict[str, Converter] = {
    "mars": Converter(
        "mars", "MARS", MARS_RELEASE, csv_names("mars"),
        {"train": (509914, 625), "query": (None, None), "test": (None, None)},
        MARKET_LABELS, ("test",), read_mars, excluder="camera", frame_info=frame_info(MARS)),
    "ilidsvid": Converter(
        "ilidsvid", "iLIDS-VID", ILIDSVID_RELEASE, csv_names("ilidsvid_trial{trial}"),
        {"train": (None, 150), "query": (None, 150), "test": (None, 150)},
        {}, (), read_ilidsvid, trials=10, excluder="camera", frame_info=frame_info(ILIDSVID)),
    "prid2011": Converter(
        "prid2011", "PRID2011", PRID2011_RELEASE, csv_names("prid2011_trial{trial}"),
        {"train": (None, 100), "query": (None, 100), "test": (None, 100)},
        {}, (), read_prid2011, trials=10, excluder="camera", frame_info=frame_info(PRID2011)),
    "duke-video": Converter(
        "duke-video", "DukeMTMC-VideoReID", DUKE_VIDEO_RELEASE, csv_names("dukevideo"),
        {"train": (None, 702), "query": (None, 702), "test": (None, 1110)},
        {}, (), read_duke_video, excluder="camera", frame_info=frame_info(DUKE_VIDEO)),
}
