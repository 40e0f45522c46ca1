"""The retrieval benchmarks of unseen classes: CUB-200-2011, Cars196, Stanford Online Products, In-Shop.

Each release is read from its own list files, and split by classes so that no test class is seen in
training, as the metric-learning papers do (Song et al., "Deep Metric Learning via Lifted Structured
Feature Embedding", CVPR 2016, for CUB, Cars and SOP; Liu et al., "DeepFashion", CVPR 2016, for In-Shop;
the splits of Proxy-Anchor's and pytorch-metric-learning's loaders):

* `cub200` (CUB_200_2011/: `images.txt`, `image_class_labels.txt`, `images/`): classes 1-100 train
  (5,864 images), 101-200 test (5,924).
* `cars196` (the folder of the all-images release: `cars_annos.mat`, `car_ims/`): classes 1-98 train
  (8,054), 99-196 test (8,131).
* `sop` (Stanford_Online_Products/: `Ebay_train.txt`, `Ebay_test.txt`, one folder per super-class):
  59,551 images of 11,318 classes train, 60,502 of 11,316 test.
* `inshop` (In-shop Clothes Retrieval Benchmark: `Eval/list_eval_partition.txt`, `Img/img/`; or the list
  and `img/` in one folder): 25,882 images of 3,997 items train; query 14,218 and gallery 12,612 of the
  3,985 other items.

The identity (`pid`) is the class (CUB, Cars: zero-padded, `001`; SOP: `class_id`; In-Shop: the item,
`id_00000002`); paths are relative to the release folder (the `--image_root`). CUB, Cars and SOP write
`<name>_train.csv` and `<name>_test.csv`, the test set being both the queries and the gallery
(`evaluate.py --excluder diagonal`: each query leaves only itself out); In-Shop writes
`inshop_{train,query,gallery}.csv` (`--excluder none`). Each converter's `protocol` says which Recall@K
the papers report; the converter prints it with the evaluate.py command.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.data.converters.layout import Converter, RetrievalProtocol, Row, check_layout, csv_names, has_all

#: The splits of a release whose test set is query and gallery at once.
TRAIN_TEST = ("train", "test")

#: What Musgrave et al. (ECCV 2020) add to every benchmark.
MUSGRAVE = "MAP@R and R-precision (Musgrave et al. 2020)"


def _lines(path: str) -> Iterator[tuple[int, list[str]]]:
    """`(line number, fields)` of the non-blank lines of a text list; TrinetError for an unreadable file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise TrinetError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield number, line.split()


def _integer(text: str, where: str, what: str) -> int:
    if not text.isdigit():
        raise TrinetError(f"{where}: the {what} {text!r} is not a positive integer")
    return int(text)


def _check_exist(root: str, rows: list[Row], source: str) -> None:
    missing = [fid for _, fid in rows if not os.path.isfile(os.path.join(root, fid))]
    if missing:
        raise TrinetError(f"{source}: {len(missing)} of {len(rows)} listed images not found under {root}: "
                          f"{listing(missing)}. Extract the whole release.")


def _split_classes(rows: list[tuple[int, str]], last_train: int, num_classes: int, source: str,
                   pid: Callable[[int], str]) -> dict[str, list[Row]]:
    """Rows `(class, path)` -> train (classes 1 to `last_train`) and test (the others, up to
    `num_classes`)."""
    bad = sorted({c for c, _ in rows if not 1 <= c <= num_classes})
    if bad:
        raise TrinetError(f"{source}: classes {listing([str(c) for c in bad])} are outside 1-{num_classes}")
    return {"train": [(pid(c), path) for c, path in rows if c <= last_train],
            "test": [(pid(c), path) for c, path in rows if c > last_train]}


# ---------------------------------------------------------------------------------------------------------
# CUB-200-2011

CUB_RELEASE = "the CUB_200_2011 folder of CUB_200_2011.tgz"
CUB_FILES = ("images.txt", "image_class_labels.txt")


def _numbered(path: str, what: str) -> dict[int, str]:
    """`{image id: value}` of a CUB list of `<image id> <value>` lines; TrinetError for a bad or repeated
    id."""
    out: dict[int, str] = {}
    for number, fields in _lines(path):
        where = f"{path}:{number}"
        if len(fields) != 2:
            raise TrinetError(f"{where}: expected `<image id> <{what}>`, found {' '.join(fields)!r}")
        key = _integer(fields[0], where, "image id")
        if key in out:
            raise TrinetError(f"{where}: image id {key} is listed twice")
        out[key] = fields[1]
    if not out:
        raise TrinetError(f"{path}: the list is empty")
    return out


