"""The built-in demo dataset: a small synthetic person re-identification set in Market-1501's layout.

    python -m trinet.demo --out runs/demo/data

writes, under the output folder (paths in the CSVs are relative to it):

    bounding_box_train/   training images            demo_train.csv
    query/                query images               demo_query.csv
    bounding_box_test/    gallery, junk, distractors demo_test.csv
    demo.json             the settings and counts (written last: a complete dataset has it)

Files are named like Market-1501 (Zheng et al., ICCV 2015), ``PPPP_cCsS_FFFFFF_BB.jpg``: 4-digit
identity, camera, sequence, 6-digit frame and 2-digit bounding-box index. Junk images (pid ``-1``,
ignored at evaluation) are badly cropped views of test identities; distractors (pid ``0000``, kept
as negatives) are background crops and strangers. Train and test identities are disjoint numbers in
1..1501; the query holds at most one image per identity and camera, and every query identity has
gallery images under another camera, so the Market-1501 protocol applies unchanged.

Why it looks the way it does: each identity has a stable appearance (clothing colours and patterns,
build, hair, bags, hat) while each camera imposes its own background, illumination, colour cast,
gamma, resolution, blur, noise, viewpoint and framing. Same-camera images of different people are
therefore closer in raw pixels than cross-camera images of one person, so a pixel baseline ranks
poorly (see `benchmarks/pixel_baseline.py`), while an embedding trained with the batch-hard triplet
loss of "In Defense of the Triplet Loss" (Hermans et al. 2017) learns the invariances within minutes
on a CPU. Everything is drawn from ``--seed``: the same settings give identical files (on one
installation; another OpenCV or numpy build may round a few pixels differently).
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import functools
import json
import os
import shutil
import sys
import time
from typing import Sequence

import cv2
import numpy as np

from trinet import __version__
from trinet.argtypes import nonnegative_int, positive_int
from trinet.console import run_main
from trinet.errors import TrinetError
from trinet.fileio import temporary_name, write_json_atomic, write_text_atomic
from trinet.progress import Progress

#: Bumped whenever the images change for the same settings, so that an old dataset is not reused.
GENERATOR_VERSION = 1

#: The manifest, written last into the output folder.
MANIFEST = "demo.json"

#: The image folders, as in Market-1501.
TRAIN_DIR, QUERY_DIR, TEST_DIR = "bounding_box_train", "query", "bounding_box_test"

#: The CSV file of each split.
CSV_NAMES = {"train": "demo_train.csv", "query": "demo_query.csv", "test": "demo_test.csv"}

#: Every top-level name a demo folder holds; `--force` deletes nothing else.
DEMO_ENTRIES = frozenset({TRAIN_DIR, QUERY_DIR, TEST_DIR, MANIFEST, *CSV_NAMES.values()})

#: Identity numbers of Market-1501 (0 is the distractor label, -1 junk).
MAX_PID = 1501

#: Market-1501 has 6 cameras and 6 sequences per camera; names have one digit for each.
MAX_CAMERAS = 6
SEQUENCES = 6

#: The most images of one identity in one camera (one walk; frame numbers have 6 digits).
MAX_PER_CAMERA = 1000

#: Smallest and largest image sides accepted (pixels).
MIN_HEIGHT, MIN_WIDTH, MAX_SIDE = 32, 16, 1024

JUNK_PID, DISTRACTOR_PID = "-1", "0000"
JPEG_QUALITY = 92

#: Viewpoints of a person: facing the camera, walking away, walking to the left or right.
VIEWS = ("front", "back", "left", "right")

#: The default sizes of `generate` and of the command line.
DEFAULTS = dict(seed=0, train_ids=100, test_ids=100, cameras=6, images_per_camera=4, junk=150,
                distractors=150, height=128, width=64)


# --------------------------------------------------------------------------------------------------
# Identities and cameras


@dataclasses.dataclass(frozen=True)
class Appearance:
    """What stays the same about a person across cameras. Colours are RGB uint8 triples.

    Attributes:
        top, top2: main and second colour of the upper garment.
        pattern: 'solid', 'hstripes', 'vstripes', 'checks' or 'logo' (a chest patch, seen from the front).
        period: stripe or check period, as a fraction of the person's height.
        long_sleeves: arms in the top colour down to the wrist (else forearms show skin).
        bottom, bottom_style: trousers colour and cut: 'trousers', 'shorts' or 'skirt'.
        shoes, skin, hair: colours; hair_style is 'short', 'long' or 'none'.
        build, height: shoulder width and body height factors (about 0.8 to 1.2 and 0.85 to 1.0).
        backpack, bag, hat: the colour of each accessory, or None without it.
    """

    top: tuple
    top2: tuple
    pattern: str
    period: float
    long_sleeves: bool
    bottom: tuple
    bottom_style: str
    shoes: tuple
    skin: tuple
    hair: tuple
    hair_style: str
    build: float
    height: float
    backpack: tuple | None
    bag: tuple | None
    hat: tuple | None


@dataclasses.dataclass(frozen=True)
class Camera:
    """What one camera does to every image it takes.

    Attributes:
        index: the camera number in file names (1-based).
        height, width: the size of the images.
        scene: `(Hs, Ws, 3)` uint8 RGB background, wider and taller than an image; each image shows a
            window of it.
        gain: `(3,)` per-channel colour cast; brightness and gamma: global exposure and tone curve.
        light: `(2,)` direction and strength of a linear illumination gradient.
        low_res: the factor by which the camera's resolution is below the image size (1 = sharp).
        blur, noise: Gaussian blur sigma and noise std (pixels and 0..1 units at 128 px height).
        scale: the mean height of a person as a fraction of the image height.
        views: `(4,)` probabilities of the VIEWS.
    """

    index: int
    height: int
    width: int
    scene: np.ndarray
    gain: np.ndarray
    brightness: float
    gamma: float
    light: np.ndarray
    low_res: float
    blur: float
    noise: float
    scale: float
    views: np.ndarray


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per (seed, purpose, index): an identity looks the same whatever
    the other sizes are."""
    return np.random.default_rng([seed, *stream])


