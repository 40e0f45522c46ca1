"""The demo's worlds: what makes one site differ from another, as the ranges of its cameras and people.

A `World` holds the distributions of everything a site fixes: the cameras' colour casts and exposure gains,
tone curve, illumination, blur, noise and resolution; the backgrounds; the viewpoints and the scale of people
in the box; and the people's clothing. Each camera and each person of a dataset is then drawn from these
distributions with the dataset's `--seed`. World 0 (`DEFAULT_WORLD`) holds the demo's own ranges, so
`python -m trinet.demo` writes the same files as before worlds existed; `draw_world(n)` draws the ranges of
world `n` from the seed `n` alone, so `--world 3` is another site with other people (whatever `--seed`).
Any field can be set on top of a world (`resolve_world(3, blur=(0.0, 0.5))`).

Ranges are `(low, high)`, values drawn uniformly between them (the exposure and gamma log-uniformly);
probabilities are relative weights.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from trinet.core.errors import TrinetError

#: The fields of a World, in the order of the command line, and what each holds (help and README).
DESCRIPTIONS = {
    "colour_cast": "Spread of each camera's colour cast: the standard deviation of its per-channel log gains "
                   "(0: no cast).",
    "tint": "The site's colour cast, common to all cameras: R G B gains (the colour of its light).",
    "exposure": "Range LOW HIGH of the cameras' exposure gains (log-uniform; 1 = unchanged).",
    "gamma": "Range LOW HIGH of the cameras' tone curves (gamma, log-uniform).",
    "illumination": "Largest strength of a camera's illumination gradient across the image (0: even light).",
    "blur": "Range LOW HIGH of the cameras' blur (Gaussian sigma in pixels at 128 px height).",
    "noise": "Range LOW HIGH of the cameras' sensor noise (standard deviation, 0..1 pixel units).",
    "low_res": "The resolutions a camera may have: factors by which it is below the image size (1: sharp); "
               "one drawn per camera.",
    "background_clutter": "Range LOW HIGH of the number of windows, doors and signs in a camera's scene.",
    "background_saturation": "Range LOW HIGH of the saturation of a scene's wall colour (0..1).",
    "background_brightness": "Range LOW HIGH of the brightness of a scene's wall colour (0..1).",
    "views": "Concentrations of the viewpoints front back left right (Dirichlet): each camera's mix of views "
             "is drawn from them (small: cameras that see people mostly from one side).",
    "person_scale": "Range LOW HIGH of the cameras' framing: the mean height of a person as a fraction of "
                    "the image height.",
    "clothing_neutral": "Fractions of garments that are black, grey and white (the rest are coloured).",
    "clothing_saturation": "Range LOW HIGH of the saturation of coloured garments (0..1).",
    "clothing_hues": "Hues of coloured garments: START WIDTH on the colour circle (0..1; 0 1: any hue).",
    "patterns": "Weights of the upper garments' patterns: solid, horizontal stripes, vertical stripes, "
                "checks, chest logo.",
}


@dataclasses.dataclass(frozen=True)
class World:
    """The distributions one site draws its cameras and people from (see `DESCRIPTIONS`).

    The defaults are the demo's own (world 0).
    """

    colour_cast: float = 0.13
    tint: tuple = (1.0, 1.0, 1.0)
    exposure: tuple = (0.55, 1.4)
    gamma: tuple = (0.75, 1.33)
    illumination: float = 0.5
    blur: tuple = (0.0, 1.5)
    noise: tuple = (0.005, 0.04)
    low_res: tuple = (1.0, 1.5, 2.0, 2.5)
    background_clutter: tuple = (4, 9)
    background_saturation: tuple = (0.05, 0.4)
    background_brightness: tuple = (0.3, 0.9)
    views: tuple = (0.6, 0.6, 0.4, 0.4)
    person_scale: tuple = (0.75, 0.92)
    clothing_neutral: tuple = (0.1, 0.07, 0.07)
    clothing_saturation: tuple = (0.45, 0.95)
    clothing_hues: tuple = (0.0, 1.0)
    patterns: tuple = (0.4, 0.2, 0.1, 0.1, 0.2)

    def to_json(self) -> dict:
        """`{field: number or list}`, as the manifest holds it."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def pattern_weights(self) -> tuple:
        """The pattern probabilities (the weights normalised; the defaults as they are)."""
        return _normalised(self.patterns)


