"""The demo's command: `python -m trinet.demo` (installed: `trinet-demo`) parses, generates and reports."""

from __future__ import annotations

import argparse
from typing import Sequence

from trinet.console.argtypes import nonnegative_float, nonnegative_int, positive_int
from trinet.console.commands import run_main
from trinet.demo.folder import generate
from trinet.demo.plan import DEFAULTS, MAX_CAMERAS, MAX_PER_CAMERA, MAX_PID, MAX_SIDE, MIN_HEIGHT, MIN_WIDTH
from trinet.demo.world import ARITY, DEFAULT_WORLD, DESCRIPTIONS

#: The names of the values of the world's fields that take several (argparse metavars).
_METAVARS: dict[str, str | tuple[str, ...]] = {
    "colour_cast": "SIGMA", "illumination": "STRENGTH", "tint": ("R", "G", "B"), "low_res": "F",
    "views": ("FRONT", "BACK", "LEFT", "RIGHT"), "clothing_neutral": ("DARK", "GREY", "WHITE"),
    "clothing_hues": ("START", "WIDTH"), "patterns": ("SOLID", "HSTRIPES", "VSTRIPES", "CHECKS", "LOGO")}


def _shown(value) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """`--world` and a flag per field of `trinet.demo.world.World` (default: the world's value)."""
    group = parser.add_argument_group(
        "the world (the site: its cameras, scenes and people)",
        "Each camera and person is drawn from the world's ranges with --seed. A flag below sets one range on "
        "top of the world's; its default is the world's value (world 0's is shown).")
    group.add_argument("--world", type=nonnegative_int, default=0, metavar="N",
                       help="The site: 0 is the demo's own; any other number draws every range below from "
                            "that number alone, and other people, cameras and file names. "
                            "Default: %(default)s.")
    for name, arity in ARITY.items():
        group.add_argument(f"--{name}", type=nonnegative_float, nargs=arity, default=None,
                           metavar=_METAVARS.get(name, ("LOW", "HIGH") if arity == 2 else None),
                           help=f"{DESCRIPTIONS[name]} Default: the world's (world 0: "
                                f"{_shown(getattr(DEFAULT_WORLD, name))}).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trinet.demo",
        description="Generate the demo dataset: synthetic pedestrians in Market-1501's folder layout and "
                    "file naming, with demo_train.csv, demo_query.csv and demo_test.csv. Re-running with "
                    "the same settings reuses the dataset.")
    parser.add_argument("--out", required=True,
                        help="Output folder. It must not exist, be empty, or already hold a demo dataset.")
    parser.add_argument("--seed", type=nonnegative_int, default=DEFAULTS["seed"],
                        help="Random seed of the people, cameras and file names; the same seed, sizes and "
                             "world give identical files. "
                             "Default: %(default)s.")
    parser.add_argument("--train_ids", type=positive_int, default=DEFAULTS["train_ids"],
                        help="Number of training identities (>= 2). Default: %(default)s.")
    parser.add_argument("--test_ids", type=positive_int, default=DEFAULTS["test_ids"],
                        help="Number of query/gallery identities, disjoint from the training ones; "
                             f"train_ids + test_ids <= {MAX_PID}. Default: %(default)s.")
    parser.add_argument("--cameras", type=positive_int, default=DEFAULTS["cameras"],
                        help=f"Number of cameras, 2 to {MAX_CAMERAS}; each identity is seen by 2 or more "
                             "of them. Default: %(default)s.")
    parser.add_argument("--images_per_camera", type=positive_int, default=DEFAULTS["images_per_camera"],
                        help=f"Images of an identity in each camera that sees it (1 to {MAX_PER_CAMERA}). "
                             "Default: %(default)s.")
    parser.add_argument("--junk", type=nonnegative_int, default=DEFAULTS["junk"],
                        help="Number of junk gallery images (pid -1, badly cropped people; ignored at "
                             "evaluation). Default: %(default)s.")
    parser.add_argument("--distractors", type=nonnegative_int, default=DEFAULTS["distractors"],
                        help="Number of distractor gallery images (pid 0000, background and strangers; "
                             "negatives at evaluation). Default: %(default)s.")
    parser.add_argument("--height", type=positive_int, default=DEFAULTS["height"],
                        help=f"Image height in pixels ({MIN_HEIGHT} to {MAX_SIDE}). Default: %(default)s.")
    parser.add_argument("--width", type=positive_int, default=DEFAULTS["width"],
                        help=f"Image width in pixels ({MIN_WIDTH} to {MAX_SIDE}). Default: %(default)s.")
    add_world_arguments(parser)
    parser.add_argument("--tracklets", action="store_true",
                        help="Video re-id: each walk of a person past a camera becomes a tracklet of "
                             "--images_per_camera frames; a queried walk goes to the query whole, and the "
                             "CSVs start with the header pid,path,camera,tracklet,frame (for embed.py "
                             "--pool_by tracklet and evaluate.py --excluder camera). Default: single images.")
    parser.add_argument("--force", action="store_true",
                        help="Generate even if --out holds a demo dataset: one with other settings, an "
                             "incomplete one or this one is replaced. A folder with other files is never "
                             "deleted.")
    parser.add_argument("--quiet", action="store_true", help="No progress output.")
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    sizes = {k: getattr(args, k) for k in DEFAULTS}
    changes = {name: getattr(args, name) for name in ARITY if getattr(args, name) is not None}
    result = generate(args.out, force=args.force, quiet=args.quiet, world=args.world, world_changes=changes,
                      tracklets=args.tracklets, **sizes)
    c = result.counts
    what = (f"{c['train']} train images of {c['train_ids']} identities, {c['query']} query and {c['test']} "
            f"gallery images of {c['test_ids']} identities (gallery: {c['junk']} junk, {c['distractors']} "
            "distractors)")
    if result.reused:
        print(f"Reusing the demo dataset in {result.root} (same settings): {what}. "
              "Pass --force to regenerate it.")
    else:
        print(f"Generated the demo dataset in {result.root} in {result.seconds:.1f} s: {what}.")
    print("CSVs: " + ", ".join((result.train_csv, result.query_csv, result.test_csv)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m trinet.demo`: see `build_parser`."""
    return run_main(_run, argv)
