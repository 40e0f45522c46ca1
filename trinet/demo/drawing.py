"""Drawing the demo's images: a person on a camera's scene, then the camera's optics and sensor.

Every function takes its random generator, so that an image is a pure function of its inputs.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from trinet.demo.people import VIEWS, Appearance, Camera, clothing_colour, random_appearance
from trinet.demo.world import DEFAULT_WORLD, World

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
    paint = np.where(second[..., None], np.asarray(a.top2, np.float32), np.asarray(a.top, np.float32))
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


def render_distractor(camera: Camera, rng: np.random.Generator, world: World = DEFAULT_WORLD) -> np.ndarray:
    """A false detection (Market-1501's distractor): background, sometimes a stranger (of `world`) partly
    in it."""
    if rng.random() < 0.5:
        return render_junk(random_appearance(rng, world), camera, rng)
    canvas = _scene_window(camera, rng, None)
    for _ in range(int(rng.integers(0, 3))):  # an object: a bin, a sign, a car door
        w, h = rng.uniform(0.2, 0.8) * camera.width, rng.uniform(0.1, 0.6) * camera.height
        x, y = rng.uniform(-0.2, 1) * camera.width, rng.uniform(0, 1) * camera.height
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), clothing_colour(rng, world), -1)
    return apply_camera(canvas, camera, rng)
