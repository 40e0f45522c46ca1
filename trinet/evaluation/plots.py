"""Pictures of an evaluation: the CMC curve (matplotlib) and rank lists (OpenCV).

Both libraries are imported inside the functions, so importing this module (and starting
`evaluate.py`) stays fast. Every file is written atomically: it appears only when complete.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from trinet.core.fileio import atomic_path

#: File formats `plot_cmc` writes, by extension.
PLOT_FORMATS = ("png", "pdf", "svg", "jpg")

#: Frame colours of the rank-list tiles, BGR.
MATCH_BGR = (0, 255, 0)
MISS_BGR = (0, 0, 255)
QUERY_BGR = (160, 160, 160)


def plot_cmc(path: str, cmc: np.ndarray, *, max_rank: int = 50, label: str | None = None,
             title: str | None = None) -> None:
    """Draw the CMC curve `(L,)` (fractions) up to `max_rank` into `path` (format from its extension)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"Unknown plot format {fmt!r} of {path!r}; expected one of {list(PLOT_FORMATS)}")
    cmc = np.asarray(cmc, dtype=np.float64)[:max_rank]
    ranks = np.arange(1, len(cmc) + 1)
    figure = Figure(figsize=(5, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(ranks, 100 * cmc, marker="." if len(cmc) <= 50 else None, label=label)
    for k in (1, 5, 10):
        if k <= len(cmc):
            axes.annotate(f"{100 * cmc[k - 1]:.1f}", (k, 100 * cmc[k - 1]), textcoords="offset points",
                          xytext=(4, -12), fontsize=8)
    axes.set_xlabel("rank")
    axes.set_ylabel("matching rate (%)")
    axes.set_xlim(1, max(2, len(cmc)))
    axes.set_ylim(min(100 * cmc.min(initial=100) - 5, 90) if len(cmc) else 0, 100.5)
    axes.grid(True, alpha=0.3)
    axes.set_title(title or "CMC")
    if label:
        axes.legend(loc="lower right")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="jpeg" if fmt == "jpg" else fmt)


def _tile(image: np.ndarray | None, colour: tuple[int, int, int], caption: str, height: int, width: int,
          border: int) -> np.ndarray:
    import cv2

    tile = np.full((height + 2 * border + 16, width + 2 * border, 3), 255, np.uint8)
    tile[:height + 2 * border] = colour
    inner: np.ndarray  # uint8 (H, W, 3), like `image`
    if image is None:
        inner = np.full((height, width, 3), 200, np.uint8)
        cv2.line(inner, (0, 0), (width - 1, height - 1), (90, 90, 90), 1)
        cv2.line(inner, (0, height - 1), (width - 1, 0), (90, 90, 90), 1)
    else:
        inner = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    tile[border:border + height, border:border + width] = inner
    cv2.putText(tile, caption, (2, height + 2 * border + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1,
                cv2.LINE_AA)
    return tile


def read_image(path: str) -> np.ndarray | None:
    """The BGR image at `path`, or None if it is missing or cannot be decoded.

    The EXIF orientation of a JPEG is ignored, as `images.decode` ignores it for training and
    embedding: the picture shows the pixels the model saw.
    """
    import cv2

    if not os.path.isfile(path):
        return None
    return cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def rank_picture(query: np.ndarray | None, gallery: Sequence[np.ndarray | None],
                 matches: Sequence[bool | None], captions: Sequence[str] | None = None, *, height: int = 128,
                 width: int = 64, border: int = 4) -> np.ndarray:
    """One row: the query (grey frame), a gap, then its ranked gallery images framed green for a
    match, red for a miss and grey where it is not known (None). Missing images (None) are drawn as
    crossed grey boxes.

    Returns:
        `(height + 2 border + 16, (1 + K) (width + 2 border) + gap, 3)` uint8 BGR.
    """
    captions = list(captions) if captions is not None else [str(k + 1) for k in range(len(gallery))]
    tiles = [_tile(query, QUERY_BGR, "query", height, width, border),
             np.full((height + 2 * border + 16, width // 4, 3), 255, np.uint8)]
    for image, is_match, caption in zip(gallery, matches, captions):
        colour = QUERY_BGR if is_match is None else MATCH_BGR if is_match else MISS_BGR
        tiles.append(_tile(image, colour, caption, height, width, border))
    return np.concatenate(tiles, axis=1)


def write_image(path: str, image: np.ndarray) -> None:
    """Write a BGR image atomically (format from the extension of `path`)."""
    import cv2

    ok, data = cv2.imencode(os.path.splitext(path)[1] or ".png", image)
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as {path!r}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.tobytes())