#: The demo's own world (world 0).
DEFAULT_WORLD = World()

#: How many values each field takes (None: one number; "+": one or more).
ARITY: dict[str, int | str | None] = {
    f.name: (None if not isinstance(f.default, tuple) else "+" if f.name == "low_res" else len(f.default))
    for f in dataclasses.fields(World)}

#: Integer fields (the others are floats).
INTEGER_FIELDS = frozenset({"background_clutter"})


def _normalised(weights: tuple) -> tuple:
    total = math.fsum(weights)
    return tuple(weights) if abs(total - 1.0) < 1e-9 else tuple(w / total for w in weights)


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        shown = " ".join(str(v) for v in value) if isinstance(value, tuple) else value
        raise TrinetError(f"`{name}` (--{name}) must be {rule}. Received: {name}={shown}")


def validate_world(world: World) -> None:
    """Raise a TrinetError naming the first field out of range, with the range."""
    for name, arity in ARITY.items():
        value = getattr(world, name)
        if arity is None:
            _check(isinstance(value, (int, float)) and math.isfinite(value), name, value, "a number")
            continue
        _check(isinstance(value, tuple) and (len(value) == arity or arity == "+" and len(value) >= 1)
               and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in value), name, value,
               "one or more numbers" if arity == "+" else f"{arity} numbers")
    ranges = ("exposure", "gamma", "blur", "noise", "background_clutter", "background_saturation",
              "background_brightness", "person_scale", "clothing_saturation")
    for name in ranges:
        low, high = getattr(world, name)
        _check(low <= high, name, getattr(world, name), "a range LOW HIGH with LOW <= HIGH")
    _check(world.colour_cast >= 0, "colour_cast", world.colour_cast, ">= 0")
    _check(all(v > 0 for v in world.tint), "tint", world.tint, "three gains > 0")
    _check(world.exposure[0] > 0, "exposure", world.exposure, "gains > 0")
    _check(world.gamma[0] > 0, "gamma", world.gamma, "> 0")
    _check(0 <= world.illumination < 1, "illumination", world.illumination, "between 0 and 1 (excluded)")
    _check(world.blur[0] >= 0, "blur", world.blur, ">= 0")
    _check(world.noise[0] >= 0, "noise", world.noise, ">= 0")
    _check(all(v >= 1 for v in world.low_res), "low_res", world.low_res, "factors >= 1")
    _check(all(float(v).is_integer() for v in world.background_clutter) and world.background_clutter[0] >= 0,
           "background_clutter", world.background_clutter, "whole numbers >= 0")
    for name in ("background_saturation", "background_brightness", "clothing_saturation"):
        _check(0 <= getattr(world, name)[0] and getattr(world, name)[1] <= 1, name, getattr(world, name),
               "between 0 and 1")
    _check(all(v > 0 for v in world.views), "views", world.views, "four concentrations > 0")
    _check(0 < world.person_scale[0] and world.person_scale[1] <= 1.2, "person_scale", world.person_scale,
           "fractions between 0 (excluded) and 1.2")
    _check(all(v >= 0 for v in world.clothing_neutral) and sum(world.clothing_neutral) <= 1,
           "clothing_neutral", world.clothing_neutral, "three fractions >= 0 that sum to 1 or less")
    _check(0 <= world.clothing_hues[0] <= 1 and 0 < world.clothing_hues[1] <= 1, "clothing_hues",
           world.clothing_hues, "START between 0 and 1 and WIDTH between 0 (excluded) and 1")
    _check(all(v >= 0 for v in world.patterns) and sum(world.patterns) > 0, "patterns", world.patterns,
           "five weights >= 0, not all 0")


def _r(value: float) -> float:
    return round(float(value), 3)


