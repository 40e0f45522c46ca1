"""The report's thumbnails: one small file per image shown, in the report folder.

Images that a browser shows and that are small already (Market-1501's 128 x 64 JPEGs) are taken as they
are, hard-linked where the file system allows (no data is copied; the report stays valid when the original
is deleted) and copied elsewhere; larger ones, or other formats, are shrunk to `HEIGHT` pixels high and
saved as JPEG (Pillow, a dependency of matplotlib, imported when used). Files are written in a few
threads: it is mostly I/O.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

#: Height of a thumbnail in pixels (images up to twice as high are copied unchanged).
HEIGHT = 128

#: Threads writing thumbnails.
THREADS = 4

_COPIED = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp"}


def write_thumbnail(source: str, target_stem: str) -> str | None:
    """Write the thumbnail of image `source` as `target_stem` + extension; returns the file written, or None
    when the image is missing or cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            if image.format in _COPIED and image.height <= 2 * HEIGHT:
                target = target_stem + _COPIED[image.format]
                try:
                    os.link(source, target)
                except OSError:  # another file system, or links not allowed
                    shutil.copyfile(source, target)
                return target
            small = image.convert("RGB")
            small.thumbnail((4 * HEIGHT, HEIGHT))
            target = target_stem + ".jpg"
            small.save(target, "JPEG", quality=85)
            return target
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def write_thumbnails(directory: str, jobs: Sequence[tuple[str, str]],
                     progress: Callable[[int], None] | None = None) -> list[str | None]:
    """Thumbnails of `jobs` (`(source image, name without extension under directory)`); returns for each
    the written file's path relative to `directory` (with `/`), or None for a missing or unreadable image."""
    for folder in sorted({os.path.dirname(name) for _, name in jobs}):
        os.makedirs(os.path.join(directory, folder), exist_ok=True)

    def one(job: tuple[str, str]) -> str | None:
        written = write_thumbnail(job[0], os.path.join(directory, job[1]))
        if progress is not None:
            progress(1)
        return None if written is None else os.path.relpath(written, directory).replace(os.sep, "/")

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, jobs))
