"""The demo's people and cameras: what stays the same about a person, and what each camera does.

A person's appearance (clothing colours and patterns, build, hair, bags, hat) is drawn once per identity;
a camera's scene, illumination, colour cast, gamma, resolution, blur, noise, viewpoints and framing once
per camera, so that same-camera images of different people are closer in raw pixels than cross-camera
images of one person. The ranges both are drawn from are those of the site's `World` (`trinet.demo.world`).
"""

from __future__ import annotations

import colorsys
import dataclasses

import cv2
import numpy as np

from trinet.demo.world import DEFAULT_WORLD, World

#: Viewpoints of a person: facing the camera, walking away, walking to the left or right.
VIEWS = ("front", "back", "left", "right")


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
        gain: `(3,)` per-channel colour cast (the world's tint times the camera's own cast); brightness
            and gamma: global exposure and tone curve.
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


#: Marks the random streams of a world other than 0 (apart from world 0's, whose keys are 2 or 3 numbers).
_WORLD_TAG = 0x574F524C


def dataset_key(seed: int, world: int = 0) -> tuple:
    """The key of a dataset's random streams: `(seed,)` in world 0 (the demo's streams, unchanged), and
    one of its own in every other world, so that another world has other people, cameras and file names."""
    return (int(seed),) if world == 0 else (int(seed), _WORLD_TAG, int(world))


def rng_stream(seed: int | tuple, *stream: int) -> np.random.Generator:
    """An independent random stream per (seed or `dataset_key`, purpose, index): an identity looks the
    same whatever the other sizes are."""
    key = list(seed) if isinstance(seed, tuple) else [seed]
    return np.random.default_rng([*key, *stream])


def _hsv(h: float, s: float, v: float) -> tuple:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def clothing_colour(rng: np.random.Generator, world: World = DEFAULT_WORLD) -> tuple:
    """Many real clothes are black, grey, white or navy (the world's `clothing_neutral` fractions); the rest
    take a hue of the world's `clothing_hues` and a saturation of its `clothing_saturation`."""
    kind = rng.random()
    dark, grey, white = world.clothing_neutral
    if kind < dark:
        return _hsv(rng.random(), rng.uniform(0, 0.2), rng.uniform(0.08, 0.22))
    if kind < dark + grey:
        return _hsv(rng.random(), rng.uniform(0, 0.12), rng.uniform(0.4, 0.65))
    if kind < dark + grey + white:
        return _hsv(rng.random(), rng.uniform(0, 0.1), rng.uniform(0.85, 0.97))
    start, width = world.clothing_hues
    return _hsv(start + width * rng.random(), rng.uniform(*world.clothing_saturation),
                rng.uniform(0.35, 0.95))


def random_appearance(rng: np.random.Generator, world: World = DEFAULT_WORLD) -> Appearance:
    """Draw a person of `world`: clothes, build, hair and accessories."""
    skin = _hsv(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
    hair = [(25, 20, 18), (70, 45, 25), (120, 85, 45), (200, 170, 110), (150, 150, 150)][
        rng.choice(5, p=[0.4, 0.3, 0.12, 0.1, 0.08])]
    return Appearance(
        top=clothing_colour(rng, world),
        top2=clothing_colour(rng, world),
        pattern=str(rng.choice(["solid", "hstripes", "vstripes", "checks", "logo"],
                               p=list(world.pattern_weights()))),
        period=float(rng.uniform(0.05, 0.12)),
        long_sleeves=bool(rng.random() < 0.55),
        bottom=clothing_colour(rng, world),
        bottom_style=str(rng.choice(["trousers", "shorts", "skirt"], p=[0.65, 0.2, 0.15])),
        shoes=clothing_colour(rng, world),
        skin=skin,
        hair=hair,
        hair_style=str(rng.choice(["short", "long", "none"], p=[0.6, 0.3, 0.1])),
        build=float(rng.uniform(0.8, 1.25)),
        height=float(rng.uniform(0.85, 1.0)),
        backpack=clothing_colour(rng, world) if rng.random() < 0.3 else None,
        bag=clothing_colour(rng, world) if rng.random() < 0.2 else None,
        hat=clothing_colour(rng, world) if rng.random() < 0.15 else None,
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple, cells: tuple) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], `shape` (H, W, C), `cells` knots per side."""
    small = rng.uniform(-1, 1, size=(cells[0], cells[1], shape[2])).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).reshape(shape)


def _scene_colour(rng: np.random.Generator, world: World) -> tuple:
    """Mostly muted building colours, with a few bright shop signs (in the colours of the world's clothes)."""
    if rng.random() < 0.25:
        return clothing_colour(rng, world)
    return _hsv(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.25, 0.9))


