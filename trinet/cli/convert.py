"""trinet-convert (data/convert.py): an extracted official re-id release to trinet CSVs.

    trinet-convert market1501 ~/datasets/Market-1501-v15.09.15 --out data
    trinet-convert duke ~/datasets/DukeMTMC-reID --out data
    trinet-convert cuhk03-detected ~/datasets/cuhk03-np --out data
    trinet-convert cuhk03-labeled ~/datasets/cuhk03-np --out data
    trinet-convert msmt17 ~/datasets/MSMT17_V1 --out data
    trinet-convert viper ~/datasets/VIPeR --trial 0 --out data
    trinet-convert cuhk01 ~/datasets/CUHK01 --trial 0 --out data

Writes e.g. data/market1501_{train,query,test}.csv with rows `pid,relative/path` (paths relative to the
release folder, which is the `--image_root` for training and evaluation) and prints the files, rows,
identities and junk/distractor counts. VIPeR and CUHK01 have 10 random train/test splits (`--trial 0`
to `9`, written as e.g. data/viper_trial0_{train,query,test}.csv). Counts that differ from the official
release are warnings; a wrong folder or a badly named file is an error (exit status 2). See
data/README.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from trinet.console.argtypes import nonnegative_int, writeable_directory
from trinet.console.commands import run_main
from trinet.data.converters import registry


def build_parser() -> argparse.ArgumentParser:
    releases = "\n".join(f"  {name:16} {converter.title}: {converter.release}"
                         for name, converter in sorted(registry.CONVERTERS.items()))
    parser = argparse.ArgumentParser(
        description="Convert an extracted official person re-id release into trinet CSVs "
                    "(`pid,relative/path` rows; the release folder is the --image_root).",
        epilog=f"datasets and the folder to pass:\n{releases}\nSee data/README.md for downloads and counts.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(registry.CONVERTERS),
                        help="which release RELEASE_DIR holds")
    parser.add_argument("release_dir", metavar="RELEASE_DIR",
                        help="the extracted release folder; the CSV paths are relative to it")
    parser.add_argument("--out", default=".", type=writeable_directory, metavar="DIR",
                        help="folder for the CSV files, created if needed (default: the current folder)")
    with_trials = sorted(name for name, converter in registry.CONVERTERS.items() if converter.trials)
    parser.add_argument("--trial", type=nonnegative_int, default=None, metavar="N",
                        help=f"{' and '.join(with_trials)}: which of the protocol's 10 random train/test "
                             "splits to write (0-9; the identities are permuted by "
                             "numpy.random.RandomState(N), half for training; the query is the first "
                             "camera of the test identities, the gallery the second). Default: 0. Not "
                             "allowed for the releases with a fixed split.")
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    conversion = registry.convert(args.dataset, args.release_dir, args.trial)
    for warning in conversion.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    written = registry.write_conversion(conversion, args.out)
    print("\n".join(registry.summary_lines(conversion, written)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`trinet-convert`: see `build_parser`; an input error exits with status 2."""
    return run_main(_run, argv)
