"""The demo dataset's plan: which identity each camera sees, in which split, under which file name.

Identities are numbered as in Market-1501 (1..1501, train and test disjoint); each is seen by 2 or more
cameras, the query holds at most one image per identity and camera, and every query identity keeps
gallery images under another camera. Junk (`-1`) and distractor (`0000`) images go to the gallery only.
The plan is drawn from the seed alone, before anything is rendered.
"""

from __future__ import annotations

import numpy as np

from trinet.core.errors import TrinetError
from trinet.data.naming import (DISTRACTOR_PID, JUNK_PID, MARKET_CAMERAS, MARKET_FOLDERS, MARKET_MAX_PID,
                                MARKET_SEQUENCES, market_name)
from trinet.demo.people import VIEWS, dataset_key, rng_stream

#: The image folders, as in Market-1501.
TRAIN_DIR, QUERY_DIR, TEST_DIR = MARKET_FOLDERS["train"], MARKET_FOLDERS["query"], MARKET_FOLDERS["test"]

#: The CSV file of each split.
CSV_NAMES = {"train": "demo_train.csv", "query": "demo_query.csv", "test": "demo_test.csv"}

#: Identity numbers of Market-1501 (0 is the distractor label, -1 junk).
MAX_PID = MARKET_MAX_PID

#: Market-1501 has 6 cameras and 6 sequences per camera; names have one digit for each.
MAX_CAMERAS, SEQUENCES = MARKET_CAMERAS, MARKET_SEQUENCES

#: The most images of one identity in one camera (one walk; frame numbers have 6 digits).
MAX_PER_CAMERA = 1000

#: Smallest and largest image sides accepted (pixels).
MIN_HEIGHT, MIN_WIDTH, MAX_SIDE = 32, 16, 1024

#: The default sizes of `generate` and of the command line.
DEFAULTS = dict(seed=0, train_ids=100, test_ids=100, cameras=6, images_per_camera=4, junk=150,
                distractors=150, height=128, width=64)


def validate(settings: dict) -> None:
    """Raise a TrinetError naming the first setting out of range, with the range."""
    def check(ok: bool, name: str, rule: str) -> None:
        if not ok:
            raise TrinetError(f"`{name}` must be {rule}. Received: {name}={settings[name]!r}")

    for name in settings:
        check(isinstance(settings[name], (int, np.integer)) and not isinstance(settings[name], bool),
              name, "an integer")
    check(settings["seed"] >= 0, "seed", ">= 0")
    check(settings["train_ids"] >= 2, "train_ids", ">= 2 (training needs at least two identities)")
    check(settings["test_ids"] >= 1, "test_ids", ">= 1")
    check(settings["train_ids"] + settings["test_ids"] <= MAX_PID, "train_ids",
          f"<= {MAX_PID} - test_ids (Market-1501 numbers identities 1..{MAX_PID})")
    check(2 <= settings["cameras"] <= MAX_CAMERAS, "cameras",
          f"between 2 and {MAX_CAMERAS} (every identity is seen by at least two cameras)")
    check(1 <= settings["images_per_camera"] <= MAX_PER_CAMERA, "images_per_camera",
          f"between 1 and {MAX_PER_CAMERA}")
    check(settings["junk"] >= 0, "junk", ">= 0")
    check(settings["distractors"] >= 0, "distractors", ">= 0")
    check(MIN_HEIGHT <= settings["height"] <= MAX_SIDE, "height", f"between {MIN_HEIGHT} and {MAX_SIDE}")
    check(MIN_WIDTH <= settings["width"] <= MAX_SIDE, "width", f"between {MIN_WIDTH} and {MAX_SIDE}")