def read_cub200(root: str) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of CUB-200-2011: classes 1-100 train, 101-200 test (the official train_test_split.txt,
    which splits every class, is not the retrieval protocol)."""
    check_layout(root, ("images",), CUB_FILES, "CUB-200-2011", CUB_RELEASE, has_all(("images",), CUB_FILES))
    images = _numbered(os.path.join(root, "images.txt"), "path")
    labels_path = os.path.join(root, "image_class_labels.txt")
    labels = _numbered(labels_path, "class id")
    if set(images) != set(labels):
        only = sorted(set(images) ^ set(labels))
        raise TrinetError(f"{root}: images.txt and image_class_labels.txt list different image ids, e.g. "
                          f"{listing([str(i) for i in only])}; use the files of one release")
    rows = [(_integer(labels[i], f"{labels_path} (image {i})", "class id"), f"images/{images[i]}")
            for i in sorted(images)]
    _check_exist(root, [("", path) for _, path in rows], os.path.join(root, "images.txt"))
    return _split_classes(rows, 100, 200, labels_path, lambda c: f"{c:03d}"), []


# ---------------------------------------------------------------------------------------------------------
# Cars196

CARS_RELEASE = "the Stanford Cars folder of the all-images release, with cars_annos.mat and car_ims/"


def read_cars196(root: str) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of Cars196 from `cars_annos.mat` (read with scipy.io.loadmat): classes 1-98 train,
    99-196 test (the `test` flag of the annotations, which splits every class, is not the protocol)."""
    from trinet.data.converters.video import load_mat

    check_layout(root, ("car_ims",), ("cars_annos.mat",), "Cars196", CARS_RELEASE,
                 has_all(("car_ims",), ("cars_annos.mat",)))
    path = os.path.join(root, "cars_annos.mat")
    annotations = load_mat(path, "annotations").ravel()
    fields = annotations.dtype.names or ()
    if "relative_im_path" not in fields or "class" not in fields:
        raise TrinetError(f"{path}: `annotations` must be a struct array with the fields relative_im_path "
                          f"and class; it has {sorted(fields)}. Use the cars_annos.mat of the all-images "
                          "release (car_ims.tgz), not the devkit's cars_train_annos.mat")
    rows = []
    for i, entry in enumerate(annotations):
        image = np.asarray(entry["relative_im_path"]).ravel()
        label = np.asarray(entry["class"]).ravel()
        if len(image) != 1 or len(label) != 1 or not np.issubdtype(label.dtype, np.number):
            raise TrinetError(f"{path}: annotation {i + 1} has no single path and class number")
        rows.append((int(label[0]), str(image[0])))
    if not rows:
        raise TrinetError(f"{path}: no annotations")
    _check_exist(root, [("", p) for _, p in rows], path)
    return _split_classes(rows, 98, 196, path, lambda c: f"{c:03d}"), []


# ---------------------------------------------------------------------------------------------------------
# Stanford Online Products

SOP_RELEASE = "the Stanford_Online_Products folder, with Ebay_train.txt, Ebay_test.txt and the image folders"
SOP_HEADER = ["image_id", "class_id", "super_class_id", "path"]


def read_sop_list(root: str, name: str) -> list[Row]:
    """The `(class_id, path)` rows of `Ebay_train.txt` or `Ebay_test.txt` (header `image_id class_id
    super_class_id path`)."""
    path = os.path.join(root, name)
    rows: list[Row] = []
    for number, fields in _lines(path):
        where = f"{path}:{number}"
        if not rows and fields == SOP_HEADER:
            continue
        if len(fields) != 4:
            raise TrinetError(f"{where}: expected `{' '.join(SOP_HEADER)}`, found {' '.join(fields)!r}")
        for value, what in zip(fields[:3], SOP_HEADER[:3]):
            _integer(value, where, what)
        rows.append((fields[1], fields[3]))
    if not rows:
        raise TrinetError(f"{path}: the list is empty")
    _check_exist(root, rows, path)
    return rows


