"""embed.py: write the embeddings of a dataset (or a plain list of images) with a trained experiment.

Every flag of the original triplet-reid embed.py keeps its name and meaning; settings not given on
the command line come from the experiment's args.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

import numpy as np

from trinet.console import argtypes
from trinet.console.commands import import_tensorflow_quietly, run_main, setup_console_logging
from trinet.core.errors import TrinetError, listing
from trinet.data.embeddings.formats import EMBEDDING_FORMATS
from trinet.data.embeddings.hdf5 import METRIC_ATTRIBUTE, MODEL_ATTRIBUTE
from trinet.core.pooling import TEMPORAL_POOLINGS
from trinet.pipeline.views import AGGREGATORS, CROP_MODES, NO_SCALES, check_views

log = logging.getLogger("trinet.embed")

#: Settings read from args.json when not given here (the image sizes are also flags of embed.py).
SIZE_FLAGS = ("net_input_height", "net_input_width", "pre_crop_height", "pre_crop_width")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="embed.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Embed the images of a dataset CSV (or of a text file with one image path per line) "
                    "with a trained experiment, optionally with test-time augmentation, into an HDF5 file "
                    "(datasets emb, emb_aug, augmentation_types, pids, fids, and emb_local for a model "
                    "trained with --local_branch) or a CSV of path,v1,...,vD.")
    p.add_argument("--experiment_root", required=True, type=argtypes.readable_directory,
                   help="The experiment folder written by train.py (its args.json gives the model and "
                        "image sizes).")
    p.add_argument("--dataset", required=True, type=argtypes.readable_file,
                   help="A dataset CSV of `pid,path` rows, or (any other extension than .csv) a text file "
                        "with one image path per line.")
    p.add_argument("--image_root", type=argtypes.readable_directory, default=None,
                   help="Folder that the dataset's paths are relative to. Default: the training run's "
                        "--image_root.")
    p.add_argument("--checkpoint", default=None,
                   help="Checkpoint in the experiment root: a step (25000), a name (checkpoint-25000), a "
                        "path, or model.keras. Default: the latest checkpoint.")
    p.add_argument("--loading_threads", type=argtypes.positive_int, default=8,
                   help="Number of threads that decode and augment images in parallel.")
    p.add_argument("--batch_size", type=argtypes.positive_int, default=256,
                   help="Views per batch through the network; lower it if memory runs out.")
    p.add_argument("--filename", default=None,
                   help="Output file, relative to the experiment root (or absolute). Default: the dataset's "
                        "name with _embeddings.h5 (or .csv with --output_format csv).")
    p.add_argument("--output_format", choices=list(EMBEDDING_FORMATS), default=None,
                   help="h5 (for evaluate.py) or csv (lines of path,v1,...,vD). Default: csv if --filename "
                        "ends with .csv, else h5.")
    p.add_argument("--flip_augment", action="store_true",
                   help="Also embed the mirror image of each view.")
    p.add_argument("--crop_augment", choices=CROP_MODES, default=None,
                   help="center: the centre crop of the pre-crop-size image; five: the centre and the four "
                        "corner crops; avgpool: the whole pre-crop-size image (global pooling absorbs the "
                        "size). Default: the image resized to the net input size.")
    p.add_argument("--aggregator", choices=sorted(AGGREGATORS), default=None,
                   help="How the embeddings of several views are combined (required with several views, "
                        "not allowed with one): mean, or normalized_mean (the mean scaled to unit length).")
    p.add_argument("--scales", type=argtypes.positive_float, nargs="+", default=None, metavar="S",
                   help="Also embed every view at other sizes: the net input size times each scale S (with "
                        "--crop_augment, the pre-crop size and the crops scaled alike), e.g. --scales 1 "
                        "1.125; the views of all scales are combined by --aggregator and named with their "
                        "scale in augmentation_types (original_resize_scale1.125). Default: 1 (the net "
                        "input size only).")
    for flag in SIZE_FLAGS:
        p.add_argument(f"--{flag}", type=argtypes.positive_int, default=None,
                       help=f"Image size setting; default: the training run's --{flag}.")
    p.add_argument("--jit_compile", action="store_true",
                   help="Compile the model with XLA (the last batch is padded to a full one, so it compiles "
                        "once). Meant for GPUs: on CPUs XLA is usually slower (its convolutions do not use "
                        "oneDNN).")
    p.add_argument("--distribute", choices=["none", "mirrored"], default="none",
                   help="mirrored: split each batch over every local GPU (or, without one, every logical CPU "
                        "device) with tf.distribute.MirroredStrategy; the embeddings are the same. For "
                        "several machines, use --shard.")
    video = p.add_argument_group("tracklets (video re-id)")
    video.add_argument("--pool_by", choices=["tracklet"], default=None,
                       help="tracklet: write one embedding per tracklet (the `tracklet` column of --dataset) "
                            "instead of one per image: its frames' embeddings pooled by --temporal_pooling, "
                            "in bounded memory whatever a tracklet's length. The HDF5 file holds emb (T, D), "
                            "tracklets (the names), per-tracklet pids, fids (the first frame), cameras and "
                            "frame_counts; evaluate.py reads it with the frames' CSV. Default: one "
                            "embedding per image.")
    video.add_argument("--temporal_pooling", choices=sorted(TEMPORAL_POOLINGS), default=None,
                       help="--pool_by tracklet: mean or element-wise max of the frames' embeddings (default "
                            "mean).")
    video.add_argument("--frames_per_tracklet", type=argtypes.positive_int, default=None, metavar="N",
                       help="--pool_by tracklet: embed N frames of each tracklet, evenly spaced (the middle "
                            "of N equal parts, in frame order); a shorter tracklet uses all its frames. "
                            "Default: all frames.")
    several = p.add_mutually_exclusive_group()
    several.add_argument("--shard", type=argtypes.shard, default=None, metavar="I/N",
                         help="Embed only shard I (counted from 0) of N of the dataset's rows (contiguous, "
                              "balanced, in order), into an HDF5 file that records the shard for --merge. "
                              "Default --filename: the dataset's name with _embeddings_shardIofN.h5.")
    several.add_argument("--merge", nargs="+", default=None, metavar="SHARD",
                         help="Instead of embedding, check the N shard files of --shard I/N (all present "
                              "once, complete, of --dataset and the same model and settings) and merge "
                              "them into --filename, the file one process would have written. Paths as "
                              "given, else relative to the experiment root.")
    p.add_argument("--quiet", action="store_true", help="Print only warnings and errors.")
    return p


#: Flags that define the embedding, which --merge takes from the shard files instead.
EMBEDDING_FLAGS = ("checkpoint", "image_root", "flip_augment", "crop_augment", "aggregator", "jit_compile",
                   "scales", *SIZE_FLAGS)


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_console_logging(quiet=args.quiet)
    from trinet.data.datasets import check_files, read_any, require_images
    from trinet.rundir.experiment import read_settings
    from trinet.core.fileio import remove_stale_temporaries

    root = args.experiment_root
    output_format = args.output_format or ("csv" if (args.filename or "").lower().endswith(".csv") else "h5")
    filename = args.filename or (os.path.splitext(os.path.basename(args.dataset))[0]
                                 + ("_embeddings.csv" if output_format == "csv" else "_embeddings.h5"))
    if args.shard is not None and args.filename is None:
        filename = filename.replace("_embeddings.h5", "_embeddings_shard%dof%d.h5" % args.shard)
    filename = os.path.join(root, filename)
    try:
        argtypes.writeable_file(filename)
    except argparse.ArgumentTypeError as e:
        raise TrinetError(f"--filename {args.filename or filename}: {e}") from None
    _check_tracklet_flags(args, output_format)
    if args.merge is not None:
        return _merge(args, filename, output_format)
    if args.shard is not None and output_format != "h5":
        raise TrinetError("--shard writes HDF5 (its attributes record the shard for --merge), not "
                          f"--output_format {output_format}; give --merge --output_format csv for a CSV")
    settings = read_settings(root)
    from trinet.rundir.checkpoints import list_checkpoints
    from trinet.rundir.experiment import MODEL_FILE, no_model_yet
    if args.checkpoint is None and not list_checkpoints(root) and not os.path.isfile(
            os.path.join(root, MODEL_FILE)):
        raise no_model_yet(root, f"--experiment_root {root}")
    for flag in SIZE_FLAGS:
        if getattr(args, flag) is None:
            setattr(args, flag, settings.get(flag))
    missing = [f"--{flag}" for flag in SIZE_FLAGS if getattr(args, flag) is None]
    if missing:
        raise TrinetError(f"The image sizes are not known: give {', '.join(missing)} "
                          f"(no args.json in {root}).")
    net_size = (args.net_input_height, args.net_input_width)
    pre_crop_size = (args.pre_crop_height, args.pre_crop_width)
    scales = tuple(args.scales or NO_SCALES)
    names = check_views(args.flip_augment, args.crop_augment, args.aggregator, net_size, pre_crop_size,
                        scales)
    if "crop_augment" in settings and bool(settings["crop_augment"]) != (args.crop_augment is not None):
        log.warning("Crop augmentation differs between training (%s) and embedding (%s).",
                    bool(settings["crop_augment"]), args.crop_augment)

    image_root = args.image_root or settings.get("image_root")
    dataset = require_images(check_files(read_any(args.dataset, image_root), skip_flag=None), args.dataset)

    stale = remove_stale_temporaries(os.path.dirname(os.path.abspath(filename)))
    if stale:
        log.info("Removed %d temporary files left by killed runs: %s", len(stale), listing(stale))
    from trinet import __version__
    import_tensorflow_quietly()
    from trinet.embedding.embedder import Embedder
    from trinet.embedding.inference import CLI_NAMES, load_model
    from trinet.embedding.writer import embed_to_file
    if args.distribute != "none" and args.jit_compile:
        raise TrinetError(f"--jit_compile is not available with --distribute {args.distribute} yet; use one "
                          "of them")
    from trinet.models.distribute import make_strategy, scope
    strategy = make_strategy(args.distribute)
    with scope(strategy):  # the variables are mirrored on every device
        model, source = load_model(root, args.checkpoint, settings, CLI_NAMES)
    embedder = Embedder(model, net_size, pre_crop_size, source=source, strategy=strategy)
    log.info("Embedding %d images of %s with %s: %d view(s) per image (%s)%s.", len(dataset), args.dataset,
             source, len(names), ", ".join(names), f", {args.aggregator}" if args.aggregator else "")
    attrs = {"experiment_root": os.path.abspath(root), "checkpoint": os.path.abspath(source),
             "dataset": os.path.abspath(args.dataset), "aggregator": args.aggregator,
             "crop_augment": args.crop_augment, "flip_augment": args.flip_augment,
             "scales": " ".join(f"{scale:g}" for scale in scales),
             "trinet_version": __version__, MODEL_ATTRIBUTE: embedder.fingerprint,
             METRIC_ATTRIBUTE: settings.get("test_metric") or settings.get("metric")}
    cameras = None
    if embedder.takes_cameras:  # trained with --camera_embedding (SIE): each image's camera goes in too
        from trinet.data.naming import cameras_of
        found = cameras_of(dataset.cameras, dataset.fids)
        if found is None:
            raise TrinetError("The model was trained with --camera_embedding and takes the camera of each "
                              "image; "
                              f"{args.dataset} has no `camera` column and its file names follow no release's "
                              "naming: add the column (data/convert.py writes it)")
        cameras = np.asarray(found[1], np.int64)
        if args.pool_by:
            raise TrinetError("--pool_by tracklet does not go with a model trained with --camera_embedding "
                              "yet")
    if args.pool_by:
        return _embed_tracklets(args, embedder, dataset, filename, scales, attrs)
    pids = list(dataset.pids) if args.dataset.lower().endswith(".csv") else None
    paths, fids, shard_attrs = dataset.paths(), list(dataset.fids), {}
    if args.shard is not None:
        from trinet.data import shards
        index, count = args.shard
        start, stop = shards.check_shard(index, count, len(dataset), args.dataset)
        log.info("Shard %d/%d: rows %d-%d of %d.", index, count, start, stop, len(dataset))
        shard_attrs = shards.shard_attributes(
            index, count, fids, net_size=net_size, pre_crop_size=pre_crop_size,
            model_fingerprint=embedder.fingerprint)
        paths, fids, pids = paths[start:stop], fids[start:stop], None if pids is None else pids[start:stop]
        cameras = None if cameras is None else cameras[start:stop]
    count, dim = embed_to_file(
        embedder, paths, fids, pids, filename=filename, output_format=output_format,
        aggregator=args.aggregator, batch_size=args.batch_size, threads=args.loading_threads,
        flip=args.flip_augment, crop_mode=args.crop_augment, quiet=args.quiet, jit_compile=args.jit_compile,
        scales=scales, attrs={**shard_attrs, **attrs}, cameras=cameras)
    log.info("Wrote %d embeddings of dimension %d to %s.", count, dim, filename)
    return 0


def _check_tracklet_flags(args: argparse.Namespace, output_format: str) -> None:
    """The tracklet flags go together, and with HDF5 output on one machine (TrinetError otherwise)."""
    if not args.pool_by:
        given = [f"--{flag}" for flag in ("temporal_pooling", "frames_per_tracklet") if getattr(args, flag)]
        if given:
            raise TrinetError(f"{', '.join(given)} apply to --pool_by tracklet; add it, or remove them")
        return
    if not args.dataset.lower().endswith(".csv"):
        raise TrinetError(f"--pool_by tracklet needs a dataset CSV with a tracklet column; {args.dataset} is "
                          "a plain list of images")
    if output_format != "h5":
        raise TrinetError(f"--pool_by tracklet writes HDF5 (with the tracklet names), not --output_format "
                          f"{output_format}")
    for flag in ("shard", "merge"):
        if getattr(args, flag) is not None:
            raise TrinetError(f"--pool_by tracklet does not go with --{flag} yet; embed on one machine")
    args.temporal_pooling = args.temporal_pooling or "mean"


def _embed_tracklets(args: argparse.Namespace, embedder, dataset, filename: str, scales, attrs: dict) -> int:
    """embed.py --pool_by tracklet: one pooled embedding per tracklet."""
    from trinet.data.tracklets import group_tracklets, tracklet_dataset
    from trinet.embedding.writer import embed_tracklets_to_file

    tracklets = group_tracklets(dataset, f"--pool_by tracklet (--dataset {args.dataset})")
    rows = tracklet_dataset(dataset, tracklets)
    lengths = np.array([len(r) for r in tracklets.rows])
    log.info("%d tracklets of %d to %d frames (median %g); pooling %s frames of each by %s.", len(tracklets),
             lengths.min(), lengths.max(), np.median(lengths),
             args.frames_per_tracklet or "all", args.temporal_pooling)
    count, frames, dim = embed_tracklets_to_file(
        embedder, dataset.paths(), tracklets, rows, how=args.temporal_pooling,
        frames_per_tracklet=args.frames_per_tracklet, filename=filename, aggregator=args.aggregator,
        batch_size=args.batch_size, threads=args.loading_threads, flip=args.flip_augment,
        crop_mode=args.crop_augment, quiet=args.quiet, jit_compile=args.jit_compile, scales=scales,
        attrs={**attrs, "pool_by": "tracklet", "temporal_pooling": args.temporal_pooling,
               "frames_per_tracklet": args.frames_per_tracklet or 0})
    log.info("Wrote %d tracklet embeddings of dimension %d (from %d frames) to %s.", count, dim, frames,
             filename)
    return 0


def _merge(args: argparse.Namespace, filename: str, output_format: str) -> int:
    """embed.py --merge: check the shard files and write the file one process would have written."""
    from trinet.data.datasets import read_any
    from trinet.core.fileio import remove_stale_temporaries
    from trinet.data.shards import merge_shards

    parser = build_parser()
    given = [f"--{dest}" for dest in EMBEDDING_FLAGS if getattr(args, dest) != parser.get_default(dest)]
    if given:
        raise TrinetError(f"--merge takes the model and settings from the shard files; remove "
                          f"{', '.join(given)}")
    paths = [path if os.path.lexists(path) else os.path.join(args.experiment_root, path)
             for path in args.merge]
    dataset = read_any(args.dataset)
    pids = list(dataset.pids) if args.dataset.lower().endswith(".csv") else None
    stale = remove_stale_temporaries(os.path.dirname(os.path.abspath(filename)))
    if stale:
        log.info("Removed %d temporary files left by killed runs: %s", len(stale), listing(stale))
    log.info("Merging %d shard files of %s (%d rows).", len(paths), args.dataset, len(dataset))
    count, dim = merge_shards(paths, list(dataset.fids), pids, filename=filename, output_format=output_format,
                              dataset=os.path.abspath(args.dataset), quiet=args.quiet)
    log.info("Wrote %d embeddings of dimension %d to %s.", count, dim, filename)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