def _hsv(h: float, s: float, v: float) -> tuple:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _clothing_colour(rng: np.random.Generator) -> tuple:
    """Many real clothes are black, grey, white or navy; the rest take any hue."""
    kind = rng.random()
    if kind < 0.1:
        return _hsv(rng.random(), rng.uniform(0, 0.2), rng.uniform(0.08, 0.22))
    if kind < 0.17:
        return _hsv(rng.random(), rng.uniform(0, 0.12), rng.uniform(0.4, 0.65))
    if kind < 0.24:
        return _hsv(rng.random(), rng.uniform(0, 0.1), rng.uniform(0.85, 0.97))
    return _hsv(rng.random(), rng.uniform(0.45, 0.95), rng.uniform(0.35, 0.95))


def random_appearance(rng: np.random.Generator) -> Appearance:
    """Draw a person: clothes, build, hair and accessories."""
    skin = _hsv(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
    hair = [(25, 20, 18), (70, 45, 25), (120, 85, 45), (200, 170, 110), (150, 150, 150)][
        rng.choice(5, p=[0.4, 0.3, 0.12, 0.1, 0.08])]
    return Appearance(
        top=_clothing_colour(rng),
        top2=_clothing_colour(rng),
        pattern=str(rng.choice(["solid", "hstripes", "vstripes", "checks", "logo"],
                               p=[0.4, 0.2, 0.1, 0.1, 0.2])),
        period=float(rng.uniform(0.05, 0.12)),
        long_sleeves=bool(rng.random() < 0.55),
        bottom=_clothing_colour(rng),
        bottom_style=str(rng.choice(["trousers", "shorts", "skirt"], p=[0.65, 0.2, 0.15])),
        shoes=_clothing_colour(rng),
        skin=skin,
        hair=hair,
        hair_style=str(rng.choice(["short", "long", "none"], p=[0.6, 0.3, 0.1])),
        build=float(rng.uniform(0.8, 1.25)),
        height=float(rng.uniform(0.85, 1.0)),
        backpack=_clothing_colour(rng) if rng.random() < 0.3 else None,
        bag=_clothing_colour(rng) if rng.random() < 0.2 else None,
        hat=_clothing_colour(rng) if rng.random() < 0.15 else None,
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple, cells: tuple) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], `shape` (H, W, C), `cells` knots per side."""
    small = rng.uniform(-1, 1, size=(cells[0], cells[1], shape[2])).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).reshape(shape)


def _scene_colour(rng: np.random.Generator) -> tuple:
    """Mostly muted building colours, with a few bright shop signs."""
    if rng.random() < 0.25:
        return _clothing_colour(rng)
    return _hsv(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.25, 0.9))


def _make_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A street-like background: a wall with windows, signs and poles above a tiled floor."""
    hs, ws = int(round(1.3 * height)), 3 * width
    horizon = int(hs * rng.uniform(0.5, 0.8))
    scene = np.empty((hs, ws, 3), np.float32)
    wall = np.array(_hsv(rng.random(), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.9)), np.float32)
    floor = np.array(_hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.35), rng.uniform(0.2, 0.75)), np.float32)
    ramp = np.linspace(1 + rng.uniform(-0.25, 0.25), 1, horizon, dtype=np.float32)[:, None, None]
    scene[:horizon] = wall * ramp
    scene[horizon:] = floor
    scene = scene.astype(np.uint8)
    unit = height / 128.0
    for _ in range(int(rng.integers(4, 10))):  # windows, doors, shop signs
        w, h = rng.uniform(0.15, 0.6) * width, rng.uniform(0.08, 0.5) * height
        x, y = rng.uniform(-0.1 * ws, ws), rng.uniform(-0.1 * horizon, horizon - h / 2)
        cv2.rectangle(scene, (int(x), int(y)), (int(x + w), int(y + h)), _scene_colour(rng), -1)
        if rng.random() < 0.5:
            cv2.rectangle(scene, (int(x), int(y)), (int(x + w), int(y + h)), _scene_colour(rng),
                          max(1, int(3 * unit)))
    for _ in range(int(rng.integers(0, 4))):  # poles and trees
        x = int(rng.uniform(0, ws))
        colour = _hsv(rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6)) \
            if rng.random() < 0.4 else _scene_colour(rng)
        cv2.rectangle(scene, (x, 0), (x + max(1, int(rng.uniform(2, 7) * unit)), horizon), colour, -1)
    step = rng.uniform(6, 16) * unit
    y = horizon + step
    while y < hs:  # floor tiles, wider apart further down (perspective)
        cv2.line(scene, (0, int(y)), (ws, int(y)), tuple(int(c * 0.75) for c in floor), max(1, int(unit)))
        step *= 1.25
        y += step
    out = scene.astype(np.float32) * (1 + 0.12 * _smooth_noise(rng, scene.shape, (4, 8)))
    return np.clip(out, 0, 255).astype(np.uint8)


