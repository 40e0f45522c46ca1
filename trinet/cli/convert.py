"""trinet-convert (data/convert.py): an extracted official re-id release to trinet CSVs.

    trinet-convert market1501 ~/datasets/Market-1501-v15.09.15 --out data
    trinet-convert duke ~/datasets/DukeMTMC-reID --out data
    trinet-convert cuhk03-detected ~/datasets/cuhk03-np --out data
    trinet-convert cuhk03-labeled ~/datasets/cuhk03-np --out data
    trinet-convert msmt17 ~/datasets/MSMT17_V1 --out data
    trinet-convert viper ~/datasets/VIPeR --trial 0 --out data
    trinet-convert cuhk01 ~/datasets/CUHK01 --trial 0 --out data
    trinet-convert mars ~/datasets/MARS --out data
    trinet-convert ilidsvid ~/datasets/iLIDS-VID --trial 0 --out data
    trinet-convert prid2011 ~/datasets/prid_2011 --trial 0 --out data
    trinet-convert duke-video ~/datasets/DukeMTMC-VideoReID --out data
    trinet-convert cub200 ~/datasets/CUB_200_2011 --out data
    trinet-convert cars196 ~/datasets/stanford_cars --out data
    trinet-convert sop ~/datasets/Stanford_Online_Products --out data
    trinet-convert inshop "~/datasets/In-shop Clothes Retrieval Benchmark" --out data

Writes e.g. data/market1501_{train,query,test}.csv with the header `pid,path,camera` and rows
`pid,relative/path,camera` (paths relative to the release folder, which is the `--image_root` for training and
evaluation; the camera from the file name) and prints the files, rows,
identities and junk/distractor counts. VIPeR and CUHK01 have 10 random train/test splits (`--trial 0`
to `9`, written as e.g. data/viper_trial0_{train,query,test}.csv). Counts that differ from the official
release are warnings; a wrong folder or a badly named file is an error (exit status 2). See
data/README.md.

The video releases (mars, ilidsvid, prid2011, duke-video) write one row per frame under the header
`pid,path,camera,tracklet,frame`; embed.py --pool_by tracklet and evaluate.py --excluder camera take them.

The retrieval benchmarks of unseen classes (cub200, cars196, sop, inshop; `trinet.data.converters.retrieval`)
split by classes: data/cub200_{train,test}.csv etc., the test set being query and gallery at once
(evaluate.py --excluder diagonal), and data/inshop_{train,query,gallery}.csv. The CSVs have no header
(`pid,path` rows: no camera). The converter prints the protocol: which Recall@K the papers report, and the
evaluate.py command with its --excluder and --metrics.

With `--multi_query` (Market-1501), data/market1501_mquery.csv also holds the `gt_bbox/` images of each
query's person and camera, for evaluate.py's `--multi_query mean|max` (Zheng et al.'s multi-query protocol).

With `--val_identities N`, N training identities are held out as a validation set split by the release's
protocol (as AlignedReID's partitions, which hold out 100): e.g. data/market1501_train.csv then holds the
other identities, data/market1501_trainval.csv all of them, and data/market1501_val_{query,gallery}.csv the
validation set, for train.py's --val_query/--val_gallery with --val_excluder market1501.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

import numpy as np

from trinet.console.argtypes import nonnegative_int, positive_int, writeable_directory
from trinet.console.commands import run_main
from trinet.core.errors import listing
from trinet.data.converters import registry
from trinet.data.converters.layout import Row
from trinet.evaluation.holdout import hold_out


def build_parser() -> argparse.ArgumentParser:
    releases = "\n".join(f"  {name:16} {converter.title}: {converter.release}"
                         for name, converter in sorted(registry.CONVERTERS.items()))
    parser = argparse.ArgumentParser(
        description="Convert an extracted official person re-id release into trinet CSVs "
                    "(`pid,path,camera` rows under a header; the release folder is the --image_root), or a "
                    "retrieval benchmark of unseen classes (cub200, cars196, sop, inshop: `pid,path` rows "
                    "split by classes; the protocol and its evaluate.py command are printed).",
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
    parser.add_argument("--val_identities", type=positive_int, default=None, metavar="N",
                        help="hold N training identities out as a validation query and gallery, split by the "
                             "release's protocol (one query image per identity and camera): writes "
                             "<prefix>_val_query.csv and <prefix>_val_gallery.csv, <prefix>_train.csv "
                             "without them and <prefix>_trainval.csv with them")
    with_multi_query = sorted(name for name, c in registry.CONVERTERS.items() if c.multi_query)
    parser.add_argument("--multi_query", action="store_true",
                        help=f"{', '.join(with_multi_query)}: also write <prefix>_mquery.csv, the images of "
                             "gt_bbox/ of each query's person and camera (header pid,path,camera,query; the "
                             "query column names the query image each row pools into), for evaluate.py "
                             "--multi_query")
    parser.add_argument("--val_seed", type=nonnegative_int, default=0, metavar="S",
                        help="--val_identities: the seed of the draw (default: 0)")
    return parser


def _validation_rows(conversion: registry.Conversion, identities: int, seed: int) -> dict[str, list[Row]]:
    """`{"train", "trainval", "val_query", "val_gallery"}` rows of `conversion`'s training split with
    `identities` held out (`trinet.evaluation.holdout`)."""
    rows = conversion.rows["train"]
    cameras = registry.row_cameras(conversion.converter, rows)
    split = hold_out([fid for _, fid in rows], [pid for pid, _ in rows], conversion.converter.excluder,
                     seed=seed, identities=identities, cameras=None if cameras is None else np.array(cameras))
    return {"train": [rows[i] for i in split.train], "trainval": rows,
            "val_query": [rows[i] for i in split.query], "val_gallery": [rows[i] for i in split.gallery]}


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    conversion = registry.convert(args.dataset, args.release_dir, args.trial)
    multi_query = registry.read_multi_query(conversion) if args.multi_query else None  # before writing
    for warning in conversion.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    validation = {}
    if args.val_identities is not None:  # drawn before anything is written
        validation = _validation_rows(conversion, args.val_identities, args.val_seed)
        train = validation.pop("train")
        conversion = dataclasses.replace(conversion, rows={**conversion.rows, "train": train})
    written = registry.write_conversion(conversion, args.out)
    print("\n".join(registry.summary_lines(conversion, written)))
    prefix = conversion.csv_name("train").removesuffix("train.csv")
    for split, rows in validation.items():
        path = os.path.join(args.out, f"{prefix}{split}.csv")
        registry.write_rows(path, conversion.converter, rows)
        stats = registry.split_stats(rows, conversion.converter.labels)
        print(f"  {path}: {stats.rows:,} rows, {stats.identities:,} identities")
    if multi_query is not None:
        path = os.path.join(args.out, f"{prefix}mquery.csv")
        registry.write_multi_query(path, multi_query)
        queries = len({row[3] for row in multi_query.rows})
        print(f"  {path}: {len(multi_query.rows):,} rows, the multi-queries of {queries:,} of the "
              f"{len(conversion.rows['query']):,} queries")
        if multi_query.lonely:
            print(f"warning: {len(multi_query.lonely)} queries have no image of their person and camera in "
                  f"{conversion.converter.multi_query}/; evaluate.py --multi_query keeps their own "
                  f"embedding: {listing(multi_query.lonely)}", file=sys.stderr)
    if validation:
        print(f"Validation: {args.val_identities} identities held out of {written['train']} (--val_seed "
              f"{args.val_seed}); train.py --val_query/--val_gallery with --val_excluder "
              f"{conversion.converter.excluder}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`trinet-convert`: see `build_parser`; an input error exits with status 2."""
    return run_main(_run, argv)
