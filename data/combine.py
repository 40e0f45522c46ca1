"""Combine several training CSVs into one, identities kept apart, for combined-trainval training.

    python data/combine.py --out data/combined_train.csv \\
        --source market1501 data/market1501_train.csv ~/datasets/Market-1501-v15.09.15 \\
        --source duke data/dukeMTMC_train.csv ~/datasets/DukeMTMC-reID

Each `--source PREFIX CSV IMAGE_ROOT` is one training set: its identities become `PREFIX/pid`
(`market1501/0002`, `duke/0005`) so that equal numbers of different datasets stay different people, and
its paths are re-rooted under the common image root (`--image_root`, by default the deepest folder that
holds every source's image root), which the script prints: train with that `--image_root`. Refused, with
exit status 2: repeated prefixes, missing CSVs or images, images outside the image root, the same image
in two sources, and junk identities (`--junk_pids`, default -1). See data/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

# Run as `python data/combine.py` from anywhere: make the repository's trinet package importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trinet import converters  # noqa: E402
from trinet.argtypes import readable_directory, writeable_file  # noqa: E402
from trinet.console import run_main  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Combine training CSVs into one: identities get a per-source prefix (PREFIX/pid) and "
                    "paths are re-rooted under one image root.")
    parser.add_argument("--source", nargs=3, action="append", required=True,
                        metavar=("PREFIX", "CSV", "IMAGE_ROOT"),
                        help="a training set: the prefix for its identities (letters, digits, '.', '_', "
                             "'-'), its CSV and the folder its paths are relative to; repeat for each set")
    parser.add_argument("--out", required=True, type=writeable_file, metavar="CSV",
                        help="the combined CSV to write")
    parser.add_argument("--image_root", type=readable_directory, default=None,
                        help="the folder the combined paths are relative to (default: the deepest folder "
                             "that holds every source's image root)")
    parser.add_argument("--junk_pids", nargs="+", default=list(converters.DEFAULT_JUNK_PIDS), metavar="PID",
                        help="identities refused in a training set (default: -1, Market-1501's junk label; "
                             "0000 is not refused because it is a real person in MSMT17's training set)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sources = [converters.Source(prefix, csv, root) for prefix, csv, root in args.source]
    combined = converters.combine(sources, args.image_root, args.junk_pids)
    converters.write_rows(args.out, combined.rows)
    identities = sum(stats.identities for stats in combined.stats.values())
    print(f"Wrote {args.out}: {len(combined.rows):,} rows, {identities:,} identities")
    for source in sources:
        stats = combined.stats[source.prefix]
        print(f"  {source.prefix}/: {stats.rows:,} rows, {stats.identities:,} identities from {source.csv}")
    print(f"Paths are relative to {combined.image_root}: train with --image_root {combined.image_root}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