class _Namer:
    """Market-1501 file names `PPPP_cCsS_FFFFFF_BB.jpg`; no two images share camera, sequence,
    frame and box index, as no two detections in one frame share a box."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set = set()

    def passage(self, camera: int, count: int) -> list[tuple]:
        """`count` (camera, sequence, frame) of one walk past `camera`: nearby frames of one sequence."""
        seq = int(self.rng.integers(1, SEQUENCES + 1))
        frame = int(self.rng.integers(0, 150000))
        frames = frame + np.cumsum(self.rng.integers(5, 60, size=count))
        return [(camera, seq, int(f)) for f in frames]

    def name(self, pid: str, shot: tuple) -> str:
        camera, seq, frame = shot
        box = int(self.rng.integers(0, 9))
        while (camera, seq, frame, box) in self.used:
            box = (box + 1) % 100
            if box == 0:
                frame += 1
        self.used.add((camera, seq, frame, box))
        return market_name(pid, camera, seq, frame, box)


def make_plan(settings: dict) -> list[tuple]:
    """What to draw: a list of (split, folder, pid, file name, job) with job = (kind, pid number, camera,
    view, bg_x), in a fixed order independent of rendering (drawn from the seed and, if given, the
    settings' `world`)."""
    seed, cameras, per_camera = settings["seed"], settings["cameras"], settings["images_per_camera"]
    seed = dataset_key(seed, settings.get("world", 0))
    rng = rng_stream(seed, 0)
    namer = _Namer(rng_stream(seed, 1))
    total = settings["train_ids"] + settings["test_ids"]
    numbers = rng.choice(np.arange(1, MAX_PID + 1), total, replace=False)
    train_pids = sorted(int(n) for n in numbers[:settings["train_ids"]])
    test_pids = sorted(int(n) for n in numbers[settings["train_ids"]:])
    plan = []

    def walks(pid: int) -> list[tuple]:
        """Each camera that sees `pid`, with `per_camera` shots of one walk and its scene position."""
        seen = sorted(rng.choice(np.arange(1, cameras + 1), int(rng.integers(2, cameras + 1)), replace=False))
        out = []
        for cam in seen:
            view = VIEWS[int(rng.integers(len(VIEWS)))] if rng.random() < 0.3 else None
            out.append((int(cam), namer.passage(int(cam), per_camera), view, float(rng.random())))
        return out

    for pid in train_pids:
        for cam, shots, view, bg_x in walks(pid):
            for shot in shots:
                plan.append(("train", TRAIN_DIR, f"{pid:04d}", namer.name(f"{pid:04d}", shot),
                             ("person", pid, cam, view, bg_x)))
    whole_walks = bool(settings.get("tracklets", 0))  # a queried walk goes to the query whole (a tracklet)
    for pid in test_pids:
        seen = walks(pid)
        most = len(seen) if per_camera >= 2 and not whole_walks else len(seen) - 1  # keep a gallery camera
        queried = set(rng.choice(len(seen), int(rng.integers(1, most + 1)), replace=False).tolist())
        for i, (cam, shots, view, bg_x) in enumerate(seen):
            query_shot = int(rng.integers(per_camera)) if i in queried else -1
            for j, shot in enumerate(shots):
                in_query = j == query_shot or (whole_walks and i in queried)
                split, folder = ("query", QUERY_DIR) if in_query else ("test", TEST_DIR)
                plan.append((split, folder, f"{pid:04d}", namer.name(f"{pid:04d}", shot),
                             ("person", pid, cam, view, bg_x)))
    for _ in range(settings["junk"]):
        pid = int(test_pids[rng.integers(len(test_pids))])
        cam = int(rng.integers(1, cameras + 1))
        plan.append(("test", TEST_DIR, JUNK_PID, namer.name(JUNK_PID, namer.passage(cam, 1)[0]),
                     ("junk", pid, cam, None, None)))
    for _ in range(settings["distractors"]):
        cam = int(rng.integers(1, cameras + 1))
        plan.append(("test", TEST_DIR, DISTRACTOR_PID, namer.name(DISTRACTOR_PID, namer.passage(cam, 1)[0]),
                     ("distractor", 0, cam, None, None)))
    return plan


def tracklet_columns(rows: list[tuple]) -> dict[str, list]:
    """The `camera`, `tracklet` and `frame` columns of plan rows (in their order) for `--tracklets`: a
    person's walk past a camera is one tracklet (`PPPP_cC`), its shots the frames 0, 1, ... in row order;
    a junk or distractor image is a tracklet of its own (named by its file)."""
    frames: dict[str, int] = {}
    columns: dict[str, list] = {"camera": [], "tracklet": [], "frame": []}
    for _, _, pid, name, job in rows:
        kind, _, camera = job[0], job[1], job[2]
        tracklet = f"{pid}_c{camera}" if kind == "person" else name.rsplit(".", 1)[0]
        columns["camera"].append(int(camera))
        columns["tracklet"].append(tracklet)
        columns["frame"].append(frames.get(tracklet, 0))
        frames[tracklet] = frames.get(tracklet, 0) + 1
    return columns


def count(plan: list[tuple]) -> dict:
    """Images per split, junk, distractors and identities of `plan` (the manifest's `counts`)."""
    pids = {split: {row[2] for row in plan if row[0] == split} for split in CSV_NAMES}
    return {
        **{split: sum(row[0] == split for row in plan) for split in CSV_NAMES},
        "junk": sum(row[2] == JUNK_PID for row in plan),
        "distractors": sum(row[2] == DISTRACTOR_PID for row in plan),
        "train_ids": len(pids["train"]),
        "test_ids": len((pids["query"] | pids["test"]) - {JUNK_PID, DISTRACTOR_PID}),
    }
