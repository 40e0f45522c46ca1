"""TensorBoard's embedding projector for an embedding file (`tensorboard --logdir DIR`, the Projector tab).

The folder holds the embeddings as raw float32 bytes (`tensor.bytes`, which the projector reads through
`EmbeddingInfo.tensor_path` and `tensor_shape`: no checkpoint and no TF1 session), the metadata
(`metadata.tsv`: a header row, then identity, camera and path per point), a sprite of thumbnails
(`sprite.png`, at most 8192 x 8192 pixels, the projector's limit) and `projector_config.pbtxt`, written by
`tensorboard.plugins.projector.visualize_embeddings`. (Keras 3's `TensorBoard(embeddings_freq=...)` leaves
the tab empty, keras-team/keras#20210.) TensorBoard and Pillow are imported when used.
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable

import numpy as np

from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset, image_path
from trinet.data.naming import NAMINGS

#: The files of a projector folder.
TENSOR, METADATA, SPRITE, CONFIG = "tensor.bytes", "metadata.tsv", "sprite.png", "projector_config.pbtxt"

#: The largest sprite side TensorBoard's projector accepts, in pixels.
MAX_SPRITE = 8192

#: The largest (and smallest) sprite cell, width x height (people are twice as high as wide).
CELL, MIN_CELL = (32, 64), (4, 8)

#: The name of the embedding in the projector's menu.
TENSOR_NAME = "trinet embeddings"


def cameras_of(fids: np.ndarray, naming: str | None) -> list[str]:
    """The camera of each path by a release's naming (`trinet.data.naming.NAMINGS`), "" where the name does
    not follow it; all "" for no naming."""
    if naming is None:
        return [""] * len(fids)
    if naming not in NAMINGS:
        raise TrinetError(f"Unknown naming {naming!r}; expected one of {sorted(NAMINGS)}")
    rule = NAMINGS[naming]
    pattern = re.compile(rule.loose)
    out = []
    for fid in fids:
        found = pattern.fullmatch(os.path.splitext(rule.tail(str(fid)))[0])
        camera = None if found is None else rule.camera(found.group("cam"))
        out.append("" if camera is None else str(camera))
    return out


def sprite_cell(count: int) -> tuple[int, int, int]:
    """`(cell width, cell height, columns)` of a sprite of `count` thumbnails within MAX_SPRITE, about square;
    TrinetError when even MIN_CELL cells do not fit."""
    width, height = CELL
    while True:
        columns = max(1, math.ceil(math.sqrt(count * height / width)))
        rows = math.ceil(count / columns)
        if columns * width <= MAX_SPRITE and rows * height <= MAX_SPRITE:
            return width, height, columns
        if width <= MIN_CELL[0]:
            raise TrinetError(f"{count} thumbnails do not fit a {MAX_SPRITE} x {MAX_SPRITE} sprite even at "
                              f"{MIN_CELL[0]} x {MIN_CELL[1]} pixels; show fewer points (--max_points) or no "
                              "sprite (--no_sprite)")
        width, height = width // 2, height // 2


def write_sprite(path: str, files: list[str], progress: Callable[[int], None] | None = None) -> tuple[
        tuple[int, int], int]:
    """The sprite of `files` (missing or unreadable images are grey cells), row by row; returns the cell's
    `(width, height)` and the number of unreadable images."""
    from PIL import Image

    width, height, columns = sprite_cell(len(files))
    rows = math.ceil(len(files) / columns)
    sprite = Image.new("RGB", (columns * width, rows * height), (128, 128, 128))
    unreadable = 0
    for k, file in enumerate(files):
        try:
            with Image.open(file) as image:
                cell = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
            sprite.paste(cell, ((k % columns) * width, (k // columns) * height))
        except (OSError, ValueError):
            unreadable += 1
        if progress is not None:
            progress(1)
    sprite.save(path, "PNG")
    return (width, height), unreadable


def _cell(text: str) -> str:
    return re.sub(r"[\t\r\n]", " ", text)


def write_projector(directory: str, embeddings: np.ndarray, dataset: Dataset, *, cameras: list[str],
                    image_root: str | None = None, sprite: bool = True,
                    progress: Callable[[int], None] | None = None) -> dict[str, object]:
    """Write the projector files of `(N, D)` embeddings and their dataset rows into `directory`; returns
    what was written (`points`, `dim`, `sprite_cell`, `unreadable`)."""
    from tensorboard.plugins import projector

    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(dataset) or len(cameras) != len(dataset):
        raise ValueError(f"embeddings must be (N, D) with N = {len(dataset)} rows and cameras. Received: "
                         f"{embeddings.shape}, {len(cameras)} cameras")
    os.makedirs(directory, exist_ok=True)
    embeddings.tofile(os.path.join(directory, TENSOR))
    with open(os.path.join(directory, METADATA), "w", encoding="utf-8", newline="\n") as f:
        f.write("identity\tcamera\tpath\n")
        f.writelines(f"{_cell(str(p))}\t{_cell(c)}\t{_cell(str(fid))}\n"
                     for p, c, fid in zip(dataset.pids, cameras, dataset.fids))
    config = projector.ProjectorConfig()
    info = config.embeddings.add()
    info.tensor_name = TENSOR_NAME
    info.tensor_path = TENSOR
    info.tensor_shape.extend(embeddings.shape)
    info.metadata_path = METADATA
    written: dict[str, object] = {"points": len(embeddings), "dim": embeddings.shape[1], "sprite_cell": None,
                                  "unreadable": 0}
    if sprite:
        cell, unreadable = write_sprite(os.path.join(directory, SPRITE),
                                        [image_path(image_root, str(f)) for f in dataset.fids], progress)
        info.sprite.image_path = SPRITE
        info.sprite.single_image_dim.extend(cell)
        written.update(sprite_cell=cell, unreadable=unreadable)
    projector.visualize_embeddings(directory, config)
    return written
