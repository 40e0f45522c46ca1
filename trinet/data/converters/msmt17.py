"""MSMT17 (V1 and V2): images listed by the release's list files, train = list_train + list_val."""

from __future__ import annotations

import os

from trinet.core.errors import TrinetError, listing
from trinet.data.converters.layout import Converter, Row, check_layout, csv_names, has_all
from trinet.data.naming import MSMT17, MSMT17_LAYOUTS, MSMT17_LISTS

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
        return any(has_all(folders, lists)(path) for folders in MSMT17_LAYOUTS.values())

    check_layout(root, (train_folder, test_folder), lists, "MSMT17", MSMT17_RELEASE, looks_right)
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


#: The converter of this family, by registry name.
CONVERTERS: dict[str, Converter] = {
    "msmt17": Converter(
        "msmt17", "MSMT17", MSMT17_RELEASE, csv_names("msmt17"),
        {"train": (32621, 1041), "query": (11659, 3060), "test": (82161, 3060)},
        {}, (), read_msmt17, excluder="msmt17"),
}
