"""train.py: learn an embedding with the batch-hard triplet loss on P x K batches.

Every flag of the original triplet-reid train.py keeps its name and meaning.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from trinet import argtypes
from trinet.cli.common import import_tensorflow_quietly, run_main, setup_console_logging
from trinet.distances import METRICS
from trinet.errors import TrinetError

log = logging.getLogger("trinet.train")

#: Registries, imported lazily from the TensorFlow modules would slow `--help`; these are checked
#: against them by the tests.
BACKBONE_CHOICES = ["lunet", "mobilenet_v1", "mobilenet_v2", "resnet101", "resnet50",
                    "mobilenet_v1_1_224", "resnet_v1_101", "resnet_v1_50"]
HEAD_CHOICES = ["direct", "direct_normalize", "fc1024", "fc1024_normalize"]
LOSS_CHOICES = ["batch_all", "batch_hard"]
OPTIMIZER_CHOICES = ["adam", "adamw"]

#: Arguments that are not part of a run's identity: on --resume they come from the command line.
NOT_SAVED = ("experiment_root", "resume")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train an embedding with the triplet loss on P x K batches (P identities, K images "
                    "each). Everything about the run goes to --experiment_root: args.json, checkpoints, "
                    "train.log, TensorBoard events and, at the end, model.keras. Ctrl+C or SIGTERM "
                    "finishes the current step, saves and exits; --resume continues exactly there.")
    g = p.add_argument_group("experiment")
    g.add_argument("--experiment_root", required=True, type=argtypes.writeable_directory,
                   help="Folder for everything this run writes. Must be new or empty unless --resume.")
    g.add_argument("--resume", action="store_true",
                   help="Continue the run in --experiment_root from its latest checkpoint, with the "
                        "arguments saved in its args.json (other flags given are ignored, with a warning "
                        "if they differ).")
    g.add_argument("--seed", type=argtypes.nonnegative_int, default=None,
                   help="Seed of the sampling, augmentation and initialisation; with a fixed seed a run "
                        "is reproducible on the CPU. Default: a random seed, saved in args.json.")
    g = p.add_argument_group("data")
    g.add_argument("--train_set", type=argtypes.readable_file,
                   help="CSV file of `pid,relative/path` rows to train on. Required unless --resume.")
    g.add_argument("--image_root", type=argtypes.readable_directory,
                   help="Folder that the paths of --train_set are relative to.")
    g.add_argument("--skip_missing", action="store_true",
                   help="Drop images listed in --train_set that do not exist (with a warning) instead "
                        "of stopping with an error.")
    g.add_argument("--validate_images", action="store_true",
                   help="Decode every training image before training starts. Without it only the first "
                        "bytes of each file are checked, and a batch holding an image that fails to "
                        "decode is skipped during training (logged and counted).")
    g.add_argument("--on_bad_image", choices=["skip", "error"], default="skip",
                   help="What to do before training with images that are empty, not images, or (with "
                        "--validate_images) undecodable: skip them with a warning, or stop with an error.")
    g.add_argument("--loading_threads", type=argtypes.positive_int, default=8,
                   help="Number of threads that decode and augment images in parallel.")
    g = p.add_argument_group("model")
    g.add_argument("--model_name", choices=BACKBONE_CHOICES, default="resnet50", metavar="MODEL_NAME",
                   help=f"Backbone network, one of {', '.join(BACKBONE_CHOICES)} (resnet_v1_50, "
                        "resnet_v1_101 and mobilenet_v1_1_224 are the original's names).")
    g.add_argument("--head_name", choices=HEAD_CHOICES, default="fc1024",
                   help="Embedding head: fc1024 is the paper's TriNet head (FC-1024, batch norm, ReLU, "
                        "linear); direct is one linear layer; *_normalize adds L2 normalisation.")
    g.add_argument("--embedding_dim", type=argtypes.positive_int, default=128,
                   help="Dimensionality of the embedding space.")
    g.add_argument("--initial_checkpoint", default=None,
                   help="Initial backbone weights: 'imagenet' (downloaded by Keras; offline, put the "
                        "file where the error message says), the path of a Keras weights file for the "
                        "backbone, or another trinet experiment root or checkpoint file (its backbone, "
                        "and its head if it has the same head). Default: random initialisation.")
    g = p.add_argument_group("batches and augmentation")
    g.add_argument("--batch_p", type=argtypes.positive_int, default=32,
                   help="P: identities per batch (at least 2).")
    g.add_argument("--batch_k", type=argtypes.positive_int, default=4,
                   help="K: images per identity in a batch (identities with fewer images repeat them).")
    g.add_argument("--net_input_height", type=argtypes.positive_int, default=256,
                   help="Height of the images fed to the network.")
    g.add_argument("--net_input_width", type=argtypes.positive_int, default=128,
                   help="Width of the images fed to the network.")
    g.add_argument("--pre_crop_height", type=argtypes.positive_int, default=288,
                   help="Height images are resized to before a random crop; used only with "
                        "--crop_augment.")
    g.add_argument("--pre_crop_width", type=argtypes.positive_int, default=144,
                   help="Width images are resized to before a random crop; used only with --crop_augment.")
    g.add_argument("--flip_augment", action="store_true",
                   help="Randomly mirror training images left-right.")
    g.add_argument("--crop_augment", action="store_true",
                   help="Resize to the pre-crop size and take a random crop of the net input size.")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", choices=LOSS_CHOICES, default="batch_hard",
                   help="batch_hard: per anchor, the hardest positive and hardest negative of the batch; "
                        "batch_all: every valid triplet, averaged over the non-zero ones.")
    g.add_argument("--margin", type=argtypes.margin, default="soft",
                   help="A number >= 0 for a hinge max(0, m + d_ap - d_an); 'soft' for the soft margin "
                        "ln(1 + exp(d_ap - d_an)); 'none' for the raw difference.")
    g.add_argument("--metric", choices=sorted(METRICS), default="euclidean",
                   help="Distance between embeddings.")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default="adam",
                   help="adam as in the paper; adamw adds decoupled weight decay (--weight_decay).")
    g.add_argument("--weight_decay", type=argtypes.nonnegative_float, default=0.0,
                   help="Decoupled weight decay of adamw (ignored by adam).")
    g.add_argument("--learning_rate", type=argtypes.positive_float, default=3e-4,
                   help="Initial learning rate, kept until --decay_start_iteration.")
    g.add_argument("--train_iterations", type=argtypes.positive_int, default=25000,
                   help="Number of training iterations (batches).")
    g.add_argument("--decay_start_iteration", type=int, default=15000,
                   help="Iteration at which the learning rate starts decaying exponentially, reaching "
                        "0.001x at --train_iterations; -1 disables decay.")
    g = p.add_argument_group("checkpoints and logs")
    g.add_argument("--checkpoint_frequency", type=argtypes.nonnegative_int, default=1000,
                   help="Save a checkpoint every this many iterations; 0 saves only at the end (and at "
                        "an interruption).")
    g.add_argument("--keep_checkpoints", type=argtypes.positive_int, default=5,
                   help="How many of the newest checkpoints to keep (checkpoint-0, the untrained model, "
                        "is always kept).")
    g.add_argument("--log_frequency", type=argtypes.positive_int, default=1,
                   help="Write a log line and TensorBoard scalars every this many iterations.")
    g.add_argument("--histogram_frequency", type=argtypes.nonnegative_int, default=100,
                   help="Write TensorBoard histograms (losses, distances, embedding norms) every this "
                        "many iterations; 0 disables them.")
    g.add_argument("--detailed_logs", action="store_true",
                   help="Also store every batch's embeddings, per-anchor losses and image paths as "
                        "memory-mapped .npy files in the experiment root, one row per iteration.")
    return p


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Checks that involve several flags (parser.error exits with status 2)."""
    if args.train_set is None:
        parser.error("--train_set is required (unless --resume)")
    if args.batch_p < 2:
        parser.error(f"--batch_p must be at least 2 (a batch needs negatives), got {args.batch_p}")
    if args.crop_augment and (args.pre_crop_height < args.net_input_height
                              or args.pre_crop_width < args.net_input_width):
        parser.error(f"--crop_augment needs a pre-crop size ({args.pre_crop_height}x{args.pre_crop_width}) "
                     f"at least the net input size ({args.net_input_height}x{args.net_input_width})")
    if args.decay_start_iteration < -1:
        parser.error("--decay_start_iteration must be -1 (no decay) or >= 0, "
                     f"got {args.decay_start_iteration}")