def make_camera(index: int, height: int, width: int, rng: np.random.Generator) -> Camera:
    """Draw camera `index`: scene, colour cast, exposure, lens and framing."""
    views = rng.dirichlet([0.6, 0.6, 0.4, 0.4])
    return Camera(
        index=index,
        height=height,
        width=width,
        scene=_make_scene(rng, height, width),
        gain=np.exp(rng.normal(0, 0.13, size=3)).astype(np.float32),
        brightness=float(np.exp(rng.uniform(np.log(0.55), np.log(1.4)))),
        gamma=float(np.exp(rng.uniform(np.log(0.75), np.log(1.33)))),
        light=np.array([rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5)], np.float32),
        low_res=float(rng.choice([1.0, 1.5, 2.0, 2.5])),
        blur=float(rng.uniform(0, 1.5)),
        noise=float(rng.uniform(0.005, 0.04)),
        scale=float(rng.uniform(0.75, 0.92)),
        views=(0.15 + views) / (0.15 * 4 + 1),
    )


# --------------------------------------------------------------------------------------------------
# Drawing

_SHIFT = 4  # fractional bits of cv2 drawing coordinates: sub-pixel accuracy at small image sizes


def _fix(points) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * (1 << _SHIFT)).astype(np.int32)


def _poly(canvas: np.ndarray, points, colour) -> None:
    cv2.fillPoly(canvas, [_fix(points)], colour, cv2.LINE_AA, _SHIFT)


def _limb(p0, p1, w0: float, w1: float) -> list:
    """A quadrilateral from p0 (width w0) to p1 (width w1)."""
    (x0, y0), (x1, y1) = p0, p1
    length = max(np.hypot(x1 - x0, y1 - y0), 1e-6)
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    return [(x0 + nx * w0 / 2, y0 + ny * w0 / 2), (x1 + nx * w1 / 2, y1 + ny * w1 / 2),
            (x1 - nx * w1 / 2, y1 - ny * w1 / 2), (x0 - nx * w0 / 2, y0 - ny * w0 / 2)]


def _ellipse(canvas: np.ndarray, centre, axes, colour, start: float = 0, end: float = 360) -> None:
    cv2.ellipse(canvas, tuple(int(v) for v in _fix(centre)), tuple(int(max(v, 0)) for v in _fix(axes)),
                0, start, end, colour, -1, cv2.LINE_AA, _SHIFT)


