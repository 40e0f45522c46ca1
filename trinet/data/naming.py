"""How the official person re-id releases name their folders and images: the one home of that knowledge.

Used by the converters (which check every file name strictly), the evaluation-time excluders (which read
person and camera from the name, loosely) and the demo generator (which writes Market-1501 names). Pure
data and regular expressions: no numpy, no TensorFlow.

Market-1501 (Zheng et al., ICCV 2015) labels junk images (bad detections, ignored at evaluation) with
person `-1` and distractors (false detections, kept as negatives) with person `0000`; the other releases
have neither. MSMT17 (Wei et al., CVPR 2018) lists its splits in text files; CUHK03-NP (Zhong et al., CVPR
2017) has Market-1501's folders under `detected/` and `labeled/`. VIPeR (Gray et al., PETS 2007) holds one
image per person in each of `cam_a/` and `cam_b/`, under the same number; CUHK01 (Li et al., ACCV 2012)
holds four images per person in `campus/`, two per camera.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

#: The identity labels of Market-1501's junk and distractor images, as written in file names and CSVs.
JUNK_PID, DISTRACTOR_PID = "-1", "0000"

#: What those labels mean, for messages and counts.
JUNK, DISTRACTOR = "junk", "distractor"

#: Market-1501's special labels -> their meaning.
MARKET_LABELS = {JUNK_PID: JUNK, DISTRACTOR_PID: DISTRACTOR}

#: Split -> image folder of Market-1501 (also DukeMTMC-reID, and CUHK03-NP under each subset).
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "test": "bounding_box_test"}

#: Market-1501's folder of hand-drawn boxes, whose images of a query's person and camera make its multi-query.
MARKET_MQUERY_FOLDER = "gt_bbox"

#: Market-1501 numbers people 1..1501 and has 6 cameras with up to 6 sequences each (one digit in names).
MARKET_MAX_PID, MARKET_CAMERAS, MARKET_SEQUENCES = 1501, 6, 6

#: The two subsets of CUHK03-NP, each a folder with MARKET_FOLDERS.
CUHK03NP_SUBSETS = ("detected", "labeled")

#: MSMT17's list files per split (lines `PPPP/NAME.jpg LABEL`); its training set is train + val.
MSMT17_LISTS = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
                "test": ("list_gallery.txt",)}

#: The image folders (training, test) of each MSMT17 version; V2 masks the faces.
MSMT17_LAYOUTS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}


@dataclasses.dataclass(frozen=True)
class Naming:
    """How a release names its images.

    Attributes:
        title: the dataset's name for messages.
        regex: the official names, matched against the whole basename; groups `pid` and `camera`.
        template: the pattern in words, e.g. `PPPP_cCsS_FFFFFF_BB.jpg`.
        example: a real file name of the release.
        fields: what each part of the template means.
        loose: a regex over the basename without extension, groups `pid` and `cam`, that accepts any
            number of digits and any tail after the camera (the evaluation reads renamed or re-encoded
            copies too).
        depth: how many parent folders the names include (VIPeR: 1, the camera is the folder).
        cameras: the text of the camera group -> the camera number; None: the text is the number.
    """

    title: str
    regex: re.Pattern[str]
    template: str
    example: str
    fields: str
    loose: str
    depth: int = 0
    cameras: Mapping[str, int] | None = None

    def match(self, name: str) -> re.Match[str] | None:
        """The match of a name (a basename, or with `depth` folders: `tail`) against the official naming."""
        return self.regex.fullmatch(name)

    def tail(self, path: str) -> str:
        """The part of `path` the patterns see: the basename, with the last `depth` folders before it."""
        parts = path.replace("\\", "/").split("/")
        return "/".join(parts[-1 - self.depth:])

    def camera(self, text: str) -> int | None:
        """The camera number of the camera group's text; None if the release has no such camera."""
        if self.cameras is None:
            return int(text)
        return self.cameras.get(text)

    def camera_of(self, path: str) -> int | None:
        """The camera number of an official file name (`path` may have folders), or None if the name does
        not follow the naming."""
        found = self.match(self.tail(path))
        return None if found is None else self.camera(found["camera"])

    def describe(self) -> str:
        return f"{self.template}, e.g. {self.example} ({self.fields})"


MARKET1501 = Naming(
    "Market-1501", re.compile(r"(?P<pid>-1|\d{4})_c(?P<camera>[1-6])s\d+_\d+_\d+\.jpg"),
    "PPPP_cCsS_FFFFFF_BB.jpg", "0002_c1s1_000451_03.jpg",
    "PPPP person (0000 distractor, -1 junk), C camera 1-6, S sequence, FFFFFF frame, BB box",
    r"(?P<pid>-1|\d+)_c(?P<cam>\d+)s\d+_\S*")