def read_sop(root: str) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of Stanford Online Products: `Ebay_train.txt` and `Ebay_test.txt`, whose classes differ."""
    lists = ("Ebay_train.txt", "Ebay_test.txt")
    check_layout(root, (), lists, "Stanford Online Products", SOP_RELEASE, has_all((), lists))
    rows = {"train": read_sop_list(root, lists[0]), "test": read_sop_list(root, lists[1])}
    shared = sorted({pid for pid, _ in rows["train"]} & {pid for pid, _ in rows["test"]}, key=int)
    if shared:
        raise TrinetError(f"{root}: classes {listing(shared)} are in both Ebay_train.txt and Ebay_test.txt; "
                          "the protocol's test classes are never seen in training")
    return rows, []


# ---------------------------------------------------------------------------------------------------------
# In-Shop Clothes

INSHOP_RELEASE = ("the In-shop Clothes Retrieval Benchmark folder, with Eval/list_eval_partition.txt and "
                  "Img/img/ (or list_eval_partition.txt and img/ side by side)")
INSHOP_LISTS = ("Eval/list_eval_partition.txt", "list_eval_partition.txt")
INSHOP_STATUS = {"train": "train", "query": "query", "gallery": "test"}


def _inshop_list(root: str) -> str | None:
    return next((name for name in INSHOP_LISTS if os.path.isfile(os.path.join(root, name))), None)


def read_inshop(root: str) -> tuple[dict[str, list[Row]], list[str]]:
    """The `read` of In-Shop: `list_eval_partition.txt` (a count, the header `image_name item_id
    evaluation_status`, then one line per image); train, query and gallery (written as the `test` split)."""
    name = _inshop_list(root) if os.path.isdir(root) else None
    if name is None:
        check_layout(root, (), INSHOP_LISTS[:1], "In-Shop Clothes", INSHOP_RELEASE,
                     lambda path: _inshop_list(path) is not None)
    assert name is not None
    path = os.path.join(root, name)
    rows: dict[str, list[Row]] = {split: [] for split in INSHOP_STATUS.values()}
    for number, fields in _lines(path):
        where = f"{path}:{number}"
        if number <= 2 and (fields == ["image_name", "item_id", "evaluation_status"]
                            or (len(fields) == 1 and fields[0].isdigit())):
            continue
        if len(fields) != 3 or fields[2] not in INSHOP_STATUS:
            raise TrinetError(f"{where}: expected `image_name item_id evaluation_status` with a status of "
                              f"{sorted(INSHOP_STATUS)}, found {' '.join(fields)!r}")
        rows[INSHOP_STATUS[fields[2]]].append((fields[1], fields[0]))
    if not any(rows.values()):
        raise TrinetError(f"{path}: the list is empty")
    # The listed paths start with img/; the release keeps img/ inside Img/.
    first = next(fid for split_rows in rows.values() for _, fid in split_rows)
    prefix = next((p for p in ("", "Img/") if os.path.isfile(os.path.join(root, p + first))), "")
    rows = {split: [(pid, prefix + fid) for pid, fid in split_rows] for split, split_rows in rows.items()}
    for split_rows in rows.values():
        _check_exist(root, split_rows, path)
    test_items = {pid for pid, _ in rows["query"]} | {pid for pid, _ in rows["test"]}
    shared = sorted({pid for pid, _ in rows["train"]} & test_items)
    if shared:
        raise TrinetError(f"{path}: items {listing(shared)} are both train and query/gallery; the "
                          "protocol's test items are never seen in training")
    return rows, []


#: The protocols, by converter name.
PROTOCOLS: dict[str, RetrievalProtocol] = {
    "cub200": RetrievalProtocol((1, 2, 4, 8), "test", "test", "diagonal",
                                f"Recall@1,2,4,8 and NMI (Song et al. 2016), {MUSGRAVE}"),
    "cars196": RetrievalProtocol((1, 2, 4, 8), "test", "test", "diagonal",
                                 f"Recall@1,2,4,8 and NMI (Song et al. 2016), {MUSGRAVE}"),
    "sop": RetrievalProtocol((1, 10, 100, 1000), "test", "test", "diagonal",
                             f"Recall@1,10,100,1000 and NMI (Song et al. 2016), {MUSGRAVE}"),
    "inshop": RetrievalProtocol((1, 10, 20, 30, 40), "query", "test", "none",
                                "Recall@1,10,20,30,40 (Liu et al. 2016: top-k retrieval accuracy)"),
}

#: The converters of this family, by registry name.
CONVERTERS: dict[str, Converter] = {
    "cub200": Converter(
        "cub200", "CUB-200-2011", CUB_RELEASE, csv_names("cub200", TRAIN_TEST),
        {"train": (5864, 100), "test": (5924, 100)}, {}, (), read_cub200, excluder="diagonal",
        splits=TRAIN_TEST, protocol=PROTOCOLS["cub200"]),
    "cars196": Converter(
        "cars196", "Cars196", CARS_RELEASE, csv_names("cars196", TRAIN_TEST),
        {"train": (8054, 98), "test": (8131, 98)}, {}, (), read_cars196, excluder="diagonal",
        splits=TRAIN_TEST, protocol=PROTOCOLS["cars196"]),
    "sop": Converter(
        "sop", "Stanford Online Products", SOP_RELEASE, csv_names("sop", TRAIN_TEST),
        {"train": (59551, 11318), "test": (60502, 11316)}, {}, (), read_sop, excluder="diagonal",
        splits=TRAIN_TEST, protocol=PROTOCOLS["sop"]),
    "inshop": Converter(
        "inshop", "In-Shop Clothes", INSHOP_RELEASE,
        {"train": "inshop_train.csv", "query": "inshop_query.csv", "test": "inshop_gallery.csv"},
        {"train": (25882, 3997), "query": (14218, 3985), "test": (12612, 3985)}, {}, (), read_inshop,
        excluder="none", protocol=PROTOCOLS["inshop"]),
}
