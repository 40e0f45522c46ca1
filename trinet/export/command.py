"""The export command: `python -m trinet.export` (installed: `trinet-export`)."""

from __future__ import annotations

import argparse
import logging
from typing import Sequence

from trinet.console import argtypes
from trinet.console.commands import import_tensorflow_quietly, run_main, setup_console_logging
from trinet.core.errors import TrinetError
from trinet.export.formats import EXTRA, FORMATS, TOLERANCE, check_output, get_format

log = logging.getLogger("trinet.export")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trinet-export",
        description="Export a trained experiment for serving, verified when written. Every endpoint takes "
                    "images, a (batch, H, W, 3) uint8 RGB batch of any size (resized inside to the net input "
                    "size), and returns (batch, D) float32 embeddings: embed (output embedding) and, with "
                    "--flip, embed_flip (output embedding_flip). Each file is run with its own runtime on "
                    "probe images and must match trinet.Embedder (= embed.py); else nothing is written. ONNX "
                    f"needs the optional converters: {EXTRA}.")
    p.add_argument("--experiment_root", required=True, type=argtypes.readable_directory,
                   help="The experiment folder written by train.py (its args.json gives the model and image "
                        "sizes).")
    p.add_argument("--checkpoint", default=None,
                   help="As embed.py's: a step (25000), a name (checkpoint-25000), a path, best, or "
                        "model.keras. Default: the latest checkpoint; a latest checkpoint-0 (the untrained "
                        "network of a run stopped early) is refused unless named (--checkpoint 0).")
    p.add_argument("--net_input_height", type=argtypes.positive_int, default=None,
                   help="Only for an experiment folder without args.json (a bare model.keras): the height "
                        "the images are resized to. Default: args.json's.")
    p.add_argument("--net_input_width", type=argtypes.positive_int, default=None,
                   help="Only without args.json: the width the images are resized to. Default: args.json's.")
    p.add_argument("--format", required=True, choices=sorted(FORMATS),
                   help="; ".join(f"{name}: {FORMATS[name].help}" for name in sorted(FORMATS)) + ".")
    p.add_argument("--output", required=True,
                   help="The file (.onnx, .tflite) or folder (saved_model) to write; it must not exist.")
    p.add_argument("--flip", action="store_true",
                   help="Add the endpoint embed_flip: the mean of the embeddings of each image and its "
                        "mirror image (embed.py --flip_augment --aggregator mean).")
    p.add_argument("--tolerance", type=argtypes.positive_float, default=TOLERANCE,
                   help="Largest allowed max |export - Embedder| on the probe images, relative to the "
                        "embeddings' scale max(1, max |embedding|).")
    p.add_argument("--quiet", action="store_true", help="Print only warnings and errors.")
    return p


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_console_logging(quiet=args.quiet)
    get_format(args.format)  # unknown format, missing packages, bad output: before loading TensorFlow
    check_output(args.output, args.format)
    import_tensorflow_quietly()
    from trinet.embedding.embedder import Embedder
    from trinet.embedding.inference import CLI_NAMES
    from trinet.export.publish import export
    sizes = (args.net_input_height, args.net_input_width)
    if (sizes[0] is None) != (sizes[1] is None):
        raise TrinetError("--net_input_height and --net_input_width go together: give both")
    embedder = Embedder.from_experiment(args.experiment_root, args.checkpoint,
                                        net_size=None if sizes[0] is None else sizes, names=CLI_NAMES)
    if embedder.takes_cameras:
        raise TrinetError(f"--experiment_root {args.experiment_root} was trained with --camera_embedding: "
                          "its "
                          "model takes each image's camera beside the image, and the exports serve images "
                          "only (no camera input yet); embed with embed.py or trinet.Embedder")
    diffs = export(embedder, args.format, args.output, flip=args.flip, tolerance=args.tolerance)
    log.info("Wrote the %s export of %s to %s; verified: max |difference| %.3g (tolerance %g).", args.format,
             embedder.source, args.output, max(diffs.values()), args.tolerance)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_run, argv)