DUKE = Naming(
    "DukeMTMC-reID", re.compile(r"(?P<pid>\d{4})_c(?P<camera>[1-8])_f\d+\.jpg"),
    "PPPP_cC_fFFFFFFF.jpg", "0005_c2_f0046985.jpg",
    "PPPP person, C camera 1-8, FFFFFFF frame",
    r"(?P<pid>-1|\d+)_c(?P<cam>\d+)_\S*")
CUHK03NP = Naming(
    "CUHK03-NP", re.compile(r"(?P<pid>\d{4})_c(?P<camera>[12])_\d+\.png"),
    "PPPP_cC_N.png", "0001_c1_1.png",
    "PPPP person, C camera 1-2 of the person's camera pair, N image number",
    r"(?P<pid>-1|\d+)_c(?P<cam>\d+)_\S*")
MSMT17 = Naming(
    "MSMT17", re.compile(r"(?P<pid>\d{4})_\d+_(?P<camera>0[1-9]|1[0-5])_\d{4}[a-z]+_\d+_\d+(?:_ex)?\.jpe?g"),
    "PPPP_NNN_CC_DDDDtime_FFFF_K[_ex].jpg", "0000_000_01_0303morning_0015_0.jpg",
    "PPPP person (numbered separately in train/ and test/), NNN image number, CC camera 01-15, "
    "DDDD date and time of day (morning, noon, afternoon), FFFF frame, K box",
    r"(?P<pid>-1|\d+)_\d+_(?P<cam>\d+)_\S*")

VIPER = Naming(
    "VIPeR", re.compile(r"cam_(?P<camera>[ab])/(?P<pid>\d{3})_\d{1,3}\.bmp"),
    "cam_C/PPP_AAA.bmp", "cam_a/000_45.bmp",
    "C camera a or b (the folder), PPP person: the number of the pair, 000-873 with gaps, AAA viewpoint "
    "angle in degrees",
    r"cam_(?P<cam>[ab])/(?P<pid>\d+)_\S*", depth=1, cameras={"a": 1, "b": 2})
CUHK01 = Naming(
    "CUHK01", re.compile(r"(?P<pid>\d{4})(?P<camera>00[1-4])\.png"),
    "PPPPNNN.png", "0001001.png",
    "PPPP person 0001-0971, NNN image 001-004: 001 and 002 from camera 1, 003 and 004 from camera 2",
    r"(?P<pid>\d{4})(?P<cam>00[1-4])\S*", cameras={"001": 1, "002": 1, "003": 2, "004": 2})

#: VIPeR's two camera folders, in the release folder `VIPeR/`.
VIPER_FOLDERS = ("cam_a", "cam_b")

#: CUHK01's image folder, in the release folder (`CUHK01/` of the archive `CUHK01.zip`).
CUHK01_FOLDER = "campus"

#: The naming of each release by the name the excluders use.
NAMINGS = {"market1501": MARKET1501, "duke": DUKE, "msmt17": MSMT17, "cuhk03": CUHK03NP, "viper": VIPER,
           "cuhk01": CUHK01}


def cameras_of(column, paths) -> tuple[str, list[int]] | None:
    """The camera of each image for SIE (`--camera_embedding`) and where it comes from: `("the camera column",
    column)` when the dataset has a camera `column` (not None), else `cameras_from_names(paths)`."""
    if column is not None:
        return "the camera column", [int(camera) for camera in column]
    return cameras_from_names(paths)


def cameras_from_names(paths) -> tuple[str, list[int]] | None:
    """`(release, the camera of each path)` of the first release in `NAMINGS` whose naming gives the camera of
    every one of `paths`; None when none does."""
    for release, naming in NAMINGS.items():
        cameras = [naming.camera_of(path) for path in paths]
        if cameras and all(camera is not None for camera in cameras):
            return release, [int(camera) for camera in cameras if camera is not None]
    return None


def market_name(pid: str, camera: int, sequence: int, frame: int, box: int) -> str:
    """A Market-1501 file name, e.g. `market_name("0002", 1, 1, 451, 3)` -> `0002_c1s1_000451_03.jpg`."""
    return f"{pid}_c{camera}s{sequence}_{frame:06d}_{box:02d}.jpg"


# ---------------------------------------------------------------------------------------------------------
# Video re-id releases: every frame's name (with `depth` folders) gives its person, camera, tracklet, frame.