def resolve_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; on --resume, replace the run's arguments with those saved in args.json."""
    from trinet import experiment

    args = parser.parse_args(argv)
    if not args.resume:
        validate(args, parser)
        return args
    saved = experiment.load_args(args.experiment_root)
    given = experiment.explicit_dests(parser, argv) - set(NOT_SAVED)
    known = {k: v for k, v in saved.items() if k not in NOT_SAVED}
    try:
        merged = parser.parse_args(["--experiment_root", args.experiment_root, "--resume"]
                                   + experiment.to_argv(parser, known))
    except SystemExit:
        raise TrinetError(f"{args.experiment_root}/args.json holds values this version rejects "
                          "(see the message above); fix or restore the file.") from None
    for key in sorted(given):
        if key in saved and getattr(args, key) != saved[key]:
            log.warning("--%s %s differs from the resumed run's %r; using the saved value.",
                        key, getattr(args, key), saved[key])
    for key in sorted(set(vars(merged)) - set(saved) - set(NOT_SAVED)):
        setattr(merged, key, getattr(args, key))
        log.warning("--%s is not in args.json (added since that run); using %r.", key, getattr(args, key))
    validate(merged, parser)
    return merged


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_console_logging()
    parser = build_parser()
    args = resolve_args(parser, argv)
    import_tensorflow_quietly()
    from trinet.training import train  # TensorFlow is imported only now, after the arguments are checked
    return train(args, {k: v for k, v in vars(args).items() if k not in NOT_SAVED})


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
