"""trinet-projector: TensorBoard's embedding projector for an embedding file and its dataset CSV.

    trinet-projector --dataset data/market1501_query.csv --embeddings exp/market1501_query_embeddings.h5 \\
        --image_root data/market1501 --naming market1501 --output exp/projector
    tensorboard --logdir exp/projector          # then the Projector tab

Writes the tensor, the metadata (identity, camera, path), a sprite of thumbnails and the projector's config
(`trinet.tools.projector`). Needs TensorBoard (a dependency of trinet), no model and no TensorFlow session.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Sequence

import numpy as np

from trinet.console.argtypes import nonnegative_int, positive_int, readable_directory, writeable_directory
from trinet.console.commands import run_main, setup_console_logging
from trinet.core.errors import TrinetError
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset, read_csv
from trinet.data.embeddings.hdf5 import read_embeddings
from trinet.data.naming import NAMINGS
from trinet.tools.projector import CONFIG, cameras_of, write_projector

log = logging.getLogger("trinet.projector")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trinet-projector",
        description="Write TensorBoard embedding-projector files (tensor, metadata with identity, camera and "
                    "path, a sprite of thumbnails, projector_config.pbtxt) for an embedding file of embed.py "
                    "and its dataset CSV; view them with tensorboard --logdir OUTPUT.")
    p.add_argument("--dataset", required=True, help="The dataset CSV (`pid,path` rows) of the embeddings.")
    p.add_argument("--embeddings", required=True,
                   help="The HDF5 embedding file of embed.py (one row per CSV row).")
    p.add_argument("--output", required=True, type=writeable_directory, metavar="DIR",
                   help="Folder to write into: new, empty, or an older projector folder (its files are "
                        "replaced).")
    p.add_argument("--image_root", type=readable_directory, default=None,
                   help="Folder the CSV's image paths are relative to, for the sprite. Without it, the paths "
                        "are opened as they are.")
    p.add_argument("--naming", choices=sorted(NAMINGS), default=None,
                   help="The release naming the file names follow, to read each image's camera into the "
                        "metadata. Default: none (the camera column stays empty).")
    p.add_argument("--max_points", type=positive_int, default=None, metavar="N",
                   help="Show a uniform random sample of N rows (in CSV order) instead of all, e.g. to keep "
                        "the sprite's thumbnails large. Default: all.")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="Seed of the --max_points sample. Default: %(default)s.")
    p.add_argument("--no_sprite", action="store_true",
                   help="Write no sprite (points without thumbnails; no images are read).")
    p.add_argument("--quiet", action="store_true",
                   help="Print only warnings and errors: no progress or log messages.")
    return p


def _check_output(directory: str) -> None:
    if os.path.isdir(directory) and os.listdir(directory) and \
            not os.path.isfile(os.path.join(directory, CONFIG)):
        raise TrinetError(f"--output {directory} holds files but no projector ({CONFIG}): choose a new or "
                          "empty folder")


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_console_logging(args.quiet)
    _check_output(args.output)
    dataset = read_csv(args.dataset)
    emb = read_embeddings(args.embeddings, expected_rows=len(dataset), partner=args.dataset,
                          fids=dataset.fids)
    if args.max_points is not None and args.max_points < len(dataset):
        rows = np.sort(np.random.default_rng(args.seed).choice(len(dataset), args.max_points, replace=False))
        dataset = Dataset(dataset.pids[rows], dataset.fids[rows], dataset.source)
        emb = emb[rows]
        log.info("A sample of %d of the rows (seed %d)", len(rows), args.seed)
    cameras = cameras_of(dataset.fids, args.naming)
    if args.naming and not any(cameras):
        raise TrinetError(f"--naming {args.naming}: none of the file names of {args.dataset} follows it "
                          f"(e.g. {dataset.fids[0]!r}, expected like {NAMINGS[args.naming].example}); choose "
                          "the dataset's naming or leave --naming out")
    with Progress(0 if args.no_sprite else len(dataset), "Sprite", "images", quiet=args.quiet) as progress:
        written = write_projector(args.output, emb, dataset, cameras=cameras, image_root=args.image_root,
                                  sprite=not args.no_sprite, progress=progress.update)
    if written["unreadable"]:
        log.warning("%d images are missing or unreadable and are grey in the sprite (check --image_root)",
                    written["unreadable"])
    log.info("%d points of dimension %d written to %s; view them with: tensorboard --logdir %s",
             written["points"], written["dim"], args.output, args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `trinet-projector` command; returns the exit status."""
    return run_main(_run, argv)