def _make_scene(rng: np.random.Generator, height: int, width: int,
                world: World = DEFAULT_WORLD) -> np.ndarray:
    """A street-like background: a wall with windows, signs and poles above a tiled floor; the wall's
    colour and the number of windows and signs follow the world's `background_*` ranges."""
    hs, ws = int(round(1.3 * height)), 3 * width
    horizon = int(hs * rng.uniform(0.5, 0.8))
    scene = np.empty((hs, ws, 3), np.float32)
    wall = np.array(_hsv(rng.random(), rng.uniform(*world.background_saturation),
                         rng.uniform(*world.background_brightness)), np.float32)
    floor = np.array(_hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.35), rng.uniform(0.2, 0.75)), np.float32)
    ramp = np.linspace(1 + rng.uniform(-0.25, 0.25), 1, horizon, dtype=np.float32)[:, None, None]
    scene[:horizon] = wall * ramp
    scene[horizon:] = floor
    scene = scene.astype(np.uint8)
    unit = height / 128.0
    low, high = world.background_clutter
    for _ in range(int(rng.integers(int(low), int(high) + 1))):  # windows, doors, shop signs
        w, h = rng.uniform(0.15, 0.6) * width, rng.uniform(0.08, 0.5) * height
        x, y = rng.uniform(-0.1 * ws, ws), rng.uniform(-0.1 * horizon, horizon - h / 2)
        cv2.rectangle(scene, (int(x), int(y)), (int(x + w), int(y + h)), _scene_colour(rng, world), -1)
        if rng.random() < 0.5:
            cv2.rectangle(scene, (int(x), int(y)), (int(x + w), int(y + h)), _scene_colour(rng, world),
                          max(1, int(3 * unit)))
    for _ in range(int(rng.integers(0, 4))):  # poles and trees
        x = int(rng.uniform(0, ws))
        colour = _hsv(rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6)) \
            if rng.random() < 0.4 else _scene_colour(rng, world)
        cv2.rectangle(scene, (x, 0), (x + max(1, int(rng.uniform(2, 7) * unit)), horizon), colour, -1)
    step = rng.uniform(6, 16) * unit
    y = horizon + step
    while y < hs:  # floor tiles, wider apart further down (perspective)
        cv2.line(scene, (0, int(y)), (ws, int(y)), tuple(int(c * 0.75) for c in floor), max(1, int(unit)))
        step *= 1.25
        y += step
    out = scene.astype(np.float32) * (1 + 0.12 * _smooth_noise(rng, scene.shape, (4, 8)))
    return np.clip(out, 0, 255).astype(np.uint8)


def make_camera(index: int, height: int, width: int, rng: np.random.Generator,
                world: World = DEFAULT_WORLD) -> Camera:
    """Draw camera `index` of `world`: scene, colour cast, exposure, lens and framing."""
    views = rng.dirichlet(list(world.views))
    (exposure_low, exposure_high), (gamma_low, gamma_high) = world.exposure, world.gamma
    return Camera(
        index=index,
        height=height,
        width=width,
        scene=_make_scene(rng, height, width, world),
        gain=(np.asarray(world.tint, np.float64) * np.exp(rng.normal(0, world.colour_cast, size=3))).astype(
            np.float32),
        brightness=float(np.exp(rng.uniform(np.log(exposure_low), np.log(exposure_high)))),
        gamma=float(np.exp(rng.uniform(np.log(gamma_low), np.log(gamma_high)))),
        light=np.array([rng.uniform(0, 2 * np.pi), rng.uniform(0, world.illumination)], np.float32),
        low_res=float(rng.choice(list(world.low_res))),
        blur=float(rng.uniform(*world.blur)),
        noise=float(rng.uniform(*world.noise)),
        scale=float(rng.uniform(*world.person_scale)),
        views=(0.15 + views) / (0.15 * 4 + 1),
    )