@dataclasses.dataclass(frozen=True)
class VideoNaming:
    """How a video re-id release names its frames.

    Attributes:
        title: the dataset's name for messages.
        regex: matched against the last `depth` folders and the basename (`a/b/name.jpg`); groups `pid`,
            `camera`, `tracklet` (the text that names the frame's tracklet) and `frame`.
        template, example, fields: the pattern in words, a real name, and what each part means.
        depth: how many parent folders the pattern includes.
        cameras: the text of the camera group -> the camera number; None: the text is the number.
    """

    title: str
    regex: re.Pattern[str]
    template: str
    example: str
    fields: str
    depth: int = 0
    cameras: Mapping[str, int] | None = None

    def tail(self, path: str) -> str:
        parts = path.replace("\\", "/").split("/")
        return "/".join(parts[-1 - self.depth:])

    def parse(self, path: str) -> tuple[str, int, str, int] | None:
        """`(pid text, camera, tracklet, frame)` of a frame's path; None if it does not follow the naming."""
        found = self.regex.fullmatch(self.tail(path))
        if found is None:
            return None
        text = found["camera"]
        camera = int(text) if self.cameras is None else self.cameras.get(text)
        if camera is None:
            return None
        return found["pid"], camera, found["tracklet"], int(found["frame"])

    def describe(self) -> str:
        return f"{self.template}, e.g. {self.example} ({self.fields})"


MARS = VideoNaming(
    "MARS", re.compile(r"(?P<tracklet>(?P<pid>\d{4}|00-1)C(?P<camera>[1-6])T\d{4})F(?P<frame>\d{3})\.jpg"),
    "PPPPCcTttttFfff.jpg", "0001C1T0001F001.jpg",
    "PPPP person (0000 distractor, 00-1 junk), c camera 1-6, tttt tracklet, fff frame")
ILIDSVID = VideoNaming(
    "iLIDS-VID", re.compile(r"(?P<tracklet>cam(?P<camera>[12])/person(?P<pid>\d{3}))/"
                            r"cam(?P=camera)_person(?P=pid)_(?P<frame>\d{5})\.png"),
    "camC/personPPP/camC_personPPP_FFFFF.png", "cam1/person001/cam1_person001_00317.png",
    "C camera 1-2, PPP person, FFFFF frame; a person's folder in a camera is its tracklet", depth=2)
PRID2011 = VideoNaming(
    "PRID2011", re.compile(r"(?P<tracklet>cam_(?P<camera>[ab])/person_(?P<pid>\d{4}))/(?P<frame>\d{4})\.png"),
    "cam_C/person_PPPP/FFFF.png", "cam_a/person_0001/0001.png",
    "C camera a or b, PPPP person, FFFF frame; a person's folder in a camera is its tracklet", depth=2,
    cameras={"a": 1, "b": 2})
DUKE_VIDEO = VideoNaming(
    "DukeMTMC-VideoReID", re.compile(r"(?P<tracklet>(?P<pid>\d{4})/\d{4})/(?P=pid)_C(?P<camera>[1-8])_"
                                     r"F(?P<frame>\d{4})\w*\.jpg"),
    "PPPP/TTTT/PPPP_CC_FFFFF_X.jpg", "0001/0001/0001_C6_F0017_X30001.jpg",
    "PPPP person, TTTT its tracklet (a folder), C camera 1-8, FFFF frame", depth=2)

#: MARS: the image folders of the splits, the folder of the info files, and those files.
MARS_FOLDERS = {"train": "bbox_train", "test": "bbox_test"}
MARS_INFO = "info"
MARS_NAMES = {"train": "train_name.txt", "test": "test_name.txt"}
MARS_TRACKS = {"train": ("tracks_train_info.mat", "track_train_info"),
               "test": ("tracks_test_info.mat", "track_test_info")}
MARS_QUERY = ("query_IDX.mat", "query_IDX")

#: iLIDS-VID: the sequences and the split file (its `ls_set` holds 10 permutations of the persons 1-300).
ILIDSVID_SEQUENCES = "i-LIDS-VID/sequences"
ILIDSVID_CAMERAS = ("cam1", "cam2")
ILIDSVID_SPLITS = ("train-test people splits/train_test_splits_ilidsvid.mat", "ls_set")

#: PRID2011: the multi-shot sequences of its two cameras.
PRID2011_FOLDERS = ("multi_shot/cam_a", "multi_shot/cam_b")

#: DukeMTMC-VideoReID: split -> folder.
DUKE_VIDEO_FOLDERS = {"train": "train", "query": "query", "test": "gallery"}
