"""The releases without a fixed split, VIPeR and CUHK01: two cameras, and a protocol that averages 10 trials,
each a random half of the identities for training and the other half for testing."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.data.converters.layout import Converter, Row, check_layout, csv_names, has_all, scan_folder
from trinet.data.naming import CUHK01, CUHK01_FOLDER, VIPER, VIPER_FOLDERS


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
    check_layout(root, folders, (), "VIPeR", VIPER_RELEASE, has_all(folders))
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
    check_layout(root, [CUHK01_FOLDER], (), "CUHK01", CUHK01_RELEASE,
                 has_all([CUHK01_FOLDER], naming=CUHK01))
    rows, skipped = scan_folder(root, CUHK01_FOLDER, CUHK01, "CUHK01")
    train, test = trial_split(sorted({pid for pid, _ in rows}), trial)
    train_set, test_set = set(train), set(test)

    def camera(path: str) -> int | None:
        match = CUHK01.match(CUHK01.tail(path))
        return None if match is None else CUHK01.camera(match["camera"])

    return {"train": [row for row in rows if row[0] in train_set],
            "query": [row for row in rows if row[0] in test_set and camera(row[1]) == 1],
            "test": [row for row in rows if row[0] in test_set and camera(row[1]) == 2]}, skipped


#: The converters of this family, by registry name.
CONVERTERS: dict[str, Converter] = {
    "viper": Converter(
        "viper", "VIPeR", VIPER_RELEASE, csv_names("viper_trial{trial}"),
        {"train": (632, 316), "query": (316, 316), "test": (316, 316)},
        {}, (), read_viper, trials=10, excluder="viper"),
    "cuhk01": Converter(
        "cuhk01", "CUHK01", CUHK01_RELEASE, csv_names("cuhk01_trial{trial}"),
        {"train": (1940, 485), "query": (972, 486), "test": (972, 486)},
        {}, (), read_cuhk01, trials=10, excluder="cuhk01"),
}