@functools.lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """`(ys, xs)`, each `(H, W)` float32 pixel coordinates (read-only, shared)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


def _pattern_fill(canvas: np.ndarray, mask: np.ndarray, a: Appearance, view: str,
                  box: tuple, torso: tuple) -> None:
    """Paint the upper garment (where `mask` > 0) with its colours and pattern."""
    cx, top, ph = box
    ys, xs = _grid(*mask.shape)
    u, v = (xs - cx) / ph, (ys - top) / ph
    period = a.period
    if a.pattern == "hstripes":
        second = (v / period) % 1.0 < 0.45
    elif a.pattern == "vstripes":
        second = (u / period) % 1.0 < 0.45
    elif a.pattern == "checks":
        second = ((u / period) % 1.0 < 0.5) ^ ((v / period) % 1.0 < 0.5)
    elif a.pattern == "logo" and view == "front":
        x0, x1, y0, y1 = torso
        second = (np.abs(u - (x0 + x1) / 2) < 0.45 * (x1 - x0) / 2) & (v > y0 + 0.25 * (y1 - y0)) \
            & (v < y0 + 0.6 * (y1 - y0))
    else:
        second = np.zeros_like(u, dtype=bool)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    paint = np.where(second[..., None], np.float32(a.top2), np.float32(a.top))
    canvas[:] = (canvas * (1 - alpha) + paint * alpha + 0.5).astype(np.uint8)


def draw_person(canvas: np.ndarray, a: Appearance, view: str, box: tuple, stride: float,
                swing: float) -> None:
    """Draw person `a` in place on the uint8 RGB `canvas`.

    Args:
        view: one of VIEWS.
        box: `(cx, top, ph)`: horizontal centre, top of the head and standing height, in pixels.
        stride: distance between the feet, as a fraction of the height (walking phase).
        swing: forward swing of the arms, as a fraction of the height.
    """
    cx, top, ph = box
    side = view in ("left", "right")
    mirror = -1.0 if view in ("left", "back") else 1.0  # which way the person faces; bags follow

    def p(u: float, v: float) -> tuple:
        return (cx + mirror * u * ph, top + v * ph)

    def limb(p0, p1, w0: float, w1: float) -> list:
        return _limb(p(*p0), p(*p1), w0 * ph, w1 * ph)

    bw = a.build * (0.55 if side else 1.0)
    shoulder, waist, hip = 0.15 * bw, 0.12 * bw, 0.10 * bw
    arm_w, leg_w = 0.055, 0.075 * max(a.build, 0.9)
    torso = (-shoulder, shoulder, 0.15, 0.52)

    # Behind the body: a backpack seen from the side, long hair seen from the front.
    if a.backpack is not None and side:
        _poly(canvas, [p(-0.17, 0.17), p(-0.07, 0.16), p(-0.07, 0.45), p(-0.17, 0.43)], a.backpack)
    if a.hair_style == "long" and view == "front":
        _poly(canvas, [p(-0.07, 0.05), p(0.07, 0.05), p(0.075, 0.24), p(-0.075, 0.24)], a.hair)

    # Legs and shoes.
    if side:
        feet = [(-stride / 2, -0.07 * stride), (stride / 2, 0.07 * stride)]
        hips = [(-0.02, 0.5), (0.02, 0.5)]
    else:
        feet = [(-0.3 * hip - stride / 8, 0.0), (0.3 * hip + stride / 8, 0.0)]
        hips = [(-hip / 2, 0.5), (hip / 2, 0.5)]
    knee_v = {"trousers": None, "shorts": 0.7, "skirt": 0.72}[a.bottom_style]  # where bare skin begins
    for (hu, hv), (fu, fv) in zip(hips, feet):
        foot = (hu + fu, 0.95 + fv)
        _poly(canvas, limb((hu, hv), foot, leg_w, 0.7 * leg_w), a.bottom if knee_v is None else a.skin)
        if knee_v is not None:
            t = (knee_v - hv) / (foot[1] - hv)
            _poly(canvas, limb((hu, hv), (hu + t * (foot[0] - hu), knee_v), leg_w, 0.85 * leg_w), a.bottom)
        toe = 0.02 if side else 0.0
        _ellipse(canvas, p(foot[0] + toe, foot[1] + 0.02), (0.045 * ph, 0.022 * ph), a.shoes)
    if a.bottom_style == "skirt":
        _poly(canvas, [p(-hip, 0.48), p(hip, 0.48), p(hip + 0.05, 0.72), p(-hip - 0.05, 0.72)], a.bottom)
    else:
        _poly(canvas, [p(-waist, 0.48), p(waist, 0.48), p(hip + 0.01, 0.6), p(-hip - 0.01, 0.6)], a.bottom)

    # Upper garment and arms, painted with the pattern through a mask.
    mask = np.zeros(canvas.shape[:2], np.uint8)
    _poly(mask, [p(-shoulder, 0.15), p(shoulder, 0.15), p(waist, 0.52), p(-waist, 0.52)], 255)
    arms = [(0.0, swing)] if side else [(-shoulder - 0.02, swing), (shoulder + 0.02, -swing)]
    hands = []
    for au, sw in arms:
        hand = (au + sw + (0.02 * np.sign(au) if au else 0), 0.5)
        elbow = (au + sw / 2, 0.34)
        _poly(mask, limb((au, 0.16), elbow, arm_w, arm_w * 0.9), 255)
        if a.long_sleeves:
            _poly(mask, limb(elbow, hand, arm_w * 0.9, arm_w * 0.8), 255)
        hands.append((elbow, hand))
    for elbow, hand in hands:
        if not a.long_sleeves:
            _poly(canvas, limb(elbow, hand, arm_w * 0.8, arm_w * 0.7), a.skin)
        _ellipse(canvas, p(*hand), (0.022 * ph, 0.025 * ph), a.skin)
    _pattern_fill(canvas, mask, a, view, box, torso)

    # Accessories on the body.
    if a.backpack is not None and view == "back":
        _poly(canvas, [p(-0.11 * bw, 0.18), p(0.11 * bw, 0.18), p(0.1 * bw, 0.44), p(-0.1 * bw, 0.44)],
              a.backpack)
    elif a.backpack is not None and view == "front":
        for s in (-1, 1):
            _poly(canvas, limb((s * 0.08 * bw, 0.15), (s * 0.09 * bw, 0.36), 0.025, 0.025), a.backpack)
    if a.bag is not None:
        bag_u = 0.0 if side else shoulder + 0.03
        _poly(canvas, limb((-shoulder * 0.7, 0.16), (bag_u, 0.46), 0.015, 0.015), a.bag)
        _poly(canvas, [p(bag_u - 0.05, 0.44), p(bag_u + 0.06, 0.44), p(bag_u + 0.06, 0.56),
                       p(bag_u - 0.05, 0.56)], a.bag)

    # Neck, head, hair, hat.
    _poly(canvas, [p(-0.025, 0.11), p(0.025, 0.11), p(0.025, 0.16), p(-0.025, 0.16)], a.skin)
    head = p(0.01 if side else 0.0, 0.075)
    _ellipse(canvas, head, (0.05 * ph, 0.065 * ph), a.skin)
    if a.hair_style != "none":
        if view == "back":
            _ellipse(canvas, head, (0.053 * ph, 0.068 * ph), a.hair)
            if a.hair_style == "long":
                _poly(canvas, [p(-0.055, 0.07), p(0.055, 0.07), p(0.06, 0.24), p(-0.06, 0.24)], a.hair)
        elif side:
            _ellipse(canvas, p(-0.005, 0.07), (0.05 * ph, 0.06 * ph), a.hair, 180, 360)
            _ellipse(canvas, p(-0.025, 0.08), (0.03 * ph, 0.05 * ph), a.hair)
        else:
            _ellipse(canvas, p(0.0, 0.065), (0.054 * ph, 0.05 * ph), a.hair, 180, 360)
    if a.hat is not None:
        _ellipse(canvas, p(0.0, 0.04), (0.06 * ph, 0.04 * ph), a.hat, 180, 360)
        _poly(canvas, [p(-0.065, 0.035), p(0.065 + (0.04 if side else 0), 0.035), p(0.065, 0.045),
                       p(-0.065, 0.045)], a.hat)


def _scene_window(camera: Camera, rng: np.random.Generator, bg_x: float | None) -> np.ndarray:
    """A copy of an (H, W) window of the camera's scene; `bg_x` in [0, 1] picks the position."""
    hs, ws = camera.scene.shape[:2]
    x = (rng.random() if bg_x is None else min(max(bg_x, 0.0), 1.0)) * (ws - camera.width)
    y = rng.random() * (hs - camera.height)
    return camera.scene[int(y):int(y) + camera.height, int(x):int(x) + camera.width].copy()


