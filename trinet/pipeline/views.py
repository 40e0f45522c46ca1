"""Test-time augmentation: the views of each image and how their embeddings are combined.

Multi-scale views (`--scales`): each scale s repeats the views with every size multiplied by s: the image
is resized to the net input size times s (or, with crops, to the pre-crop size times s, and cut into
crops of the net input size times s, at the same relative places). The network's global pooling absorbs
the size, as for `avgpool`.

Numpy only, so that the command line can validate flags before TensorFlow is imported. The images
themselves are produced by `trinet.pipeline.images.embedding_views`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from trinet.core.errors import TrinetError

#: `--crop_augment` choices: `center` crop, the `five` crops (centre and corners), or `avgpool`: the
#: whole pre-crop image through the network (global pooling absorbs the size).
CROP_MODES = ("avgpool", "center", "five")
#: Names and order of the five crops, as in the original embed.py (also the order they are cut in).
FIVE = ("center", "top_left", "top_right", "bottom_left", "bottom_right")


#: The scales of the views without `--scales`: the net input size itself.
NO_SCALES = (1.0,)


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """`(height, width)` times `scale`, each rounded to the nearest pixel (halves up), at least 1."""
    return tuple(max(1, int(side * scale + 0.5)) for side in size)  # type: ignore[return-value]


def view_names(flip: bool, crop: str | None, scales: Sequence[float] = NO_SCALES) -> list[str]:
    """Names of the views of each image, in order (as the original embed.py's `augmentation_types`):
    e.g. `original_center, ..., original_bottom_right, original_flip_center, ...` for flip + five.

    With `scales` other than `(1.0,)`, the views of each scale follow those of the previous one, named
    with the scale: `original_resize_scale1, original_resize_scale1.125`.
    """
    if crop is not None and crop not in CROP_MODES:
        raise ValueError(f"Unknown crop mode {crop!r}; expected one of {list(CROP_MODES)}")
    suffixes = {None: ("resize",), "center": ("center",), "avgpool": ("avgpool",), "five": FIVE}[crop]
    bases = ("original", "original_flip") if flip else ("original",)
    names = [f"{base}_{suffix}" for base in bases for suffix in suffixes]
    if tuple(scales) == NO_SCALES:
        return names
    return [f"{name}_scale{scale:g}" for scale in scales for name in names]


def _mean(views: np.ndarray) -> np.ndarray:
    return views.mean(axis=0)


def _normalized_mean(views: np.ndarray) -> np.ndarray:
    mean = views.mean(axis=0)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


#: Aggregators by name: `(M, N, D) -> (N, D)`.
AGGREGATORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": _mean,
    "normalized_mean": _normalized_mean,
}


def check_views(flip: bool, crop: str | None, aggregator: str | None, net_size: tuple[int, int],
                pre_crop_size: tuple[int, int], scales: Sequence[float] = NO_SCALES, *,
                api: bool = False) -> list[str]:
    """Validate the augmentation flags together; returns the view names.

    Args:
        api: the messages name the parameters of `Embedder.embed` (`aggregator=`, `crops=`, ...) instead of
            the commands' flags (`--aggregator`, `--crop_augment`, ...).

    Raises:
        TrinetError: several views without `--aggregator`, one view with it, an unknown aggregator,
            crops that do not fit, or scales that are not positive or repeat (the message says what to
            add, remove or change).
    """
    scales = tuple(float(s) for s in scales)
    if not scales or any(not s > 0 for s in scales) or len(set(scales)) != len(scales):
        if api:
            raise TrinetError(f"scales={scales}: expected one or more different positive factors of the net "
                              "input size, e.g. scales=(1, 1.125)")
        raise TrinetError(f"--scales {' '.join(f'{s:g}' for s in scales) or '(none)'}: expected one or more "
                          "different positive factors of the net input size, e.g. --scales 1 1.125")
    names = view_names(flip, crop, scales)
    if len(names) > 1 and aggregator is None:
        if api:
            choices = " or ".join(repr(a) for a in sorted(AGGREGATORS))
            raise TrinetError(f"{len(names)} views per image ({', '.join(names)}) need an aggregator to "
                              f"combine them; pass aggregator={choices}.")
        raise TrinetError(f"{len(names)} views per image ({', '.join(names)}) need an --aggregator to "
                          f"combine them; add --aggregator {' or '.join(sorted(AGGREGATORS))}.")
    if len(names) == 1 and aggregator is not None:
        if api:
            raise TrinetError(f"aggregator={aggregator!r} needs several views per image, but there is only "
                              f"one ({names[0]}); leave out aggregator, or pass flip=True, crops='five' or a "
                              "second scale in scales.")
        raise TrinetError(f"--aggregator {aggregator} needs several views per image, but there is only one "
                          f"({names[0]}); remove --aggregator, or add --flip_augment, --crop_augment five or "
                          "a second --scales.")
    if aggregator is not None and aggregator not in AGGREGATORS:
        raise TrinetError(f"Unknown aggregator {aggregator!r}; expected one of {sorted(AGGREGATORS)}")
    if crop in ("center", "five"):
        (ph, pw), (nh, nw) = pre_crop_size, net_size
        option = f"crops={crop!r}" if api else f"--crop_augment {crop}"
        if ph < nh or pw < nw:
            raise TrinetError(f"{option} needs a pre-crop size ({ph}x{pw}) at least the net "
                              f"input size ({nh}x{nw}).")
        if crop == "five" and (ph, pw) == (nh, nw):
            raise TrinetError(f"{option} with a pre-crop size equal to the net input size "
                              f"({nh}x{nw}) gives five identical crops: the corners coincide with the "
                              "centre. "
                              "Train (or embed) with a larger pre-crop size, or use "
                              f"{'crops=' + repr('center') if api else '--crop_augment center'}.")
    return names
