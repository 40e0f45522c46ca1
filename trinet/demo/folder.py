"""The demo dataset's folder: rendering the plan into a temporary folder, the manifest, reuse and refusal.

A dataset is rendered into a temporary sibling folder that is renamed to the output folder at the end,
with `demo.json` written last, so the output folder never holds a partial dataset. Re-running with the
same settings reuses it; anything else in the way is refused with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any, Mapping

import cv2

from trinet import __version__
from trinet.core.errors import TrinetError
from trinet.core.fileio import remove_stale_temporaries, temporary_name, write_json_atomic
from trinet.core.progress import Progress
from trinet.data.datasets import write_csv
from trinet.demo.drawing import render_distractor, render_junk, render_person
from trinet.demo.people import dataset_key, make_camera, random_appearance, rng_stream
from trinet.demo.plan import (CSV_NAMES, DEFAULTS, QUERY_DIR, TEST_DIR, TRAIN_DIR, count, make_plan,
                              tracklet_columns, validate)
from trinet.demo.world import DEFAULT_WORLD, World, resolve_world

#: Bumped whenever the images change for the same settings, so that an old dataset is not reused.
GENERATOR_VERSION = 1

#: The manifest, written last into the output folder.
MANIFEST = "demo.json"

#: Every top-level name a demo folder holds; `--force` deletes nothing else.
DEMO_ENTRIES = frozenset({TRAIN_DIR, QUERY_DIR, TEST_DIR, MANIFEST, *CSV_NAMES.values()})

JPEG_QUALITY = 92


@dataclasses.dataclass(frozen=True)
class DemoDataset:
    """A generated (or reused) demo dataset.

    Attributes:
        root: the output folder; the CSV paths are relative to it.
        train_csv, query_csv, test_csv: the dataset CSVs.
        counts: images per split and of each kind ('train', 'query', 'test', 'junk', 'distractors',
            'train_ids', 'test_ids').
        reused: the folder already held this dataset, nothing was written.
        seconds: the generation time (0 when reused).
    """

    root: str
    train_csv: str
    query_csv: str
    test_csv: str
    counts: dict
    reused: bool
    seconds: float


def render_all(plan: list[tuple], settings: dict, root: str, quiet: bool,
               world: World = DEFAULT_WORLD) -> None:
    """Render and write every image of `plan` under `root`, with cameras and people drawn from `world`."""
    seed = dataset_key(settings["seed"], settings.get("world", 0))
    height, width = settings["height"], settings["width"]
    cams = {c: make_camera(c, height, width, rng_stream(seed, 2, c), world)
            for c in range(1, settings["cameras"] + 1)}
    people = {job[1] for *_, job in plan if job[0] != "distractor"}
    looks = {pid: random_appearance(rng_stream(seed, 4, pid), world) for pid in people}
    for folder in (TRAIN_DIR, QUERY_DIR, TEST_DIR):
        os.makedirs(os.path.join(root, folder))

    with Progress(len(plan), "demo: rendering", unit="img", quiet=quiet) as progress:
        for index, (_, folder, _, name, (kind, pid, cam, view, bg_x)) in enumerate(plan):
            rng = rng_stream(seed, 3, index)  # one stream per image: an image does not depend on the others
            if kind == "person":
                image = render_person(looks[pid], cams[cam], rng, view=view, bg_x=bg_x + rng.normal(0, 0.05))
            elif kind == "junk":
                image = render_junk(looks[pid], cams[cam], rng)
            else:
                image = render_distractor(cams[cam], rng, world)
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError(f"OpenCV could not encode {name}")
            with open(os.path.join(root, folder, name), "wb") as f:
                f.write(data.tobytes())
            progress.update()


def _result(root: str, manifest: dict, reused: bool, seconds: float) -> DemoDataset:
    train, query, test = (os.path.join(root, CSV_NAMES[s]) for s in ("train", "query", "test"))
    return DemoDataset(root, train, query, test, counts=dict(manifest["counts"]), reused=reused,
                       seconds=seconds)


def read_manifest(root: str) -> dict | None:
    """The manifest of the demo dataset in `root`, or None if there is none or it is unreadable."""
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == "trinet.demo" else None


def _is_complete(root: str, manifest: dict) -> bool:
    """The files of `manifest` are all there (CSVs present, image counts of each folder as written)."""
    counts = manifest.get("counts", {})
    expected = {TRAIN_DIR: counts.get("train"), QUERY_DIR: counts.get("query"), TEST_DIR: counts.get("test")}
    try:
        return all(os.path.isfile(os.path.join(root, n)) for n in CSV_NAMES.values()) and all(
            len(os.listdir(os.path.join(root, d))) == n for d, n in expected.items())
    except OSError:
        return False


def _describe(root: str, settings: dict) -> str | None:
    """Why `root` cannot be reused (None if it can): what it holds instead."""
    manifest = read_manifest(root)
    if manifest is None:
        return f"{root} already exists and is not a demo dataset (it has no readable {MANIFEST})"
    if manifest.get("version") != GENERATOR_VERSION:
        return (f"{root} holds a demo dataset of generator version {manifest.get('version')}, "
                f"this is version {GENERATOR_VERSION}")
    old = manifest.get("settings", {})
    # A key missing on one side is a default (a world's fields are written only for another world than 0).
    defaults = {"world": 0, "tracklets": 0, **DEFAULT_WORLD.to_json()}
    keys = list(settings) + [k for k in old if k not in settings]
    changed = [f"{k}={old.get(k, defaults.get(k))!r} (now {settings.get(k, defaults.get(k))!r})"
               for k in keys if old.get(k, defaults.get(k)) != settings.get(k, defaults.get(k))]
    if changed:
        return f"{root} holds a demo dataset generated with other settings: {', '.join(changed)}"
    if not _is_complete(root, manifest):
        return f"{root} holds an incomplete demo dataset (files are missing)"
    return None


def _foreign(root: str) -> str | None:
    """The files of `root` that the demo does not write, for messages (None if there are none)."""
    foreign = sorted(set(os.listdir(root)) - DEMO_ENTRIES)
    if not foreign:
        return None
    return ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")


def generate(out_dir: str, *, seed: int = DEFAULTS["seed"], train_ids: int = DEFAULTS["train_ids"],
             test_ids: int = DEFAULTS["test_ids"], cameras: int = DEFAULTS["cameras"],
             images_per_camera: int = DEFAULTS["images_per_camera"], junk: int = DEFAULTS["junk"],
             distractors: int = DEFAULTS["distractors"], height: int = DEFAULTS["height"],
             width: int = DEFAULTS["width"], world: int = 0, world_changes: Mapping[str, Any] | None = None,
             force: bool = False, quiet: bool = False, tracklets: bool = False) -> DemoDataset:
    """Generate the demo dataset into `out_dir`, or reuse the one already there.

    Each identity is seen by 2..`cameras` cameras, `images_per_camera` images in each. The dataset
    is rendered into a temporary sibling folder that is renamed to `out_dir` at the end, with
    `demo.json` written last, so `out_dir` never holds a partial dataset. The cameras and people are
    drawn from world `world` (`trinet.demo.world`; 0 is the demo's own) with `world_changes` on top;
    the manifest's settings hold the world's number and fields only when they are not world 0's.

    Args:
        out_dir: the output folder; it must not exist, be empty, or hold a demo dataset.
        seed: everything is drawn from it; the same settings give identical files.
        train_ids, test_ids: numbers of identities in the training and query/gallery splits.
        cameras: number of cameras (2..6).
        images_per_camera: images of an identity in each camera that sees it.
        junk, distractors: numbers of junk (`-1`) and distractor (`0000`) gallery images.
        height, width: image size in pixels.
        world: the site (0: the demo's own); another number draws its cameras' and people's ranges.
        world_changes: fields of `trinet.demo.world.World` set on top of the world's (e.g.
            `{"blur": (0, 0.5)}`).
        force: generate even if `out_dir` holds a demo dataset (with any settings, complete or not)
            and replace it.
        quiet: no progress output.
        tracklets: video re-id: each walk past a camera is a tracklet of `images_per_camera` frames, a
            queried walk goes to the query whole, and the CSVs have the header
            `pid,path,camera,tracklet,frame` (`trinet.demo.plan.tracklet_columns`).

    Raises:
        TrinetError: a bad setting, or `out_dir` holds something else (without `force`), or it holds
            files that the demo does not write (even with `force`).
    """
    settings = dict(seed=seed, train_ids=train_ids, test_ids=test_ids, cameras=cameras,
                    images_per_camera=images_per_camera, junk=junk, distractors=distractors,
                    height=height, width=width)
    validate(settings)
    settings = {k: int(v) for k, v in settings.items()}
    if tracklets:  # written only when set, so that the manifests of image datasets stay as they were
        settings["tracklets"] = 1
    site = resolve_world(world, world_changes)
    if world != 0 or site != DEFAULT_WORLD:  # world 0's manifest stays as it was before worlds existed
        settings.update(world=int(world), **site.to_json())
    root = os.path.normpath(out_dir)
    if os.path.exists(root) and not os.path.isdir(root):
        raise TrinetError(f"--out {root} is a file; expected a folder for the demo dataset")
    occupied = os.path.isdir(root) and bool(os.listdir(root))
    if occupied:
        problem, manifest = _describe(root, settings), read_manifest(root)
        if problem is None and manifest is not None and not force:
            return _result(root, manifest, reused=True, seconds=0.0)
        foreign = _foreign(root)  # checked before the long work, so that a refusal costs nothing
        if force and foreign is not None:
            raise TrinetError(f"--force will not delete {root}: it holds files that the demo does not write "
                              f"({foreign}). Choose another --out or remove the folder yourself.")
        if problem is not None and not force:
            advice = ("Pass --force to replace it with a new demo dataset, or choose another --out."
                      if foreign is None else
                      f"It holds files that the demo does not write ({foreign}), which --force does not "
                      "delete either: choose another --out or remove the folder yourself.")
            raise TrinetError(f"{problem}. {advice}")

    start = time.perf_counter()
    parent, name = os.path.split(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(parent, name)  # the folders `tmp` and `old` of killed runs
    tmp = temporary_name(root)
    old = tmp + "-old"
    # The helper keeps this process's own: those of an earlier run under the same pid (a killed run whose
    # pid came back, or a call whose clean-up failed) are stale as well.
    for own in (tmp, old):
        shutil.rmtree(own, ignore_errors=True)
    try:
        plan = make_plan(settings)
        render_all(plan, settings, tmp, quiet, site)
        for split, name in CSV_NAMES.items():
            rows = sorted((row for row in plan if row[0] == split), key=lambda row: row[3])
            write_csv(os.path.join(tmp, name), [row[2] for row in rows],
                      [f"{row[1]}/{row[3]}" for row in rows],
                      columns=tracklet_columns(rows) if tracklets else None)
        manifest = {"generator": "trinet.demo", "version": GENERATOR_VERSION, "trinet": __version__,
                    "settings": settings, "counts": count(plan), "csv": CSV_NAMES}
        write_json_atomic(os.path.join(tmp, MANIFEST), manifest)
        # The old folder steps aside only now: a run killed before this point leaves it untouched.
        if os.path.isdir(root):
            os.rename(root, old)
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.isdir(old) and not os.path.exists(root):
            os.rename(old, root)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return _result(root, manifest, reused=False, seconds=time.perf_counter() - start)