def apply_camera(image: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Illumination, colour cast, gamma, resolution, blur and sensor noise of `camera`, with a little
    per-image jitter. `(H, W, 3)` uint8 in and out."""
    h, w = image.shape[:2]
    unit = h / 128.0
    img = image.astype(np.float32) / 255.0
    angle, strength = camera.light
    ys, xs = _grid(h, w)
    ramp = (np.cos(angle) * (xs / w - 0.5) + np.sin(angle) * (ys / h - 0.5)) * 2 * strength
    exposure = camera.brightness * np.exp(rng.normal(0, 0.08))
    gain = camera.gain * np.exp(rng.normal(0, 0.03, size=3)).astype(np.float32)
    img = img * (gain * exposure) * (1 + ramp)[..., None]
    img = np.clip(img, 0, 1) ** camera.gamma
    if camera.low_res > 1:
        small = (max(2, int(w / camera.low_res)), max(2, int(h / camera.low_res)))
        img = cv2.resize(cv2.resize(img, small, interpolation=cv2.INTER_AREA), (w, h),
                         interpolation=cv2.INTER_LINEAR)
    sigma = camera.blur * unit * np.exp(rng.normal(0, 0.2))
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += camera.noise * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _person_box(camera: Camera, a: Appearance, rng: np.random.Generator) -> tuple:
    """Detector-like framing: the person fills most of the box, with scale and offset jitter."""
    ph = camera.height * camera.scale * a.height * np.exp(rng.normal(0, 0.06))
    cx = camera.width * (0.5 + rng.normal(0, 0.06))
    top = (camera.height - ph) * rng.uniform(0.2, 0.8) + rng.normal(0, 0.02) * camera.height
    return cx, top, ph


def render_person(appearance: Appearance, camera: Camera, rng: np.random.Generator, *,
                  view: str | None = None, bg_x: float | None = None) -> np.ndarray:
    """One detection of a person by a camera: `(H, W, 3)` uint8 RGB.

    Args:
        view: one of VIEWS; drawn from the camera's viewpoint distribution when None.
        bg_x: where along the camera's scene the person stands, in [0, 1]; random when None.
    """
    if view is None:
        view = VIEWS[rng.choice(len(VIEWS), p=camera.views)]
    canvas = _scene_window(camera, rng, bg_x)
    draw_person(canvas, appearance, view, _person_box(camera, appearance, rng),
                stride=rng.uniform(0.0, 0.3), swing=rng.uniform(-0.06, 0.06))
    return apply_camera(canvas, camera, rng)


def render_junk(appearance: Appearance, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """A bad detection of a person (Market-1501's junk): zoomed on a body part or mostly outside."""
    canvas = _scene_window(camera, rng, None)
    cx, top, ph = _person_box(camera, appearance, rng)
    if rng.random() < 0.5:  # a part of the body, much enlarged
        zoom = rng.uniform(1.6, 2.6)
        ph *= zoom
        top = -rng.uniform(0, ph - camera.height * 0.8)
    else:  # mostly beside the box
        cx += camera.width * rng.choice([-1, 1]) * rng.uniform(0.45, 0.7)
    view = VIEWS[rng.choice(len(VIEWS), p=camera.views)]
    draw_person(canvas, appearance, view, (cx, top, ph), stride=rng.uniform(0, 0.3), swing=0.0)
    return apply_camera(canvas, camera, rng)


def render_distractor(camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """A false detection (Market-1501's distractor): background, sometimes a stranger partly in it."""
    if rng.random() < 0.5:
        return render_junk(random_appearance(rng), camera, rng)
    canvas = _scene_window(camera, rng, None)
    for _ in range(int(rng.integers(0, 3))):  # an object: a bin, a sign, a car door
        w, h = rng.uniform(0.2, 0.8) * camera.width, rng.uniform(0.1, 0.6) * camera.height
        x, y = rng.uniform(-0.2, 1) * camera.width, rng.uniform(0, 1) * camera.height
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), _clothing_colour(rng), -1)
    return apply_camera(canvas, camera, rng)


# --------------------------------------------------------------------------------------------------
# The dataset


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


def _validate(settings: dict) -> None:
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
        return f"{pid}_c{camera}s{seq}_{frame:06d}_{box:02d}.jpg"


def _plan(settings: dict) -> list[tuple]:
    """What to draw: a list of (split, folder, pid, file name, job) with job = (kind, pid number, camera,
    view, bg_x), in a fixed order independent of rendering."""
    seed, cameras, per_camera = settings["seed"], settings["cameras"], settings["images_per_camera"]
    rng = _rng(seed, 0)
    namer = _Namer(_rng(seed, 1))
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
    for pid in test_pids:
        seen = walks(pid)
        most = len(seen) if per_camera >= 2 else len(seen) - 1  # keep a gallery camera for each query
        queried = set(rng.choice(len(seen), int(rng.integers(1, most + 1)), replace=False).tolist())
        for i, (cam, shots, view, bg_x) in enumerate(seen):
            query_shot = int(rng.integers(per_camera)) if i in queried else -1
            for j, shot in enumerate(shots):
                split, folder = ("query", QUERY_DIR) if j == query_shot else ("test", TEST_DIR)
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


def _render_all(plan: list[tuple], settings: dict, root: str, quiet: bool) -> None:
    """Render and write every image of `plan` under `root`."""
    seed, height, width = settings["seed"], settings["height"], settings["width"]
    cams = {c: make_camera(c, height, width, _rng(seed, 2, c)) for c in range(1, settings["cameras"] + 1)}
    people = {job[1] for *_, job in plan if job[0] != "distractor"}
    looks = {pid: random_appearance(_rng(seed, 4, pid)) for pid in people}
    for folder in (TRAIN_DIR, QUERY_DIR, TEST_DIR):
        os.makedirs(os.path.join(root, folder))

    with Progress(len(plan), "demo: rendering", unit="img", quiet=quiet) as progress:
        for index, (_, folder, _, name, (kind, pid, cam, view, bg_x)) in enumerate(plan):
            rng = _rng(seed, 3, index)  # one stream per image: an image does not depend on the others
            if kind == "person":
                image = render_person(looks[pid], cams[cam], rng, view=view, bg_x=bg_x + rng.normal(0, 0.05))
            elif kind == "junk":
                image = render_junk(looks[pid], cams[cam], rng)
            else:
                image = render_distractor(cams[cam], rng)
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError(f"OpenCV could not encode {name}")
            with open(os.path.join(root, folder, name), "wb") as f:
                f.write(data.tobytes())
            progress.update()


def _counts(plan: list[tuple]) -> dict:
    pids = {split: {row[2] for row in plan if row[0] == split} for split in CSV_NAMES}
    return {
        **{split: sum(row[0] == split for row in plan) for split in CSV_NAMES},
        "junk": sum(row[2] == JUNK_PID for row in plan),
        "distractors": sum(row[2] == DISTRACTOR_PID for row in plan),
        "train_ids": len(pids["train"]),
        "test_ids": len((pids["query"] | pids["test"]) - {JUNK_PID, DISTRACTOR_PID}),
    }


def _result(root: str, manifest: dict, reused: bool, seconds: float) -> DemoDataset:
    return DemoDataset(root, *(os.path.join(root, CSV_NAMES[s]) for s in ("train", "query", "test")),
                       counts=dict(manifest["counts"]), reused=reused, seconds=seconds)


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
    changed = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in settings.items() if old.get(k) != v]
    if changed:
        return f"{root} holds a demo dataset generated with other settings: {', '.join(changed)}"
    if not _is_complete(root, manifest):
        return f"{root} holds an incomplete demo dataset (files are missing)"
    return None