def draw_world(number: int) -> World:
    """World `number`: 0 is `DEFAULT_WORLD`; any other number draws every field from the seed `number`.

    Raises:
        TrinetError: `number` is negative.
    """
    if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or number < 0:
        raise TrinetError(f"`world` (--world) must be an integer >= 0. Received: world={number!r}")
    if number == 0:
        return DEFAULT_WORLD
    rng = np.random.default_rng([int(number), 19])  # 19: a stream of its own, apart from the datasets' seeds

    def log_range(centre: tuple, ratio: tuple) -> tuple:
        c = np.exp(rng.uniform(np.log(centre[0]), np.log(centre[1])))
        r = np.sqrt(np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]))))
        return _r(c / r), _r(c * r)

    blur_high = rng.uniform(0.4, 2.5)
    noise_low = rng.uniform(0.002, 0.02)
    clutter_low = int(rng.integers(1, 7))
    saturation_low = rng.uniform(0.0, 0.3)
    brightness_low = rng.uniform(0.15, 0.5)
    scale_low = rng.uniform(0.62, 0.85)
    neutral = rng.uniform(0.1, 0.6) * rng.dirichlet([2.0, 2.0, 2.0])
    clothing_low = rng.uniform(0.2, 0.6)
    patterns = rng.dirichlet([2.0, 1.0, 1.0, 1.0, 1.0])
    world = World(
        colour_cast=_r(rng.uniform(0.04, 0.3)),
        tint=tuple(_r(v) for v in np.exp(rng.normal(0, 0.12, size=3))),
        exposure=log_range((0.7, 1.2), (1.5, 3.5)),
        gamma=log_range((0.8, 1.25), (1.1, 2.0)),
        illumination=_r(rng.uniform(0.1, 0.8)),
        blur=(_r(rng.uniform(0, 0.4 * blur_high)), _r(blur_high)),
        noise=(_r(noise_low), _r(noise_low + rng.uniform(0.01, 0.06))),
        low_res=tuple(sorted(float(v) for v in rng.choice([1.0, 1.5, 2.0, 2.5, 3.0], int(rng.integers(1, 5)),
                                                          replace=False))),
        background_clutter=(clutter_low, clutter_low + int(rng.integers(2, 9))),
        background_saturation=(_r(saturation_low), _r(min(1.0, saturation_low + rng.uniform(0.1, 0.5)))),
        background_brightness=(_r(brightness_low), _r(min(0.95, brightness_low + rng.uniform(0.2, 0.45)))),
        views=tuple(_r(np.exp(v)) for v in rng.uniform(np.log(0.2), np.log(2.0), size=4)),
        person_scale=(_r(scale_low), _r(min(0.97, scale_low + rng.uniform(0.05, 0.2)))),
        clothing_neutral=tuple(_r(v) for v in neutral),
        clothing_saturation=(_r(clothing_low), _r(min(1.0, clothing_low + rng.uniform(0.2, 0.5)))),
        clothing_hues=(_r(rng.uniform(0, 1)), _r(rng.uniform(0.3, 1.0))),
        patterns=tuple(_r(max(v, 0.001)) for v in patterns),
    )
    validate_world(world)
    return world


def resolve_world(number: int = 0, changes: Mapping[str, Any] | None = None) -> World:
    """World `number` with the fields of `changes` set on top (sequences become tuples).

    Raises:
        TrinetError: an unknown field, or a value out of range (the message names the flag).
    """
    world = draw_world(number)
    changes = dict(changes or {})
    unknown = sorted(set(changes) - set(ARITY))
    if unknown:
        raise TrinetError(f"Unknown world setting(s) {', '.join(unknown)}; expected one of {sorted(ARITY)}")
    fixed = {}
    for name, value in changes.items():
        if ARITY[name] is not None:
            value = tuple(int(v) if name in INTEGER_FIELDS and float(v).is_integer() else float(v)
                          for v in np.atleast_1d(np.asarray(value, dtype=float)).tolist())
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            value = float(value)
        fixed[name] = value
    world = dataclasses.replace(world, **fixed)
    validate_world(world)
    return world
