"""Baselines without learning: the floor that a trained embedding must beat.

    python -m trinet.tools.baselines --dataset runs/demo/data/demo_query.csv --image_root runs/demo/data \\
        --filename runs/demo/pixels_query.h5 --size 32x16

`pixel_embeddings` embeds each image as its raw pixels, downsampled (area interpolation) to a small
size and flattened; compared with the euclidean distance this is the classic "raw pixels" baseline
of person re-identification. The command writes the embeddings in the layout of `trinet.data.embeddings`, so
`evaluate.py` scores them like any other embedding file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import cv2
import numpy as np

from trinet import __version__
from trinet.console.argtypes import (image_size as parse_size, readable_directory, readable_file,
                                     writeable_file)
from trinet.console.commands import run_main, setup_console_logging
from trinet.core.errors import TrinetError
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset, load_dataset
from trinet.data.embeddings.hdf5 import write_embeddings

log = logging.getLogger(__name__)

#: The default `(height, width)` of the pixel baseline: 512 values per channel.
DEFAULT_SIZE = (32, 16)


def pixel_embeddings(dataset: Dataset, size: tuple[int, int] = DEFAULT_SIZE, *,
                     quiet: bool = True) -> np.ndarray:
    """Raw pixels as embeddings: `(N, size[0] * size[1] * 3)` float32 in [0, 1], RGB, row-major.

    Args:
        dataset: the images (paths under `dataset.image_root`).
        size: `(height, width)` the images are resized to, with area interpolation.
        quiet: no progress output.

    Raises:
        TrinetError: a bad size, or an image is missing or cannot be decoded (the message names it).
    """
    height, width = size
    if height <= 0 or width <= 0:
        raise TrinetError(f"`size` must be two positive integers (height, width). Received: size={size!r}")
    out = np.empty((len(dataset), height * width * 3), np.float32)
    with Progress(len(dataset), "pixel baseline", unit="img", quiet=quiet) as progress:
        for i, path in enumerate(dataset.paths()):
            image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # as images.decode
            if image is None:
                raise TrinetError(f"{dataset.source}: cannot read image {path} (missing, or not an image)")
            small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            out[i] = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).reshape(-1).astype(np.float32) / 255.0
            progress.update()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trinet.tools.baselines",
        description="Embed a dataset as raw downsampled pixels (a baseline without learning) and write an "
                    "embedding file that evaluate.py scores like any other.")
    parser.add_argument("--dataset", required=True, type=readable_file,
                        help="The dataset CSV of `pid,path` rows to embed.")
    parser.add_argument("--image_root", required=True, type=readable_directory,
                        help="The folder that the paths in the CSV are relative to.")
    parser.add_argument("--filename", required=True, type=writeable_file,
                        help="The HDF5 embedding file to write (replaced if it exists).")
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, metavar="HxW",
                        help="The size the images are downsampled to before flattening, height x width. "
                             "Default: %s." % "x".join(map(str, DEFAULT_SIZE)))
    parser.add_argument("--quiet", action="store_true", help="No progress output.")
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_console_logging(args.quiet)
    dataset = load_dataset(args.dataset, args.image_root)
    emb = pixel_embeddings(dataset, args.size, quiet=args.quiet)
    size = "x".join(map(str, args.size))
    write_embeddings(args.filename, emb, pids=dataset.pids.tolist(), fids=dataset.fids.tolist(),
                     attrs={"baseline": "pixels", "size": size, "dataset": args.dataset,
                            "trinet": __version__})
    print(f"Wrote {emb.shape[0]} pixel embeddings ({size}, {emb.shape[1]} values) to {args.filename}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m trinet.tools.baselines`: see `build_parser`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