def _check_removable(root: str) -> None:
    """Refuse to replace a folder that holds anything the demo does not write."""
    foreign = sorted(set(os.listdir(root)) - DEMO_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise TrinetError(f"--force will not delete {root}: it holds files that the demo does not write "
                          f"({shown}). Choose another --out or remove the folder yourself.")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale_temporaries(root: str) -> None:
    """Delete the temporary folders (`.NAME.tmp-PID`, `.NAME.tmp-PID-old`) of killed runs."""
    parent, name = os.path.split(os.path.abspath(root))
    prefix = f".{name}.tmp-"
    for entry in os.listdir(parent):
        owner = entry[len(prefix):].split("-")[0]
        if not entry.startswith(prefix) or not owner.isdigit():
            continue
        if int(owner) == os.getpid() or not _alive(int(owner)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def generate(out_dir: str, *, seed: int = DEFAULTS["seed"], train_ids: int = DEFAULTS["train_ids"],
             test_ids: int = DEFAULTS["test_ids"], cameras: int = DEFAULTS["cameras"],
             images_per_camera: int = DEFAULTS["images_per_camera"], junk: int = DEFAULTS["junk"],
             distractors: int = DEFAULTS["distractors"], height: int = DEFAULTS["height"],
             width: int = DEFAULTS["width"], force: bool = False, quiet: bool = False) -> DemoDataset:
    """Generate the demo dataset into `out_dir`, or reuse the one already there.

    Each identity is seen by 2..`cameras` cameras, `images_per_camera` images in each. The dataset
    is rendered into a temporary sibling folder that is renamed to `out_dir` at the end, with
    `demo.json` written last, so `out_dir` never holds a partial dataset.

    Args:
        out_dir: the output folder; it must not exist, be empty, or hold a demo dataset.
        seed: everything is drawn from it; the same settings give identical files.
        train_ids, test_ids: numbers of identities in the training and query/gallery splits.
        cameras: number of cameras (2..6).
        images_per_camera: images of an identity in each camera that sees it.
        junk, distractors: numbers of junk (`-1`) and distractor (`0000`) gallery images.
        height, width: image size in pixels.
        force: generate even if `out_dir` holds a demo dataset (with any settings, complete or not)
            and replace it.
        quiet: no progress output.

    Raises:
        TrinetError: a bad setting, or `out_dir` holds something else (without `force`), or it holds
            files that the demo does not write (even with `force`).
    """
    settings = dict(seed=seed, train_ids=train_ids, test_ids=test_ids, cameras=cameras,
                    images_per_camera=images_per_camera, junk=junk, distractors=distractors,
                    height=height, width=width)
    _validate(settings)
    settings = {k: int(v) for k, v in settings.items()}
    root = os.path.normpath(out_dir)
    if os.path.exists(root) and not os.path.isdir(root):
        raise TrinetError(f"--out {root} is a file; expected a folder for the demo dataset")
    occupied = os.path.isdir(root) and bool(os.listdir(root))
    if occupied:
        problem = _describe(root, settings)
        if problem is None and not force:
            return _result(root, read_manifest(root), reused=True, seconds=0.0)
        if problem is not None and not force:
            raise TrinetError(f"{problem}. Pass --force to replace it with a new demo dataset, "
                              "or choose another --out.")
        _check_removable(root)  # before the long work, so that a refusal costs nothing

    start = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    _remove_stale_temporaries(root)
    tmp = temporary_name(root)
    old = tmp + "-old"
    try:
        plan = _plan(settings)
        _render_all(plan, settings, tmp, quiet)
        for split, name in CSV_NAMES.items():
            rows = sorted((row[3], row[2], row[1]) for row in plan if row[0] == split)
            text = "".join(f"{pid},{folder}/{fn}\n" for fn, pid, folder in rows)
            write_text_atomic(os.path.join(tmp, name), text)
        manifest = {"generator": "trinet.demo", "version": GENERATOR_VERSION, "trinet": __version__,
                    "settings": settings, "counts": _counts(plan), "csv": CSV_NAMES}
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


# --------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trinet.demo",
        description="Generate the demo dataset: synthetic pedestrians in Market-1501's folder layout and "
                    "file naming, with demo_train.csv, demo_query.csv and demo_test.csv. Re-running with "
                    "the same settings reuses the dataset.")
    parser.add_argument("--out", required=True,
                        help="Output folder. It must not exist, be empty, or already hold a demo dataset.")
    parser.add_argument("--seed", type=nonnegative_int, default=DEFAULTS["seed"],
                        help="Random seed; the same seed and sizes give identical files. "
                             "Default: %(default)s.")
    parser.add_argument("--train_ids", type=positive_int, default=DEFAULTS["train_ids"],
                        help="Number of training identities (>= 2). Default: %(default)s.")
    parser.add_argument("--test_ids", type=positive_int, default=DEFAULTS["test_ids"],
                        help="Number of query/gallery identities, disjoint from the training ones; "
                             f"train_ids + test_ids <= {MAX_PID}. Default: %(default)s.")
    parser.add_argument("--cameras", type=positive_int, default=DEFAULTS["cameras"],
                        help=f"Number of cameras, 2 to {MAX_CAMERAS}; each identity is seen by 2 or more "
                             "of them. Default: %(default)s.")
    parser.add_argument("--images_per_camera", type=positive_int, default=DEFAULTS["images_per_camera"],
                        help=f"Images of an identity in each camera that sees it (1 to {MAX_PER_CAMERA}). "
                             "Default: %(default)s.")
    parser.add_argument("--junk", type=nonnegative_int, default=DEFAULTS["junk"],
                        help="Number of junk gallery images (pid -1, badly cropped people; ignored at "
                             "evaluation). Default: %(default)s.")
    parser.add_argument("--distractors", type=nonnegative_int, default=DEFAULTS["distractors"],
                        help="Number of distractor gallery images (pid 0000, background and strangers; "
                             "negatives at evaluation). Default: %(default)s.")
    parser.add_argument("--height", type=positive_int, default=DEFAULTS["height"],
                        help=f"Image height in pixels ({MIN_HEIGHT} to {MAX_SIDE}). Default: %(default)s.")
    parser.add_argument("--width", type=positive_int, default=DEFAULTS["width"],
                        help=f"Image width in pixels ({MIN_WIDTH} to {MAX_SIDE}). Default: %(default)s.")
    parser.add_argument("--force", action="store_true",
                        help="Generate even if --out holds a demo dataset: one with other settings, an "
                             "incomplete one or this one is replaced. A folder with other files is never "
                             "deleted.")
    parser.add_argument("--quiet", action="store_true", help="No progress output.")
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    sizes = {k: getattr(args, k) for k in DEFAULTS}
    result = generate(args.out, force=args.force, quiet=args.quiet, **sizes)
    c = result.counts
    what = (f"{c['train']} train images of {c['train_ids']} identities, {c['query']} query and {c['test']} "
            f"gallery images of {c['test_ids']} identities (gallery: {c['junk']} junk, {c['distractors']} "
            "distractors)")
    if result.reused:
        print(f"Reusing the demo dataset in {result.root} (same settings): {what}. "
              "Pass --force to regenerate it.")
    else:
        print(f"Generated the demo dataset in {result.root} in {result.seconds:.1f} s: {what}.")
    print("CSVs: " + ", ".join((result.train_csv, result.query_csv, result.test_csv)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m trinet.demo`: see `build_parser`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
