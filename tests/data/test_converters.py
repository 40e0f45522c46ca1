"""Dataset converters on tiny folders that mimic each official release."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from trinet.console.commands import run_main
from trinet.core.errors import TrinetError
from trinet.data.converters import registry, trials
from trinet.data.datasets import load_dataset


#: Enough of a JPEG/PNG header for anything that sniffs the first bytes.
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 12
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8


def touch(path, data: bytes = JPEG) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_files(root, names, data: bytes = JPEG):
    for name in names:
        touch(os.path.join(root, name), data)
    return str(root)


# --- Mimic releases: real names and layout, a handful of files each -----------------------------------

def make_market(parent) -> str:
    """Market-1501-v15.09.15 with junk (-1) and distractors (0000) in bounding_box_test and Thumbs.db
    files, as in the release; gt_bbox/ and gt_query/ exist but are not converted."""
    return make_files(os.path.join(parent, "Market-1501-v15.09.15"), [
        "bounding_box_train/0002_c1s1_000451_03.jpg",
        "bounding_box_train/0002_c1s1_000551_01.jpg",
        "bounding_box_train/0007_c2s3_070952_01.jpg",
        "bounding_box_train/Thumbs.db",
        "query/0001_c1s1_001051_00.jpg",
        "query/0003_c3s3_064744_00.jpg",
        "bounding_box_test/0003_c1s6_015971_02.jpg",
        "bounding_box_test/0001_c2s1_000301_01.jpg",
        "bounding_box_test/-1_c1s1_000401_03.jpg",
        "bounding_box_test/0000_c1s1_000151_01.jpg",
        "bounding_box_test/-1_c3s1_000551_02.jpg",
        "bounding_box_test/0001_c6s1_002052_03.jpg",
        "bounding_box_test/Thumbs.db",
        "gt_bbox/0001_c1s1_001051_00.jpg",
        "gt_query/0001_c1s1_001051_00_good.mat",
        "readme.txt",
    ])


def make_duke(parent) -> str:
    return make_files(os.path.join(parent, "DukeMTMC-reID"), [
        "bounding_box_train/0005_c2_f0046985.jpg",
        "bounding_box_train/0005_c5_f0051341.jpg",
        "bounding_box_train/0008_c1_f0052167.jpg",
        "query/0011_c2_f0047008.jpg",
        "bounding_box_test/0011_c8_f0008591.jpg",
        "bounding_box_test/0011_c1_f0053155.jpg",
        "bounding_box_test/7140_c7_f0175103.jpg",
        "CITATION_DukeMTMC-reID.txt",
        "LICENSE_DukeMTMC-reID.txt",
    ])


def make_cuhk03np(parent) -> str:
    root = os.path.join(parent, "cuhk03-np")
    for subset in ("detected", "labeled"):
        make_files(os.path.join(root, subset), [
            "bounding_box_train/0001_c1_1.png",
            "bounding_box_train/0001_c2_6.png",
            "bounding_box_train/0003_c1_2.png",
            "query/0002_c1_1.png",
            "query/0002_c2_7.png",
            "bounding_box_test/0002_c1_3.png",
            "bounding_box_test/0002_c2_8.png",
            "bounding_box_test/1467_c2_9.png",
        ], PNG)
    return root


MSMT17_LISTS = {
    "list_train.txt": ["0000/0000_000_01_0303morning_0015_0.jpg 0",
                       "0000/0000_046_12_0303morning_0006_2_ex.jpg 0",
                       "0001/0001_000_03_0113noon_0100_1.jpg 1"],
    "list_val.txt": ["0000/0000_010_04_0303noon_0020_1.jpg 0"],
    "list_query.txt": ["0000/0000_000_02_0302afternoon_0200_0.jpg 0",
                       "0001/0001_000_15_0114morning_0300_3.jpg 1"],
    "list_gallery.txt": ["0000/0000_001_07_0302afternoon_0210_0.jpg 0",
                         "0001/0001_002_14_0114morning_0310_1.jpg 1",
                         "0002/0002_000_09_0114noon_0400_2.jpg 2"],
}


def make_msmt17(parent, name="MSMT17_V1", folders=("train", "test"), lists=None) -> str:
    """MSMT17_V1: train/ and test/ with a folder per person, and the four list files."""
    root = os.path.join(parent, name)
    for list_name, lines in (lists or MSMT17_LISTS).items():
        folder = folders[0] if list_name in ("list_train.txt", "list_val.txt") else folders[1]
        make_files(os.path.join(root, folder), [line.split()[0] for line in lines])
        with open(os.path.join(root, list_name), "w") as f:
            f.write("\n".join(lines) + "\n")
    return root


#: Bytes that start a BMP file.
BMP = b"BM" + b"\0" * 14


def make_viper(parent) -> str:
    """VIPeR (VIPeR.v1.0.zip): cam_a/ and cam_b/ with one image per person, named by the pair's number
    (with gaps) and the viewpoint angle, which differs between the cameras."""
    return make_files(os.path.join(parent, "VIPeR"), [
        "cam_a/000_45.bmp", "cam_a/001_90.bmp", "cam_a/003_0.bmp", "cam_a/005_180.bmp", "cam_a/Thumbs.db",
        "cam_b/000_90.bmp", "cam_b/001_0.bmp", "cam_b/003_45.bmp", "cam_b/005_135.bmp",
    ], BMP)


def make_cuhk01(parent) -> str:
    """CUHK01 (CUHK01.zip extracted): campus/ with four images per person, 001-002 camera 1, 003-004
    camera 2."""
    return make_files(os.path.join(parent, "CUHK01"), [
        f"campus/{pid}{image:03d}.png" for pid in ("0001", "0002", "0971") for image in range(1, 5)
    ] + ["campus/Thumbs.db"], PNG)


MIMICS = {
    "market1501": make_market,
    "duke": make_duke,
    "cuhk03-detected": make_cuhk03np,
    "cuhk03-labeled": make_cuhk03np,
    "msmt17": make_msmt17,
    "viper": make_viper,
    "cuhk01": make_cuhk01,
}


def _video_mimic(name):
    def make(parent):
        from test_video_converters import VIDEO_MIMICS
        return VIDEO_MIMICS[name](parent)
    return make


MIMICS.update({name: _video_mimic(name) for name in ("mars", "ilidsvid", "prid2011", "duke-video")})


def _retrieval_mimic(name):
    def make(parent):
        from test_retrieval_converters import MAKERS
        return MAKERS[name](parent)
    return make


MIMICS.update({name: _retrieval_mimic(name) for name in ("cub200", "cars196", "sop", "inshop")})


def read_lines(path) -> list[str]:
    with open(path) as f:
        return f.read().splitlines()


# --- The registry ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(registry.CONVERTERS))
def test_every_converter_runs_on_its_mimic(name, tmp_path):
    assert name in MIMICS, f"add a mimic release for the new converter {name!r}"
    converter = registry.CONVERTERS[name]
    assert converter.name == name
    assert set(converter.csv_names) == set(converter.expected) == set(converter.splits)
    assert converter.splits in (registry.SPLITS, ("train", "test"))
    conversion = registry.convert(name, MIMICS[name](tmp_path))
    assert set(conversion.rows) == set(converter.splits)
    for split in converter.splits:
        assert conversion.rows[split], split
        assert [fid for _, fid in conversion.rows[split]] == sorted(fid for _, fid in conversion.rows[split])
        for _, fid in conversion.rows[split]:
            assert os.path.isfile(os.path.join(conversion.release_dir, fid)), fid


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(TrinetError,
                       match=r"Unknown dataset 'market'; expected one of "
                             r"\['cars196', 'cub200', 'cuhk01', .*'sop', 'viper'\]"):
        registry.convert("market", "/nonexistent")


# --- Market-1501 -----------------------------------------------------------------------------------------

def test_market1501_rows_keep_junk_and_distractors(tmp_path):
    release = make_market(tmp_path / "releases")
    conversion = registry.convert("market1501", release)
    assert conversion.rows["train"] == [
        ("0002", "bounding_box_train/0002_c1s1_000451_03.jpg"),
        ("0002", "bounding_box_train/0002_c1s1_000551_01.jpg"),
        ("0007", "bounding_box_train/0007_c2s3_070952_01.jpg"),
    ]
    assert conversion.rows["query"] == [
        ("0001", "query/0001_c1s1_001051_00.jpg"),
        ("0003", "query/0003_c3s3_064744_00.jpg"),
    ]
    # Sorted by path, so the junk comes first, as in the original market1501_test.csv.
    assert conversion.rows["test"] == [
        ("-1", "bounding_box_test/-1_c1s1_000401_03.jpg"),
        ("-1", "bounding_box_test/-1_c3s1_000551_02.jpg"),
        ("0000", "bounding_box_test/0000_c1s1_000151_01.jpg"),
        ("0001", "bounding_box_test/0001_c2s1_000301_01.jpg"),
        ("0001", "bounding_box_test/0001_c6s1_002052_03.jpg"),
        ("0003", "bounding_box_test/0003_c1s6_015971_02.jpg"),
    ]
    assert sorted(conversion.skipped) == ["bounding_box_test/Thumbs.db", "bounding_box_train/Thumbs.db"]
    test = conversion.stats("test")
    assert (test.rows, test.identities, test.special) == (6, 2, {"-1": 2, "0000": 1})
    assert conversion.stats("train").special == {"-1": 0, "0000": 0}

    written = registry.write_conversion(conversion, str(tmp_path / "csv"))
    assert sorted(os.listdir(tmp_path / "csv")) == [
        "market1501_query.csv", "market1501_test.csv", "market1501_train.csv"]
    assert read_lines(written["train"]) == [
        "pid,path,camera",
        "0002,bounding_box_train/0002_c1s1_000451_03.jpg,1",
        "0002,bounding_box_train/0002_c1s1_000551_01.jpg,1",
        "0007,bounding_box_train/0007_c2s3_070952_01.jpg,2",
    ]
    assert read_lines(written["test"])[:4] == [
        "pid,path,camera",
        "-1,bounding_box_test/-1_c1s1_000401_03.jpg,1",
        "-1,bounding_box_test/-1_c3s1_000551_02.jpg,3",
        "0000,bounding_box_test/0000_c1s1_000151_01.jpg,1",
    ]
    # The written file is a valid trinet dataset whose images exist under the release folder.
    dataset = load_dataset(written["test"], release)
    assert list(dataset.pids) == ["-1", "-1", "0000", "0001", "0001", "0003"]


def test_counts_that_differ_from_the_official_release_are_warnings(tmp_path):
    conversion = registry.convert("market1501", make_market(tmp_path))
    assert len(conversion.warnings) == 3
    train, query, test = conversion.warnings
    official = "the official release has"
    assert train.startswith(f"market1501 train: 3 images of 2 identities, {official} 12,936 of 751")
    assert query.startswith(f"market1501 query: 2 images of 2 identities, {official} 3,368 of 750")
    assert test.startswith(f"market1501 test: 6 images of 2 identities, {official} 19,732 of 750")
    assert "subset" in train


def test_official_counts_give_no_warning():
    converter = dataclasses.replace(registry.CONVERTERS["market1501"],
                                    expected={"train": (2, 2), "query": (1, 1), "test": (3, 1)})
    rows = {"train": [("0002", "a"), ("0007", "b")], "query": [("0001", "c")],
            "test": [("-1", "d"), ("0000", "e"), ("0001", "f")]}
    assert registry.check_counts(converter, rows) == []
    rows["train"].append(("0007", "g"))
    assert registry.check_counts(converter, rows) == [
        "market1501 train: 3 images of 2 identities, the official release has 2 of 2. Fine for a subset; "
        "otherwise check that the release was extracted completely."]


def test_junk_outside_the_gallery_is_a_warning(tmp_path):
    release = make_market(tmp_path)
    touch(os.path.join(release, "bounding_box_train", "-1_c1s1_000401_03.jpg"))
    conversion = registry.convert("market1501", release)
    assert ("-1", "bounding_box_train/-1_c1s1_000401_03.jpg") in conversion.rows["train"]
    assert ("market1501 train: 1 junk (-1) images; the Market-1501 protocol has them only in test."
            in conversion.warnings)
    assert not any(w.startswith("market1501 test: 2 junk") for w in conversion.warnings)


def test_parent_folder_names_what_is_missing_and_the_release_inside(tmp_path):
    release = make_market(tmp_path / "datasets")
    with pytest.raises(TrinetError) as error:
        registry.convert("market1501", str(tmp_path / "datasets"))
    message = str(error.value)
    assert "does not look like the extracted Market-1501 release" in message
    assert "missing bounding_box_train/, query/, bounding_box_test/" in message
    assert "Market-1501-v15.09.15 folder" in message
    assert f"Did you mean {release}?" in message


def test_hint_skips_a_release_with_the_same_layout_but_other_names(tmp_path):
    make_duke(tmp_path / "datasets")
    with pytest.raises(TrinetError) as error:
        registry.convert("market1501", str(tmp_path / "datasets"))
    assert "Did you mean" not in str(error.value)
    release = make_market(tmp_path / "datasets")
    with pytest.raises(TrinetError, match=f"Did you mean {release}\\?$"):
        registry.convert("market1501", str(tmp_path / "datasets"))


def test_split_folder_given_suggests_the_release(tmp_path):
    release = make_market(tmp_path)
    with pytest.raises(TrinetError, match=f"Did you mean {release}\\?"):
        registry.convert("market1501", os.path.join(release, "query"))


def test_missing_query_folder(tmp_path):
    release = make_market(tmp_path)
    for name in os.listdir(os.path.join(release, "query")):
        os.remove(os.path.join(release, "query", name))
    os.rmdir(os.path.join(release, "query"))
    with pytest.raises(TrinetError, match=r"missing query/\. Expected the Market-1501-v15.09.15 folder with "
                                          r"bounding_box_train/, query/, bounding_box_test/\.$"):
        registry.convert("market1501", release)


def test_release_folder_not_found_or_a_file(tmp_path):
    with pytest.raises(TrinetError, match="Release folder .*nowhere not found"):
        registry.convert("duke", str(tmp_path / "nowhere"))
    touch(tmp_path / "DukeMTMC-reID.zip")
    with pytest.raises(TrinetError, match="is a file, not a folder; extract the DukeMTMC-reID release"):
        registry.convert("duke", str(tmp_path / "DukeMTMC-reID.zip"))


def test_badly_named_files_are_named_with_the_pattern(tmp_path):
    release = make_market(tmp_path)
    touch(os.path.join(release, "bounding_box_train", "0002_c7s1_000451_03.jpg"))  # there is no camera 7
    touch(os.path.join(release, "bounding_box_train", "img001.jpg"))
    os.makedirs(os.path.join(release, "bounding_box_train", "extra"))
    with pytest.raises(TrinetError) as error:
        registry.convert("market1501", release)
    message = str(error.value)
    assert message.startswith(os.path.join(release, "bounding_box_train") + ": 3 file(s) do not follow")
    assert "PPPP_cCsS_FFFFFF_BB.jpg, e.g. 0002_c1s1_000451_03.jpg" in message
    assert message.endswith(": 0002_c7s1_000451_03.jpg, extra/, img001.jpg")


def test_split_with_only_clutter_is_an_error(tmp_path):
    release = make_market(tmp_path)
    for name in os.listdir(os.path.join(release, "query")):
        os.remove(os.path.join(release, "query", name))
    touch(os.path.join(release, "query", "Thumbs.db"))
    touch(os.path.join(release, "query", ".DS_Store"))
    with pytest.raises(TrinetError, match=r"query: no images; expected files named like 0002_c1s1_000451_03"):
        registry.convert("market1501", release)


# --- DukeMTMC-reID ---------------------------------------------------------------------------------------

def test_duke_rows(tmp_path):
    conversion = registry.convert("duke", make_duke(tmp_path))
    assert conversion.rows == {
        "train": [("0005", "bounding_box_train/0005_c2_f0046985.jpg"),
                  ("0005", "bounding_box_train/0005_c5_f0051341.jpg"),
                  ("0008", "bounding_box_train/0008_c1_f0052167.jpg")],
        "query": [("0011", "query/0011_c2_f0047008.jpg")],
        "test": [("0011", "bounding_box_test/0011_c1_f0053155.jpg"),
                 ("0011", "bounding_box_test/0011_c8_f0008591.jpg"),
                 ("7140", "bounding_box_test/7140_c7_f0175103.jpg")],
    }
    assert conversion.stats("test").special == {}
    assert conversion.converter.csv_names == {
        "train": "dukeMTMC_train.csv", "query": "dukeMTMC_query.csv", "test": "dukeMTMC_test.csv"}


def test_duke_refuses_market_names(tmp_path):
    release = make_duke(tmp_path)
    touch(os.path.join(release, "query", "0002_c1s1_000451_03.jpg"))
    with pytest.raises(TrinetError, match=r"1 file\(s\) do not follow the DukeMTMC-reID naming "
                                          r"PPPP_cC_fFFFFFFF.jpg.*: 0002_c1s1_000451_03.jpg$"):
        registry.convert("duke", release)


# --- CUHK03-NP -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subset", ["detected", "labeled"])
def test_cuhk03np_rows(subset, tmp_path):
    conversion = registry.convert(f"cuhk03-{subset}", make_cuhk03np(tmp_path))
    assert conversion.rows == {
        "train": [("0001", f"{subset}/bounding_box_train/0001_c1_1.png"),
                  ("0001", f"{subset}/bounding_box_train/0001_c2_6.png"),
                  ("0003", f"{subset}/bounding_box_train/0003_c1_2.png")],
        "query": [("0002", f"{subset}/query/0002_c1_1.png"),
                  ("0002", f"{subset}/query/0002_c2_7.png")],
        "test": [("0002", f"{subset}/bounding_box_test/0002_c1_3.png"),
                 ("0002", f"{subset}/bounding_box_test/0002_c2_8.png"),
                 ("1467", f"{subset}/bounding_box_test/1467_c2_9.png")],
    }
    assert conversion.converter.csv_names["test"] == f"cuhk03np_{subset}_test.csv"


def test_cuhk03np_subset_folder_given_suggests_its_parent(tmp_path):
    root = make_cuhk03np(tmp_path)
    with pytest.raises(TrinetError) as error:
        registry.convert("cuhk03-labeled", os.path.join(root, "labeled"))
    message = str(error.value)
    assert "missing labeled/bounding_box_train/, labeled/query/, labeled/bounding_box_test/" in message
    assert "the cuhk03-np folder that holds detected/ and labeled/" in message
    assert message.endswith(f"Did you mean {root}?")


def test_cuhk03np_refuses_jpg_and_a_third_camera(tmp_path):
    root = make_cuhk03np(tmp_path)
    touch(os.path.join(root, "detected", "query", "0002_c1_2.jpg"))
    touch(os.path.join(root, "detected", "query", "0002_c3_2.png"), PNG)
    with pytest.raises(TrinetError, match=r"2 file\(s\) do not follow the CUHK03-NP detected naming "
                                          r"PPPP_cC_N.png.*: 0002_c1_2.jpg, 0002_c3_2.png$"):
        registry.convert("cuhk03-detected", root)
    labeled = registry.convert("cuhk03-labeled", root)  # the other subset is not affected
    assert labeled.rows["query"][0] == ("0002", "labeled/query/0002_c1_1.png")


# --- MSMT17 ----------------------------------------------------------------------------------------------

def test_msmt17_rows_train_is_train_plus_val(tmp_path):
    conversion = registry.convert("msmt17", make_msmt17(tmp_path))
    assert conversion.rows == {
        # list_train.txt and list_val.txt merged, sorted by path.
        "train": [("0000", "train/0000/0000_000_01_0303morning_0015_0.jpg"),
                  ("0000", "train/0000/0000_010_04_0303noon_0020_1.jpg"),
                  ("0000", "train/0000/0000_046_12_0303morning_0006_2_ex.jpg"),
                  ("0001", "train/0001/0001_000_03_0113noon_0100_1.jpg")],
        "query": [("0000", "test/0000/0000_000_02_0302afternoon_0200_0.jpg"),
                  ("0001", "test/0001/0001_000_15_0114morning_0300_3.jpg")],
        "test": [("0000", "test/0000/0000_001_07_0302afternoon_0210_0.jpg"),
                 ("0001", "test/0001/0001_002_14_0114morning_0310_1.jpg"),
                 ("0002", "test/0002/0002_000_09_0114noon_0400_2.jpg")],
    }
    assert conversion.converter.csv_names == {
        "train": "msmt17_train.csv", "query": "msmt17_query.csv", "test": "msmt17_test.csv"}
    assert conversion.warnings[0].startswith("msmt17 train: 4 images of 2 identities, the official release "
                                             "has 32,621 of 1,041")


def test_msmt17_v2_layout(tmp_path):
    lists = {name: [line.replace(".jpg", ".jpeg") for line in lines] for name, lines in MSMT17_LISTS.items()}
    root = make_msmt17(tmp_path, "MSMT17_V2", ("mask_train_v2", "mask_test_v2"), lists)
    conversion = registry.convert("msmt17", root)
    assert conversion.rows["train"][0] == ("0000", "mask_train_v2/0000/0000_000_01_0303morning_0015_0.jpeg")
    assert conversion.rows["test"][-1] == ("0002", "mask_test_v2/0002/0002_000_09_0114noon_0400_2.jpeg")


def test_msmt17_missing_list_and_parent_folder(tmp_path):
    root = make_msmt17(tmp_path / "msmt17")
    with pytest.raises(TrinetError) as error:
        registry.convert("msmt17", str(tmp_path / "msmt17"))
    message = str(error.value)
    assert "missing train/, test/, list_train.txt, list_val.txt, list_query.txt, list_gallery.txt" in message
    assert message.endswith(f"Did you mean {root}?")
    os.remove(os.path.join(root, "list_val.txt"))
    with pytest.raises(TrinetError, match=r"release: missing list_val.txt\. Expected the MSMT17_V1 folder"):
        registry.convert("msmt17", root)


@pytest.mark.parametrize("line, message", [
    ("0001/0001_001_05_0113noon_0120_0.jpg", r"list_val.txt:1: expected `PPPP/NAME.jpg LABEL`, found"),
    ("0001/0001_001_16_0113noon_0120_0.jpg 1",
     r"list_val.txt:1: '0001_001_16_0113noon_0120_0.jpg' does not follow the MSMT17 naming "
     r"PPPP_NNN_CC_DDDDtime_FFFF_K\[_ex\].jpg"),
    ("0002/0001_001_05_0113noon_0120_0.jpg 1", r"list_val.txt:1: .* should be in folder 0001/"),
    ("0001/0001_001_05_0113noon_0120_0.jpg 7", r"list_val.txt:1: label '7' is not the person 0001"),
    ("0001/0001_009_05_0113noon_0120_0.jpg 1",
     r"list_val.txt: 1 of 1 listed images not found under .*: train/0001/0001_009_05_0113noon_0120_0.jpg"),
    ("0000/0000_000_01_0303morning_0015_0.jpg 0",
     r"1 image\(s\) listed twice in list_train.txt and list_val.txt: "
     r"train/0000/0000_000_01_0303morning_0015_0.jpg"),
])
def test_msmt17_bad_list_lines(line, message, tmp_path):
    root = make_msmt17(tmp_path)
    with open(os.path.join(root, "list_val.txt"), "w") as f:
        f.write(line + "\n")
    with pytest.raises(TrinetError, match=message):
        registry.convert("msmt17", root)


def test_msmt17_with_both_versions_is_refused(tmp_path):
    root = make_msmt17(tmp_path)
    os.makedirs(os.path.join(root, "mask_train_v2"))
    with pytest.raises(TrinetError, match="both MSMT17_V1 and MSMT17_V2"):
        registry.convert("msmt17", root)


# --- Command lines ---------------------------------------------------------------------------------------

def load_script(name):
    spec = importlib.util.spec_from_file_location(f"data_{name}", os.path.join(REPO, "data", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- VIPeR and CUHK01: random halves of the identities per trial -----------------------------------------

def test_trial_split_is_numpys_frozen_random_state():
    identities = [f"{i:03d}" for i in range(632)]
    train, test = trials.trial_split(identities[::-1], 0)  # the order given does not matter
    assert len(train) == len(test) == 316 and sorted(train + test) == identities
    # numpy.random.RandomState(0).permutation(632): these values are fixed by numpy's stream policy.
    assert train[:5] == ["000", "001", "003", "004", "005"]
    assert test[:5] == ["002", "009", "011", "013", "016"]
    train, test = trials.trial_split([f"{i:04d}" for i in range(1, 972)], 3)
    assert (len(train), len(test)) == (485, 486)
    assert train[:5] == ["0004", "0005", "0006", "0008", "0009"]  # RandomState(3): 3, 4, 5, 7, 8 + 1
    assert trials.trial_split(identities, 1) != trials.trial_split(identities, 0)


def test_viper_rows_of_a_trial(tmp_path):
    release = make_viper(tmp_path)
    # RandomState(0).permutation(4) = [2, 3, 1, 0]: training 003 and 005, test 000 and 001.
    conversion = registry.convert("viper", release)
    assert conversion.trial == 0 and conversion.csv_name("train") == "viper_trial0_train.csv"
    assert conversion.rows == {
        "train": [("003", "cam_a/003_0.bmp"), ("005", "cam_a/005_180.bmp"), ("003", "cam_b/003_45.bmp"),
                  ("005", "cam_b/005_135.bmp")],
        "query": [("000", "cam_a/000_45.bmp"), ("001", "cam_a/001_90.bmp")],
        "test": [("000", "cam_b/000_90.bmp"), ("001", "cam_b/001_0.bmp")],
    }
    assert conversion.skipped == ("cam_a/Thumbs.db",)
    # RandomState(4).permutation(4) = [0, 1, 3, 2]: the other half.
    conversion = registry.convert("viper", release, 4)
    assert [pid for pid, _ in conversion.rows["query"]] == ["003", "005"]
    assert conversion.csv_name("query") == "viper_trial4_query.csv"
    assert any("viper train: 4 images of 2 identities, the official release has 632 of 316" in w
               for w in conversion.warnings)


def test_viper_pairs_by_number_and_refuses_unpaired_or_doubled(tmp_path):
    release = make_viper(tmp_path)
    touch(os.path.join(release, "cam_a", "007_90.bmp"), BMP)
    with pytest.raises(TrinetError, match=r"1 number\(s\) are in one folder only: 007 \(only in cam_a/\)"):
        registry.convert("viper", release)
    touch(os.path.join(release, "cam_b", "007_90.bmp"), BMP)
    touch(os.path.join(release, "cam_b", "007_45.bmp"), BMP)
    with pytest.raises(TrinetError, match="one image per person and camera, but 1 person"):
        registry.convert("viper", release)


def test_viper_names_and_layout(tmp_path):
    release = make_viper(tmp_path)
    with pytest.raises(TrinetError, match=r"missing cam_a/, cam_b/.*Did you mean .*VIPeR"):
        registry.convert("viper", str(tmp_path))
    with pytest.raises(TrinetError, match="Did you mean"):
        registry.convert("viper", os.path.join(release, "cam_a"))
    touch(os.path.join(release, "cam_b", "frame_12.bmp"), BMP)
    with pytest.raises(TrinetError, match=r"do not follow the VIPeR naming cam_C/PPP_AAA.bmp.*frame_12.bmp"):
        registry.convert("viper", release)


def test_cuhk01_rows_of_a_trial(tmp_path):
    release = make_cuhk01(tmp_path)
    # RandomState(1).permutation(3) = [0, 2, 1]: training 0001 (3 // 2 = 1 identity), test 0002 and 0971.
    conversion = registry.convert("cuhk01", release, 1)
    assert conversion.rows == {
        "train": [("0001", f"campus/0001{i:03d}.png") for i in range(1, 5)],
        "query": [(pid, f"campus/{pid}{i:03d}.png") for pid in ("0002", "0971") for i in (1, 2)],
        "test": [(pid, f"campus/{pid}{i:03d}.png") for pid in ("0002", "0971") for i in (3, 4)],
    }
    assert conversion.skipped == ("campus/Thumbs.db",)
    # RandomState(0).permutation(3) = [2, 1, 0]: training 0971.
    assert {pid for pid, _ in registry.convert("cuhk01", release).rows["train"]} == {"0971"}


def test_cuhk01_refuses_a_fifth_image_and_suggests_the_parent(tmp_path):
    release = make_cuhk01(tmp_path)
    with pytest.raises(TrinetError, match=r"missing campus/.*Did you mean .*CUHK01"):
        registry.convert("cuhk01", os.path.join(release, "campus"))
    touch(os.path.join(release, "campus", "0001005.png"), PNG)
    with pytest.raises(TrinetError, match=r"do not follow the CUHK01 naming PPPPNNN.png.*0001005.png"):
        registry.convert("cuhk01", release)


@pytest.mark.parametrize("name, trial, message", [
    ("viper", 10, "the VIPeR protocol has the trials 0 to 9"),
    ("market1501", 0, "--trial 0: Market-1501 has one fixed train/test split; --trial applies to cuhk01, "
                      "ilidsvid, prid2011, viper (random halves"),
])
def test_trial_out_of_range_or_for_a_fixed_split(name, trial, message, tmp_path):
    with pytest.raises(TrinetError, match=re.escape(message)):
        registry.convert(name, MIMICS[name](tmp_path), trial)


def test_convert_main_writes_the_trial_files(tmp_path, capsys):
    release = make_cuhk01(tmp_path)
    out = tmp_path / "out"
    assert run_main(load_script("convert").main, ["cuhk01", release, "--trial", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "trial 1 of 0-9 (identities split by numpy.random.RandomState(1))" in stdout
    assert sorted(os.listdir(out)) == ["cuhk01_trial1_query.csv", "cuhk01_trial1_test.csv",
                                       "cuhk01_trial1_train.csv"]
    assert read_lines(out / "cuhk01_trial1_query.csv") == [
        "pid,path,camera", "0002,campus/0002001.png,1", "0002,campus/0002002.png,1",
        "0971,campus/0971001.png,1", "0971,campus/0971002.png,1"]


def test_convert_main_prints_what_it_wrote(tmp_path, capsys):
    release = make_market(tmp_path)
    out = str(tmp_path / "out")
    assert run_main(load_script("convert").main, ["market1501", release, "--out", out]) == 0
    stdout, stderr = capsys.readouterr()
    assert (f"{out}/market1501_train.csv: 3 rows, 2 identities, 0 junk rows (pid -1), "
            "0 distractor rows (pid 0000)\n") in stdout
    assert (f"{out}/market1501_test.csv: 6 rows, 2 identities, 2 junk rows (pid -1), "
            "1 distractor rows (pid 0000)\n") in stdout
    assert "skipped 2 clutter file(s): Thumbs.db" in stdout
    assert f"--image_root {release}" in stdout
    assert stderr.count("warning: market1501") == 3
    assert read_lines(os.path.join(out, "market1501_query.csv")) == [
        "pid,path,camera", "0001,query/0001_c1s1_001051_00.jpg,1", "0003,query/0003_c3s3_064744_00.jpg,3"]


def test_convert_main_error_writes_nothing(tmp_path, capsys):
    release = make_market(tmp_path)
    touch(os.path.join(release, "query", "bad.jpg"))
    out = tmp_path / "out"
    assert run_main(load_script("convert").main, ["market1501", release, "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err
    assert not out.exists()


def run_script(*args, cwd=REPO):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_convert_command_line_end_to_end(tmp_path):
    release = make_cuhk03np(tmp_path / "datasets")
    out = tmp_path / "csv"
    done = run_script("data/convert.py", "cuhk03-labeled", release, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"{out}/cuhk03np_labeled_train.csv: 3 rows, 2 identities" in done.stdout
    assert read_lines(out / "cuhk03np_labeled_test.csv") == [
        "pid,path,camera",
        "0002,labeled/bounding_box_test/0002_c1_3.png,1",
        "0002,labeled/bounding_box_test/0002_c2_8.png,2",
        "1467,labeled/bounding_box_test/1467_c2_9.png,2",
    ]
    wrong = run_script("data/convert.py", "cuhk03-labeled", str(tmp_path / "datasets"), "--out", str(out))
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("error: ")
    assert "missing labeled/bounding_box_train/" in wrong.stderr and "Traceback" not in wrong.stderr
    unknown = run_script("data/convert.py", "cuhk03", release)
    assert unknown.returncode == 2 and "invalid choice: 'cuhk03'" in unknown.stderr


def test_convert_holds_validation_identities_out_by_the_release_protocol(tmp_path):
    """--val_identities 3 on a Market-1501 mimic of 6 identities in 2-3 cameras: the validation query has
    one image per identity and camera with a match in another camera, train + val = trainval."""
    names = [f"bounding_box_train/{pid:04d}_c{camera}s1_{pid * 1000 + frame:06d}_01.jpg"
             for pid in range(1, 7) for camera in range(1, 2 + pid % 2 + 1) for frame in range(2)]
    release = make_files(tmp_path / "Market-1501-v15.09.15", names + [
        "query/0101_c1s1_000001_00.jpg", "bounding_box_test/0101_c2s1_000002_01.jpg"])
    out = tmp_path / "csv"
    done = run_script("data/convert.py", "market1501", release, "--out", str(out), "--val_identities", "3")
    assert done.returncode == 0, done.stderr
    assert f"{out}/market1501_train.csv: " in done.stdout and "3 identities" in done.stdout
    assert "--val_excluder market1501" in done.stdout
    rows = {split: [line.split(",")[:2] for line in read_lines(out / f"market1501_{split}.csv")[1:]]
            for split in ("train", "trainval", "val_query", "val_gallery")}
    assert sorted(map(tuple, rows["train"] + rows["val_query"] + rows["val_gallery"])) == \
        sorted(map(tuple, rows["trainval"]))
    assert len(rows["trainval"]) == len(names)
    held = {pid for pid, _ in rows["val_query"]}
    assert len(held) == 3 and held == {pid for pid, _ in rows["val_gallery"]}
    assert held.isdisjoint(pid for pid, _ in rows["train"])

    def camera(path):
        return os.path.basename(path).split("_")[1][:2]
    for pid, path in rows["val_query"]:
        same = [p for q, p in rows["val_query"] if q == pid and camera(p) == camera(path)]
        assert same == [path]  # one query per identity and camera
        assert any(q == pid and camera(p) != camera(path) for q, p in rows["val_gallery"])
    again = run_script("data/convert.py", "market1501", release, "--out", str(tmp_path / "again"),
                       "--val_identities", "3")
    assert again.returncode == 0
    for split in rows:
        assert read_lines(tmp_path / "again" / f"market1501_{split}.csv") == read_lines(
            out / f"market1501_{split}.csv")
    too_many = run_script("data/convert.py", "market1501", release, "--out", str(tmp_path / "none"),
                          "--val_identities", "5")
    assert too_many.returncode == 2 and "--val_identities 5: 6 training identities leave fewer than 2" in \
        too_many.stderr
    assert not (tmp_path / "none").exists()  # drawn before anything is written


def test_every_converter_names_an_excluder_of_its_naming():
    from trinet.evaluation.excluders import EXCLUDERS
    for name, converter in registry.CONVERTERS.items():
        assert converter.excluder in EXCLUDERS, name
        if converter.protocol is None:  # re-id: the excluder reads the release's file names
            assert converter.excluder != "none", name
        else:  # retrieval: query = gallery leaves itself out; disjoint query and gallery ignore nothing
            same = converter.protocol.query == converter.protocol.gallery
            assert converter.excluder == converter.protocol.excluder == ("diagonal" if same else "none"), name


def test_scripts_do_not_import_tensorflow():
    code = ("import runpy, sys; runpy.run_path('data/convert.py'); runpy.run_path('data/combine.py'); "
            "sys.exit('tensorflow' in sys.modules)")
    done = run_script("-c", code)
    assert done.returncode == 0, done.stderr


def test_market1501_multi_query_rows_are_the_gt_bbox_images_of_person_and_camera(tmp_path, capsys):
    release = make_market(tmp_path)
    for name in ("0001_c1s1_001101_00.jpg", "0001_c2s1_000301_00.jpg", "0002_c1s1_000451_00.jpg",
                 "Thumbs.db"):
        touch(os.path.join(release, "gt_bbox", name))
    out = tmp_path / "out"
    assert run_main(load_script("convert").main, ["market1501", release, "--out", str(out),
                                                  "--multi_query"]) == 0
    stdout, stderr = capsys.readouterr()
    # Query 0001 (camera 1) pools its two camera-1 boxes, not the camera-2 one; query 0003 has none.
    assert read_lines(out / "market1501_mquery.csv") == [
        "pid,path,camera,query",
        "0001,gt_bbox/0001_c1s1_001051_00.jpg,1,query/0001_c1s1_001051_00.jpg",
        "0001,gt_bbox/0001_c1s1_001101_00.jpg,1,query/0001_c1s1_001051_00.jpg"]
    assert f"{out}/market1501_mquery.csv: 2 rows, the multi-queries of 1 of the 2 queries" in stdout
    assert "warning: 1 queries have no image of their person and camera in gt_bbox/" in stderr
    assert "query/0003_c3s3_064744_00.jpg" in stderr
    assert sorted(os.listdir(out)) == ["market1501_mquery.csv", "market1501_query.csv", "market1501_test.csv",
                                       "market1501_train.csv"]


def test_multi_query_errors_write_nothing(tmp_path, capsys):
    duke = make_duke(tmp_path)
    assert run_main(load_script("convert").main, ["duke", duke, "--out", str(tmp_path / "d"),
                                                  "--multi_query"]) == 2
    assert "--multi_query: DukeMTMC-reID has no multi-query protocol; it applies to market1501" in \
        capsys.readouterr().err
    market = make_market(tmp_path)
    touch(os.path.join(market, "gt_bbox", "box.jpg"))
    assert run_main(load_script("convert").main, ["market1501", market, "--out", str(tmp_path / "m"),
                                                  "--multi_query"]) == 2
    assert "gt_bbox: 1 file(s) do not follow the Market-1501 naming" in capsys.readouterr().err
    assert not (tmp_path / "d").exists() and not (tmp_path / "m").exists()
