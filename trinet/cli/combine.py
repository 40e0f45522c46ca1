"""trinet-combine (data/combine.py): several training CSVs to one, identities kept apart.

    trinet-combine --out data/combined_train.csv \\
        --source market1501 data/market1501_train.csv ~/datasets/Market-1501-v15.09.15 \\
        --source duke data/dukeMTMC_train.csv ~/datasets/DukeMTMC-reID

Each `--source PREFIX CSV IMAGE_ROOT` is one training set: its identities become `PREFIX/pid`
(`market1501/0002`, `duke/0005`) so that equal numbers of different datasets stay different people, and
its paths are re-rooted under the common image root (`--image_root`, by default the deepest folder that
holds every source's image root), which the command prints: train with that `--image_root`. Refused, with
exit status 2: repeated prefixes, missing CSVs or images, images outside the image root, the same image
in two sources, junk identities (`--junk_pids`, default -1), and an `--out` in a folder that does not
exist. The metadata columns (`camera`, `tracklet`, `frame`) that every source's CSV has are kept (tracklets
prefixed like the identities); one that only some sources have is dropped with a warning. See data/README.md.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from trinet.console.argtypes import readable_directory, writeable_file
from trinet.console.commands import run_main
from trinet.core.errors import TrinetError
from trinet.data import combine
from trinet.data.datasets import write_csv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Combine training CSVs into one: identities get a per-source prefix (PREFIX/pid) and "
                    "paths are re-rooted under one image root. Metadata columns that every source has "
                    "(camera, tracklet, frame) are kept.")
    parser.add_argument("--source", nargs=3, action="append", required=True,
                        metavar=("PREFIX", "CSV", "IMAGE_ROOT"),
                        help="a training set: the prefix for its identities (letters, digits, '.', '_', "
                             "'-'), its CSV and the folder its paths are relative to; repeat for each set")
    parser.add_argument("--out", required=True, type=writeable_file, metavar="CSV",
                        help="the combined CSV to write, in a folder that exists")
    parser.add_argument("--image_root", type=readable_directory, default=None,
                        help="the folder the combined paths are relative to (default: the deepest folder "
                             "that holds every source's image root)")
    parser.add_argument("--junk_pids", nargs="+", default=list(combine.DEFAULT_JUNK_PIDS), metavar="PID",
                        help="identities refused in a training set (default: -1, Market-1501's junk label; "
                             "0000 is not refused because it is a real person in MSMT17's training set)")
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise TrinetError(f"--out {args.out}: the folder {folder} does not exist; create it or choose "
                          "another --out")
    sources = [combine.Source(prefix, csv, root) for prefix, csv, root in args.source]
    combined = combine.combine(sources, args.image_root, args.junk_pids)
    write_csv(args.out, [pid for pid, _ in combined.rows], [fid for _, fid in combined.rows],
              columns=combined.columns)
    identities = sum(stats.identities for stats in combined.stats.values())
    print(f"Wrote {args.out}: {len(combined.rows):,} rows, {identities:,} identities")
    for source in sources:
        stats = combined.stats[source.prefix]
        print(f"  {source.prefix}/: {stats.rows:,} rows, {stats.identities:,} identities from {source.csv}")
    print(f"Paths are relative to {combined.image_root}: train with --image_root {combined.image_root}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`trinet-combine`: see `build_parser`; an input error exits with status 2."""
    return run_main(_run, argv)
